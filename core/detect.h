// Frontal-face detection: a Viola-Jones / Lienhart Haar cascade (OpenCV's trained cascades, converted to a
// compact binary asset by native/cascade_convert.cpp; assets/cascades/frontalface.cascade is the default
// frontal-face one) evaluated as OpenCV 4's CascadeClassifier::detectMultiScale does it: an image pyramid
// (bit-exact bilinear resize), a fixed window with variance normalisation, OpenCV's scan steps, and
// groupRectangles merging. Given the same 8-bit pixels and options it returns OpenCV 4.6's boxes exactly
// (checked against it on the opencv-doc photos with 15 of OpenCV's Haar cascades: stumps, trees, tilted
// features). Portable: no files, no threads, used natively and in the page (webcam frames, several faces per
// frame). Plus the face crop that feeds the 48x48 model.
//
// The cascade asset (".cascade"), version 1. Little-endian, no padding:
//
//   offset  size  field
//   0       4     magic "FKHC"
//   4       4     u32 format version (1)
//   8       2     u16 window width W   (4..255; the detector's base window, 24 for the frontal-face cascades)
//   10      2     u16 window height H  (4..255)
//   12      4     u32 stage count S    (1..kMaxCascadeStages)
//   16      4     u32 feature count F  (1..kMaxCascadeFeatures)
//   20      ...   S stages, in evaluation order, each:
//                   f32 stage threshold
//                   u32 classifier count C (1..kMaxStageClassifiers)
//                   C weak classifiers (binary decision trees), each:
//                     u8 node count N (1..kMaxClassifierNodes)
//                     N nodes, node 0 is the root, each 8 bytes:
//                       u16 feature index (< F)
//                       i8  left child, i8 right child: > 0 an internal node index (greater than this
//                           node's, so every path ends), <= 0 the leaf -child (0..N)
//                       f32 threshold (compared with the variance-normalised feature value)
//                     N + 1 f32 leaf values
//   ...           F features, each:
//                   u8 flags: bits 0-1 rectangle count R (1..3), bit 7 tilted (45-degree rotated rectangles),
//                   other bits 0
//                   R rectangles of 5 bytes: u8 x, u8 y, u8 w (>= 1), u8 h (>= 1), i8 weight (!= 0)
//                   An upright rectangle lies inside the window (x + w <= W, y + h <= H). A tilted one,
//                   OpenCV's rotated rectangle with top corner (x, y), w along the down-right diagonal and h
//                   along the down-left one, needs x - h >= 0, x + w <= W, y + w + h <= H.
//   end-4   4     u32 CRC-32 (IEEE, as ferkit::crc32) of every byte before it
//
// Stage s passes when the sum of its classifiers' leaf values is >= its threshold (less 1e-5, as OpenCV); a
// window is a detection when every stage passes. A feature's value is sum(weight * pixel sum of rectangle),
// compared as value < threshold * sqrt(A * sqsum - sum^2) (go left) where sum/sqsum are over the window shrunk
// by one pixel on each side and A is that area: OpenCV's variance normalisation. The default frontal-face
// cascade (25 stages, 2913 stumps, 2913 features) takes 84,573 bytes (its XML: 930 KB).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferkit {

constexpr uint32_t kCascadeFormatVersion = 1;
constexpr uint32_t kMaxCascadeStages = 1000;
constexpr uint32_t kMaxCascadeFeatures = 65535;
constexpr uint32_t kMaxStageClassifiers = 10000;
constexpr int kMaxClassifierNodes = 63;
constexpr int kMaxFeatureRects = 3;

struct HaarRect {
  int x = 0, y = 0, w = 0, h = 0;
  int weight = 0;
};
struct HaarFeature {
  int num_rects = 0;
  HaarRect rects[kMaxFeatureRects];
  bool tilted = false;
};
struct HaarNode {
  int feature = 0;
  float threshold = 0.0f;
  int left = 0, right = 0;  // > 0: internal node index; <= 0: leaf index -left / -right
};
struct HaarClassifier {
  std::vector<HaarNode> nodes;  // node 0 is the root
  std::vector<float> leaves;    // nodes.size() + 1
};
struct HaarStage {
  float threshold = 0.0f;
  std::vector<HaarClassifier> classifiers;
};
struct Cascade {
  int window_width = 0, window_height = 0;
  std::vector<HaarStage> stages;
  std::vector<HaarFeature> features;
  bool has_tilted() const;
  size_t num_classifiers() const;
};

// Parses a cascade asset. Throws std::runtime_error naming what is wrong ("cascade: truncated ...", "bad magic",
// "unsupported version", "stage 3 classifier 7: node 0 refers to feature 9000 of 2913", "checksum mismatch",
// ...). Every count is checked against its limit and against the bytes present before anything is allocated.
Cascade load_cascade(const uint8_t* data, size_t size);
// Serialises a cascade (checks it as load_cascade does; throws std::invalid_argument if it breaks a rule).
std::vector<uint8_t> save_cascade(const Cascade& cascade);

struct Box {
  float x = 0, y = 0, w = 0, h = 0;  // pixels in the input frame
  float score = 0;                   // merged raw detections ("neighbours"); 1 when min_neighbors == 0
};

