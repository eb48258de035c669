#include "detect.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>

#include "data.h"
#include "image.h"
#include "model_io.h"

namespace ferkit {

namespace {

constexpr char kMagic[4] = {'F', 'K', 'H', 'C'};
constexpr size_t kHeaderBytes = 20;
constexpr size_t kMinStageBytes = 8 + 1 + 8 + 8;  // threshold, count, one single-node classifier
constexpr size_t kMinClassifierBytes = 1 + 8 + 8;
constexpr size_t kMinFeatureBytes = 1 + 5;
constexpr float kStageThresholdEps = 1e-5f;

[[noreturn]] void bad(const std::string& why) { throw std::runtime_error("cascade: " + why); }

std::string where(size_t s, size_t c) { return "stage " + std::to_string(s) + " classifier " + std::to_string(c); }

// The rules every cascade obeys, beyond what the byte layout enforces; "" when it is valid.
std::string cascade_problem(const Cascade& c) {
  if (c.window_width < 4 || c.window_width > 255 || c.window_height < 4 || c.window_height > 255)
    return "window " + std::to_string(c.window_width) + " x " + std::to_string(c.window_height) + " outside 4..255";
  if (c.stages.empty() || c.stages.size() > kMaxCascadeStages)
    return std::to_string(c.stages.size()) + " stages (1.." + std::to_string(kMaxCascadeStages) + ")";
  if (c.features.empty() || c.features.size() > kMaxCascadeFeatures)
    return std::to_string(c.features.size()) + " features (1.." + std::to_string(kMaxCascadeFeatures) + ")";
  const int nf = static_cast<int>(c.features.size());
  for (size_t s = 0; s < c.stages.size(); ++s) {
    const HaarStage& st = c.stages[s];
    if (!std::isfinite(st.threshold)) return "stage " + std::to_string(s) + ": non-finite threshold";
    if (st.classifiers.empty() || st.classifiers.size() > kMaxStageClassifiers)
      return "stage " + std::to_string(s) + ": " + std::to_string(st.classifiers.size()) + " classifiers (1.." +
             std::to_string(kMaxStageClassifiers) + ")";
    for (size_t k = 0; k < st.classifiers.size(); ++k) {
      const HaarClassifier& cl = st.classifiers[k];
      const int n = static_cast<int>(cl.nodes.size());
      if (n < 1 || n > kMaxClassifierNodes)
        return where(s, k) + ": " + std::to_string(n) + " nodes (1.." + std::to_string(kMaxClassifierNodes) + ")";
      if (static_cast<int>(cl.leaves.size()) != n + 1)
        return where(s, k) + ": " + std::to_string(cl.leaves.size()) + " leaves for " + std::to_string(n) +
               " nodes (needs " + std::to_string(n + 1) + ")";
      for (float v : cl.leaves)
        if (!std::isfinite(v)) return where(s, k) + ": non-finite leaf value";
      for (int i = 0; i < n; ++i) {
        const HaarNode& nd = cl.nodes[static_cast<size_t>(i)];
        const std::string at = where(s, k) + " node " + std::to_string(i);
        if (nd.feature < 0 || nd.feature >= nf)
          return at + ": feature " + std::to_string(nd.feature) + " of " + std::to_string(nf);
        if (!std::isfinite(nd.threshold)) return at + ": non-finite threshold";
        for (int child : {nd.left, nd.right}) {
          if (child > 0 && (child <= i || child >= n))
            return at + ": child node " + std::to_string(child) + " (must be after this node and below " +
                   std::to_string(n) + ")";
          if (child <= 0 && -child > n) return at + ": leaf " + std::to_string(-child) + " of " + std::to_string(n + 1);
        }
      }
    }
  }
  for (size_t f = 0; f < c.features.size(); ++f) {
    const HaarFeature& ft = c.features[f];
    const std::string at = "feature " + std::to_string(f);
    if (ft.num_rects < 1 || ft.num_rects > kMaxFeatureRects)
      return at + ": " + std::to_string(ft.num_rects) + " rectangles (1..3)";
    for (int r = 0; r < ft.num_rects; ++r) {
      const HaarRect& q = ft.rects[r];
      const std::string rr = at + " rectangle " + std::to_string(r);
      if (q.x < 0 || q.y < 0 || q.w < 1 || q.h < 1 || q.x > 255 || q.y > 255 || q.w > 255 || q.h > 255)
        return rr + ": bad geometry " + std::to_string(q.x) + " " + std::to_string(q.y) + " " + std::to_string(q.w) +
               " " + std::to_string(q.h);
      if (q.weight == 0 || q.weight < -128 || q.weight > 127)
        return rr + ": weight " + std::to_string(q.weight) + " (non-zero, -128..127)";
      const bool inside = ft.tilted
                              ? (q.x - q.h >= 0 && q.x + q.w <= c.window_width && q.y + q.w + q.h <= c.window_height)
                              : (q.x + q.w <= c.window_width && q.y + q.h <= c.window_height);
      if (!inside)
        return rr + ": outside the " + std::to_string(c.window_width) + " x " + std::to_string(c.window_height) +
               " window";
    }
  }
  return {};
}

struct Reader {
  const uint8_t* p;
  size_t end;  // bytes of the body (before the checksum)
  size_t pos = 0;
  size_t left() const { return end - pos; }
  void need(size_t n, const char* what) const {
    if (left() < n)
      bad(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes at offset " +
          std::to_string(pos) + ", " + std::to_string(left()) + " left");
  }
  uint8_t u8() { return p[pos++]; }
  uint16_t u16() {
    const uint16_t v = static_cast<uint16_t>(p[pos] | p[pos + 1] << 8);
    pos += 2;
    return v;
  }
  uint32_t u32() {
    const uint32_t v = static_cast<uint32_t>(p[pos]) | static_cast<uint32_t>(p[pos + 1]) << 8 |
                       static_cast<uint32_t>(p[pos + 2]) << 16 | static_cast<uint32_t>(p[pos + 3]) << 24;
    pos += 4;
    return v;
  }
  int i8() { return static_cast<int8_t>(p[pos++]); }
  float f32() {
    const uint32_t b = u32();
    float v;
    std::memcpy(&v, &b, 4);
    return v;
  }
};

void put_u8(std::vector<uint8_t>& o, unsigned v) { o.push_back(static_cast<uint8_t>(v)); }
void put_u16(std::vector<uint8_t>& o, unsigned v) {
  o.push_back(static_cast<uint8_t>(v));
  o.push_back(static_cast<uint8_t>(v >> 8));
}
void put_u32(std::vector<uint8_t>& o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_f32(std::vector<uint8_t>& o, float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  put_u32(o, b);
}

inline int32_t rect_sum(const uint32_t* b, const int32_t* o) {
  return static_cast<int32_t>(b[o[0]] - b[o[1]] - b[o[2]] + b[o[3]]);  // modulo 2^32, exact for one window
}

}  // namespace

bool Cascade::has_tilted() const {
  for (const HaarFeature& f : features)
    if (f.tilted) return true;
  return false;
}

size_t Cascade::num_classifiers() const {
  size_t n = 0;
  for (const HaarStage& s : stages) n += s.classifiers.size();
  return n;
}

Cascade load_cascade(const uint8_t* data, size_t size) {
  if (!data || size == 0) bad("no data");
  if (size < kHeaderBytes + 4)
    bad("truncated: " + std::to_string(size) + " bytes, a cascade has at least " + std::to_string(kHeaderBytes + 4));
  if (std::memcmp(data, kMagic, 4) != 0) bad("bad magic (not a ferkit cascade file)");
  Reader r{data, size - 4};
  r.pos = 4;
  const uint32_t version = r.u32();
  if (version != kCascadeFormatVersion)
    bad("unsupported version " + std::to_string(version) + " (this build reads " +
        std::to_string(kCascadeFormatVersion) + ")");
  Cascade c;
  c.window_width = r.u16();
  c.window_height = r.u16();
  if (c.window_width < 4 || c.window_width > 255 || c.window_height < 4 || c.window_height > 255)
    bad("window " + std::to_string(c.window_width) + " x " + std::to_string(c.window_height) + " outside 4..255");
  const uint32_t ns = r.u32(), nf = r.u32();
  if (ns < 1 || ns > kMaxCascadeStages)
    bad(std::to_string(ns) + " stages (1.." + std::to_string(kMaxCascadeStages) + ")");
  if (nf < 1 || nf > kMaxCascadeFeatures)
    bad(std::to_string(nf) + " features (1.." + std::to_string(kMaxCascadeFeatures) + ")");
  r.need(ns * kMinStageBytes + nf * kMinFeatureBytes, "the stages and features");
  c.stages.resize(ns);
  for (uint32_t s = 0; s < ns; ++s) {
    HaarStage& st = c.stages[s];
    r.need(8, "a stage header");
    st.threshold = r.f32();
    const uint32_t nc = r.u32();
    if (nc < 1 || nc > kMaxStageClassifiers)
      bad("stage " + std::to_string(s) + ": " + std::to_string(nc) + " classifiers (1.." +
          std::to_string(kMaxStageClassifiers) + ")");
    r.need(nc * kMinClassifierBytes, "the stage's classifiers");
    st.classifiers.resize(nc);
    for (uint32_t k = 0; k < nc; ++k) {
      HaarClassifier& cl = st.classifiers[k];
      r.need(1, "a classifier");
      const int n = r.u8();
      if (n < 1 || n > kMaxClassifierNodes)
        bad(where(s, k) + ": " + std::to_string(n) + " nodes (1.." + std::to_string(kMaxClassifierNodes) + ")");
      r.need(static_cast<size_t>(n) * 8 + static_cast<size_t>(n + 1) * 4, "a classifier's nodes and leaves");
      cl.nodes.resize(static_cast<size_t>(n));
      for (HaarNode& nd : cl.nodes) {
        nd.feature = r.u16();
        nd.left = r.i8();
        nd.right = r.i8();
        nd.threshold = r.f32();
      }
      cl.leaves.resize(static_cast<size_t>(n) + 1);
      for (float& v : cl.leaves) v = r.f32();
    }
  }
  r.need(nf * kMinFeatureBytes, "the features");
  c.features.resize(nf);
  for (uint32_t f = 0; f < nf; ++f) {
    HaarFeature& ft = c.features[f];
    r.need(1, "a feature");
    const unsigned flags = r.u8();
    if (flags & 0x7C) bad("feature " + std::to_string(f) + ": unknown flag bits " + std::to_string(flags));
    ft.num_rects = static_cast<int>(flags & 3);
    ft.tilted = (flags & 0x80) != 0;
    if (ft.num_rects < 1) bad("feature " + std::to_string(f) + ": no rectangles");
    r.need(static_cast<size_t>(ft.num_rects) * 5, "a feature's rectangles");
    for (int i = 0; i < ft.num_rects; ++i) {
      HaarRect& q = ft.rects[i];
      q.x = r.u8();
      q.y = r.u8();
      q.w = r.u8();
      q.h = r.u8();
      q.weight = r.i8();
    }
  }
  if (r.left() != 0) bad(std::to_string(r.left()) + " unexpected bytes after the features");
  const uint32_t stored = static_cast<uint32_t>(data[size - 4]) | static_cast<uint32_t>(data[size - 3]) << 8 |
                          static_cast<uint32_t>(data[size - 2]) << 16 | static_cast<uint32_t>(data[size - 1]) << 24;
  if (crc32(data, size - 4) != stored) bad("checksum mismatch: the file is corrupt");
  const std::string problem = cascade_problem(c);
  if (!problem.empty()) bad(problem);
  return c;
}

std::vector<uint8_t> save_cascade(const Cascade& c) {
  const std::string problem = cascade_problem(c);
  if (!problem.empty()) throw std::invalid_argument("save_cascade: " + problem);
  std::vector<uint8_t> o(std::begin(kMagic), std::end(kMagic));
  put_u32(o, kCascadeFormatVersion);
  put_u16(o, static_cast<unsigned>(c.window_width));
  put_u16(o, static_cast<unsigned>(c.window_height));
  put_u32(o, static_cast<uint32_t>(c.stages.size()));
  put_u32(o, static_cast<uint32_t>(c.features.size()));
  for (const HaarStage& st : c.stages) {
    put_f32(o, st.threshold);
    put_u32(o, static_cast<uint32_t>(st.classifiers.size()));
    for (const HaarClassifier& cl : st.classifiers) {
      put_u8(o, static_cast<unsigned>(cl.nodes.size()));
      for (const HaarNode& nd : cl.nodes) {
        put_u16(o, static_cast<unsigned>(nd.feature));
        put_u8(o, static_cast<unsigned>(static_cast<uint8_t>(static_cast<int8_t>(nd.left))));
        put_u8(o, static_cast<unsigned>(static_cast<uint8_t>(static_cast<int8_t>(nd.right))));
        put_f32(o, nd.threshold);
      }
      for (float v : cl.leaves) put_f32(o, v);
    }
  }
  for (const HaarFeature& ft : c.features) {
    put_u8(o, static_cast<unsigned>(ft.num_rects) | (ft.tilted ? 0x80u : 0u));
    for (int i = 0; i < ft.num_rects; ++i) {
      const HaarRect& q = ft.rects[i];
      put_u8(o, static_cast<unsigned>(q.x));
      put_u8(o, static_cast<unsigned>(q.y));
      put_u8(o, static_cast<unsigned>(q.w));
      put_u8(o, static_cast<unsigned>(q.h));
      put_u8(o, static_cast<unsigned>(static_cast<uint8_t>(static_cast<int8_t>(q.weight))));
    }
  }
  put_u32(o, crc32(o.data(), o.size()));
  return o;
}

// ---- integral images ----

void integral_images(const uint8_t* img, int w, int h, int img_stride, uint32_t* sum, uint32_t* sq, uint32_t* tilted,
                     int stride) {
  const size_t S = static_cast<size_t>(stride);
  std::fill(sum, sum + w + 1, 0u);
  std::fill(sq, sq + w + 1, 0u);
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = img + static_cast<size_t>(y) * img_stride;
    const uint32_t* sp = sum + y * S;
    const uint32_t* qp = sq + y * S;
    uint32_t* so = sum + (y + 1) * S;
    uint32_t* qo = sq + (y + 1) * S;
    uint32_t s = 0, q = 0;
    so[0] = 0;
    qo[0] = 0;
    for (int x = 0; x < w; ++x) {
      const uint32_t v = row[x];
      s += v;
      q += v * v;
      so[x + 1] = sp[x + 1] + s;
      qo[x + 1] = qp[x + 1] + q;
    }
  }
  if (!tilted) return;
  // T(X, Y) = T(X-1, Y-1) + T(X+1, Y-1) - T(X, Y-2) + I(X-1, Y-1) + I(X-1, Y-2), with the exact values outside
  // the table: T(-1, Y) = T(0, Y-1) and T(w+1, Y) = T(w, Y-1) (their triangles cover the same pixels).
  std::fill(tilted, tilted + w + 1, 0u);
  for (int Y = 1; Y <= h; ++Y) {
    uint32_t* t = tilted + Y * S;
    const uint32_t* t1 = tilted + (Y - 1) * S;
    const uint32_t* t2 = Y >= 2 ? tilted + (Y - 2) * S : nullptr;
    const uint8_t* i1 = img + static_cast<size_t>(Y - 1) * img_stride;
    const uint8_t* i2 = Y >= 2 ? img + static_cast<size_t>(Y - 2) * img_stride : nullptr;
    for (int X = 0; X <= w; ++X) {
      const uint32_t a = X >= 1 ? t1[X - 1] : (t2 ? t2[0] : 0u);
      const uint32_t b = X + 1 <= w ? t1[X + 1] : (t2 ? t2[w] : 0u);
      const uint32_t c = t2 ? t2[X] : 0u;
      uint32_t d = 0;
      if (X >= 1) d = i1[X - 1] + (i2 ? i2[X - 1] : 0u);
      t[X] = a + b - c + d;
    }
  }
}

// ---- detector ----

FaceDetector::FaceDetector(Cascade cascade) : cascade_(std::move(cascade)) {
  const std::string problem = cascade_problem(cascade_);
  if (!problem.empty()) throw std::invalid_argument("FaceDetector: invalid cascade: " + problem);
  tilted_ = cascade_.has_tilted();
  stumps_ = true;
  for (const HaarStage& st : cascade_.stages)
    for (const HaarClassifier& cl : st.classifiers) stumps_ = stumps_ && cl.nodes.size() == 1;
}

void FaceDetector::compile(int stride) {
  const Cascade& c = cascade_;
  nodes_.clear();
  leaves_.clear();
  classifiers_.clear();
  stages_.clear();
  auto make_node = [&](const HaarClassifier& cl, const HaarNode& nd) {
    const HaarFeature& f = c.features[static_cast<size_t>(nd.feature)];
    Node n{};
    for (int r = 0; r < f.num_rects; ++r) {
      const HaarRect& q = f.rects[r];
      int32_t* o = n.ofs[r];
      if (f.tilted) {
        o[0] = q.y * stride + q.x;
        o[1] = (q.y + q.h) * stride + q.x - q.h;
        o[2] = (q.y + q.w) * stride + q.x + q.w;
        o[3] = (q.y + q.w + q.h) * stride + q.x + q.w - q.h;
      } else {
        o[0] = q.y * stride + q.x;
        o[1] = q.y * stride + q.x + q.w;
        o[2] = (q.y + q.h) * stride + q.x;
        o[3] = (q.y + q.h) * stride + q.x + q.w;
      }
      n.weight[r] = q.weight;
    }
    n.threshold = nd.threshold;
    n.left = static_cast<int16_t>(nd.left);
    n.right = static_cast<int16_t>(nd.right);
    n.tilted = f.tilted ? 1 : 0;
    if (stumps_) {
      n.leaf[0] = cl.leaves[static_cast<size_t>(-nd.left)];
      n.leaf[1] = cl.leaves[static_cast<size_t>(-nd.right)];
    }
    return n;
  };
  for (const HaarStage& st : c.stages) {
    // OpenCV lowers every stage threshold by 1e-5 (THRESHOLD_EPS): trained stages can sum exactly to it.
    Stage s{static_cast<int>(classifiers_.size()), static_cast<int>(st.classifiers.size()), 0,
            st.threshold - kStageThresholdEps};
    if (stumps_) {
      // A stage's sum does not depend on the order of its stumps (up to rounding; it is summed in double):
      // those with fewer than three rectangles go first, so that the loops need no branch on the count.
      s.first = static_cast<int>(nodes_.size());
      for (int pass = 0; pass < 2; ++pass) {
        if (pass == 1) s.first3 = static_cast<int>(nodes_.size());
        for (const HaarClassifier& cl : st.classifiers) {
          const bool three = c.features[static_cast<size_t>(cl.nodes[0].feature)].num_rects == 3;
          if (three == (pass == 1)) nodes_.push_back(make_node(cl, cl.nodes[0]));
        }
      }
    } else {
      for (const HaarClassifier& cl : st.classifiers) {
        classifiers_.push_back({static_cast<int>(nodes_.size()), static_cast<int>(leaves_.size())});
        for (const HaarNode& nd : cl.nodes) nodes_.push_back(make_node(cl, nd));
        leaves_.insert(leaves_.end(), cl.leaves.begin(), cl.leaves.end());
      }
    }
    stages_.push_back(s);
  }
  // Variance normalisation over the window shrunk by one pixel on each side (OpenCV's normrect).
  const int nw = c.window_width - 2, nh = c.window_height - 2;
  norm_ofs_[0] = stride + 1;
  norm_ofs_[1] = stride + 1 + nw;
  norm_ofs_[2] = (1 + nh) * stride + 1;
  norm_ofs_[3] = (1 + nh) * stride + 1 + nw;
  norm_area_ = static_cast<float>(nw * nh);
  compiled_stride_ = stride;
}

// 1: every stage passed; 0: rejected by the first stage; -k: rejected by stage k (k >= 1) or skipped (-1) as too
// flat.
template <bool kStumps, bool kTilted>
int FaceDetector::run_window(const uint32_t* sum, const uint32_t* sq, const uint32_t* tilt, float min_var_nf) const {
  const int32_t s = rect_sum(sum, norm_ofs_);
  const uint32_t q = sq[norm_ofs_[0]] - sq[norm_ofs_[1]] - sq[norm_ofs_[2]] + sq[norm_ofs_[3]];
  double nf = static_cast<double>(norm_area_) * q - static_cast<double>(s) * s;
  if (nf <= 0) return -1;
  nf = std::sqrt(nf);
  if (nf <= min_var_nf) return -1;
  const float fnf = static_cast<float>(nf);
  // Weighted rectangle sums; 64-bit so that no valid cascade can overflow.
  auto value = [sum, tilt](const Node& n) {
    const uint32_t* b = kTilted && n.tilted ? tilt : sum;
    int64_t v = static_cast<int64_t>(n.weight[0]) * rect_sum(b, n.ofs[0]) +
                static_cast<int64_t>(n.weight[1]) * rect_sum(b, n.ofs[1]);
    if (n.weight[2] != 0) v += static_cast<int64_t>(n.weight[2]) * rect_sum(b, n.ofs[2]);
    return static_cast<float>(v);
  };
  const Node* nodes = nodes_.data();
  const int nstages = static_cast<int>(stages_.size());
  for (int si = 0; si < nstages; ++si) {
    const Stage& st = stages_[static_cast<size_t>(si)];
    double acc = 0.0;  // as OpenCV
    if constexpr (kStumps) {
      // Branch-free leaf choice: which side a window goes is data-dependent and badly predicted.
      const Node* n = nodes + st.first;
      for (const Node* e = nodes + st.first3; n != e; ++n) {
        const uint32_t* b = kTilted && n->tilted ? tilt : sum;
        const int64_t v = static_cast<int64_t>(n->weight[0]) * rect_sum(b, n->ofs[0]) +
                          static_cast<int64_t>(n->weight[1]) * rect_sum(b, n->ofs[1]);
        acc += n->leaf[!(static_cast<float>(v) < n->threshold * fnf)];
      }
      for (const Node* e = nodes + st.first + st.count; n != e; ++n) acc += n->leaf[!(value(*n) < n->threshold * fnf)];
    } else {
      const Classifier* cls = classifiers_.data();
      for (int k = st.first, e = st.first + st.count; k < e; ++k) {
        const Node* base = nodes + cls[k].first_node;
        int idx = 0;
        do {
          const Node& n = base[idx];
          idx = value(n) < n.threshold * fnf ? n.left : n.right;
        } while (idx > 0);
        acc += leaves_[static_cast<size_t>(cls[k].first_leaf - idx)];
      }
    }
    if (acc < st.threshold) return -si;
  }
  return 1;
}

// Slides the window over the current level's integral images; hits go to raw_ in frame coordinates.
template <bool kStumps, bool kTilted>
void FaceDetector::scan_level(int lw, int lh, int step, float scale, int winw, int winh, float min_var_nf) {
  const int ww = cascade_.window_width, wh = cascade_.window_height;
  const size_t stride = static_cast<size_t>(compiled_stride_);
  const uint32_t* sum = sum_.data();
  const uint32_t* sq = sq_.data();
  const uint32_t* tilt = kTilted ? tilt_.data() : nullptr;
  for (int y = 0; y <= lh - wh; y += step) {
    const size_t row = static_cast<size_t>(y) * stride;
    for (int x = 0; x <= lw - ww; x += step) {
      const size_t at = row + static_cast<size_t>(x);
      const int r = run_window<kStumps, kTilted>(sum + at, sq + at, kTilted ? tilt + at : nullptr, min_var_nf);
      ++windows_;
      if (r > 0) {
        // Rounded in float as OpenCV does.
        const float fx = static_cast<float>(x) * scale, fy = static_cast<float>(y) * scale;
        raw_.push_back({static_cast<float>(std::lrint(fx)), static_cast<float>(std::lrint(fy)),
                        static_cast<float>(winw), static_cast<float>(winh)});
      } else if (r == 0) {
        x += step;  // rejected by the first stage: skip the next position as well (as OpenCV does)
      }
    }
  }
}

// Resizes the frame to lw x lh and computes the level's integral images at stride width + 1. The resize is
// OpenCV's bit-exact bilinear one (INTER_LINEAR_EXACT, as its cascade detector uses): pixel centres aligned,
// 8-bit fixed-point weights per axis, rounded once at the end.
void FaceDetector::build_level(const uint8_t* gray, int width, int height, int lw, int lh) {
  const int stride = width + 1;
  uint32_t* tilt = tilted_ ? tilt_.data() : nullptr;
  if (lw == width && lh == height) {
    integral_images(gray, width, height, width, sum_.data(), sq_.data(), tilt, stride);
    return;
  }
  constexpr int kBits = 8, kOne = 1 << kBits;
  auto taps = [](int src, int dst, int32_t* idx, int16_t* wt) {
    const double scale = 1.0 / (static_cast<double>(dst) / src);
    for (int d = 0; d < dst; ++d) {
      const double f = (d + 0.5) * scale - 0.5;
      int i = static_cast<int>(std::floor(f));
      double frac = f - i;
      if (i < 0) i = 0, frac = 0;
      if (i >= src - 1) i = src - 1, frac = 0;
      idx[d] = i;
      wt[d] = static_cast<int16_t>(std::lrint(frac * kOne));
    }
  };
  taps(width, lw, xofs_.data(), xw_.data());
  taps(height, lh, yofs_.data(), yw_.data());
  const int32_t* xo = xofs_.data();
  const int16_t* xw = xw_.data();
  auto hpass = [&](int y, int32_t* out) {
    const uint8_t* row = gray + static_cast<size_t>(y) * width;
    for (int d = 0; d < lw; ++d) {
      const int i = xo[d];
      const int i1 = i + 1 < width ? i + 1 : i;
      out[d] = row[i] * (kOne - xw[d]) + row[i1] * xw[d];
    }
  };
  int32_t* r0 = row0_.data();
  int32_t* r1 = row1_.data();
  int c0 = -1, c1 = -1;
  uint8_t* lev = level_.data();
  for (int d = 0; d < lh; ++d) {
    const int y0 = yofs_[static_cast<size_t>(d)];
    const int y1 = y0 + 1 < height ? y0 + 1 : y0;
    if (y0 != c0) {
      if (y0 == c1) {
        std::swap(r0, r1);
        std::swap(c0, c1);
      } else {
        hpass(y0, r0);
        c0 = y0;
      }
    }
    if (y1 != c1) {
      hpass(y1, r1);
      c1 = y1;
    }
    const int wy = yw_[static_cast<size_t>(d)];
    uint8_t* out = lev + static_cast<size_t>(d) * lw;
    for (int x = 0; x < lw; ++x)
      out[x] = static_cast<uint8_t>((r0[x] * (kOne - wy) + r1[x] * wy + (1 << (2 * kBits - 1))) >> (2 * kBits));
  }
  integral_images(lev, lw, lh, lw, sum_.data(), sq_.data(), tilt, stride);
}

std::vector<Box> FaceDetector::detect(const uint8_t* gray, int width, int height, const DetectOptions& options) {
  std::vector<Box> out;
  detect(gray, width, height, options, out);
  return out;
}

void FaceDetector::detect(const uint8_t* gray, int width, int height, const DetectOptions& o, std::vector<Box>& out) {
  out.clear();
  windows_ = 0;
  if (!gray || width <= 0 || height <= 0) throw std::invalid_argument("detect: empty frame");
  if (static_cast<long long>(width) * height > kMaxImagePixels)
    throw std::invalid_argument("detect: frame too large: " + std::to_string(width) + " x " + std::to_string(height));
  if (!(o.scale_factor >= 1.01 && o.scale_factor <= 10.0))
    throw std::invalid_argument("detect: scale_factor must be in 1.01..10");
  if (o.min_neighbors < 0 || o.min_size < 0 || o.max_size < 0 || o.step < 0 || !(o.min_stddev >= 0) ||
      !std::isfinite(o.min_stddev) || !(o.group_eps >= 0) || !std::isfinite(o.group_eps))
    throw std::invalid_argument("detect: negative or non-finite option");

  const int ww = cascade_.window_width, wh = cascade_.window_height;
  const size_t table = static_cast<size_t>(width + 1) * static_cast<size_t>(height + 1);
  auto grow = [](auto& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  grow(sum_, table);
  grow(sq_, table);
  if (tilted_) grow(tilt_, table);
  grow(level_, static_cast<size_t>(width) * height);
  grow(xofs_, static_cast<size_t>(width));
  grow(xw_, static_cast<size_t>(width));
  grow(yofs_, static_cast<size_t>(height));
  grow(yw_, static_cast<size_t>(height));
  grow(row0_, static_cast<size_t>(width));
  grow(row1_, static_cast<size_t>(width));
  const int stride = width + 1;
  if (compiled_stride_ != stride) compile(stride);
  frame_w_ = width;
  frame_h_ = height;
  raw_.clear();

  const float min_var_nf = o.min_stddev * norm_area_;
  // Window sizes as OpenCV: factor = scale_factor^k, the window rounded from it, the level from its float value.
  for (double factor = 1.0;; factor *= o.scale_factor) {
    const int winw = static_cast<int>(std::lrint(ww * factor)), winh = static_cast<int>(std::lrint(wh * factor));
    if (o.max_size > 0 && (winw > o.max_size || winh > o.max_size)) break;
    if (winw > width || winh > height) break;
    if (winw < o.min_size || winh < o.min_size) continue;
    const float scale = static_cast<float>(factor);
    const int lw = static_cast<int>(std::lrint(width / static_cast<double>(scale)));
    const int lh = static_cast<int>(std::lrint(height / static_cast<double>(scale)));
    if (lw < ww || lh < wh) break;
    build_level(gray, width, height, lw, lh);
    const int step = o.step > 0 ? o.step : (scale > 2.0f ? 1 : 2);
    if (stumps_) {
      if (tilted_)
        scan_level<true, true>(lw, lh, step, scale, winw, winh, min_var_nf);
      else
        scan_level<true, false>(lw, lh, step, scale, winw, winh, min_var_nf);
    } else {
      if (tilted_)
        scan_level<false, true>(lw, lh, step, scale, winw, winh, min_var_nf);
      else
        scan_level<false, false>(lw, lh, step, scale, winw, winh, min_var_nf);
    }
  }
  group(o, out);
}

// OpenCV's groupRectangles, to the rounding: equivalence classes of similar raw rectangles, averaged; classes
// with at most min_neighbors members dropped, then boxes inside a clearly stronger box dropped.
void FaceDetector::group(const DetectOptions& o, std::vector<Box>& out) {
  const size_t n = raw_.size();
  if (o.min_neighbors <= 0) {
    for (const Raw& r : raw_) out.push_back({r.x, r.y, r.w, r.h, 1.0f});
  } else if (n > 0) {
    if (labels_.size() < n) labels_.resize(n);
    int* parent = labels_.data();
    for (size_t i = 0; i < n; ++i) parent[i] = static_cast<int>(i);
    auto find = [parent](int i) {
      while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
      }
      return i;
    };
    const double eps = o.group_eps;
    for (size_t i = 0; i < n; ++i) {
      const Raw& a = raw_[i];
      for (size_t j = i + 1; j < n; ++j) {
        const Raw& b = raw_[j];
        const double delta = eps * (std::min(a.w, b.w) + std::min(a.h, b.h)) * 0.5;
        if (std::fabs(a.x - b.x) <= delta && std::fabs(a.y - b.y) <= delta &&
            std::fabs(a.x + a.w - b.x - b.w) <= delta && std::fabs(a.y + a.h - b.y - b.h) <= delta) {
          const int ra = find(static_cast<int>(i)), rb = find(static_cast<int>(j));
          if (ra != rb) parent[std::max(ra, rb)] = std::min(ra, rb);
        }
      }
    }
    // Class sums (raw rectangles have integer coordinates), indexed by root; averages rounded as OpenCV.
    if (count_.size() < n) count_.resize(n);
    if (acc_.size() < n) acc_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      count_[i] = 0;
      acc_[i] = {0, 0, 0, 0};
    }
    for (size_t i = 0; i < n; ++i) {
      const int c = find(static_cast<int>(i));
      ++count_[static_cast<size_t>(c)];
      Raw& s = acc_[static_cast<size_t>(c)];
      s.x += raw_[i].x;
      s.y += raw_[i].y;
      s.w += raw_[i].w;
      s.h += raw_[i].h;
    }
    for (size_t i = 0; i < n; ++i) {
      if (count_[i] == 0) continue;
      const float inv = 1.0f / static_cast<float>(count_[i]);
      auto avg = [inv](float sum) { return static_cast<float>(std::lrint(sum * inv)); };
      acc_[i] = {avg(acc_[i].x), avg(acc_[i].y), avg(acc_[i].w), avg(acc_[i].h)};
    }
    for (size_t i = 0; i < n; ++i) {
      const int n1 = count_[i];
      if (n1 <= o.min_neighbors) continue;
      const Raw& r1 = acc_[i];
      bool inside = false;
      for (size_t j = 0; j < n && !inside; ++j) {
        const int n2 = count_[j];
        if (j == i || n2 <= o.min_neighbors) continue;
        const Raw& r2 = acc_[j];
        const float dx = static_cast<float>(std::lrint(r2.w * eps)), dy = static_cast<float>(std::lrint(r2.h * eps));
        inside = r1.x >= r2.x - dx && r1.y >= r2.y - dy && r1.x + r1.w <= r2.x + r2.w + dx &&
                 r1.y + r1.h <= r2.y + r2.h + dy && (n2 > std::max(3, n1) || n1 < 3);
      }
      if (!inside) out.push_back({r1.x, r1.y, r1.w, r1.h, static_cast<float>(n1)});
    }
  }
  // Clipped to the frame, as OpenCV does (rounding can push a window a pixel past the edge).
  const float fw = static_cast<float>(frame_w_), fh = static_cast<float>(frame_h_);
  size_t kept = 0;
  for (const Box& b : out) {
    const float x0 = std::max(b.x, 0.0f), y0 = std::max(b.y, 0.0f);
    const float x1 = std::min(b.x + b.w, fw), y1 = std::min(b.y + b.h, fh);
    if (x1 > x0 && y1 > y0) out[kept++] = {x0, y0, x1 - x0, y1 - y0, b.score};
  }
  out.resize(kept);
  std::sort(out.begin(), out.end(), [](const Box& a, const Box& b) { return a.x != b.x ? a.x < b.x : a.y < b.y; });
}

