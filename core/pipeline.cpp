#include "pipeline.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace ferkit {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
// A 48x48 crop as the model sees it: as it is, or mirrored (each row reversed).
void copy_view(const uint8_t* crop, bool mirrored, uint8_t* out) {
  if (!mirrored) {
    std::memcpy(out, crop, kPixels);
    return;
  }
  for (int y = 0; y < kSide; ++y) std::reverse_copy(crop + y * kSide, crop + (y + 1) * kSide, out + y * kSide);
}
}  // namespace

Pipeline::Pipeline(Model model, Model detector) : detector_(std::move(detector)) { set_model(std::move(model)); }

bool Pipeline::same_weights_in_place(const Model& model) {
  if (model.num_classes() != kNumClasses || !(model.spec.input == Shape{kSide, kSide, 1}))
    throw std::invalid_argument("pipeline: the model must take 48x48x1 faces and give 7 classes");
  previous_.clear();
  faces_.clear();  // (process() makes the last frame's faces the previous ones: those are what must go)
  if (model_.params.empty() || model.params.size() != model_.params.size() ||
      format_spec(model.spec) != format_spec(model_.spec))
    return false;
  std::copy(model.params.begin(), model.params.end(), model_.params.begin());
  model_.class_names = model.class_names;
  model_.preprocess = model.preprocess;
  model_.temperature = model.temperature;
  model_.gate = model.gate;
  plan_inference(model_, plan_);
  return true;
}

void Pipeline::replace(Model&& model) {
  model_ = std::move(model);
  plan_ = plan_inference(model_);
  ws_ = Workspace();
}

void Pipeline::set_model(Model&& model) {
  if (!same_weights_in_place(model)) replace(std::move(model));
}

void Pipeline::set_model(const Model& model) {
  if (!same_weights_in_place(model)) replace(Model(model));
}

void Pipeline::classify(const uint8_t* crops, int n, float* probs, bool flip_tta) {
  if (n <= 0) return;
  ws_.reserve(model_, std::min(n, kClassifyChunk));
  const int k = model_.num_classes();
  for (int start = 0; start < n; start += kClassifyChunk) {
    const int m = std::min(kClassifyChunk, n - start);
    predict(model_, ws_, crops + static_cast<size_t>(start) * kPixels, m, probs + static_cast<size_t>(start) * k,
            flip_tta, &plan_);
  }
}

bool Pipeline::largest_face_crop(const uint8_t* gray, int width, int height, const PipelineOptions& o,
                                 uint8_t* out48x48) {
  const std::vector<Detection>& faces = detector_.find(gray, width, height, 1, o.find);
  if (faces.empty()) return false;
  const Detection& best = *std::max_element(faces.begin(), faces.end(), [](const Detection& a, const Detection& b) {
    return a.box.w * a.box.h < b.box.w * b.box.h;
  });
  crop_aligned(gray, width, height, 1, best, out48x48);
  return true;
}

const std::vector<FaceResult>& Pipeline::process_rgba(const uint8_t* rgba, int width, int height,
                                                      const PipelineOptions& o) {
  return process(rgba, 4, width, height, o);
}

const std::vector<FaceResult>& Pipeline::process_rgb(const uint8_t* rgb, int width, int height,
                                                     const PipelineOptions& o) {
  return process(rgb, 3, width, height, o);
}

const std::vector<FaceResult>& Pipeline::process_gray(const uint8_t* gray, int width, int height,
                                                      const PipelineOptions& o) {
  return process(gray, 1, width, height, o);
}

namespace {
Detection as_detection(const FaceResult& f) {
  Detection d;
  d.box = f.box;
  d.keypoints = f.keypoints;
  return d;
}
// A tracked face's box and keypoints moved toward this frame's detection: part of the way when the detection moved
// less than a tenth of the face's width (jitter), all of the way when more (motion).
void steady_toward(const FaceResult& prev, float steady, Detection& d) {
  const float w = std::max(prev.box.w, 1.0f);
  const float dx = d.box.x + 0.5f * d.box.w - (prev.box.x + 0.5f * prev.box.w);
  const float dy = d.box.y + 0.5f * d.box.h - (prev.box.y + 0.5f * prev.box.h);
  if (std::hypot(dx, dy) > 0.1f * w || std::fabs(d.box.w - prev.box.w) > 0.1f * w) return;
  const float k = std::clamp(steady, 0.0f, 1.0f);
  const auto move = [k](float from, float to) { return from + k * (to - from); };
  d.box = {move(prev.box.x, d.box.x), move(prev.box.y, d.box.y), move(prev.box.w, d.box.w),
           move(prev.box.h, d.box.h), d.box.score};
  for (int j = 0; j < kNumFaceKeypoints; ++j)
    d.keypoints[j] = {move(prev.keypoints[j].x, d.keypoints[j].x), move(prev.keypoints[j].y, d.keypoints[j].y)};
}
}  // namespace

