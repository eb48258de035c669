#include "blazeface.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "image.h"

namespace ferkit {

namespace {
constexpr int kBoxValues = 4 + 2 * kNumFaceKeypoints;  // per anchor: centre offset, size, keypoints

[[noreturn]] void refuse(const std::string& why) { throw std::invalid_argument("BlazeFace: " + why); }

float iou(const Box& a, const Box& b) {
  const float x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const float x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  if (x1 <= x0 || y1 <= y0) return 0.0f;
  const float inter = (x1 - x0) * (y1 - y0);
  const float uni = a.w * a.h + b.w * b.h - inter;
  return uni > 0 ? inter / uni : 0.0f;
}
}  // namespace

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
}

void sample_roi(const uint8_t* px, int width, int height, int channels, const Roi& roi, int side, uint8_t* rgb) {
  const float step = roi.side / static_cast<float>(side);  // frame pixels per output pixel
  const int taps = std::max(1, static_cast<int>(std::ceil(step / 1.5f)));  // samples a side within one output pixel
  const float c = std::cos(roi.angle), s = std::sin(roi.angle);
  const float half = 0.5f * roi.side;
  const float inv = 1.0f / static_cast<float>(taps * taps);
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
            if (channels == 1) {
              acc[0] += w * p[0], acc[1] += w * p[0], acc[2] += w * p[0];
            } else {
              acc[0] += w * p[0], acc[1] += w * p[1], acc[2] += w * p[2];
            }
          }
        }
      uint8_t* o = rgb + (static_cast<size_t>(oy) * side + ox) * 3;
      for (int k = 0; k < 3; ++k) o[k] = static_cast<uint8_t>(std::min(255.0f, acc[k] * inv + 0.5f));
    }
}

const std::vector<Detection>& BlazeFace::detect(const uint8_t* pixels, int width, int height, int channels,
                                                const Roi& roi, const BlazeFaceOptions& o) {
  if (!pixels || width < 1 || height < 1 || 1LL * width * height > kMaxImagePixels)
    refuse("the frame is empty or larger than " + std::to_string(kMaxImagePixels) + " pixels");
  if (channels != 1 && channels != 3 && channels != 4) refuse("expected 1, 3 or 4 channels");
  if (!(roi.side >= 1) || !std::isfinite(roi.cx) || !std::isfinite(roi.cy) || !std::isfinite(roi.angle) ||
      !std::isfinite(roi.side))
    refuse("the region is empty or not finite");
  sample_roi(pixels, width, height, channels, roi, side(), input_.data());
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
  std::stable_sort(candidates_.begin(), candidates_.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  // Decoded in the input's unit square (anchor size 1, values in input pixels).
  decoded_.clear();
  for (const Candidate& c : candidates_) {
    const float* r = box + static_cast<size_t>(c.anchor) * kBoxValues;
    const Anchor& an = anchors_[static_cast<size_t>(c.anchor)];
    Detection d;
    const float cx = an.x + r[0] / side_px, cy = an.y + r[1] / side_px;
    const float w = r[2] / side_px, h = r[3] / side_px;
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

}  // namespace ferkit
