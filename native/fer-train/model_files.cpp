// fer-train's commands that read model files and write, or print, one: export (a checkpoint's model, or a model
// with other weight storage or metadata), recalibrate (batch norm's statistics from the training images), average
// (a model soup), replay-bank (fine-tuning's stored reference features) and info.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "common.h"
#include "files.h"
#include "finetune.h"
#include "onnx.h"

namespace ferkit::cli {
namespace {

struct ExportArgs {
  std::string ckpt_path, out, onnx, meta_path;
  bool last = false, fp16 = false, int8 = false, no_gate = false;
};

// The options of 'recalibrate' and 'average', a copy each: 'recalibrate' reads its --model into model_path,
// 'average' its --models into model_paths.
struct ModelFileArgs {
  std::string model_path, data_path, out;
  std::vector<std::string> model_paths;
  size_t limit_images = 0;
  bool strict = false;
  int threads = 0;
};

// A model file from a checkpoint (its best validation epoch's weights unless --last), e.g. to try a run
// before it ends; or a copy of a model file. Optionally with half-precision or int8 weights and extra metadata (a
// JSON object file whose keys are added to, or replace, the model's metadata: e.g. its evaluation for the card).
int cmd_export(const std::string& ckpt_path, const std::string& out, const std::string& onnx, bool last,
               WeightStorage storage, const std::string& meta_path, bool no_gate) {
  if (out.empty() && onnx.empty()) throw std::runtime_error("export: give --out (a model file), --onnx, or both");
  std::vector<uint8_t> bytes = read_file(ckpt_path);
  json meta;
  std::vector<Blob> blobs;
  Model model;
  try {
    model = load_model(bytes.data(), bytes.size(), &meta, &blobs);
  } catch (const ModelFormatError& e) {
    throw std::runtime_error(ckpt_path + ": " + e.what());
  }
  if (no_gate && model.gate.active()) {
    std::fprintf(stderr, "dropped the teach gate: the taught change now applies to every face\n");
    model.gate = TeachGate{};
  }
  const char* which = meta.contains("checkpoint") ? "last" : "the model's";
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
  if (!onnx.empty()) {
    json onnx_meta = meta;
    onnx_meta["weights"] = "f32";
    const std::vector<uint8_t> b = export_onnx(model, onnx_meta);
    write_file_atomic(onnx, b.data(), b.size());
    std::fprintf(stderr, "wrote %s (%s weights, ONNX opset 13, float32, %zu bytes)\n", onnx.c_str(), which, b.size());
  }
  if (out.empty()) return 0;
  const bool f16 = storage == WeightStorage::F16, i8 = storage == WeightStorage::I8;
  meta["weights"] = i8 ? "i8" : f16 ? "f16" : "f32";
  std::vector<uint8_t> out_bytes = save_model(model, meta, {}, storage);
  write_file_atomic(out, out_bytes.data(), out_bytes.size());
  std::fprintf(stderr, "wrote %s (%s weights, %s, %zu bytes)\n", out.c_str(), which,
               i8 ? "int8 with per-channel scales" : f16 ? "float16" : "float32", out_bytes.size());
  return 0;
}

// How 'recalibrate' starts: threads, the model and its metadata, the data.
struct ModelAndData {
  Model model;
  json meta;
  FerSplits splits;
};

ModelAndData open_model_and_data(const std::string& model_path, const std::string& data_path, bool strict,
                                 int threads) {
  set_threads(threads);
  ModelAndData md;
  md.model = load_model_file(model_path, &md.meta);
  md.splits = load_data(data_path, strict);
  return md;
}

// 'recalibrate' and 'average': batch norm's statistics from the (first limit_images) training images of data_path.
void recalibrate_on_training_images(Model& model, const FerSplits& splits, const std::string& data_path,
                                    size_t limit_images, json& meta) {
  const Dataset train = limit(splits.train, limit_images);
  if (!train.size()) throw std::runtime_error(data_path + ": no training images (Usage 'Training' or train/)");
  recalibrate(model, train, meta);
  meta["bn_recalibrated"]["data"] = data_path;
}

// Writes a model whose weights changed after its evaluation: float32, the stale evaluation and calibration figures
// and teach gate dropped (atomic). The temperature stays, as a starting point: say so when there is one.
void write_changed_model(Model& model, json& meta, const std::string& out) {
  if (model.gate.active()) {
    std::fprintf(stderr, "dropped the teach gate: its keys came from the weights before (teach again)\n");
    model.gate = TeachGate{};
  }
  meta.erase("eval");
  meta.erase("eval_tta");
  meta.erase("calibration");
  if (model.temperature != 1.0f)
    std::fprintf(stderr, "the temperature %g was fitted for the weights before: run 'fer-train calibrate' again\n",
                 model.temperature);
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

// The model with a replay bank (core/finetune.h): the head's input features of the first `per_class` Training
// faces of each expression, in file order, which fine-tuning (the page's and `finetune`'s) then replays toward the
// model's own answers so that teaching does not make it forget what the samples do not show. The weights are
// written with the storage they had (an int8 model stays int8), other blobs are kept, and a bank already there is
// replaced.
int cmd_replay_bank(const std::string& model_path, const std::string& data_path, int per_class,
                    const std::string& out, bool strict, int threads) {
  set_threads(threads);
  json meta;
  std::vector<Blob> blobs;
  Model model = load_model_file(model_path, &meta, &blobs);
  const FerSplits splits = load_data(data_path, strict);
  const Dataset faces = splits.train.first_per_class(static_cast<size_t>(per_class));
  const std::vector<size_t> taken = faces.class_counts();
  for (int c = 0; c < kNumClasses; ++c)
    if (taken[c] < static_cast<size_t>(per_class))
      throw std::runtime_error(data_path + ": only " + std::to_string(taken[c]) + " Training faces of " +
                               kClassNames[c] + ", expected at least --per-class " + std::to_string(per_class));
  const ReplayBank bank = make_replay_bank(model, faces);
  blobs.erase(std::remove_if(blobs.begin(), blobs.end(), [](const Blob& b) { return b.name == "replay"; }),
              blobs.end());
  add_replay_bank(bank, meta, blobs);
  const std::string w = meta.value("weights", "f32");
  const WeightStorage storage = w == "i8" ? WeightStorage::I8 : w == "f16" ? WeightStorage::F16 : WeightStorage::F32;
  const std::vector<uint8_t> bytes = save_model(model, meta, blobs, storage);
  write_file_atomic(out, bytes.data(), bytes.size());
  std::fprintf(stderr,
               "wrote %s: %zu reference faces' features (layer %d, %zu values each, %zu KB as float16), %zu bytes\n",
               out.c_str(), bank.count(), bank.layer, bank.size, bank.features.size() * 2 / 1024, bytes.size());
  return 0;
}

// Temperature scaling: the temperature that minimizes the cross-entropy on PublicTest (the split that chooses; the
// model's accuracy does not change), stored in the model, with the calibration error on both test splits before
// and after in its metadata. Weights keep their storage, blobs are kept.
int cmd_calibrate(const std::string& model_path, const std::string& data_path, const std::string& out, bool strict,
                  int threads) {
  set_threads(threads);
  json meta;
  std::vector<Blob> blobs;
  Model model = load_model_file(model_path, &meta, &blobs);
  const FerSplits splits = load_data(data_path, strict);
  if (!splits.public_test.size())
    throw std::runtime_error(data_path + ": no PublicTest (or val/) images to fit the temperature on");
  Workspace ws;
  const float before_t = model.temperature;
  const std::pair<const char*, const Dataset*> evals[] = {{"public", &splits.public_test},
                                                          {"private", &splits.private_test}};
  json report = json::object();
  for (const auto& [split, data] : evals) {
    if (!data->size()) continue;
    const Metrics m = evaluate(model, ws, *data, 256);
    report[split] = {{"ece_before", m.ece()}, {"loss_before", m.loss}, {"accuracy", m.accuracy()}};
  }
  model.temperature = fit_temperature(model, ws, splits.public_test, 256);
  for (const auto& [split, data] : evals) {
    if (!data->size()) continue;
    const Metrics m = evaluate(model, ws, *data, 256);
    report[split]["ece_after"] = m.ece();
    report[split]["loss_after"] = m.loss;
    std::printf("%-8s temperature %.4f -> %.4f: calibration error (ECE, %d bins) %.4f -> %.4f, loss %.4f -> %.4f, "
                "accuracy %.2f%% (unchanged)\n",
                split, before_t, model.temperature, kReliabilityBins, report[split]["ece_before"].get<double>(),
                m.ece(), report[split]["loss_before"].get<double>(), m.loss, 100 * m.accuracy());
  }
  meta["calibration"] = {{"temperature", model.temperature}, {"fitted_on", "PublicTest"}, {"bins", kReliabilityBins},
                         {"splits", report}};
  const std::string w = meta.value("weights", "f32");
  const WeightStorage storage = w == "i8" ? WeightStorage::I8 : w == "f16" ? WeightStorage::F16 : WeightStorage::F32;
  const std::vector<uint8_t> bytes = save_model(model, meta, blobs, storage);
  write_file_atomic(out, bytes.data(), bytes.size());
  std::fprintf(stderr, "wrote %s (temperature %.4f, fitted on %zu PublicTest images)\n", out.c_str(),
               model.temperature, splits.public_test.size());
  return 0;
}

int cmd_info(const std::string& model_path) {
  json meta;
  Model model = load_model_file(model_path, &meta);
  std::printf("%s\n%s", model_path.c_str(), model.summary().c_str());
  std::printf("classes: ");
  for (const auto& c : model.class_names) std::printf("%s ", c.c_str());
  std::printf("\n");
  if (model.temperature != 1.0f) std::printf("temperature: %g (calibrated probabilities)\n", model.temperature);
  if (model.gate.active())
    std::printf("teach gate: from layer %d, tau %g, %zu taught samples\n", model.gate.layer, model.gate.tau,
                gate_samples(model));
  std::printf("architecture:\n%s", format_spec(model.spec).c_str());
  if (meta.contains("checkpoint")) meta["checkpoint"].erase("history");
  std::printf("metadata:\n%s\n", meta.dump(2).c_str());
  return 0;
}

}  // namespace

void add_export_command(CLI::App& app, Context& ctx) {
  auto [exp, a] = add_command<ExportArgs>(
      app, ctx, "export", "write a model file from a training checkpoint (or a model file)", [](const ExportArgs& a) {
        const WeightStorage storage = a.int8 ? WeightStorage::I8 : a.fp16 ? WeightStorage::F16 : WeightStorage::F32;
        return cmd_export(a.ckpt_path, a.out, a.onnx, a.last, storage, a.meta_path, a.no_gate);
      });
  exp->add_option("--checkpoint", a->ckpt_path, "checkpoint.ferkit, or a model file to convert")->required();
  exp->add_option("--out", a->out, "model file to write");
  exp->add_option("--onnx", a->onnx,
                  "ONNX file to write (opset 13, float32): input 'pixels' N x C x H x W grey values 0-255, output "
                  "'probabilities'; see docs/onnx.md");
  exp->add_flag("--last", a->last, "the last epoch's weights instead of the best validation epoch's");
  auto* fp16_flag = exp->add_flag("--fp16", a->fp16, "store the weights as IEEE half precision (half the size)");
  exp->add_flag("--int8", a->int8,
                "store convolution and dense weights as int8 with a float32 scale per output channel (about a "
                "quarter of the size)")
      ->excludes(fp16_flag);
  exp->add_option("--meta", a->meta_path, "JSON object file: keys added to the model's metadata");
  exp->add_flag("--no-gate", a->no_gate, "a taught model: drop its teach gate (the taught change then applies to "
                                         "every face; ONNX needs it)");
}

namespace {
struct ImportArgs {
  std::string onnx, out, classes;
  float scale = 1.0f, mean = 0.0f, std = 1.0f;
  bool fp16 = false, int8 = false;
};

int cmd_import(const ImportArgs& a) {
  OnnxImportOptions opt;
  opt.scale = a.scale, opt.mean = a.mean, opt.std = a.std;
  for (size_t start = 0; !a.classes.empty() && start <= a.classes.size();) {
    const size_t comma = std::min(a.classes.find(',', start), a.classes.size());
    opt.class_names.push_back(a.classes.substr(start, comma - start));
    start = comma + 1;
  }
  const std::vector<uint8_t> bytes = read_file(a.onnx);
  OnnxImport r = import_onnx(bytes.data(), bytes.size(), opt, a.onnx);
  const WeightStorage storage = a.int8 ? WeightStorage::I8 : a.fp16 ? WeightStorage::F16 : WeightStorage::F32;
  r.metadata["weights"] = a.int8 ? "i8" : a.fp16 ? "f16" : "f32";
  r.metadata["onnx_import"]["file"] = a.onnx;
  const std::vector<uint8_t> out = save_model(r.model, r.metadata, {}, storage);
  write_file_atomic(a.out, out.data(), out.size());
  std::printf("%s", r.model.summary().c_str());
  std::fprintf(stderr, "wrote %s from %s (%zu layers, %zu parameters, %zu bytes)\n", a.out.c_str(), a.onnx.c_str(),
               r.model.layers.size(), r.model.num_params(), out.size());
  return 0;
}
}  // namespace

void add_import_command(CLI::App& app, Context& ctx) {
  auto [imp, a] = add_command<ImportArgs>(app, ctx, "import", "read an ONNX graph into a model file (docs/onnx.md)",
                                          cmd_import);
  imp->add_option("onnx", a->onnx, "ONNX file")->required();
  imp->add_option("--out", a->out, "model file to write")->required();
  imp->add_option("--classes", a->classes,
                  "class names, comma-separated (default: the graph's ferkit.classes, else FER-2013's for 7 outputs)");
  imp->add_option("--input-scale", a->scale,
                  "what the graph's input expects, as (grey value * scale - mean) / std (default: the grey values "
                  "0-255 themselves; the graph's own leading scalar steps are added)");
  imp->add_option("--input-mean", a->mean, "see --input-scale");
  imp->add_option("--input-std", a->std, "see --input-scale");
  auto* fp16_flag = imp->add_flag("--fp16", a->fp16, "store the weights as IEEE half precision");
  imp->add_flag("--int8", a->int8, "store convolution and dense weights as int8")->excludes(fp16_flag);
}

namespace {
// 'recalibrate' and 'average' write a float32 model after recalibrating on (the first --limit) training images.
void add_recalibration_outputs(CLI::App* c, ModelFileArgs& a, const char* limit_help) {
  c->add_option("--out", a.out, "model file to write (float32)")->required();
  c->add_option("--limit", a.limit_images, limit_help);
  add_strict_flag(c, a.strict);
  add_threads_option(c, a.threads);
}
}  // namespace

void add_recalibrate_command(CLI::App& app, Context& ctx) {
  auto [recal, a] = add_command<ModelFileArgs>(
      app, ctx, "recalibrate",
      "set a model's batch-norm statistics to the exact ones of the training images as they are (no augmentation)",
      [](const ModelFileArgs& a) {
        return cmd_recalibrate(a.model_path, a.data_path, a.out, a.limit_images, a.strict, a.threads);
      });
  add_model_option(recal, a->model_path);
  recal->add_option("--data", a->data_path, "fer2013.csv(.gz) (its Training rows) or a folder with train/")
      ->required();
  add_recalibration_outputs(recal, *a, "use only the first N training images");
}

void add_average_command(CLI::App& app, Context& ctx) {
  auto [avg, a] = add_command<ModelFileArgs>(
      app, ctx, "average",
      "average the weights of models of one architecture (a model soup), then recalibrate batch norm on the "
      "training images",
      [](const ModelFileArgs& a) {
        return cmd_average(a.model_paths, a.data_path, a.out, a.limit_images, a.strict, a.threads);
      });
  avg->add_option("--models", a->model_paths, "two or more model files")->required()->expected(2, 64);
  avg->add_option("--data", a->data_path, "fer2013.csv(.gz) (its Training rows) or a folder with train/ (needed "
                                          "when the models have batch norm)");
  add_recalibration_outputs(avg, *a, "recalibrate on only the first N training images");
}

struct ReplayBankArgs {
  std::string model_path, data_path, out;
  int per_class = 10;
  bool strict = false;
  int threads = 0;
};

void add_replay_bank_command(CLI::App& app, Context& ctx) {
  auto [rb, a] = add_command<ReplayBankArgs>(
      app, ctx, "replay-bank",
      "store with a model the head's input features of a few Training faces per expression, which fine-tuning "
      "replays so that teaching does not forget",
      [](const ReplayBankArgs& a) {
        return cmd_replay_bank(a.model_path, a.data_path, a.per_class, a.out, a.strict, a.threads);
      });
  add_model_option(rb, a->model_path);
  rb->add_option("--data", a->data_path, "fer2013.csv(.gz) (its Training rows) or a folder with train/")->required();
  rb->add_option("--per-class", a->per_class, "Training faces per expression")->capture_default_str()
      ->check(CLI::Range(1, 1000));
  rb->add_option("--out", a->out, "model file to write")->required();
  add_strict_flag(rb, a->strict);
  add_threads_option(rb, a->threads);
}

void add_calibrate_command(CLI::App& app, Context& ctx) {
  auto [cal, a] = add_command<ModelFileArgs>(
      app, ctx, "calibrate",
      "temperature scaling: fit the temperature that makes the probabilities honest on PublicTest and store it in "
      "the model (accuracy unchanged)",
      [](const ModelFileArgs& a) { return cmd_calibrate(a.model_path, a.data_path, a.out, a.strict, a.threads); });
  add_model_option(cal, a->model_path);
  cal->add_option("--data", a->data_path, "fer2013.csv(.gz) (fitted on PublicTest, reported on both) or a folder "
                                          "with val/ [test/]")->required();
  cal->add_option("--out", a->out, "model file to write (the weights keep their storage)")->required();
  add_strict_flag(cal, a->strict);
  add_threads_option(cal, a->threads);
}

void add_info_command(CLI::App& app, Context& ctx) {
  auto [info, model_path] = add_command<std::string>(app, ctx, "info", "print a model's architecture and metadata",
                                                     [](const std::string& path) { return cmd_info(path); });
  add_model_option(info, *model_path);
}

}  // namespace ferkit::cli
