// fer-train: the native trainer, evaluator and predictor. Files, terminals and signals live here; the math is
// in core/. Run `fer-train --help` or `fer-train <command> --help`.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dataio.h"
#include "files.h"
#include "finetune.h"
#include "image.h"
#include "model_io.h"
#include "pipeline.h"
#include "plot.h"
#include "train.h"

using namespace ferkit;
using nlohmann::json;

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string fmt_time(double s) {
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

std::string iso_date() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void set_threads(int threads) {
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
  return s;
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

Model load_model_file(const std::string& path, json* meta = nullptr) {
  std::vector<uint8_t> bytes = read_file(path);
  try {
    return load_model(bytes.data(), bytes.size(), meta);
  } catch (const ModelFormatError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

// Loads models that classify FER-2013's seven expressions (role: what the error calls them, "teacher" or "model").
std::vector<Model> load_classifiers(const std::vector<std::string>& paths, const char* role,
                                    json* first_meta = nullptr) {
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

// Reads an architecture: a built-in name or a spec file.
Spec read_arch(const std::string& arch) {
  if (!builtin_spec(arch).empty()) return resolve_spec(arch);
  if (!file_exists(arch)) return resolve_spec(arch);  // error lists the built-ins
  try {
    return parse_spec(read_text_file(arch));
  } catch (const std::exception& e) {
    throw std::runtime_error(arch + ": " + e.what());
  }
}

std::vector<float> parse_class_weights(const std::string& s, const Dataset& train) {
  if (s == "none" || s.empty()) return {};
  if (s == "balanced") return balanced_class_weights(train, kNumClasses);
  if (s == "sqrt") return sqrt_balanced_class_weights(train, kNumClasses);
  std::vector<float> w;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const float v = std::strtof(item.c_str(), &end);
    if (item.empty() || *end || !(v >= 0.0f) || !std::isfinite(v))
      throw std::runtime_error("--class-weights: expected a non-negative number, got '" + item + "'");
    w.push_back(v);
  }
  if (w.size() != kNumClasses)
    throw std::runtime_error("--class-weights: expected none, balanced, sqrt or 7 comma-separated numbers, got " +
                             std::to_string(w.size()) + " numbers");
  return w;
}

void print_load_report(const LoadReport& r) {
  std::fprintf(stderr, "%s", r.summary().c_str());
}

Dataset limit(const Dataset& d, size_t n) {
  if (n == 0 || n >= d.size()) return d;
  Dataset out;
  out.pixels.assign(d.pixels.begin(), d.pixels.begin() + n * kPixels);
  out.labels.assign(d.labels.begin(), d.labels.begin() + n);
  if (!d.soft.empty()) out.soft.assign(d.soft.begin(), d.soft.begin() + n * kNumClasses);
  return out;
}

json metrics_json(const Metrics& m, const std::vector<std::string>& names) {
  json per = json::object();
  for (int c = 0; c < m.classes; ++c) {
    ClassMetrics cm = m.per_class(c);
    per[names[c]] = {{"precision", cm.precision}, {"recall", cm.recall}, {"f1", cm.f1}, {"support", cm.support}};
  }
  return {{"images", m.total()},      {"accuracy", m.accuracy()}, {"macro_f1", m.macro_f1()},
          {"loss", m.loss},           {"per_class", per},         {"confusion", m.confusion}};
}

// Writes metrics.json, confusion.csv, confusion.png and report.txt into dir.
void write_eval_outputs(const std::string& dir, const std::string& title, const Metrics& m,
                        const std::vector<std::string>& names, const json& extra) {
  make_dirs(dir);
  json j = metrics_json(m, names);
  j.update(extra);
  write_file_atomic(dir + "/metrics.json", j.dump(2) + "\n");
  write_file_atomic(dir + "/confusion.csv", m.confusion_csv(names));
  write_file_atomic(dir + "/report.txt", title + "\n" + m.report(names));
  write_confusion_png(dir + "/confusion.png", title, m.confusion, names);
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

// ---------------------------------------------------------------------------------------------------------------
struct TrainArgs {
  std::string data, arch = "seed", out = "runs/train", class_weights = "none", optimizer = "adam",
              schedule = "constant", name, ferplus, soft_targets, init;
  std::vector<std::string> teachers;
  int epochs = 50, batch = 64, threads = 0, patience = 0, step_size = 10, warmup = 0, plateau_patience = 3;
  float lr = 1e-3f, momentum = 0.9f, weight_decay = 0.0f, gamma = 0.1f, min_lr = 0.0f, plateau_factor = 0.5f,
        label_smoothing = 0.0f, ema = 0.0f, init_noise = 0.01f, ferplus_weight = 0.5f, soft_targets_weight = 0.5f,
        teacher_weight = 0.5f, cutmix = 0.0f;
  uint64_t seed = 1;
  bool augment = true, nesterov = false, resume = false, strict = false, no_restore_best = false, tta = false,
       recalibrate_bn = false;
  size_t limit = 0, recalibrate_each_epoch = 0;
  Augment aug;
};

void add_train_options(CLI::App* c, TrainArgs& a) {
  c->add_option("--data", a.data, "fer2013.csv(.gz) or a folder with train/ [val/] [test/] class sub-folders")
      ->required();
  c->add_option("--arch", a.arch, "architecture: a built-in (seed, vgg-s, vgg-xs-f, vgg-xs-fw, vgg-xs-fw2, tiny) or a spec file")
      ->capture_default_str();
  c->add_option("--out", a.out, "output folder: model, checkpoint, history, plots, evaluation")
      ->capture_default_str();
  c->add_option("--name", a.name, "model name stored in its metadata (default: the architecture)");
  c->add_option("--epochs", a.epochs, "maximum epochs")->capture_default_str()->check(CLI::Range(1, 100000));
  c->add_option("--batch", a.batch, "batch size")->capture_default_str()->check(CLI::Range(1, 4096));
  c->add_option("--lr", a.lr, "learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--optimizer", a.optimizer, "adam (decoupled weight decay) or sgd")
      ->capture_default_str()->check(CLI::IsMember({"adam", "adamw", "sgd"}));
  c->add_option("--momentum", a.momentum, "SGD momentum")->capture_default_str();
  c->add_flag("--nesterov", a.nesterov, "SGD with Nesterov momentum");
  c->add_option("--weight-decay", a.weight_decay, "weight decay (weights only)")->capture_default_str();
  c->add_option("--schedule", a.schedule, "learning-rate schedule: constant, step, cosine, plateau")
      ->capture_default_str()->check(CLI::IsMember({"constant", "step", "cosine", "plateau"}));
  c->add_option("--step-size", a.step_size, "step schedule: epochs between decays")->capture_default_str();
  c->add_option("--gamma", a.gamma, "step schedule: decay factor")->capture_default_str();
  c->add_option("--warmup", a.warmup, "step/cosine: linear warm-up epochs")->capture_default_str();
  c->add_option("--min-lr", a.min_lr, "cosine/plateau: lowest learning rate")->capture_default_str();
  c->add_option("--plateau-patience", a.plateau_patience, "plateau: epochs without val-loss improvement")
      ->capture_default_str();
  c->add_option("--plateau-factor", a.plateau_factor, "plateau: decay factor")->capture_default_str();
  c->add_option("--seed", a.seed, "random seed (initialization, shuffling, augmentation, dropout)")
      ->capture_default_str();
  c->add_option("--threads", a.threads, "threads (default: all cores)");
  c->add_flag("!--no-augment", a.augment, "disable augmentation");
  c->add_flag("--flip,!--no-flip", a.aug.flip, "random horizontal flip")->capture_default_str();
  c->add_option("--shift", a.aug.shift, "max shift, fraction of the side")->capture_default_str();
  c->add_option("--rotate", a.aug.rotate_deg, "max rotation, degrees")->capture_default_str();
  c->add_option("--scale", a.aug.scale, "max zoom, fraction")->capture_default_str();
  c->add_option("--brightness", a.aug.brightness, "max brightness change, fraction")->capture_default_str();
  c->add_option("--contrast", a.aug.contrast, "max contrast change, fraction")->capture_default_str();
  c->add_option("--erase", a.aug.erase, "random-erasing probability")->capture_default_str();
  c->add_option("--cutmix", a.cutmix, "CutMix probability: an image gets a patch of another training image, its "
                "target mixed by the patch's area (0: off)")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--class-weights", a.class_weights,
                "none, balanced (1/count), sqrt (1/sqrt(count)), or 7 comma-separated weights")
      ->capture_default_str();
  c->add_option("--label-smoothing", a.label_smoothing, "label smoothing")->capture_default_str();
  c->add_option("--ferplus", a.ferplus, "FER+ votes (fer2013new.csv, row-aligned with a fer2013.csv --data) as soft targets");
  c->add_option("--ferplus-weight", a.ferplus_weight, "share of the FER+ votes in the target (the rest: the label)")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--soft-targets", a.soft_targets, "CSV of per-image class probabilities (header angry,...,neutral; one "
                "row per Training row of a fer2013.csv --data), e.g. from scripts/teacher_gpu.py, as soft targets");
  c->add_option("--soft-targets-weight", a.soft_targets_weight, "share of --soft-targets in the target")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--teacher", a.teachers, "model file(s) whose flip-averaged predictions on the training images (the "
                "mean over the files: an ensemble) become soft targets (knowledge distillation)")
      ->expected(1, 64);
  c->add_option("--teacher-weight", a.teacher_weight, "share of the teacher's predictions in the target")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--patience", a.patience, "early stopping: epochs without validation-accuracy gain (0: off)")
      ->capture_default_str();
  c->add_flag("--no-restore-best", a.no_restore_best, "keep the last epoch's weights, not the best");
  c->add_option("--ema", a.ema, "exponential moving average of the weights, decay per step (e.g. 0.999; 0: off): "
                "validation, the best epoch and the saved model use the average")
      ->capture_default_str()->check(CLI::Range(0.0f, 0.99999f));
  c->add_option("--init", a.init, "start from this model's weights (same layers and shapes; dropout rates may "
                "differ) with a fresh optimizer and schedule: a warm restart or a recipe change. A model with the "
                "same layers but fewer units is widened into --arch (Net2WiderNet: the same predictions to start)");
  c->add_option("--init-noise", a.init_noise, "--init into a wider architecture: noise on the copied units' "
                "incoming weights, in standard deviations of the layer's weights")->capture_default_str();
  c->add_flag("--resume", a.resume, "continue from <out>/checkpoint.ferkit (same options)");
  c->add_flag("--strict", a.strict, "fail on the first malformed row or image instead of skipping it");
  c->add_option("--limit", a.limit, "use only the first N training images (smoke runs)");
  c->add_flag("--tta", a.tta, "final evaluation: average with the mirrored image");
  c->add_flag("--recalibrate-bn", a.recalibrate_bn, "at the end, set batch norm's statistics to the exact ones of the "
              "training images as they are (no augmentation) before saving and evaluating (see 'recalibrate')");
  c->add_option("--recalibrate-bn-each-epoch", a.recalibrate_each_epoch, "judge each epoch with batch norm "
                "recalibrated on the first N training images (0: off), so the best epoch is chosen and kept as it "
                "will ship; training goes on with its running statistics (with --recalibrate-bn, the end then uses "
                "all images)")->capture_default_str();
}

struct ProgressBar {
  bool tty = isatty(STDERR_FILENO);
  double last = 0;
  void draw(const Progress& p, bool force = false) {
    if (!tty) return;
    const double t = now();
    if (!force && t - last < 0.1) return;
    last = t;
    const int width = 24;
    const int filled = p.total ? static_cast<int>(width * p.done / p.total) : 0;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %zu/%zu loss %.4f acc %.4f %.0f img/s ETA %s", p.epoch, p.epochs,
                 bar.c_str(), p.done, p.total, p.loss, p.acc, p.images_per_sec, fmt_time(p.eta_seconds).c_str());
    std::fflush(stderr);
  }
  void clear() {
    if (tty) std::fprintf(stderr, "\r\033[K");
  }
};

// --init: copy a trained model's parameters (and batch-norm statistics) into a freshly planned model. The
// parameter tensors must match one for one; layers without parameters (dropout rates) may differ. Or, where the
// architecture has the same layers with more units, widen the model into it (core's widen: the same function).
void init_from(Model& model, const std::string& path, uint64_t seed, float noise) {
  Model src = load_model_file(path);
  auto dims = [](const Shape& s) {
    return std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c);
  };
  if (!(src.input_shape() == model.input_shape()))
    throw std::runtime_error(path + ": --init model's input is " + dims(src.input_shape()) +
                             ", the architecture expects " + dims(model.input_shape()));
  const auto& a = src.tensors;
  const auto& b = model.tensors;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i >= a.size() || i >= b.size() || a[i].name != b[i].name || a[i].size != b[i].size) {
      const std::string mismatch =
          path + ": --init model does not match --arch at parameter tensor " + std::to_string(i) + ": it has " +
          (i < a.size() ? a[i].name + " (" + std::to_string(a[i].size) + " values)" : std::string("none")) +
          ", the architecture expects " +
          (i < b.size() ? b[i].name + " (" + std::to_string(b[i].size) + " values)" : std::string("none"));
      std::string widened;
      try {
        widened = widen(src, model, seed, noise);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(mismatch + " (" + e.what() + ")");
      }
      std::fprintf(stderr, "widened %s into the architecture (the same function; copies' noise %g):\n%s",
                   path.c_str(), noise, widened.c_str());
      return;
    }
  }
  model.params = src.params;
  std::fprintf(stderr, "initialized from %s (%zu parameters)\n", path.c_str(), model.params.size());
}

