// Saliency maps (core/explain.h): the gradients they rest on against finite differences, Grad-CAM against its
// formula, the model left as it was, the sanity checks of Adebayo et al. 2018 on a model trained on made-up images
// where only a bar in the top-left quadrant carries the class (the maps' mass lies in that quadrant; re-initialized
// weights give other maps), and maps computed natively, which the WebAssembly build must reproduce. Self-contained
// (no files) and deterministic: it also runs as WebAssembly under node.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "data.h"
#include "explain.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "rng.h"
#include "spec.h"
#include "train.h"

using namespace ferkit;

namespace {

constexpr SaliencyMethod kMethods[] = {SaliencyMethod::GradCam, SaliencyMethod::GradientTimesInput,
                                       SaliencyMethod::SmoothGrad};

// A model of the spec with random weights, biases and batch-norm scales, and batch-norm running statistics far
// from the initial 0 and 1, so that inference's batch norm is a non-trivial affine map.
Model random_model(const std::string& spec, uint64_t seed) {
  Model m(parse_spec(spec));
  m.init(seed);
  Rng rng(seed + 1);
  for (const LayerPlan& p : m.layers) {
    if (p.spec.kind == LayerKind::Conv || p.spec.kind == LayerKind::Dense)
      for (int c = 0; c < p.out.c; ++c) m.params[p.b + c] = 0.1f * rng.normal();
    if (p.spec.kind != LayerKind::BatchNorm) continue;
    for (int c = 0; c < p.out.c; ++c) {
      m.params[p.w + c] = 1.0f + 0.3f * rng.normal();
      m.params[p.b + c] = 0.2f * rng.normal();
      m.params[p.mean + c] = 0.3f * rng.normal();
      m.params[p.var + c] = rng.uniform(0.3f, 2.0f);
    }
  }
  return m;
}

std::vector<uint8_t> random_pixels(const Model& m, uint64_t seed) {
  std::vector<uint8_t> px(static_cast<size_t>(m.input_shape().size()));
  Rng rng(seed);
  for (uint8_t& p : px) p = static_cast<uint8_t>(rng.below(256));
  return px;
}

// Class cls's logit for the values already in ws.act[from] (a plain inference pass from that layer).
float logit_from(Model& m, Workspace& ws, int from, int cls) {
  ForwardOptions fo;
  fo.from_layer = from;
  return forward(m, ws, 1, fo)[cls];
}

// Compares an analytic gradient of class cls's logit with respect to ws.act[layer] with central differences of
// step 1e-2. The logit is piecewise linear in those values (every layer is, at inference), so the difference is
// exact up to float rounding unless the step carries a ReLU or max-pool across a kink; where the first
// comparison fails, a 10x smaller step must agree.
void expect_matches_differences(Model& m, Workspace& ws, int layer, int cls, const float* analytic) {
  Floats& a = ws.act[static_cast<size_t>(layer)];
  const Floats saved = a;
  const auto difference = [&](size_t j, float h) {
    a = saved;
    a[j] = saved[j] + h;
    const double up = logit_from(m, ws, layer, cls);
    a[j] = saved[j] - h;
    const double down = logit_from(m, ws, layer, cls);
    return (up - down) / (2.0 * h);
  };
  for (size_t j = 0; j < saved.size(); ++j) {
    double numeric = difference(j, 1e-2f);
    if (std::fabs(analytic[j] - numeric) > 1e-3 + 1e-2 * std::fabs(numeric)) {
      numeric = difference(j, 1e-3f);
      EXPECT_NEAR(analytic[j], numeric, 5e-3 + 2e-2 * std::fabs(numeric)) << "layer " << layer << " value " << j;
    }
  }
  a = saved;
}

// Spearman's rank correlation (average ranks for ties; 0 where either map is constant), as Adebayo et al. compare
// saliency maps.
std::vector<double> ranks(const std::vector<float>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j);
    i = j + 1;
  }
  return r;
}

double spearman(const std::vector<float>& a, const std::vector<float>& b) {
  const std::vector<double> x = ranks(a), y = ranks(b);
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
}

