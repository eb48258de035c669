#include "nn.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "collective.h"
#include "kernels.h"
#include "rng.h"

namespace ferkit {

namespace {
using MatR = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapR = Eigen::Map<MatR>;
using CMapR = Eigen::Map<const MatR>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using MapRow = Eigen::Map<RowVec>;
using CMapRow = Eigen::Map<const RowVec>;

}  // namespace

using kernels::kSmallPatch;

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

// y = a * w + b over rows: a (m x k), w (k x n), row-major.
void gemm_bias(const float* a, Eigen::Index m, int k, const float* w, const float* b, int n, float* y,
               bool relu = false) {
  if (kernels::gemm_bias(a, m, k, w, n, b, y, relu)) return;
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
  return std::max(static_cast<size_t>(n) * g.ho * g.wo * g.patch(), kernels::conv2d_scratch_floats(g, n));
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

namespace {
// im2col (unless the convolution is 1x1) and a product, small-patch loops or GEMM.
void conv2d_im2col_gemm(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* col,
                        float* y, bool relu) {
  const Eigen::Index m = static_cast<Eigen::Index>(n) * g.ho * g.wo;
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
}  // namespace

void conv2d_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* col, float* y) {
  if (kernels::conv2d_train_forward(x, n, g, w, b, y)) return;
  conv2d_im2col_gemm(x, n, g, w, b, col, y, false);
}

void conv2d_forward_infer(const float* x, int n, const ConvGeom& g, const float* w, const float* winograd_u,
                          const float* b, float* scratch, float* y, bool relu) {
  if (kernels::conv2d_infer(x, n, g, w, winograd_u, b, scratch, y, relu)) return;
  conv2d_im2col_gemm(x, n, g, w, b, scratch, y, relu);
}

bool train_convolutions_in_bf16(bool on) { return kernels::set_bf16(on); }

void conv2d_backward(const float* dy, const float* x, int n, const ConvGeom& g, const float* w, const float* col,
                     float* dw, float* db, float* dcol, float* dx) {
  if (kernels::conv2d_train_backward(dy, x, n, g, w, dw, db, dx)) return;
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

void depthwise_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y, bool relu) {
  if (kernels::depthwise(x, n, g, w, b, y, relu)) return;
  const int c = g.cin;
  const float lo = relu ? 0.0f : -std::numeric_limits<float>::infinity();  // max(v, -inf) = v
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n * g.ho; ++r) {  // one output row of one image
    const int img = r / g.ho, oy = r % g.ho;
    const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * c;
    const int iy0 = oy * g.stride - g.pad_top;
    const int ky0 = std::max(0, -iy0), ky1 = std::min(g.k, g.hi - iy0);
    for (int ox = 0; ox < g.wo; ++ox) {
      const int ix0 = ox * g.stride - g.pad_left;
      const int kx0 = std::max(0, -ix0), kx1 = std::min(g.k, g.wi - ix0);
      float* __restrict yo = y + (static_cast<size_t>(r) * g.wo + ox) * c;
      for (int ch = 0; ch < c; ++ch) yo[ch] = b[ch];
      for (int ky = ky0; ky < ky1; ++ky)
        for (int kx = kx0; kx < kx1; ++kx) {
          const float* __restrict xv = xi + (static_cast<size_t>(iy0 + ky) * g.wi + ix0 + kx) * c;
          const float* __restrict wv = w + static_cast<size_t>(ky * g.k + kx) * c;
          for (int ch = 0; ch < c; ++ch) yo[ch] += xv[ch] * wv[ch];
        }
      for (int ch = 0; ch < c; ++ch) yo[ch] = std::max(yo[ch], lo);
    }
  }
}

void depthwise_backward(const float* dy, const float* x, int n, const ConvGeom& g, const float* w, float* dw,
                        float* db, float* dx) {
  const int c = g.cin;
  if (dx) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(n) * g.hi * g.wi * c);
  // Images in turn (dx's windows overlap within an image); the weight gradient summed in a fixed order, so the
  // result is the same for any number of threads.
  for (int img = 0; img < n; ++img) {
    const float* xi = x + static_cast<size_t>(img) * g.hi * g.wi * c;
    float* dxi = dx ? dx + static_cast<size_t>(img) * g.hi * g.wi * c : nullptr;
    for (int oy = 0; oy < g.ho; ++oy)
      for (int ox = 0; ox < g.wo; ++ox) {
        const float* __restrict d = dy + ((static_cast<size_t>(img) * g.ho + oy) * g.wo + ox) * c;
        const int iy0 = oy * g.stride - g.pad_top, ix0 = ox * g.stride - g.pad_left;
        const int ky0 = std::max(0, -iy0), ky1 = std::min(g.k, g.hi - iy0);
        const int kx0 = std::max(0, -ix0), kx1 = std::min(g.k, g.wi - ix0);
        if (dw)
          for (int ch = 0; ch < c; ++ch) db[ch] += d[ch];
        for (int ky = ky0; ky < ky1; ++ky)
          for (int kx = kx0; kx < kx1; ++kx) {
            const size_t at = (static_cast<size_t>(iy0 + ky) * g.wi + ix0 + kx) * c;
            const size_t tap = static_cast<size_t>(ky * g.k + kx) * c;
            if (dw) {
              const float* __restrict xv = xi + at;
              float* __restrict dwv = dw + tap;
              for (int ch = 0; ch < c; ++ch) dwv[ch] += xv[ch] * d[ch];
            }
            if (dxi) {
              float* __restrict dxv = dxi + at;
              const float* __restrict wv = w + tap;
              for (int ch = 0; ch < c; ++ch) dxv[ch] += wv[ch] * d[ch];
            }
          }
      }
  }
}

