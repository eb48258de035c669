#include "blazeface.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>

#include "data.h"
#include "image.h"
#include "kernels.h"

namespace ferkit {

namespace {
constexpr int kBoxValues = 4 + 2 * kNumFaceKeypoints;  // per anchor: centre offset, size, keypoints
// The network finds faces down to about this fraction of its view's side (measured: the astronaut's face scores
// 0.84-0.96 at 13% to 60% of the view at rolls up to 60 degrees, 0.3-0.6 at 9%).
constexpr float kSmallestFace = 0.15f;
// A region looked at again (region_of) is this many face widths wide: the face takes up 40% of it.
constexpr float kRegionPerFace = 2.5f;
// The region sizes (in face widths) at which find() looks at a candidate again.
constexpr float kLookSizes[] = {1.6f, 2.0f, 2.5f, 3.2f, 4.0f};

[[noreturn]] void refuse(const std::string& why) { throw std::invalid_argument("BlazeFace: " + why); }

}  // namespace

float iou(const Box& a, const Box& b) {
  const float x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const float x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  if (x1 <= x0 || y1 <= y0) return 0.0f;
  const float inter = (x1 - x0) * (y1 - y0);
  const float uni = a.w * a.h + b.w * b.h - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

bool Roi::usable() const {
  return side >= 1 && std::isfinite(side) && std::isfinite(cx) && std::isfinite(cy) && std::isfinite(angle);
}

float Detection::roll() const {
  const Point& r = keypoints[kRightEye];
  const Point& l = keypoints[kLeftEye];
  return std::atan2(l.y - r.y, l.x - r.x);
}

Roi Roi::whole(int width, int height) {
  return {0.5f * static_cast<float>(width), 0.5f * static_cast<float>(height),
          static_cast<float>(std::max(width, height)), 0.0f};
}

BlazeFace::BlazeFace(Model model) : model_(std::move(model)) {
  const Shape in = model_.spec.input;
  if (in.h != in.w || in.c != 3) refuse("expected a square RGB input, got " + std::to_string(in.h) + "x" +
                                        std::to_string(in.w) + "x" + std::to_string(in.c));
  if (model_.params.size() != model_.planned_params()) refuse("the model has no weights");
  std::vector<const LayerPlan*> heads;
  for (const LayerPlan& p : model_.layers)
    if (p.spec.kind == LayerKind::Head) heads.push_back(&p);
  if (heads.empty() || heads.size() % 2) refuse("expected score heads and as many box heads (spec.h 'head')");
  const size_t levels = heads.size() / 2;
  for (size_t l = 0; l < levels; ++l) {
    const Shape s = heads[l]->out, b = heads[levels + l]->out;
    if (b.h != s.h || b.w != s.w || b.c != s.c * kBoxValues)
      refuse("head " + std::to_string(levels + l + 1) + " (" + std::to_string(b.h) + "x" + std::to_string(b.w) + "x" +
             std::to_string(b.c) + ") is not the box map of score head " + std::to_string(l + 1) + " (" +
             std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c) + "): expected " +
             std::to_string(kBoxValues) + " values an anchor on the same grid");
    for (int y = 0; y < s.h; ++y)
      for (int x = 0; x < s.w; ++x)
        for (int a = 0; a < s.c; ++a)
          anchors_.push_back({(static_cast<float>(x) + 0.5f) / static_cast<float>(s.w),
                              (static_cast<float>(y) + 0.5f) / static_cast<float>(s.h)});
  }
  model_.first_trainable = static_cast<int>(model_.layers.size());
  plan_inference(model_, plan_);
  ws_.reserve(model_, 1);
  input_.assign(static_cast<size_t>(in.size()), 0);
  candidates_.reserve(anchors_.size());
  rest_.reserve(anchors_.size());
  decoded_.reserve(anchors_.size());
  faces_.reserve(anchors_.size());
}

namespace {
constexpr int kMaxSide = 256, kMaxTaps = 4096;  // sample_upright's tap arrays (18 KB; larger cases go bilinear)
constexpr int kMaxRows = 256;                     // the frame rows one output row covers
constexpr int kStripFloats = 2048;  // its column sums (8 KB): the frame values of one strip of output columns

// sample_roi's upright shrinking case (the whole frame, tiles, an upright face's region): each output pixel is the
// mean of the frame pixels its square covers (a box filter, pixels cut by the square's edge in part), black outside.
// The output columns go in strips whose frame columns fit kStripFloats values; for each output row, the strip's frame
// values are summed down the rows the output row covers (contiguous bytes: kernels::column_sums where the platform
// has it), then across each output pixel's columns.
void sample_upright(const uint8_t* px, int width, int height, int channels, const Roi& roi, int side, uint8_t* out,
                    int out_channels) {
  const double step = static_cast<double>(roi.side) / side;
  const double x0 = roi.cx - 0.5 * roi.side, y0 = roi.cy - 0.5 * roi.side;
  const float norm = static_cast<float>(1.0 / (step * step));
  const bool grey_in = channels == 1;
  // The horizontal taps of every output column, made once (sample_roi sends only outputs of at most kMaxSide pixels
  // whose taps fit in kMaxTaps, and a column's taps fit in a strip).
  const int per_column = static_cast<int>(std::ceil(step)) + 1;
  float wx[kMaxTaps];
  int first[kMaxSide], count[kMaxSide];
  for (int ox = 0; ox < side; ++ox) {
    const double xa = x0 + ox * step, xb = xa + step;
    const int a = std::clamp(static_cast<int>(std::floor(xa)), 0, width);
    const int b = std::min(width, static_cast<int>(std::ceil(xb)));
    first[ox] = a;
    count[ox] = std::max(0, b - a);
    for (int x = a; x < b; ++x)
      wx[ox * per_column + (x - a)] = static_cast<float>(std::min<double>(xb, x + 1) - std::max<double>(xa, x));
  }
  float sums[kStripFloats], wy[kMaxRows];
  for (int s0 = 0; s0 < side;) {
    int s1 = s0 + 1;  // the strip: output columns [s0, s1)
    while (s1 < side && (first[s1] + count[s1] - first[s0]) * channels <= kStripFloats) ++s1;
    const int span = (first[s1 - 1] + count[s1 - 1] - first[s0]) * channels;
    for (int oy = 0; oy < side; ++oy) {
      const double ya = y0 + oy * step, yb = ya + step;
      const int y_first = std::max(0, static_cast<int>(std::floor(ya)));
      const int y_end = std::min(height, static_cast<int>(std::ceil(yb)));
      const int rows = std::max(0, y_end - y_first);
      for (int y = y_first; y < y_end; ++y)
        wy[y - y_first] = static_cast<float>(std::min<double>(yb, y + 1) - std::max<double>(ya, y));
      const size_t stride = static_cast<size_t>(width) * channels;
      const uint8_t* p = px + static_cast<size_t>(rows ? y_first : 0) * stride + first[s0] * channels;
      if (!kernels::column_sums(p, stride, rows, wy, static_cast<size_t>(span), sums)) {
        std::fill(sums, sums + span, 0.0f);
        for (int r = 0; r < rows; ++r)
          for (int i = 0; i < span; ++i) sums[i] += wy[r] * static_cast<float>(p[r * stride + i]);
      }
      for (int ox = s0; ox < s1; ++ox) {
        const float* w = wx + ox * per_column;
        const float* q = sums + (first[ox] - first[s0]) * channels;
        float acc[4] = {0, 0, 0, 0};
        if (grey_in) {
          for (int k = 0; k < count[ox]; ++k) acc[0] += w[k] * q[k];
          acc[1] = acc[2] = acc[0];
        } else if (channels == 4) {  // (a pixel a vector where the compiler can)
          for (int k = 0; k < count[ox]; ++k, q += 4)
            for (int c = 0; c < 4; ++c) acc[c] += w[k] * q[c];
        } else {
          for (int k = 0; k < count[ox]; ++k, q += channels)
            acc[0] += w[k] * q[0], acc[1] += w[k] * q[1], acc[2] += w[k] * q[2];
        }
        uint8_t* o = out + (static_cast<size_t>(oy) * side + ox) * out_channels;
        // (through int: a float's conversion to an unsigned type is slow in WebAssembly engines)
        const auto byte = [&](float v) {
          return static_cast<uint8_t>(static_cast<int>(std::min(255.0f, v * norm + 0.5f)));
        };
        if (out_channels == 1) {
          o[0] = byte(grey_in ? acc[0] : 0.299f * acc[0] + 0.587f * acc[1] + 0.114f * acc[2]);
        } else {
          for (int k = 0; k < 3; ++k) o[k] = byte(acc[k]);
        }
      }
    }
    s0 = s1;
  }
}
}  // namespace

void sample_roi(const uint8_t* px, int width, int height, int channels, const Roi& roi, int side, uint8_t* out,
                int out_channels) {
  const float step = roi.side / static_cast<float>(side);  // frame pixels per output pixel
  if (roi.angle == 0 && step >= 1 && side <= kMaxSide && (std::ceil(step) + 1) * side <= kMaxTaps &&
      std::ceil(step) + 2 <= kMaxRows && (std::ceil(step) + 1) * channels <= kStripFloats)
    return sample_upright(px, width, height, channels, roi, side, out, out_channels);
  const int taps = std::max(1, static_cast<int>(std::ceil(step / 1.5f)));  // samples a side within one output pixel
  const float c = std::cos(roi.angle), s = std::sin(roi.angle);
  const float half = 0.5f * roi.side;
  const float inv = 1.0f / static_cast<float>(taps * taps);
  const bool grey_in = channels == 1;
  for (int oy = 0; oy < side; ++oy)
    for (int ox = 0; ox < side; ++ox) {
      float acc[3] = {0, 0, 0};
      for (int ty = 0; ty < taps; ++ty)
        for (int tx = 0; tx < taps; ++tx) {
          // The sample's offset from the region's centre, upright, then turned onto the frame.
          const float u = (static_cast<float>(ox) + (static_cast<float>(tx) + 0.5f) / static_cast<float>(taps)) * step - half;
          const float v = (static_cast<float>(oy) + (static_cast<float>(ty) + 0.5f) / static_cast<float>(taps)) * step - half;
          const float fx = roi.cx + c * u - s * v - 0.5f, fy = roi.cy + s * u + c * v - 0.5f;  // pixel centres at +0.5
          const float x0f = std::floor(fx), y0f = std::floor(fy);
          const float ax = fx - x0f, ay = fy - y0f;
          const int x0 = static_cast<int>(x0f), y0 = static_cast<int>(y0f);
          for (int j = 0; j < 4; ++j) {
            const int x = x0 + (j & 1), y = y0 + (j >> 1);
            if (x < 0 || y < 0 || x >= width || y >= height) continue;  // black outside
            const float w = ((j & 1) ? ax : 1 - ax) * ((j >> 1) ? ay : 1 - ay);
            const uint8_t* p = px + (static_cast<size_t>(y) * width + x) * channels;
            if (grey_in) {
              acc[0] += w * p[0];
            } else {
              acc[0] += w * p[0], acc[1] += w * p[1], acc[2] += w * p[2];
            }
          }
        }
      uint8_t* o = out + (static_cast<size_t>(oy) * side + ox) * out_channels;
      const auto byte = [&](float v) { return static_cast<uint8_t>(std::min(255.0f, v * inv + 0.5f)); };
      if (out_channels == 1) {  // BT.601 luma of colour, as rgba_to_gray
        o[0] = byte(grey_in ? acc[0] : 0.299f * acc[0] + 0.587f * acc[1] + 0.114f * acc[2]);
      } else {
        for (int k = 0; k < 3; ++k) o[k] = byte(grey_in ? acc[0] : acc[k]);
      }
    }
}

const std::vector<Detection>& BlazeFace::detect(const uint8_t* pixels, int width, int height, int channels,
                                                const Roi& roi, const BlazeFaceOptions& o) {
  if (!pixels || width < 1 || height < 1 || 1LL * width * height > kMaxImagePixels)
    refuse("the frame is empty or larger than " + std::to_string(kMaxImagePixels) + " pixels");
  if (channels != 1 && channels != 3 && channels != 4) refuse("expected 1, 3 or 4 channels");
  if (!roi.usable()) refuse("the region is empty or not finite");
  sample_roi(pixels, width, height, channels, roi, side(), input_.data(), 3);
  run(roi, o);
  return faces_;
}

const std::vector<Detection>& BlazeFace::detect_input(const uint8_t* rgb, const BlazeFaceOptions& o) {
  std::copy(rgb, rgb + input_.size(), input_.begin());
  const float s = static_cast<float>(side());
  run({0.5f * s, 0.5f * s, s, 0.0f}, o);
  return faces_;
}

void BlazeFace::run(const Roi& roi, const BlazeFaceOptions& o) {
  load_input(model_, ws_, input_.data(), 1);
  ForwardOptions fo;
  fo.plan = &plan_;
  raw_ = forward(model_, ws_, 1, fo);
  const size_t n = anchors_.size();
  const float* box = raw_ + n;
  const float side_px = static_cast<float>(side());
  // Scores as MediaPipe clips them (at 100) and thresholds them, after the sigmoid.
  const float min_logit = std::log(o.min_score / (1 - o.min_score));
  candidates_.clear();
  for (size_t a = 0; a < n; ++a) {
    const float z = std::clamp(raw_[a], -100.0f, 100.0f);
    if (z >= min_logit) candidates_.push_back({1.0f / (1.0f + std::exp(-z)), static_cast<int>(a)});
  }
  // (std::sort with the anchor as a tie-break: stable_sort's order without its buffer, so a frame allocates nothing)
  std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
    return a.score > b.score || (a.score == b.score && a.anchor < b.anchor);
  });
  // Decoded in the input's unit square (anchor size 1, values in input pixels).
  decoded_.clear();
  for (const Candidate& c : candidates_) {
    const float* r = box + static_cast<size_t>(c.anchor) * kBoxValues;
    const Anchor& an = anchors_[static_cast<size_t>(c.anchor)];
    Detection d;
    const float cx = an.x + r[0] / side_px, cy = an.y + r[1] / side_px;
    const float w = r[2] / side_px, h = r[3] / side_px;
    if (!(w > 0 && h > 0) || !std::isfinite(cx) || !std::isfinite(cy)) continue;  // no box at all
    d.box = {cx - 0.5f * w, cy - 0.5f * h, w, h, c.score};
    for (int k = 0; k < kNumFaceKeypoints; ++k)
      d.keypoints[k] = {an.x + r[4 + 2 * k] / side_px, an.y + r[5 + 2 * k] / side_px};
    decoded_.push_back(d);
  }
  // Weighted non-maximum suppression: the best remaining detection takes the score-weighted mean of every remaining
  // one that overlaps it by more than o.iou (itself included), and keeps its own score.
  faces_.clear();
  rest_.clear();
  for (size_t i = 0; i < decoded_.size(); ++i) rest_.push_back({decoded_[i].box.score, static_cast<int>(i)});
  std::vector<Candidate>& remaining = rest_;
  while (!remaining.empty()) {
    const Detection& best = decoded_[static_cast<size_t>(remaining[0].anchor)];
    double total = 0, x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    double kp[2 * kNumFaceKeypoints] = {};
    size_t kept = 0;
    for (const Candidate& c : remaining) {
      const Detection& d = decoded_[static_cast<size_t>(c.anchor)];
      if (iou(d.box, best.box) > o.iou) {
        total += c.score;
        x0 += c.score * d.box.x, y0 += c.score * d.box.y;
        x1 += c.score * (d.box.x + d.box.w), y1 += c.score * (d.box.y + d.box.h);
        for (int k = 0; k < kNumFaceKeypoints; ++k)
          kp[2 * k] += c.score * d.keypoints[k].x, kp[2 * k + 1] += c.score * d.keypoints[k].y;
      } else {
        remaining[kept++] = c;  // (in place: kept <= the index read)
      }
    }
    Detection f = best;
    if (total > 0) {
      f.box.x = static_cast<float>(x0 / total), f.box.y = static_cast<float>(y0 / total);
      f.box.w = static_cast<float>((x1 - x0) / total), f.box.h = static_cast<float>((y1 - y0) / total);
      for (int k = 0; k < kNumFaceKeypoints; ++k)
        f.keypoints[k] = {static_cast<float>(kp[2 * k] / total), static_cast<float>(kp[2 * k + 1] / total)};
    }
    faces_.push_back(f);
    if (kept == remaining.size()) break;  // nothing merged (a degenerate box): as MediaPipe, stop
    remaining.resize(kept);
  }
  // From the unit square to the frame: about the region's centre, scaled by its side and turned by its angle.
  const float c = std::cos(roi.angle), s = std::sin(roi.angle);
  const auto to_frame = [&](float u, float v) {
    const float du = (u - 0.5f) * roi.side, dv = (v - 0.5f) * roi.side;
    return Point{roi.cx + c * du - s * dv, roi.cy + s * du + c * dv};
  };
  for (Detection& f : faces_) {
    const Point centre = to_frame(f.box.x + 0.5f * f.box.w, f.box.y + 0.5f * f.box.h);
    const float w = f.box.w * roi.side, h = f.box.h * roi.side;
    f.box = {centre.x - 0.5f * w, centre.y - 0.5f * h, w, h, f.box.score};
    for (Point& p : f.keypoints) p = to_frame(p.x, p.y);
  }
}

