// Training convolutions on oneDNN (Debian's libdnnl-dev; the library PyTorch's CPU convolutions run on): native
// builds where CMake found it (FERKIT_DNNL). Forward, input gradient and weight gradient of k x k convolutions, in
// ferkit's layouts (activations NHWC, weights w[(ky*k + kx)*cin + ci][cout], i.e. HWIO), on oneDNN's OpenMP threads.
// oneDNN picks its kernels for the CPU at run time (AVX-512, AVX2, SSE4.1), so this also runs on machines without
// AVX-512. FERKIT_DNNL=0 in the environment turns it off (nn.cpp's portable im2col + GEMM path runs instead: the
// suite runs both); FERKIT_DNNL=bf16 makes the convolutions read bf16 copies of x, dy and w (bf16 dot products,
// float32 outputs and gradients: experimental, docs/results.md). A shape oneDNN has no primitive for runs on the
// portable path.
#include <oneapi/dnnl/dnnl.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"

namespace ferkit::kernels {

namespace {
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

enum class Mode { Off, F32, BF16 };
// FERKIT_DNNL's mode, or bf16 while set_bf16(true) holds (fer-train train --bf16).
std::atomic<int> chosen{-1};
Mode mode() {
  static const Mode from_env = [] {
    const char* v = std::getenv("FERKIT_DNNL");
    if (v && std::strcmp(v, "0") == 0) return Mode::Off;
    if (v && std::strcmp(v, "bf16") == 0) return Mode::BF16;
    return Mode::F32;
  }();
  const int c = chosen.load();
  return c < 0 ? from_env : static_cast<Mode>(c);
}

// One layer shape's primitives, with their weight layouts and scratch (made once per shape and batch size). In bf16
// mode the convolutions read bf16 copies of x, dy and w (src_lo, dst_lo) and write float32.
struct ConvPrims {
  bool bf16 = false;
  memory::desc src, dst, wei_user, bias, src_lo, dst_lo;
  memory x_lo, dy_lo;
  dnnl::reorder to_src_lo, to_dst_lo;
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_wei;
  dnnl::convolution_forward fwd_p;
  dnnl::convolution_backward_data bwd_data_p;
  dnnl::convolution_backward_weights bwd_wei_p;
  dnnl::reorder to_fwd_wei, to_bwd_data_wei, from_bwd_wei;
  memory fwd_wei, bwd_data_wei, bwd_wei_diff;  // the primitives' own weight layouts
  memory fwd_scratch, bwd_data_scratch, bwd_wei_scratch;  // their scratch, allocated here once (not per call)
  std::vector<float> dw, db;                   // the weight gradient as written, before it is added
};

ConvPrims make(const ConvGeom& g, int n) {
  ConvPrims c;
  auto& e = engine();
  const memory::dims src_d{n, g.cin, g.hi, g.wi}, dst_d{n, g.cout, g.ho, g.wo}, wei_d{g.cout, g.cin, g.k, g.k};
  const memory::dims strides{g.stride, g.stride};
  const memory::dims pad_l{g.pad_top, g.pad_left};
  const memory::dims pad_r{(g.ho - 1) * g.stride + g.k - g.hi - g.pad_top,
                           (g.wo - 1) * g.stride + g.k - g.wi - g.pad_left};
  c.src = memory::desc(src_d, dt::f32, tag::nhwc);
  c.dst = memory::desc(dst_d, dt::f32, tag::nhwc);
  c.wei_user = memory::desc(wei_d, dt::f32, tag::hwio);
  c.bias = memory::desc({g.cout}, dt::f32, tag::x);
  c.bf16 = mode() == Mode::BF16;
  const dt lo = c.bf16 ? dt::bf16 : dt::f32;
  c.src_lo = memory::desc(src_d, lo, tag::nhwc);
  c.dst_lo = memory::desc(dst_d, lo, tag::nhwc);
  const memory::desc wei_any(wei_d, lo, tag::any);
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, c.src_lo,
                                     wei_any, c.bias, c.dst, strides, pad_l, pad_r);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  c.fwd = dnnl::convolution_forward::primitive_desc(fd, attr, e);
  dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_direct, c.src, wei_any, c.dst_lo, strides,
                                           pad_l, pad_r);
  c.bwd_data = dnnl::convolution_backward_data::primitive_desc(bd, attr, e, c.fwd);
  const memory::desc dwei_any(wei_d, dt::f32, tag::any);
  dnnl::convolution_backward_weights::desc bw(dnnl::algorithm::convolution_direct, c.src_lo, dwei_any, c.bias,
                                              c.dst_lo, strides, pad_l, pad_r);
  c.bwd_wei = dnnl::convolution_backward_weights::primitive_desc(bw, attr, e, c.fwd);
  c.fwd_p = dnnl::convolution_forward(c.fwd);
  c.bwd_data_p = dnnl::convolution_backward_data(c.bwd_data);
  c.bwd_wei_p = dnnl::convolution_backward_weights(c.bwd_wei);
  c.fwd_wei = memory(c.fwd.weights_desc(), e);
  c.bwd_data_wei = memory(c.bwd_data.weights_desc(), e);
  c.bwd_wei_diff = memory(c.bwd_wei.diff_weights_desc(), e);
  c.fwd_scratch = memory(c.fwd.scratchpad_desc(), e);
  c.bwd_data_scratch = memory(c.bwd_data.scratchpad_desc(), e);
  c.bwd_wei_scratch = memory(c.bwd_wei.scratchpad_desc(), e);
  c.to_fwd_wei = dnnl::reorder(dnnl::reorder::primitive_desc(e, c.wei_user, e, c.fwd.weights_desc()));
  c.to_bwd_data_wei = dnnl::reorder(dnnl::reorder::primitive_desc(e, c.wei_user, e, c.bwd_data.weights_desc()));
  c.from_bwd_wei = dnnl::reorder(dnnl::reorder::primitive_desc(e, c.bwd_wei.diff_weights_desc(), e, c.wei_user));
  if (c.bf16) {
    c.x_lo = memory(c.src_lo, e);
    c.dy_lo = memory(c.dst_lo, e);
    c.to_src_lo = dnnl::reorder(dnnl::reorder::primitive_desc(e, c.src, e, c.src_lo));
    c.to_dst_lo = dnnl::reorder(dnnl::reorder::primitive_desc(e, c.dst, e, c.dst_lo));
  }
  c.dw.resize(static_cast<size_t>(g.patch()) * g.cout);
  c.db.resize(static_cast<size_t>(g.cout));
  return c;
}