namespace {
// The saved value that the shortcut carries to output pixel (oy, ox), channel ch < cs of image s_img: itself, or its
// 2x2 window's maximum (the first one, in row order, on a tie) and where that is.
inline size_t shortcut_source(const float* s_img, const AddGeom& g, int oy, int ox, int ch) {
  if (!g.pooled()) return (static_cast<size_t>(oy) * g.ws + ox) * g.cs + ch;
  size_t best = (static_cast<size_t>(2 * oy) * g.ws + 2 * ox) * g.cs + ch;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const int y = 2 * oy + dy, x = 2 * ox + dx;
      if (y >= g.hs || x >= g.ws) continue;
      const size_t at = (static_cast<size_t>(y) * g.ws + x) * g.cs + ch;
      if (s_img[at] > s_img[best]) best = at;
    }
  return best;
}
}  // namespace

void add_forward(const float* x, const float* s, int n, const AddGeom& g, float* y, bool relu) {
  const size_t out = static_cast<size_t>(g.ho) * g.wo * g.c, saved = static_cast<size_t>(g.hs) * g.ws * g.cs;
  const float lo = relu ? 0.0f : -std::numeric_limits<float>::infinity();  // max(v, -inf) = v
  if (!g.pooled() && g.cs == g.c) {
    for (size_t j = 0; j < static_cast<size_t>(n) * out; ++j) y[j] = std::max(x[j] + s[j], lo);
    return;
  }
  for (int img = 0; img < n; ++img) {
    const float* si = s + img * saved;
    const float* xi = x + img * out;
    float* yi = y + img * out;
    for (int oy = 0; oy < g.ho; ++oy)
      for (int ox = 0; ox < g.wo; ++ox) {
        const size_t o = (static_cast<size_t>(oy) * g.wo + ox) * g.c;
        if (g.pooled()) {  // the largest of the 2x2 window's pixels inside the saved map, channel by channel
          const float* win[4];
          int k = 0;
          for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx)
              if (2 * oy + dy < g.hs && 2 * ox + dx < g.ws)
                win[k++] = si + (static_cast<size_t>(2 * oy + dy) * g.ws + 2 * ox + dx) * g.cs;
          for (int ch = 0; ch < g.cs; ++ch) {
            float m = win[0][ch];
            for (int j = 1; j < k; ++j) m = std::max(m, win[j][ch]);
            yi[o + ch] = std::max(xi[o + ch] + m, lo);
          }
        } else {
          const float* sv = si + (static_cast<size_t>(oy) * g.ws + ox) * g.cs;
          for (int ch = 0; ch < g.cs; ++ch) yi[o + ch] = std::max(xi[o + ch] + sv[ch], lo);
        }
        for (int ch = g.cs; ch < g.c; ++ch) yi[o + ch] = std::max(xi[o + ch], lo);
      }
  }
}