// Made-up faces where only the top-left quadrant carries the class: a bright bar there (class 0 horizontal, class 1
// vertical, 3 x 12 pixels, anywhere inside the quadrant), on dark noise that fills the whole image.
Dataset bars(int count, uint64_t seed) {
  Dataset d;
  Rng rng(seed);
  uint8_t px[kPixels];
  const int half = kSide / 2;
  for (int i = 0; i < count; ++i) {
    const int label = i % 2, h = label == 0 ? 3 : 12, w = label == 0 ? 12 : 3;
    for (uint8_t& p : px) p = static_cast<uint8_t>(20 + rng.below(60));
    const int y0 = 2 + static_cast<int>(rng.below(half - 3 - h)), x0 = 2 + static_cast<int>(rng.below(half - 3 - w));
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x) px[y * kSide + x] = static_cast<uint8_t>(220 + rng.below(30));
    d.add(px, label);
  }
  return d;
}

// The share of a 48x48 map's mass inside the top-left quadrant.
double mass_top_left(const std::vector<float>& map) {
  double inside = 0, total = 0;
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      const double v = map[static_cast<size_t>(y) * kSide + x];
      total += v;
      if (y < kSide / 2 && x < kSide / 2) inside += v;
    }
  return total > 0 ? inside / total : 0.0;
}

// A small convolutional network with a flatten head trained to tell the bars apart (4 epochs of SGD with momentum:
// 100% on held-out bars; made once per process).
const Model& bar_model() {
  static const Model model = [] {
    Model m(parse_spec("input 48 48 1\nconv 8 3 2 same\nrelu\nmaxpool 2\nconv 16 3 same\nbn\nrelu\nmaxpool 2\n"
                       "flatten\ndense 2\nsoftmax\n"));
    m.init(5);
    TrainConfig cfg;
    cfg.epochs = 4;
    cfg.batch = 32;
    cfg.optim.kind = OptimKind::SGD;
    cfg.optim.lr = 0.05f;
    const Dataset train = bars(600, 1);
    Trainer t(m, train, nullptr, cfg);
    while (!t.finished()) t.run_epoch();
    return m;
  }();
  return model;
}

std::vector<float> map_of(Explainer& ex, const uint8_t* crop, SaliencyMethod method, int cls = -1,
                          int* explained = nullptr) {
  std::vector<float> map(static_cast<size_t>(ex.map_height()) * ex.map_width());
  ExplainOptions o;
  o.method = method;
  o.cls = cls;
  const int c = ex.explain(crop, o, map.data());
  if (explained) *explained = c;
  return map;
}

}  // namespace

TEST(Explain, GradientsMatchFiniteDifferences) {
  // conv (same, strided, valid, pointwise), bn on maps and on dense outputs, relu, tiling and overlapping max
  // pooling, dropout, flatten and gap.
  for (const char* spec : {"input 10 10 2; conv 4 3 same; bn; relu; maxpool 2; dropout 0.3; conv 5 3 same; bn; "
                           "relu; flatten; dense 6; bn; relu; dropout 0.2; dense 3; softmax",
                           "input 11 9 1; conv 4 3 2 same; bn; relu; conv 6 1; relu; maxpool 3 2; conv 5 2 1 valid; "
                           "gap; dense 3; softmax",
                           // residual blocks (an identity shortcut; a pooled, zero-padded one) and depthwise layers
                           "input 10 10 2; conv 4 3 same; bn; relu; save a; dwconv 3 same; bn; relu; conv 4 1; add a; "
                           "relu; save b; dwconv 5 2 same; conv 6 1; add b; relu; gap; dense 3; softmax"}) {
    Model m = random_model(spec, 3);
    Explainer ex(m);
    Workspace ws;
    ws.reserve(m, 1);
    const std::vector<uint8_t> px = random_pixels(m, 4);
    for (int cls = 0; cls < m.num_classes(); ++cls)
      for (int layer : {0, ex.cam_layer()}) {
        load_input(m, ws, px.data(), 1);
        forward(m, ws, 1, {});  // fills ws.act[layer]
        const Floats x = ws.act[0];
        const float* g = ex.gradient(x.data(), cls, layer);
        const std::vector<float> analytic(g, g + ws.act[static_cast<size_t>(layer)].size());
        expect_matches_differences(m, ws, layer, cls, analytic.data());
      }
  }
}

