// The machine's arithmetic peak, measured: independent chains of fused multiply-adds on every thread (OpenMP,
// OMP_NUM_THREADS), in the widest float32 vectors the CPU has (AVX-512, else AVX2 + FMA), and AVX512_BF16's
// bf16 dot products where present. bench/train_speed.sh divides a training step's arithmetic by this.
//   build/release/bench/fma_peak [seconds per figure, default 1]
// Prints `peak <what> <GFLOP/s>` lines; a multiply-add counts as two floating-point operations.
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {
constexpr int kChains = 16;  // > latency x ports (4 x 2): every port stays busy
constexpr long kIters = 1 << 16;

// kChains independent multiply-add chains in vectors of W floats (GCC's vector extension; -ffp-contract makes each
// a * b + c one FMA instruction), inlined into a wrapper per instruction set.
typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
template <typename V, int W>
__attribute__((always_inline)) inline float fma_chains(long iters) {
  V acc[kChains];
  for (int c = 0; c < kChains; ++c)
    for (int j = 0; j < W; ++j) acc[c][j] = 0.001f * c;
  V a, b;
  for (int j = 0; j < W; ++j) a[j] = 0.999f, b[j] = 0.0001f;
  for (long i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
  float s = 0;
  for (int c = 0; c < kChains; ++c)
    for (int j = 0; j < W; ++j) s += acc[c][j];
  return s;
}
__attribute__((target("avx512f"))) float fma512(long iters) { return fma_chains<V16, 16>(iters); }
__attribute__((target("avx2,fma"))) float fma256(long iters) { return fma_chains<V8, 8>(iters); }

// One vdpbf16ps: 16 lanes x 2 bf16 products added into float32: 32 multiply-adds.
__attribute__((target("avx512f,avx512bf16"))) float dpbf16(long iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * c);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.001f), _mm512_set1_ps(0.002f));
  for (long i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

// GFLOP/s of `kernel` run on every thread for about `seconds`: flops_per_iter counts one iteration of all chains.
template <typename F>
double measure(F kernel, double flops_per_iter, double seconds) {
  volatile float sink = 0;
  kernel(kIters / 16);  // warm up (clock ramp, AVX-512 licence)
  long rounds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
#pragma omp parallel
    {
      const float v = kernel(kIters);
#pragma omp atomic
      sink += v;
    }
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  return flops_per_iter * kIters * rounds * omp_get_max_threads() / elapsed / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  std::printf("threads %d\n", omp_get_max_threads());
  if (__builtin_cpu_supports("avx512f"))
    std::printf("peak fp32-avx512 %.1f\n", measure(fma512, 2.0 * 16 * kChains, seconds));
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    std::printf("peak fp32-avx2 %.1f\n", measure(fma256, 2.0 * 8 * kChains, seconds));
  if (__builtin_cpu_supports("avx512bf16"))
    std::printf("peak bf16-dot %.1f\n", measure(dpbf16, 2.0 * 32 * kChains, seconds));
  return 0;
}