// The primitives of a shape, made on first use; nullptr where oneDNN has none for it (the portable path then runs
// the layer, forward and backward alike). The cache is per thread (a trainer's thread reuses its layers' primitives
// step after step; two threads never share one's scratch).
ConvPrims* prims(const ConvGeom& g, int n) {
  thread_local std::unordered_map<std::string, std::unique_ptr<ConvPrims>> cache;
  // oneDNN's kernels are made for a thread count: it is part of the key.
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  std::string key(reinterpret_cast<const char*>(&g), sizeof g);
  key.append(reinterpret_cast<const char*>(&n), sizeof n);
  key.append(reinterpret_cast<const char*>(&threads), sizeof threads);
  key.push_back(mode() == Mode::BF16 ? 'b' : 'f');
  auto it = cache.find(key);
  if (it == cache.end()) {
    std::unique_ptr<ConvPrims> c;
    try {
      c = std::make_unique<ConvPrims>(make(g, n));
    } catch (const dnnl::error&) {
    }
    it = cache.emplace(key, std::move(c)).first;
  }
  return it->second.get();
}

// Whether oneDNN runs layers of this shape: all but the small-patch first layers, which keep nn.cpp's loops. 1x1
// layers go too: a MobileNet-style network (mb-s's first draft) trained 1.45x faster in bf16 and 1.14x in float32
// than with its 1x1 layers on Eigen's GEMM (bench_seed TrainStep, 1 thread).
bool takes(const ConvGeom& g) { return mode() != Mode::Off && g.patch() > kSmallPatch; }

