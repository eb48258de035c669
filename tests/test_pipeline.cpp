// The live pipeline: detection + aligned crops + batched classification + tracking + temporal smoothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "blazeface.h"
#include "files.h"
#include "model_io.h"
#include "image.h"
#include "pipeline.h"

using namespace ferkit;

namespace {
// A frame with a face that the whole-frame pass finds (a fifth of the frame wide), and a photo whose face only the
// still-image search does (35 pixels in 548).
const char* kPhoto = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";
const char* kSmallFace = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";

Model shipped_detector() {
  static const std::vector<uint8_t> bytes = read_file(FERKIT_SOURCE_DIR "/assets/detector/blazeface.ferkit");
  return load_model(bytes.data(), bytes.size());
}
Model tiny_model() {
  Model m(resolve_spec("tiny"));
  m.init(5);
  return m;
}
}  // namespace

TEST(Pipeline, FindsAndClassifiesFacesInAPhoto) {
  if (!file_exists(kPhoto)) GTEST_SKIP() << kPhoto << " missing (Debian package python3-skimage)";
  auto bytes = read_file(kPhoto);
  GrayImage img = decode_image(bytes.data(), bytes.size());
  Pipeline p(tiny_model(), shipped_detector());
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
    // The crop came from crop_region: sampling that square gives the same pixels.
    uint8_t from_region[kPixels];
    sample_roi(img.pixels.data(), img.width, img.height, 1, f.crop_region, kSide, from_region, 1);
    EXPECT_EQ(0, std::memcmp(from_region, f.crop, kPixels));
    // Landmarks on the face: the eyes above the mouth, inside the box.
    EXPECT_LT(f.keypoints[kLeftEye].y, f.keypoints[kMouth].y);
    EXPECT_GT(f.keypoints[kMouth].x, f.box.x);
    EXPECT_LT(f.keypoints[kMouth].x, f.box.x + f.box.w);
  }
  EXPECT_GE(p.times().detect_ms, 0.0);
  EXPECT_EQ(p.times().passes, 1);
  if (!file_exists(kSmallFace)) return;
  bytes = read_file(kSmallFace);
  img = decode_image(bytes.data(), bytes.size());
  EXPECT_TRUE(p.process_gray(img.pixels.data(), img.width, img.height, o).empty()) << "the whole frame only";
  o.still = true;
  const auto& still = p.process_gray(img.pixels.data(), img.width, img.height, o);
  ASSERT_EQ(still.size(), 1u);
  EXPECT_NEAR(still[0].box.x + 0.5f * still[0].box.w, 240, 20);
  EXPECT_NEAR(still[0].box.w, 35, 8);
  EXPECT_EQ(still[0].track, 1);
}

TEST(Pipeline, RgbaFrameMatchesGreyFrameAndTracksAreStable) {
  if (!file_exists(kPhoto)) GTEST_SKIP() << kPhoto << " missing (Debian package python3-skimage)";
  auto bytes = read_file(kPhoto);
  GrayImage img = decode_image(bytes.data(), bytes.size());
  std::vector<uint8_t> rgba(img.pixels.size() * 4);
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = img.pixels[i];
    rgba[4 * i + 3] = 255;
  }
  Pipeline a(tiny_model(), shipped_detector()), b(tiny_model(), shipped_detector());
  PipelineOptions o;
  const auto grey = a.process_gray(img.pixels.data(), img.width, img.height, o);
  const auto colour = b.process_rgba(rgba.data(), img.width, img.height, o);
  ASSERT_EQ(grey.size(), colour.size());
  ASSERT_GE(grey.size(), 1u);
  for (size_t i = 0; i < grey.size(); ++i) {  // the same face (luma of equal channels may round apart by a level)
    EXPECT_NEAR(grey[i].box.x, colour[i].box.x, 0.5);
    for (int j = 0; j < kPixels; ++j) ASSERT_NEAR(grey[i].crop[j], colour[i].crop[j], 1) << j;
  }
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
  Pipeline c(tiny_model(), shipped_detector());
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
  if (!file_exists(kPhoto)) GTEST_SKIP() << kPhoto << " missing (Debian package python3-skimage)";
  auto bytes = read_file(kPhoto);
  GrayImage img = decode_image(bytes.data(), bytes.size());
  Pipeline p(tiny_model(), shipped_detector());
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
  EXPECT_THROW(Pipeline(m, shipped_detector()), std::invalid_argument);
}

