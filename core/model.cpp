#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "data.h"
#include "kernels.h"
#include "rng.h"

namespace ferkit {

Model::Model(const Spec& s, bool alloc) : spec(s) {
  Shape cur = spec.input;
  size_t off = 0;
  std::vector<std::pair<std::string, int>> saved;  // save layers by name, latest last
  auto add_tensor = [&](const std::string& name, size_t size, bool trainable, bool decay) {
    tensors.push_back({name, static_cast<int>(layers.size()), off, size, trainable, decay});
    off += size;
    return off - size;
  };
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    LayerPlan p;
    p.spec = l;
    if (l.kind == LayerKind::Head) {  // reads the activation its save remembered, not the layer before it
      for (const auto& [name, at] : saved)
        if (name == l.tap) p.tap = at;
      if (p.tap < 0)
        throw std::runtime_error("architecture: layer " + std::to_string(i + 1) + " (head) '" + l.tap +
                                 "' was not saved before it");
      cur = layers[static_cast<size_t>(p.tap)].out;
    }
    p.in = cur;
    const std::string pre = "l" + std::to_string(i) + "." + layer_name(l.kind) + ".";
    auto bad = [&](const std::string& why) {
      throw std::runtime_error("architecture: layer " + std::to_string(i + 1) + " (" + layer_name(l.kind) +
                               ") " + why);
    };
    // Sizes in 64 bits before any int arithmetic on them.
    const long long in_size = 1LL * cur.h * cur.w * cur.c;
    const bool conv = l.kind == LayerKind::Conv || l.kind == LayerKind::Head;
    const long long weights = conv                                 ? 1LL * l.kernel * l.kernel * cur.c * l.units
                              : l.kind == LayerKind::DepthwiseConv ? 1LL * l.kernel * l.kernel * cur.c
                              : l.kind == LayerKind::Dense         ? in_size * l.units
                                                                   : 0;
    if (in_size > kMaxActivation || weights > static_cast<long long>(kMaxModelParams) ||
        (conv && 1LL * cur.h * cur.w * l.units > kMaxActivation))
      bad("is too large (over " + std::to_string(kMaxModelParams) + " weights or " +
          std::to_string(kMaxActivation) + " values per image)");
    switch (l.kind) {
      case LayerKind::Conv:
      case LayerKind::Head:
        p.geom = ConvGeom::make(cur.h, cur.w, cur.c, l.units, l.kernel, l.stride, l.same);
        if (p.geom.ho <= 0 || p.geom.wo <= 0) bad("leaves no output pixels for a " + std::to_string(cur.h) + "x" +
                                                  std::to_string(cur.w) + " input");
        p.out = {p.geom.ho, p.geom.wo, l.units};
        p.w = add_tensor(pre + "w", static_cast<size_t>(p.geom.patch()) * l.units, true, true);
        p.b = add_tensor(pre + "b", l.units, true, false);
        break;
      case LayerKind::DepthwiseConv:
        p.geom = ConvGeom::make(cur.h, cur.w, cur.c, cur.c, l.kernel, l.stride, l.same);
        if (p.geom.ho <= 0 || p.geom.wo <= 0) bad("leaves no output pixels for a " + std::to_string(cur.h) + "x" +
                                                  std::to_string(cur.w) + " input");
        p.out = {p.geom.ho, p.geom.wo, cur.c};
        p.w = add_tensor(pre + "w", static_cast<size_t>(l.kernel) * l.kernel * cur.c, true, true);
        p.b = add_tensor(pre + "b", cur.c, true, false);
        break;
      case LayerKind::Save:
        p.out = cur;
        saved.emplace_back(l.tap, static_cast<int>(i));
        break;
      case LayerKind::Add: {
        for (const auto& [name, at] : saved)
          if (name == l.tap) p.tap = at;
        if (p.tap < 0) bad("'" + l.tap + "' was not saved before it");
        const Shape s = layers[static_cast<size_t>(p.tap)].out;
        if (!AddGeom{s.h, s.w, s.c, cur.h, cur.w, cur.c}.valid())
          bad("cannot add '" + l.tap + "' (" + std::to_string(s.h) + "x" + std::to_string(s.w) + "x" +
              std::to_string(s.c) + ") to its " + std::to_string(cur.h) + "x" + std::to_string(cur.w) + "x" +
              std::to_string(cur.c) + " input: expected the same size or half of it (rounded up), and at most as "
              "many channels");
        p.out = cur;
        break;
      }
      case LayerKind::MaxPool:
        p.geom = ConvGeom::make(cur.h, cur.w, cur.c, cur.c, l.kernel, l.stride, false);
        if (p.geom.ho <= 0 || p.geom.wo <= 0) bad("window is larger than its " + std::to_string(cur.h) + "x" +
                                                  std::to_string(cur.w) + " input");
        p.out = {p.geom.ho, p.geom.wo, cur.c};
        break;
      case LayerKind::Dense:
        if (cur.h != 1 || cur.w != 1) bad("needs a flat input: add 'flatten' or 'gap' before it");
        p.out = {1, 1, l.units};
        p.w = add_tensor(pre + "w", static_cast<size_t>(cur.c) * l.units, true, true);
        p.b = add_tensor(pre + "b", l.units, true, false);
        break;
      case LayerKind::BatchNorm:
        p.out = cur;
        p.w = add_tensor(pre + "gamma", cur.c, true, false);
        p.b = add_tensor(pre + "beta", cur.c, true, false);
        p.mean = add_tensor(pre + "running_mean", cur.c, false, false);
        p.var = add_tensor(pre + "running_var", cur.c, false, false);
        break;
      case LayerKind::Flatten: p.out = {1, 1, cur.size()}; break;
      case LayerKind::GlobalAvgPool: p.out = {1, 1, cur.c}; break;
      case LayerKind::ReLU:
      case LayerKind::Dropout: p.out = cur; break;
    }
    cur = p.out;
    layers.push_back(p);
  }
  if (spec.has_heads()) {
    if (num_outputs() > kMaxActivation)
      throw std::runtime_error("architecture: the heads make " + std::to_string(num_outputs()) +
                               " values per image, over the limit of " + std::to_string(kMaxActivation));
  } else if (cur.h != 1 || cur.w != 1) {
    throw std::runtime_error("architecture: the output before softmax must be flat");
  } else if (cur.c > kMaxClasses)
    throw std::runtime_error("architecture: the output before softmax has " + std::to_string(cur.c) +
                             " values, over the limit of " + std::to_string(kMaxClasses) + " classes");
  if (off > kMaxModelParams)
    throw std::runtime_error("architecture: " + std::to_string(off) + " parameters, over the limit of " +
                             std::to_string(kMaxModelParams));
  if (alloc) allocate();
}

