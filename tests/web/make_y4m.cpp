// Writes a Y4M clip (what Chromium's --use-file-for-fake-video-capture plays as a camera) from a still image:
// the image, greyscale (Y plane; neutral chroma), scaled to fit WIDTHxHEIGHT and centred, repeated for FRAMES.
//   make_y4m IMAGE OUT.y4m [WIDTH HEIGHT FRAMES]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "files.h"
#include "image.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_y4m IMAGE OUT.y4m [WIDTH HEIGHT FRAMES]\n");
    return 2;
  }
  const int W = argc > 4 ? std::atoi(argv[3]) : 640, H = argc > 4 ? std::atoi(argv[4]) : 480;
  const int frames = argc > 5 ? std::atoi(argv[5]) : 30;
  try {
    std::vector<uint8_t> bytes = ferkit::read_file(argv[1]);
    ferkit::GrayImage img = ferkit::decode_image(bytes.data(), bytes.size());
    const float s = std::min(static_cast<float>(W) / img.width, static_cast<float>(H) / img.height);
    const int dw = static_cast<int>(img.width * s), dh = static_cast<int>(img.height * s);
    std::vector<uint8_t> scaled(static_cast<size_t>(dw) * dh);
    ferkit::resample_gray(img, 0, 0, static_cast<float>(img.width), static_cast<float>(img.height), scaled.data(), dw, dh);
    std::vector<uint8_t> y(static_cast<size_t>(W) * H, 16);  // limited range: 16 is black
    for (int r = 0; r < dh; ++r)
      for (int c = 0; c < dw; ++c)
        y[static_cast<size_t>(r + (H - dh) / 2) * W + c + (W - dw) / 2] =
            static_cast<uint8_t>(16 + scaled[static_cast<size_t>(r) * dw + c] * 219 / 255);
    std::vector<uint8_t> chroma(static_cast<size_t>(W / 2) * (H / 2) * 2, 128);
    std::string out = "YUV4MPEG2 W" + std::to_string(W) + " H" + std::to_string(H) + " F15:1 Ip A1:1 C420jpeg\n";
    for (int f = 0; f < frames; ++f) {
      out += "FRAME\n";
      out.append(y.begin(), y.end());
      out.append(chroma.begin(), chroma.end());
    }
    ferkit::write_file_atomic(argv[2], out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_y4m: %s\n", e.what());
    return 1;
  }
  return 0;
}
