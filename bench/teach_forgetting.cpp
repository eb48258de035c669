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
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
  int draws = 3, n = 12, threads = 2, replay = 0;
  std::vector<std::string> sets;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_path = v;
    else if (a == "--data") data = v;
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
  auto private_metrics = [&](Model& m) { return evaluate(m, ws, fer.private_test, 256); };
  Model b = base;
  const Metrics before = private_metrics(b);
  std::printf("base %s: PrivateTest %.2f%%; recall", model_path.c_str(), 100 * before.accuracy());
  for (int c = 0; c < kNumClasses; ++c) std::printf(" %s %.1f", kNames[c], 100 * before.per_class(c).recall);
  std::printf("\n%d draws of %d PublicTest faces per taught class (a fifth held back)\n\n", draws, n);

  const std::vector<Scenario> scenarios = {
      {"happy", {3}}, {"neutral", {6}}, {"sad", {4}}, {"happy+sad", {3, 4}}, {"angry+neutral", {0, 6}},
      {"all 7", {0, 1, 2, 3, 4, 5, 6}}};
  std::printf("%-34s %-14s %9s %9s %15s %9s %9s\n", "setting", "taught", "dPrivate", "worst", "worst untaught",
              "held<", "held>");
  for (const std::string& set : sets) {
    const nlohmann::json over = parse_set(set);
    for (const Scenario& sc : scenarios) {
      double d_acc = 0, worst_acc = 1e9, worst_recall = 1e9, held_b = 0, held_a = 0;
      int worst_class = -1;
      for (int draw = 0; draw < draws; ++draw) {
        Dataset samples;
        for (int c : sc.taught) {
          const std::vector<size_t> idx = faces_of(fer.public_test, c);
          for (int i = 0; i < n; ++i)
            samples.add(fer.public_test.image(idx[(static_cast<size_t>(draw) * n + i) % idx.size()]), c);
        }
        nlohmann::json j = over;
        j["seed"] = draw + 1;
        FineTune ft(base, samples, FinetuneConfig::from_json(j), &bank);
        ft.run();
        held_b += ft.held_before() / draws;
        held_a += ft.held_now() / draws;
        const Metrics after = private_metrics(ft.model());
        const double d = 100 * (after.accuracy() - before.accuracy());
        d_acc += d / draws;
        worst_acc = std::min(worst_acc, d);
        for (int c = 0; c < kNumClasses; ++c) {
          if (std::find(sc.taught.begin(), sc.taught.end(), c) != sc.taught.end()) continue;
          const double r = 100 * (after.per_class(c).recall - before.per_class(c).recall);
          if (r < worst_recall) worst_recall = r, worst_class = c;
        }
      }
      char wr[48] = "-";
      if (worst_class >= 0) std::snprintf(wr, sizeof wr, "%+.1f %s", worst_recall, kNames[worst_class]);
      std::printf("%-34s %-14s %+9.2f %+9.2f %15s %8.1f%% %8.1f%%\n", set.empty() ? "(defaults)" : set.c_str(),
                  sc.name.c_str(), d_acc, worst_acc, wr, 100 * held_b, 100 * held_a);
      std::fflush(stdout);
    }
  }
  return 0;
}
