// Teaching without forgetting, measured as a user meets it (issue 22): FER-2013 PublicTest faces stand in for a
// user's samples of k expressions (k = 1, 2 or 7; n faces each, a fifth held back as the page does), the shipped
// model is fine-tuned on them with the page's code (core/finetune.h) and a setting, and then reads the whole
// PrivateTest split: its accuracy, and the recall of each class that was not taught, against the base model's.
// Each scenario runs over several draws of the samples (other PublicTest faces each time); the table gives means
// and the worst case.
//   build/release/bench/teach_forgetting [--model M] [--data fer2013.csv.gz] [--draws 3] [--n 12]
//                                        [--set 'anchor=0.01 replay=false'] ... [--replay 10] [--threads 2]
// The model's own replay bank (core/finetune.h) is used if it has one; --replay N makes one of the first N FER-2013
// Training faces of each class instead. "--set replay=0" turns replay off.
// Each --set is a FinetuneConfig as JSON fields written key=value (e.g. "head_layers=1 epochs=10"); without any
// --set, the default settings are measured. Prints a row per setting and scenario; asserts nothing.
//
// The teach gate (FinetuneConfig::gate, 0.4 by default) is part of the taught model, so evaluate() applies it:
// "--set gate=0" measures teaching without it, "--set gate=1" a wider one.
// --part personal (or both) measures the other half (issue 22, item 2), that teaching still personalizes: "one
// person, their camera" is stood in for by a fixed camera() change (blur, a 10 degree tilt, zoom, a dark gamma, low
// contrast, a fixed noise pattern) that every one of their faces goes through, and the FER+ relabelling's majority
// vote standing in for the person's own idea of their expressions. The model is taught n PublicTest faces per
// taught class under that camera with their FER+ labels, then reads the PrivateTest faces under the same camera with
// their FER+ labels ("their other faces": accuracy, and the taught expressions' mean recall), and PrivateTest as it
// is ("everyone else"), before and after.
//   build/release/bench/teach_forgetting --part personal [--ferplus fer2013new.csv] [--n 10] [--set ...]
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dataio.h"
#include "files.h"
#include "finetune.h"
#include "model_io.h"
#include "rng.h"
#include "train.h"

using namespace ferkit;

namespace {
const char* kNames[kNumClasses] = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};

struct Scenario {
  std::string name;
  std::vector<int> taught;
};

// The PublicTest faces of class c, in file order.
std::vector<size_t> faces_of(const Dataset& d, int c) {
  std::vector<size_t> out;
  for (size_t i = 0; i < d.size(); ++i)
    if (d.labels[i] == c) out.push_back(i);
  return out;
}

// The largest drop in recall, in points, of a class that was not taught, over the draws seen.
struct WorstUntaught {
  double recall = 1e9;
  int cls = -1;
  void see(const Metrics& after, const Metrics& before, const std::vector<int>& taught) {
    for (int c = 0; c < kNumClasses; ++c) {
      if (std::find(taught.begin(), taught.end(), c) != taught.end()) continue;
      const double r = 100 * (after.per_class(c).recall - before.per_class(c).recall);
      if (r < recall) recall = r, cls = c;
    }
  }
  std::string text() const {
    char s[48] = "-";
    if (cls >= 0) std::snprintf(s, sizeof s, "%+.1f %s", recall, kNames[cls]);
    return s;
  }
};

// A camera the model has not seen: applied to every face of the personal benchmark, always the same.
void camera(const uint8_t* src, uint8_t* dst, const std::vector<float>& pattern) {
  float blur[kPixels];
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      float sum = 0;
      int n = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= kSide || xx < 0 || xx >= kSide) continue;
          sum += src[yy * kSide + xx];
          ++n;
        }
      blur[y * kSide + x] = sum / static_cast<float>(n);
    }
  const float a = 10.0f * 3.14159265f / 180.0f, zoom = 1.1f, c = (kSide - 1) / 2.0f;
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      const float u = static_cast<float>(x) - c - 2.0f, v = static_cast<float>(y) - c + 1.0f;
      const float sx = std::clamp((std::cos(a) * u + std::sin(a) * v) / zoom + c, 0.0f, kSide - 1.001f);
      const float sy = std::clamp((-std::sin(a) * u + std::cos(a) * v) / zoom + c, 0.0f, kSide - 1.001f);
      const int x0 = static_cast<int>(sx), y0 = static_cast<int>(sy);
      const float fx = sx - static_cast<float>(x0), fy = sy - static_cast<float>(y0);
      const float* r0 = blur + y0 * kSide + x0;
      const float g = (1 - fy) * ((1 - fx) * r0[0] + fx * r0[1]) + fy * ((1 - fx) * r0[kSide] + fx * r0[kSide + 1]);
      const float t = 0.5f + 0.7f * (std::pow(g / 255.0f, 1.5f) - 0.5f);
      const float lit = 255.0f * t + pattern[static_cast<size_t>(y * kSide + x)];
      dst[y * kSide + x] = static_cast<uint8_t>(std::clamp(lit, 0.0f, 255.0f));
    }
}