void conv1x1_add_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, const float* s,
                         const AddGeom& a, float* y, float* y2, bool relu) {
  const Eigen::Index m = static_cast<Eigen::Index>(n) * g.ho * g.wo;
  if (kernels::gemm_bias_add(x, m, g.cin, w, g.cout, b, s, a, y, y2, relu)) return;
  conv2d_forward_infer(x, n, g, w, nullptr, b, nullptr, y);  // (1x1: no scratch)
  add_forward(y, s, n, a, y, relu);
  if (y2) std::memcpy(y2, y, sizeof(float) * static_cast<size_t>(m) * g.cout);
}

void add_backward(const float* dy, const float* s, int n, const AddGeom& g, float* dx, float* ds) {
  const size_t out = static_cast<size_t>(g.ho) * g.wo * g.c, saved = static_cast<size_t>(g.hs) * g.ws * g.cs;
  if (dx && dx != dy) std::memcpy(dx, dy, sizeof(float) * n * out);
  if (!ds) return;
  for (int img = 0; img < n; ++img) {
    const float* si = s + img * saved;
    const float* di = dy + img * out;
    float* dsi = ds + img * saved;
    for (int oy = 0; oy < g.ho; ++oy)
      for (int ox = 0; ox < g.wo; ++ox) {
        const size_t o = (static_cast<size_t>(oy) * g.wo + ox) * g.c;
        for (int ch = 0; ch < g.cs; ++ch) dsi[shortcut_source(si, g, oy, ox, ch)] += di[o + ch];
      }
  }
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
  if (kernels::relu(x, count, y)) return;
#pragma omp parallel for simd schedule(static) if (count > 65536)
  for (size_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
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

void dropout_forward(const float* x, size_t count, float rate, uint64_t seed, float* mask, float* y, size_t offset) {
  const float keep_scale = 1.0f / (1.0f - rate);
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(rate) * 4294967296.0);
  const uint64_t base = splitmix64(seed) + offset;
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

namespace {
// Per-channel sums over rows, on the OpenMP threads: the rows are cut into a fixed number of chunks (whatever the
// thread count), each summed in double, then the chunks are added in order, so that the result does not depend on
// the number of threads. f(row, partial) adds one row's terms into partial[0..width).
constexpr int kSumChunks = 16;
template <typename F>
void chunked_column_sums(size_t rows, int width, double* out, F f) {
  thread_local std::vector<double> partial;
  partial.assign(static_cast<size_t>(kSumChunks) * width, 0.0);
  double* const part = partial.data();  // (thread_local: the pointer, not the name, is shared with the workers)
#pragma omp parallel for schedule(static)
  for (int ch = 0; ch < kSumChunks; ++ch) {
    double* acc = part + static_cast<size_t>(ch) * width;
    for (size_t r = rows * ch / kSumChunks, end = rows * (ch + 1) / kSumChunks; r < end; ++r) f(r, acc);
  }
  for (int j = 0; j < width; ++j) out[j] = 0.0;
  for (int ch = 0; ch < kSumChunks; ++ch)
    for (int j = 0; j < width; ++j) out[j] += part[static_cast<size_t>(ch) * width + j];
}
}  // namespace

void batchnorm_forward_train(const float* x, size_t rows, int channels, const BatchNormParams& p, float* xhat,
                             float* invstd, float* y, Collective* across) {
  // Two passes in double for the statistics: rows can be n*48*48 = 147k. The sums carry the row count as their
  // last entry, so that a data-parallel run sums both across its processes in one call.
  thread_local std::vector<double> stats;
  stats.resize(3 * static_cast<size_t>(channels) + 1);
  double* const sums = stats.data();               // channels + 1
  double* const mean = sums + channels + 1;        // channels
  double* const var = mean + channels;             // channels
  chunked_column_sums(rows, channels, sums, [&](size_t r, double* acc) {
    const float* xr = x + r * channels;
    for (int c = 0; c < channels; ++c) acc[c] += xr[c];
  });
  sums[channels] = static_cast<double>(rows);
  if (across) across->sum(sums, channels + 1);
  const double total = std::max(sums[channels], 1.0);
  for (int c = 0; c < channels; ++c) mean[c] = sums[c] / total;
  chunked_column_sums(rows, channels, sums, [&](size_t r, double* acc) {
    const float* xr = x + r * channels;
    for (int c = 0; c < channels; ++c) {
      const double d = xr[c] - mean[c];
      acc[c] += d * d;
    }
  });
  if (across) across->sum(sums, channels);
  for (int c = 0; c < channels; ++c) var[c] = sums[c] / total;
  const double count = sums[channels];
  thread_local std::vector<float> meanv;
  meanv.resize(static_cast<size_t>(channels));
  float* const meanf = meanv.data();
  for (int c = 0; c < channels; ++c) {
    invstd[c] = static_cast<float>(1.0 / std::sqrt(var[c] + p.eps));
    const double unbiased = count > 1 ? var[c] * count / (count - 1) : var[c];
    p.running_mean[c] = (1.0f - p.momentum) * p.running_mean[c] + p.momentum * static_cast<float>(mean[c]);
    p.running_var[c] = (1.0f - p.momentum) * p.running_var[c] + p.momentum * static_cast<float>(unbiased);
    meanf[c] = static_cast<float>(mean[c]);
  }
  const float* __restrict gamma = p.gamma;
  const float* __restrict beta = p.beta;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * channels;
    float* __restrict hr = xhat + r * channels;
    float* __restrict yr = y + r * channels;
    for (int c = 0; c < channels; ++c) {
      const float h = (xr[c] - meanf[c]) * invstd[c];
      hr[c] = h;
      yr[c] = h * gamma[c] + beta[c];
    }
  }
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
                        const float* gamma, float* dgamma, float* dbeta, float* dx, Collective* across) {
  // sums: sum(dy), sum(dy * xhat) per channel, and the row count (the whole batch's, across processes).
  thread_local std::vector<double> stats;
  stats.resize(2 * static_cast<size_t>(channels) + 1);
  double* const sums = stats.data();
  chunked_column_sums(rows, 2 * channels, sums, [&](size_t r, double* acc) {
    const float* dr = dy + r * channels;
    const float* hr = xhat + r * channels;
    for (int c = 0; c < channels; ++c) {
      acc[c] += dr[c];
      acc[channels + c] += dr[c] * hr[c];
    }
  });
  for (int c = 0; c < channels; ++c) {
    dgamma[c] += static_cast<float>(sums[channels + c]);
    dbeta[c] += static_cast<float>(sums[c]);
  }
  if (!dx) return;
  sums[2 * channels] = static_cast<double>(rows);
  if (across) across->sum(sums, 2 * channels + 1);
  // dx = gamma * invstd / N * (N*dy - sum(dy) - xhat * sum(dy*xhat))
  const double inv_n = 1.0 / std::max(sums[2 * channels], 1.0);
  thread_local std::vector<float> coef;  // scale, mean(dy), mean(dy * xhat)
  coef.resize(3 * static_cast<size_t>(channels));
  float* const scale = coef.data();
  float* const mean_dy = scale + channels;
  float* const mean_dy_xhat = mean_dy + channels;
  for (int c = 0; c < channels; ++c) {
    scale[c] = gamma[c] * invstd[c];
    mean_dy[c] = static_cast<float>(sums[c] * inv_n);
    mean_dy_xhat[c] = static_cast<float>(sums[channels + c] * inv_n);
  }
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; ++r) {
    const float* __restrict dr = dy + r * channels;
    const float* __restrict hr = xhat + r * channels;
    float* __restrict xr = dx + r * channels;
    for (int c = 0; c < channels; ++c) xr[c] = (dr[c] - mean_dy[c] - hr[c] * mean_dy_xhat[c]) * scale[c];
  }
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

void softmax(const float* logits, int n, int classes, float* probs, float temperature) {
  const float inv_t = 1.0f / temperature;
  for (int i = 0; i < n; ++i) {
    const float* z = logits + static_cast<size_t>(i) * classes;
    float* p = probs + static_cast<size_t>(i) * classes;
    float mx = z[0];
    for (int c = 1; c < classes; ++c) mx = std::max(mx, z[c]);
    float sum = 0.0f;
    if (temperature == 1.0f)  // exactly as before calibration existed
      for (int c = 0; c < classes; ++c) sum += (p[c] = std::exp(z[c] - mx));
    else
      for (int c = 0; c < classes; ++c) sum += (p[c] = std::exp((z[c] - mx) * inv_t));
    for (int c = 0; c < classes; ++c) p[c] /= sum;
  }
}

float softmax_xent(const float* logits, const uint8_t* labels, const float* soft, const float* class_weights, int n,
                   int classes, float label_smoothing, float* probs, float* dlogits, double* weight_sum) {
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
  if (weight_sum) *weight_sum = wsum;
  return wsum > 0.0 ? static_cast<float>(loss / wsum) : 0.0f;
}

}  // namespace ferkit