// Without pooling between the last convolution and gap -> dense, Grad-CAM is CAM (Zhou et al. 2016): the class's
// dense weights over the feature maps, and at the input's resolution the upsampling is the identity.
TEST(Explain, GradCamIsTheClassWeightedSumOfTheLastFeatureMaps) {
  Model m = random_model("input 8 8 2; conv 4 3 same; relu; gap; dense 3; softmax", 6);
  Explainer ex(m);
  ASSERT_EQ(ex.cam_layer(), 2);  // the input of gap: the ReLU's output
  const std::vector<uint8_t> px = random_pixels(m, 7);
  Workspace ws;
  ws.reserve(m, 1);
  load_input(m, ws, px.data(), 1);
  forward(m, ws, 1, {});
  const float* A = ws.act[2].data();
  const float* w = m.params.data() + m.layers[3].w;  // [4][3]
  int positive = 0;
  for (int cls = 0; cls < 3; ++cls) {
    std::vector<float> expect(64);
    for (int p = 0; p < 64; ++p) {
      float v = 0;
      for (int k = 0; k < 4; ++k) v += w[k * 3 + cls] * A[p * 4 + k] / 64.0f;
      expect[p] = std::max(v, 0.0f);
    }
    const float mx = *std::max_element(expect.begin(), expect.end());  // 0: no evidence for the class, no map
    positive += mx > 0;
    const std::vector<float> map = map_of(ex, px.data(), SaliencyMethod::GradCam, cls);
    for (int p = 0; p < 64; ++p)
      EXPECT_NEAR(map[p], mx > 0 ? expect[p] / mx : 0.0f, 1e-5) << "class " << cls << " pixel " << p;
  }
  EXPECT_GE(positive, 1);
}

// Grad-CAM from the gradient at its layer (checked above), on a 4x2 map upsampled 3x to a non-square 12x6 input:
// with pixel centres aligned, output (3i + 1, 3j + 1) is exactly map value (i, j), output row 3i + 2 is 2/3 of
// row i and 1/3 of row i + 1, and the borders repeat the outermost values.
TEST(Explain, GradCamIsUpsampledBilinearly) {
  Model m = random_model("input 12 6 2; conv 4 3 3 same; relu; gap; dense 3; softmax", 14);
  Explainer ex(m);
  ASSERT_EQ(ex.cam_layer(), 2);
  const std::vector<uint8_t> px = random_pixels(m, 15);
  Workspace ws;
  ws.reserve(m, 1);
  load_input(m, ws, px.data(), 1);
  forward(m, ws, 1, {});
  const Floats x = ws.act[0], A = ws.act[2];  // A: 4 x 2 x 4
  int positive = 0;
  for (int cls = 0; cls < 3; ++cls) {
    const float* G = ex.gradient(x.data(), cls, 2);
    float cam[4][2], mx = 0;
    for (int p = 0; p < 8; ++p) {
      float v = 0;
      for (int c = 0; c < 4; ++c) {
        float alpha = 0;
        for (int q = 0; q < 8; ++q) alpha += G[q * 4 + c] / 8;
        v += alpha * A[p * 4 + c];
      }
      mx = std::max(mx, cam[p / 2][p % 2] = std::max(v, 0.0f));
    }
    if (mx == 0) continue;  // no evidence for the class (a map of zeros: the test above)
    ++positive;
    const std::vector<float> map = map_of(ex, px.data(), SaliencyMethod::GradCam, cls);
    const auto at = [&](int y, int x) { return map[static_cast<size_t>(y) * 6 + x]; };
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 2; ++j) EXPECT_NEAR(at(3 * i + 1, 3 * j + 1), cam[i][j] / mx, 1e-5) << i << "," << j;
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(at(3 * i + 2, 1), (2 * cam[i][0] + cam[i + 1][0]) / 3 / mx, 1e-5) << i;
    EXPECT_NEAR(at(0, 0), cam[0][0] / mx, 1e-5);
    EXPECT_NEAR(at(11, 5), cam[3][1] / mx, 1e-5);
  }
  EXPECT_GE(positive, 1);
}

