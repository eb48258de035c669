// libFuzzer target: the face-detector cascade parser, ferkit::load_cascade (core/detect.h), and running
// FaceDetector::detect with every cascade that loads on a small synthetic frame (a little larger than the cascade's
// window, so at least two pyramid levels are scanned). As for model files, each input is parsed as it is and with
// its trailing CRC-32 recomputed, so the fuzzer gets past the checksum. Expected errors are exceptions; anything
// else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include "detect.h"
#include "model_io.h"  // crc32

namespace {

void run(const uint8_t* data, size_t size) {
  ferkit::Cascade cascade;
  try {
    cascade = ferkit::load_cascade(data, size);
  } catch (const std::exception&) {
    return;
  }
  // A loaded cascade must serialise back (save_cascade checks the same rules as load_cascade).
  try {
    (void)ferkit::save_cascade(cascade);
  } catch (const std::exception&) {
    __builtin_trap();  // load_cascade accepted a cascade that save_cascade rejects
  }
  const int w = cascade.window_width * 3 / 2 + 3, h = cascade.window_height * 3 / 2 + 1;
  std::vector<uint8_t> frame(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y)  // a textured frame: a blob, stripes and noise, so windows pass the variance test
    for (int x = 0; x < w; ++x) {
      const int dx = x - w / 2, dy = y - h / 2;
      const int blob = dx * dx + dy * dy < w * h / 8 ? 80 : 0;
      frame[static_cast<size_t>(y) * w + x] =
          static_cast<uint8_t>(blob + ((x / 3 + y / 5) % 2) * 60 + ((x * 131 + y * 71) % 37));
    }
  try {
    ferkit::FaceDetector detector(cascade);
    ferkit::DetectOptions raw;
    raw.min_neighbors = 0;
    raw.min_size = 0;
    raw.min_stddev = 0.0f;
    raw.step = 1;
    raw.scale_factor = 1.25f;
    (void)detector.detect(frame.data(), w, h, raw);
    ferkit::DetectOptions grouped;
    grouped.min_size = 0;
    grouped.min_neighbors = 1;
    (void)detector.detect(frame.data(), w, h, grouped);
  } catch (const std::exception&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(data, size);
  if (size >= 8) {
    std::vector<uint8_t> fixed(data, data + size);
    const uint32_t crc = ferkit::crc32(fixed.data(), size - 4);
    const uint8_t le[4] = {static_cast<uint8_t>(crc), static_cast<uint8_t>(crc >> 8),
                           static_cast<uint8_t>(crc >> 16), static_cast<uint8_t>(crc >> 24)};
    if (std::memcmp(fixed.data() + size - 4, le, 4) != 0) {
      std::memcpy(fixed.data() + size - 4, le, 4);
      run(fixed.data(), size);
    }
  }
  return 0;
}
