// The live pipeline: detection + crops + batched classification + temporal smoothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "detect.h"
#include "files.h"
#include "image.h"
#include "pipeline.h"

using namespace ferkit;

namespace {
const char* kPhoto = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";

Cascade shipped_cascade() {
  auto bytes = read_file(FERKIT_SOURCE_DIR "/assets/cascades/frontalface.cascade");
  return load_cascade(bytes.data(), bytes.size());
}
Model tiny_model() {
  Model m(resolve_spec("tiny"));
  m.init(5);
  return m;
}
}  // namespace

TEST(Pipeline, FindsAndClassifiesFacesInAPhoto) {
  if (!file_exists(kPhoto)) GTEST_SKIP() << kPhoto << " missing (Debian package opencv-doc)";
  auto bytes = read_file(kPhoto);
  GrayImage img = decode_image(bytes.data(), bytes.size());
  Pipeline p(tiny_model(), shipped_cascade());
  PipelineOptions o;
  const auto& faces = p.process_gray(img.pixels.data(), img.width, img.height, o);
  ASSERT_GE(faces.size(), 1u);
  for (const auto& f : faces) {
    EXPECT_NEAR(std::accumulate(f.probs.begin(), f.probs.end(), 0.0f), 1.0f, 1e-5);
    // A new track's smoothed result starts as the mean of both views (alternate_flip, on by default).
    float both[kNumClasses];
    p.classify(f.crop, 1, both, /*flip_tta=*/true);
    for (int c = 0; c < kNumClasses; ++c) EXPECT_NEAR(f.smoothed[c], both[c], 1e-6);
    // The crop is what the model saw: classifying it again gives the same probabilities.
    float again[kNumClasses];
    p.classify(f.crop, 1, again);
    for (int c = 0; c < kNumClasses; ++c) EXPECT_NEAR(again[c], f.probs[c], 1e-6);
    // The crop came from crop_box: cropping that square with no margin gives the same pixels.
    uint8_t from_region[kPixels];
    crop_face(img.pixels.data(), img.width, img.height, f.crop_box, 0.0f, from_region);
    EXPECT_EQ(0, std::memcmp(from_region, f.crop, kPixels));
  }
  EXPECT_GE(p.times().detect_ms, 0.0);
}

TEST(Pipeline, RgbaFrameMatchesGreyFrameAndTracksAreStable) {
  if (!file_exists(kPhoto)) GTEST_SKIP() << kPhoto << " missing (Debian package opencv-doc)";
  auto bytes = read_file(kPhoto);
  GrayImage img = decode_image(bytes.data(), bytes.size());
  std::vector<uint8_t> rgba(img.pixels.size() * 4);
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = img.pixels[i];
    rgba[4 * i + 3] = 255;
  }
  Pipeline a(tiny_model(), shipped_cascade()), b(tiny_model(), shipped_cascade());
  PipelineOptions o;
  const auto grey = a.process_gray(img.pixels.data(), img.width, img.height, o);
  const auto colour = b.process_rgba(rgba.data(), img.width, img.height, o);
  ASSERT_EQ(grey.size(), colour.size());
  for (size_t i = 0; i < grey.size(); ++i) EXPECT_EQ(grey[i].probs, colour[i].probs);
  // The same frame again: every face keeps its track. The second frame classifies the mirrored crops
  // (alternate_flip), so the average mixes them in: a * the first frame's (both views) + (1 - a) * mirrored view.
  const auto second = b.process_rgba(rgba.data(), img.width, img.height, o);
  ASSERT_EQ(second.size(), colour.size());
  for (size_t i = 0; i < second.size(); ++i) {
    EXPECT_FALSE(colour[i].mirrored);
    EXPECT_TRUE(second[i].mirrored);
    EXPECT_EQ(second[i].track, colour[i].track);
    EXPECT_EQ(0, std::memcmp(second[i].crop, colour[i].crop, kPixels));  // the crop stays unmirrored
    uint8_t mirrored[kPixels];
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) mirrored[y * kSide + x] = second[i].crop[y * kSide + kSide - 1 - x];
    float view[kNumClasses], both[kNumClasses];
    b.classify(mirrored, 1, view);
    b.classify(second[i].crop, 1, both, /*flip_tta=*/true);
    bool differs = false;
    for (int c = 0; c < kNumClasses; ++c) {
      EXPECT_NEAR(second[i].probs[c], view[c], 1e-6);
      EXPECT_NEAR(colour[i].smoothed[c], both[c], 1e-6);  // a new face: both views at once
      EXPECT_NEAR(second[i].smoothed[c], o.smoothing * colour[i].smoothed[c] + (1 - o.smoothing) * view[c], 1e-6);
      differs |= std::fabs(view[c] - colour[i].probs[c]) > 1e-4f;
      // With smoothing 0.5 two frames are exactly flip averaging.
      EXPECT_NEAR(0.5f * (colour[i].probs[c] + view[c]), both[c], 1e-6);
    }
    EXPECT_TRUE(differs) << "the mirrored view should change a random network's output";
  }
  // The third frame is unmirrored again; without alternate_flip (or smoothing) every frame is.
  EXPECT_FALSE(b.process_rgba(rgba.data(), img.width, img.height, o)[0].mirrored);
  o.alternate_flip = false;
  for (int k = 0; k < 2; ++k) EXPECT_FALSE(b.process_rgba(rgba.data(), img.width, img.height, o)[0].mirrored);
  o.alternate_flip = true;
  o.smooth = false;
  for (int k = 0; k < 2; ++k) EXPECT_FALSE(b.process_rgba(rgba.data(), img.width, img.height, o)[0].mirrored);
  // Faces that first appear on a mirrored frame (a blank frame went first) also start from both views.
  o.smooth = true;
  Pipeline c(tiny_model(), shipped_cascade());
  std::vector<uint8_t> blank(4 * 64 * 64, 128);
  EXPECT_TRUE(c.process_rgba(blank.data(), 64, 64, o).empty());
  const auto late = c.process_rgba(rgba.data(), img.width, img.height, o);
  ASSERT_EQ(late.size(), colour.size());
  for (size_t i = 0; i < late.size(); ++i) {
    EXPECT_TRUE(late[i].mirrored);
    for (int c2 = 0; c2 < kNumClasses; ++c2) EXPECT_NEAR(late[i].smoothed[c2], colour[i].smoothed[c2], 1e-6);
  }
}

