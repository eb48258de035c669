// Platform kernels behind core/nn.cpp's layers: an internal header (not installed, not part of ferkit.h).
// nn.cpp holds the portable layer math (Eigen and plain loops); where a platform has a faster kernel for a case, it
// lives in a file of its own (kernels_wasm.cpp: WebAssembly SIMD128; kernels_dnnl.cpp: native training convolutions
// on oneDNN) and nn.cpp asks for it first. Each function
// returns false (or 0) where the platform has no kernel for the case, and then nn.cpp runs the portable math;
// where a platform lacks them they are the inline stubs below, which the compiler folds away.
#pragma once
#include <cstddef>
#include <cstdint>

#include "nn.h"

namespace ferkit::kernels {

// Convolutions whose im2col rows are short (patch <= kSmallPatch, e.g. 3x3 over one channel) run as plain loops:
// a GEMM spends more time packing the tall, thin im2col matrix than multiplying it.
constexpr int kSmallPatch = 16;

#if defined(FERKIT_DNNL)
// Training convolutions on oneDNN (kernels_dnnl.cpp), for k x k layers but the small-patch first ones:
// y = conv(x, w) + b, and the backward pass: dw += , db += , dx = (if dx); false without dw. (FERKIT_DNNL is
// defined for every file of the tree that includes this header: no stub hides the real one.)
bool set_bf16(bool on);  // see nn.h's train_convolutions_in_bf16
bool conv2d_train_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y);
bool conv2d_train_backward(const float* dy, const float* x, int n, const ConvGeom& g, const float* w, float* dw,
                           float* db, float* dx);
#else
inline bool set_bf16(bool) { return false; }
inline bool conv2d_train_forward(const float*, int, const ConvGeom&, const float*, const float*, float*) {
  return false;
}
inline bool conv2d_train_backward(const float*, const float*, int, const ConvGeom&, const float*, float*, float*,
                                  float*) {
  return false;
}
#endif

#if defined(__wasm_simd128__)
// C = A * B + bias (row-major A: M x K, B: K x N), then max(0, C) if relu.
bool gemm_bias(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, float* C, bool relu);
// C = max(0 if relu, A * B + bias + the shortcut s), for a 1x1 convolution followed by a residual add (AddGeom g;
// C has g.c = N channels), and the same into C2 unless it is null (a save after the block).
bool gemm_bias_add(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, const float* s,
                   const AddGeom& g, float* C, float* C2, bool relu);
// An inference convolution (no im2col kept): 3x3 'same' layers as Winograd F(2x2, 3x3) (u: weights prepared by
// winograd_prepare, or nullptr), other k x k layers (k > 1) straight from a zero-padded copy. scratch:
// conv2d_scratch_floats(g, n) floats.
bool conv2d_infer(const float* x, int n, const ConvGeom& g, const float* w, const float* u, const float* b,
                  float* scratch, float* y, bool relu);
// Scratch floats conv2d_infer needs beyond nothing (0: it takes no layer of this shape).
size_t conv2d_scratch_floats(const ConvGeom& g, int n);
// Floats of a layer's Winograd-transformed weights (16 x cin x cout); 0 where inference never runs it as Winograd.
size_t winograd_floats(const ConvGeom& g);
void winograd_prepare(const ConvGeom& g, const float* w, float* u);  // only where winograd_floats(g) > 0
bool relu(const float* x, size_t count, float* y);
// Depthwise convolution (w[(ky*k + kx)*c + ch]), then max(0, y) if relu.
bool depthwise(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y, bool relu);
// sums[i] = sum over r < rows of w[r] * p[r * stride + i], for i < count: the frame sampler's column sums over the
// rows an output row covers (core/blazeface.cpp; rows <= 256).
bool column_sums(const uint8_t* p, size_t stride, int rows, const float* w, size_t count, float* sums);
#else
inline bool gemm_bias(const float*, ptrdiff_t, int, const float*, int, const float*, float*, bool) { return false; }
inline bool gemm_bias_add(const float*, ptrdiff_t, int, const float*, int, const float*, const float*, const AddGeom&,
                          float*, float*, bool) {
  return false;
}
inline bool conv2d_infer(const float*, int, const ConvGeom&, const float*, const float*, const float*, float*, float*,
                         bool) {
  return false;
}
inline size_t conv2d_scratch_floats(const ConvGeom&, int) { return 0; }
inline size_t winograd_floats(const ConvGeom&) { return 0; }
inline void winograd_prepare(const ConvGeom&, const float*, float*) {}
inline bool relu(const float*, size_t, float*) { return false; }
inline bool depthwise(const float*, int, const ConvGeom&, const float*, const float*, float*, bool) { return false; }
inline bool column_sums(const uint8_t*, size_t, int, const float*, size_t, float*) { return false; }
#endif

}  // namespace ferkit::kernels
