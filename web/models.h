// The page's models, in one small type that the video loop (main.cpp), the teach panel (teach.cpp) and the
// functions JavaScript calls (exports.cpp) share: the bundled default, the base that fine-tuning starts from (the
// default or a model file the user loaded), and the model in use (the base, or the base fine-tuned), each as
// model-file bytes, with the name and accuracy the panel shows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ferkit.h"

struct PageModels {
  // What bytes handed to use() become: Base (a model file or the default: fine-tuning starts from it) or Tuned (a
  // fine-tuning result: the base stays).
  enum class Kind { Base, Tuned };

  std::vector<uint8_t> default_file;  // the bundled default
  std::vector<uint8_t> base;          // what fine-tuning starts from
  std::vector<uint8_t> current;       // the model in use; what "Download model" saves
  // Kept by use(), so that drawing a frame never compares model files.
  bool tuned = false;           // current is base fine-tuned
  bool base_is_default = true;  // base is default_file
  std::string name = "default";  // from the file's metadata, plus how many samples fine-tuned it
  std::string accuracy;          // its FER-2013 PrivateTest accuracy, when the metadata has it
  int replay_faces = 0;          // reference faces in its replay bank (what keeps fine-tuning from forgetting)
  std::string error;             // why the last use() failed; empty after a success
  int generation = 0;            // counts the models use() put into the pipeline (what depends on one remakes)

  // Loads bytes into pipe (the pipeline runs them from the next frame on). On failure sets `error`, naming
  // origin, and keeps the model in use.
  // The bytes are copied (they may be the caller's, freed after). Loading a model of the architecture in use
  // (a fine-tuning result, again and again) reuses the buffers of the last one: the page's memory stays flat.
  bool use(ferkit::Pipeline& pipe, const uint8_t* bytes, size_t size, const std::string& origin, Kind kind);
  // Back to the bundled default (the base becomes the default too).
  bool reset(ferkit::Pipeline& pipe) {
    return use(pipe, default_file.data(), default_file.size(), "default model", Kind::Base);
  }
  // A buffer for a file to hand to use() next (which then does not copy it): the same memory every time.
  uint8_t* incoming_buffer(size_t size) {
    incoming_.resize(size);
    return incoming_.data();
  }
  // The page uses something other than the default: a loaded model or a fine-tuned one.
  bool changed() const { return tuned || !base_is_default; }

 private:
  // Kept between calls so that their buffers are reused: the file being loaded (copied to `current` on success)
  // and the model decoded from it (copied into the pipeline's).
  std::vector<uint8_t> incoming_;
  ferkit::Model staging_;
};
