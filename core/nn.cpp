#include "nn.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "rng.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

namespace ferkit {

namespace {
using MatR = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapR = Eigen::Map<MatR>;
using CMapR = Eigen::Map<const MatR>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using MapRow = Eigen::Map<RowVec>;
using CMapRow = Eigen::Map<const RowVec>;

}  // namespace

// Convolutions whose im2col rows are short (patch <= kSmallPatch, e.g. 3x3 over one channel) run as plain loops:
// Eigen's GEMM spends more time packing the tall, thin im2col matrix than multiplying it.
constexpr int kSmallPatch = 16;

namespace {
// y[r][:] = b + sum_k col[r][k] * w[k][:]. CO > 0: the output count is a compile-time constant, so the
// accumulators stay in vector registers; CO == 0: any count, in blocks of 64.
template <int CO>
void small_k_gemm_bias_rows(const float* col, Eigen::Index rows, int patch, const float* w, const float* b, int cout,
                            float* y, bool relu) {
  const float lo = relu ? 0.0f : -std::numeric_limits<float>::infinity();  // max(v, -inf) = v
#pragma omp parallel for schedule(static)
  for (Eigen::Index r = 0; r < rows; ++r) {
    const float* __restrict cr = col + r * patch;
    for (int o0 = 0; o0 < cout; o0 += 64) {
      const int n = CO > 0 ? CO : std::min(64, cout - o0);
      float acc[CO > 0 ? CO : 64];
      for (int o = 0; o < n; ++o) acc[o] = b[o0 + o];
      for (int k = 0; k < patch; ++k) {
        const float v = cr[k];
        const float* __restrict wk = w + static_cast<size_t>(k) * cout + o0;
        for (int o = 0; o < n; ++o) acc[o] += v * wk[o];
      }
      float* __restrict yr = y + r * cout + o0;
      for (int o = 0; o < n; ++o) yr[o] = std::max(acc[o], lo);
    }
  }
}

void small_k_gemm_bias(const float* col, Eigen::Index rows, int patch, const float* w, const float* b, int cout,
                       float* y, bool relu) {
  switch (cout) {
    case 16: return small_k_gemm_bias_rows<16>(col, rows, patch, w, b, cout, y, relu);
    case 32: return small_k_gemm_bias_rows<32>(col, rows, patch, w, b, cout, y, relu);
    case 64: return small_k_gemm_bias_rows<64>(col, rows, patch, w, b, cout, y, relu);
    default: return small_k_gemm_bias_rows<0>(col, rows, patch, w, b, cout, y, relu);
  }
}

// dw[k][:] += sum_r col[r][k] * dy[r][:], db += sum_r dy[r][:]. Rows are split into a fixed number of chunks
// (independent of the thread count) summed in a fixed order, so results are the same for any number of threads.
void small_k_weight_grad(const float* col, const float* dy, Eigen::Index rows, int patch, int cout, float* dw,
                         float* db) {
  constexpr int kChunks = 16;
  const size_t wsize = static_cast<size_t>(patch + 1) * cout;  // last row: the bias
  thread_local std::vector<float> partial;
  partial.assign(kChunks * wsize, 0.0f);
  float* const part = partial.data();  // (thread_local: the pointer, not the name, is shared with the workers)
#pragma omp parallel for schedule(static)
  for (int ch = 0; ch < kChunks; ++ch) {
    float* acc = part + ch * wsize;
    const Eigen::Index r0 = rows * ch / kChunks, r1 = rows * (ch + 1) / kChunks;
    for (Eigen::Index r = r0; r < r1; ++r) {
      const float* dr = dy + r * cout;
      const float* cr = col + r * patch;
      for (int k = 0; k < patch; ++k) {
        const float v = cr[k];
        float* ak = acc + static_cast<size_t>(k) * cout;
        for (int o = 0; o < cout; ++o) ak[o] += v * dr[o];
      }
      float* ab = acc + static_cast<size_t>(patch) * cout;
      for (int o = 0; o < cout; ++o) ab[o] += dr[o];
    }
  }
  for (int ch = 0; ch < kChunks; ++ch) {
    const float* acc = partial.data() + ch * wsize;
    for (size_t j = 0; j < static_cast<size_t>(patch) * cout; ++j) dw[j] += acc[j];
    for (int o = 0; o < cout; ++o) db[o] += acc[static_cast<size_t>(patch) * cout + o];
  }
}

#if defined(__wasm_simd128__)
// WebAssembly kernels. Eigen has no WebAssembly backend (its SSE path through Emscripten's emulation headers runs
// at about half the speed of these).
//
// One block: C[r][0..4*NV) = bias + sum over segments s and j < seg_len of A_r[s][j] * B[s*seg_len + j][...],
// r < MR, where A_r[s] = A + r*row_step + s*seg_step. A plain GEMM row is one segment (seg_len = K); a 3x3
// convolution reads its patch straight from a zero-padded input as 3 segments (one per kernel row), with no
// im2col copy. MR*NV f32x4 accumulators: MR = 4, NV = 2 leaves registers to spare on x86-64 engines (16 vector
// registers) and was the fastest shape tried (bench/conv_layers compares them); MR = 1, NV = 8 streams whole cache
// lines of B for matrix-vector products.
template <int MR, int NV>
inline void simd128_block(const float* A, size_t row_step, int segs, size_t seg_step, int seg_len, const float* B,
                          int N, const float* bias, float* C, size_t ldc) {
  v128_t c[MR][NV];
  for (int v = 0; v < NV; ++v) {
    const v128_t bv = wasm_v128_load(bias + 4 * v);
    for (int r = 0; r < MR; ++r) c[r][v] = bv;
  }
  for (int s = 0; s < segs; ++s) {
    const float* a = A + s * seg_step;
    for (int j = 0; j < seg_len; ++j, B += N) {
      v128_t w[NV];
      for (int v = 0; v < NV; ++v) w[v] = wasm_v128_load(B + 4 * v);
      for (int r = 0; r < MR; ++r) {
        const v128_t x = wasm_v128_load32_splat(a + r * row_step + j);
        for (int v = 0; v < NV; ++v) c[r][v] = wasm_f32x4_add(c[r][v], wasm_f32x4_mul(x, w[v]));
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) wasm_v128_store(C + r * ldc + 4 * v, c[r][v]);
}

// C = A * B + bias, row-major A (M x K), B (K x N), N a multiple of 8.
void gemm_bias_simd128(const float* A, Eigen::Index M, int K, const float* B, int N, const float* bias, float* C) {
  const size_t k = static_cast<size_t>(K);
  Eigen::Index m = 0;
  if (M >= 4) {
    for (int n0 = 0; n0 < N; n0 += 8)
      for (m = 0; m + 4 <= M; m += 4) simd128_block<4, 2>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, N);
  }
  for (; m < M; ++m) {
    int n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) simd128_block<1, 8>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0);
    for (; n0 < N; n0 += 8) simd128_block<1, 2>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0);
  }
}