std::vector<Roi> search_views(int width, int height, int min_face) {
  std::vector<Roi> views{Roi::whole(width, height)};
  const float longer = static_cast<float>(std::max(width, height));
  const float smallest = std::max(16.0f, static_cast<float>(min_face) / kSmallestFace);
  if (smallest >= longer) return views;
  const int levels = static_cast<int>(std::ceil(std::log2(longer / smallest)));
  const float ratio = std::pow(longer / smallest, 1.0f / static_cast<float>(levels));
  float side = longer;
  for (int l = 0; l < levels; ++l) {
    side = l + 1 == levels ? smallest : side / ratio;
    // Tiles half a side apart, spread evenly so the last one ends at the frame's edge.
    const auto starts = [&](int extent) {
      std::vector<float> at;
      const float room = static_cast<float>(extent) - side;
      const int n = room > 0 ? static_cast<int>(std::ceil(room / (0.5f * side))) + 1 : 1;
      for (int i = 0; i < n; ++i) at.push_back(n == 1 ? 0.5f * room : room * static_cast<float>(i) / static_cast<float>(n - 1));
      return at;
    };
    for (float y : starts(height))
      for (float x : starts(width)) views.push_back({x + 0.5f * side, y + 0.5f * side, side, 0.0f});
  }
  return views;
}

