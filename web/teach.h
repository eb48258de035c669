// "Teach it your face" (teach.cpp): the user's labelled samples, the gallery, fine-tuning in a worker and
// persistence in the browser. The panel and the video loop call these; so do the functions JavaScript calls
// (exports.cpp) for the worker's and the storage's answers.
#pragma once
#include <GLES3/gl3.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "finetune.h"

struct App;
struct PageModels;

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
  int replay_faces = 0;           // reference faces the fine-tuning replays (the model's replay bank)
  double replay_agreement = -1;   // of them, the share that kept the base model's class after it
  double started = 0, seconds = 0;
  bool samples_changed = false;  // since the last save
  double save_after = 0;         // when to save them (debounced)
  std::string storage_message;
  bool storage_ok = true;
};

void teach_init(Teach& t);                  // the gallery's texture
void teach_tick(App& app);                  // burst capture, debounced saving; once a frame
bool teach_capture(App& app, int label);    // stores the largest face of the latest frame
void teach_panel(App& app);                 // the ImGui section
nlohmann::json teach_json(const App& app);  // window.ferkit.latest.teach
void teach_save_models(const PageModels& m);     // the base and current model into browser storage (when not default)
void teach_download_model(const PageModels& m);  // the model in use as a .ferkit download
void teach_clear_samples(Teach& t);

// Fine-tuning with the panel's settings, overridden by the fields in settings_json (FinetuneConfig's names; may
// be "" or "{}"); false, with the reason in t.message, if it could not start.
bool teach_finetune(App& app, const char* settings_json);
// The worker's answers: progress (JSON), the result (model bytes and the final progress JSON), or a failure.
void teach_finetune_progress(Teach& t, const char* json);
void teach_finetune_done(App& app, const uint8_t* model, int size, const char* json);
void teach_finetune_failed(Teach& t, const char* message);
// Browser storage's answer to a save: ok = false shows message until a later save succeeds.
void teach_storage_result(Teach& t, bool ok, const char* message);
// The samples browser storage kept, replacing any in memory (not saved back).
void teach_restore_samples(Teach& t, const uint8_t* crops, const uint8_t* labels, int n);
// An image file imported as a sample of `label`: a 48x48 image as it is; otherwise the largest face found in it,
// or (no face found) the whole image squeezed to 48x48. True if added; otherwise the reason is shown.
bool teach_import_image(App& app, const uint8_t* data, int size, int label, const std::string& name);
