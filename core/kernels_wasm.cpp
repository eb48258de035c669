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
// The sums are stored as max(sum, lo): lo = 0 runs a following ReLU in the stores, kNoFloor (-inf) stores them as
// they are (pmax(v, -inf) = v, NaN included).
const float kNoFloor = -std::numeric_limits<float>::infinity();

template <int MR, int NV>
inline void simd128_block(const float* A, size_t row_step, int segs, size_t seg_step, int seg_len, const float* B,
                          int N, const float* bias, float* C, size_t ldc, v128_t lo = wasm_f32x4_splat(kNoFloor)) {
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
    for (int v = 0; v < NV; ++v) wasm_v128_store(C + r * ldc + 4 * v, wasm_f32x4_pmax(c[r][v], lo));
}

// Columns [n0, N) of C = max(A * B + bias, lo), rows [0, M), a value at a time (the last N % 4: BlazeFace's 42).
void gemm_tail_columns(const float* A, ptrdiff_t M, int K, const float* B, int N, int n0, const float* bias, float* C,
                       float lo) {
  for (ptrdiff_t m = 0; m < M; ++m)
    for (int j = n0; j < N; ++j) {
      float acc = bias[j];
      for (int k = 0; k < K; ++k) acc += A[m * K + k] * B[static_cast<size_t>(k) * N + j];
      C[m * N + j] = acc < lo ? lo : acc;
    }
}

// C = max(A * B + bias, lo), row-major A (M x K), B (K x N).
void gemm_bias_simd128(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, float* C,
                       float lo_value) {
  const v128_t lo = wasm_f32x4_splat(lo_value);
  const size_t k = static_cast<size_t>(K);
  const int N4 = N & ~3;
  ptrdiff_t m = 0;
  if (M >= 4) {
    int n0 = 0;
    for (; n0 + 8 <= N4; n0 += 8)
      for (m = 0; m + 4 <= M; m += 4)
        simd128_block<4, 2>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, N, lo);
    if (n0 < N4)  // N4 % 8 == 4 (BlazeFace's 28 and 36 channels): the last 4 columns
      for (m = 0; m + 4 <= M; m += 4)
        simd128_block<4, 1>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, N, lo);
  }
  for (; m < M; ++m) {
    int n0 = 0;
    for (; n0 + 32 <= N4; n0 += 32)
      simd128_block<1, 8>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0, lo);
    for (; n0 + 8 <= N4; n0 += 8) simd128_block<1, 2>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0, lo);
    if (n0 < N4) simd128_block<1, 1>(A + m * k, 0, 1, 0, K, B + n0, N, bias + n0, C + m * N + n0, 0, lo);
  }
  if (N4 < N) gemm_tail_columns(A, M, K, B, N, N4, bias, C, lo_value);
}

// The largest 1x1 convolution (K x N weights) gemm_bias_add_simd128 takes: its weights stay in L1 while it runs
// over the rows (K, N <= 96 in BlazeFace: 36 KB).
constexpr size_t kMaxResidualWeights = 96 * 96;

