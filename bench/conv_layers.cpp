// Per-layer time of the 3x3 convolutions of a built-in architecture, batch n: the inference kernel as the page runs
// it (conv2d_forward_infer with the layer's prepared Winograd weights, as an InferencePlan holds them: in WebAssembly
// Winograd F(2x2, 3x3) or the direct padded-copy kernel, see core/kernels_wasm.cpp) side by side with the
// training kernel (conv2d_forward: im2col + GEMM, or natively oneDNN where the build has it), alternating in blocks so that drift in machine load
// hits both alike. Random weights and inputs. Built natively and for wasm:
//
//   node build/wasm/bench/conv_layers.js [ARCH|SPEC] [N] [RUNS]  (default: vgg-xs-f 1 2000; SPEC: spec text with ';')
// Depthwise layers (dwconv) are timed too: depthwise_forward against plain loops.
//   build/release/bench/conv_layers [ARCH] [N] [RUNS]           (native: both paths are im2col + GEMM)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels.h"
#include "model.h"
#include "nn.h"
#include "rng.h"
#include "spec.h"

using namespace ferkit;

int main(int argc, char** argv) {
  const std::string arch = argc > 1 ? argv[1] : "vgg-xs-f";
  const int n = argc > 2 ? std::atoi(argv[2]) : 1, runs = argc > 3 ? std::atoi(argv[3]) : 2000;
  if (n < 1 || runs < 10) {
    std::fprintf(stderr, "usage: conv_layers [ARCH|SPEC] [N >= 1] [RUNS >= 10]\n");
    return 2;
  }
  Model model(resolve_spec(arch));  // a built-in's name, or spec text (with ';' between layers)
  std::printf("%s, batch %d, %d runs a layer\n", arch.c_str(), n, runs);
  std::printf("layer | input | cin -> cout | inference us | im2col+GEMM us | ratio\n");
  double total_infer = 0, total_gemm = 0;
  Rng rng(1);
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerPlan& p = model.layers[i];
    if (p.spec.kind != LayerKind::Conv || p.geom.k != 3 || p.geom.patch() <= 16) continue;
    const ConvGeom& g = p.geom;
    std::vector<float> x(static_cast<size_t>(n) * g.hi * g.wi * g.cin), w(static_cast<size_t>(g.patch()) * g.cout),
        b(g.cout), col(conv2d_scratch_floats(g, n)), y(static_cast<size_t>(n) * g.ho * g.wo * g.cout);
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    for (auto& v : w) v = rng.uniform(-0.1f, 0.1f);
    for (auto& v : b) v = rng.uniform(-0.1f, 0.1f);
    std::vector<float> u(kernels::winograd_floats(g));
    if (!u.empty()) kernels::winograd_prepare(g, w.data(), u.data());
    double t[2] = {0, 0};
    for (int block = 0; block < runs / 10; ++block)
      for (int keep = 0; keep < 2; ++keep) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < 10; ++r)
          if (keep) conv2d_forward(x.data(), n, g, w.data(), b.data(), col.data(), y.data());
          else conv2d_forward_infer(x.data(), n, g, w.data(), u.empty() ? nullptr : u.data(), b.data(), col.data(),
                                    y.data());
        t[keep] += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      }
    const double infer = t[0] / (runs / 10 * 10), gemm = t[1] / (runs / 10 * 10);
    total_infer += infer, total_gemm += gemm;
    std::printf("%zu | %dx%d | %d -> %d | %.1f | %.1f | %.2fx\n", i, g.hi, g.wi, g.cin, g.cout, infer, gemm,
                gemm / infer);
  }
  std::printf("all | | | %.1f | %.1f | %.2fx\n", total_infer, total_gemm, total_gemm / total_infer);

  // Depthwise layers: depthwise_forward (in WebAssembly the SIMD128 kernel, kernels_wasm.cpp, where channels come
  // in fours; natively the portable loops with OpenMP) side by side with the portable loops on one thread, as the
  // compiler vectorizes them, alternating in blocks as above.
  bool header = false;
  double total_kernel = 0, total_plain = 0;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerPlan& p = model.layers[i];
    if (p.spec.kind != LayerKind::DepthwiseConv) continue;
    if (!header) std::printf("\ndepthwise layer | input | k, stride | kernel us | plain loops us | ratio\n");
    header = true;
    const ConvGeom& g = p.geom;
    std::vector<float> x(static_cast<size_t>(n) * g.hi * g.wi * g.cin), w(static_cast<size_t>(g.k) * g.k * g.cin),
        b(g.cin), y(static_cast<size_t>(n) * g.ho * g.wo * g.cin);
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    for (auto& v : w) v = rng.uniform(-0.1f, 0.1f);
    // The portable path's loops (nn.cpp): channels innermost, the taps clipped to the image.
    const auto plain = [&] {
      const int c = g.cin;
      for (int r = 0; r < n * g.ho; ++r) {
        const int img = r / g.ho, oy = r % g.ho, iy0 = oy * g.stride - g.pad_top;
        const float* xi = x.data() + static_cast<size_t>(img) * g.hi * g.wi * c;
        const int ky0 = std::max(0, -iy0), ky1 = std::min(g.k, g.hi - iy0);
        for (int ox = 0; ox < g.wo; ++ox) {
          const int ix0 = ox * g.stride - g.pad_left;
          const int kx0 = std::max(0, -ix0), kx1 = std::min(g.k, g.wi - ix0);
          float* yo = y.data() + (static_cast<size_t>(r) * g.wo + ox) * c;
          for (int ch = 0; ch < c; ++ch) yo[ch] = b[ch];
          for (int ky = ky0; ky < ky1; ++ky)
            for (int kx = kx0; kx < kx1; ++kx) {
              const float* xv = xi + (static_cast<size_t>(iy0 + ky) * g.wi + ix0 + kx) * c;
              const float* wv = w.data() + static_cast<size_t>(ky * g.k + kx) * c;
              for (int ch = 0; ch < c; ++ch) yo[ch] += xv[ch] * wv[ch];
            }
        }
      }
    };
    double t[2] = {0, 0};
    for (int block = 0; block < runs / 10; ++block)
      for (int which = 0; which < 2; ++which) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < 10; ++r) {
          if (which) plain();
          else depthwise_forward(x.data(), n, g, w.data(), b.data(), y.data());
        }
        t[which] += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      }
    const double kernel = t[0] / (runs / 10 * 10), loops = t[1] / (runs / 10 * 10);
    total_kernel += kernel, total_plain += loops;
    std::printf("%zu | %dx%dx%d | %d, %d | %.1f | %.1f | %.2fx\n", i, g.hi, g.wi, g.cin, g.k, g.stride, kernel, loops,
                loops / kernel);
  }
  if (header) std::printf("all | | | %.1f | %.1f | %.2fx\n", total_kernel, total_plain, total_plain / total_kernel);
}
