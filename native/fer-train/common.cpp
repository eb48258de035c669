// The helpers more than one fer-train command uses (declared, with what they do, in common.h).
#include "common.h"

#include <chrono>
#include <cstdio>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "files.h"
#include "plot.h"

namespace ferkit::cli {

namespace {
// Reads and decodes path, or says on stderr why it cannot (and returns false).
template <class Image>
bool read_image_as(const std::string& path, Image& img, Image (*decode)(const uint8_t*, size_t)) {
  try {
    std::vector<uint8_t> bytes = read_file(path);
    img = decode(bytes.data(), bytes.size());
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
    return false;
  }
}
}  // namespace

bool read_image(const std::string& path, GrayImage& img) { return read_image_as(path, img, decode_image); }
bool read_image(const std::string& path, RgbImage& img) { return read_image_as(path, img, decode_image_rgb); }

void add_model_option(CLI::App* c, std::string& path, const char* help) {
  c->add_option("--model", path, help)->required();
}

void add_strict_flag(CLI::App* c, bool& strict) {
  c->add_flag("--strict", strict, "fail on the first malformed row or image");
}

void add_threads_option(CLI::App* c, int& threads) {
  c->add_option("--threads", threads, "threads (default: all cores)");
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void set_threads(int threads) {
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

Model load_model_file(const std::string& path, json* meta, std::vector<Blob>* blobs) {
  std::vector<uint8_t> bytes = read_file(path);
  try {
    return load_model(bytes.data(), bytes.size(), meta, blobs);
  } catch (const ModelFormatError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

Pipeline open_pipeline_files(const std::string& model_path, const std::string& detector_path) {
  Model model = load_model_file(model_path), detector = load_model_file(detector_path);
  try {
    return Pipeline(std::move(model), std::move(detector));
  } catch (const std::invalid_argument& e) {  // says which model does not fit
    throw std::runtime_error(model_path + ", " + detector_path + ": " + e.what());
  }
}

std::vector<Model> load_classifiers(const std::vector<std::string>& paths, const char* role, json* first_meta) {
  std::vector<Model> models;
  for (const std::string& path : paths) {
    models.push_back(load_model_file(path, models.empty() ? first_meta : nullptr));
    if (models.back().num_classes() != kNumClasses)
      throw std::runtime_error(path + ": the " + role + " has " + std::to_string(models.back().num_classes()) +
                               " classes, expected " + std::to_string(kNumClasses));
  }
  return models;
}

std::vector<Model*> pointers(std::vector<Model>& models) {
  std::vector<Model*> p;
  for (Model& m : models) p.push_back(&m);
  return p;
}

void print_load_report(const LoadReport& r) {
  std::fprintf(stderr, "%s", r.summary().c_str());
}

FerSplits load_data(const std::string& data_path, bool strict) {
  LoadReport report;
  FerSplits splits = load_dataset(data_path, strict, &report);
  print_load_report(report);
  return splits;
}

Dataset limit(const Dataset& d, size_t n) {
  if (n == 0 || n >= d.size()) return d;
  Dataset out;
  out.pixels.assign(d.pixels.begin(), d.pixels.begin() + n * kPixels);
  out.labels.assign(d.labels.begin(), d.labels.begin() + n);
  if (!d.soft.empty()) out.soft.assign(d.soft.begin(), d.soft.begin() + n * kNumClasses);
  return out;
}

void recalibrate(Model& model, const Dataset& train, json& meta) {
  const double t = now();
  Workspace ws;
  recalibrate_batchnorm(model, ws, train, 256);
  meta["bn_recalibrated"] = {{"images", train.size()}};
  std::fprintf(stderr, "batch norm recalibrated on %zu training images (%.0f s)\n", train.size(), now() - t);
}

json metrics_json(const Metrics& m, const std::vector<std::string>& names) {
  json per = json::object();
  for (int c = 0; c < m.classes; ++c) {
    ClassMetrics cm = m.per_class(c);
    per[names[c]] = {{"precision", cm.precision}, {"recall", cm.recall}, {"f1", cm.f1}, {"support", cm.support}};
  }
  json j = {{"images", m.total()}, {"accuracy", m.accuracy()}, {"macro_f1", m.macro_f1()},
            {"loss", m.loss},       {"per_class", per},         {"confusion", m.confusion}};
  if (m.confidences()) {
    j["ece"] = m.ece();
    json bins = json::array();
    for (size_t b = 0; b < m.reliability.size(); ++b) {
      const ReliabilityBin& r = m.reliability[b];
      bins.push_back({{"from", static_cast<double>(b) / m.reliability.size()},
                      {"to", static_cast<double>(b + 1) / m.reliability.size()},
                      {"count", r.count},
                      {"confidence", r.count ? r.confidence / r.count : 0.0},
                      {"accuracy", r.count ? r.correct / r.count : 0.0}});
    }
    j["reliability"] = bins;
  }
  return j;
}

void write_eval_outputs(const std::string& dir, const std::string& title, const Metrics& m,
                        const std::vector<std::string>& names, const json& extra) {
  make_dirs(dir);
  json j = metrics_json(m, names);
  j.update(extra);
  write_file_atomic(dir + "/metrics.json", j.dump(2) + "\n");
  write_file_atomic(dir + "/confusion.csv", m.confusion_csv(names));
  write_file_atomic(dir + "/report.txt", title + "\n" + m.report(names));
  write_confusion_png(dir + "/confusion.png", title, m.confusion, names);
  if (m.confidences()) {
    char ece[64];
    std::snprintf(ece, sizeof ece, " - ECE %.4f", m.ece());
    write_reliability_png(dir + "/reliability.png", title + ece, m.reliability);
  }
}

void write_curves(const std::string& path, const std::vector<EpochRecord>& h) {
  if (h.empty()) return;
  Series tl{"train", {}}, vl{"validation", {}}, ta{"train", {}}, va{"validation", {}};
  for (const auto& r : h) {
    tl.y.push_back(r.train_loss);
    vl.y.push_back(r.val_loss);
    ta.y.push_back(r.train_acc);
    va.y.push_back(r.val_acc);
  }
  write_line_plots_png(path, {LinePlot{"loss", "epoch", "cross-entropy", {tl, vl}},
                              LinePlot{"accuracy", "epoch", "accuracy", {ta, va}}});
}

}  // namespace ferkit::cli
