// Every function the page's JavaScript calls (shell/ferkit-shell.js and window.ferkit): the camera's state, model
// files, the latest frame's faces, saliency maps, and the teach panel's captures, fine-tuning, storage and
// imports. Each is a
// thin wrapper over App (app.h), PageModels (models.h), the maps (why.h) or the teach panel (teach.h). The JS API for other pages
// (dist/ferkit.mjs) runs the engine instead, whose entry points are listed in engine.cpp.
#include <emscripten.h>
#include <malloc.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app.h"

namespace {
App* g_app = nullptr;  // main()'s App, attached before the page starts
}

void attach_exports(App& app) { g_app = &app; }

extern "C" {

// ---- the camera (the shell owns getUserMedia)

// state: an index into main.cpp's kCameraStates; message: shown under it (may be null).
EMSCRIPTEN_KEEPALIVE void ferkit_camera_state(int state, const char* message) {
  g_app->camera_state = state;
  g_app->camera_message = message ? message : "";
}

// The cameras' labels, a JSON array of strings, for the panel's camera list.
EMSCRIPTEN_KEEPALIVE void ferkit_set_cameras(const char* labels_json) {
  g_app->cameras.clear();
  nlohmann::json j = nlohmann::json::parse(labels_json ? labels_json : "[]", nullptr, false);
  if (j.is_array())
    for (const auto& l : j)
      if (l.is_string()) g_app->cameras.push_back(l.get<std::string>());
}

// ---- models

// Loads a model file the user picked; returns 1 on success. On failure the message is shown and the current
// model keeps working.
EMSCRIPTEN_KEEPALIVE int ferkit_load_model(const uint8_t* data, int size, const char* name) {
  if (!g_app->models.use(*g_app->pipe, data, static_cast<size_t>(std::max(size, 0)), name ? name : "model file",
                         PageModels::Kind::Base))
    return 0;
  teach_save_models(g_app->models);
  return 1;
}

// A buffer of size bytes for a model file on its way in (the fine-tuning worker's result): JavaScript writes the
// file there and passes the pointer to ferkit_finetune_done, which then copies nothing. Valid until that call.
EMSCRIPTEN_KEEPALIVE uint8_t* ferkit_model_buffer(int size) {
  return g_app->models.incoming_buffer(static_cast<size_t>(std::max(size, 0)));
}

EMSCRIPTEN_KEEPALIVE const char* ferkit_model_error() { return g_app->models.error.c_str(); }

// At start-up, a model browser storage kept (tuned = 0: the base, 1: the fine-tuned model in use); 1 if used.
EMSCRIPTEN_KEEPALIVE int ferkit_restore_model(const uint8_t* data, int size, int tuned) {
  return g_app->models.use(*g_app->pipe, data, static_cast<size_t>(std::max(size, 0)),
                           tuned ? "fine-tuned model (saved in this browser)" : "model saved in this browser",
                           tuned ? PageModels::Kind::Tuned : PageModels::Kind::Base)
             ? 1
             : 0;
}

// The model file in use (for window.ferkit.modelBytes()); its size in *size.
EMSCRIPTEN_KEEPALIVE const uint8_t* ferkit_model_bytes(int* size) {
  *size = static_cast<int>(g_app->models.current.size());
  return g_app->models.current.data();
}

EMSCRIPTEN_KEEPALIVE void ferkit_download_model() { teach_download_model(g_app->models); }

EMSCRIPTEN_KEEPALIVE void ferkit_reset_model() {
  g_app->models.reset(*g_app->pipe);
  teach_save_models(g_app->models);
}

// ---- the latest frame

// The 48x48 crop of face i of the latest frame (what the model saw), or null.
EMSCRIPTEN_KEEPALIVE const uint8_t* ferkit_face_crop(int i) {
  if (!g_app->pipe || i < 0 || i >= static_cast<int>(g_app->pipe->faces().size())) return nullptr;
  return g_app->pipe->faces()[i].crop;
}

// ---- the live view

// The detector's landmarks drawn on each face (1) or not (0), as the panel's Advanced setting.
EMSCRIPTEN_KEEPALIVE void ferkit_show_landmarks(int on) { g_app->landmarks = on != 0; }

// ---- saliency maps (why.h)

// The overlay on (1) or off (0), with method 0 Grad-CAM, 1 gradient x input, 2 SmoothGrad.
EMSCRIPTEN_KEEPALIVE void ferkit_show_why(int on, int method) {
  g_app->why.overlay = on != 0;
  g_app->why.method = std::clamp(method, 0, 2);
}

// Face i of the latest frame: its map (2304 floats at out) for class cls (-1: its label); the class explained,
// or -1 when there is no such face, method or class.
EMSCRIPTEN_KEEPALIVE int ferkit_explain(int face, int method, int cls, float* out) {
  return why_explain(*g_app, face, method, cls, out);
}

// ---- teaching

// Stores the largest face of the latest frame as a sample of `label` (0..6); 1 if stored.
EMSCRIPTEN_KEEPALIVE int ferkit_capture(int label) { return teach_capture(*g_app, label) ? 1 : 0; }

EMSCRIPTEN_KEEPALIVE void ferkit_clear_samples() { teach_clear_samples(g_app->teach); }

// An image file imported as a sample of `label` (see teach_import_image); 1 if added.
EMSCRIPTEN_KEEPALIVE int ferkit_import_image(const uint8_t* data, int size, int label, const char* name) {
  return teach_import_image(*g_app, data, size, label, name ? name : "image") ? 1 : 0;
}

// Starts fine-tuning (settings_json: FinetuneConfig's fields over the panel's, may be "" or "{}"); 0 with the
// reason in latest.teach.message if it could not start.
EMSCRIPTEN_KEEPALIVE int ferkit_finetune(const char* settings_json) {
  return teach_finetune(*g_app, settings_json) ? 1 : 0;
}

// The fine-tuning worker's answers.
EMSCRIPTEN_KEEPALIVE void ferkit_finetune_progress(const char* json) { teach_finetune_progress(g_app->teach, json); }

EMSCRIPTEN_KEEPALIVE void ferkit_finetune_done(const uint8_t* model, int size, const char* json) {
  teach_finetune_done(*g_app, model, size, json);
}

EMSCRIPTEN_KEEPALIVE void ferkit_finetune_failed(const char* message) { teach_finetune_failed(g_app->teach, message); }

// Browser storage: the outcome of a save (ok = 0: it failed; message says why), and at start-up the samples it
// kept (replacing any in memory; not saved back).
EMSCRIPTEN_KEEPALIVE void ferkit_storage_result(int ok, const char* message) {
  teach_storage_result(g_app->teach, ok != 0, message);
}

EMSCRIPTEN_KEEPALIVE void ferkit_restore_samples(const uint8_t* crops, const uint8_t* labels, int n) {
  teach_restore_samples(g_app->teach, crops, labels, n);
}

// ---- benchmarks

// Bytes malloc has handed out and not taken back (dlmalloc's mallinfo): what the page's WebAssembly memory holds
// now, where the memory's size is its high-water mark (bench/soak_page.mjs watches both).
EMSCRIPTEN_KEEPALIVE int ferkit_heap_in_use() { return static_cast<int>(mallinfo().uordblks); }

}  // extern "C"
