#include "onnx.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <stdexcept>
#include <type_traits>

#include "data.h"
#include "ferkit.h"

#ifdef FERKIT_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace ferkit {

const char* const kOnnxOperators =
    "Conv (group 1 or depthwise), BatchNormalization, Relu, MaxPool, GlobalAveragePool, Flatten, Reshape, Gemm, "
    "MatMul, Add, Pad, Concat (a zero channel pad), Dropout, Identity, Softmax; Mul/Add/Sub/Div by a scalar at the "
    "start; Mul/Div of the logits by a scalar just before the Softmax (a temperature); Transpose to NCHW of the input; "
    "in a graph with several outputs, each a head: a Conv of the main chain, then Transpose to NHWC and Reshape";

#ifndef FERKIT_HAVE_ONNX

namespace {
const char* const kNoOnnx =
    "this build has no ONNX support: install libonnx-dev and libprotobuf-dev (scripts/setup.sh does) and build again";
}
std::vector<uint8_t> export_onnx(const Model&, const nlohmann::json&) { throw std::runtime_error(kNoOnnx); }
OnnxImport import_onnx(const uint8_t*, size_t, const OnnxImportOptions&, const std::string& what) {
  throw std::runtime_error(what + ": " + kNoOnnx);
}

#else

namespace {

constexpr int kOpset = 13;
constexpr float kBnEps = 1e-5f;  // what ferkit's batch norm adds to the variance (nn.h's BatchNormParams)

// ------------------------------------------------------------------------------------------------ export

struct Graph {
  onnx::GraphProto* g;
  int next = 0;
  std::string fresh(const std::string& base) { return base + "_" + std::to_string(next++); }
  void floats(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  }
  void ints(const std::string& name, const std::vector<int64_t>& v) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out) {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (const auto& s : in) n->add_input(s);
    n->add_output(out);
    return n;
  }
};

