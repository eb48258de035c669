// fer-train explain: which pixels of each face a prediction rests on (core/explain.h). For every face found in
// the photos (or every image, with --face-crops) it writes a PNG of the 48x48 crop, magnified, with the saliency
// map of the explained class blended over it in a heat colour ramp (explain.h's saliency_colour, the page's too).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "explain.h"
#include "files.h"
#include "image.h"
#include "pipeline.h"
#include "plot.h"

namespace ferkit::cli {
namespace {

constexpr int kMagnify = 4;  // the PNG is 192x192: the crop's pixels as blocks, the map blended over them

struct ExplainArgs {
  std::string model_path, detector_path = FERKIT_DEFAULT_DETECTOR, out, method = "gradcam", cls;
  std::vector<std::string> images;
  int min_size = 32;
  bool face_crops = false, as_json = false;
};

// --class: a class name of the model or its index; empty: the predicted class (-1).
int parse_class(const std::string& s, const std::vector<std::string>& names) {
  if (s.empty()) return -1;
  for (size_t c = 0; c < names.size(); ++c)
    if (names[c] == s) return static_cast<int>(c);
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0' && v >= 0 && v < static_cast<long>(names.size())) return static_cast<int>(v);
  std::string list;
  for (size_t c = 0; c < names.size(); ++c) list += (c ? ", " : "") + names[c];
  throw std::runtime_error("--class: expected one of " + list + " or an index 0-" +
                           std::to_string(names.size() - 1) + ", got '" + s + "'");
}

// The crop (side x side grey) magnified, the map blended over it: weight 0.6 x the map's value.
Canvas blend(const uint8_t* crop, const float* map, int side) {
  Canvas c(side * kMagnify, side * kMagnify);
  for (int y = 0; y < c.height; ++y)
    for (int x = 0; x < c.width; ++x) {
      const int i = (y / kMagnify) * side + x / kMagnify;
      const uint8_t g = crop[i];
      uint8_t heat[3];
      saliency_colour(map[i], heat);
      const double a = 0.6 * map[i];
      c.set_pixel(x, y, Rgb{static_cast<uint8_t>((1 - a) * g + a * heat[0] + 0.5),
                            static_cast<uint8_t>((1 - a) * g + a * heat[1] + 0.5),
                            static_cast<uint8_t>((1 - a) * g + a * heat[2] + 0.5)});
    }
  return c;
}

int cmd_explain(const ExplainArgs& a) {
  Model model = load_model_file(a.model_path);
  if (!(model.input_shape() == Shape{kSide, kSide, 1}) || model.num_classes() != kNumClasses)
    throw std::runtime_error(a.model_path + ": explain needs a model of 48x48 grey faces and seven classes");
  ExplainOptions eo;
  eo.method = saliency_method_from_name(a.method);
  eo.cls = parse_class(a.cls, model.class_names);
  const std::vector<std::string> names = model.class_names;
  std::unique_ptr<Pipeline> pipe;
  if (!a.face_crops) {
    pipe = std::make_unique<Pipeline>(open_pipeline_files(a.model_path, a.detector_path));
  }
  // The explainer reads the pipeline's model when there is one (the same weights), else the loaded one.
  Explainer explainer(pipe ? pipe->model() : model, /*planned=*/true);
  PipelineOptions opt;
  opt.still = true;
  opt.find.min_face = a.min_size;
  make_dirs(a.out);
  std::vector<float> map(kPixels), probs(kNumClasses);
  int failures = 0;
  json all = json::array();
  for (const std::string& path : a.images) {
    RgbImage img;  // in colour, as fer-train detect reads a photo
    if (!read_image(path, img)) {
      ++failures;
      continue;
    }
    // The crops to explain: each face found, or the whole image as one face.
    std::vector<std::vector<uint8_t>> crops;
    std::vector<Box> boxes;
    if (pipe) {
      for (const FaceResult& f : pipe->process_rgb(img.pixels.data(), img.width, img.height, opt)) {
        crops.emplace_back(f.crop, f.crop + kPixels);
        boxes.push_back(f.box);
      }
    } else {
      crops.emplace_back(kPixels);
      to_face_pixels(rgba_to_gray(img.pixels.data(), img.width, img.height, 3), crops.back().data());
      boxes.push_back(Box{0, 0, static_cast<float>(img.width), static_cast<float>(img.height), 1});
    }
    const std::string base = path.substr(path.find_last_of('/') + 1);
    if (!a.as_json) std::printf("%s: %zu face(s)\n", path.c_str(), crops.size());
    json jfaces = json::array();
    for (size_t i = 0; i < crops.size(); ++i) {
      const int cls = explainer.explain(crops[i].data(), eo, map.data(), probs.data());
      const int label = static_cast<int>(std::max_element(probs.begin(), probs.end()) - probs.begin());
      const std::string png = a.out + "/" + base + (pipe ? ".face" + std::to_string(i + 1) : std::string()) + "." +
                              a.method + "-" + names[cls] + ".png";
      write_png(png, blend(crops[i].data(), map.data(), kSide));
      const Box& b = boxes[i];
      if (a.as_json) {
        json jp = json::object();
        for (int c = 0; c < kNumClasses; ++c) jp[names[c]] = probs[c];
        jfaces.push_back({{"box", {b.x, b.y, b.w, b.h}}, {"label", names[label]}, {"probabilities", jp},
                          {"class", names[cls]}, {"method", a.method}, {"png", png}, {"map", map}});
      } else {
        std::printf("  face %zu at %.0f,%.0f %.0fx%.0f: %s (%.3f); %s of %s -> %s\n", i + 1, b.x, b.y, b.w, b.h,
                    names[label].c_str(), probs[label], a.method.c_str(), names[cls].c_str(), png.c_str());
      }
    }
    if (a.as_json) all.push_back({{"file", path}, {"faces", jfaces}});
  }
  if (a.as_json) std::printf("%s\n", all.dump().c_str());
  return failures ? 1 : 0;
}

}  // namespace

void add_explain_command(CLI::App& app, Context& ctx) {
  auto [sub, a] = add_command<ExplainArgs>(app, ctx, "explain",
                                           "saliency maps: which pixels of each face a prediction rests on, as PNGs",
                                           [](const ExplainArgs& a) { return cmd_explain(a); });
  add_model_option(sub, a->model_path);
  sub->add_option("images", a->images, "photos (or face crops, with --face-crops)")->required();
  sub->add_option("--out", a->out, "folder for the PNGs (<image>.face<N>.<method>-<class>.png)")->required();
  sub->add_option("--method", a->method, "gradcam (the last convolution block, upsampled), gradient-x-input or "
                                         "smoothgrad (pixel gradients)")
      ->capture_default_str()->check(CLI::IsMember({"gradcam", "gradient-x-input", "smoothgrad"}));
  sub->add_option("--class", a->cls, "the class to explain, by name or index (default: the predicted one)");
  sub->add_flag("--face-crops", a->face_crops, "each image is one face crop (any size, as predict reads them)");
  sub->add_option("--detector", a->detector_path, "face detector model (BlazeFace, docs/detector.md)")->capture_default_str();
  sub->add_option("--min-size", a->min_size, "smallest face width searched, pixels")->capture_default_str();
  sub->add_flag("--json", a->as_json, "print JSON, with each map's values (row-major, 0..1)");
}

}  // namespace ferkit::cli