int Model::num_outputs() const {
  if (!spec.has_heads()) return layers.empty() ? 0 : layers.back().out.size();
  long long n = 0;
  for (const LayerPlan& p : layers) n += p.spec.kind == LayerKind::Head ? p.out.size() : 0;
  return static_cast<int>(std::min<long long>(n, kMaxActivation + 1));
}

void Model::allocate(bool initialize) {
  const int classes = num_classes();
  params.assign(planned_params(), 0.0f);
  class_names.clear();
  for (int c = 0; c < classes; ++c)
    class_names.push_back(classes == kNumClasses ? kClassNames[c] : "class" + std::to_string(c));
  if (initialize) init(1);
}


size_t Model::num_trainable() const {
  size_t n = 0;
  for (const auto& t : tensors) n += t.trainable ? t.size : 0;
  return n;
}

long long LayerPlan::macs() const {
  switch (spec.kind) {
    case LayerKind::Conv:
    case LayerKind::Head: return 1LL * out.h * out.w * out.c * geom.patch();
    case LayerKind::Dense: return 1LL * in.size() * out.c;
    case LayerKind::DepthwiseConv: return 1LL * out.h * out.w * out.c * geom.k * geom.k;
    default: return 0;
  }
}

long long Model::macs_per_image() const {
  long long macs = 0;
  for (const auto& p : layers) macs += p.macs();
  return macs;
}

void Model::init(uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerPlan& p = layers[i];
    const LayerKind kind = p.spec.kind == LayerKind::Head ? LayerKind::Conv : p.spec.kind;
    if (kind == LayerKind::Conv || kind == LayerKind::Dense || kind == LayerKind::DepthwiseConv) {
      // A depthwise filter sees k*k inputs and feeds k*k outputs of its channel.
      const size_t taps = 1ull * p.spec.kernel * p.spec.kernel;
      const size_t fan_in = kind == LayerKind::Conv ? p.geom.patch() : kind == LayerKind::Dense ? p.in.size() : taps;
      const size_t fan_out = kind == LayerKind::Conv ? taps * p.out.c : kind == LayerKind::Dense ? p.out.c : taps;
      const size_t count = kind == LayerKind::DepthwiseConv ? taps * p.out.c : fan_in * p.out.c;
      Init init = p.spec.init;
      if (init == Init::Auto && kind == LayerKind::Dense) {
        // Dense layers: PyTorch's default. He or Glorot here gives a flatten head (dense 256 after dropout) logits so
        // large that a network with batch norm sat at the class prior for epochs from scratch (docs/training.md).
        init = Init::Uniform;
      } else if (init == Init::Auto) {  // He before a ReLU (possibly after bn), Glorot otherwise
        init = Init::Glorot;
        for (size_t j = i + 1; j < layers.size(); ++j) {
          LayerKind k = layers[j].spec.kind;
          if (k == LayerKind::ReLU) init = Init::He;
          if (k != LayerKind::BatchNorm) break;
        }
      }
      float* w = params.data() + p.w;
      if (init == Init::He) {  // normal, std sqrt(2 / fan_in)
        const float sd = std::sqrt(2.0f / static_cast<float>(fan_in));
        for (size_t j = 0; j < count; ++j) w[j] = sd * rng.normal();
      } else {  // uniform: Uniform within 1 / sqrt(fan_in) (PyTorch's default), Glorot within sqrt(6 / (fan_in + fan_out))
        const float lim = init == Init::Uniform ? 1.0f / std::sqrt(static_cast<float>(fan_in))
                                                : std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
        for (size_t j = 0; j < count; ++j) w[j] = rng.uniform(-lim, lim);
      }
      std::fill_n(params.data() + p.b, p.out.c, 0.0f);
    } else if (p.spec.kind == LayerKind::BatchNorm) {
      std::fill_n(params.data() + p.w, p.out.c, 1.0f);
      std::fill_n(params.data() + p.b, p.out.c, 0.0f);
      std::fill_n(params.data() + p.mean, p.out.c, 0.0f);
      std::fill_n(params.data() + p.var, p.out.c, 1.0f);
    }
  }
}

std::string Model::summary() const {
  std::ostringstream o;
  o << "layer        output          params\n";
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerPlan& p = layers[i];
    size_t n = 0;
    for (const auto& t : tensors)
      if (t.layer == static_cast<int>(i)) n += t.size;
    char line[128];
    std::snprintf(line, sizeof line, "%-12s %4dx%-4dx%-5d %9zu\n", layer_name(p.spec.kind), p.out.h, p.out.w,
                  p.out.c, n);
    o << line;
  }
  o << "parameters: " << num_params() << " (" << num_trainable() << " trainable), MACs/image: " << macs_per_image()
    << "\n";
  return o.str();
}