memory wrap(const memory::desc& d, const float* p) { return memory(d, engine(), const_cast<float*>(p)); }

// x (or dy) as the primitives read it: itself, or its bf16 copy.
memory low(ConvPrims& c, dnnl::stream& s, const memory::desc& d, const float* p, dnnl::reorder& to, memory& copy) {
  memory m = wrap(d, p);
  if (!c.bf16) return m;
  to.execute(s, m, copy);
  return copy;
}
}  // namespace

bool set_bf16(bool on) {
  chosen.store(on ? static_cast<int>(Mode::BF16) : -1);
  return true;
}

bool conv2d_train_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y) {
  ConvPrims* cp = takes(g) ? prims(g, n) : nullptr;
  if (!cp) return false;
  ConvPrims& c = *cp;
  dnnl::stream s(engine());
  memory wu = wrap(c.wei_user, w);
  c.to_fwd_wei.execute(s, wu, c.fwd_wei);
  c.fwd_p.execute(s, {{DNNL_ARG_SRC, low(c, s, c.src, x, c.to_src_lo, c.x_lo)},
                      {DNNL_ARG_WEIGHTS, c.fwd_wei},
                      {DNNL_ARG_BIAS, wrap(c.bias, b)},
                      {DNNL_ARG_DST, wrap(c.dst, y)},
                      {DNNL_ARG_SCRATCHPAD, c.fwd_scratch}});
  s.wait();
  return true;
}

bool conv2d_train_backward(const float* dy, const float* x, int n, const ConvGeom& g, const float* w, float* dw,
                           float* db, float* dx) {
  // Without dw (explain.h's input gradients through an inference pass) the portable path runs: it reads no im2col
  // then, and the page's saliency maps stay the same whatever FERKIT_DNNL says.
  ConvPrims* cp = dw && takes(g) ? prims(g, n) : nullptr;
  if (!cp) return false;
  ConvPrims& c = *cp;
  dnnl::stream s(engine());
  memory ddst = low(c, s, c.dst, dy, c.to_dst_lo, c.dy_lo);
  memory dwu = wrap(c.wei_user, c.dw.data());
  c.bwd_wei_p.execute(s, {{DNNL_ARG_SRC, low(c, s, c.src, x, c.to_src_lo, c.x_lo)},
                          {DNNL_ARG_DIFF_DST, ddst},
                          {DNNL_ARG_DIFF_WEIGHTS, c.bwd_wei_diff},
                          {DNNL_ARG_DIFF_BIAS, wrap(c.bias, c.db.data())},
                          {DNNL_ARG_SCRATCHPAD, c.bwd_wei_scratch}});
  c.from_bwd_wei.execute(s, c.bwd_wei_diff, dwu);
  s.wait();
  for (size_t j = 0; j < c.dw.size(); ++j) dw[j] += c.dw[j];
  for (size_t o = 0; o < c.db.size(); ++o) db[o] += c.db[o];
  if (dx) {
    memory wu = wrap(c.wei_user, w);
    c.to_bwd_data_wei.execute(s, wu, c.bwd_data_wei);
    c.bwd_data_p.execute(s, {{DNNL_ARG_DIFF_DST, ddst},
                             {DNNL_ARG_WEIGHTS, c.bwd_data_wei},
                             {DNNL_ARG_DIFF_SRC, wrap(c.src, dx)},
                             {DNNL_ARG_SCRATCHPAD, c.bwd_data_scratch}});
    s.wait();
  }
  return true;
}

}  // namespace ferkit::kernels