// ---- crop ----

Box crop_region(int width, int height, const Box& box, float margin) {
  if (width <= 0 || height <= 0) throw std::invalid_argument("crop_face: empty frame");
  if (!std::isfinite(box.x) || !std::isfinite(box.y) || !std::isfinite(box.w) || !std::isfinite(box.h) ||
      !(box.w > 0) || !(box.h > 0))
    throw std::invalid_argument("crop_face: empty or non-finite box");
  if (!std::isfinite(margin) || margin < 0) throw std::invalid_argument("crop_face: margin must be >= 0");
  if (box.x >= width || box.y >= height || box.x + box.w <= 0 || box.y + box.h <= 0)
    throw std::invalid_argument("crop_face: box outside the frame");
  const float cx = box.x + 0.5f * box.w, cy = box.y + 0.5f * box.h;
  float side = std::max(box.w, box.h) * (1.0f + 2.0f * margin);
  side = std::min(side, static_cast<float>(std::min(width, height)));
  Box r;
  r.x = std::clamp(cx - 0.5f * side, 0.0f, static_cast<float>(width) - side);
  r.y = std::clamp(cy - 0.5f * side, 0.0f, static_cast<float>(height) - side);
  r.w = r.h = side;
  return r;
}

void crop_face(const uint8_t* gray, int width, int height, const Box& box, float margin, uint8_t* out48x48) {
  if (!gray || width <= 0 || height <= 0) throw std::invalid_argument("crop_face: empty frame");
  if (!out48x48) throw std::invalid_argument("crop_face: no output buffer");
  const Box r = crop_region(width, height, box, margin);
  const float x0 = r.x, y0 = r.y, side = r.w;
  // Copy just the pixels under the square, then resample them.
  const int ix0 = std::clamp(static_cast<int>(std::floor(x0)), 0, width - 1);
  const int iy0 = std::clamp(static_cast<int>(std::floor(y0)), 0, height - 1);
  const int ix1 = std::clamp(static_cast<int>(std::ceil(x0 + side)), ix0 + 1, width);
  const int iy1 = std::clamp(static_cast<int>(std::ceil(y0 + side)), iy0 + 1, height);
  GrayImage sub;
  sub.width = ix1 - ix0;
  sub.height = iy1 - iy0;
  sub.pixels.resize(static_cast<size_t>(sub.width) * static_cast<size_t>(sub.height));
  for (int y = iy0; y < iy1; ++y)
    std::memcpy(sub.pixels.data() + static_cast<size_t>(y - iy0) * sub.width,
                gray + static_cast<size_t>(y) * width + ix0, static_cast<size_t>(sub.width));
  resample_gray(sub, x0 - static_cast<float>(ix0), y0 - static_cast<float>(iy0), side, side, out48x48, kSide, kSide);
}

}  // namespace ferkit
