// libFuzzer target: the model file parser, ferkit::load_model (core/model_io.h).
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

#include "model_io.h"

namespace {

void parse(const uint8_t* data, size_t size) {
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