// Copies image xi into pad, a zero border of one pixel around it: (hi+2) x (wi+2) x cin floats.
void pad_image_by_one(const float* xi, const ConvGeom& g, float* pad) {
  const size_t row = static_cast<size_t>(g.wi + 2) * g.cin, in_row = static_cast<size_t>(g.wi) * g.cin;
  std::memset(pad, 0, sizeof(float) * row);
  std::memset(pad + (g.hi + 1) * row, 0, sizeof(float) * row);
  for (int iy = 0; iy < g.hi; ++iy) {
    float* d = pad + (iy + 1) * row;
    std::memset(d, 0, sizeof(float) * g.cin);
    std::memcpy(d + g.cin, xi + iy * in_row, sizeof(float) * in_row);
    std::memset(d + g.cin + in_row, 0, sizeof(float) * g.cin);
  }
}

// 3x3, stride 1, 'same' convolution straight from a zero-padded copy of each image (pad: (hi+2)*(wi+2)*cin floats):
// a block of 4 output pixels in a row reads its patches as 3 segments of 3*cin floats, one per kernel row. For rows
// of a multiple of 4 pixels: on rows shorter than that (6x6 maps) im2col + GEMM is faster, its 4-row blocks
// running over the whole image instead of one short row (bench/conv_layers times both).
void conv3x3_same_simd128(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* pad,
                          float* y) {
  const int cin = g.cin, cout = g.cout;
  const size_t row = static_cast<size_t>(g.wi + 2) * cin, in_row = static_cast<size_t>(g.wi) * cin;
  for (int img = 0; img < n; ++img) {
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * cout;
    pad_image_by_one(x + static_cast<size_t>(img) * g.hi * in_row, g, pad);
    for (int n0 = 0; n0 < cout; n0 += 8)  // one 8-column panel of w (9*cin x 8) stays in L1 for the whole image
      for (int oy = 0; oy < g.ho; ++oy) {
        const float* a = pad + oy * row;
        float* yr = yi + static_cast<size_t>(oy) * g.wo * cout + n0;
        for (int ox = 0; ox < g.wo; ox += 4)  // wo % 4 == 0
          simd128_block<4, 2>(a + ox * cin, cin, 3, row, 3 * cin, w + n0, cout, b + n0, yr + ox * cout, cout);
      }
  }
}