void attr(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void attr(onnx::NodeProto* n, const char* name, int64_t v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void attr(onnx::NodeProto* n, const char* name, float v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("N");
  for (int64_t d : dims) s->add_dim()->set_dim_value(d);
}

// Where ONNX's Flatten of a C x H x W map puts each value of ferkit's (H x W x C) flatten: order[ferkit index] =
// ONNX index. Empty when the two orders are the same (one channel, or a 1 x 1 map).
std::vector<int> chw_order(const Shape& s) {
  std::vector<int> order;
  if (s.h * s.w > 1 && s.c > 1) {
    order.resize(static_cast<size_t>(s.size()));
    for (int y = 0; y < s.h; ++y)
      for (int x = 0; x < s.w; ++x)
        for (int c = 0; c < s.c; ++c) order[static_cast<size_t>((y * s.w + x) * s.c + c)] = (c * s.h + y) * s.w + x;
  }
  return order;
}

// A value of the graph as export builds it: its ONNX name, rank (4: N C H W, 2: N F) and, for a flat value made by
// flattening a C x H x W map, where each ferkit (HWC) index sits in ONNX's CHW order.
struct Value {
  std::string name;
  int rank = 4;
  std::vector<int> perm;  // perm[ferkit index] = ONNX index; empty: the same order
};

}  // namespace

std::vector<uint8_t> export_onnx(const Model& model, const nlohmann::json& metadata) {
  if (model.params.size() != model.planned_params()) throw std::runtime_error("export_onnx: the model has no weights");
  if (model.gate.active())
    throw std::runtime_error("export_onnx: the model carries a teach gate (docs/teaching.md), which an ONNX graph here "
                             "does not express: export it with the gate dropped (fer-train export --no-gate), where "
                             "the taught change applies to every face");
  if (model.spec.has_heads())
    throw std::runtime_error("export_onnx: a model with heads (a detector) is not exported: ONNX export writes a "
                             "classifier's one 'probabilities' output");
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.set_producer_name("ferkit");
  m.set_producer_version(version());
  m.set_model_version(1);
  onnx::OperatorSetIdProto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(kOpset);
  Graph G{m.mutable_graph()};
  G.g->set_name("ferkit");
  const Shape in = model.spec.input;
  value_info(G.g->add_input(), "pixels", {in.c, in.h, in.w});

  // Preprocessing as load_input computes it: x = pixel * a + b.
  const Preprocess& pp = model.preprocess;
  G.floats("preprocess.a", {}, {pp.scale / pp.std});
  G.floats("preprocess.b", {}, {-pp.mean / pp.std});
  G.node("Mul", {"pixels", "preprocess.a"}, "pixels_scaled");
  G.node("Add", {"pixels_scaled", "preprocess.b"}, "input");

  const float* P = model.params.data();
  auto vec = [&](size_t off, size_t n) { return std::vector<float>(P + off, P + off + n); };
  auto permuted = [](const std::vector<float>& v, const std::vector<int>& perm) {
    if (perm.empty()) return v;
    std::vector<float> out(v.size());
    for (size_t j = 0; j < v.size(); ++j) out[static_cast<size_t>(perm[j])] = v[j];
    return out;
  };
  Value x{"input", 4, {}};
  std::vector<Value> saved_at(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerPlan& p = model.layers[i];
    const std::string name = "l" + std::to_string(i) + "." + layer_name(p.spec.kind);
    const ConvGeom& g = p.geom;
    auto pads = [&] {
      const int64_t bottom = std::max((g.ho - 1) * g.stride + g.k - g.hi - g.pad_top, 0);
      const int64_t right = std::max((g.wo - 1) * g.stride + g.k - g.wi - g.pad_left, 0);
      return std::vector<int64_t>{g.pad_top, g.pad_left, bottom, right};
    };
    auto throw_flat = [&] {
      throw std::runtime_error("export_onnx: layer " + std::to_string(i + 1) + " (" + layer_name(p.spec.kind) +
                               ") runs on a flattened value, which this exporter does not write");
    };
    auto flatten = [&] {
      if (x.rank == 2) return;
      const std::string out = G.fresh(name + ".flat");
      attr(G.node("Flatten", {x.name}, out), "axis", int64_t{1});
      x = {out, 2, chw_order(p.in)};
    };
    switch (p.spec.kind) {
      case LayerKind::Conv:
      case LayerKind::DepthwiseConv: {
        if (x.rank == 2) throw_flat();
        const bool dw = p.spec.kind == LayerKind::DepthwiseConv;
        const int k = g.k, cin = g.cin, cout = dw ? g.cin : g.cout;
        std::vector<float> w(static_cast<size_t>(k) * k * cout * (dw ? 1 : cin));
        for (int co = 0; co < cout; ++co)
          for (int ci = 0; ci < (dw ? 1 : cin); ++ci)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx)
                w[((static_cast<size_t>(co) * (dw ? 1 : cin) + ci) * k + ky) * k + kx] =
                    dw ? P[p.w + static_cast<size_t>(ky * k + kx) * cin + co]
                       : P[p.w + (static_cast<size_t>(ky * k + kx) * cin + ci) * cout + co];
        G.floats(name + ".w", {cout, dw ? 1 : cin, k, k}, w);
        G.floats(name + ".b", {cout}, vec(p.b, static_cast<size_t>(cout)));
        onnx::NodeProto* n = G.node("Conv", {x.name, name + ".w", name + ".b"}, name);
        attr(n, "kernel_shape", {k, k});
        attr(n, "strides", {g.stride, g.stride});
        attr(n, "pads", pads());
        if (dw) attr(n, "group", int64_t{cin});
        x = {name, 4, {}};
        break;
      }
      case LayerKind::MaxPool: {
        if (x.rank == 2) throw_flat();
        onnx::NodeProto* n = G.node("MaxPool", {x.name}, name);
        attr(n, "kernel_shape", {g.k, g.k});
        attr(n, "strides", {g.stride, g.stride});
        x = {name, 4, {}};
        break;
      }
      case LayerKind::ReLU:
        G.node("Relu", {x.name}, name);
        x.name = name;
        break;
      case LayerKind::Dropout: break;  // the identity at inference
      case LayerKind::BatchNorm: {
        const size_t c = static_cast<size_t>(p.in.c);
        G.floats(name + ".gamma", {static_cast<int64_t>(c)}, permuted(vec(p.w, c), x.perm));
        G.floats(name + ".beta", {static_cast<int64_t>(c)}, permuted(vec(p.b, c), x.perm));
        G.floats(name + ".mean", {static_cast<int64_t>(c)}, permuted(vec(p.mean, c), x.perm));
        G.floats(name + ".var", {static_cast<int64_t>(c)}, permuted(vec(p.var, c), x.perm));
        onnx::NodeProto* n = G.node("BatchNormalization",
                                    {x.name, name + ".gamma", name + ".beta", name + ".mean", name + ".var"}, name);
        attr(n, "epsilon", kBnEps);
        x.name = name;
        break;
      }
      case LayerKind::Flatten: flatten(); break;
      case LayerKind::GlobalAvgPool:
        if (x.rank == 4) {
          G.node("GlobalAveragePool", {x.name}, name);
          x = {name, 4, {}};
        }
        break;
      case LayerKind::Dense: {
        flatten();  // a 1 x 1 map: the same order
        const size_t nin = static_cast<size_t>(p.in.size()), nout = static_cast<size_t>(p.out.c);
        std::vector<float> w(nin * nout);
        for (size_t r = 0; r < nin; ++r)
          std::memcpy(&w[(x.perm.empty() ? r : static_cast<size_t>(x.perm[r])) * nout], P + p.w + r * nout,
                      nout * sizeof(float));
        G.floats(name + ".w", {static_cast<int64_t>(nin), static_cast<int64_t>(nout)}, w);
        G.floats(name + ".b", {static_cast<int64_t>(nout)}, vec(p.b, nout));
        G.node("Gemm", {x.name, name + ".w", name + ".b"}, name);
        x = {name, 2, {}};
        break;
      }
      case LayerKind::Save: saved_at[i] = x; break;
      case LayerKind::Add: {
        Value s = saved_at[static_cast<size_t>(p.tap)];
        const AddGeom a = add_geom(model, p);
        if (s.rank != x.rank || s.perm != x.perm || (x.rank == 2 && !x.perm.empty() && a.cs != a.c))
          throw std::runtime_error("export_onnx: layer " + std::to_string(i + 1) +
                                   " (add) joins values of different layouts");
        if (a.pooled()) {
          const std::string out = G.fresh(name + ".pool");
          onnx::NodeProto* n = G.node("MaxPool", {s.name}, out);
          attr(n, "kernel_shape", {2, 2});
          attr(n, "strides", {2, 2});
          attr(n, "ceil_mode", int64_t{1});
          s.name = out;
        }
        if (a.cs < a.c) {
          const std::string out = G.fresh(name + ".pad");
          G.ints(out + ".pads", x.rank == 4 ? std::vector<int64_t>{0, 0, 0, 0, 0, a.c - a.cs, 0, 0}
                                            : std::vector<int64_t>{0, 0, 0, a.c - a.cs});
          G.node("Pad", {s.name, out + ".pads"}, out);
          s.name = out;
        }
        G.node("Add", {x.name, s.name}, name);
        x.name = name;
        break;
      }
      case LayerKind::Head: break;  // refused above
    }
  }
  if (x.rank == 4) {
    attr(G.node("Flatten", {x.name}, "logits"), "axis", int64_t{1});
    x.name = "logits";
  }
  if (model.temperature != 1.0f) {  // calibration: softmax(logits / T)
    G.floats("temperature.inverse", {}, {1.0f / model.temperature});
    G.node("Mul", {x.name, "temperature.inverse"}, "logits_calibrated");
    x.name = "logits_calibrated";
  }
  attr(G.node("Softmax", {x.name}, "probabilities"), "axis", int64_t{1});
  value_info(G.g->add_output(), "probabilities", {model.num_classes()});

  auto prop = [&](const char* key, const std::string& value) {
    onnx::StringStringEntryProto* e = m.add_metadata_props();
    e->set_key(key);
    e->set_value(value);
  };
  prop("ferkit.classes", nlohmann::json(model.class_names).dump());
  prop("ferkit.preprocess", nlohmann::json{{"side", pp.side}, {"channels", pp.channels}, {"scale", pp.scale},
                                           {"mean", pp.mean}, {"std", pp.std}}.dump());
  prop("ferkit.spec", format_spec(model.spec));
  if (model.temperature != 1.0f) prop("ferkit.temperature", nlohmann::json(model.temperature).dump());
  if (!metadata.is_null()) prop("ferkit.metadata", metadata.dump());
  G.g->set_doc_string("ferkit model: input 'pixels' is N x " + std::to_string(in.c) + " x " + std::to_string(in.h) +
                      " x " + std::to_string(in.w) + " grey values 0-255 (the graph scales them); output "
                      "'probabilities' is N x " + std::to_string(model.num_classes()) +
                      " in the order of metadata ferkit.classes");
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::runtime_error("export_onnx: protobuf could not serialize the graph");
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

// ------------------------------------------------------------------------------------------------ import

namespace {

constexpr int64_t kMaxInputSide = 4096;

struct Const {
  std::vector<int64_t> dims;
  std::vector<float> f;      // FLOAT tensors
  std::vector<int64_t> i;    // INT64 tensors
  // Zeros made by ConstantOfShape (or moved from them by a fold): what a shortcut's Concat pads with; not accepted as
  // a layer's weights.
  bool zeros = false;
  size_t count = 1;
};

// A value on the way through the graph: on the main chain (the one sequence of ferkit layers), or a shortcut
// (the saved activation of the main value at `pos`, pooled and channel-padded on its way to an Add).
struct Val {
  bool shortcut = false;
  size_t pos = 0;        // the number of ferkit layers before this value (main) or before the saved value
  Shape shape;           // (h, w, c); a flat value is 1 x 1 x F
  int rank = 4;
  // A flat value from a C x H x W map: (*perm)[ferkit index] = ONNX index; null: the same order. Shared: every layer
  // after the flatten carries it.
  std::shared_ptr<const std::vector<int>> perm;
  bool stale = false;  // replaced by a folded step (preprocessing, a bias): not usable as a shortcut
  bool pooled = false;
  int pad_channels = 0;
  int64_t pad[4] = {0, 0, 0, 0};  // a spatial Pad waiting for its convolution (top, left, bottom, right)
  // A head's output on its way to one of the graph's outputs (index into Importer::heads_; -1: not a head's), and
  // whether it was transposed to N x H x W x C, ferkit's order.
  int head = -1;
  bool nhwc = false;
  bool padded() const { return pad[0] || pad[1] || pad[2] || pad[3]; }
};

struct Built {
  LayerSpec spec;
  std::vector<float> w, b, mean, var;
};

// Whether two models compute the same with the same parameter array: the same layers, apart from what computes
// nothing at inference (dropout; global pooling or flatten of a 1 x 1 map) and the names of saves.
bool same_network(const Model& a, const Model& b) {
  auto sig = [](const Model& m) {
    std::vector<std::vector<long long>> out;
    std::map<int, long long> save_pos;
    for (size_t i = 0; i < m.layers.size(); ++i) {
      const LayerPlan& p = m.layers[i];
      const LayerKind k = p.spec.kind;
      const bool flat_in = p.in.h == 1 && p.in.w == 1;
      if (k == LayerKind::Dropout || ((k == LayerKind::GlobalAvgPool || k == LayerKind::Flatten) && flat_in)) continue;
      if (k == LayerKind::Save) {
        save_pos[static_cast<int>(i)] = static_cast<long long>(out.size());
        continue;
      }
      out.push_back({static_cast<long long>(k), p.spec.units, p.spec.kernel, p.spec.stride, p.spec.same, p.out.h,
                     p.out.w, p.out.c, k == LayerKind::Add ? save_pos[p.tap] : -1});
    }
    return out;
  };
  if (a.tensors.size() != b.tensors.size() || a.planned_params() != b.planned_params()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i)
    if (a.tensors[i].offset != b.tensors[i].offset || a.tensors[i].size != b.tensors[i].size) return false;
  return a.spec.input == b.spec.input && sig(a) == sig(b);
}

class Importer {
 public:
  Importer(const onnx::ModelProto& m, const OnnxImportOptions& opt, const std::string& what)
      : m_(m), g_(m.graph()), opt_(opt), what_(what) {}
  OnnxImport run();

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(what_ + ": " + (node_ ? "node " + std::to_string(node_index_) + " ('" + node_->name() +
                                                         "', " + node_->op_type() + "): "
                                                   : std::string()) + why);
  }
  Const read_tensor(const onnx::TensorProto& t) const;
  const Const* constant(const std::string& name) const {
    auto it = consts_.find(name);
    return it == consts_.end() ? nullptr : &it->second;
  }
  Val& value(const std::string& name) {
    auto it = vals_.find(name);
    if (it == vals_.end()) {
      if (constant(name)) fail("input '" + name + "' is a constant where a layer's input was expected");
      fail("input '" + name + "' is not produced by any earlier node (dynamic shapes and other inputs are not "
           "supported)");
    }
    return it->second;
  }
  // The node's input i as the main chain's current value (what a layer reads).
  Val main_input(int i) {
    if (node_->input_size() <= i) fail("missing input " + std::to_string(i));
    const std::string& name = node_->input(i);
    Val v = value(name);
    if (v.shortcut || name != cur_)
      fail("reads '" + name + "', which is not the output of the layer before it: a graph that branches other "
           "than into a residual shortcut (MaxPool 2x2, a zero channel Pad or Concat, then Add) is not supported");
    if (v.padded() && node_->op_type() != "Conv") fail("a spatial Pad that no convolution follows is not supported");
    return v;
  }
  const Const& const_input(int i, const char* what) {
    if (node_->input_size() <= i || node_->input(i).empty()) fail(std::string("missing input ") + what);
    const Const* c = constant(node_->input(i));
    if (!c) fail(std::string(what) + " ('" + node_->input(i) + "') must be a constant (an initializer)");
    if (c->zeros || (c->f.empty() && c->count)) fail(std::string(what) + " must be float32 values");
    if (c->count == 0) fail(std::string(what) + " ('" + node_->input(i) + "') is empty");
    return *c;
  }
  const onnx::AttributeProto* attribute(const char* name) const {
    for (const auto& a : node_->attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  int64_t int_attr(const char* name, int64_t dflt) const {
    const auto* a = attribute(name);
    return a ? a->i() : dflt;
  }
  float float_attr(const char* name, float dflt) const {
    const auto* a = attribute(name);
    return a ? a->f() : dflt;
  }
  std::vector<int64_t> ints_attr(const char* name) const {
    const auto* a = attribute(name);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
  }
  std::string string_attr(const char* name) const {
    const auto* a = attribute(name);
    return a ? a->s() : std::string();
  }
  // Sets the node's first output as the main chain's new current value.
  void advance(Val v) {
    v.pad[0] = v.pad[1] = v.pad[2] = v.pad[3] = 0;
    v.shortcut = false;
    v.pooled = false;
    v.pad_channels = 0;
    cur_ = node_->output(0);
    vals_[cur_] = v;
  }
  Val emit(Built b, Shape out, int rank) {
    built_.push_back(std::move(b));
    Val v;
    v.pos = built_.size();
    v.shape = out;
    v.rank = rank;
    return v;
  }
  bool shortcut_op(int index) const;
  bool head_op(int index) const;
  void head_step();
  std::vector<int64_t> zero_pads();
  void check_unpadded_pool() const;
  bool fold_constant();
  // Stores a constant that a node made, within a budget for all of them: a small file of many Identity or
  // ConstantOfShape nodes must not ask for gigabytes.
  void keep_constant(const std::string& name, Const c) {
    folded_ += c.f.size() + c.i.size();
    if (folded_ > kMaxModelParams) fail("makes more than " + std::to_string(kMaxModelParams) + " constant values");
    consts_[name] = std::move(c);
  }
  size_t folded_ = 0;
  void preprocess_op(const std::string& op, float c);
  void conv();
  void batchnorm();
  void maxpool();
  void flatten();
  void dense(bool gemm);
  void add();
  void shortcut(const std::string& op);

  const onnx::ModelProto& m_;
  const onnx::GraphProto& g_;
  OnnxImportOptions opt_;
  std::string what_;
  const onnx::NodeProto* node_ = nullptr;
  int node_index_ = 0;
  std::map<std::string, Const> consts_;
  std::map<std::string, Val> vals_;
  std::map<std::string, std::vector<int>> consumers_;
  std::string cur_, input_name_, output_;
  std::vector<Built> built_;
  std::vector<Built> heads_;         // a graph with several outputs: its heads, in graph order
  std::set<std::string> outputs_;
  std::map<size_t, std::string> saves_;  // position -> save name
  double pre_a_ = 1, pre_b_ = 0;       // the preprocessing so far: x = pixel * a + b
  bool softmax_ = false;
  double temperature_ = 1;  // a scalar Mul or Div of the logits just before the Softmax (ferkit's calibration)
  bool scaled_logits_ = false;
};

Const Importer::read_tensor(const onnx::TensorProto& t) const {
  Const c;
  if (t.has_data_location() && t.data_location() == onnx::TensorProto::EXTERNAL)
    fail("tensor '" + t.name() + "' keeps its data in an external file: save the model with its weights inside");
  if (t.dims_size() > 8)
    fail("tensor '" + t.name() + "' has " + std::to_string(t.dims_size()) + " dimensions (at most 8)");
  for (int64_t d : t.dims()) {
    if (d < 0 || d > (int64_t{1} << 31)) fail("tensor '" + t.name() + "' has a dimension of " + std::to_string(d));
    c.dims.push_back(d);
    if (d && c.count > kMaxModelParams / static_cast<size_t>(d))
      fail("tensor '" + t.name() + "' has more than " + std::to_string(kMaxModelParams) + " values");
    c.count *= static_cast<size_t>(d);
  }
  // The values: little-endian raw_data, or the typed repeated field; as many as the shape has.
  auto values = [&](auto& out, const auto& field, const char* what) {
    using T = typename std::decay_t<decltype(out)>::value_type;
    const size_t have = t.raw_data().empty() ? static_cast<size_t>(field.size()) : t.raw_data().size() / sizeof(T);
    if (have != c.count || (!t.raw_data().empty() && t.raw_data().size() % sizeof(T)))
      fail("tensor '" + t.name() + "' holds " + std::to_string(have) + " " + what + ", its shape needs " +
           std::to_string(c.count));
    out.resize(c.count);
    if (t.raw_data().empty())
      std::copy(field.begin(), field.end(), out.begin());
    else
      std::memcpy(out.data(), t.raw_data().data(), c.count * sizeof(T));
  };
  if (t.data_type() == onnx::TensorProto::FLOAT) {
    values(c.f, t.float_data(), "floats");
    for (float v : c.f)
      if (!std::isfinite(v)) fail("tensor '" + t.name() + "' holds a value that is not finite");
  } else if (t.data_type() == onnx::TensorProto::INT64) {
    values(c.i, t.int64_data(), "integers");
  } else {
    fail("tensor '" + t.name() + "' has element type " + std::to_string(t.data_type()) +
         " (float32 weights and int64 shapes are read)");
  }
  return c;
}

// Whether node `index` is a step of a residual shortcut: a 2x2 stride-2 MaxPool, a Pad or a Concat whose input is
// read by another node too (the branch) or is itself a shortcut step, and whose output reaches an Add through
// shortcut steps only.
bool Importer::shortcut_op(int index) const {
  auto is_step = [&](const onnx::NodeProto& n) {
    return n.op_type() == "MaxPool" || n.op_type() == "Pad" || n.op_type() == "Concat";
  };
  const onnx::NodeProto& n = g_.node(index);
  if (!is_step(n) || n.input_size() < 1) return false;
  // The value it reads (Concat: its first input that is not a constant).
  std::string in;
  for (const auto& s : n.input())
    if (!constant(s)) {
      in = s;
      break;
    }
  auto cons = consumers_.find(in);
  bool branch = cons != consumers_.end() && cons->second.size() >= 2;
  if (!branch) {
    auto v = vals_.find(in);
    branch = v != vals_.end() && v->second.shortcut;
  }
  if (!branch) return false;
  // Follow the single consumers to an Add.
  std::string out = n.output_size() ? n.output(0) : "";
  for (int hop = 0; hop < 4; ++hop) {
    auto c = consumers_.find(out);
    if (c == consumers_.end() || c->second.size() != 1) return false;
    const onnx::NodeProto& next = g_.node(c->second[0]);
    if (next.op_type() == "Add") return true;
    if (!is_step(next) || next.output_size() < 1) return false;
    out = next.output(0);
  }
  return false;
}

// Whether node `index`, a Conv, is a head of a graph with several outputs (a detector's score and box maps): its
// output reaches one of the graph's outputs through a Transpose and a Reshape or Flatten, or directly.
bool Importer::head_op(int index) const {
  if (outputs_.size() < 2 || g_.node(index).output_size() < 1) return false;
  std::string v = g_.node(index).output(0);
  for (int step = 0; step < 3 && !outputs_.count(v); ++step) {
    auto it = consumers_.find(v);
    if (it == consumers_.end() || it->second.size() != 1) return false;
    const onnx::NodeProto& n = g_.node(it->second[0]);
    if ((n.op_type() != "Transpose" && n.op_type() != "Reshape" && n.op_type() != "Flatten") || n.output_size() < 1)
      return false;
    v = n.output(0);
  }
  return outputs_.count(v) > 0;
}

// A Transpose, Reshape or Flatten of a head's output: only what keeps each image's values in ferkit's order.
void Importer::head_step() {
  Val v = value(node_->input(0));
  const std::string& op = node_->op_type();
  if (op == "Transpose") {
    if (v.nhwc || ints_attr("perm") != std::vector<int64_t>{0, 2, 3, 1})
      fail("only a Transpose of a head's N x C x H x W output to N x H x W x C is supported");
    v.nhwc = true;
  } else if (op == "Flatten") {
    if (int_attr("axis", 1) != 1) fail("only axis 1 is supported");
  } else {  // Reshape to (N, ...): every image's values in one run
    const Const* shape = node_->input_size() > 1 ? constant(node_->input(1)) : nullptr;
    int64_t known = 1, unknown = 0;
    bool dims_ok = shape != nullptr;
    if (shape)
      for (size_t j = 1; j < shape->i.size() && dims_ok; ++j) {
        const int64_t d = shape->i[j];
        if (d == -1) ++unknown;
        else if (d < 1 || d > kMaxActivation || known > kMaxActivation / d) dims_ok = false;  // (no overflow)
        else known *= d;
      }
    if (!dims_ok || shape->i.empty() || !(shape->i[0] == 0 || shape->i[0] == 1 || shape->i[0] == -1) || unknown > 1 ||
        (unknown ? v.shape.size() % known : known != v.shape.size()))
      fail("only a Reshape of a head's output to (N, ...) with " + std::to_string(v.shape.size()) +
           " values an image, given as a constant shape, is supported");
  }
  vals_[node_->output(0)] = v;
}

// Evaluates a node whose inputs are all constants (the shape arithmetic exporters leave in graphs: PyTorch's F.pad
// computes its pads with ConstantOfShape, Concat, Reshape, Slice, Transpose and Cast). Returns false for a node it
// does not evaluate.
bool Importer::fold_constant() {
  static const char* const kFoldable[] = {"ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose",
                                          "Cast", "Unsqueeze", "Squeeze"};
  const std::string& op = node_->op_type();
  if (std::none_of(std::begin(kFoldable), std::end(kFoldable), [&](const char* f) { return op == f; })) return false;
  std::vector<const Const*> in;
  for (const auto& name : node_->input()) {
    if (name.empty()) {
      in.push_back(nullptr);
      continue;
    }
    const Const* c = constant(name);
    if (!c) return false;
    in.push_back(c);
  }
  constexpr size_t kMaxFolded = size_t{1} << 20;
  auto ints_of = [&](size_t i, const char* what) -> std::vector<int64_t> {
    if (i >= in.size() || !in[i]) return {};
    if (in[i]->i.size() != in[i]->count) fail(std::string(what) + " must be int64 values");
    return in[i]->i;
  };
  auto count_of = [&](const std::vector<int64_t>& dims) {
    size_t n = 1;
    for (int64_t d : dims) {
      if (d < 0 || (d && n > kMaxFolded / static_cast<size_t>(d))) fail("makes a constant of over 2^20 values");
      n *= static_cast<size_t>(d);
    }
    return n;
  };
  // Elements of either type, moved by index: out[j] = src[index[j]].
  auto gather = [&](const Const& src, const std::vector<size_t>& index, std::vector<int64_t> dims) {
    Const c;
    c.dims = std::move(dims);
    c.count = index.size();
    for (size_t j : index) {
      if (!src.i.empty()) c.i.push_back(src.i[j]);
      if (!src.f.empty()) c.f.push_back(src.f[j]);
    }
    c.zeros = src.zeros;
    return c;
  };
  auto strides_of = [](const std::vector<int64_t>& dims) {
    std::vector<size_t> st(dims.size(), 1);
    for (size_t k = dims.size(); k-- > 1;) st[k - 1] = st[k] * static_cast<size_t>(dims[k]);
    return st;
  };
  const Const& x = *in[0];
  Const out;
  if (op == "ConstantOfShape") {
    const std::vector<int64_t> dims = ints_of(0, "the shape");
    const size_t n = count_of(dims);
    out.dims = dims;
    out.count = n;
    const auto* v = attribute("value");
    const Const value = v && v->has_t() ? read_tensor(v->t()) : Const{{}, {0.0f}, {}, false, 1};
    if (value.count != 1) fail("expects a one-value 'value'");
    if (!value.i.empty())
      out.i.assign(n, value.i[0]);
    else
      out.f.assign(n, value.f[0]), out.zeros = value.f[0] == 0.0f;
  } else if (op == "Cast") {
    const int64_t to = int_attr("to", 0);
    out = x;
    if (to == onnx::TensorProto::INT64 && !x.f.empty()) {
      out.f.clear();
      for (float f : x.f) {
        if (!(std::fabs(f) < 9.2e18f)) fail("casts a value outside int64's range");
        out.i.push_back(static_cast<int64_t>(f));
      }
    } else if (to == onnx::TensorProto::FLOAT && !x.i.empty()) {
      out.i.clear();
      for (int64_t i : x.i) out.f.push_back(static_cast<float>(i));
    } else if (to != onnx::TensorProto::INT64 && to != onnx::TensorProto::FLOAT) {
      fail("casts to element type " + std::to_string(to) + " (float32 and int64 are read)");
    }
  } else if (op == "Reshape" || op == "Unsqueeze" || op == "Squeeze") {
    std::vector<int64_t> dims;
    if (op == "Reshape") {
      dims = ints_of(1, "the shape");
      int infer = -1;
      size_t known = 1;
      for (size_t k = 0; k < dims.size(); ++k) {
        if (dims[k] == 0 && k < x.dims.size()) dims[k] = x.dims[k];
        if (dims[k] == -1) {
          if (infer >= 0) fail("has two -1 dimensions");
          infer = static_cast<int>(k);
        } else {
          known *= static_cast<size_t>(std::max<int64_t>(dims[k], 0));
        }
      }
      if (infer >= 0) dims[static_cast<size_t>(infer)] = known ? static_cast<int64_t>(x.count / known) : 0;
    } else {
      std::vector<int64_t> axes = in.size() > 1 ? ints_of(1, "the axes") : ints_attr("axes");
      const int64_t rank =
          static_cast<int64_t>(x.dims.size()) + (op == "Unsqueeze" ? static_cast<int64_t>(axes.size()) : 0);
      for (int64_t& a : axes) a = a < 0 ? a + rank : a;
      if (op == "Unsqueeze") {
        size_t k = 0;
        for (int64_t d = 0; d < rank; ++d)
          dims.push_back(std::count(axes.begin(), axes.end(), d) ? 1 : (k < x.dims.size() ? x.dims[k++] : 1));
      } else {
        for (size_t k = 0; k < x.dims.size(); ++k)
          if (!(axes.empty() ? x.dims[k] == 1 : std::count(axes.begin(), axes.end(), static_cast<int64_t>(k)) > 0))
            dims.push_back(x.dims[k]);
      }
    }
    if (count_of(dims) != x.count) fail("reshapes " + std::to_string(x.count) + " values to another count");
    out = x;
    out.dims = dims;
  } else if (op == "Transpose") {
    std::vector<int64_t> perm = ints_attr("perm");
    const size_t r = x.dims.size();
    if (perm.empty())
      for (size_t k = r; k-- > 0;) perm.push_back(static_cast<int64_t>(k));
    if (perm.size() != r) fail("perm does not match the rank");
    std::vector<int64_t> dims(r);
    for (size_t k = 0; k < r; ++k) {
      if (perm[k] < 0 || perm[k] >= static_cast<int64_t>(r) ||
          std::count(perm.begin(), perm.end(), perm[k]) != 1)
        fail("perm is not a permutation of the axes");
      dims[k] = x.dims[static_cast<size_t>(perm[k])];
    }
    const auto src_st = strides_of(x.dims);
    std::vector<size_t> index(x.count), idx(r, 0);
    for (size_t j = 0; j < x.count; ++j) {
      size_t off = 0;
      for (size_t k = 0; k < r; ++k) off += idx[k] * src_st[static_cast<size_t>(perm[k])];
      index[j] = off;
      for (size_t k = r; k-- > 0;)
        if (++idx[k] < static_cast<size_t>(dims[k])) break; else idx[k] = 0;
    }
    out = gather(x, index, dims);
  } else if (op == "Concat") {
    const int64_t r = static_cast<int64_t>(x.dims.size());
    int64_t axis = int_attr("axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) fail("axis is out of range");
    std::vector<int64_t> dims = x.dims;
    dims[static_cast<size_t>(axis)] = 0;
    for (const Const* c : in) {
      if (!c || c->dims.size() != x.dims.size()) fail("joins constants of different ranks");
      for (size_t k = 0; k < dims.size(); ++k)
        if (k != static_cast<size_t>(axis) && c->dims[k] != x.dims[k]) fail("joins constants of different shapes");
      dims[static_cast<size_t>(axis)] += c->dims[static_cast<size_t>(axis)];
    }
    const size_t n = count_of(dims);
    size_t outer = 1;
    for (int64_t k = 0; k < axis; ++k) outer *= static_cast<size_t>(dims[static_cast<size_t>(k)]);
    out.dims = dims;
    out.count = n;
    const bool ints = std::all_of(in.begin(), in.end(), [](const Const* c) { return c->i.size() == c->count; }) &&
                      !x.i.empty();
    for (size_t o = 0; o < outer; ++o)
      for (const Const* c : in) {
        const size_t block = outer ? c->count / outer : 0;
        for (size_t j = o * block; j < (o + 1) * block; ++j) {
          if (ints)
            out.i.push_back(c->i[j]);
          else if (c->f.size() == c->count)
            out.f.push_back(c->f[j]);
          else
            fail("joins constants of different element types");
        }
      }
    out.zeros = !ints && std::all_of(out.f.begin(), out.f.end(), [](float f) { return f == 0.0f; });
  } else {  // Slice
    const std::vector<int64_t> starts = ints_of(1, "starts"), ends = ints_of(2, "ends");
    std::vector<int64_t> axes = ints_of(3, "axes"), steps = ints_of(4, "steps");
    const int64_t r = static_cast<int64_t>(x.dims.size());
    if (axes.empty())
      for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size())
      fail("starts, ends, axes and steps differ in length");
    std::vector<int64_t> lo(static_cast<size_t>(r), 0), step(static_cast<size_t>(r), 1), dims = x.dims;
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
      if (a < 0 || a >= r || steps[k] == 0 || steps[k] > kMaxInputSide || steps[k] < -kMaxInputSide)
        fail("has an axis out of range, or a step of 0 or over 4096");
      const int64_t d = x.dims[static_cast<size_t>(a)];
      auto clampi = [&](int64_t v, int64_t lo_, int64_t hi) { return std::min(std::max(v < 0 ? v + d : v, lo_), hi); };
      int64_t b, e;
      if (steps[k] > 0) {
        b = clampi(starts[k], 0, d), e = clampi(ends[k], 0, d);
        dims[static_cast<size_t>(a)] = e > b ? (e - b + steps[k] - 1) / steps[k] : 0;
      } else {
        b = clampi(starts[k], 0, d - 1), e = clampi(ends[k], -1, d - 1);
        dims[static_cast<size_t>(a)] = b > e ? (b - e - steps[k] - 1) / -steps[k] : 0;
      }
      lo[static_cast<size_t>(a)] = b, step[static_cast<size_t>(a)] = steps[k];
    }
    const size_t n = count_of(dims);
    const auto src_st = strides_of(x.dims);
    std::vector<size_t> index(n), idx(static_cast<size_t>(r), 0);
    for (size_t j = 0; j < n; ++j) {
      size_t off = 0;
      for (size_t k = 0; k < static_cast<size_t>(r); ++k)
        off += static_cast<size_t>(lo[k] + static_cast<int64_t>(idx[k]) * step[k]) * src_st[k];
      index[j] = off;
      for (size_t k = static_cast<size_t>(r); k-- > 0;)
        if (++idx[k] < static_cast<size_t>(dims[k])) break; else idx[k] = 0;
    }
    out = gather(x, index, dims);
  }
  keep_constant(node_->output(0), std::move(out));
  return true;
}

// A Pad node's pads (the attribute, or from opset 11 the constant input), after checking that it pads with zeros.
std::vector<int64_t> Importer::zero_pads() {
  if (!string_attr("mode").empty() && string_attr("mode") != "constant") fail("only constant padding");
  if (float_attr("value", 0.0f) != 0.0f || (node_->input_size() > 3 && !node_->input(3).empty()))
    fail("only zero padding of all axes is supported (no 'value', no 'axes')");
  if (node_->input_size() > 2 && !node_->input(2).empty()) {
    const Const* cv = constant(node_->input(2));
    if (!cv || cv->f.size() != 1 || cv->f[0] != 0.0f) fail("only zero padding is supported");
  }
  if (node_->input_size() > 1 && !node_->input(1).empty()) {
    const Const* p = constant(node_->input(1));
    if (!p || p->i.empty()) fail("the pads must be an int64 constant");
    return p->i;
  }
  return ints_attr("pads");
}

// A MaxPool's options that ferkit's pooling (and its shortcut pooling) does not have must be absent.
void Importer::check_unpadded_pool() const {
  for (int64_t p : ints_attr("pads"))
    if (p) fail("padded max pooling is not supported");
  for (int64_t d : ints_attr("dilations"))
    if (d != 1) fail("dilated max pooling is not supported");
  const std::string auto_pad = string_attr("auto_pad");
  if (!auto_pad.empty() && auto_pad != "NOTSET" && auto_pad != "VALID")
    fail("auto_pad " + auto_pad + " is not supported");
}

void Importer::preprocess_op(const std::string& op, float c) {
  if (op == "Mul") pre_a_ *= c, pre_b_ *= c;
  if (op == "Div") {
    if (c == 0) fail("divides the input by 0");
    pre_a_ /= c, pre_b_ /= c;
  }
  if (op == "Add") pre_b_ += c;
  if (op == "Sub") pre_b_ -= c;
}

void Importer::conv() {
  // A head reads any value of the main chain (the activation a save will remember) and ends at a graph output.
  const bool head = head_op(node_index_);
  if (head && (value(node_->input(0)).shortcut || value(node_->input(0)).stale))
    fail("a head must read a value of the main chain of layers");
  Val x = head ? value(node_->input(0)) : main_input(0);
  if (x.rank != 4) fail("expects an N x C x H x W input");
  const Const& W = const_input(1, "the weights");
  if (W.dims.size() != 4 || W.dims[2] != W.dims[3] || W.dims[2] < 1 || W.dims[2] > 64)
    fail("expects square weights M x C x k x k (k up to 64)");
  const int k = static_cast<int>(W.dims[2]), M = static_cast<int>(W.dims[0]);
  const int64_t group = int_attr("group", 1);
  const Shape s = x.shape;
  for (int64_t d : ints_attr("dilations"))
    if (d != 1) fail("dilated convolutions are not supported");
  std::vector<int64_t> strides = ints_attr("strides");
  if (strides.empty()) strides = {1, 1};
  if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1 || strides[0] > 64)
    fail("expects equal strides along both axes");
  const int stride = static_cast<int>(strides[0]);
  const std::vector<int64_t> ks = ints_attr("kernel_shape");
  if (!ks.empty() && (ks.size() != 2 || ks[0] != k || ks[1] != k)) fail("kernel_shape does not match the weights");
  const bool dw = group != 1;
  if (dw && !(group == s.c && M == s.c && W.dims[1] == 1))
    fail("a grouped convolution of " + std::to_string(group) + " groups with " + std::to_string(M) +
         " outputs on " + std::to_string(s.c) + " channels: only depthwise convolutions (as many groups as input "
         "and output channels) are supported");
  if (!dw && W.dims[1] != s.c)
    fail("weights for " + std::to_string(W.dims[1]) + " input channels on a " + std::to_string(s.c) +
         "-channel input");
  // Padding: explicit pads (plus a Pad before it) must be what ferkit's 'same' or 'valid' pads.
  int64_t pads[4] = {x.pad[0], x.pad[1], x.pad[2], x.pad[3]};
  const std::string auto_pad = string_attr("auto_pad");
  const std::vector<int64_t> p = ints_attr("pads");
  if (!p.empty()) {
    if (p.size() != 4) fail("expects 4 pads");
    // ONNX orders them (top, left, bottom, right).
    for (int j = 0; j < 4; ++j) {
      if (p[static_cast<size_t>(j)] < 0 || p[static_cast<size_t>(j)] > 64) fail("has a pad below 0 or over 64");
      pads[j] += p[static_cast<size_t>(j)];
    }
  }
  bool same;
  const ConvGeom gs = ConvGeom::make(s.h, s.w, s.c, M, k, stride, true);
  const ConvGeom gv = ConvGeom::make(s.h, s.w, s.c, M, k, stride, false);
  if (auto_pad == "SAME_UPPER" && !x.padded()) {
    same = true;
  } else if (auto_pad == "VALID" && !x.padded()) {
    same = false;
  } else if (auto_pad.empty() || auto_pad == "NOTSET") {
    const int64_t ho = (s.h + pads[0] + pads[2] - k) / stride + 1, wo = (s.w + pads[1] + pads[3] - k) / stride + 1;
    auto fits = [&](const ConvGeom& g) {
      return pads[0] == g.pad_top && pads[1] == g.pad_left && ho == g.ho && wo == g.wo;
    };
    if (fits(gs)) {
      same = true;
    } else if (fits(gv)) {
      same = false;
    } else {
      fail("pads (" + std::to_string(pads[0]) + ", " + std::to_string(pads[1]) + ", " + std::to_string(pads[2]) +
           ", " + std::to_string(pads[3]) + ") on a " + std::to_string(s.h) + "x" + std::to_string(s.w) +
           " input at stride " + std::to_string(stride) + " are neither 'same' (TensorFlow's: " +
           std::to_string(gs.pad_top) + " before, the rest after) nor 'valid' (none)");
    }
  } else {
    fail("auto_pad " + auto_pad + " is not supported");
  }
  const ConvGeom& g = same ? gs : gv;
  if (g.ho <= 0 || g.wo <= 0) fail("leaves no output pixels");
  Built b;
  b.spec.kind = dw ? LayerKind::DepthwiseConv : LayerKind::Conv;
  b.spec.units = dw ? 0 : M;
  b.spec.kernel = k;
  b.spec.stride = stride;
  b.spec.same = same;
  const int cin = s.c;
  b.w.resize(static_cast<size_t>(k) * k * cin * (dw ? 1 : M));
  for (int co = 0; co < M; ++co)
    for (int ci = 0; ci < (dw ? 1 : cin); ++ci)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const float v = W.f[((static_cast<size_t>(co) * (dw ? 1 : cin) + ci) * k + ky) * k + kx];
          if (dw)
            b.w[static_cast<size_t>(ky * k + kx) * cin + co] = v;
          else
            b.w[(static_cast<size_t>(ky * k + kx) * cin + ci) * M + co] = v;
        }
  b.b.assign(static_cast<size_t>(M), 0.0f);
  if (node_->input_size() > 2 && !node_->input(2).empty()) {
    const Const& B = const_input(2, "the bias");
    if (B.count != static_cast<size_t>(M)) fail("the bias has " + std::to_string(B.count) + " values, expected " +
                                                std::to_string(M));
    b.b = B.f;
  }
  if (head) {
    if (dw || stride != 1 || (!same && k != 1) || x.padded())
      fail("a head must be a stride-1 'same' convolution (not depthwise, no Pad before it)");
    std::string& name = saves_[x.pos];
    if (name.empty()) name = "s" + std::to_string(saves_.size());
    b.spec.kind = LayerKind::Head;
    b.spec.tap = name;
    heads_.push_back(std::move(b));
    Val out;
    out.shape = {g.ho, g.wo, M};
    out.head = static_cast<int>(heads_.size()) - 1;
    vals_[node_->output(0)] = out;
    return;
  }
  advance(emit(std::move(b), {g.ho, g.wo, M}, 4));
}

