// libFuzzer target: the model file parser, ferkit::load_model (core/model_io.h), both into a new model and into one
// that held another (the page's reuse of buffers), and the replay bank a file may carry (core/finetune.h).
// Every input is parsed twice: as it is, and (when it is long enough) with its trailing CRC-32 recomputed, so the
// fuzzer gets past the checksum to the header, blob table and architecture checks. Expected errors are
// exceptions (ModelFormatError, std::runtime_error, ...); anything else (crash, sanitizer report, leak, timeout)
// is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <vector>

#include "finetune.h"
#include "model_io.h"

namespace {

ferkit::Model& reused() {
  static ferkit::Model m;  // holds the last model that loaded, as the page's staging model does
  return m;
}

void parse(const uint8_t* data, size_t size) {
  try {
    nlohmann::json metadata;
    std::vector<ferkit::Blob> extra;
    ferkit::load_model(data, size, reused(), &metadata, &extra);
    const ferkit::ReplayBank bank = ferkit::read_replay_bank(reused(), metadata, extra);
    if (bank.count() && bank.count() * bank.size != bank.features.size()) __builtin_trap();
  } catch (const std::exception&) {
  }
  try {
    nlohmann::json metadata;
    std::vector<ferkit::Blob> extra;
    ferkit::Model m = ferkit::load_model(data, size, &metadata, &extra);
    // A model that loads is usable: its summary walks every layer and tensor.
    (void)m.summary();
    (void)m.macs_per_image();
  } catch (const std::exception&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  parse(data, size);
  if (size >= 20) {
    std::vector<uint8_t> fixed(data, data + size);
    const uint32_t crc = ferkit::crc32(fixed.data(), size - 4);
    uint8_t le[4] = {static_cast<uint8_t>(crc), static_cast<uint8_t>(crc >> 8), static_cast<uint8_t>(crc >> 16),
                     static_cast<uint8_t>(crc >> 24)};
    if (std::memcmp(fixed.data() + size - 4, le, 4) != 0) {
      std::memcpy(fixed.data() + size - 4, le, 4);
      parse(fixed.data(), size);
    }
  }
  return 0;
}
