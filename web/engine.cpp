// The ferkit engine: the core's live pipeline (face detection, 48x48 crops, classification) as a plain
// WebAssembly module for JavaScript, with no SDL, ImGui or WebGL. Built as dist/ferkit-engine.{mjs,wasm}
// (target ferkit_engine); web/ferkit.mjs wraps it in the public API (loadFerkit -> classify(image)).
//
// C interface (every pointer is into wasm memory; one engine per module instance, single-threaded):
//   int fk_create(model, model_len, cascade, cascade_len)  1 ok, 0 error (fk_last_error). Called again it
//       replaces the model; with cascade_len == 0 it keeps the current face detector. On error the previous
//       model and detector stay in use.
//   uint8_t* fk_buffer(bytes)         the input buffer: grows, never shrinks (the pointer changes when it grows;
//                                     null, with fk_last_error, when memory runs out)
//   int fk_classify_rgba(w, h, smooth)  faces in the w*h RGBA frame in the buffer (-1: error); fk_results()
//       then holds 12 floats a face: x, y, w, h, 7 probabilities (smoothed over calls if smooth), label index
//   void fk_classify_crops(n, out)    n 48x48 grey crops in the buffer -> n*7 probabilities at out (NaN on error)
//   fk_class_name(i), fk_num_params(), fk_model_info() (JSON), fk_last_error() ("" after a successful call)
#include <emscripten/emscripten.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "detect.h"
#include "model_io.h"
#include "pipeline.h"

namespace {

constexpr int kResultFloats = 4 + ferkit::kNumClasses + 1;

struct Engine {
  std::unique_ptr<ferkit::Pipeline> pipe;
  ferkit::PipelineOptions options;
  std::vector<uint8_t> buffer;
  std::vector<float> results;
  std::string error;
  std::string info = "{}";
};
Engine g_engine;

// name, params, macs, classes and (when the model's metadata has it) FER-2013 PrivateTest accuracy.
std::string model_info(const ferkit::Model& model, const nlohmann::json& meta) {
  nlohmann::json info = nlohmann::json::object();
  info["name"] = meta.is_object() && meta.contains("name") && meta["name"].is_string() ? meta["name"] : "model";
  info["params"] = model.num_params();
  info["macs"] = model.macs_per_image();
  info["classes"] = model.class_names;
  const nlohmann::json::json_pointer acc("/eval/private/accuracy");
  if (meta.is_object() && meta.contains(acc) && meta[acc].is_number()) info["accuracy"] = meta[acc];
  return info.dump();
}

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE const char* fk_last_error() { return g_engine.error.c_str(); }

EMSCRIPTEN_KEEPALIVE int fk_create(const uint8_t* model, int model_len, const uint8_t* cascade, int cascade_len) {
  Engine& e = g_engine;
  e.error.clear();
  std::string what = "model file";
  try {
    if (!model || model_len <= 0) throw std::invalid_argument("empty");
    nlohmann::json meta;
    ferkit::Model m = ferkit::load_model(model, static_cast<size_t>(model_len), &meta);
    std::string info = model_info(m, meta);
    if (cascade && cascade_len > 0) {
      what = "face-detector cascade";
      ferkit::Cascade c = ferkit::load_cascade(cascade, static_cast<size_t>(cascade_len));
      what = "model file";
      e.pipe = std::make_unique<ferkit::Pipeline>(std::move(m), std::move(c));
    } else if (e.pipe) {
      e.pipe->set_model(std::move(m));  // checks the model's shape before replacing anything
    } else {
      what = "face-detector cascade";
      throw std::invalid_argument("missing (the first fk_create needs one)");
    }
    e.info = std::move(info);
    return 1;
  } catch (const std::exception& ex) {
    e.error = what + ": " + ex.what();
    return 0;
  }
}

EMSCRIPTEN_KEEPALIVE uint8_t* fk_buffer(int bytes) {
  std::vector<uint8_t>& b = g_engine.buffer;
  if (bytes > 0 && static_cast<size_t>(bytes) > b.size()) {
    try {
      b.clear();
      b.shrink_to_fit();  // no copy of the old contents
      b.resize(static_cast<size_t>(bytes));
    } catch (const std::exception&) {
      g_engine.error = "out of memory for a " + std::to_string(bytes) + "-byte buffer";
      return nullptr;
    }
  }
  return b.data();
}

EMSCRIPTEN_KEEPALIVE int fk_classify_rgba(int width, int height, int smooth) {
  Engine& e = g_engine;
  e.error.clear();
  try {
    if (!e.pipe) throw std::logic_error("no model (call fk_create first)");
    if (width <= 0 || height <= 0) throw std::invalid_argument("empty frame");
    if (static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * 4 > e.buffer.size())
      throw std::invalid_argument("frame larger than the buffer (fk_buffer(width * height * 4) first)");
    e.options.smooth = smooth != 0;
    const auto& faces = e.pipe->process_rgba(e.buffer.data(), width, height, e.options);
    const size_t need = faces.size() * kResultFloats;
    if (e.results.size() < need) e.results.resize(need);
    float* r = e.results.data();
    for (const ferkit::FaceResult& f : faces) {
      *r++ = f.box.x;
      *r++ = f.box.y;
      *r++ = f.box.w;
      *r++ = f.box.h;
      for (int c = 0; c < ferkit::kNumClasses; ++c) *r++ = smooth ? f.smoothed[c] : f.probs[c];
      *r++ = static_cast<float>(f.label);
    }
    return static_cast<int>(faces.size());
  } catch (const std::exception& ex) {
    e.error = ex.what();
    return -1;
  }
}

EMSCRIPTEN_KEEPALIVE const float* fk_results() { return g_engine.results.data(); }

EMSCRIPTEN_KEEPALIVE void fk_classify_crops(int n, float* out) {
  Engine& e = g_engine;
  e.error.clear();
  try {
    if (!e.pipe) throw std::logic_error("no model (call fk_create first)");
    if (n <= 0) return;
    if (!out) throw std::invalid_argument("no output pointer");
    if (static_cast<uint64_t>(n) * ferkit::kPixels > e.buffer.size())
      throw std::invalid_argument("crops larger than the buffer (fk_buffer(n * 2304) first)");
    e.pipe->classify(e.buffer.data(), n, out);
  } catch (const std::exception& ex) {
    e.error = ex.what();
    if (out && n > 0)
      for (int i = 0; i < n * ferkit::kNumClasses; ++i) out[i] = std::numeric_limits<float>::quiet_NaN();
  }
}

EMSCRIPTEN_KEEPALIVE const char* fk_class_name(int i) {
  if (i < 0 || i >= ferkit::kNumClasses) return "";
  if (g_engine.pipe && i < static_cast<int>(g_engine.pipe->model().class_names.size()))
    return g_engine.pipe->model().class_names[i].c_str();
  return ferkit::kClassNames[i];
}

EMSCRIPTEN_KEEPALIVE int fk_num_params() {
  return g_engine.pipe ? static_cast<int>(g_engine.pipe->model().num_params()) : 0;
}

EMSCRIPTEN_KEEPALIVE const char* fk_model_info() { return g_engine.info.c_str(); }

}  // extern "C"
