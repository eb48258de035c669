#include "data.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace ferkit {

const char* const kClassNames[kNumClasses] = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Without the line's trailing '\r' / '\n' characters.
std::string_view strip_line_end(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  return line;
}

// Without a leading UTF-8 byte-order mark.
std::string_view strip_bom(std::string_view s) {
  if (s.size() >= 3 && std::memcmp(s.data(), "\xEF\xBB\xBF", 3) == 0) s.remove_prefix(3);
  return s;
}

// Removes one pair of surrounding double quotes (CSV writers may quote any field).
std::string_view unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = trim(s.substr(1, s.size() - 2));
  return s;
}

// A value for an error message: at most 40 characters, so a garbage line does not make a huge message.
std::string shown(std::string_view s) {
  if (s.size() > 40) return std::string(s.substr(0, 40)) + "...";
  return std::string(s);
}

}  // namespace

int class_index(std::string_view name) {
  name = trim(name);
  struct Alias {
    const char* name;
    int index;
  };
  static const Alias kAliases[] = {
      {"anger", 0},     {"disgusted", 1}, {"fearful", 2}, {"happiness", 3},
      {"sadness", 4},   {"surprised", 5}, {"neutrality", 6},
  };
  for (int i = 0; i < kNumClasses; ++i)
    if (iequals(name, kClassNames[i])) return i;
  for (const Alias& a : kAliases)
    if (iequals(name, a.name)) return a.index;
  // Folder layouts converted from the CSV often name the class folders by label number.
  if (name.size() == 1 && name[0] >= '0' && name[0] < '0' + kNumClasses) return name[0] - '0';
  return -1;
}

const char* usage_name(Usage u) {
  switch (u) {
    case Usage::Training: return "Training";
    case Usage::PublicTest: return "PublicTest";
    case Usage::PrivateTest: return "PrivateTest";
  }
  return "?";
}

Dataset Dataset::first_per_class(size_t n) const {
  Dataset out;
  std::vector<size_t> taken(kNumClasses, 0);
  for (size_t i = 0; i < size(); ++i)
    if (labels[i] < kNumClasses && taken[labels[i]]++ < n) out.add(image(i), labels[i]);
  return out;
}

Dataset Dataset::relabelled_by_votes(const std::vector<float>& votes, std::vector<size_t>* index) const {
  if (votes.size() != size() * kNumClasses)
    throw std::invalid_argument("relabelled_by_votes: " + std::to_string(votes.size()) + " vote counts for " +
                                std::to_string(size()) + " images");
  Dataset out;
  if (index) index->clear();
  for (size_t i = 0; i < size(); ++i) {
    const float* v = votes.data() + i * kNumClasses;
    const int best = static_cast<int>(std::max_element(v, v + kNumClasses) - v);
    if (v[best] <= 0 || std::count(v, v + kNumClasses, v[best]) > 1) continue;
    out.add(image(i), best);
    if (index) index->push_back(i);
  }
  return out;
}

std::vector<size_t> Dataset::class_counts() const {
  std::vector<size_t> counts(kNumClasses, 0);
  for (uint8_t l : labels)
    if (l < kNumClasses) ++counts[l];
  return counts;
}

// ---------------------------------------------------------------------------------------------
// CSV

