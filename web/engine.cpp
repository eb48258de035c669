// The ferkit engine: the core's live pipeline (face detection, 48x48 crops, classification) as a plain
// WebAssembly module for JavaScript, with no SDL, ImGui or WebGL. Built as dist/ferkit-engine.{mjs,wasm}
// (target ferkit_engine); web/ferkit.mjs wraps it in the public API (loadFerkit -> classify(image)).
//
// C interface (every pointer is into wasm memory; one engine per module instance, single-threaded):
//   int fk_create(model, model_len, detector, detector_len)  1 ok, 0 error (fk_last_error): the classifier's and
//       the face detector's model files (assets/blazeface.ferkit). Called again it replaces the model; with
//       detector_len == 0 it keeps the current face detector. On error the previous model and detector stay in use.
//   uint8_t* fk_buffer(bytes)         the input buffer: grows, never shrinks (the pointer changes when it grows;
//                                     null, with fk_last_error, when memory runs out)
//   int fk_classify_rgba(w, h, flags)  faces in the w*h RGBA frame in the buffer (-1: error). flags: 1 smooth
//       (successive calls are one video's frames: probabilities averaged over calls, every other call on the
//       mirrored faces, PipelineOptions::alternate_flip; faces tracked, PipelineOptions::video), 2 still (a photo:
//       the whole search of FindOptions, no tracking).
//       fk_results() then holds 31 floats a face: box x, y, w, h, detector score, 7 probabilities, label index,
//       the aligned crop's region (centre x, y, side, angle in radians), 6 keypoints (x, y each: right eye, left
//       eye, nose tip, mouth, right ear, left ear), track id, frames missed; fk_face_crop(i) is face i's 48x48
//       crop (null past the last face)
//   void fk_classify_crops(n, out)    n 48x48 grey crops in the buffer -> n*7 probabilities at out (NaN on error)
//   int fk_explain(method, cls, out)  the saliency map (core/explain.h) of the 48x48 grey crop in the buffer:
//       method 0 Grad-CAM, 1 gradient x input, 2 SmoothGrad; cls -1 for the predicted class; 2304 floats in
//       [0, 1] at out. Returns the class explained, -1 on error
//   fk_class_name(i), fk_num_params(), fk_model_info() (JSON), fk_last_error() ("" after a successful call)
//
// Fine-tuning (core/finetune.h; the page runs it in a worker, web/finetune-worker.mjs), independent of the
// classifier above:
//   int fk_ft_begin(model, model_len, crops, labels, n, settings_json)  1 ok, 0 error (inputs copied): n 48x48 grey crops and
//       their labels (0..6); settings as FinetuneConfig::from_json ({} for the defaults)
//   int fk_ft_run(budget_ms)          trains whole batches for about budget_ms: 1 more to do, 0 finished, -1 error
//   const char* fk_ft_progress()      JSON {epoch, epochs, step, steps, losses: [per step], history: [per epoch
//                                     {epoch, loss, acc, held_acc}], held_before, train, held}
//   int fk_ft_finish()                the fine-tuned model file's size (0 on error); fk_ft_result() its bytes;
//                                     fk_ft_progress() then also has held_after and replay_agreement
//   void fk_ft_end()                  frees the fine-tuning state
#include <emscripten/emscripten.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "explain.h"
#include "finetune.h"
#include "model_io.h"
#include "pipeline.h"

