// The public header's few functions of its own (ferkit.h); the rest of its API is the pipeline's.
#include "ferkit.h"

#include <utility>

#ifndef FERKIT_VERSION
#error "FERKIT_VERSION is defined by CMakeLists.txt from the project's version"
#endif

namespace ferkit {

const char* version() { return FERKIT_VERSION; }

std::unique_ptr<Pipeline> open_pipeline(const std::vector<uint8_t>& model_file,
                                        const std::vector<uint8_t>& detector_file) {
  Model model = load_model(model_file.data(), model_file.size());
  Model detector = load_model(detector_file.data(), detector_file.size());
  return std::make_unique<Pipeline>(std::move(model), std::move(detector));
}

}  // namespace ferkit
