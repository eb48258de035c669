// FER data in memory: 48x48 grayscale faces with labels, the Kaggle CSV row parser,
// and training augmentation. No files here: native/ reads files and feeds lines or bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rng.h"

namespace ferkit {

constexpr int kSide = 48;
constexpr int kPixels = kSide * kSide;
constexpr int kNumClasses = 7;
// FER-2013 label order.
extern const char* const kClassNames[kNumClasses];  // angry disgust fear happy sad surprise neutral
// Index of a class name (case-insensitive, surrounding blanks ignored; also accepts "anger", "disgusted", "fearful",
// "happiness", "sadness", "surprised", "neutrality" and the label digits "0".."6"); -1 if unknown.
int class_index(std::string_view name);

enum class Usage : uint8_t { Training = 0, PublicTest = 1, PrivateTest = 2 };
const char* usage_name(Usage u);

struct Dataset {
  std::vector<uint8_t> pixels;  // size() * kPixels, row-major
  std::vector<uint8_t> labels;  // size()
  std::vector<float> soft;      // optional size() * kNumClasses target distributions (FER+ votes); empty if none
  size_t size() const { return labels.size(); }
  const uint8_t* image(size_t i) const { return pixels.data() + i * kPixels; }
  void add(const uint8_t* px, int label) {
    pixels.insert(pixels.end(), px, px + kPixels);
    labels.push_back(static_cast<uint8_t>(label));
  }
  std::vector<size_t> class_counts() const;  // kNumClasses entries
  // The first n images of each class, in their order here (fewer for a class that has fewer).
  Dataset first_per_class(size_t n) const;
  // The images relabelled by annotators' votes (size() x kNumClasses counts, e.g. the FER+ relabelling): each gets
  // the class with the most votes; an image whose top count is shared by two classes, or that has no vote among
  // the kNumClasses, is left out. index (if given) receives each kept image's index here.
  Dataset relabelled_by_votes(const std::vector<float>& votes, std::vector<size_t>* index = nullptr) const;
};

// Parses the Kaggle fer2013.csv layout: header "emotion,pixels,Usage" then rows
// `<label>,<2304 space-separated 0..255>,<Training|PublicTest|PrivateTest>`.
// Errors are plain text without file/line (the caller adds those).
struct CsvRow {
  uint8_t pixels[kPixels];
  int label = -1;
  Usage usage = Usage::Training;
};
// Checks the header line; returns "" if fine, else what was expected.
std::string check_fer_csv_header(std::string_view line);
// Parses one data line (without the trailing newline; a trailing '\r' is allowed).
// Returns "" on success, else a description such as "expected 2304 pixel values, got 2303".
std::string parse_fer_csv_row(std::string_view line, CsvRow& row);
// The same, and on failure sets *kind to a short fixed category for counting ("wrong pixel count",
// "bad pixel value", "unknown label", "unknown Usage", "wrong number of fields"); kind may be null.
std::string parse_fer_csv_row(std::string_view line, CsvRow& row, const char** kind);

// FER+ (fer2013new.csv, row-aligned with fer2013.csv): header
// "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF", then per image the
// votes of ten annotators. Checks the header ("" if fine, else what was expected), and parses one row into its
// usage and the votes for the seven FER-2013 classes in FER order (contempt, unknown and NF are dropped).
// Returns "" on success, else what was wrong.
std::string check_ferplus_header(std::string_view line);
std::string parse_ferplus_row(std::string_view line, Usage& usage, float votes[kNumClasses]);

// Soft targets made by another tool (for example scripts/teacher_gpu.py): header
// "angry,disgust,fear,happy,sad,surprise,neutral", then one row of kNumClasses non-negative numbers per Training
// image, in fer2013.csv order. Same contract as the FER+ functions: "" on success, else what was wrong.
std::string check_soft_targets_header(std::string_view line);
std::string parse_soft_targets_row(std::string_view line, float p[kNumClasses]);

// Soft training targets (knowledge distillation, FER+ votes): for each image with a usable target row,
// d.soft = weight * normalized(targets row) + (1 - weight) * (d.soft if set, else one-hot(label)).
// targets: d.size() rows of kNumClasses non-negative values; a row summing to 0 keeps the image's current target.
// Throws std::invalid_argument on a size mismatch, a negative or non-finite value, or weight outside [0, 1].
void blend_soft_targets(Dataset& d, const std::vector<float>& targets, float weight);

// Training-time augmentation of one 48x48 image. Deterministic for a given Rng state.
struct Augment {
  bool flip = true;          // random horizontal flip (p = 0.5)
  float shift = 0.1f;        // max translation, fraction of the side
  float rotate_deg = 10.0f;  // max rotation, degrees
  float scale = 0.1f;        // max zoom in/out, fraction
  float brightness = 0.2f;   // max additive change, fraction of full range
  float contrast = 0.2f;     // max multiplicative change around the mean
  float erase = 0.0f;        // probability of random erasing (a grey rectangle)
  bool enabled() const {
    return flip || shift > 0 || rotate_deg > 0 || scale > 0 || brightness > 0 || contrast > 0 || erase > 0;
  }
};
// Writes kPixels floats: the model's input (pixel / 255) after augmentation: apply_augment(draw_augment(rng)).
void augment_image(const uint8_t* src, float* dst, const Augment& aug, Rng& rng);
// One image's augmentation, drawn (every draw is made before any pixel is touched, so drawing without applying
// advances rng exactly as augment_image does: a data-parallel process keeps one process's stream while it
// prepares only its share of a batch).
struct AugmentDraw {
  bool flip = false;
  float tx = 0.0f, ty = 0.0f, angle = 0.0f, scale = 1.0f;  // shift in pixels, rotation in radians, zoom
  float bright = 0.0f, contrast = 1.0f;                   // brightness in grey levels, contrast factor
  int ex0 = 0, ey0 = 0, ew = 0, eh = 0;                    // the erased rectangle (ew == 0: none)
};
AugmentDraw draw_augment(const Augment& aug, Rng& rng);
void apply_augment(const uint8_t* src, float* dst, const AugmentDraw& a);
// Writes kPixels floats: pixel / 255, no augmentation (the inference preprocessing).
void image_to_input(const uint8_t* src, float* dst);
// CutMix (Yun et al. 2019) over a batch of n model inputs x (n x side x side floats) and their targets (n x k
// probabilities): with probability `prob`, image i gets a rectangle pasted from another image j of the batch (as it
// was before any pasting), of area (1 - lambda) of the image with lambda ~ Uniform(0, 1) (the paper's alpha = 1),
// centred anywhere and clipped at the border; its target becomes (1 - a) * its own + a * j's, where a is the
// pasted fraction of the image after clipping. scratch: n x side x side + n x k floats (a copy of the originals).
void cutmix(float* x, float* targets, int n, int side, int k, float prob, Rng& rng, float* scratch);
// mixup (Zhang et al. 2018) over a batch of n inputs of `size` floats and their targets (n x k probabilities): with
// probability `prob`, image i becomes lambda * itself + (1 - lambda) * another image j of the batch (as it was before
// any mixing), lambda ~ Beta(alpha, alpha), and its target the same mix of the two targets. scratch: n x size + n x k
// floats.
void mixup(float* x, float* targets, int n, size_t size, int k, float prob, float alpha, Rng& rng, float* scratch);
// A Beta(a, a) draw (two Gamma(a) draws, Marsaglia and Tsang's method).
float beta_symmetric(float a, Rng& rng);

// Horizontal mirror of a model input (for test-time flip averaging).
void flip_input(const float* src, float* dst, int side = kSide);

}  // namespace ferkit
