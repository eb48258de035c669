// The browser app's state, shared by web/main.cpp (video, detection, UI loop) and web/teach.cpp (samples and
// fine-tuning). One App per page (g_app in main.cpp).
#pragma once
#include <GLES3/gl3.h>
#include <SDL.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "finetune.h"
#include "pipeline.h"

// The live view's pipeline settings. Detection slides its window in steps of 2 pyramid-level pixels at every scale
// (OpenCV, and the native CLI, step 1 pixel from scale 2 up): 3x less detection time on a 640x480 frame, and the
// faces still found; and it runs on every second frame (the other reuses its boxes; crops and classification run
// on every frame). The panel can switch both back.
inline ferkit::PipelineOptions live_options() {
  ferkit::PipelineOptions o;
  o.detect.step = 2;
  o.detect_every = 2;
  return o;
}

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

// "Teach it your face": the user's labelled samples, the gallery, fine-tuning (in a worker) and persistence.
struct Teach {
  static constexpr int kMaxSamples = 1024;  // the gallery atlas holds this many
  std::vector<uint8_t> crops;   // n * 2304: 48x48 grey, as the model sees them
  std::vector<uint8_t> labels;  // n
  int count() const { return static_cast<int>(labels.size()); }

  GLuint atlas = 0;  // 32x32 cells of 48x48 luminance: the gallery's thumbnails
  bool atlas_stale = true;

  // burst capture: `burst_n` crops of `burst_label` over `burst_seconds`
  bool burst = false;
  int burst_n = 10;
  float burst_seconds = 3.0f;
  int burst_label = -1, burst_left = 0;
  double burst_next = 0;
  int import_label = 3;
  std::string capture_message;

  // fine-tuning
  ferkit::FinetuneConfig cfg;
  float lr_head = ferkit::FinetuneConfig::kHeadLr, lr_whole = ferkit::FinetuneConfig::kWholeLr;
  enum State { Idle, Running, Done, Failed, Cancelled } state = Idle;
  std::string message;
  std::vector<float> losses, held_acc;  // per step, per epoch (for the plots)
  int step = 0, steps = 0, epoch = 0, epochs = 0;
  double held_before = -1, held_after = -1;
  double started = 0, seconds = 0;
  bool samples_changed = false;  // since the last save
  double save_after = 0;         // when to save them (debounced)
  std::string storage_message;
  bool storage_ok = true;
};

struct App {
  SDL_Window* window = nullptr;
  SDL_GLContext gl = nullptr;
  GLuint video_tex = 0;
  int frame_w = 0, frame_h = 0, source = 0;  // source: 0 camera, 1 image
  std::vector<uint8_t> frame;                // RGBA, grows to the largest frame
  std::unique_ptr<ferkit::Pipeline> pipe;
  ferkit::PipelineOptions options = live_options();
  std::string model_name = "default", model_accuracy, model_error, load_message;
  std::vector<uint8_t> default_model;
  std::vector<uint8_t> base_model;     // what fine-tuning starts from: the default or a loaded model file
  std::vector<uint8_t> current_model;  // the model in use (base, or base fine-tuned); what "Download" saves
  // Kept by use_model, so that a frame never compares model files (two 5 MB compares cost 10 ms a frame):
  bool tuned = false;                  // current_model is base_model fine-tuned
  bool base_is_default = true;         // base_model is default_model
  bool mirror = true;
  double grab_ms = 0, draw_ms = 0;
  std::string published;  // JSON, reused
  std::string published_teach;
  long long frames = 0;    // frames processed (published as frame.index)
  bool flip_averaged = false;  // the last frame's probabilities average both views (published)
  int camera_state = 0;
  std::string camera_message;
  std::vector<std::string> cameras;
  int camera_index = 0;
  bool ready_announced = false;
  Teach teach;
};

App& app_instance();  // the page's one App (main.cpp)

// Loads model bytes into the pipeline (main.cpp). On failure sets app.model_error and keeps the current model.
// kind: what the bytes become: Base (a model file or the default: fine-tuning starts from it), Tuned (a
// fine-tuning result: the base stays).
enum class ModelKind { Base, Tuned };
bool use_model(App& app, std::vector<uint8_t> bytes, const std::string& origin, ModelKind kind);

// web/teach.cpp
void teach_init(Teach& t);
void teach_tick(App& app);                  // burst capture, debounced saving; once a frame
bool teach_capture(App& app, int label);    // stores the largest face of the latest frame
void teach_panel(App& app);                 // the ImGui section
std::string teach_json(const App& app);     // for window.ferkit.latest.teach
void teach_save_models(App& app);           // the base and current model into browser storage (when not default)
void teach_download_model(App& app);        // the current model as a .ferkit download