void Workspace::reserve(const Model& model, int batch, bool for_training, int from) {
  const int trainable = std::max(model.first_trainable, 0);
  // Buffers made for another model with as many layers (say a wider one) do not fit: re-size whenever a layer's
  // output or convolution scratch differs from what this model needs.
  const auto same_shapes = [&] {
    for (size_t i = static_cast<size_t>(from_layer); i < model.layers.size(); ++i) {
      const LayerPlan& p = model.layers[i];
      if (act[i + 1].size() != static_cast<size_t>(capacity) * p.out.size()) return false;
      if ((p.spec.kind == LayerKind::Conv || p.spec.kind == LayerKind::Head) && !p.geom.direct() &&
          col[i].size() != conv2d_scratch_floats(p.geom, capacity))
        return false;
    }
    return act[from_layer].size() == static_cast<size_t>(capacity) * model.layers[from_layer].in.size() &&
           probs.size() == static_cast<size_t>(capacity) * model.num_classes() &&
           heads.size() == (model.spec.has_heads() ? static_cast<size_t>(capacity) * model.num_outputs() : 0);
  };
  if (batch <= capacity && act.size() == model.layers.size() + 1 && (training || !for_training) &&
      (!for_training || trainable >= grad_from) && from >= from_layer && same_shapes())
    return;
  if (from < 0 || from >= static_cast<int>(model.layers.size()) || (for_training && from > trainable))
    throw std::logic_error("Workspace::reserve: from_layer out of range (or past the first trainable layer)");
  capacity = std::max(batch, capacity);
  batch = capacity;
  training = training || for_training;
  from_layer = act.empty() ? from : std::min(from, from_layer);
  const size_t L = model.layers.size();
  act.assign(L + 1, {});
  dact.assign(L + 1, {});
  col.assign(L, {});
  aux.assign(L, {});
  argmax.assign(L, {});
  size_t dcol_size = 0;
  grad_from = training ? trainable : 0;
  act[from_layer].assign(static_cast<size_t>(batch) * model.layers[from_layer].in.size(), 0.0f);
  if (training && grad_from == 0) dact[0].assign(act[0].size(), 0.0f);
  for (size_t i = static_cast<size_t>(from_layer); i < L; ++i) {
    const LayerPlan& p = model.layers[i];
    const size_t out = static_cast<size_t>(batch) * p.out.size();
    const bool trains = training && static_cast<int>(i) >= grad_from;
    act[i + 1].assign(out, 0.0f);
    if (trains) dact[i + 1].assign(out, 0.0f);
    switch (p.spec.kind) {
      case LayerKind::Conv:
      case LayerKind::Head: {
        if (p.geom.direct()) break;
        col[i].assign(conv2d_scratch_floats(p.geom, batch), 0.0f);
        if (trains) dcol_size = std::max(dcol_size, static_cast<size_t>(batch) * p.out.h * p.out.w * p.geom.patch());
        break;
      }
      case LayerKind::MaxPool: argmax[i].assign(out, 0); break;
      case LayerKind::Save:  // the gradient that the block's add sends back along the shortcut
        if (trains) col[i].assign(out, 0.0f);
        break;
      case LayerKind::Dropout:
        if (training) col[i].assign(out, 0.0f);
        break;
      case LayerKind::BatchNorm:
        col[i].assign(out, 0.0f);
        aux[i].assign(2 * static_cast<size_t>(p.out.c), 0.0f);  // training: invstd; inference: scale, shift
        break;
      default: break;
    }
  }
  dcol.assign(training ? dcol_size : 0, 0.0f);
  const size_t logits = static_cast<size_t>(batch) * model.num_classes();
  probs.assign(logits, 0.0f);
  gated.assign(logits, 0.0f);
  dlogits.assign(training ? logits : 0, 0.0f);
  heads.assign(model.spec.has_heads() ? static_cast<size_t>(batch) * model.num_outputs() : 0, 0.0f);
}

AddGeom add_geom(const Model& m, const LayerPlan& p) {
  const Shape s = m.layers[static_cast<size_t>(p.tap)].out;
  return {s.h, s.w, s.c, p.out.h, p.out.w, p.out.c};
}