Roi BlazeFace::region_of(const Detection& f) {
  const float side = std::max(f.box.w, f.box.h) * kRegionPerFace;
  return {f.box.x + 0.5f * f.box.w, f.box.y + 0.5f * f.box.h, side, f.roll()};
}

bool BlazeFace::look_again(const uint8_t* pixels, int width, int height, int channels, const Roi& roi,
                           float min_score, Detection* out) {
  if (!roi.usable()) return false;  // a degenerate face's region (a box of no size, keypoints at one point)
  BlazeFaceOptions o;
  o.min_score = min_score;
  const float reach = 0.5f * roi.side / kRegionPerFace;  // half the expected face's width
  const Detection* best = nullptr;
  for (const Detection& d : detect(pixels, width, height, channels, roi, o))
    if (std::hypot(d.box.x + 0.5f * d.box.w - roi.cx, d.box.y + 0.5f * d.box.h - roi.cy) <= reach &&
        (!best || d.box.score > best->box.score))
      best = &d;
  if (best && out) *out = *best;
  return best != nullptr;
}

const std::vector<Detection>& BlazeFace::find(const uint8_t* pixels, int width, int height, int channels,
                                              const FindOptions& o) {
  if (!pixels || width < 1 || height < 1 || 1LL * width * height > kMaxImagePixels)
    refuse("the frame is empty or larger than " + std::to_string(kMaxImagePixels) + " pixels");
  // Candidates of every view, best first, one per face (the best of those that overlap).
  views_ = search_views(width, height, o.min_face);
  candidates_found_.clear();
  BlazeFaceOptions bo;
  bo.min_score = o.min_score;
  bo.iou = o.iou;
  for (const Roi& v : views_)
    for (const Detection& d : detect(pixels, width, height, channels, v, bo)) candidates_found_.push_back(d);
  std::stable_sort(candidates_found_.begin(), candidates_found_.end(),
                   [](const Detection& a, const Detection& b) { return a.box.score > b.box.score; });
  // Each candidate looked at again, centred and upright, at five sizes of its region (the face taking up 25% to 60%
  // of the view): a face is found at every size, most things that only resemble one are not. Its score is the mean
  // of the five (a miss counts 0), its box and keypoints the score-weighted mean of what they found, unless an
  // earlier candidate already found it.
  found_.clear();
  for (const Detection& c : candidates_found_) {
    bool seen = false;
    for (const Detection& f : found_) seen = seen || iou(f.box, c.box) > o.iou;
    if (seen) continue;
    const Roi centre = region_of(c);
    double total = 0, box[4] = {0, 0, 0, 0}, kp[2 * kNumFaceKeypoints] = {};
    for (float size : kLookSizes) {
      Roi r = centre;
      r.side *= size / kRegionPerFace;
      Detection d;
      if (!look_again(pixels, width, height, channels, r, 0.05f, &d)) continue;
      const double w = d.box.score;
      total += w;
      box[0] += w * d.box.x, box[1] += w * d.box.y, box[2] += w * d.box.w, box[3] += w * d.box.h;
      for (int k = 0; k < kNumFaceKeypoints; ++k)
        kp[2 * k] += w * d.keypoints[k].x, kp[2 * k + 1] += w * d.keypoints[k].y;
    }
    const float score = static_cast<float>(total / std::size(kLookSizes));
    if (total <= 0 || score < o.verify_score) continue;
    Detection f;
    f.box = {static_cast<float>(box[0] / total), static_cast<float>(box[1] / total),
             static_cast<float>(box[2] / total), static_cast<float>(box[3] / total), score};
    for (int k = 0; k < kNumFaceKeypoints; ++k)
      f.keypoints[k] = {static_cast<float>(kp[2 * k] / total), static_cast<float>(kp[2 * k + 1] / total)};
    bool dup = false;
    for (const Detection& g : found_) dup = dup || iou(g.box, f.box) > o.iou;
    if (!dup) found_.push_back(f);
  }
  std::stable_sort(found_.begin(), found_.end(),
                   [](const Detection& a, const Detection& b) { return a.box.score > b.box.score; });
  return found_;
}

