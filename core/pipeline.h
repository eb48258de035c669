// The live pipeline shared by the page and native tools: a frame (RGBA or grey) -> faces (the CNN detector,
// blazeface.h) -> aligned 48x48 crops -> one batched classification -> per-face probabilities, tracked and optionally
// smoothed over time. Buffers grow to the largest frame and face count seen; after that a frame allocates nothing.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "blazeface.h"
#include "data.h"
#include "model.h"

namespace ferkit {

struct FaceResult {
  Box box;                                    // frame pixels; score: the detector's (0..1)
  std::array<Point, kNumFaceKeypoints> keypoints{};  // eyes, nose tip, mouth, ears (blazeface.h's order)
  Roi crop_region;                            // the square of the frame that `crop` shows (turned by its angle)
  std::array<float, kNumClasses> probs{};     // this frame's probabilities
  std::array<float, kNumClasses> smoothed{};  // after temporal smoothing (== probs when smoothing is off; a new
                                              // face's starts as the mean of both views with alternate_flip)
  int label = 0;                              // argmax of smoothed
  bool mirrored = false;                      // probs are the mirrored crop's (PipelineOptions::alternate_flip)
  int track = 0;                              // stable id while the face stays in view
  int missed = 0;                             // frames since the detector last found it (0: found in this one)
  uint8_t crop[kPixels];                      // the model's input (before mirroring, when mirrored)
};

struct PipelineOptions {
  BlazeFaceOptions detect;    // a frame's detections
  FindOptions find;           // still images (process_* with still = true, largest_face_crop)
  bool still = false;         // a photo, not a frame of a video: the whole search of FindOptions, no tracking
  // Successive calls are frames of one video: a tracked face that the whole-frame pass misses is looked for again,
  // kept for a missed frame, and its box steadied (below). false: each call stands alone (tracks are still
  // numbered by overlap with the last call's faces).
  bool video = true;
  int max_faces = 8;          // the largest faces are kept
  // Tracking: a face the whole-frame pass misses is looked for again in its last region (turned upright by its last
  // roll: faces turned past what the network finds, or small ones); one still missed keeps its last box for up to
  // keep_missed frames.
  int keep_missed = 1;
  // Box and keypoint smoothing per track: each frame moves them this fraction of the way to the new detection when
  // it moved less than a tenth of the face's width (jitter), all the way when it moved more (motion). 1: none.
  float steady = 0.5f;
  bool smooth = true;        // exponential moving average of the probabilities per tracked face
  float smoothing = 0.6f;    // weight of the previous average (0: none, 0.95: very smooth)
  // With smoothing, every other frame classifies the mirrored crops, so the average covers both views at one
  // view's cost (flip averaging for video); a face seen for the first time gets both views at once (its smoothed
  // result starts as their mean). flip_tta runs both views on every frame instead: twice the work.
  bool alternate_flip = true;
  bool flip_tta = false;
};

struct StageTimes {
  double detect_ms = 0, classify_ms = 0;
  int passes = 0;  // detector passes in the last frame
};

class Pipeline {
 public:
  // detector: the face detector's model (assets/detector/blazeface.ferkit). Throws std::invalid_argument for a
  // classifier that does not take 48x48 grey faces into 7 classes, or a detector that is not one (blazeface.h).
  Pipeline(Model model, Model detector);
  // Keeps tracks, resets their averages. New weights for the architecture in use are copied into the buffers the
  // pipeline has, with its plan remade there and its workspace kept: swapping models allocates nothing.
  void set_model(Model&& model);
  void set_model(const Model& model);
  // Read-only: the weights must not change under the inference plan made from them (set_model makes a new one).
  const Model& model() const { return model_; }
  BlazeFace& detector() { return detector_; }

  const std::vector<FaceResult>& process_rgba(const uint8_t* rgba, int width, int height, const PipelineOptions& o);
  const std::vector<FaceResult>& process_gray(const uint8_t* gray, int width, int height, const PipelineOptions& o);
  const std::vector<FaceResult>& process_rgb(const uint8_t* rgb, int width, int height, const PipelineOptions& o);
  // Classifies 48x48 crops directly: probs is n x classes. Runs at most kClassifyChunk crops at a time, so the
  // activations' memory stays bounded however many crops come in (a WebAssembly heap is small).
  static constexpr int kClassifyChunk = 64;
  void classify(const uint8_t* crops, int n, float* probs, bool flip_tta = false);

  // The largest face in a still image (grey) as an aligned 48x48 crop (for importing photos as samples); false if
  // none is found. Leaves the live results (faces(), tracks) alone.
  bool largest_face_crop(const uint8_t* gray, int width, int height, const PipelineOptions& o, uint8_t* out48x48);

  const std::vector<FaceResult>& faces() const { return faces_; }
  const StageTimes& times() const { return times_; }

 private:
  const std::vector<FaceResult>& process(const uint8_t* pixels, int channels, int width, int height,
                                         const PipelineOptions& o);
  // Checks model's shape (throws std::invalid_argument), resets the tracks, and copies model's weights in place if
  // it has the architecture in use; false if it has another.
  bool same_weights_in_place(const Model& model);
  void replace(Model&& model);  // another architecture: a new model, plan and workspace
  Model model_;
  InferencePlan plan_;  // made from model_'s weights
  BlazeFace detector_;
  Workspace ws_;
  std::vector<Detection> found_;
  std::vector<uint8_t> batch_;
  std::vector<float> probs_;
  std::vector<FaceResult> faces_, previous_;
  std::vector<bool> used_;
  std::vector<int> from_, fresh_;
  int next_track_ = 1;
  long long calls_ = 0;  // frames processed (their parity picks the view under alternate_flip)
  int last_w_ = 0, last_h_ = 0;
  StageTimes times_;
};

}  // namespace ferkit