const std::vector<FaceResult>& Pipeline::process(const uint8_t* pixels, int channels, int width, int height,
                                                 const PipelineOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  if (!pixels || width <= 0 || height <= 0) throw std::invalid_argument("pipeline: empty frame");
  if (width != last_w_ || height != last_h_ || o.still) faces_.clear();  // tracks do not survive a new size
  last_w_ = width;
  last_h_ = height;
  previous_.swap(faces_);
  // Detection: a still image's whole search; a frame's whole-frame pass, and each tracked face it missed looked for
  // again in its last region.
  times_.passes = 0;
  const bool video = o.video && !o.still;
  if (o.still) {
    found_ = detector_.find(pixels, width, height, channels, o.find);
  } else {
    found_ = detector_.detect(pixels, width, height, channels, Roi::whole(width, height), o.detect);
    times_.passes = 1;
    for (const FaceResult& p : previous_) {
      if (!video) break;
      bool seen = false;
      for (const Detection& d : found_) seen = seen || iou(d.box, p.box) > 0.3f;
      if (seen) continue;
      Detection d;
      ++times_.passes;
      if (!detector_.look_again(pixels, width, height, channels, BlazeFace::region_of(as_detection(p)),
                                o.detect.min_score, &d))
        continue;
      bool dup = false;
      for (const Detection& e : found_) dup = dup || iou(d.box, e.box) > 0.3f;
      if (!dup) found_.push_back(d);
    }
  }
  // Keep the largest faces.
  // (std::sort, ties broken by place: a frame allocates nothing)
  std::sort(found_.begin(), found_.end(), [](const Detection& a, const Detection& b) {
    const float sa = a.box.w * a.box.h, sb = b.box.w * b.box.h;
    return sa > sb || (sa == sb && (a.box.x < b.box.x || (a.box.x == b.box.x && a.box.y < b.box.y)));
  });
  if (static_cast<int>(found_.size()) > o.max_faces) found_.resize(static_cast<size_t>(std::max(o.max_faces, 0)));
  times_.detect_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  // Track: each face takes the unclaimed previous face it overlaps most (IoU > 0.3).
  const int nf = static_cast<int>(found_.size());
  std::vector<bool>& used = used_;
  used.assign(previous_.size(), false);
  faces_.resize(static_cast<size_t>(nf));
  std::vector<int>& from = from_;  // the previous face each one continues, or -1
  from.assign(static_cast<size_t>(nf), -1);
  for (int i = 0; i < nf; ++i) {
    int best = -1;
    float best_iou = 0.3f;
    for (size_t j = 0; j < previous_.size(); ++j) {
      const float v = used[j] ? 0.0f : iou(found_[static_cast<size_t>(i)].box, previous_[j].box);
      if (v > best_iou) best_iou = v, best = static_cast<int>(j);
    }
    if (best >= 0) used[static_cast<size_t>(best)] = true;
    from[static_cast<size_t>(i)] = best;
  }
  if (batch_.size() < static_cast<size_t>(nf) * kPixels) batch_.resize(static_cast<size_t>(nf) * kPixels);
  if (probs_.size() < static_cast<size_t>(nf) * kNumClasses) probs_.resize(static_cast<size_t>(nf) * kNumClasses);
  const bool alternate = !o.still && o.smooth && o.alternate_flip && !o.flip_tta;
  const bool mirror = alternate && calls_++ % 2 == 1;
  for (int i = 0; i < nf; ++i) {
    Detection d = found_[static_cast<size_t>(i)];
    const int p = from[static_cast<size_t>(i)];
    if (p >= 0 && video) steady_toward(previous_[static_cast<size_t>(p)], o.steady, d);
    FaceResult& f = faces_[static_cast<size_t>(i)];
    f.box = d.box;
    f.keypoints = d.keypoints;
    f.crop_region = aligned_region(d);
    f.mirrored = mirror;
    f.missed = 0;
    crop_aligned(pixels, width, height, channels, d, f.crop);
    copy_view(f.crop, mirror, batch_.data() + static_cast<size_t>(i) * kPixels);
  }
  classify(batch_.data(), nf, probs_.data(), o.flip_tta);
  const float a = o.smooth && !o.still ? std::clamp(o.smoothing, 0.0f, 0.99f) : 0.0f;
  std::vector<int>& fresh = fresh_;  // faces seen for the first time
  fresh.clear();
  for (int i = 0; i < nf; ++i) {
    FaceResult& f = faces_[static_cast<size_t>(i)];
    std::copy_n(probs_.data() + static_cast<size_t>(i) * kNumClasses, kNumClasses, f.probs.begin());
    const int p = from[static_cast<size_t>(i)];
    if (p >= 0) {
      const FaceResult& prev = previous_[static_cast<size_t>(p)];
      f.track = prev.track;
      for (int c = 0; c < kNumClasses; ++c) f.smoothed[c] = a * prev.smoothed[c] + (1 - a) * f.probs[c];
    } else {
      f.track = o.still ? i + 1 : next_track_++;
      f.smoothed = f.probs;
      fresh.push_back(i);
    }
  }
  // Alternating views: a face seen for the first time also gets the other view now, so that its first label is
  // flip-averaged too (one extra classification when a face appears, none while it is tracked).
  if (alternate && !fresh.empty()) {
    for (size_t m = 0; m < fresh.size(); ++m)
      copy_view(faces_[static_cast<size_t>(fresh[m])].crop, !mirror, batch_.data() + m * kPixels);
    classify(batch_.data(), static_cast<int>(fresh.size()), probs_.data());
    for (size_t m = 0; m < fresh.size(); ++m) {
      FaceResult& f = faces_[static_cast<size_t>(fresh[m])];
      const float* q = probs_.data() + m * kNumClasses;
      for (int c = 0; c < kNumClasses; ++c) f.smoothed[c] = 0.5f * (f.probs[c] + q[c]);
    }
  }
  // A tracked face missed in this frame keeps its last box and results for up to keep_missed frames.
  if (video)
    for (size_t j = 0; j < previous_.size(); ++j)
      if (!used[j] && previous_[j].missed < o.keep_missed && static_cast<int>(faces_.size()) < o.max_faces) {
        faces_.push_back(previous_[j]);
        ++faces_.back().missed;
      }
  for (FaceResult& f : faces_)
    f.label = static_cast<int>(std::max_element(f.smoothed.begin(), f.smoothed.end()) - f.smoothed.begin());
  times_.classify_ms = ms_since(t0);
  return faces_;
}

}  // namespace ferkit