Roi aligned_region(const Detection& face) {
  // The similarity (rotation, uniform scale, shift) that takes the face's eyes, nose tip and mouth closest to the
  // target's in the least-squares sense (Umeyama 1991, without reflection), as the region of the frame that maps
  // onto the crop.
  const int used[] = {kRightEye, kLeftEye, kNoseTip, kMouth};
  double mx = 0, my = 0, tx = 0, ty = 0;
  for (int k : used) mx += face.keypoints[k].x, my += face.keypoints[k].y, tx += kCropTarget[k].x, ty += kCropTarget[k].y;
  mx /= 4, my /= 4, tx /= 4, ty /= 4;
  double a = 0, b = 0, var = 0;  // crop = s R (frame - mean) + target mean, with s R = [[a, -b], [b, a]]
  for (int k : used) {
    const double px = face.keypoints[k].x - mx, py = face.keypoints[k].y - my;
    const double qx = kCropTarget[k].x - tx, qy = kCropTarget[k].y - ty;
    a += px * qx + py * qy;
    b += px * qy - py * qx;
    var += px * px + py * py;
  }
  const double scale = var > 0 ? std::hypot(a, b) / var : 0;  // crop pixels per frame pixel
  if (!(scale > 0) || !std::isfinite(scale)) return {face.box.x + 0.5f * face.box.w, face.box.y + 0.5f * face.box.h,
                                                       std::max(face.box.w, face.box.h), 0.0f};
  const double angle = std::atan2(-b, a);  // the frame's turn of the crop (the crop undoes it)
  // The frame point that lands on the crop's centre.
  const double ux = kSide / 2.0 - tx, uy = kSide / 2.0 - ty;  // from the target mean, in crop pixels
  const double ca = std::cos(angle), sa = std::sin(angle);
  const double fx = mx + (ca * ux - sa * uy) / scale, fy = my + (sa * ux + ca * uy) / scale;
  return {static_cast<float>(fx), static_cast<float>(fy), static_cast<float>(kSide / scale), static_cast<float>(angle)};
}

void crop_aligned(const uint8_t* pixels, int width, int height, int channels, const Detection& face,
                  uint8_t* out48x48) {
  if (!pixels || width < 1 || height < 1) refuse("crop_aligned: an empty frame");
  if (channels != 1 && channels != 3 && channels != 4) refuse("crop_aligned: expected 1, 3 or 4 channels");
  sample_roi(pixels, width, height, channels, aligned_region(face), kSide, out48x48, 1);
}

}  // namespace ferkit
