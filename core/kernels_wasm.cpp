// WebAssembly SIMD128 kernels (core/kernels.h). Eigen has no WebAssembly backend (its SSE path through Emscripten's
// emulation headers runs at about half the speed of these). Compiled in every build, empty outside WebAssembly.
#include "kernels.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace ferkit::kernels {

namespace {
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

// C = A * B + bias, row-major A (M x K), B (K x N), N a multiple of 4.
void gemm_bias_simd128(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, float* C) {
  const size_t k = static_cast<size_t>(K);
  ptrdiff_t m = 0;
  if (M >= 4) {
    int n0 = 0;
    for (; n0 + 8 <= N; n0 += 8)
      for (m = 0; m + 4 <= M; m += 4) simd128_block<4, 2>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, N);
    if (n0 < N)  // N % 8 == 4 (BlazeFace's 28 and 36 channels): the last 4 columns
      for (m = 0; m + 4 <= M; m += 4) simd128_block<4, 1>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, N);
  }
  for (; m < M; ++m) {
    int n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) simd128_block<1, 8>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0);
    for (; n0 + 8 <= N; n0 += 8) simd128_block<1, 2>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0);
    if (n0 < N) simd128_block<1, 1>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0);
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

// Depthwise k x k convolution, 4 channels a vector: each output pixel's channels are contiguous (NHWC), and so are
// each tap's weights.
void depthwise_simd128(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y, bool relu) {
  const int c = g.cin;
  const v128_t lo = wasm_f32x4_splat(relu ? 0.0f : -std::numeric_limits<float>::infinity());
  for (int img = 0; img < n; ++img) {
    const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * c;
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * c;
    for (int oy = 0; oy < g.ho; ++oy)
      for (int ox = 0; ox < g.wo; ++ox) {
        const int iy0 = oy * g.stride - g.pad_top, ix0 = ox * g.stride - g.pad_left;
        const int ky0 = std::max(0, -iy0), ky1 = std::min(g.k, g.hi - iy0);
        const int kx0 = std::max(0, -ix0), kx1 = std::min(g.k, g.wi - ix0);
        float* yo = yi + (static_cast<size_t>(oy) * g.wo + ox) * c;
        for (int ch = 0; ch < c; ch += 4) {
          v128_t acc = wasm_v128_load(b + ch);
          for (int ky = ky0; ky < ky1; ++ky)
            for (int kx = kx0; kx < kx1; ++kx) {
              const float* xv = xi + (static_cast<size_t>(iy0 + ky) * g.wi + ix0 + kx) * c + ch;
              const float* wv = w + static_cast<size_t>(ky * g.k + kx) * c + ch;
              acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(xv), wasm_v128_load(wv)));
            }
          wasm_v128_store(yo + ch, wasm_f32x4_pmax(acc, lo));
        }
      }
  }
}
// 3x3 depthwise (BlazeFace's, MobileNet's), any stride and padding: a row of outputs at a time, one group of 4
// channels at a time, so the group's nine weight vectors and bias stay in registers along the row; the pixels whose
// window lies inside the input take all nine taps without bounds checks, the others (the edges) go through
// depthwise_simd128's per-pixel loop.
void depthwise3x3_simd128(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y, bool relu) {
  const int c = g.cin;
  const v128_t lo = wasm_f32x4_splat(relu ? 0.0f : -std::numeric_limits<float>::infinity());
  const size_t row = static_cast<size_t>(g.wi) * c, step = static_cast<size_t>(g.stride) * c;
  // The outputs whose three input columns lie inside: ox in [ox_lo, ox_hi).
  const int ox_lo = std::min(g.wo, (g.pad_left + g.stride - 1) / g.stride);
  const int last = g.wi - 3 + g.pad_left;  // the largest ox * stride whose window ends inside (none when negative)
  const int ox_hi = last < 0 ? ox_lo : std::max(ox_lo, std::min(g.wo, last / g.stride + 1));
  for (int img = 0; img < n; ++img) {
    const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * c;
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * c;
    for (int oy = 0; oy < g.ho; ++oy) {
      const int iy0 = oy * g.stride - g.pad_top;
      const bool rows_inside = iy0 >= 0 && iy0 + 2 < g.hi;
      const int ky0 = std::max(0, -iy0), ky1 = std::min(3, g.hi - iy0);
      float* yrow = yi + static_cast<size_t>(oy) * g.wo * c;
      for (int ch = 0; ch < c; ch += 4) {
        const v128_t bias = wasm_v128_load(b + ch);
        v128_t wk[9];
        for (int t = 0; t < 9; ++t) wk[t] = wasm_v128_load(w + static_cast<size_t>(t) * c + ch);
        // One output by its taps inside the input (the edges).
        const auto edge = [&](int ox) {
          const int ix0 = ox * g.stride - g.pad_left;
          const int kx0 = std::max(0, -ix0), kx1 = std::min(3, g.wi - ix0);
          v128_t acc = bias;
          for (int ky = ky0; ky < ky1; ++ky)
            for (int kx = kx0; kx < kx1; ++kx)
              acc = wasm_f32x4_add(acc, wasm_f32x4_mul(
                  wasm_v128_load(xi + (static_cast<size_t>(iy0 + ky) * g.wi + ix0 + kx) * c + ch), wk[ky * 3 + kx]));
          wasm_v128_store(yrow + static_cast<size_t>(ox) * c + ch, wasm_f32x4_pmax(acc, lo));
        };
        if (!rows_inside) {
          for (int ox = 0; ox < g.wo; ++ox) edge(ox);
          continue;
        }
        for (int ox = 0; ox < ox_lo; ++ox) edge(ox);
        const float* p = xi + (static_cast<size_t>(iy0) * g.wi + (ox_lo * g.stride - g.pad_left)) * c + ch;
        float* q = yrow + static_cast<size_t>(ox_lo) * c + ch;
        for (int ox = ox_lo; ox < ox_hi; ++ox, p += step, q += c) {
          v128_t a0 = wasm_f32x4_mul(wasm_v128_load(p), wk[0]);
          v128_t a1 = wasm_f32x4_mul(wasm_v128_load(p + c), wk[1]);
          v128_t a2 = wasm_f32x4_mul(wasm_v128_load(p + 2 * c), wk[2]);
          a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(p + row), wk[3]));
          a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(p + row + c), wk[4]));
          a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(p + row + 2 * c), wk[5]));
          a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(p + 2 * row), wk[6]));
          a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(p + 2 * row + c), wk[7]));
          a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(p + 2 * row + 2 * c), wk[8]));
          wasm_v128_store(q, wasm_f32x4_pmax(wasm_f32x4_add(bias, wasm_f32x4_add(wasm_f32x4_add(a0, a1), a2)), lo));
        }
        for (int ox = ox_hi; ox < g.wo; ++ox) edge(ox);
      }
    }
  }
}
}  // namespace

