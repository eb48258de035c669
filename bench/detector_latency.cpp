// The face detector's time on a 640x480 RGBA camera frame (a photo letterboxed into it), as the page runs it on
// every frame: BlazeFace's whole-frame pass (sampling, the network, the decoding; core/blazeface.h), and the
// network's time by layer kind. No Google Benchmark, so it also runs as WebAssembly under node, in the page's
// engine's code:
//   build/release/bench/detector_latency [MODEL] [RUNS] [PHOTO]
//   node --no-experimental-fetch build/wasm/bench/detector_latency.js [MODEL] [RUNS] [PHOTO]   (NODERAWFS: real paths)
// MODEL defaults to assets/detector/blazeface.ferkit, PHOTO to skimage's astronaut.png (the page tests' camera).
// Reports medians (and the 10th percentile); asserts nothing.
//
// The same source builds in a checkout of the old front end (the Haar cascade, before commit 3f54558; MODEL is
// then its .cascade file) and times it the way the old page ran it (grey conversion, then the cascade with the
// page's options: window step 2, faces from 40 pixels). bench/frontend_speed.sh builds both and prints them side
// by side with ratios. Its last line is machine-readable: "result <front end> <median ms> <p10 ms> <faces>".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "image.h"
#if __has_include("detect.h")  // the old tree (it has blazeface.h too, not yet in its front end)
#include "detect.h"
#else
#include "blazeface.h"
#include "model_io.h"
#define FERKIT_BENCH_BLAZEFACE 1
#endif

using namespace ferkit;
using Clock = std::chrono::steady_clock;

namespace {
double ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}
std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.empty()) {
    std::fprintf(stderr, "detector_latency: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return bytes;
}
constexpr int kWidth = 640, kHeight = 480;

// The photo scaled to the frame's height (nearest pixel), centred on a grey frame, as RGBA.
std::vector<uint8_t> camera_frame(const std::string& photo_path) {
  const std::vector<uint8_t> bytes = read_file(photo_path);
  const RgbImage photo = decode_image_rgb(bytes.data(), bytes.size());
  std::vector<uint8_t> frame(static_cast<size_t>(kWidth) * kHeight * 4, 128);
  const double scale = static_cast<double>(kHeight) / photo.height;
  const int w = static_cast<int>(photo.width * scale), x0 = (kWidth - w) / 2;
  for (int y = 0; y < kHeight; ++y)
    for (int x = std::max(0, x0); x < std::min(kWidth, x0 + w); ++x) {
      const int sx = std::min(photo.width - 1, static_cast<int>((x - x0) / scale));
      const int sy = std::min(photo.height - 1, static_cast<int>(y / scale));
      const uint8_t* s = &photo.pixels[(static_cast<size_t>(sy) * photo.width + sx) * 3];
      uint8_t* d = &frame[(static_cast<size_t>(y) * kWidth + x) * 4];
      d[0] = s[0], d[1] = s[1], d[2] = s[2], d[3] = 255;
    }
  return frame;
}

void report(const char* what, const std::vector<double>& t) {
  std::printf("  %-52s %.2f ms median (p10 %.2f)\n", what, quantile(t, 0.5), quantile(t, 0.1));
}
}  // namespace