namespace {

// The layers that run the same way in training and inference.
void layer_forward_common(Model& model, const float* P, Workspace& ws, size_t i, int n, bool keep_argmax) {
  const LayerPlan& p = model.layers[i];
  const float* x = ws.act[i].data();
  float* y = ws.act[i + 1].data();
  const size_t count = static_cast<size_t>(n) * p.out.size();
  switch (p.spec.kind) {
    case LayerKind::Dense: dense_forward(x, n, p.in.size(), p.out.c, P + p.w, P + p.b, y); break;
    case LayerKind::DepthwiseConv: depthwise_forward(x, n, p.geom, P + p.w, P + p.b, y); break;
    case LayerKind::ReLU: relu_forward(x, count, y); break;
    case LayerKind::MaxPool: maxpool_forward(x, n, p.geom, y, keep_argmax ? ws.argmax[i].data() : nullptr); break;
    case LayerKind::Flatten:
    case LayerKind::Save: std::memcpy(y, x, sizeof(float) * count); break;
    case LayerKind::Add: add_forward(x, ws.act[static_cast<size_t>(p.tap) + 1].data(), n, add_geom(model, p), y); break;
    case LayerKind::GlobalAvgPool: gap_forward(x, n, p.in.h * p.in.w, p.in.c, y); break;
    default: throw std::logic_error("forward: no common path for this layer");
  }
}

// Training: each layer as written, one case each. Trainable layers keep what backward reads (im2col, batch-norm
// statistics, dropout masks, max-pool argmax); frozen ones (below model.first_trainable) run as in inference.
void forward_train(Model& model, Workspace& ws, int n, size_t from, size_t end, const ForwardOptions& opt) {
  float* P = model.params.data();
  for (size_t i = from; i < end; ++i) {
    const LayerPlan& p = model.layers[i];
    const bool trains = static_cast<int>(i) >= model.first_trainable;
    const float* x = ws.act[i].data();
    float* y = ws.act[i + 1].data();
    const size_t count = static_cast<size_t>(n) * p.out.size();
    switch (p.spec.kind) {
      case LayerKind::Conv:
        if (trains) conv2d_forward(x, n, p.geom, P + p.w, P + p.b, ws.col[i].data(), y);
        else conv2d_forward_infer(x, n, p.geom, P + p.w, nullptr, P + p.b, ws.col[i].data(), y);
        break;
      case LayerKind::Dropout:
        if (p.spec.rate > 0.0f)
          dropout_forward(x, count, p.spec.rate, mix_seed(opt.dropout_seed, i), ws.col[i].data(), y,
                          static_cast<size_t>(opt.first_image) * p.out.size());
        else std::memcpy(y, x, sizeof(float) * count);
        break;
      case LayerKind::BatchNorm: {
        BatchNormParams bp{P + p.w, P + p.b, P + p.mean, P + p.var};
        const size_t rows = static_cast<size_t>(n) * p.out.h * p.out.w;
        if (trains) batchnorm_forward_train(x, rows, p.out.c, bp, ws.col[i].data(), ws.aux[i].data(), y, opt.across);
        else batchnorm_forward_infer(x, rows, p.out.c, bp, ws.aux[i].data(), y);
        break;
      }
      default: layer_forward_common(model, P, ws, i, n, true);
    }
  }
}

// Inference, with what the plan prepared: a convolution (plain or depthwise) followed by batch norm runs with the
// batch norm folded into its weights, straight into the batch norm's output, or with a ReLU after it (in the
// convolution's output stores) into the ReLU's, as does one followed by a ReLU alone; a 1x1 convolution and the
// residual add after it (with its ReLU, and the next block's save) run in one pass, and so do a batch norm or an add
// followed by a ReLU. The skipped layers' outputs are not written (nothing reads them in inference).
// P: the parameters (model.params, or a gate's base weights of the same layout).
void forward_infer(Model& model, float* P, Workspace& ws, int n, size_t from, size_t end, const InferencePlan* plan,
                   bool keep_argmax) {
  const auto next_is = [&](size_t i, LayerKind k) { return i < end && model.layers[i].spec.kind == k; };
  for (size_t i = from; i < end; ++i) {
    const LayerPlan& p = model.layers[i];
    const float* x = ws.act[i].data();
    float* y = ws.act[i + 1].data();
    const size_t count = static_cast<size_t>(n) * p.out.size();
    const bool conv = p.spec.kind == LayerKind::Conv, dw = p.spec.kind == LayerKind::DepthwiseConv;
    if ((conv || dw) && plan && !plan->bias[i].empty() && next_is(i + 1, LayerKind::BatchNorm)) {
      const bool relu = next_is(i + 2, LayerKind::ReLU);
      float* out = ws.act[i + (relu ? 3 : 2)].data();
      const float* w = plan->weights[i].data();
      if (conv)
        conv2d_forward_infer(x, n, p.geom, w, plan->conv[i].empty() ? nullptr : plan->conv[i].data(),
                             plan->bias[i].data(), ws.col[i].data(), out, relu);
      else
        depthwise_forward(x, n, p.geom, w, plan->bias[i].data(), out, relu);
      i += relu ? 2 : 1;
      continue;
    }
    if (conv && plan && p.geom.direct() && next_is(i + 1, LayerKind::Add)) {
      // A residual block's last 1x1 convolution, its add, the ReLU after it and the save that starts the next block:
      // one pass (the saved copy written with the output).
      const LayerPlan& a = model.layers[i + 1];
      const bool relu = next_is(i + 2, LayerKind::ReLU);
      const size_t last = i + 1 + (relu ? 1 : 0);
      const bool save = next_is(last + 1, LayerKind::Save);
      conv1x1_add_forward(x, n, p.geom, P + p.w, P + p.b, ws.act[static_cast<size_t>(a.tap) + 1].data(),
                          add_geom(model, a), ws.act[last + 1].data(), save ? ws.act[last + 2].data() : nullptr, relu);
      i = last + (save ? 1 : 0);
      continue;
    }
    if ((conv || dw) && plan && plan->bias[i].empty() && next_is(i + 1, LayerKind::ReLU)) {  // no batch norm between
      float* out = ws.act[i + 2].data();
      if (conv)
        conv2d_forward_infer(x, n, p.geom, P + p.w, plan->conv[i].empty() ? nullptr : plan->conv[i].data(), P + p.b,
                             ws.col[i].data(), out, true);
      else
        depthwise_forward(x, n, p.geom, P + p.w, P + p.b, out, true);
      ++i;
      continue;
    }
    switch (p.spec.kind) {
      case LayerKind::Conv: {
        // A plan's Winograd weights are this layer's own unless it folded a batch norm (which until_layer cut off).
        const bool folded = plan && !plan->bias[i].empty();
        conv2d_forward_infer(x, n, p.geom, P + p.w, plan && !folded && !plan->conv[i].empty() ? plan->conv[i].data()
                                                                                                : nullptr,
                             P + p.b, ws.col[i].data(), y);
        break;
      }
      case LayerKind::Add: {  // a ReLU after it runs in the same pass
        const bool relu = next_is(i + 1, LayerKind::ReLU);
        add_forward(x, ws.act[static_cast<size_t>(p.tap) + 1].data(), n, add_geom(model, p),
                    relu ? ws.act[i + 2].data() : y, relu);
        i += relu ? 1 : 0;
        break;
      }
      case LayerKind::Head:  // of the activation its save copied
        conv2d_forward_infer(ws.act[static_cast<size_t>(p.tap) + 1].data(), n, p.geom, P + p.w, nullptr, P + p.b,
                             ws.col[i].data(), y);
        break;
      case LayerKind::Dropout: std::memcpy(y, x, sizeof(float) * count); break;
      case LayerKind::BatchNorm: {
        BatchNormParams bp{P + p.w, P + p.b, P + p.mean, P + p.var};
        const size_t rows = static_cast<size_t>(n) * p.out.h * p.out.w;
        const bool relu = next_is(i + 1, LayerKind::ReLU);
        batchnorm_forward_infer(x, rows, p.out.c, bp, ws.aux[i].data(), relu ? ws.act[i + 2].data() : y, relu);
        i += relu ? 1 : 0;
        break;
      }
      default: layer_forward_common(model, P, ws, i, n, keep_argmax);
    }
  }
}
// A model with heads: each image's outputs, its heads' one after another (ws.heads).
const float* gather_heads(const Model& model, Workspace& ws, int n) {
  const size_t total = static_cast<size_t>(model.num_outputs());
  size_t at = 0;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerPlan& p = model.layers[i];
    if (p.spec.kind != LayerKind::Head) continue;
    const size_t size = static_cast<size_t>(p.out.size());
    for (int k = 0; k < n; ++k)
      std::memcpy(ws.heads.data() + k * total + at, ws.act[i + 1].data() + k * size, sizeof(float) * size);
    at += size;
  }
  return ws.heads.data();
}
}  // namespace

