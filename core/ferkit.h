// ferkit.h: the one header an application includes. It opens the pipeline (a model file and a face detector's),
// runs it on frames or photos, and hands back each face's box, landmarks, aligned 48x48 crop and seven expression
// probabilities in FER-2013's order (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral). The core
// reads no files: the application hands it bytes. Errors are exceptions whose message says what was wrong.
//
// Basic usage (tests/CMakeLists.txt compiles the lines between the markers and runs them on a photo):
//
// example:begin
//   #include <cstdio>
//   #include <fstream>
//   #include <iterator>
//   #include <vector>
//
//   #include <ferkit/ferkit.h>  // installed: docs/cpp.md
//
//   static std::vector<uint8_t> read(const char* path) {
//     std::ifstream f(path, std::ios::binary);
//     return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
//   }
//
//   int main(int argc, char** argv) {  // example MODEL.ferkit DETECTOR PHOTO
//     if (argc != 4) return 2;
//     std::vector<uint8_t> model = read(argv[1]), detector = read(argv[2]), photo = read(argv[3]);
//     std::unique_ptr<ferkit::Pipeline> pipe = ferkit::open_pipeline(model, detector);
//     ferkit::GrayImage image = ferkit::decode_image(photo.data(), photo.size());
//     ferkit::PipelineOptions still;
//     still.still = true;  // a photo: the whole search for faces, no tracking or averaging over frames
//     for (const ferkit::FaceResult& face : pipe->process_gray(image.pixels.data(), image.width, image.height, still))
//       std::printf("face at %.0f,%.0f (%.0f px): %s %.0f%%\n", face.box.x, face.box.y, face.box.w,
//                   pipe->model().class_names[face.label].c_str(), 100 * face.probs[face.label]);
//     return 0;
//   }
// example:end
//
// Video: call process_rgba (or process_gray) once per frame with the default options; faces keep their `track`
// id while they stay in view, and `smoothed` averages each face's probabilities over frames. Face crops you
// already have (48x48 grey) go to Pipeline::classify. Everything else in core/ (layers, training, fine-tuning,
// the model format) is internal: its headers may change between versions.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "image.h"     // GrayImage, decode_image (PNG, JPEG, BMP, ... bytes to grey), rgba_to_gray
#include "model_io.h"  // load_model, ModelFormatError
#include "pipeline.h"  // Pipeline, PipelineOptions, FaceResult, Box, Detection, Model

namespace ferkit {

// The library's version (CMake's project version).
const char* version();

// A pipeline from a model file's bytes (.ferkit) and the face detector's (assets/detector/blazeface.ferkit). Throws
// ModelFormatError for a file that is not a model, and std::invalid_argument for a model that does not classify
// 48x48 grey faces into FER-2013's seven expressions or a detector that is not one.
std::unique_ptr<Pipeline> open_pipeline(const std::vector<uint8_t>& model_file,
                                        const std::vector<uint8_t>& detector_file);

}  // namespace ferkit
