// libFuzzer target: image decoding, ferkit::decode_image (stb_image: PNG/JPEG/BMP/GIF/TGA) and the 48x48 face
// resampling, ferkit::to_face_pixels (core/image.h). Expected errors are exceptions; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "data.h"
#include "image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ferkit::GrayImage img = ferkit::decode_image(data, size);
    uint8_t face[ferkit::kPixels];
    ferkit::to_face_pixels(img, face);
    // A crop of the middle, enlarged (bilinear) and shrunk (area averaging).
    uint8_t small[7 * 5];
    ferkit::resample_gray(img, img.width * 0.25f, img.height * 0.25f, img.width * 0.5f, img.height * 0.5f, small, 7,
                          5);
  } catch (const std::exception&) {
  }
  return 0;
}