bool inside_residual_block(const Model& model, int layer) {
  for (size_t i = static_cast<size_t>(std::max(layer, 0)); i < model.layers.size(); ++i)
    if (model.layers[i].spec.kind == LayerKind::Add && model.layers[i].tap + 1 < layer) return true;
  return false;
}

const float* forward(Model& model, Workspace& ws, int n, const ForwardOptions& opt) {
  if (opt.train && !ws.training) throw std::logic_error("forward: training needs a workspace reserved for training");
  const int L = static_cast<int>(model.layers.size());
  const int end = opt.until_layer > 0 ? opt.until_layer : L;
  if (opt.from_layer < ws.from_layer || opt.from_layer >= end || end > L)
    throw std::logic_error("forward: from_layer/until_layer out of range (or before the workspace's from_layer)");
  for (int i = opt.from_layer; i < end; ++i) {
    const LayerPlan& p = model.layers[static_cast<size_t>(i)];
    if ((p.spec.kind == LayerKind::Add || p.spec.kind == LayerKind::Head) && p.tap + 1 < ws.from_layer)
      throw std::logic_error("forward: a residual block's add needs its saved activation, which the workspace "
                             "does not hold (from_layer past its save)");
  }
  const InferencePlan* plan = opt.train ? nullptr : opt.plan;
  if (plan && (plan->params != model.params.data() || plan->size != model.params.size() ||
               plan->conv.size() != model.layers.size() || plan->bias.size() != model.layers.size()))
    throw std::logic_error("forward: the inference plan was made for other weights");
  const size_t from = static_cast<size_t>(opt.from_layer), stop = static_cast<size_t>(end);
  if (model.spec.has_heads()) {
    if (opt.train) throw std::logic_error("forward: a model with heads runs for inference only");
    forward_infer(model, model.params.data(), ws, n, from, stop, plan, opt.keep_argmax);
    return stop == model.layers.size() ? gather_heads(model, ws, n) : ws.act[stop].data();
  }
  if (opt.train) {
    forward_train(model, ws, n, from, stop, opt);
    return ws.act[stop].data();
  }
  TeachGate& g = model.gate;
  if (!g.active() || from > static_cast<size_t>(g.layer) || stop != model.layers.size()) {
    forward_infer(model, model.params.data(), ws, n, from, stop, plan, opt.keep_argmax);
    return ws.act[stop].data();
  }
  // Gated (TeachGate): the base's head over the head input, then the taught head (whose activations stay in the
  // workspace, for a backward pass over the model's own weights), mixed per face.
  const size_t head = static_cast<size_t>(g.layer), classes = static_cast<size_t>(model.num_classes());
  const size_t d = static_cast<size_t>(model.layers[head].in.size());
  if (g.base.size() != model.params.size() || g.keys.size() % d)
    throw std::logic_error("forward: the teach gate does not fit the model");
  forward_infer(model, model.params.data(), ws, n, from, head, plan, opt.keep_argmax);
  forward_infer(model, g.base.data(), ws, n, head, stop, nullptr, opt.keep_argmax);
  float* z = ws.act[stop].data();
  std::copy(z, z + static_cast<size_t>(n) * classes, ws.gated.begin());
  forward_infer(model, model.params.data(), ws, n, head, stop, plan, opt.keep_argmax);
  const float* f = ws.act[head].data();
  const size_t keys = g.keys.size() / d;
  for (int i = 0; i < n; ++i) {
    const float* x = f + static_cast<size_t>(i) * d;
    double norm = 0, best = -1;
    for (size_t j = 0; j < d; ++j) norm += double(x[j]) * x[j];
    for (size_t k = 0; k < keys; ++k) {
      const float* key = g.keys.data() + k * d;
      double dot = 0;
      for (size_t j = 0; j < d; ++j) dot += double(x[j]) * key[j];
      best = std::max(best, dot);
    }
    const double s = norm > 0 ? best / std::sqrt(norm) : 0;
    const float w = static_cast<float>(std::exp((s - 1) / g.tau));
    for (size_t c = 0; c < classes; ++c) {
      float& zt = z[static_cast<size_t>(i) * classes + c];
      const float zb = ws.gated[static_cast<size_t>(i) * classes + c];
      zt = zb + w * (zt - zb);
    }
  }
  return z;
}

void zero_grads(Model& model) {
  if (model.grads.size() != model.params.size()) model.enable_grads();
  // Only the trainable layers' gradients are ever written.
  std::fill(model.grads.begin() + static_cast<std::ptrdiff_t>(first_trainable_offset(model)), model.grads.end(), 0.0f);
}

size_t first_trainable_offset(const Model& model) {
  for (const TensorRef& t : model.tensors)
    if (t.layer >= model.first_trainable) return t.offset;
  return model.params.size();
}