namespace {

constexpr int kResultFloats = 5 + ferkit::kNumClasses + 1 + 4 + 2 * ferkit::kNumFaceKeypoints + 2;

struct Engine {
  std::unique_ptr<ferkit::Pipeline> pipe;
  std::unique_ptr<ferkit::Explainer> explainer;  // of pipe's model, made when first asked for
  ferkit::PipelineOptions options;
  std::vector<uint8_t> buffer;
  std::vector<float> results;
  std::string error;
  std::string info = "{}";
};
Engine g_engine;

struct Tuning {
  std::unique_ptr<ferkit::FineTune> ft;
  nlohmann::json base_meta;
  std::vector<uint8_t> result;
  std::string progress;
  double held_after = -1, replay_after = -1;
};
Tuning g_tuning;

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

EMSCRIPTEN_KEEPALIVE int fk_create(const uint8_t* model, int model_len, const uint8_t* detector, int detector_len) {
  Engine& e = g_engine;
  e.error.clear();
  std::string what = "model file";
  try {
    if (!model || model_len <= 0) throw std::invalid_argument("empty");
    nlohmann::json meta;
    ferkit::Model m = ferkit::load_model(model, static_cast<size_t>(model_len), &meta);
    std::string info = model_info(m, meta);
    if (detector && detector_len > 0) {
      what = "face detector";
      ferkit::Model d = ferkit::load_model(detector, static_cast<size_t>(detector_len));
      ferkit::BlazeFace check(d);  // says what is wrong with a file that is not a detector
      what = "model file";
      e.pipe = std::make_unique<ferkit::Pipeline>(std::move(m), std::move(d));
    } else if (e.pipe) {
      e.pipe->set_model(std::move(m));  // checks the model's shape before replacing anything
    } else {
      what = "face detector";
      throw std::invalid_argument("missing (the first fk_create needs one)");
    }
    e.explainer.reset();  // it was made for the previous model's architecture
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

EMSCRIPTEN_KEEPALIVE int fk_classify_rgba(int width, int height, int flags) {
  Engine& e = g_engine;
  e.error.clear();
  try {
    if (!e.pipe) throw std::logic_error("no model (call fk_create first)");
    if (width <= 0 || height <= 0) throw std::invalid_argument("empty frame");
    if (static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * 4 > e.buffer.size())
      throw std::invalid_argument("frame larger than the buffer (fk_buffer(width * height * 4) first)");
    const bool smooth = flags & 1;
    e.options.smooth = smooth;
    e.options.video = smooth;  // successive calls are one video's frames
    e.options.still = (flags & 2) != 0;
    const auto& faces = e.pipe->process_rgba(e.buffer.data(), width, height, e.options);
    const size_t need = faces.size() * kResultFloats;
    if (e.results.size() < need) e.results.resize(need);
    float* r = e.results.data();
    for (const ferkit::FaceResult& f : faces) {
      *r++ = f.box.x;
      *r++ = f.box.y;
      *r++ = f.box.w;
      *r++ = f.box.h;
      *r++ = f.box.score;
      for (int c = 0; c < ferkit::kNumClasses; ++c) *r++ = smooth ? f.smoothed[c] : f.probs[c];
      *r++ = static_cast<float>(f.label);
      *r++ = f.crop_region.cx;
      *r++ = f.crop_region.cy;
      *r++ = f.crop_region.side;
      *r++ = f.crop_region.angle;
      for (const ferkit::Point& k : f.keypoints) *r++ = k.x, *r++ = k.y;
      *r++ = static_cast<float>(f.track);
      *r++ = static_cast<float>(f.missed);
    }
    return static_cast<int>(faces.size());
  } catch (const std::exception& ex) {
    e.error = ex.what();
    return -1;
  }
}

EMSCRIPTEN_KEEPALIVE const float* fk_results() { return g_engine.results.data(); }

EMSCRIPTEN_KEEPALIVE const uint8_t* fk_face_crop(int i) {
  const Engine& e = g_engine;
  if (!e.pipe || i < 0 || i >= static_cast<int>(e.pipe->faces().size())) return nullptr;
  return e.pipe->faces()[i].crop;
}

EMSCRIPTEN_KEEPALIVE int fk_explain(int method, int cls, float* out) {
  Engine& e = g_engine;
  e.error.clear();
  try {
    if (!e.pipe) throw std::logic_error("no model (call fk_create first)");
    if (!out) throw std::invalid_argument("no output pointer");
    if (method < 0 || method > 2) throw std::invalid_argument("method: expected 0 (Grad-CAM), 1 or 2");
    if (e.buffer.size() < ferkit::kPixels) throw std::invalid_argument("no crop in the buffer (fk_buffer(2304) first)");
    if (!e.explainer) e.explainer = std::make_unique<ferkit::Explainer>(e.pipe->model(), /*planned=*/true);
    ferkit::ExplainOptions o;
    o.method = static_cast<ferkit::SaliencyMethod>(method);
    o.cls = cls;
    return e.explainer->explain(e.buffer.data(), o, out);
  } catch (const std::exception& ex) {
    e.error = ex.what();
    return -1;
  }
}

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

EMSCRIPTEN_KEEPALIVE int fk_ft_begin(const uint8_t* model, int model_len, const uint8_t* crops, const uint8_t* labels,
                                     int n, const char* settings) {
  g_engine.error.clear();
  g_tuning = Tuning{};
  try {
    if (!model || model_len <= 0) throw std::invalid_argument("base model: empty");
    if (n < 0 || (n > 0 && (!crops || !labels))) throw std::invalid_argument("samples: missing");
    nlohmann::json meta;
    std::vector<ferkit::Blob> blobs;
    ferkit::Model base = ferkit::load_model(model, static_cast<size_t>(model_len), &meta, &blobs);
    const ferkit::ReplayBank bank = ferkit::read_replay_bank(base, meta, blobs);
    const nlohmann::json cfg_json = nlohmann::json::parse(settings ? settings : "{}");
    ferkit::Dataset samples;
    for (int i = 0; i < n; ++i) samples.add(crops + static_cast<size_t>(i) * ferkit::kPixels, labels[i]);
    g_tuning.base_meta = meta;
    g_tuning.ft = std::make_unique<ferkit::FineTune>(std::move(base), samples, ferkit::FinetuneConfig::from_json(cfg_json),
                                                      &bank);
    return 1;
  } catch (const std::exception& ex) {
    g_tuning = Tuning{};
    g_engine.error = std::string("fine-tune: ") + ex.what();
    return 0;
  }
}

EMSCRIPTEN_KEEPALIVE int fk_ft_run(double budget_ms) {
  g_engine.error.clear();
  if (!g_tuning.ft) {
    g_engine.error = "fine-tune: not started (fk_ft_begin first)";
    return -1;
  }
  try {
    const double t0 = emscripten_get_now();
    do {
      if (!g_tuning.ft->step()) return 0;
    } while (emscripten_get_now() - t0 < budget_ms);
    return g_tuning.ft->finished() ? 0 : 1;
  } catch (const std::exception& ex) {
    g_engine.error = std::string("fine-tune: ") + ex.what();
    return -1;
  }
}

EMSCRIPTEN_KEEPALIVE const char* fk_ft_progress() {
  Tuning& t = g_tuning;
  if (!t.ft) return "{}";
  nlohmann::json history = nlohmann::json::array();
  for (const ferkit::EpochRecord& r : t.ft->history())
    history.push_back({{"epoch", r.epoch}, {"loss", r.train_loss}, {"acc", r.train_acc}, {"held_acc", r.val_acc}});
  nlohmann::json p = {{"epoch", t.ft->epoch()}, {"epochs", t.ft->epochs()}, {"step", t.ft->steps_done()},
                      {"steps", t.ft->steps_total()}, {"losses", t.ft->step_losses()}, {"history", history},
                      {"held_before", t.ft->held_before()}, {"train", t.ft->train_count()},
                      {"held", t.ft->held_count()}, {"config", t.ft->config().to_json()}};
  p["replay_faces"] = t.ft->replay_count();
  if (!t.result.empty()) p["held_after"] = t.held_after, p["replay_agreement"] = t.replay_after;
  t.progress = p.dump();
  return t.progress.c_str();
}

EMSCRIPTEN_KEEPALIVE int fk_ft_finish() {
  g_engine.error.clear();
  Tuning& t = g_tuning;
  try {
    if (!t.ft) throw std::logic_error("not started (fk_ft_begin first)");
    t.ft->run();  // whatever is left
    nlohmann::json meta;
    t.result = t.ft->save(t.base_meta, &meta);
    t.held_after = meta["finetune"]["held_accuracy_after"].get<double>();
    t.replay_after = meta["finetune"]["replay_agreement_after"].get<double>();
    return static_cast<int>(t.result.size());
  } catch (const std::exception& ex) {
    g_engine.error = std::string("fine-tune: ") + ex.what();
    return 0;
  }
}

EMSCRIPTEN_KEEPALIVE const uint8_t* fk_ft_result() { return g_tuning.result.data(); }

EMSCRIPTEN_KEEPALIVE void fk_ft_end() { g_tuning = Tuning{}; }

}  // extern "C"
