// Speed of fine-tuning (core/finetune.h) as the page runs it: 70 samples (10 per expression), the default settings
// (head only, 15 epochs, batch 8), on the seed architecture. Args: FinetuneConfig::views and head_layers. The
// reference is {0, 0}, what the page ran before: every dense layer trains and the frozen layers run at every step;
// the default {4, 2} caches the frozen layers' features and trains the last two dense layers. {4, 0} and {0, 2}
// show each change alone. One iteration is a whole fine-tuning.
//   build/release/bench/bench_finetune --benchmark_min_time=5
// Threads: OMP_NUM_THREADS (default: all cores); the page's worker has one.
#include <benchmark/benchmark.h>

#include "data.h"
#include "finetune.h"
#include "model.h"
#include "spec.h"

using namespace ferkit;

namespace {
void BM_Finetune(benchmark::State& state) {
  Model base(resolve_spec("seed"));
  Dataset samples;
  Rng r(1);
  std::vector<uint8_t> px(kPixels);
  for (int i = 0; i < 70; ++i) {
    for (auto& p : px) p = static_cast<uint8_t>(r.below(256));
    samples.add(px.data(), static_cast<uint8_t>(i % kNumClasses));
  }
  FinetuneConfig cfg;
  cfg.views = static_cast<int>(state.range(0));
  cfg.head_layers = static_cast<int>(state.range(1));
  for (auto _ : state) {
    FineTune ft(base, samples, cfg);
    ft.run();
    benchmark::DoNotOptimize(ft.model().params.data());
  }
}
}  // namespace

BENCHMARK(BM_Finetune)->ArgNames({"views", "head_layers"})->Args({0, 0})->Args({4, 0})->Args({0, 2})->Args({4, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