void Importer::batchnorm() {
  Val x = main_input(0);
  const size_t c = static_cast<size_t>(x.shape.c);
  const char* names[4] = {"scale", "bias", "mean", "var"};
  std::vector<float> v[4];
  for (int j = 0; j < 4; ++j) {
    const Const& t = const_input(j + 1, names[j]);
    if (t.count != c)
      fail(std::string(names[j]) + " has " + std::to_string(t.count) + " values for " + std::to_string(c) +
           " channels");
    v[j] = t.f;
    if (x.perm)  // a flat value in ONNX's C x H x W order: ferkit's index j is ONNX's perm[j]
      for (size_t i = 0; i < c; ++i) v[j][i] = t.f[static_cast<size_t>((*x.perm)[i])];
  }
  // ferkit adds 1e-5 to the variance: another epsilon is the same as a shifted variance.
  const float eps = float_attr("epsilon", 1e-5f);
  if (!std::isfinite(eps) || eps < 0) fail("epsilon is " + std::to_string(eps) + ": expected a finite value >= 0");
  for (float& var : v[3]) {
    var = std::max(var + (eps - kBnEps), 0.0f);
    if (!std::isfinite(var)) fail("var plus epsilon (" + std::to_string(eps) + ") is not finite");
  }
  Built b;
  b.spec.kind = LayerKind::BatchNorm;
  b.w = v[0], b.b = v[1], b.mean = v[2], b.var = v[3];
  Val out = emit(std::move(b), x.shape, x.rank);
  out.perm = x.perm;
  advance(out);
}