// Winograd F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of
// outputs is A^T [(G g G^T) . (B^T d B)] A for its 4x4 input tile d, 16 multiplies per input channel and output
// channel instead of 36. The 16 elementwise products become 16 GEMMs (tiles x cin) * (cin x cout), run by the same
// register blocks as every other product here. For 'same' 3x3 stride-1 layers with even sizes, cin % 4 == 0 and
// cout % 8 == 0. Scratch layout (winograd_scratch_floats): U, the transformed weights (16 x cin x cout), the padded
// image, V (16 x kTileBlock x cin) and M (16 x kTileBlock x cout) for one block of tiles at a time. Blocks of 16
// tiles keep V and M in cache, and each of the 16 planes is padded by kPlanePad floats so that they do not share
// cache sets (without the padding, larger blocks were no faster than the direct kernel). Without prepared weights
// (conv2d_prepare_winograd, held by an InferencePlan) the weight transform is redone on every call, which costs
// more than it saves on small maps, so layers with fewer than kMinTiles tiles in the whole batch (6x6 maps, one
// image: 9) take another kernel; with prepared weights every 3x3 layer gains. bench/conv_layers times each layer.
constexpr int kTileBlock = 16;
constexpr int kPlanePad = 16;
constexpr int kMinTiles = 16;

// A 3x3, stride-1, 'same' layer whose outputs come in panels of 8 channels and whose patch is past the small-patch
// loops: what both WebAssembly 3x3 kernels (direct and Winograd) need.
bool simd_3x3_same(const ConvGeom& g) {
  return g.k == 3 && g.stride == 1 && g.pad_top == 1 && g.pad_left == 1 && g.ho == g.hi && g.wo == g.wi &&
         g.cout % 8 == 0 && g.patch() > kSmallPatch;
}

// The shapes the Winograd kernel takes (with prepared weights, any batch).
bool winograd_shape(const ConvGeom& g) {
  return simd_3x3_same(g) && g.ho % 2 == 0 && g.wo % 2 == 0 && g.cin % 4 == 0;
}

bool winograd_applies(const ConvGeom& g, int n) {
  return winograd_shape(g) && static_cast<long>(n) * (g.ho / 2) * (g.wo / 2) >= kMinTiles;
}

// The kernel's scratch after U: the padded image, V and M.
size_t winograd_work_floats(const ConvGeom& g) {
  return static_cast<size_t>(g.hi + 2) * (g.wi + 2) * g.cin +
         16 * (static_cast<size_t>(kTileBlock) * (g.cin + g.cout) + 2 * kPlanePad);
}

// U = G g G^T for every (input channel, 4 output channels); w[(ky*3 + kx)*cin + c][o], U[16][cin][cout].
void winograd_transform_weights(const ConvGeom& g, const float* w, float* U) {
  const int cin = g.cin, cout = g.cout;
  const size_t ucin = static_cast<size_t>(cin) * cout;
  const v128_t half = wasm_f32x4_splat(0.5f);
  for (int c = 0; c < cin; ++c)
    for (int o = 0; o < cout; o += 4) {
      v128_t t[4][3];
      for (int kx = 0; kx < 3; ++kx) {
        const v128_t g0 = wasm_v128_load(w + (static_cast<size_t>(0 + kx) * cin + c) * cout + o);
        const v128_t g1 = wasm_v128_load(w + (static_cast<size_t>(3 + kx) * cin + c) * cout + o);
        const v128_t g2 = wasm_v128_load(w + (static_cast<size_t>(6 + kx) * cin + c) * cout + o);
        const v128_t s = wasm_f32x4_add(g0, g2);
        t[0][kx] = g0;
        t[1][kx] = wasm_f32x4_mul(half, wasm_f32x4_add(s, g1));
        t[2][kx] = wasm_f32x4_mul(half, wasm_f32x4_sub(s, g1));
        t[3][kx] = g2;
      }
      for (int i = 0; i < 4; ++i) {
        const v128_t s = wasm_f32x4_add(t[i][0], t[i][2]);
        const v128_t u[4] = {t[i][0], wasm_f32x4_mul(half, wasm_f32x4_add(s, t[i][1])),
                             wasm_f32x4_mul(half, wasm_f32x4_sub(s, t[i][1])), t[i][2]};
        for (int j = 0; j < 4; ++j) wasm_v128_store(U + (i * 4 + j) * ucin + static_cast<size_t>(c) * cout + o, u[j]);
      }
    }
}

