// A CNN face detector with landmarks: MediaPipe's BlazeFace (Bazarevsky et al. 2019) as a ferkit model with heads
// (spec.h), converted from its ONNX graph (fer-train import; docs/detector.md says where the weights come from).
//
// The model takes a square RGB image (128 x 128 for the short-range model) and has 2L heads: L score maps, then L
// box maps of the same grids, one level of anchors each (BlazeFace: 16 x 16 cells of 2 anchors and 8 x 8 cells of 6,
// 896 in all). An anchor sits at its cell's centre; a box map gives each anchor 16 values in input pixels: the box
// centre's offset from the anchor, its width and height, then six keypoints' offsets (x before y). Decoding and
// merging are MediaPipe's (face_detection_short_range: SSD anchors of fixed size, sigmoid scores, weighted
// non-maximum suppression at IoU 0.3): a face's box and keypoints are the score-weighted mean of every detection
// that overlaps its best one.
//
// What the network sees is a square region of the frame (Roi), sampled bilinearly into its input, so one detector
// serves a letterboxed frame (the whole frame, as MediaPipe pads it), tiles of a large photo, and rotated views (a
// face turned past what the network finds upright). Portable: no files, no threads; buffers sized once per model.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "model.h"

namespace ferkit {

struct Box {
  float x = 0, y = 0, w = 0, h = 0;  // pixels in the input frame
  float score = 0;
};

// Intersection over union of two boxes (0 where they do not overlap).
float iou(const Box& a, const Box& b);

// MediaPipe's keypoint order. Right and left are the person's: in a frontal view the right eye is on the image's left.
enum FaceKeypoint { kRightEye = 0, kLeftEye, kNoseTip, kMouth, kRightEar, kLeftEar, kNumFaceKeypoints };

struct Point {
  float x = 0, y = 0;
};

struct Detection {
  Box box;  // frame pixels, axis-aligned; score: the probability of a face (0..1)
  std::array<Point, kNumFaceKeypoints> keypoints{};  // frame pixels
  // The face's roll: the angle from the image's x axis to the line from the right eye to the left eye, in radians
  // (positive: turned clockwise on screen, since y points down).
  float roll() const;
};

// A square region of a frame: centre and side in frame pixels, and the angle (radians) by which the square is turned
// on screen (clockwise positive, as Detection::roll); what the network sees is the region turned back upright.
struct Roi {
  float cx = 0, cy = 0, side = 0, angle = 0;
  // The whole frame, letterboxed: a square of the frame's longer side about its centre (MediaPipe's padding).
  static Roi whole(int width, int height);
  // Finite, and at least a pixel wide (a degenerate face's region is not).
  bool usable() const;
};

struct BlazeFaceOptions {
  float min_score = 0.5f;  // MediaPipe's default for the short-range model
  float iou = 0.3f;        // weighted NMS: detections that overlap the best one by more than this merge into it
};

// A search of a still image (BlazeFace::find): the whole frame, then overlapping tiles down to the smallest face
// wanted, every candidate looked at again in its own region, centred and turned upright.
struct FindOptions {
  float min_score = 0.5f;     // a candidate, in any view
  float verify_score = 0.7f;  // the candidate looked at again at five sizes: their mean (the face's reported score)
  int min_face = 32;          // the smallest face searched, in frame pixels (views are tiled down to it)
  float iou = 0.3f;           // candidates of different views that overlap more are one face
};

// One anchor: its centre in the input, as a fraction of the side.
struct Anchor {
  float x = 0, y = 0;
};

class BlazeFace {
 public:
  // Throws std::invalid_argument unless the model is a detector of this shape: a square 3-channel input, 2L heads
  // (L score maps of A anchors a cell, then L box maps of 16 A values a cell on the same grids).
  explicit BlazeFace(Model model);
  const Model& model() const { return model_; }
  int side() const { return model_.spec.input.h; }
  const std::vector<Anchor>& anchors() const { return anchors_; }

