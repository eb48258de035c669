// The front end on faces the classifier knows: every PrivateTest face of FER-2013 shown to the pipeline as a frame
// (enlarged 2.5x to 120 pixels, turned by a random angle up to +-25 degrees, in the middle of a 256x256 grey frame),
// then found, cropped and classified by the default model. Reports the share of frames with a face found and the
// accuracy (a miss counts as wrong), next to classifying the original crop. Reads ../shared's FER-2013; asserts
// nothing.
//   frontend_fer [fer2013.csv.gz] [model.ferkit] [detector.ferkit]
// Built in a checkout that still has the Haar cascade (core/detect.h, before commit 3f54558), the same source also
// runs the old front end (the cascade and its square crop with a 10% margin) side by side in the same run:
//   git worktree add /tmp/ferkit-old c7bdb7d && cp bench/frontend_fer.cpp /tmp/ferkit-old/bench/ && (build it there)
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "blazeface.h"
#include "dataio.h"
#include "files.h"
#include "model_io.h"
#if __has_include("detect.h")
#include "detect.h"
#define FERKIT_HAVE_HAAR 1
#endif

using namespace ferkit;

namespace {
constexpr int kFrame = 256;
constexpr float kFaceSide = 120;  // the 48x48 crop enlarged 2.5x

struct Tally {
  int found = 0, right = 0, n = 0;
  void add(bool f, bool r) { found += f, right += f && r, ++n; }
  void print(const char* what) const {
    std::printf("  %-44s found %5.1f%%  accuracy %5.2f%% (%5.2f%% of those found)\n", what, 100.0 * found / n,
                100.0 * right / n, found ? 100.0 * right / found : 0.0);
  }
};

int argmax(const float* p) {
  int best = 0;
  for (int c = 1; c < kNumClasses; ++c) best = p[c] > p[best] ? c : best;
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  const std::string csv = argc > 1 ? argv[1] : FERKIT_SOURCE_DIR "/../shared/data/fer2013/fer2013.csv.gz";
  const std::string model_path = argc > 2 ? argv[2] : FERKIT_SOURCE_DIR "/assets/models/default.ferkit";
  const std::string detector_path = argc > 3 ? argv[3] : FERKIT_SOURCE_DIR "/assets/detector/blazeface.ferkit";
  const FerSplits splits = load_fer_csv(csv, false, nullptr);
  const Dataset& test = splits.private_test;
  const auto mb = read_file(model_path), db = read_file(detector_path);
  Model model = load_model(mb.data(), mb.size());
  BlazeFace det(load_model(db.data(), db.size()));
  const InferencePlan plan = plan_inference(model);
  Workspace ws;
  ws.reserve(model, 1);
#ifdef FERKIT_HAVE_HAAR
  const auto cb = read_file(FERKIT_SOURCE_DIR "/assets/cascades/frontalface.cascade");
  FaceDetector haar(load_cascade(cb.data(), cb.size()));
  Tally old_tally;
#endif
  Tally original, live, still;
  std::vector<uint8_t> frame(kFrame * kFrame);
  uint8_t crop[kPixels];
  float probs[kNumClasses];
  const auto classify = [&](const uint8_t* px) {
    predict(model, ws, px, 1, probs, false, &plan);
    return argmax(probs);
  };
  uint64_t state = 12345;
  for (size_t i = 0; i < test.size(); ++i) {
    const int label = test.labels[i];
    original.add(true, classify(test.image(i)) == label);
    // The frame: grey, the face turned by a random angle up to 25 degrees either way about the frame's centre.
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float degrees = -25.0f + 50.0f * static_cast<float>(state >> 40) / static_cast<float>(1ull << 24);
    const float a = degrees * 3.14159265f / 180, scale = kSide / kFaceSide;  // crop pixels per frame pixel
    const float c = std::cos(a), s = std::sin(a);
    for (int y = 0; y < kFrame; ++y)
      for (int x = 0; x < kFrame; ++x) {
        const float u = (x + 0.5f - kFrame / 2.0f) * scale, v = (y + 0.5f - kFrame / 2.0f) * scale;
        const float sx = c * u + s * v + kSide / 2.0f - 0.5f, sy = -s * u + c * v + kSide / 2.0f - 0.5f;
        const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
        uint8_t& out = frame[static_cast<size_t>(y) * kFrame + x];
        if (x0 < 0 || y0 < 0 || x0 + 1 >= kSide || y0 + 1 >= kSide) {
          out = 128;
          continue;
        }
        const float fx = sx - x0, fy = sy - y0;
        const uint8_t* p = test.image(i) + y0 * kSide + x0;
        out = static_cast<uint8_t>((1 - fy) * ((1 - fx) * p[0] + fx * p[1]) + fy * ((1 - fx) * p[kSide] + fx * p[kSide + 1]) + 0.5f);
      }
    // New, as a live frame: one whole-frame pass; then as a still image: the tiles and the second look.
    const auto largest = [](const std::vector<Detection>& f) {
      const Detection* best = nullptr;
      for (const Detection& d : f)
        if (!best || d.box.w > best->box.w) best = &d;
      return best;
    };
    const Detection* d = largest(det.detect(frame.data(), kFrame, kFrame, 1, Roi::whole(kFrame, kFrame)));
    if (d) crop_aligned(frame.data(), kFrame, kFrame, 1, *d, crop);
    live.add(d != nullptr, d && classify(crop) == label);
    d = largest(det.find(frame.data(), kFrame, kFrame, 1));
    if (d) crop_aligned(frame.data(), kFrame, kFrame, 1, *d, crop);
    still.add(d != nullptr, d && classify(crop) == label);
#ifdef FERKIT_HAVE_HAAR
    const std::vector<Box> boxes = haar.detect(frame.data(), kFrame, kFrame);
    const Box* h = nullptr;
    for (const Box& b : boxes)
      if (!h || b.w > h->w) h = &b;
    if (h) crop_face(frame.data(), kFrame, kFrame, *h, kDefaultFaceMargin, crop);
    old_tally.add(h != nullptr, h && classify(crop) == label);
#endif
  }
  std::printf("%zu PrivateTest faces as 256x256 frames (the face 120 px, turned up to 25 degrees either way), %s:\n",
              test.size(), model_path.c_str());
  original.print("the original 48x48 crop (no front end)");
#ifdef FERKIT_HAVE_HAAR
  old_tally.print("Haar cascade + square crop (the old front end)");
#endif
  live.print("BlazeFace, one whole-frame pass + aligned crop");
  still.print("BlazeFace, still-image search + aligned crop");
  return 0;
}
