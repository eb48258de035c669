// fer-train: the native trainer, evaluator and predictor. Files, terminals and signals live in this folder; the
// math is in core/. Each command's file (train.cpp, eval.cpp, ...) adds its subcommand, options and body to the
// app; the helpers several commands use are in common.h. Run `fer-train --help` or `fer-train <command> --help`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "common.h"
#include "mpi_collective.h"

int main(int argc, char** argv) {
  using namespace ferkit::cli;
  CLI::App app{"ferkit trainer: train, evaluate and run facial-expression CNNs (FER-2013 label order)"};
  app.require_subcommand(1);
  Context ctx;
  for (int i = 0; i < argc; ++i) ctx.command_line += (i ? " " : "") + std::string(argv[i]);

  // The order of `fer-train --help`.
  add_train_command(app, ctx);
  add_eval_command(app, ctx);
  add_predict_command(app, ctx);
  add_detect_command(app, ctx);
  add_export_command(app, ctx);
  add_import_command(app, ctx);
  add_recalibrate_command(app, ctx);
  add_calibrate_command(app, ctx);
  add_average_command(app, ctx);
  add_info_command(app, ctx);
  add_replay_bank_command(app, ctx);
  add_plot_command(app, ctx);
  add_finetune_command(app, ctx);
  add_explain_command(app, ctx);

  // CLI11 runs the chosen command's callback inside parse(), after the options were all read and checked: a
  // usage error is a CLI::ParseError (CLI11's message and exit status); whatever the command throws is its error.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    if (ferkit::mpi_started()) ferkit::mpi_fail(e.what(), 1);  // names the process, ends them all
    std::fprintf(stderr, "\nfer-train: error: %s\n", e.what());
    return 1;
  }
  return ctx.exit_code;
}
