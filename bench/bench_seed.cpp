// Speed of the built-in architectures: training throughput (batch 64, forward + backward + optimizer step: Adam, or
// SGD with Nesterov momentum as the default model's recipe trains) and batch-1 and batch-64 inference. The training
// figures compare with bench/torch_seed.py (same architecture, batch, optimizer and threads): bench/compare_seed.sh
// and bench/train_speed.sh run both. vgg-s, vgg-xs-f, vgg-xs-fw and vgg-xs-fw2 are the VGG-style candidates of
// docs/results.md.
//   build/release/bench/bench_seed --benchmark_counters_tabular=true [--benchmark_filter=vgg-s]
//   build/release/bench/bench_seed --print-spec vgg-xs-fw2     the architecture as spec text (for torch_seed.py)
// Threads: OMP_NUM_THREADS (default: all cores). TrainStep's GFLOP/s counts a step's multiply-adds twice: each
// convolution and dense layer's forward, weight gradient and input gradient (none for the first layer).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>

#include "data.h"
#include "model.h"
#include "optim.h"
#include "spec.h"

using namespace ferkit;

namespace {
std::vector<uint8_t> random_images(int n) {
  Rng r(1);
  std::vector<uint8_t> px(static_cast<size_t>(n) * kPixels);
  for (auto& p : px) p = static_cast<uint8_t>(r.below(256));
  return px;
}

// Multiply-adds of one training image: forward, weight gradient, and input gradient below every layer but the first.
double train_macs_per_image(const Model& m) {
  double macs = 0;
  bool first = true;
  for (const LayerPlan& p : m.layers) {
    const double f = static_cast<double>(p.macs());
    if (f == 0) continue;
    macs += (first ? 2 : 3) * f;
    first = false;
  }
  return macs;
}

// Args: batch, and the optimizer: 0 Adam (lr 1e-4), 1 SGD with Nesterov momentum 0.9 and weight decay 5e-4.
void BM_TrainStep(benchmark::State& state, const char* arch) {
  const int batch = static_cast<int>(state.range(0));
  Model m(resolve_spec(arch));
  m.enable_grads();
  Workspace ws;
  ws.reserve(m, batch, true);
  auto px = random_images(batch);
  std::vector<uint8_t> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = static_cast<uint8_t>(i % 7);
  OptimConfig oc;
  if (state.range(1) == 1) oc.kind = OptimKind::SGD, oc.nesterov = true, oc.momentum = 0.9f, oc.weight_decay = 5e-4f;
  Optimizer opt(oc);
  uint64_t step = 0;
  for (auto _ : state) {
    load_input(m, ws, px.data(), batch);
    ForwardOptions fo;
    fo.train = true;
    fo.dropout_seed = ++step;
    const float* logits = forward(m, ws, batch, fo);
    softmax_xent(logits, labels.data(), nullptr, nullptr, batch, 7, 0.0f, ws.probs.data(), ws.dlogits.data());
    zero_grads(m);
    backward(m, ws, batch, ws.dlogits.data());
    opt.step(m, 1e-4f);
    benchmark::ClobberMemory();
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * batch, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * train_macs_per_image(m) * state.iterations() * batch,
                                                 benchmark::Counter::kIsRate);
}

// Args: batch, and 1 to run with an InferencePlan (batch norm folded into the convolutions, as the page and
// Pipeline run) or 0 without (as evaluate and training's validation run): the two side by side.
void BM_Inference(benchmark::State& state, const char* arch) {
  const int batch = static_cast<int>(state.range(0));
  Model m(resolve_spec(arch));
  Rng rng(5);
  for (const LayerPlan& p : m.layers)  // trained-looking batch-norm statistics (init's are the identity)
    if (p.spec.kind == LayerKind::BatchNorm)
      for (int c = 0; c < p.out.c; ++c) {
        m.params[p.w + c] = rng.uniform(0.5f, 1.5f);
        m.params[p.mean + c] = rng.uniform(-0.5f, 0.5f);
        m.params[p.var + c] = rng.uniform(0.3f, 2.0f);
      }
  const InferencePlan plan = plan_inference(m);
  const InferencePlan* use = state.range(1) ? &plan : nullptr;
  Workspace ws;
  ws.reserve(m, batch);
  auto px = random_images(batch);
  std::vector<float> probs(static_cast<size_t>(batch) * 7);
  for (auto _ : state) {
    predict(m, ws, px.data(), batch, probs.data(), false, use);
    benchmark::DoNotOptimize(probs.data());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * batch, benchmark::Counter::kIsRate);
}
// One image through the trainer's default augmentation (what `fer-train train` does to every training image, and
// what each process of a --distributed run does to every image of each batch, its own share or not).
void BM_Augment(benchmark::State& state) {
  auto px = random_images(1);
  std::vector<float> x(kPixels);
  Augment aug;
  Rng rng(3);
  for (auto _ : state) {
    augment_image(px.data(), x.data(), aug, rng);
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
}  // namespace

BENCHMARK(BM_Augment)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TrainStep, seed, "seed")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, seed, "seed")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-s, "vgg-s")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-s, "vgg-s")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-xs-f, "vgg-xs-f")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-xs-f, "vgg-xs-f")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-xs-fw, "vgg-xs-fw")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-xs-fw, "vgg-xs-fw")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-xs-fw2, "vgg-xs-fw2")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-xs-fw2, "vgg-xs-fw2")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, res-xs, "res-xs")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, res-xs, "res-xs")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, mb-s, "mb-s")->ArgsProduct({{64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, mb-s, "mb-s")->ArgsProduct({{1, 64}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--print-spec") == 0) {
    std::printf("%s", format_spec(resolve_spec(argv[2])).c_str());
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