TEST(Pipeline, MaxFacesKeepsTheLargestAndBlankFramesHaveNone) {
  if (!file_exists(kPhoto)) GTEST_SKIP() << kPhoto << " missing (Debian package opencv-doc)";
  auto bytes = read_file(kPhoto);
  GrayImage img = decode_image(bytes.data(), bytes.size());
  Pipeline p(tiny_model(), shipped_cascade());
  PipelineOptions o;
  const auto all = p.process_gray(img.pixels.data(), img.width, img.height, o);
  o.max_faces = 1;
  const auto one = p.process_gray(img.pixels.data(), img.width, img.height, o);
  ASSERT_EQ(one.size(), std::min<size_t>(1, all.size()));
  for (const auto& f : all) EXPECT_LE(f.box.w * f.box.h, one[0].box.w * one[0].box.h);
  std::vector<uint8_t> blank(320 * 240, 128);
  EXPECT_TRUE(p.process_gray(blank.data(), 320, 240, o).empty());
}

TEST(Pipeline, RejectsAModelOfTheWrongShape) {
  Model m(parse_spec("input 32 32 1; flatten; dense 7; softmax"));
  EXPECT_THROW(Pipeline(m, shipped_cascade()), std::invalid_argument);
}

TEST(Pipeline, ClassifiesMoreCropsThanOneChunkLikeOneAtATime) {
  // classify() runs kClassifyChunk crops at a time (bounded memory); 2.5 chunks must give each crop what it gets
  // alone, and the crops of the last, partial chunk must not be skipped or shifted.
  Pipeline p(tiny_model(), shipped_cascade());
  const int n = Pipeline::kClassifyChunk * 5 / 2;
  std::vector<uint8_t> crops(static_cast<size_t>(n) * kPixels);
  uint32_t state = 12345;
  for (auto& px : crops) px = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  std::vector<float> all(static_cast<size_t>(n) * kNumClasses), one(kNumClasses);
  p.classify(crops.data(), n, all.data());
  for (int i = 0; i < n; ++i) {
    p.classify(crops.data() + static_cast<size_t>(i) * kPixels, 1, one.data());
    for (int c = 0; c < kNumClasses; ++c) ASSERT_NEAR(all[static_cast<size_t>(i) * kNumClasses + c], one[c], 1e-5) << i;
  }
}

TEST(Pipeline, NewWeightsOfTheSameArchitectureGoInPlaceAndClassifyLikeAFreshPipeline) {
  // What the page does after each fine-tuning: set_model with the same architecture copies the weights into the
  // buffers it has (so that swapping models for hours does not grow the page's memory) and remakes the plan (the
  // folded batch norm) from them; another architecture replaces everything.
  const Spec spec = parse_spec("input 48 48 1; conv 8 3; bn; relu; maxpool 2; conv 8 3; bn; relu; gap; dense 7; softmax");
  auto model = [&](uint64_t seed) {
    Model m(spec);
    m.init(seed);
    for (size_t i = 0; i < m.params.size(); ++i) m.params[i] += 0.01f * static_cast<float>(i % 7);  // bn not 1/0
    m.temperature = 0.5f + 0.5f * static_cast<float>(seed);  // each its own calibration, which comes along too
    return m;
  };
  std::vector<uint8_t> crops(3 * kPixels);
  uint32_t state = 777;
  for (auto& px : crops) px = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  auto probs = [&](Pipeline& p) {
    std::vector<float> out(3 * kNumClasses);
    p.classify(crops.data(), 3, out.data());
    return out;
  };
  Pipeline p(model(1), shipped_cascade());
  const std::vector<float> first = probs(p);
  const float* buffer = p.model().params.data();
  for (uint64_t seed : {2, 3}) {
    p.set_model(model(seed));
    EXPECT_EQ(p.model().params.data(), buffer) << "seed " << seed;
    Pipeline fresh(model(seed), shipped_cascade());
    const std::vector<float> got = probs(p), want = probs(fresh);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << "seed " << seed << " at " << i;
    EXPECT_NE(got, first);  // the new weights are in use, not the old plan
  }
  p.set_model(tiny_model());
  Pipeline fresh(tiny_model(), shipped_cascade());
  const std::vector<float> got = probs(p), want = probs(fresh);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << i;
}