int main(int argc, char** argv) {
#ifdef FERKIT_BENCH_BLAZEFACE
  const std::string path = argc > 1 ? argv[1] : FERKIT_SOURCE_DIR "/assets/detector/blazeface.ferkit";
#else
  const std::string path = argc > 1 ? argv[1] : FERKIT_SOURCE_DIR "/assets/cascades/frontalface.cascade";
#endif
  const int runs = argc > 2 ? std::max(10, std::atoi(argv[2])) : 100;
  const std::string photo = argc > 3 ? argv[3] : "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";
  const std::vector<uint8_t> bytes = read_file(path);
  const std::vector<uint8_t> frame = camera_frame(photo);
  std::vector<double> whole;
  size_t faces = 0;
#ifdef FERKIT_BENCH_BLAZEFACE
  BlazeFace det(load_model(bytes.data(), bytes.size()));
  std::vector<uint8_t> input(static_cast<size_t>(det.side()) * det.side() * 3);
  std::vector<double> sample, pass;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    faces = det.detect(frame.data(), kWidth, kHeight, 4, Roi::whole(kWidth, kHeight)).size();
    const auto t1 = Clock::now();
    sample_roi(frame.data(), kWidth, kHeight, 4, Roi::whole(kWidth, kHeight), det.side(), input.data(), 3);
    const auto t2 = Clock::now();
    det.detect_input(input.data());
    const auto t3 = Clock::now();
    whole.push_back(ms(t0, t1));
    sample.push_back(ms(t1, t2));
    pass.push_back(ms(t2, t3));
  }
  std::printf("BlazeFace (%s): %.1f M multiply-adds a pass, %zu face(s) on %s\n", path.c_str(),
              det.model().macs_per_image() / 1e6, faces, photo.c_str());
  report("a 640x480 RGBA frame's detection, all of it", whole);
  report("  sampling the frame into the 128x128 input", sample);
  report("  the network and the decoding", pass);
  // Layer by layer (each alone, so the plan's fusions across layers are not in these figures).
  Model m = det.model();
  InferencePlan plan = plan_inference(m);
  Workspace ws;
  ws.reserve(m, 1);
  load_input(m, ws, input.data(), 1);
  std::map<std::string, double> by_kind;
  std::map<std::string, long long> macs;
  const int L = static_cast<int>(m.layers.size());
  for (int r = 0; r < runs; ++r)
    for (int i = 0; i < L; ++i) {
      ForwardOptions o;
      o.plan = &plan;
      o.from_layer = i;
      o.until_layer = i + 1;
      const auto t0 = Clock::now();
      forward(m, ws, 1, o);
      const LayerPlan& p = m.layers[static_cast<size_t>(i)];
      std::string kind = layer_name(p.spec.kind);
      if (p.spec.kind == LayerKind::Conv || p.spec.kind == LayerKind::DepthwiseConv)
        kind += " " + std::to_string(p.spec.kernel) + "x" + std::to_string(p.spec.kernel);
      by_kind[kind] += ms(t0, Clock::now()) / runs;
      if (r == 0 && (p.spec.kind == LayerKind::Conv || p.spec.kind == LayerKind::Head))
        macs[kind] += 1LL * p.out.size() * p.geom.patch();
      if (r == 0 && p.spec.kind == LayerKind::DepthwiseConv) macs[kind] += 1LL * p.out.size() * p.geom.k * p.geom.k;
    }
  std::printf("  by layer kind (mean, each layer run alone, without the plan's fusions across layers):\n");
  for (const auto& [kind, t] : by_kind)
    std::printf("    %-10s %6.3f ms  %6.1f M multiply-adds\n", kind.c_str(), t, macs[kind] / 1e6);
  std::printf("result blazeface %.3f %.3f %zu\n", quantile(whole, 0.5), quantile(whole, 0.1), faces);
#else
  FaceDetector det(load_cascade(bytes.data(), bytes.size()));
  DetectOptions o;  // the old page's live options (web/app.h live_options)
  o.step = 2;
  std::vector<Box> boxes;
  std::vector<uint8_t> gray(static_cast<size_t>(kWidth) * kHeight);
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    for (size_t i = 0; i < gray.size(); ++i) {  // BT.601 luma in integers, as the old pipeline's process_rgba
      const uint8_t* p = &frame[4 * i];
      gray[i] = static_cast<uint8_t>((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
    }
    det.detect(gray.data(), kWidth, kHeight, o, boxes);
    whole.push_back(ms(t0, Clock::now()));
  }
  faces = boxes.size();
  std::printf("Haar cascade (%s): %zu face(s) on %s\n", path.c_str(), faces, photo.c_str());
  report("a 640x480 RGBA frame's detection (grey, then the cascade)", whole);
  std::printf("result haar %.3f %.3f %zu\n", quantile(whole, 0.5), quantile(whole, 0.1), faces);
#endif
  return 0;
}
