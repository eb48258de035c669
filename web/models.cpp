// PageModels (models.h): which model file the page runs, and what the panel says about it.
#include "models.h"

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

bool PageModels::use(ferkit::Pipeline& pipe, const uint8_t* bytes, size_t size, const std::string& origin, Kind kind) {
  try {
    if (bytes != incoming_.data() || size != incoming_.size())  // not already there (incoming_buffer)
      incoming_.assign(bytes, bytes + size);                    // keeps its capacity from the last call
    nlohmann::json meta;
    ferkit::load_model(incoming_.data(), incoming_.size(), staging_, &meta);
    pipe.set_model(staging_);  // same architecture: copied into the pipeline's buffers
    name = meta.value("name", origin);
    replay_faces = meta.contains("replay_faces") && meta["replay_faces"].is_number_unsigned()
                       ? meta["replay_faces"].get<int>()
                       : 0;
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
      base_is_default = incoming_ == default_file;
      base = incoming_;
    }
    tuned = kind == Kind::Tuned;
    current.assign(incoming_.begin(), incoming_.end());  // both keep the capacity of the largest file so far
    error.clear();
    ++generation;
    return true;
  } catch (const std::exception& e) {
    error = origin + ": " + e.what() + " (the current model is kept)";
    return false;
  }
}