void backward(Model& model, Workspace& ws, int n, const float* dlogits, Collective* across) {
  if (model.spec.has_heads()) throw std::logic_error("backward: a model with heads runs for inference only");
  const float* P = model.params.data();
  float* G = model.grads.data();
  const size_t L = model.layers.size();
  std::memcpy(ws.dact[L].data(), dlogits, sizeof(float) * static_cast<size_t>(n) * model.num_classes());
  const int stop = std::max(model.first_trainable, 0);
  if (stop < ws.grad_from)
    throw std::logic_error("backward: the workspace was reserved for a model with more frozen layers");
  for (size_t ii = L; ii-- > static_cast<size_t>(stop);) {
    const LayerPlan& p = model.layers[ii];
    const float* dy = ws.dact[ii + 1].data();
    // No input gradient is needed below the first trainable layer (or for the input image).
    float* dx = ii > static_cast<size_t>(stop) ? ws.dact[ii].data() : nullptr;
    const float* x = ws.act[ii].data();
    const size_t count = static_cast<size_t>(n) * p.out.size();
    switch (p.spec.kind) {
      case LayerKind::Conv:
        conv2d_backward(dy, x, n, p.geom, P + p.w, p.geom.direct() ? x : ws.col[ii].data(),
                        G + p.w, G + p.b, ws.dcol.data(), dx);
        break;
      case LayerKind::Dense: dense_backward(dy, x, n, p.in.size(), p.out.c, P + p.w, G + p.w, G + p.b, dx); break;
      case LayerKind::DepthwiseConv: depthwise_backward(dy, x, n, p.geom, P + p.w, G + p.w, G + p.b, dx); break;
      case LayerKind::Save: {  // the gradient from above plus the one its add sent back along the shortcut
        float* side = ws.col[ii].data();
        if (dx)
          for (size_t j = 0; j < count; ++j) dx[j] = dy[j] + side[j];
        std::memset(side, 0, sizeof(float) * count);
        break;
      }
      case LayerKind::Add:
        add_backward(dy, ws.act[static_cast<size_t>(p.tap) + 1].data(), n, add_geom(model, p), dx,
                     p.tap >= stop ? ws.col[static_cast<size_t>(p.tap)].data() : nullptr);
        break;
      case LayerKind::ReLU:
        if (dx) relu_backward(dy, ws.act[ii + 1].data(), count, dx);
        break;
      case LayerKind::MaxPool:
        if (dx) maxpool_backward(dy, n, p.geom, ws.argmax[ii].data(), dx);
        break;
      case LayerKind::Dropout:
        if (dx) {
          if (p.spec.rate > 0.0f) dropout_backward(dy, ws.col[ii].data(), count, dx);
          else std::memcpy(dx, dy, sizeof(float) * count);
        }
        break;
      case LayerKind::BatchNorm:
        batchnorm_backward(dy, ws.col[ii].data(), ws.aux[ii].data(), static_cast<size_t>(n) * p.out.h * p.out.w,
                           p.out.c, P + p.w, G + p.w, G + p.b, dx, across);
        break;
      case LayerKind::Flatten:
        if (dx) std::memcpy(dx, dy, sizeof(float) * count);
        break;
      case LayerKind::GlobalAvgPool:
        if (dx) gap_backward(dy, n, p.in.h * p.in.w, p.in.c, dx);
        break;
      case LayerKind::Head: break;  // refused above
    }
  }
}

void load_input(const Model& model, Workspace& ws, const uint8_t* pixels, int n) {
  const Preprocess& pp = model.preprocess;
  const size_t count = static_cast<size_t>(n) * model.spec.input.size();
  float* x = ws.input();
  const float a = pp.scale / pp.std, b = -pp.mean / pp.std;
  for (size_t j = 0; j < count; ++j) x[j] = pixels[j] * a + b;
}

Model average_models(const std::vector<Model>& models, const std::vector<std::string>& names) {
  if (models.empty()) throw std::runtime_error("average: no models");
  auto name = [&](size_t m) { return m < names.size() ? names[m] : "model " + std::to_string(m + 1); };
  Model out = models[0];
  const std::string arch = format_spec(out.spec);
  for (size_t m = 1; m < models.size(); ++m) {
    if (format_spec(models[m].spec) != arch || models[m].params.size() != out.params.size())
      throw std::runtime_error(name(m) + ": another architecture than " + name(0) + " (" +
                               std::to_string(models[m].params.size()) + " parameters vs " +
                               std::to_string(out.params.size()) + "; averaging needs the same layers and shapes)");
    for (size_t j = 0; j < out.params.size(); ++j) out.params[j] += models[m].params[j];
  }
  const float scale = 1.0f / static_cast<float>(models.size());
  for (float& v : out.params) v *= scale;
  return out;
}