// C = max(A * B + bias + shortcut, lo) for a 1x1 convolution whose output a residual add takes (AddGeom g: the
// shortcut s, channel padded, and 2x2 max pooled when g.pooled() with even sizes), also stored to C2 when not null (a
// save after the block's ReLU). Four rows at a time through every column panel, then the add and the floor over those
// rows while they are in L1; the last N % 4 columns and cs % 4 shortcut channels a value at a time.
void gemm_bias_add_simd128(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias,
                           const float* s, const AddGeom& g, float* C, float* C2, float lo_value) {
  const size_t k = static_cast<size_t>(K), hw = static_cast<size_t>(g.ho) * g.wo;
  const size_t saved = static_cast<size_t>(g.hs) * g.ws * g.cs, s_row = static_cast<size_t>(g.ws) * g.cs;
  const v128_t none = wasm_f32x4_splat(kNoFloor), lo = wasm_f32x4_splat(lo_value);
  const int N4 = N & ~3, cs4 = g.cs & ~3;
  for (ptrdiff_t m = 0; m < M; m += 4) {
    const int rows = static_cast<int>(std::min<ptrdiff_t>(4, M - m));
    float* c = C + m * N;
    if (rows == 4) {
      int n0 = 0;
      for (; n0 + 8 <= N4; n0 += 8) simd128_block<4, 2>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, c + n0, N, none);
      if (n0 < N4) simd128_block<4, 1>(A + m * k, k, 1, 0, K, B + n0, N, bias + n0, c + n0, N, none);
    } else {
      for (int r = 0; r < rows; ++r) {
        int n0 = 0;
        for (; n0 + 8 <= N4; n0 += 8)
          simd128_block<1, 2>(A + (m + r) * k, 0, 1, 0, K, B + n0, N, bias + n0, c + r * N + n0, 0, none);
        if (n0 < N4) simd128_block<1, 1>(A + (m + r) * k, 0, 1, 0, K, B + n0, N, bias + n0, c + r * N + n0, 0, none);
      }
    }
    if (N4 < N) gemm_tail_columns(A + m * k, rows, K, B, N, N4, bias, c, kNoFloor);
    for (int r = 0; r < rows; ++r) {
      const size_t row = static_cast<size_t>(m + r), img = row / hw, at = row % hw;
      const size_t oy = at / g.wo, ox = at % g.wo;
      float* cr = c + r * N;
      float* c2 = C2 ? C2 + (m + r) * N : nullptr;
      const auto put = [&](int ch, v128_t v) {
        v = wasm_f32x4_pmax(v, lo);
        wasm_v128_store(cr + ch, v);
        if (c2) wasm_v128_store(c2 + ch, v);
      };
      const auto put1 = [&](int ch, float v) {
        v = v < lo_value ? lo_value : v;
        cr[ch] = v;
        if (c2) c2[ch] = v;
      };
      const float* si = s + img * saved;
      int ch = 0;
      if (g.pooled()) {
        const float* p = si + 2 * oy * s_row + 2 * ox * g.cs;
        for (; ch < cs4; ch += 4) {
          const v128_t top = wasm_f32x4_pmax(wasm_v128_load(p + ch), wasm_v128_load(p + g.cs + ch));
          const v128_t bottom = wasm_f32x4_pmax(wasm_v128_load(p + s_row + ch), wasm_v128_load(p + s_row + g.cs + ch));
          put(ch, wasm_f32x4_add(wasm_v128_load(cr + ch), wasm_f32x4_pmax(top, bottom)));
        }
        for (; ch < g.cs; ++ch) {  // the window's first maximum in row order, as add_forward
          float best = p[ch];
          for (const float v : {p[g.cs + ch], p[s_row + ch], p[s_row + g.cs + ch]}) best = best < v ? v : best;
          put1(ch, cr[ch] + best);
        }
      } else {
        const float* p = si + oy * s_row + ox * g.cs;
        for (; ch < cs4; ch += 4) put(ch, wasm_f32x4_add(wasm_v128_load(cr + ch), wasm_v128_load(p + ch)));
        for (; ch < g.cs; ++ch) put1(ch, cr[ch] + p[ch]);
      }
      for (; ch + 4 <= N; ch += 4) put(ch, wasm_v128_load(cr + ch));
      for (; ch < N; ++ch) put1(ch, cr[ch]);
    }
  }
}

// The padded input a direct convolution reads: rows and columns of the image from -pad_top and -pad_left, as many
// as its outputs' windows cover ((ho-1)*stride + k by (wo-1)*stride + k), zero outside the image.
int padded_rows(const ConvGeom& g) { return (g.ho - 1) * g.stride + g.k; }
int padded_cols(const ConvGeom& g) { return (g.wo - 1) * g.stride + g.k; }

void pad_image(const float* xi, const ConvGeom& g, float* pad) {
  const int hp = padded_rows(g), wp = padded_cols(g);
  const size_t row = static_cast<size_t>(wp) * g.cin, in_row = static_cast<size_t>(g.wi) * g.cin;
  const int x0 = std::max(0, -g.pad_left) , cols = std::min(g.wi, wp - g.pad_left) - x0;  // image columns inside
  for (int py = 0; py < hp; ++py) {
    float* d = pad + py * row;
    const int iy = py - g.pad_top;
    if (iy < 0 || iy >= g.hi || cols <= 0) {
      std::memset(d, 0, sizeof(float) * row);
      continue;
    }
    const size_t left = static_cast<size_t>(g.pad_left + x0) * g.cin, used = static_cast<size_t>(cols) * g.cin;
    std::memset(d, 0, sizeof(float) * left);
    std::memcpy(d + left, xi + iy * in_row + static_cast<size_t>(x0) * g.cin, sizeof(float) * used);
    std::memset(d + left + used, 0, sizeof(float) * (row - left - used));
  }
}