bool gemm_bias(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, float* C, bool relu_after) {
  if (N % 4 != 0) return false;
  gemm_bias_simd128(A, M, K, B, N, bias, C);
  if (relu_after) relu(C, static_cast<size_t>(M) * N, C);
  return true;
}

bool conv2d_infer(const float* x, int n, const ConvGeom& g, const float* w, const float* u, const float* b,
                  float* scratch, float* y, bool relu_after) {
  if (u && winograd_shape(g)) {
    conv3x3_winograd_simd128(x, n, g, w, u, b, scratch, y, relu_after);
    return true;
  }
  if (winograd_applies(g, n)) {
    conv3x3_winograd_simd128(x, n, g, w, nullptr, b, scratch, y, relu_after);
    return true;
  }
  if (simd_3x3_same(g) && g.wo % 4 == 0) {
    conv3x3_same_simd128(x, n, g, w, b, scratch, y);  // scratch: (hi+2)*(wi+2)*cin <= ho*wo*9*cin floats
    if (relu_after) relu(y, static_cast<size_t>(n) * g.ho * g.wo * g.cout, y);
    return true;
  }
  return false;
}

size_t conv2d_scratch_floats(const ConvGeom& g, int n) {
  if (!winograd_shape(g)) return 0;  // prepared weights: the work area only; else U too, where the kernel is taken
  return winograd_work_floats(g) + (winograd_applies(g, n) ? 16 * static_cast<size_t>(g.cin) * g.cout : 0);
}

size_t winograd_floats(const ConvGeom& g) { return winograd_shape(g) ? 16 * static_cast<size_t>(g.cin) * g.cout : 0; }

void winograd_prepare(const ConvGeom& g, const float* w, float* u) {
  if (winograd_shape(g)) winograd_transform_weights(g, w, u);
}

// Explicit SIMD: run in place (x == y), the plain loop cost about 2-3 ns a value here, most likely its scalar
// version (the vectorized one needs x and y apart).
bool relu(const float* x, size_t count, float* y) {
  size_t i = 0;
  for (; i + 4 <= count; i += 4) wasm_v128_store(y + i, wasm_f32x4_pmax(wasm_v128_load(x + i), wasm_f32x4_splat(0.0f)));
  for (; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  return true;
}

bool depthwise(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y, bool relu_after) {
  if (g.cin % 4 != 0) return false;
  if (g.k == 3) depthwise3x3_simd128(x, n, g, w, b, y, relu_after);
  else depthwise_simd128(x, n, g, w, b, y, relu_after);
  return true;
}

}  // namespace ferkit::kernels
#endif