// --recalibrate-bn and 'recalibrate': batch norm's statistics from the training images, noted in the metadata.
void recalibrate(Model& model, const Dataset& train, json& meta) {
  const double t = now();
  Workspace ws;
  recalibrate_batchnorm(model, ws, train, 256);
  meta["bn_recalibrated"] = {{"images", train.size()}};
  std::fprintf(stderr, "batch norm recalibrated on %zu training images (%.0f s)\n", train.size(), now() - t);
}

int cmd_train(const TrainArgs& a, const std::string& command_line) {
  set_threads(a.threads);
  const double t_start = now();
  LoadReport report;
  std::fprintf(stderr, "loading %s\n", a.data.c_str());
  FerSplits splits = load_dataset(a.data, a.strict, &report);
  print_load_report(report);
  auto require_whole_csv = [&](const char* option) {
    if (std::filesystem::is_directory(a.data) || report.skipped)
      throw std::runtime_error(std::string(option) + " needs the whole fer2013.csv as --data (row-aligned; " +
                               std::to_string(report.skipped) + " rows were skipped)");
  };
  if (!a.ferplus.empty()) {
    require_whole_csv("--ferplus");
    blend_soft_targets(splits.train, load_ferplus_training_votes(a.ferplus, splits.train.size()), a.ferplus_weight);
    std::fprintf(stderr, "soft targets: %.2f x FER+ votes (%s) + %.2f x the label\n", a.ferplus_weight,
                 a.ferplus.c_str(), 1.0f - a.ferplus_weight);
  }
  if (!a.soft_targets.empty()) {
    require_whole_csv("--soft-targets");
    blend_soft_targets(splits.train, load_soft_targets(a.soft_targets, splits.train.size()), a.soft_targets_weight);
    std::fprintf(stderr, "soft targets: %.2f x %s + %.2f x the previous target\n", a.soft_targets_weight,
                 a.soft_targets.c_str(), 1.0f - a.soft_targets_weight);
  }
  if (!a.teachers.empty()) {
    std::vector<Model> teachers = load_classifiers(a.teachers, "teacher");
    std::fprintf(stderr, "soft targets: %.2f x the flip-averaged predictions of %s on %zu training images ...\n",
                 a.teacher_weight, join(a.teachers, " + ").c_str(), splits.train.size());
    std::vector<float> probs;
    evaluate_ensemble(pointers(teachers), splits.train, 256, true, &probs);
    blend_soft_targets(splits.train, probs, a.teacher_weight);
  }
  Dataset train = limit(splits.train, a.limit);
  const Dataset* val = splits.public_test.size() ? &splits.public_test : nullptr;
  if (!val) std::fprintf(stderr, "warning: no validation split: early stopping and best-epoch selection are off\n");

  Spec spec = read_arch(a.arch);
  Model model(spec);
  model.init(a.seed);
  if (!a.init.empty()) init_from(model, a.init, a.seed, a.init_noise);
  std::fprintf(stderr, "%s", model.summary().c_str());

  TrainConfig cfg;
  cfg.epochs = a.epochs;
  cfg.batch = a.batch;
  cfg.seed = a.seed;
  cfg.augment = a.augment;
  cfg.aug = a.aug;
  cfg.optim.kind = parse_optim_kind(a.optimizer);
  cfg.optim.lr = a.lr;
  cfg.optim.momentum = a.momentum;
  cfg.optim.nesterov = a.nesterov;
  cfg.optim.weight_decay = a.weight_decay;
  cfg.schedule.kind = parse_schedule_kind(a.schedule);
  cfg.schedule.step_size = a.step_size;
  cfg.schedule.gamma = a.gamma;
  cfg.schedule.warmup_epochs = a.warmup;
  cfg.schedule.min_lr = a.min_lr;
  cfg.schedule.patience = a.plateau_patience;
  cfg.schedule.factor = a.plateau_factor;
  cfg.class_weights = parse_class_weights(a.class_weights, train);
  if (!cfg.class_weights.empty()) {
    std::fprintf(stderr, "class weights:");
    for (int c = 0; c < kNumClasses; ++c) std::fprintf(stderr, " %s %.3f", kClassNames[c], cfg.class_weights[c]);
    std::fprintf(stderr, "\n");
  }
  cfg.label_smoothing = a.label_smoothing;
  cfg.patience = val ? a.patience : 0;
  cfg.restore_best = !a.no_restore_best;
  cfg.ema = a.ema;
  cfg.recalibrate_images = a.recalibrate_each_epoch;
  if (a.cutmix > 0.0f && !a.augment) throw std::runtime_error("--cutmix is augmentation: it cannot be used with --no-augment");
  cfg.cutmix = a.cutmix;

  make_dirs(a.out);
  if (const int n = remove_stale_temporaries(a.out))
    std::fprintf(stderr, "removed %d unfinished temporary file(s) in %s (from a run that was killed)\n", n, a.out.c_str());
  const std::string ckpt_path = a.out + "/checkpoint.ferkit";
  Trainer trainer(model, train, val, cfg);
  if (a.resume) {
    if (!file_exists(ckpt_path)) throw std::runtime_error(ckpt_path + ": no checkpoint to resume from");
    std::vector<uint8_t> bytes = read_file(ckpt_path);
    try {
      trainer.load_checkpoint(bytes.data(), bytes.size());
    } catch (const std::exception& e) {
      throw std::runtime_error(ckpt_path + ": " + e.what());
    }
    std::fprintf(stderr, "resumed from %s: %d epochs done%s\n", ckpt_path.c_str(), trainer.epoch,
                 trainer.in_epoch() ? " (and part of the next)" : "");
  }
  json run_meta = {{"name", a.name.empty() ? a.arch : a.name},
                   {"architecture", a.arch},
                   {"command", command_line},
                   {"data", a.data},
                   {"train_images", train.size()},
                   {"threads", thread_count()},
                   {"ferkit_version", "0.1.0"}};
  auto save_checkpoint = [&] {
    std::vector<uint8_t> bytes = trainer.save_checkpoint(run_meta);
    write_file_atomic(ckpt_path, bytes.data(), bytes.size());
  };

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  ProgressBar bar;
  std::fprintf(stderr, "training on %zu images, validating on %zu, %d threads\n", train.size(),
               val ? val->size() : 0, thread_count());
  while (!trainer.finished()) {
    if (!trainer.in_epoch()) trainer.begin_epoch();
    while (true) {
      if (g_stop) {
        bar.clear();
        save_checkpoint();
        std::fprintf(stderr, "interrupted: checkpoint saved to %s; continue with --resume\n", ckpt_path.c_str());
        return 130;
      }
      if (!trainer.step()) break;
      bar.draw(trainer.progress());
    }
    EpochRecord r = trainer.end_epoch();
    bar.clear();
    std::fprintf(stderr,
                 "epoch %3d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.0f img/s  %.1fs%s\n",
                 r.epoch, cfg.epochs, r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.lr, r.images_per_sec,
                 r.seconds, r.epoch == trainer.best_epoch ? "  *best" : "");
    save_checkpoint();
    write_file_atomic(a.out + "/history.csv", history_to_csv(trainer.history));
    write_file_atomic(a.out + "/history.json", history_to_json(trainer.history).dump(2) + "\n");
    write_curves(a.out + "/curves.png", trainer.history);
  }
  if (trainer.stopped_early)
    std::fprintf(stderr, "early stopping: no validation-accuracy gain for %d epochs (best: epoch %d, %.4f)\n",
                 cfg.patience, trainer.best_epoch, trainer.best_val_acc);
  trainer.restore_best();
  json meta = run_meta;
  if (a.recalibrate_bn) recalibrate(model, train, meta);

  // Final evaluation on both held-out splits with the kept weights.
  double ips = 0, train_seconds = 0;
  for (const auto& r : trainer.history) {
    ips += r.images_per_sec;
    train_seconds += r.seconds;
  }
  meta["epochs_run"] = trainer.epoch;
  meta["best_epoch"] = trainer.best_epoch;
  meta["train_images_per_sec"] = trainer.history.empty() ? 0 : ips / trainer.history.size();
  meta["wall_seconds"] = now() - t_start;  // this process (after --resume: since the resume)
  meta["train_seconds"] = train_seconds;   // every epoch, across resumes
  meta["date"] = iso_date();
  meta["tta"] = a.tta;
  Workspace ws;
  const std::pair<const char*, const Dataset*> evals[] = {{"public", &splits.public_test},
                                                          {"private", &splits.private_test}};
  for (const auto& [split, data] : evals) {
    if (!data->size()) continue;
    Metrics m = evaluate(model, ws, *data, 256, a.tta);
    meta["eval"][split] = metrics_json(m, model.class_names);
    const std::string title = std::string(split == std::string("public") ? "PublicTest" : "PrivateTest") +
                              " - " + (a.name.empty() ? a.arch : a.name);
    write_eval_outputs(a.out + "/eval-" + split, title, m, model.class_names, {{"split", split}});
    std::printf("%s\n%s\n", title.c_str(), m.report(model.class_names).c_str());
  }
  std::vector<uint8_t> bytes = save_model(model, meta);
  write_file_atomic(a.out + "/model.ferkit", bytes.data(), bytes.size());
  std::fprintf(stderr, "model saved to %s/model.ferkit (%s total)\n", a.out.c_str(),
               fmt_time(now() - t_start).c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// How the commands that run a saved model over a data set start: threads, the model and its metadata, the data.
struct ModelAndData {
  Model model;
  json meta;
  FerSplits splits;
};
// The data set of a command that runs saved models, its load report printed.
FerSplits load_data(const std::string& data_path, bool strict) {
  LoadReport report;
  FerSplits splits = load_dataset(data_path, strict, &report);
  print_load_report(report);
  return splits;
}

ModelAndData open_model_and_data(const std::string& model_path, const std::string& data_path, bool strict,
                                 int threads) {
  set_threads(threads);
  ModelAndData md;
  md.model = load_model_file(model_path, &md.meta);
  md.splits = load_data(data_path, strict);
  return md;
}

// Several models: an ensemble, the mean of their probabilities (each flip-averaged with --tta).
int cmd_eval(const std::vector<std::string>& model_paths, const std::string& data_path, const std::string& split,
             const std::string& out, bool tta, bool strict, int threads) {
  set_threads(threads);
  json meta;
  std::vector<Model> models = load_classifiers(model_paths, "model", &meta);
  const FerSplits splits = load_data(data_path, strict);
  const Dataset& data = split == "train" ? splits.train : split == "public" ? splits.public_test : splits.private_test;
  if (!data.size()) throw std::runtime_error(data_path + ": the '" + split + "' split is empty");
  const double t0 = now();
  Metrics m = evaluate_ensemble(pointers(models), data, 256, tta);
  const double dt = now() - t0;
  const std::string who = models.size() == 1 ? meta.value("name", std::string("model"))
                                             : "ensemble of " + std::to_string(models.size()) + " models";
  const std::string title = who + " on " + split + (tta ? " (flip TTA)" : "");
  std::printf("%s\n%s", title.c_str(), m.report(models[0].class_names).c_str());
  std::printf("%.0f images/s\n", data.size() / dt);
  if (!out.empty()) {
    const json model_field = models.size() == 1 ? json(model_paths[0]) : json(model_paths);
    write_eval_outputs(out, title, m, models[0].class_names,
                       {{"split", split}, {"model", model_field}, {"tta", tta}, {"data", data_path}});
    std::fprintf(stderr, "wrote %s/{metrics.json,confusion.csv,confusion.png,report.txt}\n", out.c_str());
  }
  return 0;
}

int cmd_predict(const std::string& model_path, const std::vector<std::string>& images, bool as_json, bool tta) {
  Model model = load_model_file(model_path);
  Workspace ws;
  ws.reserve(model, 1);
  int failures = 0;
  json all = json::array();
  for (const std::string& path : images) {
    uint8_t px[kPixels];
    try {
      std::vector<uint8_t> bytes = read_file(path);
      GrayImage img = decode_image(bytes.data(), bytes.size());
      to_face_pixels(img, px);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
      ++failures;
      continue;
    }
    std::vector<float> p(model.num_classes());
    predict(model, ws, px, 1, p.data(), tta);
    const int best = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
    if (as_json) {
      json probs = json::object();
      for (int c = 0; c < model.num_classes(); ++c) probs[model.class_names[c]] = p[c];
      all.push_back({{"file", path}, {"label", model.class_names[best]}, {"probabilities", probs}});
    } else {
      std::printf("%s: %s (%.3f)", path.c_str(), model.class_names[best].c_str(), p[best]);
      for (int c = 0; c < model.num_classes(); ++c) std::printf("  %s=%.4f", model.class_names[c].c_str(), p[c]);
      std::printf("\n");
    }
  }
  if (as_json) std::printf("%s\n", all.dump(2).c_str());
  return failures ? 1 : 0;
}

// Fine-tunes a model on a folder of labelled face crops (the page's "teach it your face", natively).
int cmd_finetune(const std::string& model_path, const std::string& samples_dir, const std::string& out,
                 const FinetuneConfig& cfg, int threads) {
  set_threads(threads);
  json meta;
  Model base = load_model_file(model_path, &meta);
  LoadReport report;
  Dataset samples = load_image_folder(samples_dir, true, &report);
  print_load_report(report);
  const double t0 = now();
  FineTune ft(std::move(base), samples, cfg);
  std::fprintf(stderr, "fine-tuning %s on %zu samples (%zu held back), %s, %d epochs, lr %g, anchor %g\n",
               model_path.c_str(), ft.train_count() + ft.held_count(), ft.held_count(),
               cfg.whole_network ? "whole network" : "head only", cfg.epochs, cfg.effective_lr(), cfg.anchor);
  if (ft.held_before() >= 0) std::fprintf(stderr, "held-back accuracy before: %.1f%%\n", 100 * ft.held_before());
  size_t reported = 0;
  while (ft.step()) {
    if (ft.history().size() == reported) continue;
    const EpochRecord& r = ft.history().back();
    reported = ft.history().size();
    std::fprintf(stderr, "epoch %d/%d  loss %.4f  acc %.3f  held acc %.3f\n", r.epoch, cfg.epochs, r.train_loss,
                 r.train_acc, r.val_acc);
  }
  const json m = ft.metadata(meta);
  const std::vector<uint8_t> bytes = save_model(ft.model(), m);
  write_file_atomic(out, bytes.data(), bytes.size());
  if (ft.held_before() >= 0)
    std::fprintf(stderr, "held-back accuracy after: %.1f%%\n", 100 * m["finetune"]["held_accuracy_after"].get<double>());
  std::fprintf(stderr, "wrote %s (%.2f s)\n", out.c_str(), now() - t0);
  return 0;
}

// Finds the faces in whole photos and classifies each (the page's pipeline, natively).
int cmd_detect(const std::string& model_path, const std::string& cascade_path, const std::vector<std::string>& images,
               bool as_json, const std::string& crops_dir, int min_size, bool tta) {
  Model model = load_model_file(model_path);
  std::vector<uint8_t> cbytes = read_file(cascade_path);
  Cascade cascade;
  try {
    cascade = load_cascade(cbytes.data(), cbytes.size());
  } catch (const std::exception& e) {
    throw std::runtime_error(cascade_path + ": " + e.what());
  }
  Pipeline pipe(std::move(model), std::move(cascade));
  PipelineOptions opt;
  opt.smooth = false;
  opt.flip_tta = tta;  // as the page classifies a still image
  opt.detect.min_size = min_size;
  if (!crops_dir.empty()) make_dirs(crops_dir);
  int failures = 0;
  json all = json::array();
  for (const std::string& path : images) {
    GrayImage img;
    try {
      std::vector<uint8_t> bytes = read_file(path);
      img = decode_image(bytes.data(), bytes.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
      ++failures;
      continue;
    }
    const auto& faces = pipe.process_gray(img.pixels.data(), img.width, img.height, opt);
    const auto& names = pipe.model().class_names;
    json jfaces = json::array();
    if (!as_json) std::printf("%s: %zu face(s)\n", path.c_str(), faces.size());
    for (size_t i = 0; i < faces.size(); ++i) {
      const FaceResult& f = faces[i];
      json probs = json::object();
      for (int c = 0; c < kNumClasses; ++c) probs[names[c]] = f.probs[c];
      jfaces.push_back({{"box", {f.box.x, f.box.y, f.box.w, f.box.h}}, {"label", names[f.label]}, {"probabilities", probs}});
      if (!as_json) {
        std::printf("  face %zu at %.0f,%.0f %.0fx%.0f: %s (%.3f)", i + 1, f.box.x, f.box.y, f.box.w, f.box.h,
                    names[f.label].c_str(), f.probs[f.label]);
        for (int c = 0; c < kNumClasses; ++c) std::printf("  %s=%.4f", names[c].c_str(), f.probs[c]);
        std::printf("\n");
      }
      if (!crops_dir.empty()) {
        Canvas crop;
        crop.width = kSide;
        crop.height = kSide;
        crop.rgb.resize(kPixels * 3);
        for (int p = 0; p < kPixels; ++p) crop.rgb[3 * p] = crop.rgb[3 * p + 1] = crop.rgb[3 * p + 2] = f.crop[p];
        std::string base = path.substr(path.find_last_of('/') + 1);
        write_png(crops_dir + "/" + base + ".face" + std::to_string(i + 1) + ".png", crop);
      }
    }
    all.push_back({{"file", path}, {"width", img.width}, {"height", img.height}, {"faces", jfaces}});
  }
  if (as_json) std::printf("%s\n", all.dump(2).c_str());
  return failures ? 1 : 0;
}

// A model file from a checkpoint (its best validation epoch's weights unless --last), e.g. to try a run
// before it ends; or a copy of a model file. Optionally with half-precision or int8 weights and extra metadata (a
// JSON object file whose keys are added to, or replace, the model's metadata: e.g. its evaluation for the card).
int cmd_export(const std::string& ckpt_path, const std::string& out, bool last, WeightStorage storage,
               const std::string& meta_path) {
  std::vector<uint8_t> bytes = read_file(ckpt_path);
  json meta;
  std::vector<Blob> blobs;
  Model model;
  try {
    model = load_model(bytes.data(), bytes.size(), &meta, &blobs);
  } catch (const ModelFormatError& e) {
    throw std::runtime_error(ckpt_path + ": " + e.what());
  }
  const char* which = blobs.empty() ? "the model's" : "last";
  if (!last)
    for (Blob& b : blobs)
      if (b.name == "best.params" && b.data.size() == model.params.size()) {
        model.params = b.data;
        which = "best";
      }
  if (meta.contains("checkpoint")) {
    meta["exported_from_epoch"] = last ? meta["checkpoint"].value("epoch", 0) : meta["checkpoint"].value("best_epoch", 0);
    meta.erase("checkpoint");
  }
  if (!meta_path.empty()) {
    const json add = json::parse(read_text_file(meta_path), nullptr, false);
    if (add.is_discarded() || !add.is_object())
      throw std::runtime_error(meta_path + ": expected a JSON object (keys to add to the model's metadata)");
    meta.update(add);
  }
  const bool f16 = storage == WeightStorage::F16, i8 = storage == WeightStorage::I8;
  meta["weights"] = i8 ? "i8" : f16 ? "f16" : "f32";
  std::vector<uint8_t> out_bytes = save_model(model, meta, {}, storage);
  write_file_atomic(out, out_bytes.data(), out_bytes.size());
  std::fprintf(stderr, "wrote %s (%s weights, %s, %zu bytes)\n", out.c_str(), which,
               i8 ? "int8 with per-channel scales" : f16 ? "float16" : "float32", out_bytes.size());
  return 0;
}

// 'recalibrate' and 'average': batch norm's statistics from the (first limit_images) training images of data_path.
void recalibrate_on_training_images(Model& model, const FerSplits& splits, const std::string& data_path,
                                    size_t limit_images, json& meta) {
  const Dataset train = limit(splits.train, limit_images);
  if (!train.size()) throw std::runtime_error(data_path + ": no training images (Usage 'Training' or train/)");
  recalibrate(model, train, meta);
  meta["bn_recalibrated"]["data"] = data_path;
}

// Writes a model whose weights changed after its evaluation: float32, the stale evaluation dropped (atomic).
void write_changed_model(const Model& model, json& meta, const std::string& out) {
  meta.erase("eval");
  meta.erase("eval_tta");
  meta["weights"] = "f32";
  std::vector<uint8_t> bytes = save_model(model, meta);
  write_file_atomic(out, bytes.data(), bytes.size());
}

// A uniform weight average ("model soup") of models of one architecture, e.g. runs fine-tuned from one model;
// batch norm's statistics are then recalibrated on the training images (an average's own statistics are not the
// average of the models'). Written as float32; model 1's metadata, without its evaluation, plus "averaged_from".
int cmd_average(const std::vector<std::string>& model_paths, const std::string& data_path, const std::string& out,
                size_t limit_images, bool strict, int threads) {
  if (model_paths.size() < 2) throw std::runtime_error("average: give at least two --models");
  set_threads(threads);
  std::vector<Model> models;
  json meta;
  for (const std::string& path : model_paths) models.push_back(load_model_file(path, models.empty() ? &meta : nullptr));
  Model soup = average_models(models, model_paths);
  const bool has_bn = std::any_of(soup.layers.begin(), soup.layers.end(),
                                  [](const LayerPlan& p) { return p.spec.kind == LayerKind::BatchNorm; });
  meta["averaged_from"] = model_paths;
  meta.erase("bn_recalibrated");
  if (has_bn) {
    if (data_path.empty())
      throw std::runtime_error("average: the models have batch norm, whose statistics must be recalibrated for the "
                               "average: give --data (the training images)");
    const FerSplits splits = load_data(data_path, strict);
    recalibrate_on_training_images(soup, splits, data_path, limit_images, meta);
  }
  write_changed_model(soup, meta, out);
  std::fprintf(stderr, "wrote %s (the average of %zu models)\n", out.c_str(), models.size());
  return 0;
}

// A model whose batch-norm statistics are the exact ones of the training images (core's recalibrate_batchnorm):
// for a model trained without --recalibrate-bn. Written as float32; its old evaluation is dropped (stale).
int cmd_recalibrate(const std::string& model_path, const std::string& data_path, const std::string& out,
                    size_t limit_images, bool strict, int threads) {
  auto [model, meta, splits] = open_model_and_data(model_path, data_path, strict, threads);
  recalibrate_on_training_images(model, splits, data_path, limit_images, meta);
  write_changed_model(model, meta, out);
  std::fprintf(stderr, "wrote %s\n", out.c_str());
  return 0;
}

int cmd_info(const std::string& model_path) {
  json meta;
  Model model = load_model_file(model_path, &meta);
  std::printf("%s\n%s", model_path.c_str(), model.summary().c_str());
  std::printf("classes: ");
  for (const auto& c : model.class_names) std::printf("%s ", c.c_str());
  std::printf("\narchitecture:\n%s", format_spec(model.spec).c_str());
  if (meta.contains("checkpoint")) meta["checkpoint"].erase("history");
  std::printf("metadata:\n%s\n", meta.dump(2).c_str());
  return 0;
}

int cmd_plot(const std::string& history_path, const std::string& out) {
  json h = json::parse(read_text_file(history_path), nullptr, false);
  if (h.is_discarded()) throw std::runtime_error(history_path + ": not valid JSON");
  std::vector<EpochRecord> history;
  try {
    history = history_from_json(h);
  } catch (const std::exception& e) {
    throw std::runtime_error(history_path + ": not a training history: " + e.what());
  }
  if (history.empty()) throw std::runtime_error(history_path + ": the history has no epochs");
  write_curves(out, history);
  std::fprintf(stderr, "wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferkit trainer: train, evaluate and run facial-expression CNNs (FER-2013 label order)"};
  app.require_subcommand(1);
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  TrainArgs ta;
  CLI::App* train = app.add_subcommand("train", "train a model; writes model, checkpoint, history, plots, evaluation");
  add_train_options(train, ta);

  std::string model_path, data_path, split = "private", out;
  bool tta = false, strict = false, as_json = false;
  int threads = 0;
  std::vector<std::string> images;
  CLI::App* eval = app.add_subcommand("eval", "accuracy, per-class precision/recall/F1, macro-F1, confusion matrix");
  std::vector<std::string> eval_models;
  eval->add_option("--model", eval_models, "model file; several: an ensemble (the mean of their probabilities)")
      ->required()->expected(1, 64);
  eval->add_option("--data", data_path, "fer2013.csv(.gz) or image folder layout")->required();
  eval->add_option("--split", split, "private (PrivateTest / test), public (PublicTest / val) or train")
      ->capture_default_str()->check(CLI::IsMember({"private", "public", "train"}));
  eval->add_option("--out", out, "write metrics.json, confusion.csv, confusion.png, report.txt here");
  eval->add_flag("--tta", tta, "average with the mirrored image");
  eval->add_flag("--strict", strict, "fail on the first malformed row or image");
  eval->add_option("--threads", threads, "threads (default: all cores)");

  CLI::App* pred = app.add_subcommand("predict", "classify image files (face crops; any size, colour or grey)");
  pred->add_option("--model", model_path, "model file")->required();
  pred->add_option("images", images, "image files")->required();
  pred->add_flag("--json", as_json, "print JSON");
  pred->add_flag("--tta", tta, "average with the mirrored image");

  std::string cascade_path = FERKIT_DEFAULT_CASCADE, crops_dir;
  int min_size = 40;
  CLI::App* det = app.add_subcommand("detect", "find the faces in photos and classify each one");
  det->add_option("--model", model_path, "model file")->required();
  det->add_option("--cascade", cascade_path, "face-detector cascade asset")->capture_default_str();
  det->add_option("images", images, "image files")->required();
  det->add_option("--crops", crops_dir, "write each face's 48x48 crop as PNG into this folder");
  det->add_option("--min-size", min_size, "smallest face side searched, pixels")->capture_default_str();
  det->add_flag("--json", as_json, "print JSON");
  det->add_flag("--tta", tta, "average each face with its mirror image (as the page does for a still image)");

  std::string ckpt_path, meta_path;
  bool last = false, fp16 = false, int8 = false;
  CLI::App* exp = app.add_subcommand("export", "write a model file from a training checkpoint (or a model file)");
  exp->add_option("--checkpoint", ckpt_path, "checkpoint.ferkit, or a model file to convert")->required();
  exp->add_option("--out", out, "model file to write")->required();
  exp->add_flag("--last", last, "the last epoch's weights instead of the best validation epoch's");
  auto* fp16_flag = exp->add_flag("--fp16", fp16, "store the weights as IEEE half precision (half the size)");
  exp->add_flag("--int8", int8,
                "store convolution and dense weights as int8 with a float32 scale per output channel (about a "
                "quarter of the size)")
      ->excludes(fp16_flag);
  exp->add_option("--meta", meta_path, "JSON object file: keys added to the model's metadata");

  size_t limit_images = 0;
  CLI::App* recal = app.add_subcommand("recalibrate", "set a model's batch-norm statistics to the exact ones of "
                                                      "the training images as they are (no augmentation)");
  recal->add_option("--model", model_path, "model file")->required();
  recal->add_option("--data", data_path, "fer2013.csv(.gz) (its Training rows) or a folder with train/")->required();
  recal->add_option("--out", out, "model file to write (float32)")->required();
  recal->add_option("--limit", limit_images, "use only the first N training images");
  recal->add_flag("--strict", strict, "fail on the first malformed row or image");
  recal->add_option("--threads", threads, "threads (default: all cores)");

  std::vector<std::string> model_paths;
  CLI::App* avg = app.add_subcommand("average", "average the weights of models of one architecture (a model soup), "
                                                "then recalibrate batch norm on the training images");
  avg->add_option("--models", model_paths, "two or more model files")->required()->expected(2, 64);
  avg->add_option("--data", data_path, "fer2013.csv(.gz) (its Training rows) or a folder with train/ (needed when "
                                       "the models have batch norm)");
  avg->add_option("--out", out, "model file to write (float32)")->required();
  avg->add_option("--limit", limit_images, "recalibrate on only the first N training images");
  avg->add_flag("--strict", strict, "fail on the first malformed row or image");
  avg->add_option("--threads", threads, "threads (default: all cores)");

  CLI::App* info = app.add_subcommand("info", "print a model's architecture and metadata");
  info->add_option("--model", model_path, "model file")->required();

  std::string history_path;
  CLI::App* plot = app.add_subcommand("plot", "draw loss and accuracy curves from a history.json");
  plot->add_option("--history", history_path, "history.json written by train")->required();
  plot->add_option("--out", out, "PNG file")->required();

  FinetuneConfig fc;
  std::string samples_dir;
  bool no_augment = false;
  CLI::App* fine = app.add_subcommand("finetune", "fine-tune a model on a folder of labelled face crops "
                                                  "(DIR/<class>/*.png|jpg|bmp), as the web page does");
  fine->add_option("--model", model_path, "base model file")->required();
  fine->add_option("--samples", samples_dir, "folder of class sub-folders (angry, disgust, ..., neutral)")->required();
  fine->add_option("--out", out, "model file to write")->required();
  fine->add_flag("--whole", fc.whole_network, "train the whole network (default: the dense head only)");
  fine->add_option("--head-layers", fc.head_layers, "head only: dense layers that train, counted from the output "
                                                     "(0: all of them)")->capture_default_str()->check(CLI::Range(0, 100));
  fine->add_option("--views", fc.views, "head only: cached views per sample (the sample and views-1 augmented "
                                         "copies; 0: run the frozen layers at every step)")
      ->capture_default_str()->check(CLI::Range(0, 64));
  fine->add_option("--epochs", fc.epochs, "epochs")->capture_default_str()->check(CLI::Range(1, 1000));
  fine->add_option("--lr", fc.lr, "learning rate (default: 0.002 head only, 0.0002 whole network)")
      ->check(CLI::Range(0.0, 1.0));
  fine->add_option("--anchor", fc.anchor, "L2-SP strength toward the base weights (0: off)")->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  fine->add_option("--batch", fc.batch, "batch size")->capture_default_str()->check(CLI::Range(1, 1024));
  fine->add_option("--holdout", fc.holdout, "fraction of each class held back to measure accuracy")
      ->capture_default_str()->check(CLI::Range(0.0, 0.9));
  fine->add_flag("--no-augment", no_augment, "no flips, shifts, rotations or brightness changes");
  fine->add_option("--seed", fc.seed, "random seed")->capture_default_str();
  fine->add_option("--threads", threads, "threads (default: all cores)");

  CLI11_PARSE(app, argc, argv);
  fc.augment = !no_augment;
  try {
    if (*train) return cmd_train(ta, command_line);
    if (*eval) return cmd_eval(eval_models, data_path, split, out, tta, strict, threads);
    if (*pred) return cmd_predict(model_path, images, as_json, tta);
    if (*info) return cmd_info(model_path);
    if (*recal) return cmd_recalibrate(model_path, data_path, out, limit_images, strict, threads);
    if (*avg) return cmd_average(model_paths, data_path, out, limit_images, strict, threads);
    if (*exp)
      return cmd_export(ckpt_path, out, last,
                        int8 ? WeightStorage::I8 : fp16 ? WeightStorage::F16 : WeightStorage::F32, meta_path);
    if (*det) return cmd_detect(model_path, cascade_path, images, as_json, crops_dir, min_size, tta);
    if (*plot) return cmd_plot(history_path, out);
    if (*fine) return cmd_finetune(model_path, samples_dir, out, fc, threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nfer-train: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