// A k x k convolution (k > 1, any stride and padding) straight from a padded copy of each image (pad_image): a block
// of 4 output pixels in a row reads its patches as k segments of k*cin floats, one per kernel row, stride*cin floats
// apart, with no im2col copy. For rows of a multiple of 4 pixels: on rows shorter than that (6x6 maps) im2col + GEMM
// is faster, its 4-row blocks running over the whole image instead of one short row (bench/conv_layers times both).
void conv_direct_simd128(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* pad,
                         float* y, v128_t lo) {
  const int cin = g.cin, cout = g.cout;
  const size_t row = static_cast<size_t>(padded_cols(g)) * cin, step = static_cast<size_t>(g.stride) * cin;
  for (int img = 0; img < n; ++img) {
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * cout;
    pad_image(x + static_cast<size_t>(img) * g.hi * g.wi * cin, g, pad);
    for (int n0 = 0; n0 < cout; n0 += 8)  // one 8-column panel of w (k*k*cin x 8) stays in L1 for the whole image
      for (int oy = 0; oy < g.ho; ++oy) {
        const float* a = pad + oy * g.stride * row;
        float* yr = yi + static_cast<size_t>(oy) * g.wo * cout + n0;
        for (int ox = 0; ox < g.wo; ox += 4) {  // wo % 4 == 0
          if (n0 + 8 <= cout)
            simd128_block<4, 2>(a + ox * step, step, g.k, row, g.k * cin, w + n0, cout, b + n0, yr + ox * cout, cout, lo);
          else  // cout % 8 == 4
            simd128_block<4, 1>(a + ox * step, step, g.k, row, g.k * cin, w + n0, cout, b + n0, yr + ox * cout, cout, lo);
        }
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
    pad_image(x + static_cast<size_t>(img) * g.hi * g.wi * cin, g, pad);
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
// The lanes a kernel runs over: four channels a vector, or one channel a float for the last c % 4 (BlazeFace has 42).
struct Lanes4 {
  using T = v128_t;
  static T load(const float* p) { return wasm_v128_load(p); }
  static void store(float* p, T v) { wasm_v128_store(p, v); }
  static T add(T a, T b) { return wasm_f32x4_add(a, b); }
  static T mul(T a, T b) { return wasm_f32x4_mul(a, b); }
  static T max(T a, T b) { return wasm_f32x4_pmax(a, b); }
  static T splat(float v) { return wasm_f32x4_splat(v); }
};
struct Lane1 {
  using T = float;
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T add(T a, T b) { return a + b; }
  static T mul(T a, T b) { return a * b; }
  static T max(T a, T b) { return a < b ? b : a; }  // as pmax
  static T splat(float v) { return v; }
};

// 3x3 depthwise (BlazeFace's, MobileNet's) at stride 1 or 2 with at most one column of padding on the left: one row
// of outputs, channels [ch, ch + lanes), the nine weights in registers. Each input column's three values are loaded
// once and serve every output whose window holds them: at stride 1 three outputs (a running sum for the output being
// finished, one for the next), at stride 2 two. rows: the input rows of the window (inside[ky]: within the input;
// the others take zero weights), columns outside the input zero values, so the edges need no other path.
template <class L>
void depthwise3x3_row(const float* const rows[3], const bool inside[3], const ConvGeom& g, const float* w,
                      const float* b, int ch, float lo_value, float* yrow) {
  using T = typename L::T;
  const int c = g.cin, p = g.pad_left;
  const T zero = L::splat(0.0f), lo = L::splat(lo_value), bias = L::load(b + ch);
  T wk[9];
  for (int t = 0; t < 9; ++t) wk[t] = inside[t / 3] ? L::load(w + static_cast<size_t>(t) * c + ch) : zero;
  const auto load = [&](int j, T* v) {  // input column j's three values (zero outside)
    if (j < 0 || j >= g.wi) {
      v[0] = v[1] = v[2] = zero;
      return;
    }
    const size_t at = static_cast<size_t>(j) * c + ch;
    v[0] = L::load(rows[0] + at), v[1] = L::load(rows[1] + at), v[2] = L::load(rows[2] + at);
  };
  const auto tap = [&](const T* v, int kx) {  // a column's values times the kernel's column kx
    return L::add(L::add(L::mul(v[0], wk[kx]), L::mul(v[1], wk[3 + kx])), L::mul(v[2], wk[6 + kx]));
  };
  float* q = yrow + ch;
  T v[3];
  if (g.stride == 1) {  // output ox's columns: ox - p, ox - p + 1, ox - p + 2
    load(-p, v);
    T a = L::add(bias, tap(v, 0));  // output ox's sum so far
    load(1 - p, v);
    a = L::add(a, tap(v, 1));
    T next = L::add(bias, tap(v, 0));  // output ox + 1's
    for (int ox = 0; ox < g.wo; ++ox, q += c) {
      load(ox - p + 2, v);
      L::store(q, L::max(L::add(a, tap(v, 2)), lo));
      a = L::add(next, tap(v, 1));
      next = L::add(bias, tap(v, 0));
    }
  } else {  // stride 2: output ox's columns 2 ox - p, 2 ox - p + 1, 2 ox - p + 2
    load(-p, v);
    T a = L::add(bias, tap(v, 0));
    for (int ox = 0; ox < g.wo; ++ox, q += c) {
      load(2 * ox - p + 1, v);
      a = L::add(a, tap(v, 1));
      load(2 * ox - p + 2, v);
      L::store(q, L::max(L::add(a, tap(v, 2)), lo));
      a = L::add(bias, tap(v, 0));
    }
  }
}

void depthwise3x3_simd128(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y, bool relu) {
  const int c = g.cin;
  const float lo = relu ? 0.0f : kNoFloor;
  const size_t in_row = static_cast<size_t>(g.wi) * c;
  for (int img = 0; img < n; ++img) {
    const float* xi = x + static_cast<size_t>(img) * g.hi * in_row;
    float* yi = y + static_cast<size_t>(img) * g.ho * g.wo * c;
    for (int oy = 0; oy < g.ho; ++oy) {
      const float* rows[3];
      bool inside[3];
      for (int ky = 0; ky < 3; ++ky) {
        const int iy = oy * g.stride - g.pad_top + ky;
        inside[ky] = iy >= 0 && iy < g.hi;
        rows[ky] = xi + static_cast<size_t>(std::clamp(iy, 0, g.hi - 1)) * in_row;
      }
      float* yrow = yi + static_cast<size_t>(oy) * g.wo * c;
      int ch = 0;
      for (; ch + 4 <= c; ch += 4) depthwise3x3_row<Lanes4>(rows, inside, g, w, b, ch, lo, yrow);
      for (; ch < c; ++ch) depthwise3x3_row<Lane1>(rows, inside, g, w, b, ch, lo, yrow);
    }
  }
}
}  // namespace

namespace {
v128_t floor_of(bool relu) { return wasm_f32x4_splat(relu ? 0.0f : kNoFloor); }

// The shapes conv_direct_simd128 takes: past the small-patch loops, rows of a multiple of 4 pixels, outputs in
// panels of 8 or 4 channels, and not 1x1 (a plain GEMM).
bool direct_shape(const ConvGeom& g) {
  return g.k > 1 && g.patch() > kSmallPatch && g.wo % 4 == 0 && g.cout % 4 == 0;
}
}  // namespace

bool gemm_bias(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, float* C, bool relu_after) {
  if (N < 4) return false;  // (all of it in the scalar tail: Eigen is faster)
  gemm_bias_simd128(A, M, K, B, N, bias, C, relu_after ? 0.0f : kNoFloor);
  return true;
}

bool gemm_bias_add(const float* A, ptrdiff_t M, int K, const float* B, int N, const float* bias, const float* s,
                   const AddGeom& g, float* C, float* C2, bool relu_after) {
  const bool even = !g.pooled() || (g.hs == 2 * g.ho && g.ws == 2 * g.wo);
  if (g.c != N || !even || static_cast<size_t>(K) * N > kMaxResidualWeights) return false;
  gemm_bias_add_simd128(A, M, K, B, N, bias, s, g, C, C2, relu_after ? 0.0f : kNoFloor);
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
  if (direct_shape(g)) {
    conv_direct_simd128(x, n, g, w, b, scratch, y, floor_of(relu_after));
    return true;
  }
  return false;
}

size_t conv2d_scratch_floats(const ConvGeom& g, int n) {
  const size_t direct = direct_shape(g) ? static_cast<size_t>(padded_rows(g)) * padded_cols(g) * g.cin : 0;
  if (!winograd_shape(g)) return direct;  // prepared weights: the work area only; else U too, where it is taken
  return std::max(direct, winograd_work_floats(g) + (winograd_applies(g, n) ? 16 * static_cast<size_t>(g.cin) * g.cout : 0));
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
  if (g.k == 3 && (g.stride == 1 || g.stride == 2) && g.pad_left <= 1) {
    depthwise3x3_simd128(x, n, g, w, b, y, relu_after);
    return true;
  }
  if (g.cin % 4 != 0) return false;
  depthwise_simd128(x, n, g, w, b, y, relu_after);
  return true;
}

// 16 columns at a time, down all the rows in registers: the rows of weight 1 (all but the edges of a box filter's
// square) as 16-bit integer sums (at most 256 rows of bytes), the others in float, then both into the sums. Bytes
// become floats by their bits, (2^23 | v) - 2^23 = v: f32x4.convert_i32x4 of zero-extended values runs as V8's
// slow unsigned conversion (8x the time of the whole loop under node 20).
bool column_sums(const uint8_t* p, size_t stride, int rows, const float* w, size_t count, float* sums) {
  if (rows > 256) return false;
  const v128_t magic = wasm_f32x4_splat(8388608.0f);
  const auto floats = [&](v128_t u32) { return wasm_f32x4_sub(wasm_v128_or(u32, magic), magic); };
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    v128_t lo16 = wasm_i16x8_splat(0), hi16 = wasm_i16x8_splat(0);
    v128_t f[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
    for (int r = 0; r < rows; ++r) {
      const v128_t b = wasm_v128_load(p + r * stride + i);
      const v128_t lo = wasm_u16x8_extend_low_u8x16(b), hi = wasm_u16x8_extend_high_u8x16(b);
      if (w[r] == 1.0f) {
        lo16 = wasm_i16x8_add(lo16, lo);
        hi16 = wasm_i16x8_add(hi16, hi);
        continue;
      }
      const v128_t wv = wasm_f32x4_splat(w[r]);
      f[0] = wasm_f32x4_add(f[0], wasm_f32x4_mul(wv, floats(wasm_u32x4_extend_low_u16x8(lo))));
      f[1] = wasm_f32x4_add(f[1], wasm_f32x4_mul(wv, floats(wasm_u32x4_extend_high_u16x8(lo))));
      f[2] = wasm_f32x4_add(f[2], wasm_f32x4_mul(wv, floats(wasm_u32x4_extend_low_u16x8(hi))));
      f[3] = wasm_f32x4_add(f[3], wasm_f32x4_mul(wv, floats(wasm_u32x4_extend_high_u16x8(hi))));
    }
    wasm_v128_store(sums + i, wasm_f32x4_add(f[0], floats(wasm_u32x4_extend_low_u16x8(lo16))));
    wasm_v128_store(sums + i + 4, wasm_f32x4_add(f[1], floats(wasm_u32x4_extend_high_u16x8(lo16))));
    wasm_v128_store(sums + i + 8, wasm_f32x4_add(f[2], floats(wasm_u32x4_extend_low_u16x8(hi16))));
    wasm_v128_store(sums + i + 12, wasm_f32x4_add(f[3], floats(wasm_u32x4_extend_high_u16x8(hi16))));
  }
  for (; i < count; ++i) {
    float v = 0;
    for (int r = 0; r < rows; ++r) v += w[r] * static_cast<float>(p[r * stride + i]);
    sums[i] = v;
  }
  return true;
}

}  // namespace ferkit::kernels
#endif
