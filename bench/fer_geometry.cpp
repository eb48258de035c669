// Where BlazeFace puts the eyes, nose and mouth on FER-2013's faces: the target geometry of the aligned crop
// (core/align.h). FER-2013's faces are registered (centred, scaled to the face); the detector is run on each training
// face enlarged into the middle of its view, as a frame of the live pipeline would show a face (the face taking up
// 40% of the view, a black surround), and the median position of each keypoint over every face it finds, in the 48x48
// crop's pixels, is the target. Training images only (never PublicTest or PrivateTest).
//   fer_geometry [fer2013.csv.gz] [max images]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "blazeface.h"
#include "dataio.h"
#include "files.h"
#include "model_io.h"

using namespace ferkit;

int main(int argc, char** argv) {
  const std::string csv = argc > 1 ? argv[1] : FERKIT_SOURCE_DIR "/../shared/data/fer2013/fer2013.csv.gz";
  const size_t max_images = argc > 2 ? std::stoul(argv[2]) : 28709;
  const auto model_bytes = read_file(FERKIT_SOURCE_DIR "/assets/detector/blazeface.ferkit");
  BlazeFace det(load_model(model_bytes.data(), model_bytes.size()));
  LoadReport report;
  const FerSplits splits = load_fer_csv(csv, false, &report);
  const Dataset& train = splits.train;
  const size_t n = std::min(max_images, train.size());
  std::vector<std::vector<float>> xs(kNumFaceKeypoints), ys(kNumFaceKeypoints);
  std::vector<float> scores, rolls, widths;
  size_t found = 0;
  for (size_t i = 0; i < n; ++i) {
    Detection d;
    const Roi view{24.0f, 24.0f, 48.0f * 2.5f, 0.0f};
    if (!det.look_again(train.image(i), kSide, kSide, 1, view, 0.5f, &d)) continue;
    ++found;
    for (int k = 0; k < kNumFaceKeypoints; ++k) xs[k].push_back(d.keypoints[k].x), ys[k].push_back(d.keypoints[k].y);
    scores.push_back(d.box.score);
    rolls.push_back(d.roll() * 57.29578f);
    widths.push_back(d.box.w);
  }
  auto quantile = [](std::vector<float> v, double q) {
    if (v.empty()) return 0.0f;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
  };
  std::printf("FER-2013 training faces: %zu, a face found in %zu (%.1f%%)\n", n, found, 100.0 * found / std::max<size_t>(n, 1));
  const char* names[kNumFaceKeypoints] = {"right eye", "left eye", "nose tip", "mouth", "right ear", "left ear"};
  std::printf("%-10s %-22s %-22s (median [quartiles], 48x48 crop pixels)\n", "keypoint", "x", "y");
  for (int k = 0; k < kNumFaceKeypoints; ++k)
    std::printf("%-10s %5.2f [%5.2f %5.2f]    %5.2f [%5.2f %5.2f]\n", names[k], quantile(xs[k], 0.5), quantile(xs[k], 0.25),
                quantile(xs[k], 0.75), quantile(ys[k], 0.5), quantile(ys[k], 0.25), quantile(ys[k], 0.75));
  std::printf("box width %.1f [%.1f %.1f], roll %.1f [%.1f %.1f] degrees, score %.2f [%.2f %.2f]\n", quantile(widths, 0.5),
              quantile(widths, 0.25), quantile(widths, 0.75), quantile(rolls, 0.5), quantile(rolls, 0.25),
              quantile(rolls, 0.75), quantile(scores, 0.5), quantile(scores, 0.25), quantile(scores, 0.75));
}
