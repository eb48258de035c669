// ferkit_consumer FACE...: classifies face crops (any image; resized to 48x48 grey as fer-train predict does)
// with the installed default model, one line per expression: "<file> <class> <probability>".
#include <ferkit/ferkit.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

static std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FACE...\n", argv[0]);
    return 2;
  }
  try {
    std::unique_ptr<ferkit::Pipeline> pipe =
        ferkit::open_pipeline(read_file(FERKIT_MODEL), read_file(FERKIT_DETECTOR));
    const std::vector<std::string>& names = pipe->model().class_names;
    std::printf("ferkit %s\n", ferkit::version());
    for (int i = 1; i < argc; ++i) {
      std::vector<uint8_t> bytes = read_file(argv[i]);
      ferkit::GrayImage image = ferkit::decode_image(bytes.data(), bytes.size());
      uint8_t crop[ferkit::kPixels];
      ferkit::to_face_pixels(image, crop);
      std::vector<float> probs(names.size());
      pipe->classify(crop, 1, probs.data());
      for (size_t c = 0; c < names.size(); ++c) std::printf("%s %s %.9f\n", argv[i], names[c].c_str(), probs[c]);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferkit_consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