// Every method on a model with batch norm (non-trivial statistics) and dropout: the saved model's bytes and the
// gradient buffer are as they were, and the probabilities are predict()'s, to the bit.
TEST(Explain, LeavesTheModelUntouched) {
  Model m = random_model("input 16 16 1; conv 4 3 same; bn; relu; maxpool 2; dropout 0.5; conv 6 3 same; bn; relu; "
                         "flatten; dense 8; bn; relu; dropout 0.5; dense 4; softmax", 8);
  m.enable_grads();
  for (size_t j = 0; j < m.grads.size(); ++j) m.grads[j] = 0.001f * static_cast<float>(j % 97);
  const std::vector<uint8_t> before = save_model(m, nlohmann::json::object());
  const Floats grads = m.grads;
  const std::vector<uint8_t> px = random_pixels(m, 9);
  std::vector<float> expect(4), probs(4);
  Workspace ws;
  ws.reserve(m, 1);
  predict(m, ws, px.data(), 1, expect.data());
  Explainer ex(m);
  std::vector<float> map(256);
  for (SaliencyMethod method : kMethods)
    for (int cls : {-1, 2}) {
      ExplainOptions o;
      o.method = method;
      o.cls = cls;
      ex.explain(px.data(), o, map.data(), probs.data());
      EXPECT_EQ(probs, expect) << saliency_method_name(method);
    }
  EXPECT_EQ(save_model(m, nlohmann::json::object()), before);
  EXPECT_EQ(m.grads, grads);
  EXPECT_EQ(m.first_trainable, 0);
}

// The maps of a model that learnt the bars lie where the class is: on held-out images, most of each method's mass
// is in the top-left quadrant (a quarter of the image). Bounds: the mean share over the images.
TEST(Explain, MapsLieOnTheRegionThatCarriesTheClass) {
  const Model& m = bar_model();
  Explainer ex(m);
  const Dataset test = bars(40, 3);
  const double bound[] = {0.8, 0.8, 0.6};  // Grad-CAM, gradient x input, SmoothGrad (its |gradient| has no input)
  for (SaliencyMethod method : kMethods) {
    double sum = 0;
    int right = 0;
    for (size_t i = 0; i < test.size(); ++i) {
      int cls = -1;
      sum += mass_top_left(map_of(ex, test.image(i), method, -1, &cls));
      right += cls == test.labels[i];
    }
    EXPECT_GE(right, 38) << "the model did not learn the bars";
    EXPECT_GT(sum / test.size(), bound[static_cast<int>(method)]) << saliency_method_name(method);
  }
}

// Adebayo et al.'s model randomization test: the same images through the same architecture with re-initialized
// weights give maps that are unlike the trained model's (mean rank correlation below a bound).
TEST(Explain, RandomizedWeightsChangeTheMaps) {
  const Model& trained = bar_model();
  Model random = trained;
  random.init(77);
  Explainer a(trained), b(random);
  const Dataset test = bars(20, 4);
  for (SaliencyMethod method : kMethods) {
    double sum = 0;
    for (size_t i = 0; i < test.size(); ++i) {
      const uint8_t* px = test.image(i);
      int cls = -1;
      const std::vector<float> ma = map_of(a, px, method, -1, &cls);
      sum += spearman(ma, map_of(b, px, method, cls));
    }
    EXPECT_LT(sum / test.size(), 0.5) << saliency_method_name(method);
  }
}

// Grad-CAM depends on the class asked about: for the trained model, the other class's map is unlike the
// predicted one's.
TEST(Explain, GradCamDependsOnTheClass) {
  Explainer ex(bar_model());
  const Dataset test = bars(20, 5);
  double sum = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    int cls = -1;
    const std::vector<float> mine = map_of(ex, test.image(i), SaliencyMethod::GradCam, -1, &cls);
    sum += spearman(mine, map_of(ex, test.image(i), SaliencyMethod::GradCam, 1 - cls));
  }
  EXPECT_LT(sum / test.size(), 0.5);
}