void Importer::maxpool() {
  Val x = main_input(0);
  if (x.rank != 4) fail("expects an N x C x H x W input");
  const std::vector<int64_t> ks = ints_attr("kernel_shape");
  std::vector<int64_t> st = ints_attr("strides");
  if (st.empty()) st = {1, 1};
  if (ks.size() != 2 || ks[0] != ks[1] || ks[0] < 1 || ks[0] > 64 || st.size() != 2 || st[0] != st[1] || st[0] < 1 ||
      st[0] > 64)
    fail("expects a square window and equal strides");
  check_unpadded_pool();
  const int k = static_cast<int>(ks[0]), stride = static_cast<int>(st[0]);
  const ConvGeom g = ConvGeom::make(x.shape.h, x.shape.w, x.shape.c, x.shape.c, k, stride, false);
  if (g.ho <= 0 || g.wo <= 0) fail("the window is larger than the input");
  if (int_attr("ceil_mode", 0) && ((x.shape.h - k) % stride || (x.shape.w - k) % stride))
    fail("ceil_mode on a size the window does not divide is not supported");
  if (node_->output_size() > 1) fail("the Indices output is not supported");
  Built b;
  b.spec.kind = LayerKind::MaxPool;
  b.spec.kernel = k;
  b.spec.stride = stride;
  advance(emit(std::move(b), {g.ho, g.wo, x.shape.c}, 4));
}

