// The face detector's speed (core/blazeface.h): one pass of BlazeFace over a 640x480 RGBA frame (letterbox
// sampling, then the network and the decoding), and the network's time by layer kind. No Google Benchmark, so it
// also runs as WebAssembly under node, in the page's engine's code:
//   build/release/bench/detector_latency [MODEL] [RUNS]
//   node --no-experimental-fetch build/wasm/bench/detector_latency.js [MODEL] [RUNS]   (NODERAWFS: real paths)
// Reports medians (and the 10th percentile); asserts nothing. MODEL defaults to assets/detector/blazeface.ferkit.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "blazeface.h"
#include "model_io.h"

using namespace ferkit;
using Clock = std::chrono::steady_clock;

namespace {
double ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}
}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : FERKIT_SOURCE_DIR "/assets/detector/blazeface.ferkit";
  const int runs = argc > 2 ? std::max(10, std::atoi(argv[2])) : 100;
  std::ifstream f(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.empty()) {
    std::fprintf(stderr, "detector_latency: cannot read %s\n", path.c_str());
    return 1;
  }
  BlazeFace det(load_model(bytes.data(), bytes.size()));
  // A frame of pseudo-random pixels (the network's time does not depend on them; a face's decoding is a few dozen
  // microseconds more).
  std::vector<uint8_t> frame(640 * 480 * 4), input(static_cast<size_t>(det.side()) * det.side() * 3);
  for (size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  std::vector<double> sample, pass;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    sample_roi(frame.data(), 640, 480, 4, Roi::whole(640, 480), det.side(), input.data(), 3);
    const auto t1 = Clock::now();
    det.detect_input(input.data());
    const auto t2 = Clock::now();
    sample.push_back(ms(t0, t1));
    pass.push_back(ms(t1, t2));
  }
  std::printf("BlazeFace (%s): %.1f M multiply-adds a pass\n", path.c_str(), det.model().macs_per_image() / 1e6);
  std::printf("  sampling a 640x480 RGBA frame into %dx%d: %.2f ms median (p10 %.2f)\n", det.side(), det.side(),
              quantile(sample, 0.5), quantile(sample, 0.1));
  std::printf("  the network and decoding: %.2f ms median (p10 %.2f)\n", quantile(pass, 0.5), quantile(pass, 0.1));
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
  std::printf("  by layer kind (mean, each layer run alone):\n");
  for (const auto& [kind, t] : by_kind)
    std::printf("    %-10s %6.3f ms  %6.1f M multiply-adds\n", kind.c_str(), t, macs[kind] / 1e6);
  return 0;
}