// The faces of `d` under camera(), labelled with their FER+ majority vote over the 7 classes (faces with no vote
// among them, or a tie, are left out).
Dataset personal_faces(const Dataset& d, const std::vector<float>& votes, const std::vector<float>& pattern) {
  Dataset out = d.relabelled_by_votes(votes);
  uint8_t px[kPixels];
  for (size_t i = 0; i < out.size(); ++i) {
    camera(out.image(i), px, pattern);
    std::copy(px, px + kPixels, out.pixels.begin() + static_cast<std::ptrdiff_t>(i * kPixels));
  }
  return out;
}

nlohmann::json parse_set(const std::string& s) {
  nlohmann::json j = nlohmann::json::object();
  std::istringstream in(s);
  std::string kv;
  while (in >> kv) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--set: expected key=value, got '" + kv + "'");
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (v == "true" || v == "false") j[k] = v == "true";
    else j[k] = std::stod(v);
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = FERKIT_SOURCE_DIR "/assets/models/default.ferkit";
  std::string data = FERKIT_SOURCE_DIR "/../shared/data/fer2013/fer2013.csv.gz";
  std::string ferplus = FERKIT_SOURCE_DIR "/../shared/data/ferplus/fer2013new.csv";
  std::string part = "forgetting";
  int draws = 3, n = 12, threads = 2, replay = 0;
  std::vector<std::string> sets;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_path = v;
    else if (a == "--data") data = v;
    else if (a == "--ferplus") ferplus = v;
    else if (a == "--part") part = v;
    else if (a == "--draws") draws = std::atoi(v.c_str());
    else if (a == "--n") n = std::atoi(v.c_str());
    else if (a == "--set") sets.push_back(v);
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--replay") replay = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "teach_forgetting: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (part != "forgetting" && part != "personal" && part != "both") {
    std::fprintf(stderr, "teach_forgetting: --part must be forgetting, personal or both\n");
    return 2;
  }
  if (sets.empty()) sets.push_back("");
#ifdef _OPENMP
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
  const std::vector<uint8_t> file = read_file(model_path);
  nlohmann::json meta;
  std::vector<Blob> blobs;
  const Model base = load_model(file.data(), file.size(), &meta, &blobs);
  LoadReport report;
  const FerSplits fer = load_fer_csv(data, true, &report);

  // A replay bank from the first `replay` Training faces of each class (never PublicTest or PrivateTest).
  Model bank_model = base;
  ReplayBank bank = read_replay_bank(base, meta, blobs);  // the model's own, unless --replay makes another
  if (bank.count()) std::printf("the model's replay bank: %zu faces\n", bank.count());
  if (replay > 0) {
    bank = make_replay_bank(bank_model, fer.train.first_per_class(static_cast<size_t>(replay)));
    std::printf("replay bank: %zu Training faces, %zu values each (layer %d), %.0f KB as float32\n", bank.count(),
                bank.size, bank.layer, bank.features.size() * 4 / 1024.0);
  }
  Workspace ws;
  auto metrics_of = [&](Model& m, const Dataset& d) { return evaluate(m, ws, d, 256); };
  // Teaches the base n faces of each taught class from `pool` (other faces for each draw) with a setting.
  auto samples_of = [&](const Dataset& pool, const std::vector<int>& taught, int draw) {
    Dataset samples;
    for (int c : taught) {
      const std::vector<size_t> idx = faces_of(pool, c);
      for (int i = 0; i < n && !idx.empty(); ++i)
        samples.add(pool.image(idx[(static_cast<size_t>(draw) * n + i) % idx.size()]), c);
    }
    return samples;
  };
  auto teach = [&](const Dataset& pool, const std::vector<int>& taught, int draw, const nlohmann::json& over) {
    const Dataset samples = samples_of(pool, taught, draw);
    nlohmann::json j = over;
    j["seed"] = draw + 1;
    auto ft = std::make_unique<FineTune>(base, samples, FinetuneConfig::from_json(j), &bank);
    ft->run();
    return ft;
  };
  Model b = base;
  const Metrics before = metrics_of(b, fer.private_test);
  std::printf("base %s: PrivateTest %.2f%%; recall", model_path.c_str(), 100 * before.accuracy());
  for (int c = 0; c < kNumClasses; ++c) std::printf(" %s %.1f", kNames[c], 100 * before.per_class(c).recall);
  std::printf("\n%d draws of %d faces per taught class (a fifth held back)\n", draws, n);

  if (part != "personal") {
    const std::vector<Scenario> scenarios = {
        {"happy", {3}}, {"neutral", {6}}, {"sad", {4}}, {"happy+sad", {3, 4}}, {"angry+neutral", {0, 6}},
        {"all 7", {0, 1, 2, 3, 4, 5, 6}}};
    std::printf("\nForgetting: PublicTest faces taught, all of PrivateTest read\n");
    std::printf("%-34s %-14s %9s %9s %15s %9s %9s\n", "setting", "taught", "dPrivate", "worst", "worst untaught",
                "held<", "held>");
    for (const std::string& set : sets) {
      const nlohmann::json over = parse_set(set);
      for (const Scenario& sc : scenarios) {
        double d_acc = 0, worst_acc = 1e9, held_b = 0, held_a = 0;
        WorstUntaught worst;
        for (int draw = 0; draw < draws; ++draw) {
          auto ft = teach(fer.public_test, sc.taught, draw, over);
          held_b += ft->held_before() / draws;
          held_a += ft->held_now() / draws;
          const Metrics after = metrics_of(ft->model(), fer.private_test);
          const double d = 100 * (after.accuracy() - before.accuracy());
          d_acc += d / draws;
          worst_acc = std::min(worst_acc, d);
          worst.see(after, before, sc.taught);
        }
        std::printf("%-34s %-14s %+9.2f %+9.2f %15s %8.1f%% %8.1f%%\n", set.empty() ? "(defaults)" : set.c_str(),
                    sc.name.c_str(), d_acc, worst_acc, worst.text().c_str(), 100 * held_b, 100 * held_a);
        std::fflush(stdout);
      }
    }
  }

  if (part != "forgetting") {
    std::vector<float> pattern(kPixels);
    Rng rng(42);
    for (float& v : pattern) v = rng.uniform(-4.0f, 4.0f);
    const Dataset their_taught = personal_faces(
        fer.public_test, load_ferplus_votes(ferplus, Usage::PublicTest, fer.public_test.size()), pattern);
    const Dataset their_other = personal_faces(
        fer.private_test, load_ferplus_votes(ferplus, Usage::PrivateTest, fer.private_test.size()), pattern);
    const Metrics their_base = metrics_of(b, their_other);
    const double their_before = their_base.accuracy();
    std::printf("\nPersonal: taught under camera() with FER+ labels; their other faces: %zu PrivateTest faces under "
                "camera() with FER+ labels, %.2f%% before; everyone else: PrivateTest as it is, %.2f%% before\n",
                their_other.size(), 100 * their_before, 100 * before.accuracy());
    const std::vector<Scenario> scenarios = {{"all 7", {0, 1, 2, 3, 4, 5, 6}}, {"happy+sad", {3, 4}}};
    std::printf("%-34s %-14s %12s %13s %12s %15s %9s %9s\n", "setting", "taught", "their faces", "their taught",
                "everyone", "worst untaught", "held<", "held>");
    for (const std::string& set : sets) {
      const nlohmann::json over = parse_set(set);
      for (const Scenario& sc : scenarios) {
        double their = 0, their_taught_recall = 0, everyone = 0, held_b = 0, held_a = 0;
        WorstUntaught worst;
        for (int draw = 0; draw < draws; ++draw) {
          auto ft = teach(their_taught, sc.taught, draw, over);
          held_b += ft->held_before() / draws;
          held_a += ft->held_now() / draws;
          const Metrics their_after = metrics_of(ft->model(), their_other);
          their += 100 * (their_after.accuracy() - their_before) / draws;
          for (int c : sc.taught)  // the taught expressions' recall on the person's other faces
            their_taught_recall += 100 * (their_after.per_class(c).recall - their_base.per_class(c).recall) /
                                   (draws * static_cast<double>(sc.taught.size()));
          const Metrics after = metrics_of(ft->model(), fer.private_test);
          everyone += 100 * (after.accuracy() - before.accuracy()) / draws;
          worst.see(after, before, sc.taught);
        }
        std::printf("%-34s %-14s %+12.2f %+13.2f %+12.2f %15s %8.1f%% %8.1f%%\n",
                    set.empty() ? "(defaults)" : set.c_str(), sc.name.c_str(), their, their_taught_recall, everyone,
                    worst.text().c_str(), 100 * held_b, 100 * held_a);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
