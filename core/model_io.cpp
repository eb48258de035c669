#include "model_io.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace ferkit {

namespace {
constexpr char kMagic[8] = {'F', 'E', 'R', 'K', 'I', 'T', 'M', 'D'};

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
void put_floats(std::vector<uint8_t>& out, const Floats& v) {
  if (v.empty()) return;  // (memcpy from a null data() is undefined even for 0 bytes)
  const size_t at = out.size();
  out.resize(at + v.size() * 4);
  std::memcpy(out.data() + at, v.data(), v.size() * 4);  // hosts (x86, wasm) are little-endian
}
void put_halves(std::vector<uint8_t>& out, const Floats& v) {
  const size_t at = out.size();
  out.resize(at + v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!(std::fabs(v[i]) <= 65504.0f))
      throw std::runtime_error("value " + std::to_string(i) + " (" + std::to_string(v[i]) +
                               ") is outside half precision's range (65504): store it as f32");
    const uint16_t h = Eigen::numext::bit_cast<uint16_t>(Eigen::half(v[i]));  // round to nearest even
    out[at + 2 * i] = static_cast<uint8_t>(h);
    out[at + 2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}
// The inverse of put_halves: n halves at p, widened into out.
void get_halves(const uint8_t* p, uint64_t n, float* out) {
  for (uint64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(
        Eigen::numext::bit_cast<Eigen::half>(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8)));
}
[[noreturn]] void bad(const std::string& why) { throw ModelFormatError("model file: " + why); }

// Output channels of a tensor stored as int8 (a convolution's, depthwise convolution's or dense layer's weights: the
// last axis of each is its output channels), 0 for one kept as f32.
size_t int8_channels(const Model& m, const TensorRef& t) {
  const LayerPlan& l = m.layers[t.layer];
  const LayerKind k = l.spec.kind;
  const bool weights =
      (k == LayerKind::Conv || k == LayerKind::Head || k == LayerKind::Dense || k == LayerKind::DepthwiseConv) &&
      t.offset == l.w;
  return weights && l.out.c > 0 ? static_cast<size_t>(l.out.c) : 0;
}
// Bytes of "params" stored as int8 (the layout in model_io.h).
uint64_t int8_bytes(const Model& m) {
  uint64_t bytes = 0;
  for (const TensorRef& t : m.tensors) {
    const size_t ch = int8_channels(m, t);
    bytes += ch ? 4 * ch + t.size : 4 * t.size;
  }
  return bytes;
}
void put_int8(std::vector<uint8_t>& out, const Model& m) {
  for (const TensorRef& t : m.tensors) {
    const float* w = m.params.data() + t.offset;
    const size_t ch = int8_channels(m, t);
    if (!ch) {
      const size_t at = out.size();
      out.resize(at + 4 * t.size);
      if (t.size) std::memcpy(out.data() + at, w, 4 * t.size);
      continue;
    }
    std::vector<float> scale(ch, 0.0f);
    for (size_t i = 0; i < t.size; ++i) scale[i % ch] = std::max(scale[i % ch], std::fabs(w[i]));
    for (float& s : scale) {
      if (!std::isfinite(s)) throw std::runtime_error("tensor " + t.name + " holds NaN or infinity");
      s /= 127.0f;
    }
    const size_t at = out.size();
    out.resize(at + 4 * ch + t.size);
    std::memcpy(out.data() + at, scale.data(), 4 * ch);
    for (size_t i = 0; i < t.size; ++i) {
      const float s = scale[i % ch];
      const float q = s > 0 ? std::clamp(std::nearbyint(w[i] / s), -127.0f, 127.0f) : 0.0f;
      out[at + 4 * ch + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}
void get_int8(const uint8_t* p, Model& m) {
  for (const TensorRef& t : m.tensors) {
    float* w = m.params.data() + t.offset;
    const size_t ch = int8_channels(m, t);
    if (!ch) {
      if (t.size) std::memcpy(w, p, 4 * t.size);
      p += 4 * t.size;
      continue;
    }
    std::vector<float> scale(ch);
    std::memcpy(scale.data(), p, 4 * ch);
    for (size_t o = 0; o < ch; ++o)
      if (!(scale[o] >= 0.0f) || !std::isfinite(scale[o]))
        bad("int8 weights of '" + t.name + "': the scale of output channel " + std::to_string(o) +
            " is not a finite non-negative number");
    p += 4 * ch;
    for (size_t i = 0; i < t.size; ++i) w[i] = static_cast<float>(static_cast<int8_t>(p[i])) * scale[i % ch];
    p += t.size;
  }
}
}  // namespace

namespace {
// Where layer `layer`'s parameters begin (tensors are in layer order): a gate stores the base's from there on.
size_t params_from_layer(const Model& model, int layer) {
  for (const TensorRef& t : model.tensors)
    if (t.layer >= layer) return t.offset;
  return model.params.size();
}

// The header's "gate" {layer, tau, keys} and its two blobs into model.gate (TeachGate), every size checked.
void read_gate(const nlohmann::json& j, Floats& base, Floats& keys, Model& model) {
  const int layers = static_cast<int>(model.layers.size());
  if (!j.is_object() || !j.contains("layer") || !j["layer"].is_number_integer() || j["layer"].get<int>() < 1 ||
      j["layer"].get<int>() >= layers)
    bad("'gate' needs a 'layer' from 1 to " + std::to_string(layers - 1));
  if (!j.contains("tau") || !j["tau"].is_number() || !(j["tau"].get<double>() > 0 && j["tau"].get<double>() <= 100))
    bad("'gate' needs a 'tau' above 0 and at most 100");
  const int layer = j["layer"].get<int>();
  const size_t from = params_from_layer(model, layer), d = static_cast<size_t>(model.layers[layer].in.size());
  if (base.size() != model.params.size() - from)
    bad("blob 'gate_base' must hold the " + std::to_string(model.params.size() - from) +
        " parameters from layer " + std::to_string(layer) + " on, it holds " + std::to_string(base.size()));
  if (keys.empty() || keys.size() % d)
    bad("blob 'gate_keys' must hold whole keys of " + std::to_string(d) + " values (the gate layer's input)");
  TeachGate& g = model.gate;
  g.layer = layer;
  g.tau = j["tau"].get<float>();
  g.base = model.params;  // the layers before `layer` are the model's own
  std::copy(base.begin(), base.end(), g.base.begin() + static_cast<ptrdiff_t>(from));
  g.keys = std::move(keys);
}
}  // namespace

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::vector<uint8_t> save_model(const Model& model, const nlohmann::json& metadata, const std::vector<Blob>& extra,
                                WeightStorage params) {
  const bool f16 = params == WeightStorage::F16, i8 = params == WeightStorage::I8;
  nlohmann::json header;
  header["spec"] = format_spec(model.spec);
  header["classes"] = model.class_names;
  header["preprocess"] = {{"side", model.preprocess.side},   {"channels", model.preprocess.channels},
                          {"scale", model.preprocess.scale}, {"mean", model.preprocess.mean},
                          {"std", model.preprocess.std}};
  if (model.temperature != 1.0f) header["temperature"] = model.temperature;  // absent: 1 (files before calibration)
  header["metadata"] = metadata.is_null() ? nlohmann::json::object() : metadata;
  nlohmann::json blobs = nlohmann::json::array();
  if (i8)
    blobs.push_back({{"name", "params"}, {"dtype", "i8"}, {"count", model.params.size()}, {"bytes", int8_bytes(model)}});
  else
    blobs.push_back({{"name", "params"}, {"dtype", f16 ? "f16" : "f32"}, {"count", model.params.size()}});
  for (const Blob& b : extra)
    blobs.push_back({{"name", b.name}, {"dtype", b.f16 ? "f16" : "f32"}, {"count", b.data.size()}});
  const TeachGate& gate = model.gate;
  const size_t gate_from = gate.active() ? params_from_layer(model, gate.layer) : 0;
  if (gate.active()) {
    header["gate"] = {{"layer", gate.layer}, {"tau", gate.tau}, {"keys", gate_samples(model)}};
    blobs.push_back({{"name", "gate_base"}, {"dtype", "f32"}, {"count", gate.base.size() - gate_from}});
    blobs.push_back({{"name", "gate_keys"}, {"dtype", "f16"}, {"count", gate.keys.size()}});
  }
  header["blobs"] = blobs;
  const std::string h = header.dump();
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put_u32(out, kModelFormatVersion);
  put_u32(out, static_cast<uint32_t>(h.size()));
  out.insert(out.end(), h.begin(), h.end());
  if (f16)
    put_halves(out, model.params);
  else if (i8)
    put_int8(out, model);
  else
    put_floats(out, model.params);
  for (const Blob& b : extra) b.f16 ? put_halves(out, b.data) : put_floats(out, b.data);
  if (gate.active()) {
    put_floats(out, Floats(gate.base.begin() + static_cast<ptrdiff_t>(gate_from), gate.base.end()));
    put_halves(out, gate.keys);
  }
  put_u32(out, crc32(out.data(), out.size()));
  return out;
}

Model load_model(const uint8_t* data, size_t size, nlohmann::json* metadata, std::vector<Blob>* extra) {
  Model model;
  load_model(data, size, model, metadata, extra);
  return model;
}

void load_model(const uint8_t* data, size_t size, Model& into, nlohmann::json* metadata, std::vector<Blob>* extra) {
  if (size < 20) bad("truncated: " + std::to_string(size) + " bytes is shorter than the 20-byte minimum");
  if (std::memcmp(data, kMagic, 8) != 0) bad("not a ferkit model (wrong magic; expected \"FERKITMD\")");
  const uint32_t version = get_u32(data + 8);
  if (version == 0 || version > kModelFormatVersion)
    bad("format version " + std::to_string(version) + " is not supported (this build reads version 1" +
        std::string(version > kModelFormatVersion ? "; the file is newer: update ferkit)" : ")"));
  const uint32_t hlen = get_u32(data + 12);
  if (hlen > kMaxHeaderBytes) bad("header length " + std::to_string(hlen) + " exceeds the 16 MiB limit");
  if (16ull + hlen + 4 > size)
    bad("truncated: header claims " + std::to_string(hlen) + " bytes but the file has " + std::to_string(size));
  const uint32_t stored_crc = get_u32(data + size - 4);
  nlohmann::json header = nlohmann::json::parse(data + 16, data + 16 + hlen, nullptr, false);
  if (header.is_discarded() || !header.is_object()) bad("header is not a JSON object");
  // Blob table: check every count before touching data.
  const auto& blobs = header.find("blobs");
  if (blobs == header.end() || !blobs->is_array() || blobs->empty() || blobs->size() > 64)
    bad("header field 'blobs' must be a list of 1..64 entries");
  uint64_t total_bytes = 0, params_i8_bytes = 0;
  bool params_f16 = false, params_i8 = false;
  for (const auto& b : *blobs) {
    if (!b.is_object() || !b.contains("name") || !b["name"].is_string() || !b.contains("count") ||
        !b["count"].is_number_unsigned())
      bad("each blob needs a 'name' and an unsigned 'count'");
    const std::string name = b["name"].get<std::string>();
    const auto dtype = b.find("dtype");
    const bool f16 = dtype != b.end() && *dtype == "f16", i8 = dtype != b.end() && *dtype == "i8";
    if (dtype != b.end() && !f16 && !i8 && *dtype != "f32")
      bad("blob '" + name + "' has unsupported dtype (expected f32, f16 or i8)");
    if (i8 && &b != &(*blobs)[0]) bad("blob '" + name + "': only 'params' may be i8");
    if (&b == &(*blobs)[0]) params_f16 = f16, params_i8 = i8;
    const uint64_t count = b["count"].get<uint64_t>();
    if (count > kMaxBlobFloats)
      bad("blob '" + name + "' claims " + std::to_string(count) + " values, over the limit of " +
          std::to_string(kMaxBlobFloats));
    if (i8) {
      if (!b.contains("bytes") || !b["bytes"].is_number_unsigned() || b["bytes"].get<uint64_t>() > 4 * kMaxBlobFloats)
        bad("blob '" + name + "' (i8) needs an unsigned 'bytes' of at most " + std::to_string(4 * kMaxBlobFloats));
      params_i8_bytes = b["bytes"].get<uint64_t>();
      total_bytes += params_i8_bytes;
    } else {
      total_bytes += count * (f16 ? 2 : 4);
    }
  }
  const uint64_t expected = 16ull + hlen + total_bytes + 4;
  if (expected != size)
    bad(std::string(expected > size ? "truncated" : "trailing bytes") + ": the header describes " +
        std::to_string(expected) + " bytes, the file has " + std::to_string(size));
  if (crc32(data, size - 4) != stored_crc) bad("checksum mismatch: the file is corrupt");
  if ((*blobs)[0]["name"] != "params") bad("the first blob must be 'params'");
  if (!header.contains("spec") || !header["spec"].is_string()) bad("header has no architecture 'spec'");
  Model model;
  try {
    model = Model(parse_spec(header["spec"].get<std::string>()), false);  // plan only: no allocation yet
  } catch (const std::exception& e) {
    bad(std::string("bad architecture: ") + e.what());
  }
  const uint64_t nparams = (*blobs)[0]["count"].get<uint64_t>();
  if (nparams != model.planned_params())
    bad("architecture/weights mismatch: the architecture has " + std::to_string(model.planned_params()) +
        " parameters, the file holds " + std::to_string(nparams));
  if (params_i8 && params_i8_bytes != int8_bytes(model))
    bad("architecture/weights mismatch: the architecture's int8 weights take " + std::to_string(int8_bytes(model)) +
        " bytes, the file holds " + std::to_string(params_i8_bytes));
  model.params.swap(into.params);  // allocate() keeps this buffer when it is large enough
  model.allocate(false);           // the file's weights replace every parameter
  const uint8_t* p = data + 16 + hlen;
  if (params_i8) {
    get_int8(p, model);
  } else if (params_f16) {
    get_halves(p, nparams, model.params.data());
  } else if (nparams) {
    std::memcpy(model.params.data(), p, nparams * 4);
  }
  for (float f : model.params)
    if (!std::isfinite(f)) bad("weights contain NaN or infinity");
  p += params_i8 ? params_i8_bytes : nparams * (params_f16 ? 2 : 4);
  if (header.contains("classes")) {
    const auto& cls = header["classes"];
    if (!cls.is_array() || cls.size() != static_cast<size_t>(model.num_classes()))
      bad("'classes' must list " + std::to_string(model.num_classes()) + " names");
    for (size_t i = 0; i < cls.size(); ++i) {
      if (!cls[i].is_string()) bad("class names must be strings");
      model.class_names[i] = cls[i].get<std::string>();
    }
  }
  if (header.contains("preprocess")) {
    const auto& pp = header["preprocess"];
    if (!pp.is_object()) bad("'preprocess' must be an object");
    try {
      model.preprocess.side = pp.value("side", 48);
      model.preprocess.channels = pp.value("channels", 1);
      model.preprocess.scale = pp.value("scale", 1.0f / 255.0f);
      model.preprocess.mean = pp.value("mean", 0.0f);
      model.preprocess.std = pp.value("std", 1.0f);
    } catch (const std::exception& e) {
      bad(std::string("bad 'preprocess': ") + e.what());
    }
    if (!(model.preprocess.std > 0.0f) || !std::isfinite(model.preprocess.scale) || !std::isfinite(model.preprocess.mean))
      bad("bad 'preprocess' values");
  }
  if (header.contains("temperature")) {
    const auto& t = header["temperature"];
    if (!t.is_number() || !(t.get<double>() >= 0.01 && t.get<double>() <= 100.0))
      bad("'temperature' must be a number from 0.01 to 100, got " + t.dump());
    model.temperature = t.get<float>();
  }
  if (metadata) *metadata = header.contains("metadata") ? header["metadata"] : nlohmann::json::object();
  if (extra) extra->clear();
  Floats gate_base, gate_keys;
  for (size_t i = 1; i < blobs->size(); ++i) {
    const uint64_t count = (*blobs)[i]["count"].get<uint64_t>();
    const bool f16 = (*blobs)[i].value("dtype", "f32") == "f16";
    const std::string name = (*blobs)[i]["name"].get<std::string>();
    const bool gate = name == "gate_base" || name == "gate_keys";
    if (!extra && !gate) {  // not asked for (a checkpoint's optimizer state, a replay bank): not decoded
      p += count * (f16 ? 2 : 4);
      continue;
    }
    Blob b{name, Floats(count), f16};
    if (f16) {
      get_halves(p, count, b.data.data());
    } else if (count) {
      std::memcpy(b.data.data(), p, count * 4);
    }
    p += count * (f16 ? 2 : 4);
    for (float f : b.data)
      if (!std::isfinite(f)) bad("blob '" + b.name + "' contains NaN or infinity");
    if (name == "gate_base") gate_base = std::move(b.data);
    else if (name == "gate_keys") gate_keys = std::move(b.data);
    else extra->push_back(std::move(b));
  }
  if (header.contains("gate")) read_gate(header["gate"], gate_base, gate_keys, model);
  else if (!gate_base.empty() || !gate_keys.empty()) bad("blobs 'gate_base'/'gate_keys' without a header 'gate'");
  into = std::move(model);
}

}  // namespace ferkit
