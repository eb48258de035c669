// fer-train's shared pieces: the helpers more than one command uses (threads, loading models and data sets,
// batch-norm recalibration, evaluation outputs, training curves) and how a command joins the CLI. Each command's
// file has an add_<name>_command that adds its subcommand to the app with its own options, whose storage lives
// as long as the app, and a callback that runs the command and leaves its exit status in Context::exit_code.
#pragma once
#include <CLI/CLI.hpp>
#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "dataio.h"
#include "image.h"
#include "metrics.h"
#include "pipeline.h"
#include "model_io.h"
#include "train.h"

namespace ferkit::cli {

using json = nlohmann::json;

// What main() gives every command, and what the command hands back.
struct Context {
  std::string command_line;  // argv joined by spaces: recorded in a trained model's metadata
  int exit_code = 0;         // set by the command that ran
};

// One per command, registered by main() in this order (the order of `fer-train --help`).
void add_train_command(CLI::App& app, Context& ctx);
void add_eval_command(CLI::App& app, Context& ctx);
void add_predict_command(CLI::App& app, Context& ctx);
void add_detect_command(CLI::App& app, Context& ctx);
void add_export_command(CLI::App& app, Context& ctx);
void add_import_command(CLI::App& app, Context& ctx);
void add_calibrate_command(CLI::App& app, Context& ctx);
void add_recalibrate_command(CLI::App& app, Context& ctx);
void add_average_command(CLI::App& app, Context& ctx);
void add_info_command(CLI::App& app, Context& ctx);
void add_replay_bank_command(CLI::App& app, Context& ctx);
void add_plot_command(CLI::App& app, Context& ctx);
void add_finetune_command(CLI::App& app, Context& ctx);
void add_explain_command(CLI::App& app, Context& ctx);

// Adds the subcommand `name`: its options fill an Args that lives as long as the app (the returned pointer, to
// bind options to), and its callback runs run(args), an int(const Args&), keeping the exit status in ctx.
template <class Args, class Run>
std::pair<CLI::App*, Args*> add_command(CLI::App& app, Context& ctx, const char* name, const char* about, Run run) {
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(name, about);
  sub->callback([args, run, &ctx] { ctx.exit_code = run(*args); });
  return {sub, args.get()};
}

// Options several commands have, with the same words everywhere.
void add_model_option(CLI::App* c, std::string& path, const char* help = "model file");  // --model, required
void add_strict_flag(CLI::App* c, bool& strict);                                          // --strict
void add_threads_option(CLI::App* c, int& threads);                                       // --threads

// Seconds on a steady clock.
double now();
// OpenMP threads: set (0: leave the default, all cores) and read back.
void set_threads(int threads);
int thread_count();

Model load_model_file(const std::string& path, json* meta = nullptr, std::vector<Blob>* blobs = nullptr);
// The live pipeline from a classifier's and a face detector's model files (errors name them).
Pipeline open_pipeline_files(const std::string& model_path, const std::string& detector_path);
// Loads models that classify FER-2013's seven expressions (role: what the error calls them, "teacher" or "model").
std::vector<Model> load_classifiers(const std::vector<std::string>& paths, const char* role,
                                    json* first_meta = nullptr);
std::vector<Model*> pointers(std::vector<Model>& models);

// Reads and decodes an image file into img; on failure prints "path: why" and returns false (the commands that
// run on image files go on past an unreadable one, and exit 1 at the end).
bool read_image(const std::string& path, GrayImage& img);
bool read_image(const std::string& path, RgbImage& img);  // in colour (the face detector's input)

void print_load_report(const LoadReport& r);
// The data set of a command that runs saved models, its load report printed.
FerSplits load_data(const std::string& data_path, bool strict);
// The first n images of d (all of them when n is 0 or not less than their number).
Dataset limit(const Dataset& d, size_t n);

// --recalibrate-bn and 'recalibrate': batch norm's statistics from the training images, noted in the metadata.
void recalibrate(Model& model, const Dataset& train, json& meta);

json metrics_json(const Metrics& m, const std::vector<std::string>& names);
// Writes metrics.json, confusion.csv, confusion.png and report.txt into dir.
void write_eval_outputs(const std::string& dir, const std::string& title, const Metrics& m,
                        const std::vector<std::string>& names, const json& extra);
// Loss and accuracy curves of a training history as a PNG (nothing for an empty history).
void write_curves(const std::string& path, const std::vector<EpochRecord>& h);

}  // namespace ferkit::cli