struct DetectOptions {
  double scale_factor = 1.2;  // pyramid step between window sizes (1.01..10; smaller: slower, finer)
  int min_neighbors = 3;      // a face needs more than this many raw detections merged; 0: raw detections
  int min_size = 40;          // smallest face searched (window width and height), pixels
  int max_size = 0;           // largest face searched, pixels; 0: up to the frame size
  int step = 0;               // window stride in pyramid-level pixels; 0: OpenCV's (2 up to scale 2, then 1)
  float min_stddev = 10.0f;   // windows flatter than this (grey-level std. dev.) are skipped, as OpenCV does
  double group_eps = 0.2;     // groupRectangles' similarity tolerance
};

// The detector: the cascade compiled to flat arrays plus buffers that grow to the largest frame seen (resized
// pyramid level, integral and squared integral images, the tilted integral when the cascade has tilted
// features, raw detections); once sized, a frame allocates nothing but the returned vector (none with the
// out-parameter overload). One detector per thread.
class FaceDetector {
 public:
  explicit FaceDetector(Cascade cascade);
  const Cascade& cascade() const { return cascade_; }

  // Faces in an 8-bit grayscale frame (row-major, width * height), clipped to the frame, sorted by x then y.
  // Throws std::invalid_argument on an empty or oversized frame (see kMaxImagePixels) or invalid options.
  std::vector<Box> detect(const uint8_t* gray, int width, int height, const DetectOptions& options = {});
  void detect(const uint8_t* gray, int width, int height, const DetectOptions& options, std::vector<Box>& out);

  // Window positions visited by the last detect() call, flat ones included (for benchmarks and tests).
  long long windows_evaluated() const { return windows_; }

 private:
  struct Node {                        // one tree node and its feature
    int32_t ofs[kMaxFeatureRects][4];  // integral-image offsets of each rectangle's corners p0, p1, p2, p3
    int32_t weight[kMaxFeatureRects];  // 0 for unused rectangles
    float threshold;
    float leaf[2];  // stump cascades: the left and right leaf values
    int16_t left, right;
    uint8_t tilted;
  };
  struct Classifier {
    int first_node, first_leaf;
  };
  struct Stage {
    int first, count;  // classifiers (for stump cascades also nodes)
    int first3;        // stump cascades: nodes [first3, first + count) have three rectangles, the others fewer
    float threshold;
  };
  struct Raw {
    float x, y, w, h;
  };

  void compile(int stride);
  void build_level(const uint8_t* gray, int width, int height, int lw, int lh);
  template <bool kStumps, bool kTilted>
  int run_window(const uint32_t* sum, const uint32_t* sq, const uint32_t* tilt, float min_var_nf) const;
  template <bool kStumps, bool kTilted>
  void scan_level(int lw, int lh, int step, float scale, int winw, int winh, float min_var_nf);
  void group(const DetectOptions& options, std::vector<Box>& out);

  Cascade cascade_;
  bool tilted_ = false;
  bool stumps_ = false;  // every classifier is a single node (the frontal-face cascades)
  std::vector<Node> nodes_;
  std::vector<float> leaves_;
  std::vector<Classifier> classifiers_;
  std::vector<Stage> stages_;
  int compiled_stride_ = -1;
  int frame_w_ = 0, frame_h_ = 0;
  int32_t norm_ofs_[4] = {0, 0, 0, 0};
  float norm_area_ = 0;

  std::vector<uint8_t> level_;  // the pyramid level being scanned
  std::vector<uint32_t> sum_, sq_, tilt_;
  std::vector<int32_t> xofs_, yofs_;  // bilinear taps of the level resize
  std::vector<int16_t> xw_, yw_;
  std::vector<int32_t> row0_, row1_;  // horizontally resampled source rows
  std::vector<Raw> raw_;
  std::vector<int> labels_, count_;
  std::vector<Raw> acc_;
  long long windows_ = 0;
};

// Exposed for tests: the integral images of a w x h image into (w+1) x (h+1) tables with row stride `stride`
// (>= w + 1): sum(X, Y) = sum of pixels x < X, y < Y; sq likewise of squares (both modulo 2^32: differences
// over a window are exact); tilted (may be null) = OpenCV's rotated sum, the pixels with y < Y and
// |x - X + 1| <= Y - 1 - y.
void integral_images(const uint8_t* img, int w, int h, int img_stride, uint32_t* sum, uint32_t* sq, uint32_t* tilted,
                     int stride);

// Default crop margin: the square around the detected box grows by this fraction of its side on each side, so
// the crop shows the whole face (forehead to chin) roughly as the FER-2013 faces are framed.
constexpr float kDefaultFaceMargin = 0.1f;

// The model's 48x48 input from a detected box: the box is made square (side max(w, h), same centre), grown by
// `margin` * side on each side (margin >= 0, e.g. kDefaultFaceMargin), then clamped to the frame: shrunk to the
// frame's shorter side if larger and shifted inside, so the crop only contains real pixels; resampled with
// resample_gray (area averaging). Throws std::invalid_argument on an empty frame, a non-finite/empty box, a box
// that does not overlap the frame, or a negative margin.
void crop_face(const uint8_t* gray, int width, int height, const Box& box, float margin, uint8_t* out48x48);
// The square of the frame that crop_face resamples into the 48x48 crop (x, y, side, side; score 0), for drawing
// something made on the crop (a saliency map) back onto the frame. The same checks as crop_face.
Box crop_region(int width, int height, const Box& box, float margin);

}  // namespace ferkit
