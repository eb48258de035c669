// Writes a Y4M clip (what Chromium's --use-file-for-fake-video-capture plays as a camera) from a still image:
// the image, greyscale (Y plane; neutral chroma), scaled to fit WIDTHxHEIGHT and centred, repeated for FRAMES.
//   make_y4m IMAGE OUT.y4m [WIDTH HEIGHT FRAMES]
// With --moving X Y FACE (a point of the image, say a face's centre, and its width in image pixels), the clip moves
// that point about the frame, turns the image about it (up to 30 degrees either way) and changes its size (the
// face from 90 to 210 pixels wide), smoothly, over FRAMES frames that loop without a jump.
//   make_y4m IMAGE OUT.y4m WIDTH HEIGHT FRAMES --moving X Y FACE
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "blazeface.h"
#include "files.h"
#include "image.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_y4m IMAGE OUT.y4m [WIDTH HEIGHT FRAMES]\n");
    return 2;
  }
  const int W = argc > 4 ? std::atoi(argv[3]) : 640, H = argc > 4 ? std::atoi(argv[4]) : 480;
  const int frames = argc > 5 ? std::atoi(argv[5]) : 30;
  const bool moving = argc > 9 && std::string(argv[6]) == "--moving";
  try {
    if (moving) {
      const float fx = std::strtof(argv[7], nullptr), fy = std::strtof(argv[8], nullptr), face = std::strtof(argv[9], nullptr);
      std::vector<uint8_t> bytes = ferkit::read_file(argv[1]);
      ferkit::GrayImage img = ferkit::decode_image(bytes.data(), bytes.size());
      const int side = std::max(W, H);
      std::vector<uint8_t> square(static_cast<size_t>(side) * side);
      std::string out = "YUV4MPEG2 W" + std::to_string(W) + " H" + std::to_string(H) + " F15:1 Ip A1:1 C420jpeg\n";
      std::vector<uint8_t> chroma(static_cast<size_t>(W / 2) * (H / 2) * 2, 128);
      for (int f = 0; f < frames; ++f) {
        const double t = 2 * 3.14159265358979 * f / frames;
        const float cx = static_cast<float>(W / 2 + 0.25 * W * std::sin(t)), cy = static_cast<float>(H / 2 + 0.18 * H * std::sin(2 * t));
        const float angle = static_cast<float>(0.5236 * std::sin(3 * t));  // +-30 degrees
        const float width = static_cast<float>(150 + 60 * std::sin(2 * t + 1));  // the face, 90 to 210 pixels
        const float k = width / face;  // frame pixels per image pixel
        // The square of the image that the frame's centre square shows: its centre is the image point at the frame's
        // centre, its side side / k, turned by -angle.
        const float ux = (W / 2.0f - cx) / k, uy = (H / 2.0f - cy) / k;
        const float c = std::cos(-angle), s = std::sin(-angle);
        const ferkit::Roi view{fx + c * ux - s * uy, fy + s * ux + c * uy, side / k, -angle};
        ferkit::sample_roi(img.pixels.data(), img.width, img.height, 1, view, side, square.data(), 1);
        out += "FRAME\n";
        for (int r = 0; r < H; ++r)
          for (int col = 0; col < W; ++col)
            out += static_cast<char>(16 + square[static_cast<size_t>(r + (side - H) / 2) * side + col + (side - W) / 2] * 219 / 255);
        out.append(chroma.begin(), chroma.end());
      }
      ferkit::write_file_atomic(argv[2], out);
      return 0;
    }
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