  // Faces in the region roi of a frame of 1 (grey) or 4 (RGBA) or 3 (RGB) channels, best first. The returned
  // reference is valid until the next call. Throws std::invalid_argument on an empty or oversized frame or an
  // empty region.
  const std::vector<Detection>& detect(const uint8_t* pixels, int width, int height, int channels, const Roi& roi,
                                       const BlazeFaceOptions& o = {});
  // Every face in a still image (a photo: fer-train detect, imported images), best first: the search of
  // FindOptions. The network finds faces that take up about 15% to 80% of its view, at any roll up to about 60
  // degrees; the tiles bring small faces into that range.
  const std::vector<Detection>& find(const uint8_t* pixels, int width, int height, int channels,
                                     const FindOptions& o = {});
  // The region in which a face is looked at again (find, and a tracker's next frame): centred on its box, turned
  // upright by its roll, the face taking up as much of it as in a typical whole-frame detection.
  static Roi region_of(const Detection& face);
  // The detection in region roi that is the face expected there: the best one whose centre lies within half the
  // face's width of the region's centre; false if none scores at least min_score.
  bool look_again(const uint8_t* pixels, int width, int height, int channels, const Roi& roi, float min_score,
                  Detection* out);

  // The same on the network's input itself: side x side x 3 RGB bytes (boxes in input pixels).
  const std::vector<Detection>& detect_input(const uint8_t* rgb, const BlazeFaceOptions& o = {});

  // The last pass's input (side x side x 3 bytes) and raw outputs: scores (one logit an anchor), then box values
  // (16 an anchor), both in anchor order.
  const std::vector<uint8_t>& input() const { return input_; }
  const float* raw_scores() const { return raw_; }
  const float* raw_boxes() const { return raw_ + anchors_.size(); }

 private:
  void run(const Roi& roi, const BlazeFaceOptions& o);
  Model model_;
  InferencePlan plan_;
  Workspace ws_;
  std::vector<Anchor> anchors_;
  std::vector<uint8_t> input_;
  const float* raw_ = nullptr;
  struct Candidate {
    float score;
    int anchor;
  };
  std::vector<Candidate> candidates_, rest_;
  std::vector<Detection> decoded_, faces_;
  std::vector<Detection> found_, candidates_found_;
  std::vector<Roi> views_;
};

// The views find() runs: the whole frame, then levels of overlapping square tiles (half a tile apart) whose side
// shrinks geometrically to min_face / 0.15.
std::vector<Roi> search_views(int width, int height, int min_face);

// Samples roi of a frame (1, 3 or 4 channels) into a side x side image of out_channels (3: RGB, 1: grey, BT.601
// luma), black outside the frame: an upright region no smaller than the output by the mean of the pixels each output
// pixel covers; a turned one bilinearly, each output pixel averaging a grid of samples where the region is much
// larger than the output, so a large photo is not aliased.
void sample_roi(const uint8_t* pixels, int width, int height, int channels, const Roi& roi, int side, uint8_t* out,
                int out_channels);

// The aligned crop: where a face's keypoints sit in the classifier's 48x48 input. FER-2013's faces are registered;
// these are the medians of where this detector puts the keypoints on its training faces (bench/fer_geometry, run
// over all 28,709; docs/detector.md). The crop turns the face so that its eyes are level and scales and places it so
// that its eyes, nose tip and mouth fall closest to these.
constexpr Point kCropTarget[kNumFaceKeypoints] = {{14.77f, 18.71f}, {32.70f, 18.86f}, {23.49f, 28.31f},
                                                  {23.42f, 37.08f}, {5.83f, 22.49f},  {42.37f, 22.71f}};
// The square of the frame that the aligned crop shows (its centre, side and turn), for drawing on the frame what was
// computed on the crop.
Roi aligned_region(const Detection& face);
// The aligned 48x48 grey crop of a face in a frame of 1, 3 or 4 channels (black where the region leaves the frame).
void crop_aligned(const uint8_t* pixels, int width, int height, int channels, const Detection& face,
                  uint8_t* out48x48);

}  // namespace ferkit
