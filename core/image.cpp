#include "image.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "data.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_NO_PIC
#define STBI_NO_PNM
#define STBI_NO_PSD
#define STBI_MAX_DIMENSIONS (1 << 24)
// Zeroed allocations: Debian's stb_image mallocs its JPEG decoder state without clearing it, and a corrupt JPEG
// whose scan uses a Huffman table it never defined decodes with whatever the heap held there (valgrind: 666
// uninitialised reads for one 754-byte file). Decoding then succeeded or failed depending on what ran before:
// tests/fuzz/fuzz_image_folder saw a file skipped, then accepted on the next load. With calloc it decodes the same
// every time, and no leftover heap bytes reach the pixels.
#define STBI_MALLOC(sz) std::calloc(1, (sz))
#define STBI_REALLOC(p, newsz) std::realloc((p), (newsz))
#define STBI_FREE(p) std::free(p)
#include "stb_image.h"

namespace ferkit {

namespace {

std::string failure() {
  const char* r = stbi_failure_reason();
  return std::string("cannot decode image: ") + (r ? r : "unknown error");
}

// ITU-R BT.601 luma in 16.16 fixed point (weights sum to 65536), rounded.
inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return static_cast<uint8_t>((19595u * r + 38470u * g + 7471u * b + 32768u) >> 16);
}

// One axis of a separable resampling: for each output index, a run of (source index, weight).
struct Taps {
  std::vector<int> start;   // out + 1 offsets into index/weight
  std::vector<int> index;
  std::vector<float> weight;
};

Taps make_taps(float s0, float len, int n_src, int n_out) {
  Taps t;
  t.start.reserve(static_cast<size_t>(n_out) + 1);
  t.start.push_back(0);
  const double step = static_cast<double>(len) / n_out;
  auto clampi = [&](long long k) { return static_cast<int>(std::clamp<long long>(k, 0, n_src - 1)); };
  for (int i = 0; i < n_out; ++i) {
    if (step > 1.0) {
      // Shrinking: the average of the source interval [a, b) (area / box filter).
      const double a = s0 + i * step, b = s0 + (i + 1) * step;
      const long long k0 = static_cast<long long>(std::floor(a));
      const long long k1 = static_cast<long long>(std::ceil(b));
      for (long long k = k0; k < k1; ++k) {
        double w = std::min<double>(b, k + 1) - std::max<double>(a, k);
        if (w <= 0) continue;
        t.index.push_back(clampi(k));
        t.weight.push_back(static_cast<float>(w / step));
      }
    } else {
      // Enlarging (or same size): bilinear at the output pixel's centre.
      const double u = s0 + (i + 0.5) * step - 0.5;
      const long long k0 = static_cast<long long>(std::floor(u));
      const float f = static_cast<float>(u - static_cast<double>(k0));
      t.index.push_back(clampi(k0));
      t.weight.push_back(1.0f - f);
      t.index.push_back(clampi(k0 + 1));
      t.weight.push_back(f);
    }
    t.start.push_back(static_cast<int>(t.index.size()));
  }
  return t;
}

}  // namespace

GrayImage rgba_to_gray(const uint8_t* rgba, int width, int height, int channels) {
  if (width <= 0 || height <= 0) throw std::runtime_error("image has no pixels");
  if (channels < 1 || channels > 4) throw std::runtime_error("unsupported channel count " + std::to_string(channels));
  GrayImage g;
  g.width = width;
  g.height = height;
  const size_t n = static_cast<size_t>(width) * static_cast<size_t>(height);
  g.pixels.resize(n);
  const uint8_t* p = rgba;
  // Alpha is ignored: the colour values are used as they are.
  switch (channels) {
    case 1: std::copy(p, p + n, g.pixels.begin()); break;
    case 2:
      for (size_t i = 0; i < n; ++i) g.pixels[i] = p[2 * i];
      break;
    default:
      for (size_t i = 0; i < n; ++i, p += channels) g.pixels[i] = luma(p[0], p[1], p[2]);
      break;
  }
  return g;
}