void Importer::flatten() {
  Val x = main_input(0);
  if (node_->op_type() == "Flatten" && int_attr("axis", 1) != 1) fail("only axis 1 is supported");
  if (node_->op_type() == "Reshape") {
    const Const* shape = node_->input_size() > 1 ? constant(node_->input(1)) : nullptr;
    const int64_t F = x.shape.size();
    if (!shape || shape->i.size() != 2 || !(shape->i[0] == 0 || shape->i[0] == -1 || shape->i[0] == 1) ||
        !(shape->i[1] == -1 || shape->i[1] == F) || (shape->i[0] == -1 && shape->i[1] == -1))
      fail("only a Reshape to (N, " + std::to_string(F) + ") given as a constant shape is supported");
  }
  if (x.rank == 2) return advance(x);
  const Shape s = x.shape;
  Val out;
  if (s.h * s.w > 1) {
    Built b;
    b.spec.kind = LayerKind::Flatten;
    out = emit(std::move(b), {1, 1, s.size()}, 2);
    if (s.c > 1) out.perm = std::make_shared<const std::vector<int>>(chw_order(s));
  } else {
    out = x;  // already 1 x 1 x C: flat in both orders
    out.rank = 2;
  }
  advance(out);
}

void Importer::dense(bool gemm) {
  Val x = main_input(0);
  if (x.rank != 2) fail("expects a flat (N x F) input: Flatten first");
  const Const& B = const_input(1, "the weights");
  const bool trans = gemm && int_attr("transB", 0);
  if (gemm && int_attr("transA", 0)) fail("transA is not supported");
  if (B.dims.size() != 2) fail("expects 2-D weights");
  const size_t nin = static_cast<size_t>(trans ? B.dims[1] : B.dims[0]);
  const size_t nout = static_cast<size_t>(trans ? B.dims[0] : B.dims[1]);
  if (nin != static_cast<size_t>(x.shape.size()))
    fail("weights for " + std::to_string(nin) + " inputs on " + std::to_string(x.shape.size()) + " values");
  const float alpha = gemm ? float_attr("alpha", 1.0f) : 1.0f, beta = gemm ? float_attr("beta", 1.0f) : 1.0f;
  Built b;
  b.spec.kind = LayerKind::Dense;
  b.spec.units = static_cast<int>(nout);
  b.w.resize(nin * nout);
  for (size_t r = 0; r < nin; ++r) {
    const size_t src = x.perm ? static_cast<size_t>((*x.perm)[r]) : r;
    for (size_t o = 0; o < nout; ++o) b.w[r * nout + o] = alpha * (trans ? B.f[o * nin + src] : B.f[src * nout + o]);
  }
  b.b.assign(nout, 0.0f);
  if (gemm && node_->input_size() > 2 && !node_->input(2).empty()) {
    const Const& C = const_input(2, "the bias");
    if (C.count != nout) fail("the bias has " + std::to_string(C.count) + " values, expected " + std::to_string(nout));
    for (size_t o = 0; o < nout; ++o) b.b[o] = beta * C.f[o];
  }
  advance(emit(std::move(b), {1, 1, static_cast<int>(nout)}, 2));
}

