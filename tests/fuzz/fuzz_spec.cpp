// libFuzzer target: the architecture spec parser, ferkit::parse_spec (core/spec.h), and building the Model it
// describes (core/model.h). A valid spec must also format to text that parses back to the same canonical text.
// Specs that are valid but describe a huge model (over kMaxParams parameters or kMaxClasses outputs) are skipped
// before the Model is built, so the target stays within -rss_limit_mb=2048. The estimate is computed in 64 bits;
// specs where a size that Model computes in int (a flattened activation, a conv patch) is over INT_MAX are always
// built: Model must reject those itself.
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "model.h"
#include "spec.h"

namespace {

constexpr int64_t kMaxParams = 50'000'000;
constexpr int64_t kMaxAllocatedParams = 1'000'000;
constexpr int64_t kMaxClasses = 1'000'000;  // above ferkit::kMaxClasses: Model must refuse those itself

// Parameters and output width of Model(spec), mirroring its shape rules in 64 bits; -1 when the spec's shapes
// don't work out (Model throws for those: building it is cheap).
struct Estimate {
  int64_t params = 0, classes = 0;
  bool int_overflow = false;  // a size Model computes in int (flatten's h*w*c, a conv patch) is over INT_MAX
};
Estimate estimate(const ferkit::Spec& spec) {
  int64_t h = spec.input.h, w = spec.input.w, c = spec.input.c;
  Estimate e;
  struct Tap {
    std::string name;
    int64_t h, w, c;
  };
  std::vector<Tap> taps;
  auto out_size = [](int64_t in, int64_t k, int64_t s, bool same) -> int64_t {
    if (same) return (in + s - 1) / s;
    return in >= k ? (in - k) / s + 1 : 0;
  };
  for (const ferkit::LayerSpec& l : spec.layers) {
    switch (l.kind) {
      case ferkit::LayerKind::Conv:
        if (static_cast<int64_t>(l.kernel) * l.kernel * c > INT_MAX) e.int_overflow = true;  // ConvGeom::patch()
        e.params += static_cast<int64_t>(l.kernel) * l.kernel * c * l.units + l.units;
        h = out_size(h, l.kernel, l.stride, l.same);
        w = out_size(w, l.kernel, l.stride, l.same);
        c = l.units;
        break;
      case ferkit::LayerKind::DepthwiseConv:
        e.params += static_cast<int64_t>(l.kernel) * l.kernel * c + c;
        h = out_size(h, l.kernel, l.stride, l.same);
        w = out_size(w, l.kernel, l.stride, l.same);
        break;
      case ferkit::LayerKind::Save:
        taps.push_back({l.tap, h, w, c});
        break;
      case ferkit::LayerKind::Add: {
        const Tap* t = nullptr;
        for (const Tap& s : taps)
          if (s.name == l.tap) t = &s;
        if (!t) return {-1, -1, e.int_overflow};
        const bool same = t->h == h && t->w == w, halved = h == (t->h + 1) / 2 && w == (t->w + 1) / 2 && t->h > 1 && t->w > 1;
        if (t->c > c || !(same || halved)) return {-1, -1, e.int_overflow};
        break;
      }
      case ferkit::LayerKind::MaxPool:
        h = out_size(h, l.kernel, l.stride, false);
        w = out_size(w, l.kernel, l.stride, false);
        break;
      case ferkit::LayerKind::Dense:
        if (h != 1 || w != 1) return {-1, -1, e.int_overflow};
        e.params += c * l.units + l.units;
        c = l.units;
        break;
      case ferkit::LayerKind::BatchNorm: e.params += 4 * c; break;
      case ferkit::LayerKind::Flatten:
        if (h * w * c > INT_MAX) e.int_overflow = true;  // Shape::size()
        c = h * w * c;
        h = w = 1;
        break;
      case ferkit::LayerKind::GlobalAvgPool: h = w = 1; break;
      case ferkit::LayerKind::ReLU:
      case ferkit::LayerKind::Dropout: break;
    }
    if (h <= 0 || w <= 0) return {-1, -1};
    // Each term is below 2^56 (h, w <= 4096, c <= 4096^3, kernel <= 15, units <= 65536); saturate the sum.
    e.params = std::min<int64_t>(e.params, INT64_C(1) << 60);
  }
  e.classes = c;
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ferkit::Spec spec;
  try {
    spec = ferkit::parse_spec(text);
  } catch (const std::exception&) {
    return 0;
  }
  // Canonical text: must parse, and format to itself.
  const std::string canon = ferkit::format_spec(spec);
  std::string again;
  try {
    again = ferkit::format_spec(ferkit::parse_spec(canon));
  } catch (const std::exception&) {
    __builtin_trap();  // format_spec wrote text parse_spec rejects
  }
  if (again != canon) __builtin_trap();  // format_spec is not canonical

  const Estimate e = estimate(spec);
  // Valid but huge: not built. Unless a size overflows int in Model: it must reject that spec itself (with an
  // exception; UBSan aborts on the signed overflow otherwise).
  if (!e.int_overflow && (e.params > kMaxParams || e.classes > kMaxClasses)) return 0;
  try {
    // Plan (shapes, sizes, limits); allocate and initialise only small models: initialising tens of millions of
    // parameters under the sanitizers takes longer than the per-input timeout (a fuzzer-found "timeout" that was
    // this harness's own cost, kept in tests/fuzz/regressions/spec/).
    ferkit::Model model(spec, false);
    if (e.params <= kMaxAllocatedParams) model.allocate();
    (void)model.summary();
    (void)model.num_trainable();
    (void)model.macs_per_image();
  } catch (const std::exception&) {
  }
  return 0;
}