TEST(Pipeline, ClassifiesMoreCropsThanOneChunkLikeOneAtATime) {
  // classify() runs kClassifyChunk crops at a time (bounded memory); 2.5 chunks must give each crop what it gets
  // alone, and the crops of the last, partial chunk must not be skipped or shifted.
  Pipeline p(tiny_model(), shipped_detector());
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
  Pipeline p(model(1), shipped_detector());
  const std::vector<float> first = probs(p);
  const float* buffer = p.model().params.data();
  for (uint64_t seed : {2, 3}) {
    p.set_model(model(seed));
    EXPECT_EQ(p.model().params.data(), buffer) << "seed " << seed;
    Pipeline fresh(model(seed), shipped_detector());
    const std::vector<float> got = probs(p), want = probs(fresh);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << "seed " << seed << " at " << i;
    EXPECT_NE(got, first);  // the new weights are in use, not the old plan
  }
  p.set_model(tiny_model());
  Pipeline fresh(tiny_model(), shipped_detector());
  const std::vector<float> got = probs(p), want = probs(fresh);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << i;
}

namespace {
// Made-up video: the astronaut's face (skimage's astronaut.png) pasted into a grey 640 x 480 frame, `width` pixels
// wide, turned by `degrees` (clockwise), centred at (cx, cy): a square of twice the face's width around it.
struct FacePatch {
  float cx, cy, width, degrees;
};
std::vector<uint8_t> made_up_frame(const RgbImage& photo, const std::vector<FacePatch>& faces, uint32_t noise_seed = 0,
                                   int noise = 0) {
  std::vector<uint8_t> frame(640 * 480 * 3, 90);
  for (const FacePatch& f : faces) {
    const int side = static_cast<int>(2 * f.width);
    std::vector<uint8_t> patch(static_cast<size_t>(side) * side * 3);
    sample_roi(photo.pixels.data(), photo.width, photo.height, 3, {225, 125, 2 * 103.0f, -f.degrees * 0.0174533f},
               side, patch.data(), 3);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        const int fx = static_cast<int>(f.cx) - side / 2 + x, fy = static_cast<int>(f.cy) - side / 2 + y;
        if (fx < 0 || fy < 0 || fx >= 640 || fy >= 480) continue;
        std::copy_n(&patch[(static_cast<size_t>(y) * side + x) * 3], 3, &frame[(static_cast<size_t>(fy) * 640 + fx) * 3]);
      }
  }
  uint32_t state = noise_seed;
  if (noise)
    for (uint8_t& v : frame) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<uint8_t>(std::clamp(int(v) + int(state >> 24) % (2 * noise + 1) - noise, 0, 255));
    }
  return frame;
}
const char* kAstronaut = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";
RgbImage astronaut() {
  const auto bytes = read_file(kAstronaut);
  return decode_image_rgb(bytes.data(), bytes.size());
}
}  // namespace

// A face the detector misses in one frame keeps its box (and track) for that frame, and is gone after two.
TEST(Pipeline, AFaceMissedForOneFrameKeepsItsBox) {
  if (!file_exists(kAstronaut)) GTEST_SKIP() << kAstronaut << " missing (python3-skimage)";
  const RgbImage photo = astronaut();
  Pipeline p(tiny_model(), shipped_detector());
  PipelineOptions o;
  const auto face = made_up_frame(photo, {{320, 240, 120, 0}}), empty = made_up_frame(photo, {});
  const auto first = p.process_rgb(face.data(), 640, 480, o);
  ASSERT_EQ(first.size(), 1u);
  const auto gap = p.process_rgb(empty.data(), 640, 480, o);
  ASSERT_EQ(gap.size(), 1u);
  EXPECT_EQ(gap[0].missed, 1);
  EXPECT_EQ(gap[0].track, first[0].track);
  EXPECT_EQ(gap[0].box.x, first[0].box.x);
  EXPECT_EQ(p.times().passes, 2);  // the whole frame, then the face's last region
  const auto back = p.process_rgb(face.data(), 640, 480, o);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].track, first[0].track);
  EXPECT_EQ(back[0].missed, 0);
  p.process_rgb(empty.data(), 640, 480, o);
  EXPECT_TRUE(p.process_rgb(empty.data(), 640, 480, o).empty());
}