void Importer::add() {
  if (node_->input_size() != 2) fail("expects two inputs");
  const Const* c0 = constant(node_->input(0));
  const Const* c1 = constant(node_->input(1));
  if (c0 && c1) fail("adds two constants");
  if (c0 || c1) {  // a bias: into the layer before it (MatMul then Add, or a bias-less Conv then Add)
    const Const& c = c0 ? *c0 : *c1;
    Val x = main_input(c0 ? 1 : 0);
    if (c.f.empty() && c.count) fail("the constant must be float32");
    if (x.pos != built_.size() || built_.empty() ||
        !(built_.back().spec.kind == LayerKind::Dense || built_.back().spec.kind == LayerKind::Conv ||
          built_.back().spec.kind == LayerKind::DepthwiseConv) ||
        c.count != built_.back().b.size())
      fail("adds a constant other than a bias of the dense or convolution layer before it");
    // Broadcasting: along the channels only ([M, 1, 1] or [1, M, 1, 1] after a convolution; [M] or [1, M] flat).
    std::vector<int64_t> d = c.dims;
    while (!d.empty() && d.front() == 1 && d.size() > (x.rank == 4 ? 3u : 1u)) d.erase(d.begin());
    const bool channels = x.rank == 4 ? d.size() == 3 && d[1] == 1 && d[2] == 1 : d.size() == 1;
    if (!channels) fail("adds a constant that does not broadcast along the channels");
    for (size_t o = 0; o < c.count; ++o) built_.back().b[o] += c.f[o];
    vals_[cur_].stale = true;
    return advance(x);
  }
  // A residual connection: one input is the block's end (the current value), the other the block's start.
  const bool first_is_cur = node_->input(0) == cur_;
  if (node_->input(0) == node_->input(1) || (!first_is_cur && node_->input(1) != cur_))
    fail("adds values that are not a block and its shortcut");
  Val x = main_input(first_is_cur ? 0 : 1);
  Val s = value(node_->input(first_is_cur ? 1 : 0));
  if (s.padded()) fail("a spatial Pad on a shortcut is not supported");
  const Shape ss = s.shape;
  const AddGeom a{ss.h, ss.w, ss.c, x.shape.h, x.shape.w, x.shape.c};
  if (s.stale) fail("adds a value that a folded preprocessing step or bias replaced: not supported");
  if (s.rank != x.rank || s.perm != x.perm || (x.perm && s.pad_channels))
    fail("adds values of different layouts (or pads a flattened map's shortcut)");
  if (!a.valid() || a.pooled() != s.pooled || ss.c + s.pad_channels != x.shape.c)
    fail("adds a " + std::to_string(ss.h) + "x" + std::to_string(ss.w) + "x" + std::to_string(ss.c) + " shortcut" +
         (s.pooled ? " (max-pooled 2x2)" : "") + (s.pad_channels ? " (padded by " +
         std::to_string(s.pad_channels) + " channels)" : "") + " to a " + std::to_string(x.shape.h) + "x" +
         std::to_string(x.shape.w) + "x" + std::to_string(x.shape.c) + " block: ferkit's add takes the same size, "
         "or half of it through a 2x2 stride-2 MaxPool, and pads missing channels with zeros");
  std::string& name = saves_[s.pos];
  if (name.empty()) name = "s" + std::to_string(saves_.size());
  Built b;
  b.spec.kind = LayerKind::Add;
  b.spec.tap = name;
  Val out = emit(std::move(b), x.shape, x.rank);
  out.perm = x.perm;
  advance(out);
}

