// fer-train train: options, progress bar, --init, and the training loop with its checkpoints, history, curves
// and final evaluation. SIGINT and SIGTERM stop it between batches with a checkpoint saved (exit status 130), so
// --resume continues where it was.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <sstream>

#include "common.h"
#include "ferkit.h"
#include "files.h"
#include "mpi_collective.h"

namespace ferkit::cli {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

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

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
  return s;
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

struct TrainArgs {
  std::string data, arch = "seed", out = "runs/train", class_weights = "none", optimizer = "adam",
              schedule = "constant", name, ferplus, soft_targets, init;
  std::vector<std::string> teachers;
  int epochs = 50, batch = 64, threads = 0, patience = 0, step_size = 10, warmup = 0, plateau_patience = 3;
  float lr = 1e-3f, momentum = 0.9f, weight_decay = 0.0f, gamma = 0.1f, min_lr = 0.0f, plateau_factor = 0.5f,
        label_smoothing = 0.0f, ema = 0.0f, init_noise = 0.01f, ferplus_weight = 0.5f, soft_targets_weight = 0.5f,
        teacher_weight = 0.5f, cutmix = 0.0f, mixup = 0.0f, mixup_alpha = 0.2f;
  uint64_t seed = 1;
  bool bf16 = false;
  bool augment = true, nesterov = false, resume = false, strict = false, no_restore_best = false, tta = false,
       recalibrate_bn = false, distributed = false;
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
  c->add_flag("--bf16", a.bf16, "train the convolutions with bf16 dot products (oneDNN; float32 weights, gradients "
                                "and outputs; about 1.5x faster on CPUs with AVX512_BF16)");
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
  c->add_option("--mixup", a.mixup, "mixup probability: an image is blended with another training image, lambda ~ "
                "Beta(alpha, alpha), its target mixed alike (0: off)")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--mixup-alpha", a.mixup_alpha, "mixup's Beta parameter alpha")
      ->capture_default_str()->check(CLI::PositiveNumber);
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
  c->add_flag("--distributed", a.distributed, "data-parallel training under mpirun: every process reads --data "
              "and runs its share of each batch of --batch images; the gradients are summed across processes, batch "
              "norm's statistics are the whole batch's, and process 0 writes the outputs (see docs/distributed.md)");
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
      std::string widened, deepened;
      try {
        widened = widen(src, model, seed, noise);
      } catch (const std::runtime_error& wide) {
        try {
          deepened = deepen(src, model);
        } catch (const std::runtime_error& deep) {
          throw std::runtime_error(mismatch + " (" + wide.what() + "; " + deep.what() + ")");
        }
        std::fprintf(stderr, "deepened %s into the architecture (the same function: each new block's last batch "
                     "norm starts at zero):\n%s", path.c_str(), deepened.c_str());
        return;
      }
      std::fprintf(stderr, "widened %s into the architecture (the same function; copies' noise %g):\n%s",
                   path.c_str(), noise, widened.c_str());
      return;
    }
  }
  model.params = src.params;
  std::fprintf(stderr, "initialized from %s (%zu parameters)\n", path.c_str(), model.params.size());
}

int cmd_train(const TrainArgs& a, const std::string& command_line) {
  // --distributed: the processes mpirun started; only process 0 prints and writes files.
  std::unique_ptr<Collective> world = a.distributed ? mpi_start() : nullptr;
  Collective* across = world && world->size() > 1 ? world.get() : nullptr;
  const bool writer = !across || across->rank() == 0;
  if (across) mpi_quiet_other_ranks();
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

  if (a.bf16 && !train_convolutions_in_bf16(true))
    throw std::runtime_error("--bf16: this build has no oneDNN (install libdnnl-dev and rebuild)");
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
  if (a.mixup > 0.0f && !a.augment) throw std::runtime_error("--mixup is augmentation: it cannot be used with --no-augment");
  cfg.mixup = a.mixup;
  cfg.mixup_alpha = a.mixup_alpha;

  if (writer) {
    make_dirs(a.out);
    if (const int n = remove_stale_temporaries(a.out))
      std::fprintf(stderr, "removed %d unfinished temporary file(s) in %s (from a run that was killed)\n", n,
                   a.out.c_str());
  }
  const std::string ckpt_path = a.out + "/checkpoint.ferkit";
  Trainer trainer(model, train, val, cfg, nullptr, nullptr, across);
  if (a.resume) {
    // Process 0 reads the checkpoint and sends it to the others (their machines need not see its folder).
    std::vector<uint8_t> bytes;
    if (writer) {
      if (!file_exists(ckpt_path)) throw std::runtime_error(ckpt_path + ": no checkpoint to resume from");
      bytes = read_file(ckpt_path);
    }
    if (across) across->broadcast(bytes);
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
                   {"processes", across ? across->size() : 1},
                   {"ferkit_version", ferkit::version()}};
  auto save_checkpoint = [&] {
    if (!writer) return;
    std::vector<uint8_t> bytes = trainer.save_checkpoint(run_meta);
    write_file_atomic(ckpt_path, bytes.data(), bytes.size());
  };

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  ProgressBar bar;
  if (across)
    std::fprintf(stderr, "training on %zu images, validating on %zu, %d processes of %d threads, each running %d "
                 "or %d images of each batch of %d\n", train.size(), val ? val->size() : 0, across->size(),
                 thread_count(), cfg.batch / across->size(), (cfg.batch + across->size() - 1) / across->size(),
                 cfg.batch);
  else
    std::fprintf(stderr, "training on %zu images, validating on %zu, %d threads\n", train.size(),
                 val ? val->size() : 0, thread_count());
  // A signal stops every process at the same batch: each asks the others before each step.
  auto stop_requested = [&] {
    double stop = g_stop ? 1.0 : 0.0;
    if (across) across->sum(&stop, 1);
    return stop > 0.0;
  };
  while (!trainer.finished()) {
    if (!trainer.in_epoch()) trainer.begin_epoch();
    while (true) {
      if (stop_requested()) {
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
    if (!writer) continue;
    save_checkpoint();
    write_file_atomic(a.out + "/history.csv", history_to_csv(trainer.history));
    write_file_atomic(a.out + "/history.json", history_to_json(trainer.history).dump(2) + "\n");
    write_curves(a.out + "/curves.png", trainer.history);
  }
  if (!writer) return 0;  // process 0 evaluates and saves the model (every process holds the same weights)
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
  meta["convolutions"] = a.bf16 ? "bf16" : "float32";
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

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto [train, a] = add_command<TrainArgs>(
      app, ctx, "train", "train a model; writes model, checkpoint, history, plots, evaluation",
      [&ctx](const TrainArgs& a) { return cmd_train(a, ctx.command_line); });
  add_train_options(train, *a);
}

}  // namespace ferkit::cli