// Two faces that pass each other (one crossing the frame above the other) keep their track ids throughout.
TEST(Pipeline, TwoFacesThatPassEachOtherKeepTheirTracks) {
  if (!file_exists(kAstronaut)) GTEST_SKIP() << kAstronaut << " missing (python3-skimage)";
  const RgbImage photo = astronaut();
  Pipeline p(tiny_model(), shipped_detector());
  PipelineOptions o;
  int left_track = 0, right_track = 0, frames_with_both = 0;
  for (int t = 0; t <= 40; ++t) {
    const float a = 130 + 380 * t / 40.0f, b = 510 - 380 * t / 40.0f;  // the first moves right, the second left
    const auto frame = made_up_frame(photo, {{a, 150, 100, 0}, {b, 340, 100, 0}});
    const auto& faces = p.process_rgb(frame.data(), 640, 480, o);
    for (const FaceResult& f : faces) {
      if (f.missed) continue;
      const float cx = f.box.x + 0.5f * f.box.w, cy = f.box.y + 0.5f * f.box.h;
      if (cy < 245) {  // the upper face
        EXPECT_NEAR(cx, a, 30) << "frame " << t;
        if (!left_track) left_track = f.track;
        EXPECT_EQ(f.track, left_track) << "frame " << t;
      } else {
        EXPECT_NEAR(cx, b, 30) << "frame " << t;
        if (!right_track) right_track = f.track;
        EXPECT_EQ(f.track, right_track) << "frame " << t;
      }
    }
    frames_with_both += faces.size() == 2;
  }
  EXPECT_NE(left_track, right_track);
  EXPECT_EQ(frames_with_both, 41);
}

// A still face in a noisy video: the box is steady (its centre moves at most 2% of its width from frame to frame, its
// size at most 3%, medians), and it stays on the face.
TEST(Pipeline, AStillFaceInANoisyVideoHasASteadyBox) {
  if (!file_exists(kAstronaut)) GTEST_SKIP() << kAstronaut << " missing (python3-skimage)";
  const RgbImage photo = astronaut();
  Pipeline p(tiny_model(), shipped_detector());
  PipelineOptions o;
  std::vector<float> moves, sizes;
  Box last;
  for (int t = 0; t < 30; ++t) {
    const auto frame = made_up_frame(photo, {{300, 220, 140, 0}}, 1000 + t, 12);
    const auto& faces = p.process_rgb(frame.data(), 640, 480, o);
    ASSERT_EQ(faces.size(), 1u) << t;
    const Box b = faces[0].box;
    if (t > 0) {
      moves.push_back(std::hypot(b.x + 0.5f * b.w - last.x - 0.5f * last.w, b.y + 0.5f * b.h - last.y - 0.5f * last.h) / b.w);
      sizes.push_back(std::fabs(b.w - last.w) / b.w);
    }
    last = b;
  }
  std::sort(moves.begin(), moves.end());
  std::sort(sizes.begin(), sizes.end());
  std::printf("a still face, noise +-12: box centre moves %.2f%% of its width (median, max %.2f%%), size %.2f%% (max %.2f%%)\n",
              100 * moves[moves.size() / 2], 100 * moves.back(), 100 * sizes[sizes.size() / 2], 100 * sizes.back());
  EXPECT_LE(moves[moves.size() / 2], 0.02f);
  EXPECT_LE(sizes[sizes.size() / 2], 0.03f);
  EXPECT_NEAR(last.x + 0.5f * last.w, 300, 15);
  EXPECT_NEAR(last.w, 140, 30);
}

// A face that turns slowly past what the network finds upright (to 90 degrees) is followed: each frame looks for it
// again in its last region turned by its last roll.
TEST(Pipeline, AFaceTurningTo90DegreesIsFollowed) {
  if (!file_exists(kAstronaut)) GTEST_SKIP() << kAstronaut << " missing (python3-skimage)";
  const RgbImage photo = astronaut();
  Pipeline p(tiny_model(), shipped_detector());
  PipelineOptions o;
  int found = 0, frames = 0;
  for (float deg = 0; deg <= 90; deg += 3, ++frames) {
    const auto frame = made_up_frame(photo, {{320, 240, 130, deg}});
    const auto& faces = p.process_rgb(frame.data(), 640, 480, o);
    bool here = false;
    for (const FaceResult& f : faces)
      if (!f.missed && std::hypot(f.box.x + 0.5f * f.box.w - 320, f.box.y + 0.5f * f.box.h - 240) < 40) here = true;
    found += here;
    EXPECT_TRUE(here) << deg << " degrees";
  }
  EXPECT_EQ(found, frames);
}
