// Image decoding and resampling from memory (stb_image): any PNG/JPEG/BMP/GIF/TGA, colour or grey,
// converted to the model's 48x48 grayscale. Portable: no files, used natively and in the page.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ferkit {

struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height, row-major
};

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3 (R, G, B), row-major
};

// Largest image accepted by decode_image (width * height), to bound memory on hostile input.
constexpr long long kMaxImagePixels = 40LL * 1000 * 1000;
// Largest pixel count per byte of file accepted (beyond the first 65,536 pixels): real images stay far below it.
constexpr long long kMaxPixelsPerByte = 4096;

// Decodes an encoded image to 8-bit grayscale (ITU-R BT.601 luma). Throws std::runtime_error with the
// reason (unknown format, truncated, too large: W x H) on failure.
GrayImage decode_image(const uint8_t* data, size_t size);
// The same image in colour (a grey one with its value in all three channels), with the same checks.
RgbImage decode_image_rgb(const uint8_t* data, size_t size);
// RGBA (or RGB when channels == 3) to grayscale.
GrayImage rgba_to_gray(const uint8_t* rgba, int width, int height, int channels = 4);
// Resamples a grayscale region to dw x dh: area averaging when shrinking, bilinear when enlarging.
// (sx, sy, sw, sh) is the source rectangle; parts outside the image are clamped to the border.
void resample_gray(const GrayImage& src, float sx, float sy, float sw, float sh, uint8_t* dst, int dw, int dh);
// The whole image resized to 48x48 (used for face crops and the folder dataset).
void to_face_pixels(const GrayImage& src, uint8_t* dst48x48);

}  // namespace ferkit