// U: prepared weights, or nullptr to transform w into the start of scratch first.
void conv3x3_winograd_simd128(const float* x, int n, const ConvGeom& g, const float* w, const float* U,
                              const float* b, float* scratch, float* y, bool relu) {
  const v128_t lo = wasm_f32x4_splat(relu ? 0.0f : -std::numeric_limits<float>::infinity());  // pmax(v, -inf) = v
  const int cin = g.cin, cout = g.cout, tiles_x = g.wo / 2, tiles = (g.ho / 2) * tiles_x;
  const size_t row = static_cast<size_t>(g.wi + 2) * cin, ucin = static_cast<size_t>(cin) * cout;
  if (!U) {
    winograd_transform_weights(g, w, scratch);
    U = scratch;
    scratch += 16 * ucin;
  }
  float* const pad = scratch;
  float* const V = pad + static_cast<size_t>(g.hi + 2) * row;
  const size_t vplane = static_cast<size_t>(kTileBlock) * cin + kPlanePad;  // floats from one of V's planes to the next
  const size_t mplane = static_cast<size_t>(kTileBlock) * cout + kPlanePad;
  float* const M = V + 16 * vplane;
  alignas(16) static const float kZeros[8] = {};
  for (int img = 0; img < n; ++img) {
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * cout;
    pad_image_by_one(x + static_cast<size_t>(img) * g.hi * g.wi * cin, g, pad);
    for (int t0 = 0; t0 < tiles; t0 += kTileBlock) {
      const int nt = std::min(kTileBlock, tiles - t0);
      // V = B^T d B for each tile of the block, 4 channels at a time.
      for (int t = 0; t < nt; ++t) {
        const int ty = (t0 + t) / tiles_x, tx = (t0 + t) % tiles_x;
        const float* d = pad + 2 * ty * row + static_cast<size_t>(2 * tx) * cin;
        for (int c = 0; c < cin; c += 4) {
          v128_t r[4][4];
          for (int j = 0; j < 4; ++j) {
            const v128_t d0 = wasm_v128_load(d + 0 * row + j * cin + c), d1 = wasm_v128_load(d + 1 * row + j * cin + c);
            const v128_t d2 = wasm_v128_load(d + 2 * row + j * cin + c), d3 = wasm_v128_load(d + 3 * row + j * cin + c);
            r[0][j] = wasm_f32x4_sub(d0, d2);
            r[1][j] = wasm_f32x4_add(d1, d2);
            r[2][j] = wasm_f32x4_sub(d2, d1);
            r[3][j] = wasm_f32x4_sub(d1, d3);
          }
          for (int i = 0; i < 4; ++i) {
            float* v = V + static_cast<size_t>(i * 4) * vplane + static_cast<size_t>(t) * cin + c;
            const size_t step = vplane;
            wasm_v128_store(v, wasm_f32x4_sub(r[i][0], r[i][2]));
            wasm_v128_store(v + step, wasm_f32x4_add(r[i][1], r[i][2]));
            wasm_v128_store(v + 2 * step, wasm_f32x4_sub(r[i][2], r[i][1]));
            wasm_v128_store(v + 3 * step, wasm_f32x4_sub(r[i][1], r[i][3]));
          }
        }
      }
      // M[p] = V[p] * U[p]: 16 products of (nt x cin) by (cin x cout).
      for (int p = 0; p < 16; ++p) {
        const float* Vp = V + p * vplane;
        float* Mp = M + p * mplane;
        for (int n0 = 0; n0 < cout; n0 += 8) {
          int t = 0;
          for (; t + 4 <= nt; t += 4)
            simd128_block<4, 2>(Vp + t * cin, cin, 1, 0, cin, U + p * ucin + n0, cout, kZeros, Mp + t * cout + n0,
                                cout);
          for (; t < nt; ++t)
            simd128_block<1, 2>(Vp + t * cin, 0, 1, 0, cin, U + p * ucin + n0, cout, kZeros, Mp + t * cout + n0, 0);
        }
      }
      // y = A^T m A + bias: each tile's 2x2 outputs, 4 output channels at a time.
      for (int t = 0; t < nt; ++t) {
        const int ty = (t0 + t) / tiles_x, tx = (t0 + t) % tiles_x;
        float* yt = yi + (static_cast<size_t>(2 * ty) * g.wo + 2 * tx) * cout;
        for (int o = 0; o < cout; o += 4) {
          v128_t s[2][4];
          for (int j = 0; j < 4; ++j) {
            const float* m = M + j * mplane + static_cast<size_t>(t) * cout + o;
            const size_t step = 4 * mplane;  // next row i of the 4x4 tile
            const v128_t m0 = wasm_v128_load(m), m1 = wasm_v128_load(m + step), m2 = wasm_v128_load(m + 2 * step),
                         m3 = wasm_v128_load(m + 3 * step);
            s[0][j] = wasm_f32x4_add(wasm_f32x4_add(m0, m1), m2);
            s[1][j] = wasm_f32x4_sub(wasm_f32x4_sub(m1, m2), m3);
          }
          const v128_t bias = wasm_v128_load(b + o);
          for (int i = 0; i < 2; ++i) {
            float* yo = yt + static_cast<size_t>(i) * g.wo * cout + o;
            const v128_t y0 = wasm_f32x4_add(bias, wasm_f32x4_add(wasm_f32x4_add(s[i][0], s[i][1]), s[i][2]));
            const v128_t y1 = wasm_f32x4_add(bias, wasm_f32x4_sub(wasm_f32x4_sub(s[i][1], s[i][2]), s[i][3]));
            wasm_v128_store(yo, wasm_f32x4_pmax(y0, lo));
            wasm_v128_store(yo + cout, wasm_f32x4_pmax(y1, lo));
          }
        }
      }
    }
  }
}
#endif

