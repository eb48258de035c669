// Speed of the built-in architectures: training throughput (batch 64, forward + backward + Adam step) and
// batch-1 and batch-64 inference. The seed's numbers compare with bench/torch_seed.py (same architecture, batch
// and threads); vgg-s, vgg-xs-f, vgg-xs-fw and vgg-xs-fw2 are the VGG-style candidates of assets/models/RESULTS.md.
//   build/release/bench/bench_seed --benchmark_counters_tabular=true [--benchmark_filter=vgg-s]
// Threads: OMP_NUM_THREADS (default: all cores).
#include <benchmark/benchmark.h>

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

void BM_TrainStep(benchmark::State& state, const char* arch) {
  const int batch = static_cast<int>(state.range(0));
  Model m(resolve_spec(arch));
  m.enable_grads();
  Workspace ws;
  ws.reserve(m, batch, true);
  auto px = random_images(batch);
  std::vector<uint8_t> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = static_cast<uint8_t>(i % 7);
  Optimizer opt;
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
}

void BM_Inference(benchmark::State& state, const char* arch) {
  const int batch = static_cast<int>(state.range(0));
  Model m(resolve_spec(arch));
  Workspace ws;
  ws.reserve(m, batch);
  auto px = random_images(batch);
  std::vector<float> probs(static_cast<size_t>(batch) * 7);
  for (auto _ : state) {
    predict(m, ws, px.data(), batch, probs.data());
    benchmark::DoNotOptimize(probs.data());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * batch, benchmark::Counter::kIsRate);
}
}  // namespace

BENCHMARK_CAPTURE(BM_TrainStep, seed, "seed")->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, seed, "seed")->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-s, "vgg-s")->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-s, "vgg-s")->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-xs-f, "vgg-xs-f")->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-xs-f, "vgg-xs-f")->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-xs-fw, "vgg-xs-fw")->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-xs-fw, "vgg-xs-fw")->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, vgg-xs-fw2, "vgg-xs-fw2")->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, vgg-xs-fw2, "vgg-xs-fw2")->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