std::string deepen(const Model& src, Model& dst) {
  auto bad = [](size_t j, const std::string& why) {
    throw std::runtime_error("cannot deepen: layer " + std::to_string(j + 1) + " of the architecture " + why);
  };
  if (!(src.input_shape() == dst.input_shape())) bad(0, "(input): the input shapes differ");
  const size_t L = dst.layers.size();
  std::vector<int> from(L, -1);  // dst layer -> src layer, -1 inside an inserted block
  std::vector<size_t> last_bn;   // each inserted block's last batch norm
  std::string log;
  size_t i = 0;
  for (size_t j = 0; j < L; ++j) {
    const LayerPlan& d = dst.layers[j];
    const bool src_saves = i < src.layers.size() && src.layers[i].spec.kind == LayerKind::Save;
    if (d.spec.kind == LayerKind::Save && !src_saves) {  // an inserted block: save X ... add X
      size_t e = j + 1;
      while (e < L && !(dst.layers[e].spec.kind == LayerKind::Add && dst.layers[e].spec.tap == d.spec.tap)) ++e;
      if (e == L) bad(j, "(save " + d.spec.tap + ") has no 'add " + d.spec.tap + "' after it");
      if (dst.layers[e - 1].spec.kind != LayerKind::BatchNorm)
        bad(e - 1, "ends an inserted residual block, and is not a batch norm (whose zero scale makes the block add "
                   "nothing)");
      if (!(dst.layers[e].out == d.in)) bad(e, "(add " + d.spec.tap + ") changes the shape: an inserted block keeps it");
      last_bn.push_back(e - 1);
      log += "l" + std::to_string(j) + "-l" + std::to_string(e) + " residual block inserted\n";
      const bool after_relu = j > 0 && dst.layers[j - 1].spec.kind == LayerKind::ReLU;
      j = e;
      if (after_relu && j + 1 < L && dst.layers[j + 1].spec.kind == LayerKind::ReLU &&
          !(i < src.layers.size() && src.layers[i].spec.kind == LayerKind::ReLU))
        ++j;  // relu(x + 0) = x for x >= 0
      continue;
    }
    if (i >= src.layers.size()) bad(j, std::string("(") + layer_name(d.spec.kind) + ") is past the model's last layer");
    const LayerPlan& s = src.layers[i];
    if (s.spec.kind != d.spec.kind || s.spec.kernel != d.spec.kernel || s.spec.stride != d.spec.stride ||
        s.spec.same != d.spec.same || s.spec.tap != d.spec.tap || !(s.in == d.in) || !(s.out == d.out))
      bad(j, std::string("(") + layer_name(d.spec.kind) + ") differs from the model's layer " + std::to_string(i + 1) + " (" +
                 layer_name(s.spec.kind) + ")");
    from[j] = static_cast<int>(i++);
  }
  if (i != src.layers.size()) bad(L - 1, "is the last, and the model has more layers");
  if (last_bn.empty()) bad(0, "(input): no residual block is inserted");
  for (size_t j = 0; j < L; ++j) {
    if (from[j] < 0) continue;
    std::vector<const TensorRef*> a, b;
    for (const TensorRef& t : src.tensors)
      if (t.layer == from[j]) a.push_back(&t);
    for (const TensorRef& t : dst.tensors)
      if (t.layer == static_cast<int>(j)) b.push_back(&t);
    if (a.size() != b.size()) bad(j, "has another number of parameter tensors");
    for (size_t t = 0; t < a.size(); ++t) {
      if (a[t]->size != b[t]->size) bad(j, "has a parameter tensor of another size (" + b[t]->name + ")");
      std::copy_n(src.params.data() + a[t]->offset, a[t]->size, dst.params.data() + b[t]->offset);
    }
  }
  for (size_t j : last_bn) {
    const LayerPlan& p = dst.layers[j];
    std::fill_n(dst.params.data() + p.w, p.out.c, 0.0f);
    std::fill_n(dst.params.data() + p.b, p.out.c, 0.0f);
  }
  return log;
}

std::string widen(const Model& src, Model& dst, uint64_t seed, float noise) {
  auto bad = [](size_t i, const std::string& why) {
    throw std::runtime_error("cannot widen: layer " + std::to_string(i + 1) + " " + why);
  };
  if (!(src.input_shape() == dst.input_shape())) bad(0, "(input): the input shapes differ");
  for (size_t i = 0; i < std::max(src.layers.size(), dst.layers.size()); ++i) {
    if (i >= src.layers.size() || i >= dst.layers.size()) bad(i, "is in only one of the models");
    const LayerSpec &a = src.layers[i].spec, &b = dst.layers[i].spec;
    const std::string kind = layer_name(a.kind);
    if (a.kind != b.kind) bad(i, "is " + kind + " in one model and " + layer_name(b.kind) + " in the other");
    if (a.kind == LayerKind::DepthwiseConv || a.kind == LayerKind::Add || a.kind == LayerKind::Save ||
        a.kind == LayerKind::Head)
      bad(i, "(" + kind + "): widening covers chains of conv, dense and batch norm, not depthwise or residual layers");
    if (a.kernel != b.kernel || a.stride != b.stride || a.same != b.same)
      bad(i, "(" + kind + ") has another kernel, stride or padding");
    const int units = src.layers[i].out.c, wide = dst.layers[i].out.c;
    if ((a.kind == LayerKind::Conv || a.kind == LayerKind::Dense) && wide < units)
      bad(i, "(" + kind + ") has " + std::to_string(wide) + " units, fewer than " + std::to_string(units));
  }
  if (src.num_classes() != dst.num_classes()) bad(src.layers.size() - 1, "has another number of classes");
  Rng rng(seed);
  // from[c]: which of src's values dst's value c of the current activation copies; copies[k]: how many of dst's
  // values copy src's value k (the next conv or dense layer divides their weights by it).
  std::vector<int> from(static_cast<size_t>(src.input_shape().c)), copies(from.size(), 1);
  for (size_t c = 0; c < from.size(); ++c) from[c] = static_cast<int>(c);
  const float* S = src.params.data();
  float* D = dst.params.data();
  std::string log;
  for (size_t i = 0; i < src.layers.size(); ++i) {
    const LayerPlan &s = src.layers[i], &d = dst.layers[i];
    const LayerSpec& a = s.spec;
    switch (a.kind) {
      case LayerKind::Conv:
      case LayerKind::Dense: {
        const int units = s.out.c, wide = d.out.c;
        // Rows of w: conv (ky*k + kx)*cin + c, dense c; columns: output units.
        const int taps = a.kind == LayerKind::Conv ? a.kernel * a.kernel : 1;
        const int cin = a.kind == LayerKind::Conv ? s.in.c : s.in.size();
        const int cin_wide = a.kind == LayerKind::Conv ? d.in.c : d.in.size();
        std::vector<int> pick(static_cast<size_t>(wide));
        for (int j = 0; j < wide; ++j) pick[j] = j < units ? j : static_cast<int>(rng.below(units));
        const size_t count = static_cast<size_t>(taps) * cin * units;
        double sum = 0, sum2 = 0;
        for (size_t k = 0; k < count; ++k) sum += S[s.w + k], sum2 += double(S[s.w + k]) * S[s.w + k];
        const float sd = static_cast<float>(std::sqrt(std::max(0.0, sum2 / count - (sum / count) * (sum / count))));
        for (int t = 0; t < taps; ++t)
          for (int c = 0; c < cin_wide; ++c) {
            const float* in = S + s.w + (static_cast<size_t>(t) * cin + from[c]) * units;
            float* out = D + d.w + (static_cast<size_t>(t) * cin_wide + c) * wide;
            const float share = 1.0f / static_cast<float>(copies[from[c]]);
            for (int j = 0; j < wide; ++j) out[j] = in[pick[j]] * share + (j >= units ? noise * sd * rng.normal() : 0);
          }
        for (int j = 0; j < wide; ++j) D[d.b + j] = S[s.b + pick[j]];
        from = pick;
        copies.assign(static_cast<size_t>(units), 0);
        for (int k : pick) ++copies[k];
        if (wide > units)
          log += "l" + std::to_string(i) + " " + layer_name(a.kind) + " " + std::to_string(units) + " -> " +
                 std::to_string(wide) + "\n";
        break;
      }
      case LayerKind::BatchNorm:
        for (size_t c = 0; c < from.size(); ++c) {
          D[d.w + c] = S[s.w + from[c]];
          D[d.b + c] = S[s.b + from[c]];
          D[d.mean + c] = S[s.mean + from[c]];
          D[d.var + c] = S[s.var + from[c]];
        }
        break;
      case LayerKind::Flatten: {  // NHWC: value (y*W + x)*C + c
        const int pixels = s.in.h * s.in.w, C = s.in.c;
        std::vector<int> flat(static_cast<size_t>(pixels) * from.size()), flat_copies(static_cast<size_t>(pixels) * C);
        for (int p = 0; p < pixels; ++p) {
          for (size_t c = 0; c < from.size(); ++c) flat[p * from.size() + c] = p * C + from[c];
          for (int c = 0; c < C; ++c) flat_copies[static_cast<size_t>(p) * C + c] = copies[c];
        }
        from = std::move(flat);
        copies = std::move(flat_copies);
        break;
      }
      default: break;  // relu, maxpool, dropout, gap: value by value or channel by channel
    }
  }
  dst.class_names = src.class_names;
  dst.preprocess = src.preprocess;
  return log;
}

