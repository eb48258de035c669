// Test helper for tests/web/engine.test.mjs (node has no image decoder): decodes a photo with stb_image and
// writes it as raw RGBA: u32 width, u32 height (little-endian), then width*height*4 bytes.
//   decode_rgba photo.jpg out.rgba           the photo's colours
//   decode_rgba photo.jpg out.rgba --grey    R = G = B = the grey level the native tools see (core/image.cpp's
//                                            BT.601 luma), so the engine and `fer-train detect` get equal frames
// Built by the test itself: c++ -O2 -I/usr/include/stb tests/web/decode_rgba.cpp -o decode_rgba
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: decode_rgba photo out.rgba [--grey]\n");
    return 2;
  }
  const bool grey = argc > 3 && std::strcmp(argv[3], "--grey") == 0;
  int w = 0, h = 0, comp = 0;
  uint8_t* px = stbi_load(argv[1], &w, &h, &comp, 4);
  if (!px) {
    std::fprintf(stderr, "%s: %s\n", argv[1], stbi_failure_reason());
    return 1;
  }
  std::vector<uint8_t> out(static_cast<size_t>(w) * h * 4 + 8);
  const uint32_t dims[2] = {static_cast<uint32_t>(w), static_cast<uint32_t>(h)};
  std::memcpy(out.data(), dims, 8);  // (x86-64 and every other test host: little-endian)
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    const uint8_t* p = px + 4 * i;
    uint8_t* q = out.data() + 8 + 4 * i;
    if (grey) {
      const uint8_t y = static_cast<uint8_t>((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
      q[0] = q[1] = q[2] = y;
      q[3] = 255;
    } else {
      std::memcpy(q, p, 4);
    }
  }
  stbi_image_free(px);
  FILE* f = std::fopen(argv[2], "wb");
  if (!f || std::fwrite(out.data(), 1, out.size(), f) != out.size() || std::fclose(f) != 0) {
    std::perror(argv[2]);
    return 1;
  }
  return 0;
}