namespace {
// Debian's stb_image (2022-09) overflows its Huffman tables on a JPEG whose DHT segment declares more than 256
// codes for a table (found by tests/fuzz/fuzz_image). Such a file is refused before stb sees it. stb finds markers
// by skipping any bytes that are not one, so every FF C4 in the file is checked as a DHT segment, read as stb reads
// it: table after table while the declared length lasts, each table's 16 counts taken from the file even where
// they run past the segment, bytes past the file's end as 0. (In a valid JPEG, FF C4 only starts real DHT
// segments: entropy-coded data stuffs every FF with 00.) Returns "" if fine, else the reason.
std::string check_jpeg_huffman_tables(const uint8_t* d, size_t n) {
  if (n < 2 || d[0] != 0xFF) return "";  // not a JPEG (stb skips any number of FF fill bytes before its SOI)
  for (size_t i = 2; i + 3 < n; ++i) {
    if (d[i] != 0xFF || d[i + 1] != 0xC4) continue;
    const size_t len = static_cast<size_t>(d[i + 2]) << 8 | d[i + 3];
    size_t p = i + 4;
    const size_t end = i + 2 + len;
    while (p < end) {
      size_t codes = 0;
      for (size_t k = 1; k <= 16 && p + k < n; ++k) codes += d[p + k];
      if (codes > 256)
        return "corrupt JPEG: a Huffman table declares " + std::to_string(codes) + " codes (at most 256)";
      p += 17 + codes;
    }
  }
  return "";
}

// Debian's stb_image copies a PNG's first IDAT chunk into a buffer it has not allocated yet when that chunk is
// empty (memcpy from a null pointer: undefined behaviour, found by tests/fuzz/fuzz_image). Such a file is refused.
std::string check_png_chunks(const uint8_t* d, size_t n) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n < 8 || std::memcmp(d, kSig, 8) != 0) return "";  // not a PNG
  bool data_seen = false;
  for (size_t i = 8; i + 8 <= n;) {
    const uint32_t len = static_cast<uint32_t>(d[i]) << 24 | static_cast<uint32_t>(d[i + 1]) << 16 |
                         static_cast<uint32_t>(d[i + 2]) << 8 | d[i + 3];
    const std::string type(reinterpret_cast<const char*>(d + i + 4), 4);
    // stb_image grows its IDAT buffer to the length a chunk claims before reading it: an IDAT claiming 2 GB in a
    // 100-byte file allocated 2 GB (found by CI's image fuzzer). A chunk's data must be in the file (its CRC may
    // be cut off: stb does not read it).
    if (len > n - i - 8)
      return "truncated PNG: the chunk at byte " + std::to_string(i) + " claims " + std::to_string(len) +
             " bytes of data, the file has " + std::to_string(n - i - 8) + " left";
    if (type == "IDAT" && len == 0 && !data_seen) return "corrupt PNG: an empty IDAT chunk before any image data";
    if (type == "IDAT") data_seen = data_seen || len > 0;
    if (type == "IEND") return "";
    i += 12 + static_cast<size_t>(len);
  }
  return "";
}
}  // namespace

namespace {
// Checks the file and decodes it with stb_image: `want` channels (0: the file's own, in *channels). The caller frees.
uint8_t* decode_checked(const uint8_t* data, size_t size, int want, int* width, int* height, int* channels) {
  if (!data || size == 0) throw std::runtime_error("cannot decode image: no data");
  if (const std::string bad = check_jpeg_huffman_tables(data, size); !bad.empty())
    throw std::runtime_error("cannot decode image: " + bad);
  if (const std::string bad = check_png_chunks(data, size); !bad.empty())
    throw std::runtime_error("cannot decode image: " + bad);
  if (size > static_cast<size_t>(INT_MAX)) throw std::runtime_error("cannot decode image: file too large");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &comp))
    throw std::runtime_error(failure());
  if (w <= 0 || h <= 0) throw std::runtime_error("cannot decode image: it has no pixels");
  if (static_cast<long long>(w) * h > kMaxImagePixels)
    throw std::runtime_error("image too large: " + std::to_string(w) + " x " + std::to_string(h) + " (limit " +
                             std::to_string(kMaxImagePixels) + " pixels)");
  // No format this decoder reads packs more than a few thousand pixels into a byte (deflate tops out near 1032:1,
  // GIF's LZW near 2700:1): a header claiming more is hostile (a 74-byte BMP claiming 7 x 5,111,808 pixels took
  // 5 s to decode into 107 MB). Refused before decoding.
  if (static_cast<long long>(w) * h > kMaxPixelsPerByte * static_cast<long long>(len) + 65536)
    throw std::runtime_error("image claims " + std::to_string(w) + " x " + std::to_string(h) + " pixels, more than its " +
                             std::to_string(len) + " bytes can hold");
  uint8_t* px = stbi_load_from_memory(data, len, &w, &h, &comp, want);
  if (!px) throw std::runtime_error(failure());
  *width = w, *height = h, *channels = comp;
  return px;
}
}  // namespace

