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
  std::string data_path, split = "private", out, ferplus;
  bool tta = false, ten_crop = false, strict = false;
  int threads = 0;
};

// Several models: an ensemble, the mean of their probabilities (each flip-averaged with --tta).
int cmd_eval(const std::vector<std::string>& model_paths, const std::string& data_path, const std::string& split,
             const std::string& out, const std::string& ferplus, bool tta, bool ten_crop, bool strict, int threads) {
  if (tta && ten_crop) throw std::runtime_error("--tta and --ten-crop are two kinds of averaging: give one");
  set_threads(threads);
  json meta;
  std::vector<Model> models = load_classifiers(model_paths, "model", &meta);
  const FerSplits splits = load_data(data_path, strict);
  const Dataset& data = split == "train" ? splits.train : split == "public" ? splits.public_test : splits.private_test;
  if (!data.size()) throw std::runtime_error(data_path + ": the '" + split + "' split is empty");
  const double t0 = now();
  Metrics m = evaluate_ensemble(pointers(models), data, 256, tta, nullptr, ten_crop);
  const double dt = now() - t0;
  const std::string who = models.size() == 1 ? meta.value("name", std::string("model"))
                                             : "ensemble of " + std::to_string(models.size()) + " models";
  const std::string title = who + " on " + split + (tta ? " (flip TTA)" : ten_crop ? " (ten-crop TTA)" : "");
  std::printf("%s\n%s", title.c_str(), m.report(models[0].class_names).c_str());
  std::printf("%.0f images/s\n", data.size() / dt);
  json extra = {{"split", split}, {"model", models.size() == 1 ? json(model_paths[0]) : json(model_paths)},
                {"tta", tta}, {"ten_crop", ten_crop}, {"data", data_path}};
  if (!ferplus.empty()) {
    // A second view of the same faces: the FER+ annotators' majority vote as the label (row-aligned with a
    // fer2013.csv --data; faces whose vote ties or falls outside the 7 classes are left out).
    const Usage usage = split == "train" ? Usage::Training : split == "public" ? Usage::PublicTest : Usage::PrivateTest;
    const Dataset relabelled = data.relabelled_by_votes(load_ferplus_votes(ferplus, usage, data.size()));
    const Metrics f = evaluate_ensemble(pointers(models), relabelled, 256, tta, nullptr, ten_crop);
    std::printf("\n%s, FER+ majority labels (%zu of %zu faces; %zu tied or outside the 7 classes, left out)\n%s",
                title.c_str(), relabelled.size(), data.size(), data.size() - relabelled.size(),
                f.report(models[0].class_names).c_str());
    extra["ferplus"] = metrics_json(f, models[0].class_names);
    extra["ferplus"]["left_out"] = data.size() - relabelled.size();
  }
  if (!out.empty()) {
    write_eval_outputs(out, title, m, models[0].class_names, extra);
    std::fprintf(stderr, "wrote %s/{metrics.json,confusion.csv,confusion.png,reliability.png,report.txt}\n", out.c_str());
  }
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, Context& ctx) {
  auto [eval, a] = add_command<EvalArgs>(
      app, ctx, "eval", "accuracy, per-class precision/recall/F1, macro-F1, confusion matrix", [](const EvalArgs& a) {
        return cmd_eval(a.eval_models, a.data_path, a.split, a.out, a.ferplus, a.tta, a.ten_crop, a.strict, a.threads);
      });
  eval->add_option("--model", a->eval_models, "model file; several: an ensemble (the mean of their probabilities)")
      ->required()->expected(1, 64);
  eval->add_option("--data", a->data_path, "fer2013.csv(.gz) or image folder layout")->required();
  eval->add_option("--split", a->split, "private (PrivateTest / test), public (PublicTest / val) or train")
      ->capture_default_str()->check(CLI::IsMember({"private", "public", "train"}));
  eval->add_option("--out", a->out, "write metrics.json, confusion.csv, confusion.png, reliability.png, report.txt here");
  eval->add_flag("--tta", a->tta, "average with the mirrored image");
  eval->add_flag("--ten-crop", a->ten_crop,
                 "average ten views: the five 44x44 crops (centre, corners) zoomed back to 48x48, and their mirrors");
  eval->add_option("--ferplus", a->ferplus, "also score against the FER+ relabelling's majority vote (fer2013new.csv, "
                   "row-aligned with a fer2013.csv --data); in metrics.json as 'ferplus'");
  add_strict_flag(eval, a->strict);
  add_threads_option(eval, a->threads);
}

}  // namespace ferkit::cli