// Every kind of network the spec language makes (pointwise and strided convolutions, non-square and multi-channel
// inputs, no convolution at all) gets maps in [0, 1] whose largest value is 1, the same on every call.
TEST(Explain, WorksForEveryArchitecture) {
  for (const std::string& spec : {builtin_spec("seed"), builtin_spec("tiny"),
                                  std::string("input 8 12 3; conv 4 3 2 valid; relu; conv 3 1; flatten; dense 4; softmax"),
                                  std::string("input 6 6 1; flatten; dense 5; relu; dropout 0.5; dense 3; softmax")}) {
    Model m = random_model(spec, 10);
    Explainer ex(m);
    const std::vector<uint8_t> px = random_pixels(m, 11);
    for (SaliencyMethod method : kMethods) {
      if (method == SaliencyMethod::GradCam && ex.cam_layer() < 0) continue;
      ExplainOptions o;
      o.method = method;
      o.smooth_samples = 3;
      std::vector<float> map(static_cast<size_t>(ex.map_height()) * ex.map_width(), -1.0f), again = map;
      ex.explain(px.data(), o, map.data());
      ex.explain(px.data(), o, again.data());
      EXPECT_EQ(map, again) << spec << saliency_method_name(method);
      for (float v : map) ASSERT_TRUE(v >= 0.0f && v <= 1.0f) << spec << saliency_method_name(method);
      EXPECT_EQ(*std::max_element(map.begin(), map.end()), 1.0f) << spec << saliency_method_name(method);
      // Another seed, other noise: another map where the noise crosses ReLU kinks (not in a network this small
      // without convolutions, which is linear across it).
      if (method != SaliencyMethod::SmoothGrad || ex.cam_layer() < 0) continue;
      o.seed = 2;
      ex.explain(px.data(), o, again.data());
      EXPECT_NE(map, again) << spec;
    }
  }
}

// Native and WebAssembly builds agree: a fixed model (its 3x3 layers after the first run as Winograd in
// WebAssembly's forward pass, as im2col products natively) and crop give these maps, computed natively: the same
// class, within 1e-4 at sampled pixels, 1e-2 in the sum of the 256 values and 1e-3 in the centroid (float rounding
// differs between the kernels; the weights are the same, made from the seed).
TEST(Explain, MapsAreTheSameOnEveryPlatform) {
  Model m = random_model("input 16 16 1; conv 8 3 same; bn; relu; conv 16 3 same; bn; relu; maxpool 2; "
                         "conv 16 3 same; relu; flatten; dropout 0.5; dense 3; softmax", 16);
  Explainer ex(m);
  const std::vector<uint8_t> px = random_pixels(m, 17);
  struct Expect { int cls; double sum, cy, cx; float at[4]; };
  const Expect expect[] = {{1, 184.820271, 7.177791, 7.162098, {0.648498f, 0.850247f, 0.878108f, 0.263652f}},
                           {1, 43.014913, 7.367764, 7.413699, {0.007751f, 0.127536f, 0.224914f, 0.017491f}},
                           {1, 66.351502, 7.177231, 7.434522, {0.035854f, 0.508488f, 0.665602f, 0.155718f}}};
  const int pixels[4] = {0, 37, 136, 255};
  for (SaliencyMethod method : kMethods) {
    int cls = -1;
    const std::vector<float> map = map_of(ex, px.data(), method, -1, &cls);
    double sum = 0, cy = 0, cx = 0;
    for (int p = 0; p < 256; ++p) sum += map[p], cy += (p / 16) * map[p], cx += (p % 16) * map[p];
    const Expect& e = expect[static_cast<int>(method)];
    EXPECT_EQ(cls, e.cls);
    EXPECT_NEAR(sum, e.sum, 1e-2) << saliency_method_name(method);
    EXPECT_NEAR(cy / sum, e.cy, 1e-3) << saliency_method_name(method);
    EXPECT_NEAR(cx / sum, e.cx, 1e-3) << saliency_method_name(method);
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(map[pixels[k]], e.at[k], 1e-4) << saliency_method_name(method) << " " << k;
  }
}

