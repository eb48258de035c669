// fer-train predict and detect: a model run on image files. predict classifies face crops; detect finds the
// faces in whole photos first (the page's pipeline, natively). Both go on past an unreadable image and exit 1.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "common.h"
#include "files.h"
#include "image.h"
#include "pipeline.h"
#include "plot.h"

namespace ferkit::cli {
namespace {

struct PredictArgs {
  std::string model_path;
  std::vector<std::string> images;
  bool as_json = false, tta = false;
};

struct DetectArgs {
  std::string model_path, detector_path = FERKIT_DEFAULT_DETECTOR, crops_dir;
  std::vector<std::string> images;
  int min_size = 32;
  bool as_json = false, tta = false;
};

int cmd_predict(const std::string& model_path, const std::vector<std::string>& images, bool as_json, bool tta) {
  Model model = load_model_file(model_path);
  Workspace ws;
  ws.reserve(model, 1);
  int failures = 0;
  json all = json::array();
  for (const std::string& path : images) {
    uint8_t px[kPixels];
    try {
      std::vector<uint8_t> bytes = read_file(path);
      GrayImage img = decode_image(bytes.data(), bytes.size());
      to_face_pixels(img, px);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
      ++failures;
      continue;
    }
    std::vector<float> p(model.num_classes());
    predict(model, ws, px, 1, p.data(), tta);
    const int best = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
    if (as_json) {
      json probs = json::object();
      for (int c = 0; c < model.num_classes(); ++c) probs[model.class_names[c]] = p[c];
      all.push_back({{"file", path}, {"label", model.class_names[best]}, {"probabilities", probs}});
    } else {
      std::printf("%s: %s (%.3f)", path.c_str(), model.class_names[best].c_str(), p[best]);
      for (int c = 0; c < model.num_classes(); ++c) std::printf("  %s=%.4f", model.class_names[c].c_str(), p[c]);
      std::printf("\n");
    }
  }
  if (as_json) std::printf("%s\n", all.dump(2).c_str());
  return failures ? 1 : 0;
}

// Finds the faces in whole photos and classifies each (the page's pipeline, natively).
int cmd_detect(const std::string& model_path, const std::string& detector_path, const std::vector<std::string>& images,
               bool as_json, const std::string& crops_dir, int min_size, bool tta) {
  Pipeline pipe = open_pipeline_files(model_path, detector_path);
  PipelineOptions opt;
  opt.still = true;
  opt.flip_tta = tta;  // as the page classifies a still image
  opt.find.min_face = min_size;
  if (!crops_dir.empty()) make_dirs(crops_dir);
  int failures = 0;
  json all = json::array();
  for (const std::string& path : images) {
    RgbImage img;
    if (!read_image(path, img)) {
      ++failures;
      continue;
    }
    const auto& faces = pipe.process_rgb(img.pixels.data(), img.width, img.height, opt);
    const auto& names = pipe.model().class_names;
    json jfaces = json::array();
    if (!as_json) std::printf("%s: %zu face(s)\n", path.c_str(), faces.size());
    for (size_t i = 0; i < faces.size(); ++i) {
      const FaceResult& f = faces[i];
      json probs = json::object();
      for (int c = 0; c < kNumClasses; ++c) probs[names[c]] = f.probs[c];
      json keypoints = json::array();
      for (const Point& k : f.keypoints) keypoints.push_back({k.x, k.y});
      jfaces.push_back({{"box", {f.box.x, f.box.y, f.box.w, f.box.h}}, {"score", f.box.score},
                        {"keypoints", keypoints}, {"label", names[f.label]}, {"probabilities", probs}});
      if (!as_json) {
        std::printf("  face %zu at %.0f,%.0f %.0fx%.0f (face %.2f): %s (%.3f)", i + 1, f.box.x, f.box.y, f.box.w,
                    f.box.h, f.box.score, names[f.label].c_str(), f.probs[f.label]);
        for (int c = 0; c < kNumClasses; ++c) std::printf("  %s=%.4f", names[c].c_str(), f.probs[c]);
        std::printf("\n");
      }
      if (!crops_dir.empty()) {
        Canvas crop;
        crop.width = kSide;
        crop.height = kSide;
        crop.rgb.resize(kPixels * 3);
        for (int p = 0; p < kPixels; ++p) crop.rgb[3 * p] = crop.rgb[3 * p + 1] = crop.rgb[3 * p + 2] = f.crop[p];
        std::string base = path.substr(path.find_last_of('/') + 1);
        write_png(crops_dir + "/" + base + ".face" + std::to_string(i + 1) + ".png", crop);
      }
    }
    all.push_back({{"file", path}, {"width", img.width}, {"height", img.height}, {"faces", jfaces}});
  }
  if (as_json) std::printf("%s\n", all.dump(2).c_str());
  return failures ? 1 : 0;
}

}  // namespace

void add_predict_command(CLI::App& app, Context& ctx) {
  auto [pred, a] = add_command<PredictArgs>(
      app, ctx, "predict", "classify image files (face crops; any size, colour or grey)",
      [](const PredictArgs& a) { return cmd_predict(a.model_path, a.images, a.as_json, a.tta); });
  add_model_option(pred, a->model_path);
  pred->add_option("images", a->images, "image files")->required();
  pred->add_flag("--json", a->as_json, "print JSON");
  pred->add_flag("--tta", a->tta, "average with the mirrored image");
}

void add_detect_command(CLI::App& app, Context& ctx) {
  auto [det, a] = add_command<DetectArgs>(
      app, ctx, "detect", "find the faces in photos and classify each one", [](const DetectArgs& a) {
        return cmd_detect(a.model_path, a.detector_path, a.images, a.as_json, a.crops_dir, a.min_size, a.tta);
      });
  add_model_option(det, a->model_path);
  det->add_option("--detector", a->detector_path, "face detector model (BlazeFace, docs/detector.md)")->capture_default_str();
  det->add_option("images", a->images, "image files")->required();
  det->add_option("--crops", a->crops_dir, "write each face's aligned 48x48 crop as PNG into this folder");
  det->add_option("--min-size", a->min_size, "smallest face width searched, pixels")->capture_default_str();
  det->add_flag("--json", a->as_json, "print JSON");
  det->add_flag("--tta", a->tta, "average each face with its mirror image (as the page does for a still image)");
}

}  // namespace ferkit::cli
