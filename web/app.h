// The browser app's state: the frame, the pipeline, the models, the teach panel's and the saliency maps' state,
// shared by the video loop (main.cpp), the teach panel (teach.cpp), the maps (why.cpp) and the functions
// JavaScript calls (exports.cpp). One App per page,
// owned by main.cpp.
#pragma once
#include <GLES3/gl3.h>
#include <SDL.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ferkit.h"
#include "imgui.h"
#include "models.h"
#include "teach.h"
#include "why.h"

// The live view's pipeline settings: the core's defaults (the detector on every frame, tracked faces looked for
// again where the whole-frame pass misses them).
inline ferkit::PipelineOptions live_options() { return ferkit::PipelineOptions(); }

// A texture for ImGui::Image: linear filtering, clamped edges; bound to nothing afterwards.
inline GLuint make_texture() {
  GLuint t = 0;
  glGenTextures(1, &t);
  glBindTexture(GL_TEXTURE_2D, t);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  glBindTexture(GL_TEXTURE_2D, 0);
  return t;
}

struct App {
  SDL_Window* window = nullptr;
  SDL_GLContext gl = nullptr;
  GLuint video_tex = 0;
  int frame_w = 0, frame_h = 0, source = 0;  // source: 0 camera, 1 image
  std::vector<uint8_t> frame;                // RGBA, grows to the largest frame
  std::unique_ptr<ferkit::Pipeline> pipe;
  ferkit::PipelineOptions options = live_options();
  PageModels models;
  bool mirror = true;
  bool landmarks = false;  // draw the detector's six keypoints on each face
  double grab_ms = 0, draw_ms = 0;
  std::string published;           // window.ferkit.latest's JSON, reused
  nlohmann::json published_teach;  // its "teach" part, as last published
  long long frames = 0;    // frames processed (published as frame.index)
  bool flip_averaged = false;  // the last frame's probabilities average both views (published)
  int camera_state = 0;
  std::string camera_message;
  std::vector<std::string> cameras;
  int camera_index = 0;
  bool ready_announced = false;
  ImFont* big_font = nullptr;      // the default font at twice its size: the first-run view's title and buttons
  nlohmann::json ui;               // window.ferkit.latest.ui: what the page shows (main.cpp's draw fills it)
  nlohmann::json published_ui;     // as last published
  nlohmann::json video_rect;       // where the video was drawn (canvas pixels), for ui
  Teach teach;
  Why why;
};

// exports.cpp: the functions JavaScript calls act on this App (main() attaches it before the page starts).
void attach_exports(App& app);
