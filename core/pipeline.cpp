#include "pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace ferkit {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
float iou(const Box& a, const Box& b) {
  const float x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const float x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  const float inter = std::max(0.0f, x1 - x0) * std::max(0.0f, y1 - y0);
  const float uni = a.w * a.h + b.w * b.h - inter;
  return uni > 0 ? inter / uni : 0.0f;
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

Pipeline::Pipeline(Model model, Cascade cascade) : detector_(std::move(cascade)) { set_model(std::move(model)); }

bool Pipeline::same_weights_in_place(const Model& model) {
  if (model.num_classes() != kNumClasses || !(model.spec.input == Shape{kSide, kSide, 1}))
    throw std::invalid_argument("pipeline: the model must take 48x48x1 faces and give 7 classes");
  previous_.clear();
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
  std::vector<Box> boxes;
  detector_.detect(gray, width, height, o.detect, boxes);
  if (boxes.empty()) return false;
  const Box& best = *std::max_element(boxes.begin(), boxes.end(),
                                      [](const Box& a, const Box& b) { return a.w * a.h < b.w * b.h; });
  crop_face(gray, width, height, best, o.margin, out48x48);
  return true;
}

const std::vector<FaceResult>& Pipeline::process_rgba(const uint8_t* rgba, int width, int height,
                                                      const PipelineOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (width <= 0 || height <= 0) throw std::invalid_argument("pipeline: empty frame");
  const size_t n = static_cast<size_t>(width) * height;
  if (gray_.size() < n) gray_.resize(n);
  for (size_t i = 0; i < n; ++i) {  // BT.601 luma, integer arithmetic (as rgba_to_gray)
    const uint8_t* p = rgba + 4 * i;
    gray_[i] = static_cast<uint8_t>((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
  }
  const double gray_ms = ms_since(t0);
  process_gray(gray_.data(), width, height, o);
  times_.gray_ms = gray_ms;
  return faces_;
}

const std::vector<FaceResult>& Pipeline::process_gray(const uint8_t* gray, int width, int height,
                                                      const PipelineOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  times_.gray_ms = 0;
  const bool same_size = width == last_w_ && height == last_h_;
  if (!same_size || o.detect_every <= 1 || frame_ % o.detect_every == 0) {
    detector_.detect(gray, width, height, o.detect, boxes_);
    // Keep the largest faces.
    std::stable_sort(boxes_.begin(), boxes_.end(), [](const Box& a, const Box& b) { return a.w * a.h > b.w * b.h; });
    if (static_cast<int>(boxes_.size()) > o.max_faces) boxes_.resize(std::max(o.max_faces, 0));
    frame_ = 0;
  }
  ++frame_;
  last_w_ = width;
  last_h_ = height;
  times_.detect_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  const int nf = static_cast<int>(boxes_.size());
  previous_.swap(faces_);
  faces_.resize(nf);
  if (batch_.size() < static_cast<size_t>(nf) * kPixels) batch_.resize(static_cast<size_t>(nf) * kPixels);
  if (probs_.size() < static_cast<size_t>(nf) * kNumClasses) probs_.resize(static_cast<size_t>(nf) * kNumClasses);
  const bool alternate = o.smooth && o.alternate_flip && !o.flip_tta;
  const bool mirror = alternate && calls_++ % 2 == 1;
  const int first_new_track = next_track_;
  for (int i = 0; i < nf; ++i) {
    faces_[i].box = boxes_[i];
    faces_[i].crop_box = crop_region(width, height, boxes_[i], o.margin);
    faces_[i].mirrored = mirror;
    crop_face(gray, width, height, boxes_[i], o.margin, faces_[i].crop);
    copy_view(faces_[i].crop, mirror, batch_.data() + static_cast<size_t>(i) * kPixels);
  }
  classify(batch_.data(), nf, probs_.data(), o.flip_tta);
  // Track: each face takes the unclaimed previous face it overlaps most (IoU > 0.3).
  std::vector<bool>& used = used_;
  used.assign(previous_.size(), false);
  for (int i = 0; i < nf; ++i) {
    FaceResult& f = faces_[i];
    std::copy_n(probs_.data() + static_cast<size_t>(i) * kNumClasses, kNumClasses, f.probs.begin());
    int best = -1;
    float best_iou = 0.3f;
    for (size_t j = 0; j < previous_.size(); ++j) {
      const float v = used[j] ? 0.0f : iou(f.box, previous_[j].box);
      if (v > best_iou) best_iou = v, best = static_cast<int>(j);
    }
    const float a = o.smooth ? std::clamp(o.smoothing, 0.0f, 0.99f) : 0.0f;
    if (best >= 0) {
      used[best] = true;
      f.track = previous_[best].track;
      for (int c = 0; c < kNumClasses; ++c) f.smoothed[c] = a * previous_[best].smoothed[c] + (1 - a) * f.probs[c];
    } else {
      f.track = next_track_++;
      f.smoothed = f.probs;
    }
  }
  // Alternating views: a face seen for the first time also gets the other view now, so that its first label is
  // flip-averaged too (one extra classification when a face appears, none while it is tracked).
  if (alternate) {
    int m = 0;
    for (int i = 0; i < nf; ++i)
      if (faces_[i].track >= first_new_track)  // the view this frame did not classify
        copy_view(faces_[i].crop, !mirror, batch_.data() + static_cast<size_t>(m++) * kPixels);
    classify(batch_.data(), m, probs_.data());
    for (int i = 0, j = 0; i < nf; ++i)
      if (faces_[i].track >= first_new_track) {
        FaceResult& f = faces_[i];
        const float* q = probs_.data() + static_cast<size_t>(j++) * kNumClasses;
        for (int c = 0; c < kNumClasses; ++c) f.smoothed[c] = 0.5f * (f.probs[c] + q[c]);
      }
  }
  for (FaceResult& f : faces_)
    f.label = static_cast<int>(std::max_element(f.smoothed.begin(), f.smoothed.end()) - f.smoothed.begin());
  times_.classify_ms = ms_since(t0);
  return faces_;
}

}  // namespace ferkit