// A shortcut step: MaxPool 2x2 stride 2, or a zero channel Pad or Concat.
void Importer::shortcut(const std::string& op) {
  std::string in;
  for (const auto& s : node_->input())
    if (!constant(s)) {
      in = s;
      break;
    }
  Val v = value(in);
  if (v.padded()) fail("a spatial Pad on a shortcut is not supported");
  if (v.stale) fail("a shortcut from a value that a folded preprocessing step or bias replaced is not supported");
  v.shortcut = true;
  if (op == "MaxPool") {
    const std::vector<int64_t> ks = ints_attr("kernel_shape"), st = ints_attr("strides");
    check_unpadded_pool();
    const bool ceil = int_attr("ceil_mode", 0) != 0;
    if (ks != std::vector<int64_t>{2, 2} || st != std::vector<int64_t>{2, 2} || v.pooled || v.pad_channels ||
        v.rank != 4 || (!ceil && (v.shape.h % 2 || v.shape.w % 2)))
      fail("a shortcut's MaxPool must be 2x2 with stride 2 (rounding up, or on an even size), once, before any "
           "padding");
    v.pooled = true;
  } else if (op == "Pad") {
    const std::vector<int64_t> pads = zero_pads();
    const size_t r = static_cast<size_t>(v.rank);
    if (pads.size() != 2 * r) fail("expects " + std::to_string(2 * r) + " pads");
    for (size_t j = 0; j < pads.size(); ++j)
      if (j != r + 1 && pads[j] != 0) fail("a shortcut may only be padded after its last channel");
    if (pads[r + 1] < 0 || pads[r + 1] > 4096) fail("pads a shortcut by " + std::to_string(pads[r + 1]) + " channels");
    v.pad_channels += static_cast<int>(pads[r + 1]);
  } else {  // Concat(shortcut, zeros) along the channels
    if (node_->input_size() != 2 || node_->input(0) != in) fail("a shortcut's Concat must be (shortcut, zeros)");
    const Const* z = constant(node_->input(1));
    const int64_t axis = int_attr("axis", 0);
    const bool zero = z && (z->zeros || std::all_of(z->f.begin(), z->f.end(), [](float f) { return f == 0; }));
    if (!zero || z->dims.size() != static_cast<size_t>(v.rank) || !(axis == 1 || axis == v.rank - 3))
      fail("a shortcut's Concat must add zero channels (axis 1)");
    if (z->dims[1] > 4096) fail("pads a shortcut by too many channels");
    v.pad_channels += static_cast<int>(z->dims[1]);
  }
  vals_[node_->output(0)] = v;
}

