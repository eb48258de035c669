#include "explain.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "rng.h"

namespace ferkit {

namespace {

// dx, the gradient with respect to layer i's input, from dy, the gradient with respect to its output, through the
// inference pass of one image held in ws. backward()'s kernels, but for the input gradient only (no parameter
// gradients) and with inference's layers: dropout is the identity, batch norm the affine map of its running
// statistics.
// side[i]: for a save layer, the gradient its add layers sent back along the shortcut (added in, then zeroed).
void layer_input_gradient(const Model& m, const Workspace& ws, size_t i, const float* dy, float* dx, float* dcol,
                          std::vector<Floats>& side) {
  const LayerPlan& p = m.layers[i];
  const float* P = m.params.data();
  switch (p.spec.kind) {
    case LayerKind::DepthwiseConv:
      depthwise_backward(dy, ws.act[i].data(), 1, p.geom, P + p.w, nullptr, nullptr, dx);
      break;
    case LayerKind::Save: {
      Floats& s = side[i];
      for (size_t j = 0; j < s.size(); ++j) dx[j] = dy[j] + s[j];
      std::fill(s.begin(), s.end(), 0.0f);
      break;
    }
    case LayerKind::Add:
      add_backward(dy, ws.act[static_cast<size_t>(p.tap) + 1].data(), 1, add_geom(m, p), dx,
                   side[static_cast<size_t>(p.tap)].data());
      break;
    case LayerKind::Conv: conv2d_backward(dy, nullptr, 1, p.geom, P + p.w, nullptr, nullptr, nullptr, dcol, dx); break;
    case LayerKind::Dense: dense_backward(dy, nullptr, 1, p.in.size(), p.out.c, P + p.w, nullptr, nullptr, dx); break;
    case LayerKind::ReLU: relu_backward(dy, ws.act[i + 1].data(), p.out.size(), dx); break;
    case LayerKind::MaxPool: maxpool_backward(dy, 1, p.geom, ws.argmax[i].data(), dx); break;
    case LayerKind::BatchNorm:  // with forward()'s epsilon
      batchnorm_backward_infer(dy, static_cast<size_t>(p.out.h) * p.out.w, p.out.c, P + p.w, P + p.var,
                               BatchNormParams{}.eps, dx);
      break;
    case LayerKind::Dropout:
    case LayerKind::Flatten: std::memcpy(dx, dy, sizeof(float) * p.out.size()); break;
    case LayerKind::GlobalAvgPool: gap_backward(dy, 1, p.in.h * p.in.w, p.in.c, dx); break;
    case LayerKind::Head: throw std::logic_error("explain: a model with heads has no classes to explain");
  }
}

// The layer after the last convolution and the batch norms and ReLUs right after it; -1 without a convolution.
int find_cam_layer(const Model& m) {
  int last = -1;
  for (size_t i = 0; i < m.layers.size(); ++i)
    if (m.layers[i].spec.kind == LayerKind::Conv) last = static_cast<int>(i);
  if (last < 0) return -1;
  size_t k = static_cast<size_t>(last) + 1;
  while (k < m.layers.size() &&
         (m.layers[k].spec.kind == LayerKind::BatchNorm || m.layers[k].spec.kind == LayerKind::ReLU))
    ++k;
  return static_cast<int>(k);
}

// The shape of the input of layer i (i == the number of layers: of the logits).
Shape input_of(const Model& m, size_t i) { return i < m.layers.size() ? m.layers[i].in : m.layers.back().out; }

// Bilinear resampling of src (h x w) to dst (H x W) with pixel centres aligned (OpenCV's INTER_LINEAR, PyTorch's
// align_corners = false); the border values extend past the outermost centres.
void upsample_bilinear(const float* src, int h, int w, float* dst, int H, int W) {
  const auto at = [](int out, int in_size, int out_size, int& i0, int& i1, float& t) {
    const float f = std::clamp((out + 0.5f) * in_size / out_size - 0.5f, 0.0f, static_cast<float>(in_size - 1));
    i0 = static_cast<int>(f);
    i1 = std::min(i0 + 1, in_size - 1);
    t = f - static_cast<float>(i0);
  };
  for (int y = 0; y < H; ++y) {
    int y0, y1, x0, x1;
    float ty, tx;
    at(y, h, H, y0, y1, ty);
    for (int x = 0; x < W; ++x) {
      at(x, w, W, x0, x1, tx);
      const float top = (1 - tx) * src[y0 * w + x0] + tx * src[y0 * w + x1];
      const float bottom = (1 - tx) * src[y1 * w + x0] + tx * src[y1 * w + x1];
      dst[y * W + x] = (1 - ty) * top + ty * bottom;
    }
  }
}

// Scales a non-negative map so that its largest value is 1 (all zeros where none is above 0).
void normalize_max(float* map, size_t count) {
  float mx = 0.0f;
  for (size_t j = 0; j < count; ++j) mx = std::max(mx, map[j]);
  for (size_t j = 0; j < count; ++j) map[j] = mx > 0.0f ? map[j] / mx : 0.0f;  // (a division: the largest is 1 exactly)
}

}  // namespace

const char* saliency_method_name(SaliencyMethod m) {
  switch (m) {
    case SaliencyMethod::GradCam: return "gradcam";
    case SaliencyMethod::GradientTimesInput: return "gradient-x-input";
    case SaliencyMethod::SmoothGrad: return "smoothgrad";
  }
  return "?";
}

SaliencyMethod saliency_method_from_name(const std::string& name) {
  for (SaliencyMethod m : {SaliencyMethod::GradCam, SaliencyMethod::GradientTimesInput, SaliencyMethod::SmoothGrad})
    if (name == saliency_method_name(m)) return m;
  throw std::invalid_argument("unknown saliency method '" + name + "' (expected gradcam, gradient-x-input or smoothgrad)");
}

Explainer::Explainer(const Model& model, bool planned) : model_(&model) {
  if (model.layers.empty() || model.params.size() != model.planned_params())
    throw std::invalid_argument("explain: the model has no weights (allocate or load it first)");
  if (model.spec.has_heads()) throw std::invalid_argument("explain: a model with heads has no classes to explain");
  ws_.reserve(model, 1);
  const size_t L = model.layers.size();
  grad_.assign(L + 1, {});
  side_.assign(L, {});
  grad_[0].assign(static_cast<size_t>(model.input_shape().size()), 0.0f);
  size_t dcol = 0;
  for (size_t i = 0; i < L; ++i) {
    const LayerPlan& p = model.layers[i];
    grad_[i + 1].assign(static_cast<size_t>(p.out.size()), 0.0f);
    if (p.spec.kind == LayerKind::Save) side_[i].assign(static_cast<size_t>(p.out.size()), 0.0f);
    if (p.spec.kind == LayerKind::Conv && !p.geom.direct())
      dcol = std::max(dcol, static_cast<size_t>(p.out.h) * p.out.w * p.geom.patch());
  }
  dcol_.assign(dcol, 0.0f);
  input_.assign(grad_[0].size(), 0.0f);
  cam_layer_ = find_cam_layer(model);
  if (cam_layer_ >= 0) {
    const Shape a = input_of(model, static_cast<size_t>(cam_layer_));
    weights_.assign(static_cast<size_t>(a.c), 0.0f);
    cam_.assign(static_cast<size_t>(a.h) * a.w, 0.0f);
    planned_ = planned && cam_layer_ > 0 && cam_layer_ < static_cast<int>(model.layers.size());
    if (planned_) plan_ = plan_inference(model);
  }
}

void Explainer::check(const uint8_t* crop, const ExplainOptions& o, const float* map) const {
  const int classes = model_->num_classes();
  if (!crop) throw std::invalid_argument("explain: no crop (a null pointer)");
  if (!map) throw std::invalid_argument("explain: no map to write (a null pointer)");
  if (o.cls < -1 || o.cls >= classes)
    throw std::invalid_argument("explain: class " + std::to_string(o.cls) + " is out of range (the model has " +
                                std::to_string(classes) + " classes; -1 explains the predicted one)");
  if (o.method == SaliencyMethod::GradCam && cam_layer_ < 0)
    throw std::invalid_argument("explain: Grad-CAM needs a convolution layer and this model has none (use "
                                "gradient-x-input or smoothgrad)");
  if (o.method == SaliencyMethod::SmoothGrad &&
      (o.smooth_samples < 1 || o.smooth_samples > kMaxSmoothSamples || !(o.smooth_noise >= 0.0f) ||
       !std::isfinite(o.smooth_noise)))
    throw std::invalid_argument("explain: SmoothGrad needs 1 to " + std::to_string(kMaxSmoothSamples) +
                                " samples and a finite noise level >= 0 (got " + std::to_string(o.smooth_samples) +
                                " and " + std::to_string(o.smooth_noise) + ")");
}

const float* Explainer::run_forward(const float* x) {
  if (x != ws_.input()) std::copy(x, x + input_.size(), ws_.input());
  ForwardOptions fo;
  fo.keep_argmax = true;
  // Only training writes the model (batch-norm running statistics); this pass is inference, so the model stays
  // as it is (tests/test_explain.cpp compares its bytes).
  return forward(const_cast<Model&>(*model_), ws_, 1, fo);
}

// The layers before Grad-CAM's block with the plan (no gradient goes through them), the rest plainly, recording
// what backward_to reads (ReLU outputs, max-pool argmax).
const float* Explainer::run_forward_planned() {
  Model& m = const_cast<Model&>(*model_);  // inference only, as run_forward
  ForwardOptions fo;
  fo.plan = &plan_;
  fo.until_layer = cam_layer_;
  forward(m, ws_, 1, fo);
  ForwardOptions rest;
  rest.keep_argmax = true;
  rest.from_layer = cam_layer_;
  return forward(m, ws_, 1, rest);
}

void Explainer::backward_to(int layer, int cls) {
  const size_t L = model_->layers.size();
  std::fill(grad_[L].begin(), grad_[L].end(), 0.0f);
  grad_[L][static_cast<size_t>(cls)] = 1.0f;  // d logit[cls] / d logits
  for (size_t i = L; i-- > static_cast<size_t>(layer);)
    layer_input_gradient(*model_, ws_, i, grad_[i + 1].data(), grad_[i].data(), dcol_.data(), side_);
  // A block cut by `layer` (its add above, its save below) leaves a shortcut gradient that no save consumed.
  for (Floats& s : side_) std::fill(s.begin(), s.end(), 0.0f);
}

const float* Explainer::gradient(const float* x, int cls, int layer) {
  if (!x) throw std::invalid_argument("explain: no input (a null pointer)");
  if (cls < 0 || cls >= model_->num_classes())
    throw std::invalid_argument("explain: class " + std::to_string(cls) + " is out of range");
  if (layer < 0 || layer > static_cast<int>(model_->layers.size()))
    throw std::invalid_argument("explain: layer " + std::to_string(layer) + " is out of range");
  run_forward(x);
  backward_to(layer, cls);
  return grad_[static_cast<size_t>(layer)].data();
}

void Explainer::grad_cam(int cls, float* map) {
  backward_to(cam_layer_, cls);
  const Shape a = input_of(*model_, static_cast<size_t>(cam_layer_));
  const size_t pixels = static_cast<size_t>(a.h) * a.w, C = static_cast<size_t>(a.c);
  const float* A = ws_.act[static_cast<size_t>(cam_layer_)].data();
  const float* G = grad_[static_cast<size_t>(cam_layer_)].data();
  std::fill(weights_.begin(), weights_.end(), 0.0f);
  for (size_t p = 0; p < pixels; ++p)
    for (size_t c = 0; c < C; ++c) weights_[c] += G[p * C + c];
  for (float& w : weights_) w /= static_cast<float>(pixels);  // alpha_c: the spatial mean of the gradient
  for (size_t p = 0; p < pixels; ++p) {
    float v = 0.0f;
    for (size_t c = 0; c < C; ++c) v += weights_[c] * A[p * C + c];
    cam_[p] = std::max(v, 0.0f);
  }
  upsample_bilinear(cam_.data(), a.h, a.w, map, map_height(), map_width());
}

void Explainer::input_gradient_map(int cls, bool times_input, float* map) {
  backward_to(0, cls);
  const size_t pixels = static_cast<size_t>(map_height()) * map_width();
  const size_t C = static_cast<size_t>(model_->input_shape().c);
  const float* g = grad_[0].data();
  for (size_t p = 0; p < pixels; ++p)
    for (size_t c = 0; c < C; ++c) map[p] += std::fabs(times_input ? g[p * C + c] * input_[p * C + c] : g[p * C + c]);
}

void Explainer::smooth_grad(const ExplainOptions& o, int cls, float* map) {
  const Preprocess& pp = model_->preprocess;
  const float sigma = o.smooth_noise * 255.0f * std::fabs(pp.scale / pp.std);  // of the input range, pixels 0..255
  Rng rng(o.seed);
  float* x = ws_.input();
  for (int s = 0; s < o.smooth_samples; ++s) {
    for (size_t j = 0; j < input_.size(); ++j) x[j] = input_[j] + sigma * rng.normal();
    run_forward(x);
    input_gradient_map(cls, false, map);  // a sum over the samples: the mean but for a factor normalize removes
  }
}

int Explainer::explain(const uint8_t* crop, const ExplainOptions& o, float* map, float* probs) {
  check(crop, o, map);
  const int classes = model_->num_classes();
  load_input(*model_, ws_, crop, 1);
  std::copy(ws_.input(), ws_.input() + input_.size(), input_.begin());
  const bool planned = planned_ && o.method == SaliencyMethod::GradCam;
  softmax(planned ? run_forward_planned() : run_forward(ws_.input()), 1, classes, ws_.probs.data(), model_->temperature);
  const float* p = ws_.probs.data();
  if (probs) std::copy(p, p + classes, probs);
  const int cls = o.cls >= 0 ? o.cls : static_cast<int>(std::max_element(p, p + classes) - p);
  const size_t pixels = static_cast<size_t>(map_height()) * map_width();
  if (o.method != SaliencyMethod::GradCam) std::fill(map, map + pixels, 0.0f);
  switch (o.method) {
    case SaliencyMethod::GradCam: grad_cam(cls, map); break;
    case SaliencyMethod::GradientTimesInput: input_gradient_map(cls, true, map); break;
    case SaliencyMethod::SmoothGrad: smooth_grad(o, cls, map); break;
  }
  normalize_max(map, pixels);
  return cls;
}

void saliency_colour(float v, uint8_t* rgb) {
  // Piecewise-linear through five stops (dark blue, purple, red, orange, yellow).
  static constexpr float kStops[5][3] = {{10, 10, 80}, {120, 30, 140}, {220, 40, 40}, {250, 150, 20}, {255, 245, 110}};
  const float t = std::clamp(std::isfinite(v) ? v : 0.0f, 0.0f, 1.0f) * 4.0f;
  const int k = std::min(static_cast<int>(t), 3);
  const float f = t - static_cast<float>(k);
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<uint8_t>(kStops[k][c] + f * (kStops[k + 1][c] - kStops[k][c]) + 0.5f);
}

}  // namespace ferkit
