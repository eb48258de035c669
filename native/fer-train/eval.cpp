// fer-train eval: a model's (or an ensemble's) accuracy, per-class precision/recall/F1, macro-F1 and confusion
// matrix on one split of a data set, optionally written as files.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "common.h"

namespace ferkit::cli {
namespace {

struct EvalArgs {
  std::vector<std::string> eval_models;
  std::string data_path, split = "private", out;
  bool tta = false, strict = false;
  int threads = 0;
};

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

}  // namespace

void add_eval_command(CLI::App& app, Context& ctx) {
  auto [eval, a] = add_command<EvalArgs>(
      app, ctx, "eval", "accuracy, per-class precision/recall/F1, macro-F1, confusion matrix", [](const EvalArgs& a) {
        return cmd_eval(a.eval_models, a.data_path, a.split, a.out, a.tta, a.strict, a.threads);
      });
  eval->add_option("--model", a->eval_models, "model file; several: an ensemble (the mean of their probabilities)")
      ->required()->expected(1, 64);
  eval->add_option("--data", a->data_path, "fer2013.csv(.gz) or image folder layout")->required();
  eval->add_option("--split", a->split, "private (PrivateTest / test), public (PublicTest / val) or train")
      ->capture_default_str()->check(CLI::IsMember({"private", "public", "train"}));
  eval->add_option("--out", a->out, "write metrics.json, confusion.csv, confusion.png, report.txt here");
  eval->add_flag("--tta", a->tta, "average with the mirrored image");
  add_strict_flag(eval, a->strict);
  add_threads_option(eval, a->threads);
}

}  // namespace ferkit::cli
