// fer-train finetune: a model fine-tuned on a folder of labelled face crops (core's FineTune, as the web page's
// "teach it your face" does), with its held-back accuracy before and after.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <utility>

#include "common.h"
#include "files.h"
#include "finetune.h"

namespace ferkit::cli {
namespace {

struct FinetuneArgs {
  FinetuneConfig fc;
  std::string model_path, samples_dir, out;
  bool no_augment = false;
  bool no_keep_priors = false;
  int threads = 0;
};

// Fine-tunes a model on a folder of labelled face crops (the page's "teach it your face", natively).
int cmd_finetune(const std::string& model_path, const std::string& samples_dir, const std::string& out,
                 const FinetuneConfig& cfg, int threads) {
  set_threads(threads);
  json meta;
  std::vector<Blob> blobs;
  Model base = load_model_file(model_path, &meta, &blobs);
  const ReplayBank bank = read_replay_bank(base, meta, blobs);
  LoadReport report;
  Dataset samples = load_image_folder(samples_dir, true, &report);
  print_load_report(report);
  const double t0 = now();
  FineTune ft(std::move(base), samples, cfg, &bank);
  std::fprintf(stderr, "fine-tuning %s on %zu samples (%zu held back), %s, %d epochs, lr %g, anchor %g, replaying %zu faces\n",
               model_path.c_str(), ft.train_count() + ft.held_count(), ft.held_count(),
               cfg.whole_network ? "whole network" : "head only", cfg.epochs, cfg.effective_lr(), cfg.anchor,
               ft.replay_count());
  if (ft.held_before() >= 0) std::fprintf(stderr, "held-back accuracy before: %.1f%%\n", 100 * ft.held_before());
  size_t reported = 0;
  while (ft.step()) {
    if (ft.history().size() == reported) continue;
    const EpochRecord& r = ft.history().back();
    reported = ft.history().size();
    std::fprintf(stderr, "epoch %d/%d  loss %.4f  acc %.3f  held acc %.3f\n", r.epoch, cfg.epochs, r.train_loss,
                 r.train_acc, r.val_acc);
  }
  json m;
  const std::vector<uint8_t> bytes = ft.save(meta, &m);
  write_file_atomic(out, bytes.data(), bytes.size());
  if (ft.held_before() >= 0)
    std::fprintf(stderr, "held-back accuracy after: %.1f%%\n", 100 * m["finetune"]["held_accuracy_after"].get<double>());
  if (ft.replay_count())
    std::fprintf(stderr, "the base model's class kept on %.1f%% of the %zu replayed faces\n",
                 100 * m["finetune"]["replay_agreement_after"].get<double>(), ft.replay_count());
  if (ft.model().gate.active())
    std::fprintf(stderr, "teach gate: tau %g over %zu taught samples (faces unlike them get less of the change)\n", ft.model().gate.tau,
                 gate_samples(ft.model()));
  std::fprintf(stderr, "wrote %s (%.2f s)\n", out.c_str(), now() - t0);
  return 0;
}

}  // namespace

void add_finetune_command(CLI::App& app, Context& ctx) {
  auto [fine, a] = add_command<FinetuneArgs>(app, ctx, "finetune",
                                             "fine-tune a model on a folder of labelled face crops "
                                             "(DIR/<class>/*.png|jpg|bmp), as the web page does",
                                             [](const FinetuneArgs& a) {
                                               FinetuneConfig fc = a.fc;
                                               fc.augment = !a.no_augment;
                                               fc.keep_priors = !a.no_keep_priors;
                                               return cmd_finetune(a.model_path, a.samples_dir, a.out, fc, a.threads);
                                             });
  FinetuneConfig& fc = a->fc;
  add_model_option(fine, a->model_path, "base model file");
  fine->add_option("--samples", a->samples_dir, "folder of class sub-folders (angry, disgust, ..., neutral)")
      ->required();
  fine->add_option("--out", a->out, "model file to write")->required();
  fine->add_flag("--whole", fc.whole_network, "train the whole network (default: the dense head only)");
  fine->add_option("--head-layers", fc.head_layers, "head only: dense layers that train, counted from the output "
                                                     "(0: all of them)")->capture_default_str()->check(CLI::Range(0, 100));
  fine->add_option("--views", fc.views, "head only: cached views per sample (the sample and views-1 augmented "
                                         "copies; 0: run the frozen layers at every step)")
      ->capture_default_str()->check(CLI::Range(0, 64));
  fine->add_option("--epochs", fc.epochs, "epochs")->capture_default_str()->check(CLI::Range(1, 1000));
  fine->add_option("--lr", fc.lr, "learning rate (default: 0.002 head only, 0.0002 whole network)")
      ->check(CLI::Range(0.0, 1.0));
  fine->add_option("--blend", fc.blend, "after training, the share of the trained change the weights keep (1: "
                                        "all of it; less forgets less and learns the samples less)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  fine->add_option("--anchor", fc.anchor, "L2-SP strength toward the base weights (0: off)")->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  fine->add_option("--batch", fc.batch, "batch size")->capture_default_str()->check(CLI::Range(1, 1024));
  fine->add_option("--holdout", fc.holdout, "fraction of each class held back to measure accuracy")
      ->capture_default_str()->check(CLI::Range(0.0, 0.9));
  fine->add_option("--gate", fc.gate, "head only: the teach gate's width TAU; the change applies to a face in "
                                      "proportion to exp((s - 1) / TAU), s its similarity to the nearest taught "
                                      "sample (0: everywhere, no gate)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  fine->add_flag("--no-augment", a->no_augment, "no flips, shifts, rotations or brightness changes");
  fine->add_option("--replay", fc.replay, "head only: reference faces of the base model's replay bank trained on "
                                          "per epoch, toward its own answers (0: off)")
      ->capture_default_str()->check(CLI::Range(0, 5000));
  fine->add_flag("--no-keep-priors", a->no_keep_priors,
                 "with replay: leave the last layer's biases as trained (default: shifted so that the replay bank's "
                 "mean probabilities stay the base model's)");
  fine->add_option("--seed", fc.seed, "random seed")->capture_default_str();
  add_threads_option(fine, a->threads);
}

}  // namespace ferkit::cli