InferencePlan plan_inference(const Model& model) {
  InferencePlan plan;
  plan_inference(model, plan);
  return plan;
}

void plan_inference(const Model& model, InferencePlan& plan) {
  const float* P = model.params.data();
  plan.params = P;
  plan.size = model.params.size();
  const size_t L = model.layers.size();
  plan.weights.resize(L);
  plan.bias.resize(L);
  plan.conv.resize(L);
  for (size_t i = 0; i < L; ++i) {
    const LayerPlan& p = model.layers[i];
    const bool conv = p.spec.kind == LayerKind::Conv, dw = p.spec.kind == LayerKind::DepthwiseConv;
    const bool fold = (conv || dw) && i + 1 < L && model.layers[i + 1].spec.kind == LayerKind::BatchNorm;
    const size_t winograd = conv ? kernels::winograd_floats(p.geom) : 0;
    // What a plan of another architecture left here and this layer does not use goes.
    if (!fold) Floats().swap(plan.weights[i]), Floats().swap(plan.bias[i]);
    if (!winograd) Floats().swap(plan.conv[i]);
    if (!conv && !dw) continue;
    const float* w = P + p.w;
    if (fold) {  // weights w[row][cout]: a depthwise layer's rows are its k*k taps
      const LayerPlan& bn = model.layers[i + 1];
      const int cout = p.geom.cout, patch = conv ? p.geom.patch() : p.geom.k * p.geom.k;
      Floats& fw = plan.weights[i];
      Floats& fb = plan.bias[i];
      fw.resize(static_cast<size_t>(patch) * cout);
      fb.resize(static_cast<size_t>(cout));
      for (int c = 0; c < cout; ++c) {
        const float scale = P[bn.w + c] / std::sqrt(P[bn.var + c] + BatchNormParams{}.eps);
        fb[c] = (P[p.b + c] - P[bn.mean + c]) * scale + P[bn.b + c];
        for (int r = 0; r < patch; ++r) fw[static_cast<size_t>(r) * cout + c] = w[static_cast<size_t>(r) * cout + c] * scale;
      }
      w = fw.data();
    }
    if (winograd) {
      plan.conv[i].resize(winograd);
      kernels::winograd_prepare(p.geom, w, plan.conv[i].data());
    }
  }
}

void predict(Model& model, Workspace& ws, const uint8_t* pixels, int n, float* probs, bool flip_tta,
             const InferencePlan* plan) {
  const int classes = model.num_classes();
  ForwardOptions fo;
  fo.plan = plan;
  load_input(model, ws, pixels, n);
  softmax(forward(model, ws, n, fo), n, classes, probs, model.temperature);
  if (!flip_tta) return;
  const Shape in = model.spec.input;
  float* x = ws.input();
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < in.h; ++y)
      for (int c = 0; c < in.c; ++c) {
        float* row = x + (static_cast<size_t>(i) * in.h + y) * in.w * in.c;
        for (int a = 0, b = in.w - 1; a < b; ++a, --b) std::swap(row[a * in.c + c], row[b * in.c + c]);
      }
  softmax(forward(model, ws, n, fo), n, classes, ws.probs.data(), model.temperature);
  for (size_t j = 0; j < static_cast<size_t>(n) * classes; ++j) probs[j] = 0.5f * (probs[j] + ws.probs[j]);
}

}  // namespace ferkit