// y = a * w + b over rows: a (m x k), w (k x n), row-major.
void gemm_bias(const float* a, Eigen::Index m, int k, const float* w, const float* b, int n, float* y,
               bool relu = false) {
#if defined(__wasm_simd128__)
  if (n % 8 == 0) {
    gemm_bias_simd128(a, m, k, w, n, b, y);
    if (relu) relu_forward(y, static_cast<size_t>(m) * n, y);
    return;
  }
#endif
  MapR Y(y, m, n);
  Y.noalias() = CMapR(a, m, k) * CMapR(w, k, n);
  if (relu)
    Y = (Y.rowwise() + CMapRow(b, n)).cwiseMax(0.0f);
  else
    Y.rowwise() += CMapRow(b, n);
}
}  // namespace

ConvGeom ConvGeom::make(int hi, int wi, int cin, int cout, int k, int stride, bool same) {
  ConvGeom g;
  g.hi = hi, g.wi = wi, g.cin = cin, g.cout = cout, g.k = k, g.stride = stride;
  if (same) {
    g.ho = (hi + stride - 1) / stride;
    g.wo = (wi + stride - 1) / stride;
    int ph = std::max((g.ho - 1) * stride + k - hi, 0);
    int pw = std::max((g.wo - 1) * stride + k - wi, 0);
    g.pad_top = ph / 2;
    g.pad_left = pw / 2;
  } else {
    g.ho = hi >= k ? (hi - k) / stride + 1 : 0;
    g.wo = wi >= k ? (wi - k) / stride + 1 : 0;
  }
  return g;
}

size_t conv2d_scratch_floats(const ConvGeom& g, int n) {
  const size_t im2col_floats = static_cast<size_t>(n) * g.ho * g.wo * g.patch();
#if defined(__wasm_simd128__)
  if (winograd_shape(g))  // prepared weights: the work area only; else U too, where the kernel is taken
    return std::max(im2col_floats, winograd_work_floats(g) +
                                       (winograd_applies(g, n) ? 16 * static_cast<size_t>(g.cin) * g.cout : 0));
#endif
  return im2col_floats;
}

size_t conv2d_winograd_floats([[maybe_unused]] const ConvGeom& g) {
#if defined(__wasm_simd128__)
  if (winograd_shape(g)) return 16 * static_cast<size_t>(g.cin) * g.cout;
#endif
  return 0;
}

void conv2d_prepare_winograd([[maybe_unused]] const ConvGeom& g, [[maybe_unused]] const float* w,
                             [[maybe_unused]] float* u) {
#if defined(__wasm_simd128__)
  if (winograd_shape(g)) winograd_transform_weights(g, w, u);
#endif
}

void im2col(const float* x, int n, const ConvGeom& g, float* col) {
  const int patch = g.patch(), rowlen = g.k * g.cin;
  const int rows = n * g.ho;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const int img = r / g.ho, oy = r % g.ho;
    const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * g.cin;
    float* dst = col + static_cast<size_t>(r) * g.wo * patch;
    for (int ox = 0; ox < g.wo; ++ox) {
      const int ix0 = ox * g.stride - g.pad_left;
      const int kx_lo = std::max(0, -ix0), kx_hi = std::min(g.k, g.wi - ix0);  // valid kx in [lo, hi)
      for (int ky = 0; ky < g.k; ++ky) {
        const int iy = oy * g.stride - g.pad_top + ky;
        // Plain loops, not memcpy/memset: the runs are short (3 floats for a 3x3 kernel over one channel).
        if (iy < 0 || iy >= g.hi || kx_lo >= kx_hi) {
          for (int j = 0; j < rowlen; ++j) dst[j] = 0.0f;
        } else {
          const int lo = kx_lo * g.cin, hi = kx_hi * g.cin;
          const float* src = xi + (static_cast<ptrdiff_t>(iy) * g.wi + ix0) * g.cin;
          for (int j = 0; j < lo; ++j) dst[j] = 0.0f;
          for (int j = lo; j < hi; ++j) dst[j] = src[j];
          for (int j = hi; j < rowlen; ++j) dst[j] = 0.0f;
        }
        dst += rowlen;
      }
    }
  }
}

void col2im_add(const float* dcol, int n, const ConvGeom& g, float* dx) {
  const int patch = g.patch(), rowlen = g.k * g.cin;
#pragma omp parallel for schedule(static)
  for (int img = 0; img < n; ++img) {
    float* xi = dx + static_cast<size_t>(img) * g.hi * g.wi * g.cin;
    const float* src = dcol + static_cast<size_t>(img) * g.ho * g.wo * patch;
    for (int oy = 0; oy < g.ho; ++oy) {
      for (int ox = 0; ox < g.wo; ++ox, src += patch) {
        const int ix0 = ox * g.stride - g.pad_left;
        const int kx_lo = std::max(0, -ix0), kx_hi = std::min(g.k, g.wi - ix0);
        for (int ky = 0; ky < g.k; ++ky) {
          const int iy = oy * g.stride - g.pad_top + ky;
          if (iy < 0 || iy >= g.hi) continue;
          float* d = xi + (static_cast<size_t>(iy) * g.wi + ix0 + kx_lo) * g.cin;
          const float* s = src + ky * rowlen + kx_lo * g.cin;
          const int len = (kx_hi - kx_lo) * g.cin;
          for (int j = 0; j < len; ++j) d[j] += s[j];
        }
      }
    }
  }
}