OnnxImport Importer::run() {
  for (const auto& op : m_.opset_import())
    if ((op.domain().empty() || op.domain() == "ai.onnx") && op.version() < 7)
      fail("opset " + std::to_string(op.version()) + " is older than the supported 7");
  for (const auto& t : g_.initializer()) consts_[t.name()] = read_tensor(t);
  // The one input that is not an initializer.
  const onnx::ValueInfoProto* input = nullptr;
  for (const auto& v : g_.input()) {
    if (consts_.count(v.name())) continue;
    if (input) fail("the graph has more than one input ('" + input->name() + "', '" + v.name() + "')");
    input = &v;
  }
  if (!input) fail("the graph has no input");
  if (g_.output_size() < 1) fail("the graph has no output");
  output_ = g_.output(0).name();
  // Several outputs: each must be a head, a convolution of a value of the main chain (spec.h's 'head').
  for (const auto& o : g_.output()) outputs_.insert(o.name());
  if (outputs_.size() != static_cast<size_t>(g_.output_size())) fail("the graph names an output twice");
  for (int i = 0; i < g_.node_size(); ++i)
    for (const auto& s : g_.node(i).input()) consumers_[s].push_back(i);
  // Its shape: N x C x H x W, or N x H x W x C when a Transpose to NCHW reads it.
  const auto& tt = input->type().tensor_type();
  if (!input->type().has_tensor_type() || tt.elem_type() != onnx::TensorProto::FLOAT || tt.shape().dim_size() != 4)
    fail("the input '" + input->name() + "' must be a 4-D float32 tensor (N x C x H x W)");
  int64_t d[4];
  for (int j = 1; j < 4; ++j) {
    d[j] = tt.shape().dim(j).has_dim_value() ? tt.shape().dim(j).dim_value() : -1;
    if (d[j] < 1 || d[j] > kMaxInputSide)
      fail("the input's dimension " + std::to_string(j) + " must be a fixed size from 1 to " +
           std::to_string(kMaxInputSide));
  }
  const auto& in_cons = consumers_[input->name()];
  const bool nhwc = in_cons.size() == 1 && g_.node(in_cons[0]).op_type() == "Transpose";
  Val in;
  in.shape = nhwc ? Shape{static_cast<int>(d[1]), static_cast<int>(d[2]), static_cast<int>(d[3])}
                  : Shape{static_cast<int>(d[2]), static_cast<int>(d[3]), static_cast<int>(d[1])};
  if (in.shape.c > 4) fail("the input has " + std::to_string(in.shape.c) + " channels (at most 4)");
  input_name_ = cur_ = input->name();
  vals_[cur_] = in;

  for (node_index_ = 0; node_index_ < g_.node_size(); ++node_index_) {
    node_ = &g_.node(node_index_);
    const std::string& op = node_->op_type();
    if (!node_->domain().empty() && node_->domain() != "ai.onnx") fail("operators of domain '" + node_->domain() +
                                                                       "' are not supported");
    if (softmax_) fail("follows the Softmax: the Softmax must be the last node");
    // Every operator read has an output, and all but Constant an input: checked once here, so that no case below
    // (nor the functions it calls: advance, conv, fold_constant, ...) reads a missing first input or output
    // (protobuf's accessors do not check the index).
    if (node_->output_size() < 1 || node_->output(0).empty()) fail("has no output");
    if (op != "Constant" && (node_->input_size() < 1 || node_->input(0).empty())) fail("has no input");
    if (scaled_logits_ && op != "Softmax")
      fail("follows a scalar " + std::string("Mul or Div of the logits, which is read as a temperature only right "
                                             "before the Softmax"));
    if (op == "Constant") {
      const auto* v = attribute("value");
      if (!v || !v->has_t()) fail("only a tensor 'value' is supported");
      consts_[node_->output(0)] = read_tensor(v->t());
    } else if (fold_constant()) {
    } else if (op == "Identity" || op == "Dropout") {
      if (const Const* c = constant(node_->input(0)))
        keep_constant(node_->output(0), *c);
      else if (node_->input(0) == cur_) {  // the same value under another name (a pending Pad included)
        const Val v = value(cur_);
        cur_ = node_->output(0);
        vals_[cur_] = v;
      }
      else
        vals_[node_->output(0)] = value(node_->input(0));
      if (node_->output_size() > 1 && !consumers_[node_->output(1)].empty()) fail("its mask output is not supported");
    } else if ((op == "Transpose" || op == "Reshape" || op == "Flatten") &&
               vals_.count(node_->input(0)) && vals_.at(node_->input(0)).head >= 0) {
      head_step();
    } else if (op == "Transpose") {
      if (!nhwc || node_->input(0) != input_name_ || ints_attr("perm") != std::vector<int64_t>{0, 3, 1, 2})
        fail("only a Transpose of the N x H x W x C input to N x C x H x W is supported");
      advance(value(input_name_));
    } else if ((op == "Mul" || op == "Div" || op == "Add" || op == "Sub") && built_.empty() &&
               node_->input_size() == 2 && (constant(node_->input(1)) || (op != "Sub" && op != "Div" &&
                                                                          constant(node_->input(0))))) {
      const bool c_first = constant(node_->input(0)) != nullptr;
      const Const& c = *constant(node_->input(c_first ? 0 : 1));
      Val x = main_input(c_first ? 1 : 0);
      if (c.f.size() != 1) fail("only a scalar " + op + " is supported before the first layer (the preprocessing)");
      preprocess_op(op, c.f[0]);
      vals_[cur_].stale = true;
      advance(x);
    } else if ((op == "Mul" || op == "Div") && !built_.empty() && node_->input_size() == 2 &&
               constant(node_->input(1)) && vals_.count(node_->input(0)) && vals_.at(node_->input(0)).rank == 2) {
      const Const& c = *constant(node_->input(1));
      if (c.f.size() != 1 || !(c.f[0] > 0) || !std::isfinite(c.f[0]))
        fail("only a positive scalar " + op + " of the logits (a temperature) is supported");
      temperature_ *= op == "Div" ? c.f[0] : 1.0 / c.f[0];
      if (!(temperature_ >= 0.01 && temperature_ <= 100)) fail("the temperature it gives is outside 0.01-100");
      scaled_logits_ = true;
      advance(main_input(0));
    } else if (op == "Conv") {
      conv();
    } else if (op == "BatchNormalization") {
      batchnorm();
    } else if (op == "Relu") {
      Val x = main_input(0);
      Built b;
      b.spec.kind = LayerKind::ReLU;
      Val out = emit(std::move(b), x.shape, x.rank);
      out.perm = x.perm;
      advance(out);
    } else if ((op == "MaxPool" || op == "Pad" || op == "Concat") && shortcut_op(node_index_)) {
      shortcut(op);
    } else if (op == "MaxPool") {
      maxpool();
    } else if (op == "Pad") {  // spatial zero padding for the convolution after it
      Val x = main_input(0);
      const std::vector<int64_t> pads = zero_pads();
      if (x.rank != 4 || pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5])
        fail("only padding of the rows and columns of an N x C x H x W value is supported");
      const int64_t order[4] = {pads[2], pads[3], pads[6], pads[7]};  // top, left, bottom, right
      for (int j = 0; j < 4; ++j) {
        if (order[j] < 0 || order[j] > 64) fail("has a pad below 0 or over 64");
        x.pad[j] += order[j];
      }
      cur_ = node_->output(0);
      vals_[cur_] = x;
    } else if (op == "GlobalAveragePool") {
      Val x = main_input(0);
      if (x.rank != 4) fail("expects an N x C x H x W input");
      Built b;
      b.spec.kind = LayerKind::GlobalAvgPool;
      advance(emit(std::move(b), {1, 1, x.shape.c}, 4));
    } else if (op == "Flatten" || op == "Reshape") {
      flatten();
    } else if (op == "Gemm" || op == "MatMul") {
      dense(op == "Gemm");
    } else if (op == "Add") {
      add();
    } else if (op == "Softmax") {
      Val x = main_input(0);
      const int64_t axis = int_attr("axis", -1);
      if (!(axis == 1 || axis == -1) || x.rank != 2) fail("only a Softmax over the classes of an N x K value");
      softmax_ = true;
      advance(x);
    } else {
      fail(std::string("operator '") + op + "' is not supported (supported: " + kOnnxOperators + ")");
    }
  }
  node_ = nullptr;
  if (scaled_logits_ && !softmax_) fail("a scalar Mul or Div of the logits is read as a temperature only before a Softmax");
  if (outputs_.size() == 1 && cur_ != output_)
    fail("the graph's output '" + output_ + "' is not the end of its chain of layers");
  if (built_.empty()) fail("the graph has no layers");
  // Heads in the order of the graph's outputs, each flattened in ferkit's (NHWC) order.
  std::vector<int> head_order;
  if (outputs_.size() > 1) {
    for (const auto& o : g_.output()) {
      auto it = vals_.find(o.name());
      if (it == vals_.end() || it->second.head < 0)
        fail("the graph has " + std::to_string(g_.output_size()) + " outputs, and '" + o.name() +
             "' is not a head (a convolution of the main chain, then at most a Transpose and a Reshape): a ferkit "
             "model with one output ends in its class scores");
      const Val& v = it->second;
      if (!v.nhwc && v.shape.c > 1 && v.shape.h * v.shape.w > 1)
        fail("output '" + o.name() + "' keeps its head's N x C x H x W order: transpose it to N x H x W x C first");
      head_order.push_back(v.head);
    }
    std::vector<int> sorted = head_order;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() ||
        sorted.size() != heads_.size())
      fail("the graph's outputs do not map one to one to its heads");
  }

  // The spec: the layers, with a save before each value a shortcut starts from.
  Spec spec;
  spec.input = vals_[input_name_].shape;
  for (size_t i = 0; i <= built_.size(); ++i) {
    auto s = saves_.find(i);
    if (s != saves_.end()) {
      LayerSpec l;
      l.kind = LayerKind::Save;
      l.tap = s->second;
      spec.layers.push_back(l);
    }
    if (i < built_.size()) spec.layers.push_back(built_[i].spec);
  }
  for (int h : head_order) {
    spec.layers.push_back(heads_[static_cast<size_t>(h)].spec);
    built_.push_back(heads_[static_cast<size_t>(h)]);
  }
  OnnxImport r;
  try {
    r.model = Model(spec, false);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  r.model.allocate(false);
  size_t k = 0;
  for (const LayerPlan& p : r.model.layers) {
    if (p.spec.kind == LayerKind::Save) continue;
    const Built& b = built_[k++];
    float* P = r.model.params.data();
    auto put = [&](size_t off, const std::vector<float>& v) { std::copy(v.begin(), v.end(), P + off); };
    if (p.spec.kind == LayerKind::Conv || p.spec.kind == LayerKind::DepthwiseConv || p.spec.kind == LayerKind::Dense ||
        p.spec.kind == LayerKind::Head)
      put(p.w, b.w), put(p.b, b.b);
    if (p.spec.kind == LayerKind::BatchNorm) put(p.w, b.w), put(p.b, b.b), put(p.mean, b.mean), put(p.var, b.var);
  }

  std::map<std::string, std::string> props;
  for (const auto& e : m_.metadata_props()) props[e.key()] = e.value();
  // ferkit's own export: the architecture text it came from, where it plans to the same layers and tensors (it has
  // the names of the saves, and the dropout and the layers the graph needs no node for).
  if (props.count("ferkit.spec")) {
    try {
      Model orig(parse_spec(props["ferkit.spec"]), false);
      if (same_network(orig, r.model)) {
        orig.allocate(false);
        orig.params = r.model.params;
        r.model = std::move(orig);
      }
    } catch (const std::exception&) {
      // not ferkit's spec text: the layers read from the graph stand
    }
  }

  // Preprocessing: the options', then the graph's own scalar steps.
  r.model.temperature = static_cast<float>(temperature_);
  if (props.count("ferkit.temperature")) {
    // ferkit's own export: the exact temperature, if the graph's Mul is what it computes (1 / T rounds).
    const nlohmann::json j = nlohmann::json::parse(props["ferkit.temperature"], nullptr, false);
    if (j.is_number() && static_cast<float>(temperature_) != 1.0f) {
      const float t = j.get<float>();
      if (t > 0 && static_cast<float>(1.0 / temperature_) == 1.0f / t) r.model.temperature = t;
    }
  }
  Preprocess& pp = r.model.preprocess;
  pp.side = spec.input.h;
  pp.channels = spec.input.c;
  const double a = opt_.scale / opt_.std * pre_a_, b0 = -opt_.mean / opt_.std * pre_a_ + pre_b_;
  pp.scale = static_cast<float>(a), pp.mean = static_cast<float>(-b0), pp.std = 1.0f;
  if (props.count("ferkit.preprocess") && opt_.scale == 1 && opt_.mean == 0 && opt_.std == 1) {
    // ferkit's own export: its preprocessing as it was, if the graph's scaling is what it computes.
    const nlohmann::json j = nlohmann::json::parse(props["ferkit.preprocess"], nullptr, false);
    auto number = [&](const char* key) {
      return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<float>() : 0.0f;
    };
    const float s = number("scale"), m = number("mean"), d = number("std");
    if (d > 0 && s / d == static_cast<float>(pre_a_) && -m / d == static_cast<float>(pre_b_))
      pp.scale = s, pp.mean = m, pp.std = d;
  }
  if (!std::isfinite(pp.scale) || !std::isfinite(pp.mean) || pp.scale == 0) fail("the preprocessing is degenerate");

  const int classes = r.model.num_classes();
  std::vector<std::string> names = opt_.class_names;
  if (names.empty() && props.count("ferkit.classes")) {
    const nlohmann::json j = nlohmann::json::parse(props["ferkit.classes"], nullptr, false);
    if (j.is_array() && j.size() == static_cast<size_t>(classes) &&
        std::all_of(j.begin(), j.end(), [](const nlohmann::json& v) { return v.is_string(); }))
      names = j.get<std::vector<std::string>>();
  }
  if (!names.empty()) {
    if (names.size() != static_cast<size_t>(classes))
      fail(std::to_string(names.size()) + " class names for " + std::to_string(classes) + " outputs");
    r.model.class_names = names;
  }
  if (props.count("ferkit.metadata")) {
    r.metadata = nlohmann::json::parse(props["ferkit.metadata"], nullptr, false);
    if (!r.metadata.is_object()) r.metadata = nlohmann::json::object();
  } else {
    r.metadata = nlohmann::json::object();
  }
  // The producer's name as printable ASCII: it goes into JSON, which needs valid UTF-8 (the fuzzer sent a 0xAF).
  std::string producer = m_.producer_name() + " " + m_.producer_version();
  for (char& ch : producer)
    if (ch < 0x20 || ch > 0x7e) ch = '?';
  r.metadata["onnx_import"] = {{"producer", producer},
                               {"ir_version", m_.ir_version()},
                               {"nodes", g_.node_size()}};
  return r;
}

}  // namespace

OnnxImport import_onnx(const uint8_t* data, size_t size, const OnnxImportOptions& opt, const std::string& what) {
  if (size > static_cast<size_t>(1) << 30) throw std::runtime_error(what + ": over 1 GiB");
  onnx::ModelProto m;
  if (!m.ParseFromArray(data, static_cast<int>(size)))
    throw std::runtime_error(what + ": not an ONNX model (protobuf could not parse it)");
  if (!m.has_graph()) throw std::runtime_error(what + ": the ONNX model has no graph");
  return Importer(m, opt, what).run();
}

#endif  // FERKIT_HAVE_ONNX

}  // namespace ferkit