TEST(Explain, BadInputIsRefusedWithAReason) {
  Model m = random_model("input 6 6 1; flatten; dense 3; softmax", 12);
  Explainer ex(m);
  const std::vector<uint8_t> px = random_pixels(m, 13);
  std::vector<float> map(36);
  const auto refusal = [&](const uint8_t* crop, ExplainOptions o, float* out) -> std::string {
    try {
      ex.explain(crop, o, out);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  ExplainOptions o;
  o.method = SaliencyMethod::GradientTimesInput;
  EXPECT_EQ(refusal(nullptr, o, map.data()), "explain: no crop (a null pointer)");
  EXPECT_EQ(refusal(px.data(), o, nullptr), "explain: no map to write (a null pointer)");
  o.cls = 3;
  EXPECT_EQ(refusal(px.data(), o, map.data()),
            "explain: class 3 is out of range (the model has 3 classes; -1 explains the predicted one)");
  o.cls = -2;
  EXPECT_NE(refusal(px.data(), o, map.data()).find("class -2 is out of range"), std::string::npos);
  o.cls = -1;
  o.method = SaliencyMethod::GradCam;
  EXPECT_NE(refusal(px.data(), o, map.data()).find("Grad-CAM needs a convolution"), std::string::npos);
  o.method = SaliencyMethod::SmoothGrad;
  o.smooth_samples = 0;
  EXPECT_NE(refusal(px.data(), o, map.data()).find("SmoothGrad needs 1 to 1024 samples"), std::string::npos);
  o.smooth_samples = 4;
  o.smooth_noise = NAN;
  EXPECT_NE(refusal(px.data(), o, map.data()).find("finite noise level"), std::string::npos);
  o.smooth_noise = 0.1f;
  EXPECT_EQ(refusal(px.data(), o, map.data()), "accepted");
  EXPECT_THROW(ex.gradient(nullptr, 0), std::invalid_argument);
  EXPECT_THROW(ex.gradient(map.data(), 0, 3), std::invalid_argument);  // 2 layers: 0 to 2
  const Model unallocated(parse_spec("input 6 6 1; flatten; dense 3; softmax"), false);
  EXPECT_THROW(Explainer{unallocated}, std::invalid_argument);
  for (SaliencyMethod method : kMethods)
    EXPECT_EQ(saliency_method_from_name(saliency_method_name(method)), method);
  EXPECT_THROW(saliency_method_from_name("lime"), std::invalid_argument);
}

TEST(Explain, SaliencyColourRunsFromColdToWarm) {
  // The ramp's ends and its monotone warmth (red + green - blue grows with the value); out-of-range and NaN clamp.
  uint8_t lo[3], hi[3], prev[3];
  saliency_colour(0.0f, lo);
  saliency_colour(1.0f, hi);
  EXPECT_EQ(lo[0], 10);
  EXPECT_EQ(lo[2], 80);
  EXPECT_EQ(hi[0], 255);
  EXPECT_EQ(hi[1], 245);
  saliency_colour(0.0f, prev);
  for (int i = 1; i <= 100; ++i) {
    uint8_t c[3];
    saliency_colour(i / 100.0f, c);
    EXPECT_GE(c[0] + c[1] - c[2], prev[0] + prev[1] - prev[2]) << i;
    std::copy(c, c + 3, prev);
  }
  uint8_t c[3];
  saliency_colour(-1.0f, c);
  EXPECT_EQ(0, std::memcmp(c, lo, 3));
  saliency_colour(7.0f, c);
  EXPECT_EQ(0, std::memcmp(c, hi, 3));
  saliency_colour(std::nanf(""), c);
  EXPECT_EQ(0, std::memcmp(c, lo, 3));
}

TEST(Explain, PlannedGradCamIsThePlainOneUpToRounding) {
  // With the plan, the layers before Grad-CAM's block run folded (and as Winograd in WebAssembly), as the
  // pipeline classifies: the same map and probabilities within float rounding, the model untouched. The other
  // methods ignore the plan.
  Model m = random_model("input 16 16 1; conv 8 3 same; bn; relu; conv 16 3 same; bn; relu; maxpool 2; "
                         "conv 16 3 same; bn; relu; flatten; dropout 0.5; dense 3; softmax", 16);
  const std::vector<uint8_t> before = save_model(m, nlohmann::json::object());
  Explainer plain(m), planned(m, /*planned=*/true);
  for (uint64_t seed : {17u, 18u, 19u}) {
    const std::vector<uint8_t> px = random_pixels(m, seed);
    for (SaliencyMethod method : kMethods)
      for (int cls : {-1, 0, 2}) {
        int c1 = -1, c2 = -1;
        const std::vector<float> a = map_of(plain, px.data(), method, cls, &c1);
        const std::vector<float> b = map_of(planned, px.data(), method, cls, &c2);
        EXPECT_EQ(c1, c2);
        float worst = 0;
        for (size_t j = 0; j < a.size(); ++j) worst = std::max(worst, std::fabs(a[j] - b[j]));
        EXPECT_LE(worst, 1e-4f) << saliency_method_name(method) << " class " << cls << " seed " << seed;
      }
  }
  EXPECT_EQ(save_model(m, nlohmann::json::object()), before);
}