void conv2d_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* col, float* y,
                    [[maybe_unused]] bool keep_col, [[maybe_unused]] const float* winograd_u, bool relu) {
  const Eigen::Index m = static_cast<Eigen::Index>(n) * g.ho * g.wo;
#if defined(__wasm_simd128__)
  if (!keep_col && winograd_u && winograd_shape(g))
    return conv3x3_winograd_simd128(x, n, g, w, winograd_u, b, col, y, relu);
  if (!keep_col && winograd_applies(g, n)) return conv3x3_winograd_simd128(x, n, g, w, nullptr, b, col, y, relu);
  if (!keep_col && simd_3x3_same(g) && g.wo % 4 == 0) {
    conv3x3_same_simd128(x, n, g, w, b, col, y);  // col: (hi+2)*(wi+2)*cin <= ho*wo*9*cin floats
    if (relu) relu_forward(y, static_cast<size_t>(m) * g.cout, y);
    return;
  }
#endif
  const float* c = x;
  if (!g.direct()) {
    im2col(x, n, g, col);
    c = col;
  }
  if (g.patch() <= kSmallPatch) {  // e.g. the first layer (3x3x1): GEMM packing costs more than the math
    small_k_gemm_bias(c, m, g.patch(), w, b, g.cout, y, relu);
    return;
  }
  gemm_bias(c, m, g.patch(), w, b, g.cout, y, relu);
}

void conv2d_backward(const float* dy, int n, const ConvGeom& g, const float* w, const float* col, float* dw,
                     float* db, float* dcol, float* dx) {
  const Eigen::Index m = static_cast<Eigen::Index>(n) * g.ho * g.wo;
  const bool direct = g.direct();
  CMapR dY(dy, m, g.cout);
  if (dw && g.patch() <= kSmallPatch) {
    small_k_weight_grad(col, dy, m, g.patch(), g.cout, dw, db);
  } else if (dw) {
    CMapR C(col, m, g.patch());  // for direct convs the caller passes x as col
    MapR(dw, g.patch(), g.cout).noalias() += C.transpose() * dY;
    MapRow(db, g.cout) += dY.colwise().sum();
  }
  if (!dx) return;
  if (direct) {
    MapR(dx, m, g.cin).noalias() = dY * CMapR(w, g.patch(), g.cout).transpose();
    return;
  }
  MapR(dcol, m, g.patch()).noalias() = dY * CMapR(w, g.patch(), g.cout).transpose();
  std::memset(dx, 0, sizeof(float) * static_cast<size_t>(n) * g.hi * g.wi * g.cin);
  col2im_add(dcol, n, g, dx);
}

void dense_forward(const float* x, int n, int in, int out, const float* w, const float* b, float* y) {
  gemm_bias(x, n, in, w, b, out, y);
}

void dense_backward(const float* dy, const float* x, int n, int in, int out, const float* w, float* dw, float* db,
                    float* dx) {
  CMapR dY(dy, n, out);
  if (dw) {
    MapR(dw, in, out).noalias() += CMapR(x, n, in).transpose() * dY;
    MapRow(db, out) += dY.colwise().sum();
  }
  if (dx) MapR(dx, n, in).noalias() = dY * CMapR(w, in, out).transpose();
}

