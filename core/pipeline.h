// The live pipeline shared by the page and native tools: a frame (RGBA or grey) -> faces -> 48x48 crops ->
// one batched classification -> per-face probabilities, optionally smoothed over time. Buffers grow to the
// largest frame and face count seen; after that a frame allocates nothing.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "data.h"
#include "detect.h"
#include "model.h"

namespace ferkit {

struct FaceResult {
  Box box;
  Box crop_box;                               // the square of the frame that `crop` was resampled from
  std::array<float, kNumClasses> probs{};     // this frame's probabilities
  std::array<float, kNumClasses> smoothed{};  // after temporal smoothing (== probs when smoothing is off; a new
                                              // face's starts as the mean of both views with alternate_flip)
  int label = 0;                              // argmax of smoothed
  bool mirrored = false;                      // probs are the mirrored crop's (PipelineOptions::alternate_flip)
  int track = 0;                              // stable id while the face stays in view
  uint8_t crop[kPixels];                      // the model's input (before mirroring, when mirrored)
};

struct PipelineOptions {
  DetectOptions detect;
  float margin = kDefaultFaceMargin;
  int max_faces = 8;         // the largest faces are kept
  bool smooth = true;        // exponential moving average per tracked face
  float smoothing = 0.6f;    // weight of the previous average (0: none, 0.95: very smooth)
  // With smoothing, every other frame classifies the mirrored crops, so the average covers both views at one
  // view's cost (flip averaging for video); a face seen for the first time gets both views at once (its smoothed
  // result starts as their mean). flip_tta runs both views on every frame instead: twice the work.
  bool alternate_flip = true;
  bool flip_tta = false;
  // Run the face detector on every n-th frame only; frames in between reuse the last boxes (crops and
  // classification still run on every frame). 1: detect on every frame.
  int detect_every = 1;
};

struct StageTimes {
  double gray_ms = 0, detect_ms = 0, classify_ms = 0;
};

class Pipeline {
 public:
  Pipeline(Model model, Cascade cascade);
  // Keeps tracks, resets their averages. New weights for the architecture in use are copied into the buffers the
  // pipeline has, with its plan remade there and its workspace kept: swapping models allocates nothing.
  void set_model(Model&& model);
  void set_model(const Model& model);
  // Read-only: the weights must not change under the inference plan made from them (set_model makes a new one).
  const Model& model() const { return model_; }

  const std::vector<FaceResult>& process_rgba(const uint8_t* rgba, int width, int height, const PipelineOptions& o);
  const std::vector<FaceResult>& process_gray(const uint8_t* gray, int width, int height, const PipelineOptions& o);
  // Classifies 48x48 crops directly: probs is n x classes. Runs at most kClassifyChunk crops at a time, so the
  // activations' memory stays bounded however many crops come in (a WebAssembly heap is small).
  static constexpr int kClassifyChunk = 64;
  void classify(const uint8_t* crops, int n, float* probs, bool flip_tta = false);

  // The largest face in a still image as a 48x48 crop (for importing photos as samples); false if none is found.
  // Leaves the live results (faces(), tracks) alone.
  bool largest_face_crop(const uint8_t* gray, int width, int height, const PipelineOptions& o, uint8_t* out48x48);

  const std::vector<FaceResult>& faces() const { return faces_; }
  const StageTimes& times() const { return times_; }
  const std::vector<uint8_t>& gray() const { return gray_; }

 private:
  // Checks model's shape (throws std::invalid_argument), resets the tracks, and copies model's weights in place if
  // it has the architecture in use; false if it has another.
  bool same_weights_in_place(const Model& model);
  void replace(Model&& model);  // another architecture: a new model, plan and workspace
  Model model_;
  InferencePlan plan_;  // made from model_'s weights
  FaceDetector detector_;
  Workspace ws_;
  std::vector<uint8_t> gray_;
  std::vector<Box> boxes_;
  std::vector<uint8_t> batch_;
  std::vector<float> probs_;
  std::vector<FaceResult> faces_, previous_;
  std::vector<bool> used_;
  int next_track_ = 1;
  long long frame_ = 0;  // frames since the last detection
  long long calls_ = 0;  // frames processed (their parity picks the view under alternate_flip)
  int last_w_ = 0, last_h_ = 0;
  StageTimes times_;
};

}  // namespace ferkit
