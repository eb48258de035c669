// PageModels (models.h): which model file the page runs, and what the panel says about it.
#include "models.h"

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

bool PageModels::use(ferkit::Pipeline& pipe, std::vector<uint8_t> bytes, const std::string& origin, Kind kind) {
  try {
    nlohmann::json meta;
    ferkit::Model m = ferkit::load_model(bytes.data(), bytes.size(), &meta);
    pipe.set_model(std::move(m));
    name = meta.value("name", origin);
    accuracy.clear();
    if (meta.contains("eval") && meta["eval"].contains("private")) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%.2f%% on FER-2013 PrivateTest",
                    meta["eval"]["private"].value("accuracy", 0.0) * 100);
      accuracy = buf;
      if (meta.contains("eval_tta") && meta["eval_tta"].contains("private")) {  // what both views give
        std::snprintf(buf, sizeof buf, "\n%.2f%% with both views (mirrored frames)",
                      meta["eval_tta"]["private"].value("accuracy", 0.0) * 100);
        accuracy += buf;
      }
    }
    if (meta.contains("finetune") && meta["finetune"].is_object()) {
      const auto& f = meta["finetune"];
      name += ", fine-tuned on " + std::to_string(f.value("train_samples", 0) + f.value("held_samples", 0)) +
              " samples";
    }
    if (kind == Kind::Base) {
      base_is_default = bytes == default_file;
      base = bytes;
    }
    tuned = kind == Kind::Tuned;
    current = std::move(bytes);
    error.clear();
    ++generation;
    return true;
  } catch (const std::exception& e) {
    error = origin + ": " + e.what() + " (the current model is kept)";
    return false;
  }
}