void relu_forward(const float* x, size_t count, float* y) {
#if defined(__wasm_simd128__)
  // Explicit SIMD: run in place (x == y), the plain loop cost about 2-3 ns a value here, most likely its scalar
  // version (the vectorized one needs x and y apart).
  size_t i = 0;
  for (; i + 4 <= count; i += 4) wasm_v128_store(y + i, wasm_f32x4_pmax(wasm_v128_load(x + i), wasm_f32x4_splat(0.0f)));
  for (; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
#else
#pragma omp parallel for simd schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
#endif
}

void relu_backward(const float* dy, const float* y, size_t count, float* dx) {
#pragma omp parallel for simd schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void maxpool_forward(const float* x, int n, const ConvGeom& g, float* y, int32_t* argmax) {
  const int c = g.cin;
  if (!argmax) {  // inference: the maxima only, a branch-free loop over the channels
#pragma omp parallel for schedule(static)
    for (int img = 0; img < n; ++img) {
      const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * c;
      float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * c;
      for (int oy = 0; oy < g.ho; ++oy)
        for (int ox = 0; ox < g.wo; ++ox) {
          float* yo = yi + (oy * g.wo + ox) * c;
          const float* first = xi + ((oy * g.stride) * g.wi + ox * g.stride) * c;
          std::copy(first, first + c, yo);
          for (int ky = 0; ky < g.k; ++ky)
            for (int kx = 0; kx < g.k; ++kx) {
              const float* xv = xi + ((oy * g.stride + ky) * g.wi + ox * g.stride + kx) * c;
              for (int ch = 0; ch < c; ++ch) yo[ch] = std::max(yo[ch], xv[ch]);
            }
        }
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int img = 0; img < n; ++img) {
    const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * c;
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * c;
    int32_t* ai = argmax + static_cast<size_t>(img) * g.ho * g.wo * c;
    for (int oy = 0; oy < g.ho; ++oy) {
      for (int ox = 0; ox < g.wo; ++ox) {
        float* yo = yi + (oy * g.wo + ox) * c;
        int32_t* ao = ai + (oy * g.wo + ox) * c;
        const int base = ((oy * g.stride) * g.wi + ox * g.stride) * c;
        for (int ch = 0; ch < c; ++ch) {
          yo[ch] = xi[base + ch];
          ao[ch] = base + ch;
        }
        for (int ky = 0; ky < g.k; ++ky) {
          for (int kx = 0; kx < g.k; ++kx) {
            if (ky == 0 && kx == 0) continue;
            const int off = ((oy * g.stride + ky) * g.wi + ox * g.stride + kx) * c;
            for (int ch = 0; ch < c; ++ch) {
              const float v = xi[off + ch];
              if (v > yo[ch]) {
                yo[ch] = v;
                ao[ch] = off + ch;
              }
            }
          }
        }
      }
    }
  }
}

void maxpool_backward(const float* dy, int n, const ConvGeom& g, const int32_t* argmax, float* dx) {
  const size_t in_size = static_cast<size_t>(g.hi) * g.wi * g.cin, out_size = static_cast<size_t>(g.ho) * g.wo * g.cin;
#pragma omp parallel for schedule(static)
  for (int img = 0; img < n; ++img) {
    float* dxi = dx + img * in_size;
    std::memset(dxi, 0, sizeof(float) * in_size);
    const float* dyi = dy + img * out_size;
    const int32_t* ai = argmax + img * out_size;
    for (size_t j = 0; j < out_size; ++j) dxi[ai[j]] += dyi[j];
  }
}

void dropout_forward(const float* x, size_t count, float rate, uint64_t seed, float* mask, float* y) {
  const float keep_scale = 1.0f / (1.0f - rate);
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(rate) * 4294967296.0);
  const uint64_t base = splitmix64(seed);
#pragma omp parallel for schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; ++i) {
    const uint64_t r = splitmix64(base + i) >> 32;
    mask[i] = r < threshold ? 0.0f : keep_scale;
    y[i] = x[i] * mask[i];
  }
}

void dropout_backward(const float* dy, const float* mask, size_t count, float* dx) {
#pragma omp parallel for simd schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; ++i) dx[i] = dy[i] * mask[i];
}

void batchnorm_forward_train(const float* x, size_t rows, int channels, const BatchNormParams& p, float* xhat,
                             float* invstd, float* y) {
  const Eigen::Index r = static_cast<Eigen::Index>(rows);
  CMapR X(x, r, channels);
  // Two passes in double for the statistics: rows can be n*48*48 = 147k.
  Eigen::Matrix<double, 1, Eigen::Dynamic> mean = X.cast<double>().colwise().sum() / static_cast<double>(rows);
  Eigen::Matrix<double, 1, Eigen::Dynamic> var =
      (X.cast<double>().rowwise() - mean).array().square().colwise().sum() / static_cast<double>(rows);
  for (int c = 0; c < channels; ++c) {
    invstd[c] = static_cast<float>(1.0 / std::sqrt(var[c] + p.eps));
    const double unbiased = rows > 1 ? var[c] * rows / (rows - 1) : var[c];
    p.running_mean[c] = (1.0f - p.momentum) * p.running_mean[c] + p.momentum * static_cast<float>(mean[c]);
    p.running_var[c] = (1.0f - p.momentum) * p.running_var[c] + p.momentum * static_cast<float>(unbiased);
  }
  MapR XH(xhat, r, channels);
  XH = (X.rowwise() - mean.cast<float>()).array().rowwise() * CMapRow(invstd, channels).array();
  MapR(y, r, channels) = (XH.array().rowwise() * CMapRow(p.gamma, channels).array()).rowwise() +
                         CMapRow(p.beta, channels).array();
}

void batchnorm_forward_infer(const float* x, size_t rows, int channels, const BatchNormParams& p, float* scratch,
                             float* y, bool relu) {
  float* const scale = scratch;
  float* const shift = scratch + channels;
  for (int c = 0; c < channels; ++c) {
    scale[c] = p.gamma[c] / std::sqrt(p.running_var[c] + p.eps);
    shift[c] = p.beta[c] - p.running_mean[c] * scale[c];
  }
  if (relu) {
    for (size_t i = 0; i < rows; ++i) {
      const float* xr = x + i * channels;
      float* yr = y + i * channels;
      for (int c = 0; c < channels; ++c) yr[c] = std::max(xr[c] * scale[c] + shift[c], 0.0f);
    }
    return;
  }
  for (size_t i = 0; i < rows; ++i) {
    const float* xr = x + i * channels;
    float* yr = y + i * channels;
    for (int c = 0; c < channels; ++c) yr[c] = xr[c] * scale[c] + shift[c];
  }
}

