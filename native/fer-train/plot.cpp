// fer-train plot: the loss and accuracy curves of a history.json that train wrote, drawn again as a PNG.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "common.h"
#include "files.h"

namespace ferkit::cli {
namespace {

struct PlotArgs {
  std::string history_path, out;
};

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

void add_plot_command(CLI::App& app, Context& ctx) {
  auto [plot, a] = add_command<PlotArgs>(app, ctx, "plot", "draw loss and accuracy curves from a history.json",
                                         [](const PlotArgs& a) { return cmd_plot(a.history_path, a.out); });
  plot->add_option("--history", a->history_path, "history.json written by train")->required();
  plot->add_option("--out", a->out, "PNG file")->required();
}

}  // namespace ferkit::cli
