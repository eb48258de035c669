// "Why?": saliency maps (core/explain.h) in the page. With the overlay on, every face of every processed frame gets
// the map of the label it shows, drawn over its crop's square of the video in a heat colour; the panel shows the
// largest face (or the chosen one) with a map per expression, refreshed twice a second (seven maps cost seven
// explanations). Maps are computed in this tab, like everything else.
#pragma once
#include <GLES3/gl3.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "data.h"     // kNumClasses, kPixels
#include "explain.h"
#include "imgui.h"

struct App;

struct Why {
  static constexpr int kMaxFaces = 8;  // the pipeline's max_faces
  bool overlay = false;                // draw each face's map over the video
  int method = 0;                      // a ferkit::SaliencyMethod
  int selected = 0;                    // the face the panel shows per expression
  std::unique_ptr<ferkit::Explainer> explainer;
  int generation = -1;                 // of the models (PageModels::generation) the explainer was made for
  std::vector<float> maps;             // per face of the latest frame: the map of its label
  std::vector<int> explained;          // per face: the class of its map
  std::vector<float> class_maps;       // the selected face's map per class
  std::vector<uint8_t> rgba;           // upload scratch
  GLuint face_tex[kMaxFaces] = {}, class_tex[ferkit::kNumClasses] = {};
  double explain_ms = 0;               // the overlay's time for the latest frame
  double class_maps_at = -1;           // when the panel's maps were last made (s)
  bool shown_open = false;             // the panel's section was opened for the overlay once
};

// After the pipeline ran on a frame: the overlay's maps (when on).
void why_update(App& app);
// Over the video (origin p0, scale from frame pixels to screen, mirror: the view is mirrored).
void why_draw_overlay(App& app, ImDrawList* dl, ImVec2 p0, float scale, bool mirror);
// The panel's section.
void why_panel(App& app);
// window.ferkit.latest.why, and faces[i].why.
nlohmann::json why_json(const App& app);
// Face i of the latest frame's map (2304 floats) for class cls (-1: its label); the class explained, -1 if none.
int why_explain(App& app, int face, int method, int cls, float* out);