RgbImage decode_image_rgb(const uint8_t* data, size_t size) {
  int w = 0, h = 0, comp = 0;
  uint8_t* px = decode_checked(data, size, 3, &w, &h, &comp);
  RgbImage img;
  img.width = w, img.height = h;
  img.pixels.assign(px, px + static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  stbi_image_free(px);
  return img;
}

GrayImage decode_image(const uint8_t* data, size_t size) {
  int w = 0, h = 0, comp = 0;
  uint8_t* px = decode_checked(data, size, 0, &w, &h, &comp);
  try {
    GrayImage g = rgba_to_gray(px, w, h, comp);
    stbi_image_free(px);
    return g;
  } catch (...) {
    stbi_image_free(px);
    throw;
  }
}

void resample_gray(const GrayImage& src, float sx, float sy, float sw, float sh, uint8_t* dst, int dw, int dh) {
  if (src.width <= 0 || src.height <= 0 ||
      src.pixels.size() < static_cast<size_t>(src.width) * static_cast<size_t>(src.height))
    throw std::invalid_argument("resample_gray: empty source image");
  if (dw <= 0 || dh <= 0) throw std::invalid_argument("resample_gray: empty destination");
  if (!(sw > 0) || !(sh > 0) || !std::isfinite(sx) || !std::isfinite(sy) || !std::isfinite(sw) || !std::isfinite(sh))
    throw std::invalid_argument("resample_gray: empty or invalid source rectangle");

  const Taps tx = make_taps(sx, sw, src.width, dw);
  const Taps ty = make_taps(sy, sh, src.height, dh);
  // Source rows the vertical pass reads.
  const int r0 = *std::min_element(ty.index.begin(), ty.index.end());
  const int r1 = *std::max_element(ty.index.begin(), ty.index.end());
  // Horizontal pass on those rows, then the vertical pass.
  std::vector<float> tmp(static_cast<size_t>(r1 - r0 + 1) * dw);
  for (int r = r0; r <= r1; ++r) {
    const uint8_t* row = src.pixels.data() + static_cast<size_t>(r) * src.width;
    float* out = tmp.data() + static_cast<size_t>(r - r0) * dw;
    for (int i = 0; i < dw; ++i) {
      float acc = 0.0f;
      for (int k = tx.start[i]; k < tx.start[i + 1]; ++k) acc += tx.weight[k] * row[tx.index[k]];
      out[i] = acc;
    }
  }
  std::vector<float> acc(static_cast<size_t>(dw));
  for (int j = 0; j < dh; ++j) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int k = ty.start[j]; k < ty.start[j + 1]; ++k) {
      const float w = ty.weight[k];
      const float* row = tmp.data() + static_cast<size_t>(ty.index[k] - r0) * dw;
      for (int i = 0; i < dw; ++i) acc[i] += w * row[i];
    }
    uint8_t* out = dst + static_cast<size_t>(j) * dw;
    for (int i = 0; i < dw; ++i) out[i] = static_cast<uint8_t>(std::clamp(std::lround(acc[i]), 0L, 255L));
  }
}

void to_face_pixels(const GrayImage& src, uint8_t* dst48x48) {
  resample_gray(src, 0.0f, 0.0f, static_cast<float>(src.width), static_cast<float>(src.height), dst48x48, kSide, kSide);
}

}  // namespace ferkit