std::string check_fer_csv_header(std::string_view line) {
  std::string_view s = trim(strip_bom(line));
  // Field by field, so quoted or space-padded headers pass too.
  const char* const expected[3] = {"emotion", "pixels", "Usage"};
  size_t pos = 0;
  int field = 0;
  bool ok = true;
  while (ok) {
    size_t comma = s.find(',', pos);
    std::string_view f = s.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (field >= 3 || !iequals(unquote(f), expected[field])) ok = false;
    ++field;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (ok && field == 3) return "";
  return "expected the header 'emotion,pixels,Usage', got '" + shown(trim(line)) + "'";
}

std::string check_ferplus_header(std::string_view line) {
  line = strip_bom(strip_line_end(line));
  constexpr std::string_view kHeader = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF";
  if (line != kHeader) return "expected the FER+ header \"" + std::string(kHeader) + "\"";
  return "";
}

std::string parse_ferplus_row(std::string_view line, Usage& usage, float votes[kNumClasses]) {
  line = strip_line_end(line);
  std::vector<std::string_view> f;
  for (size_t at = 0;;) {
    const size_t comma = line.find(',', at);
    f.push_back(line.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at));
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  if (f.size() != 12) return "expected 12 fields (Usage, Image name, 10 vote counts), got " + std::to_string(f.size());
  if (f[0] == "Training") usage = Usage::Training;
  else if (f[0] == "PublicTest") usage = Usage::PublicTest;
  else if (f[0] == "PrivateTest") usage = Usage::PrivateTest;
  else return "unknown Usage '" + std::string(f[0]) + "' (expected Training, PublicTest or PrivateTest)";
  int v[10];
  for (int i = 0; i < 10; ++i) {
    const std::string_view t = f[2 + i];
    if (t.empty() || t.size() > 3 || t.find_first_not_of("0123456789") != std::string_view::npos)
      return "vote count " + std::to_string(i + 1) + " is '" + std::string(t) + "', expected a number 0..999";
    v[i] = 0;
    for (char c : t) v[i] = v[i] * 10 + (c - '0');
  }
  // FER+ columns (neutral, happiness, surprise, sadness, anger, disgust, fear) -> FER order
  // (angry, disgust, fear, happy, sad, surprise, neutral).
  const int from[kNumClasses] = {4, 5, 6, 1, 3, 2, 0};
  for (int c = 0; c < kNumClasses; ++c) votes[c] = static_cast<float>(v[from[c]]);
  return "";
}

std::string check_soft_targets_header(std::string_view line) {
  line = strip_bom(strip_line_end(line));
  constexpr std::string_view kHeader = "angry,disgust,fear,happy,sad,surprise,neutral";
  if (line != kHeader) return "expected the soft-targets header \"" + std::string(kHeader) + "\"";
  return "";
}

std::string parse_soft_targets_row(std::string_view line, float p[kNumClasses]) {
  line = strip_line_end(line);
  int field = 0;
  for (size_t at = 0;; ++field) {
    const size_t comma = line.find(',', at);
    const size_t len = comma == std::string_view::npos ? std::string_view::npos : comma - at;
    const std::string_view t = trim(line.substr(at, len));
    if (field < kNumClasses) {
      const std::string tok(t);
      char* end = nullptr;
      const float v = tok.empty() ? -1.0f : std::strtof(tok.c_str(), &end);
      if (tok.empty() || end != tok.c_str() + tok.size() || !(v >= 0.0f) || !std::isfinite(v))
        return "value " + std::to_string(field + 1) + " is '" + shown(t) + "', expected a non-negative number";
      p[field] = v;
    }
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  if (field + 1 != kNumClasses)
    return "expected " + std::to_string(kNumClasses) + " comma-separated values, got " + std::to_string(field + 1);
  return "";
}

void blend_soft_targets(Dataset& d, const std::vector<float>& targets, float weight) {
  const size_t n = d.size(), k = kNumClasses;
  if (targets.size() != n * k)
    throw std::invalid_argument("soft targets: " + std::to_string(targets.size() / k) + " rows for " +
                                std::to_string(n) + " images");
  if (!(weight >= 0.0f && weight <= 1.0f)) throw std::invalid_argument("soft targets: the weight must be in [0, 1]");
  if (d.soft.empty()) {
    d.soft.assign(n * k, 0.0f);
    for (size_t i = 0; i < n; ++i) d.soft[i * k + d.labels[i]] = 1.0f;
  }
  for (size_t i = 0; i < n; ++i) {
    const float* t = targets.data() + i * k;
    float sum = 0.0f;
    for (size_t c = 0; c < k; ++c) {
      if (!(t[c] >= 0.0f) || !std::isfinite(t[c]))
        throw std::invalid_argument("soft targets: row " + std::to_string(i) + " has a negative or non-finite value");
      sum += t[c];
    }
    if (sum <= 0.0f) continue;
    for (size_t c = 0; c < k; ++c) d.soft[i * k + c] = weight * t[c] / sum + (1.0f - weight) * d.soft[i * k + c];
  }
}

std::string parse_fer_csv_row(std::string_view line, CsvRow& row) { return parse_fer_csv_row(line, row, nullptr); }

std::string parse_fer_csv_row(std::string_view line, CsvRow& row, const char** kind) {
  auto fail = [&](const char* k, std::string msg) {
    if (kind) *kind = k;
    return msg;
  };
  line = strip_line_end(line);

  const char* b = line.data();
  const char* e = b + line.size();
  const char* c1 = static_cast<const char*>(std::memchr(b, ',', line.size()));
  const char* c2 = c1 ? static_cast<const char*>(std::memchr(c1 + 1, ',', static_cast<size_t>(e - c1 - 1))) : nullptr;
  const char* c3 = c2 ? static_cast<const char*>(std::memchr(c2 + 1, ',', static_cast<size_t>(e - c2 - 1))) : nullptr;
  if (!c1 || !c2 || c3) {
    size_t fields = 1;
    for (const char* p = b; p < e; ++p) fields += (*p == ',');
    return fail("wrong number of fields", "expected 3 comma-separated fields (emotion,pixels,Usage), got " +
                                              std::to_string(fields));
  }

  std::string_view label = unquote(std::string_view(b, static_cast<size_t>(c1 - b)));
  if (label.size() != 1 || label[0] < '0' || label[0] >= '0' + kNumClasses)
    return fail("unknown label", "unknown emotion label '" + shown(label) + "' (expected 0..6)");
  row.label = label[0] - '0';

  std::string_view usage = unquote(std::string_view(c2 + 1, static_cast<size_t>(e - c2 - 1)));
  if (iequals(usage, "Training"))
    row.usage = Usage::Training;
  else if (iequals(usage, "PublicTest"))
    row.usage = Usage::PublicTest;
  else if (iequals(usage, "PrivateTest"))
    row.usage = Usage::PrivateTest;
  else
    return fail("unknown Usage", "unknown Usage '" + shown(usage) + "' (expected Training, PublicTest or PrivateTest)");

  // Pixels: the hot loop (2304 values per row, 35,887 rows), a hand-written scanner.
  std::string_view px = unquote(std::string_view(c1 + 1, static_cast<size_t>(c2 - c1 - 1)));
  const char* p = px.data();
  const char* pe = p + px.size();
  int n = 0;
  auto digit = [](char ch) { return static_cast<unsigned>(static_cast<unsigned char>(ch)) - '0'; };
  while (p < pe) {
    if (*p == ' ' || *p == '\t') {
      ++p;
      continue;
    }
    // Fast path: 1 to 3 digits followed by a blank or the end of the field.
    const char* t = p;
    unsigned v = digit(*p);
    bool ok = v <= 9;
    if (ok) {
      ++p;
      unsigned d;
      if (p < pe && (d = digit(*p)) <= 9) {
        v = v * 10 + d;
        ++p;
        if (p < pe && (d = digit(*p)) <= 9) {
          v = v * 10 + d;
          ++p;
        }
      }
      ok = v <= 255 && (p == pe || *p == ' ' || *p == '\t');
    }
    if (!ok) {
      while (p < pe && *p != ' ' && *p != '\t') ++p;  // the whole token, for the message
      return fail("bad pixel value", "pixel " + std::to_string(n + 1) + ": expected an integer 0..255, got '" +
                                         shown(std::string_view(t, static_cast<size_t>(p - t))) + "'");
    }
    if (n < kPixels) row.pixels[n] = static_cast<uint8_t>(v);
    ++n;
  }
  if (n != kPixels)
    return fail("wrong pixel count", "expected " + std::to_string(kPixels) + " pixel values, got " + std::to_string(n));
  return "";
}

// ---------------------------------------------------------------------------------------------
// Augmentation

void image_to_input(const uint8_t* src, float* dst) {
  constexpr float k = 1.0f / 255.0f;
  for (int i = 0; i < kPixels; ++i) dst[i] = static_cast<float>(src[i]) * k;
}

void flip_input(const float* src, float* dst, int side) {
  for (int y = 0; y < side; ++y) {
    const float* s = src + static_cast<size_t>(y) * side;
    float* d = dst + static_cast<size_t>(y) * side;
    if (s == d) {
      std::reverse(d, d + side);
    } else {
      for (int x = 0; x < side; ++x) d[x] = s[side - 1 - x];
    }
  }
}

namespace {
// CutMix's and mixup's copy of the batch as it was before any mixing (scratch: n x size inputs, then n x k
// targets), to mix from: returns the targets' copy.
const float* keep_originals(const float* x, const float* targets, int n, size_t size, int k, float* scratch) {
  std::copy(x, x + n * size, scratch);
  std::copy(targets, targets + static_cast<size_t>(n) * k, scratch + n * size);
  return scratch + n * size;
}

int other_image(int i, int n, Rng& rng) { return (i + 1 + static_cast<int>(rng.below(static_cast<uint32_t>(n - 1)))) % n; }
}  // namespace

void cutmix(float* x, float* targets, int n, int side, int k, float prob, Rng& rng, float* scratch) {
  if (n < 2 || prob <= 0.0f) return;
  const size_t pixels = static_cast<size_t>(side) * side;
  const float* x0 = scratch;
  const float* t0 = keep_originals(x, targets, n, pixels, k, scratch);
  for (int i = 0; i < n; ++i) {
    // Every draw is made for every image, so one image's choices do not shift the next one's.
    const bool mix = rng.uniform() < prob;
    const int j = other_image(i, n, rng);
    const float cut = std::sqrt(1.0f - rng.uniform());  // the box's side, as a fraction: area 1 - lambda
    const float cx = rng.uniform() * side, cy = rng.uniform() * side;
    if (!mix) continue;
    const float half = 0.5f * cut * side;
    const int xa = std::clamp(static_cast<int>(std::lround(cx - half)), 0, side);
    const int xb = std::clamp(static_cast<int>(std::lround(cx + half)), 0, side);
    const int ya = std::clamp(static_cast<int>(std::lround(cy - half)), 0, side);
    const int yb = std::clamp(static_cast<int>(std::lround(cy + half)), 0, side);
    if (xb <= xa || yb <= ya) continue;
    for (int y = ya; y < yb; ++y)
      std::copy(x0 + j * pixels + y * side + xa, x0 + j * pixels + y * side + xb, x + i * pixels + y * side + xa);
    const float a = static_cast<float>((xb - xa) * (yb - ya)) / static_cast<float>(pixels);
    const float* own = t0 + static_cast<size_t>(i) * k;
    const float* other = t0 + static_cast<size_t>(j) * k;
    for (int c = 0; c < k; ++c) targets[static_cast<size_t>(i) * k + c] = (1.0f - a) * own[c] + a * other[c];
  }
}

namespace {
float gamma_draw(float a, Rng& rng) {
  if (a < 1.0f) {  // Gamma(a) = Gamma(a + 1) * U^(1/a)
    const float u = std::max(rng.uniform(), 1e-12f);
    return gamma_draw(a + 1.0f, rng) * std::pow(u, 1.0f / a);
  }
  const float d = a - 1.0f / 3.0f, c = 1.0f / std::sqrt(9.0f * d);
  for (;;) {
    float z, v;
    do {
      z = rng.normal();
      v = 1.0f + c * z;
    } while (v <= 0.0f);
    v = v * v * v;
    const float u = rng.uniform();
    if (u < 1.0f - 0.0331f * z * z * z * z || std::log(std::max(u, 1e-12f)) < 0.5f * z * z + d * (1.0f - v + std::log(v)))
      return d * v;
  }
}
}  // namespace

float beta_symmetric(float a, Rng& rng) {
  const float g1 = gamma_draw(a, rng), g2 = gamma_draw(a, rng);
  return g1 + g2 > 0.0f ? g1 / (g1 + g2) : 0.5f;
}

void mixup(float* x, float* targets, int n, size_t size, int k, float prob, float alpha, Rng& rng, float* scratch) {
  if (n < 2 || prob <= 0.0f) return;
  const float* x0 = scratch;
  const float* t0 = keep_originals(x, targets, n, size, k, scratch);
  for (int i = 0; i < n; ++i) {
    const bool mix = rng.uniform() < prob;
    const int j = other_image(i, n, rng);
    const float lam = beta_symmetric(alpha, rng);
    if (!mix) continue;
    const float* xj = x0 + j * size;
    float* xi = x + i * size;
    for (size_t p = 0; p < size; ++p) xi[p] = lam * xi[p] + (1.0f - lam) * xj[p];
    const float* other = t0 + static_cast<size_t>(j) * k;
    float* own = targets + static_cast<size_t>(i) * k;
    for (int c = 0; c < k; ++c) own[c] = lam * own[c] + (1.0f - lam) * other[c];
  }
}

AugmentDraw draw_augment(const Augment& aug, Rng& rng) {
  // Every random parameter, in a fixed order (only for the enabled parts).
  AugmentDraw a;
  a.flip = aug.flip && rng.uniform() < 0.5f;
  if (aug.shift > 0) {
    a.tx = rng.uniform(-aug.shift, aug.shift) * kSide;
    a.ty = rng.uniform(-aug.shift, aug.shift) * kSide;
  }
  if (aug.rotate_deg > 0) a.angle = rng.uniform(-aug.rotate_deg, aug.rotate_deg) * (3.14159265358979f / 180.0f);
  if (aug.scale > 0) a.scale = 1.0f + rng.uniform(-aug.scale, aug.scale);
  if (aug.brightness > 0) a.bright = rng.uniform(-aug.brightness, aug.brightness) * 255.0f;
  if (aug.contrast > 0) a.contrast = 1.0f + rng.uniform(-aug.contrast, aug.contrast);
  if (aug.erase > 0 && rng.uniform() < aug.erase) {
    // Random erasing (Zhong et al.): area 2%..25% of the image, aspect ratio 0.3..3.3.
    float area = rng.uniform(0.02f, 0.25f) * kPixels;
    float aspect = std::exp(rng.uniform(std::log(0.3f), std::log(3.3f)));
    a.eh = std::clamp(static_cast<int>(std::lround(std::sqrt(area * aspect))), 1, kSide);
    a.ew = std::clamp(static_cast<int>(std::lround(std::sqrt(area / aspect))), 1, kSide);
    a.ex0 = static_cast<int>(rng.below(static_cast<uint32_t>(kSide - a.ew + 1)));
    a.ey0 = static_cast<int>(rng.below(static_cast<uint32_t>(kSide - a.eh + 1)));
  }
  return a;
}

void apply_augment(const uint8_t* src, float* dst, const AugmentDraw& a) {
  const bool flip = a.flip;
  const float tx = a.tx, ty = a.ty, angle = a.angle, scale = a.scale, bright = a.bright, contrast = a.contrast;
  const int ex0 = a.ex0, ey0 = a.ey0, ew = a.ew, eh = a.eh;

  // Geometry: dst = c + t + scale * R(angle) * F(src - c); sample src at the inverse for every dst pixel.
  const bool warp = tx != 0.0f || ty != 0.0f || angle != 0.0f || scale != 1.0f;
  if (!warp) {
    for (int y = 0; y < kSide; ++y) {
      const uint8_t* s = src + y * kSide;
      float* d = dst + y * kSide;
      if (flip)
        for (int x = 0; x < kSide; ++x) d[x] = s[kSide - 1 - x];
      else
        for (int x = 0; x < kSide; ++x) d[x] = s[x];
    }
  } else {
    const float c = 0.5f * (kSide - 1);
    const float inv = 1.0f / scale;
    const float ca = std::cos(angle) * inv, sa = std::sin(angle) * inv;
    const float fx = flip ? -1.0f : 1.0f;
    const float hi = static_cast<float>(kSide - 1);
    for (int y = 0; y < kSide; ++y) {
      const float dy = static_cast<float>(y) - c - ty;
      for (int x = 0; x < kSide; ++x) {
        const float dx = static_cast<float>(x) - c - tx;
        float u = c + fx * (ca * dx + sa * dy);
        float v = c + (-sa * dx + ca * dy);
        u = std::clamp(u, 0.0f, hi);  // border: replicate the edge
        v = std::clamp(v, 0.0f, hi);
        int x0 = static_cast<int>(u), y0 = static_cast<int>(v);
        int x1 = std::min(x0 + 1, kSide - 1), y1 = std::min(y0 + 1, kSide - 1);
        float wx = u - static_cast<float>(x0), wy = v - static_cast<float>(y0);
        const uint8_t* r0 = src + y0 * kSide;
        const uint8_t* r1 = src + y1 * kSide;
        float top = r0[x0] + wx * (static_cast<float>(r0[x1]) - r0[x0]);
        float bot = r1[x0] + wx * (static_cast<float>(r1[x1]) - r1[x0]);
        dst[y * kSide + x] = top + wy * (bot - top);
      }
    }
  }

  // Photometric: contrast around the image mean, then brightness; clamp to the valid range.
  if (bright != 0.0f || contrast != 1.0f) {
    float sum = 0.0f;
    for (int i = 0; i < kPixels; ++i) sum += dst[i];
    const float mean = sum / kPixels;
    const float add = mean * (1.0f - contrast) + bright;
    for (int i = 0; i < kPixels; ++i) dst[i] = std::clamp(dst[i] * contrast + add, 0.0f, 255.0f);
  }

  if (ew > 0) {
    for (int y = ey0; y < ey0 + eh; ++y)
      for (int x = ex0; x < ex0 + ew; ++x) dst[y * kSide + x] = 127.5f;
  }

  constexpr float k = 1.0f / 255.0f;
  for (int i = 0; i < kPixels; ++i) dst[i] *= k;
}

void augment_image(const uint8_t* src, float* dst, const Augment& aug, Rng& rng) {
  apply_augment(src, dst, draw_augment(aug, rng));
}

}  // namespace ferkit