void batchnorm_backward(const float* dy, const float* xhat, const float* invstd, size_t rows, int channels,
                        const float* gamma, float* dgamma, float* dbeta, float* dx) {
  const Eigen::Index r = static_cast<Eigen::Index>(rows);
  CMapR dY(dy, r, channels), XH(xhat, r, channels);
  RowVec sum_dy = dY.colwise().sum();
  RowVec sum_dy_xhat = (dY.array() * XH.array()).colwise().sum();
  MapRow(dgamma, channels) += sum_dy_xhat;
  MapRow(dbeta, channels) += sum_dy;
  if (!dx) return;
  // dx = gamma * invstd / N * (N*dy - sum(dy) - xhat * sum(dy*xhat))
  const float inv_n = 1.0f / static_cast<float>(rows);
  RowVec scale = CMapRow(gamma, channels).array() * CMapRow(invstd, channels).array();
  RowVec mean_dy = sum_dy * inv_n, mean_dy_xhat = sum_dy_xhat * inv_n;
  MapR DX(dx, r, channels);
  DX = ((dY.rowwise() - mean_dy).array() - XH.array().rowwise() * mean_dy_xhat.array()).rowwise() * scale.array();
}

void batchnorm_backward_infer(const float* dy, size_t rows, int channels, const float* gamma, const float* running_var,
                              float eps, float* dx) {
  for (int c = 0; c < channels; ++c) {  // channel by channel: one square root each, no scratch
    const float scale = gamma[c] / std::sqrt(running_var[c] + eps);
    for (size_t i = static_cast<size_t>(c); i < rows * channels; i += channels) dx[i] = dy[i] * scale;
  }
}

void gap_forward(const float* x, int n, int hw, int c, float* y) {
  for (int i = 0; i < n; ++i)
    MapRow(y + static_cast<size_t>(i) * c, c) = CMapR(x + static_cast<size_t>(i) * hw * c, hw, c).colwise().mean();
}

void gap_backward(const float* dy, int n, int hw, int c, float* dx) {
  const float inv = 1.0f / static_cast<float>(hw);
  for (int i = 0; i < n; ++i) {
    MapR DX(dx + static_cast<size_t>(i) * hw * c, hw, c);
    DX.rowwise() = CMapRow(dy + static_cast<size_t>(i) * c, c) * inv;
  }
}

void softmax(const float* logits, int n, int classes, float* probs) {
  for (int i = 0; i < n; ++i) {
    const float* z = logits + static_cast<size_t>(i) * classes;
    float* p = probs + static_cast<size_t>(i) * classes;
    float mx = z[0];
    for (int c = 1; c < classes; ++c) mx = std::max(mx, z[c]);
    float sum = 0.0f;
    for (int c = 0; c < classes; ++c) sum += (p[c] = std::exp(z[c] - mx));
    for (int c = 0; c < classes; ++c) p[c] /= sum;
  }
}

float softmax_xent(const float* logits, const uint8_t* labels, const float* soft, const float* class_weights, int n,
                   int classes, float label_smoothing, float* probs, float* dlogits) {
  softmax(logits, n, classes, probs);
  double loss = 0.0, wsum = 0.0;
  const float uniform = label_smoothing / static_cast<float>(classes);
  for (int i = 0; i < n; ++i) {
    const float* p = probs + static_cast<size_t>(i) * classes;
    float* d = dlogits + static_cast<size_t>(i) * classes;
    float w = 0.0f;
    double ce = 0.0;
    for (int c = 0; c < classes; ++c) {
      const float hard = soft ? soft[static_cast<size_t>(i) * classes + c] : (labels[i] == c ? 1.0f : 0.0f);
      const float t = (1.0f - label_smoothing) * hard + uniform;
      d[c] = t;  // the target, for now
      w += class_weights ? t * class_weights[c] : t;
      if (t > 0.0f) ce -= t * std::log(std::max(p[c], 1e-30f));
    }
    loss += w * ce;
    wsum += w;
    for (int c = 0; c < classes; ++c) d[c] = w * (p[c] - d[c]);  // scaled by 1/wsum below
  }
  const float inv = wsum > 0.0 ? static_cast<float>(1.0 / wsum) : 0.0f;
  for (size_t j = 0; j < static_cast<size_t>(n) * classes; ++j) dlogits[j] *= inv;
  return wsum > 0.0 ? static_cast<float>(loss / wsum) : 0.0f;
}

}  // namespace ferkit
