// ferkit in the browser: SDL2 + WebGL 2 + Dear ImGui over the core (ferkit.h), in the shape of Dear ImGui's
// SDL2 + OpenGL 3 examples for Emscripten (examples/example_emscripten_opengl3 in Debian's imgui 1.86 sources):
// main() sets up SDL, GL and ImGui, then hands main_loop to the browser, which calls it once per animation frame.
// Each frame: the shell's camera (or an opened image) is uploaded into a GL texture and read back into wasm memory
// (web_js.h), the pipeline finds and classifies the faces, ImGui draws the video, boxes, labels, probability bars
// and the teach panel (before the first frame: the first-run view, with Start camera and Open an image), and the
// result is published on window.ferkit.latest for scripts and tests. Nothing leaves
// the page: the model, the face detector and the frames stay in this tab. The functions JavaScript calls are in
// exports.cpp.
#include <GLES3/gl3.h>
#include <SDL.h>
#include <emscripten.h>
#include <emscripten/html5.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app.h"
#include "ferkit.h"
#include "imgui.h"
#include "imgui_impl_opengl3.h"
#include "imgui_impl_sdl.h"
#include "web_js.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

const char* kCameraStates[] = {"not started", "starting", "live", "denied", "no camera", "lost", "error"};

App g_app;  // the page's one App: the browser calls main_loop with it long after main() has returned

std::vector<uint8_t> read_bundled(const char* path) {
  std::vector<uint8_t> data;
  if (FILE* f = std::fopen(path, "rb")) {
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
  }
  return data;
}

// window.ferkit.latest: the frame, its timings and faces, and the teach panel's state (published as JSON).
void publish(App& app) {
  const auto& names = app.pipe->model().class_names;
  const auto& t = app.pipe->times();
  nlohmann::json faces = nlohmann::json::array();
  for (size_t i = 0; i < app.pipe->faces().size(); ++i) {
    const auto& f = app.pipe->faces()[i];
    nlohmann::json probs = nlohmann::json::object(), smoothed = nlohmann::json::object();
    for (int c = 0; c < ferkit::kNumClasses; ++c) {
      probs[names[c]] = f.probs[c];
      smoothed[names[c]] = f.smoothed[c];
    }
    nlohmann::json landmarks = nlohmann::json::array();
    for (const ferkit::Point& k : f.keypoints) landmarks.push_back({{"x", k.x}, {"y", k.y}});
    faces.push_back({{"box", {{"x", f.box.x}, {"y", f.box.y}, {"w", f.box.w}, {"h", f.box.h}}},
                     {"score", f.box.score},
                     {"landmarks", std::move(landmarks)},
                     {"roll", std::atan2(f.keypoints[ferkit::kLeftEye].y - f.keypoints[ferkit::kRightEye].y,
                                         f.keypoints[ferkit::kLeftEye].x - f.keypoints[ferkit::kRightEye].x)},
                     {"track", f.track},
                     {"missed", f.missed},
                     {"label", names[f.label]},
                     {"mirrored", f.mirrored},
                     {"why", i < app.why.explained.size() && app.why.explained[i] >= 0
                                 ? nlohmann::json(names[app.why.explained[i]]) : nlohmann::json()},
                     {"probabilities", std::move(probs)},
                     {"smoothed", std::move(smoothed)}});
  }
  const nlohmann::json latest = {
      {"frame", {{"width", app.frame_w}, {"height", app.frame_h}, {"source", app.source ? "image" : "camera"},
                 {"index", app.frames}, {"flip_averaged", app.flip_averaged}}},
      {"fps", ImGui::GetIO().Framerate},
      {"timings", {{"grab_ms", app.grab_ms}, {"detect_ms", t.detect_ms}, {"detect_passes", t.passes},
                   {"classify_ms", t.classify_ms},
                   {"draw_ms", app.draw_ms}}},
      {"faces", std::move(faces)},
      {"why", why_json(app)},
      {"teach", app.published_teach},
      {"ui", app.published_ui}};
  app.published = latest.dump();
  ferkit_js_publish(app.published.c_str());
}

nlohmann::json rect_json(ImVec2 a, ImVec2 b) { return {{"x", a.x}, {"y", a.y}, {"w", b.x - a.x}, {"h", b.y - a.y}}; }

// The video with boxes and labels, scaled to fit the region and centred in it.
void draw_video(App& app, ImVec2 avail) {
  const float scale = std::min(avail.x / app.frame_w, avail.y / app.frame_h);
  const ImVec2 size(app.frame_w * scale, app.frame_h * scale);
  const ImVec2 cursor = ImGui::GetCursorPos();
  ImGui::SetCursorPos(ImVec2(cursor.x + std::max(0.0f, (avail.x - size.x) / 2),
                             cursor.y + std::max(0.0f, (avail.y - size.y) / 2)));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const bool mirror = app.mirror && app.source == 0;
  ImGui::Image(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(app.video_tex)), size,
               mirror ? ImVec2(1, 0) : ImVec2(0, 0), mirror ? ImVec2(0, 1) : ImVec2(1, 1));
  app.video_rect = rect_json(ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
  ImDrawList* dl = ImGui::GetWindowDrawList();
  why_draw_overlay(app, dl, p0, scale, mirror);  // under the boxes and labels
  const auto& names = app.pipe->model().class_names;
  for (const auto& f : app.pipe->faces()) {
    float x = mirror ? app.frame_w - f.box.x - f.box.w : f.box.x;
    ImVec2 a(p0.x + x * scale, p0.y + f.box.y * scale), b(a.x + f.box.w * scale, a.y + f.box.h * scale);
    // A face the detector missed in this frame keeps its box, drawn fainter.
    dl->AddRect(a, b, f.missed ? IM_COL32(80, 220, 120, 110) : IM_COL32(80, 220, 120, 255), 0, 0, 2.5f);
    if (app.landmarks)
      for (const ferkit::Point& k : f.keypoints)
        dl->AddCircleFilled(ImVec2(p0.x + (mirror ? app.frame_w - k.x : k.x) * scale, p0.y + k.y * scale), 3.5f,
                            IM_COL32(255, 210, 60, 255));
    char label[64];
    std::snprintf(label, sizeof label, "%s %.0f%%", names[f.label].c_str(), 100 * f.smoothed[f.label]);
    const ImVec2 ts = ImGui::CalcTextSize(label);
    dl->AddRectFilled(ImVec2(a.x, a.y - ts.y - 4), ImVec2(a.x + ts.x + 8, a.y), IM_COL32(80, 220, 120, 230));
    dl->AddText(ImVec2(a.x + 4, a.y - ts.y - 2), IM_COL32(10, 20, 10, 255), label);
  }
}

const ImVec4 kAccent(0.16f, 0.45f, 0.82f, 1), kAccentHover(0.22f, 0.53f, 0.92f, 1), kAccentActive(0.12f, 0.38f, 0.72f, 1);
const ImVec4 kWarning(1, 0.62f, 0.42f, 1), kPrivacy(0.55f, 0.85f, 0.62f, 1);

// A full-width button in the big font; `primary` in the accent colour. Its rectangle (canvas pixels) goes in *rect.
bool big_button(App& app, const char* label, bool primary, nlohmann::json* rect) {
  if (primary) {
    ImGui::PushStyleColor(ImGuiCol_Button, kAccent);
    ImGui::PushStyleColor(ImGuiCol_ButtonHovered, kAccentHover);
    ImGui::PushStyleColor(ImGuiCol_ButtonActive, kAccentActive);
  }
  ImGui::PushFont(app.big_font);
  ImGui::PushStyleVar(ImGuiStyleVar_FramePadding, ImVec2(12, 10));
  ImGui::PushStyleVar(ImGuiStyleVar_FrameRounding, 6);
  const bool pressed = ImGui::Button(label, ImVec2(-FLT_MIN, 0));
  ImGui::PopStyleVar(2);
  ImGui::PopFont();
  if (primary) ImGui::PopStyleColor(3);
  *rect = rect_json(ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
  return pressed;
}

void coloured_text(ImVec4 colour, const char* text) {
  ImGui::PushStyleColor(ImGuiCol_Text, colour);
  ImGui::TextWrapped("%s", text);
  ImGui::PopStyleColor();
}

// Before the first frame (the camera not started or not yet delivering, no image opened): what the page does, the
// two ways to begin, and where the pictures go (nowhere). Centred; as wide as a phone's screen at most.
void draw_first_run(App& app, ImVec2 display) {
  const float width = std::min(460.0f, display.x - 24);
  ImGui::SetNextWindowPos(ImVec2(display.x / 2, display.y * 0.45f), ImGuiCond_Always, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowSizeConstraints(ImVec2(width, 0), ImVec2(width, display.y - 24));
  ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(22, 20));
  ImGui::PushStyleVar(ImGuiStyleVar_WindowRounding, 10);
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(8, 10));
  ImGui::Begin("welcome", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                       ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoSavedSettings);
  ImGui::PushFont(app.big_font);
  ImGui::TextUnformatted("ferkit");
  ImGui::PopFont();
  ImGui::TextWrapped("Shows the expression on each face in your camera or in a photo: angry, disgust, fear, happy, "
                     "sad, surprise or neutral.");
  ImGui::Spacing();
  nlohmann::json start, open;
  const bool starting = app.camera_state == 1 || app.camera_state == 2;
  if (big_button(app, starting ? "Starting the camera..." : "Start camera", true, &start) && !starting)
    ferkit_js_select_camera(app.camera_index);
  if (big_button(app, "Open an image...", false, &open)) ferkit_js_open_image();
  if (display.x >= 700) ImGui::TextDisabled("or drop an image anywhere on the page");  // not on a phone
  if (app.camera_state == 1)
    ImGui::TextWrapped("Allow the camera in the browser's prompt.");
  else if (app.camera_state == 2)
    ImGui::TextWrapped("Waiting for the first camera frame...");
  else if (!app.camera_message.empty())
    coloured_text(kWarning, app.camera_message.c_str());
  ImGui::Separator();
  coloured_text(kPrivacy, "Everything runs on this device: no image or face leaves the page.");
  ImGui::End();
  ImGui::PopStyleVar(3);
  app.ui = {{"screen", "first-run"}, {"advanced_open", false}, {"start_button", std::move(start)},
            {"open_button", std::move(open)}};
}

// A slider with its name on its own line above it (names too long for ImGui's label on the right).
bool labelled_slider_int(const char* label, int* v, int lo, int hi, const char* format = "%d") {
  ImGui::TextWrapped("%s", label);
  ImGui::PushID(label);
  ImGui::SetNextItemWidth(-FLT_MIN);
  const bool changed = ImGui::SliderInt("##v", v, lo, hi, format);
  ImGui::PopID();
  return changed;
}
bool labelled_slider_float(const char* label, float* v, float lo, float hi, const char* format) {
  ImGui::TextWrapped("%s", label);
  ImGui::PushID(label);
  ImGui::SetNextItemWidth(-FLT_MIN);
  const bool changed = ImGui::SliderFloat("##v", v, lo, hi, format);
  ImGui::PopID();
  return changed;
}

// "Advanced" (collapsed at first): the live view's detection and smoothing settings, the timings and the model.
// Returns whether it is open.
bool draw_advanced(App& app) {
  if (!ImGui::CollapsingHeader("Advanced")) return false;
  ImGui::TextDisabled("Labels");
  ImGui::Checkbox("Smooth the labels over time", &app.options.smooth);
  labelled_slider_float("Smoothing strength", &app.options.smoothing, 0.0f, 0.95f, "%.2f");
  ImGui::Checkbox("Classify the mirror image every other frame", &app.options.alternate_flip);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("With smoothing, every other frame classifies the mirrored face:\n"
                      "the labels average both views over time at one view's cost.");
  ImGui::Checkbox("Both views on every frame (twice the work)", &app.options.flip_tta);
  ImGui::TextDisabled("Face detection");
  ImGui::Checkbox("Draw the landmarks (eyes, nose, mouth, ears)", &app.landmarks);
  labelled_slider_float("How sure the detector must be", &app.options.detect.min_score, 0.3f, 0.9f, "%.2f");
  labelled_slider_int("Smallest face to look for in an opened image", &app.options.find.min_face, 16, 160,
                      "%d pixels");
  ImGui::TextDisabled("Speed");
  const auto& t = app.pipe->times();
  ImGui::Text("%.1f frames/s", ImGui::GetIO().Framerate);
  ImGui::Text("grab %.2f ms  detect %.2f ms (%d passes)", app.grab_ms, t.detect_ms, t.passes);
  ImGui::Text("classify %.2f ms  draw %.2f ms", t.classify_ms, app.draw_ms);
  ImGui::TextDisabled("Model");
  const ferkit::Model& m = app.pipe->model();
  ImGui::TextWrapped("%s", app.models.name.c_str());
  ImGui::Text("%zu parameters, %.1f M MACs a face", m.num_params(), m.macs_per_image() / 1e6);
  if (!app.models.accuracy.empty()) ImGui::TextWrapped("%s", app.models.accuracy.c_str());
  if (ImGui::Button("Load model...")) ferkit_js_open_model();
  ImGui::SameLine();
  if (ImGui::Button("Download model")) teach_download_model(app.models);
  return true;
}

void draw_panel(App& app) {
  if (ImGui::Button("Start camera")) ferkit_js_select_camera(app.camera_index);
  ImGui::SameLine();
  if (ImGui::Button("Open image...")) ferkit_js_open_image();
  ImGui::SameLine();
  ImGui::Checkbox("Mirror", &app.mirror);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("Show the camera as a mirror does");
  ImGui::Text("Camera: %s", kCameraStates[std::clamp(app.camera_state, 0, 6)]);
  if (!app.camera_message.empty()) coloured_text(kWarning, app.camera_message.c_str());
  if (app.cameras.size() > 1) {
    const char* preview = app.cameras[std::min<size_t>(app.camera_index, app.cameras.size() - 1)].c_str();
    ImGui::SetNextItemWidth(-FLT_MIN);
    if (ImGui::BeginCombo("##camera", preview)) {
      for (size_t i = 0; i < app.cameras.size(); ++i)
        if (ImGui::Selectable(app.cameras[i].c_str(), static_cast<int>(i) == app.camera_index)) {
          app.camera_index = static_cast<int>(i);
          ferkit_js_select_camera(app.camera_index);
        }
      ImGui::EndCombo();
    }
  }
  ImGui::Separator();
  const auto& faces = app.pipe->faces();
  const auto& names = app.pipe->model().class_names;
  if (faces.empty()) ImGui::TextDisabled("No face in view");
  for (size_t i = 0; i < faces.size(); ++i) {
    const auto& f = faces[i];
    ImGui::PushID(static_cast<int>(i));
    ImGui::Text("Face %d: %s", f.track, names[f.label].c_str());
    for (int c = 0; c < ferkit::kNumClasses; ++c) {
      char overlay[48];
      std::snprintf(overlay, sizeof overlay, "%s %.1f%%", names[c].c_str(), 100 * f.smoothed[c]);
      ImGui::ProgressBar(f.smoothed[c], ImVec2(-1, 0), overlay);
    }
    ImGui::PopID();
  }
  if (!app.models.error.empty()) coloured_text(ImVec4(1, 0.45f, 0.45f, 1), app.models.error.c_str());
}

// Input: ImGui's events, and keys 1-7, which capture the current face as that expression (FER-2013 order) unless
// a text field has the keys. The SDL window follows the canvas's CSS size.
void handle_events(App& app) {
  SDL_Event event;
  while (SDL_PollEvent(&event)) {
    ImGui_ImplSDL2_ProcessEvent(&event);
    if (event.type == SDL_KEYDOWN && !event.key.repeat && !ImGui::GetIO().WantTextInput &&
        event.key.keysym.sym >= SDLK_1 && event.key.keysym.sym <= SDLK_7)
      teach_capture(app, event.key.keysym.sym - SDLK_1);
  }
  double css_w = 0, css_h = 0;
  emscripten_get_element_css_size("#canvas", &css_w, &css_h);
  int w = 0, h = 0;
  SDL_GetWindowSize(app.window, &w, &h);
  if (css_w > 0 && css_h > 0 && (static_cast<int>(css_w) != w || static_cast<int>(css_h) != h))
    SDL_SetWindowSize(app.window, static_cast<int>(css_w), static_cast<int>(css_h));
}

// The newest frame into the texture and into wasm memory, then its faces and expressions. Returns false when the
// shell had no new frame.
bool process_frame(App& app) {
  const auto t0 = Clock::now();
  const int fw = ferkit_js_frame_width(), fh = ferkit_js_frame_height();
  if (fw <= 0 || fh <= 0) return false;
  if (app.frame.size() < static_cast<size_t>(fw) * fh * 4) app.frame.resize(static_cast<size_t>(fw) * fh * 4);
  const int source = ferkit_js_grab_frame(app.video_tex, app.frame.data(), fw, fh);
  if (source < 0) return false;
  app.grab_ms = ms_since(t0);
  app.frame_w = fw;
  app.frame_h = fh;
  app.source = source;
  // A still image is processed once: it gets the still-image search (tiles for small faces) and both views of each
  // face (flip averaging, which video gets over frames from alternate_flip).
  ferkit::PipelineOptions o = app.options;
  if (source == 1) o.still = true, o.flip_tta = true;
  app.pipe->process_rgba(app.frame.data(), fw, fh, o);
  app.flip_averaged = o.flip_tta;
  ++app.frames;
  return true;
}

// The UI. Before the first frame: the first-run view. Then the video with its boxes and the panel: side by side
// in a wide canvas, the video above the panel (full width) in a narrow or portrait one (a phone held upright).
void draw(App& app) {
  const auto t0 = Clock::now();
  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplSDL2_NewFrame();
  ImGui::NewFrame();
  const ImVec2 display = ImGui::GetIO().DisplaySize;
  const bool narrow = display.x < 700 || display.x < display.y;
  if (!app.frame_w) {
    draw_first_run(app, display);
  } else {
    ImVec2 video_pos(0, 0), video_size, panel_pos, panel_size;
    if (narrow) {
      const float h = std::min(display.x * app.frame_h / app.frame_w + 16, display.y * 0.45f);
      video_size = ImVec2(display.x, h);
      panel_pos = ImVec2(0, h);
      panel_size = ImVec2(display.x, display.y - h);
    } else {
      const float panel_w = std::min(380.0f, display.x * 0.4f);
      video_size = ImVec2(display.x - panel_w, display.y);
      panel_pos = ImVec2(display.x - panel_w, 0);
      panel_size = ImVec2(panel_w, display.y);
    }
    ImGui::SetNextWindowPos(video_pos);
    ImGui::SetNextWindowSize(video_size);
    // No window background behind the video: the clear colour below is what it would blend to, and in software GL
    // (headless Chromium) every full-canvas fill costs frame time.
    ImGui::Begin("video", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                       ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoBackground);
    draw_video(app, ImGui::GetContentRegionAvail());
    ImGui::End();
    ImGui::SetNextWindowPos(panel_pos);
    ImGui::SetNextWindowSize(panel_size);
    ImGui::Begin("ferkit", nullptr, ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse);
    draw_panel(app);
    why_panel(app);
    teach_panel(app);
    ImGui::Separator();
    const bool advanced = draw_advanced(app);
    ImGui::End();
    app.ui = {{"screen", "main"}, {"advanced_open", advanced}, {"video", app.video_rect},
              {"panel", rect_json(panel_pos, ImVec2(panel_pos.x + panel_size.x, panel_pos.y + panel_size.y))}};
  }
  app.ui["layout"] = narrow ? "narrow" : "wide";
  ImGui::Render();
  SDL_GL_MakeCurrent(app.window, app.gl);
  glViewport(0, 0, static_cast<int>(display.x), static_cast<int>(display.y));
  glClearColor(0.064f, 0.064f, 0.065f, 1.0f);  // the dark style's window background over the old clear colour
  glClear(GL_COLOR_BUFFER_BIT);
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  SDL_GL_SwapWindow(app.window);
  app.draw_ms = ms_since(t0);
}

// One animation frame.
void main_loop(void* arg) {
  App& app = *static_cast<App*>(arg);
  handle_events(app);
  teach_tick(app);
  const bool new_frame = process_frame(app);
  if (new_frame) why_update(app);
  draw(app);
  // Published when a frame was processed, or when the teach state or the view changed (a still image stays
  // still, and before the first frame only the view changes).
  nlohmann::json teach = teach_json(app);
  if (new_frame || teach != app.published_teach || app.ui != app.published_ui) {
    app.published_teach = std::move(teach);
    app.published_ui = app.ui;
    publish(app);
  }
  if (!app.ready_announced) {
    app.ready_announced = true;
    ferkit_js_ready();
  }
}

}  // namespace

int main(int, char**) {
  if (SDL_Init(SDL_INIT_VIDEO | SDL_INIT_TIMER) != 0) {
    ferkit_js_fail((std::string("SDL could not start: ") + SDL_GetError()).c_str());
    return 1;
  }
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_FLAGS, 0);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_PROFILE_MASK, SDL_GL_CONTEXT_PROFILE_ES);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_MAJOR_VERSION, 3);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_MINOR_VERSION, 0);
  SDL_GL_SetAttribute(SDL_GL_DOUBLEBUFFER, 1);
  // ImGui needs neither depth nor stencil: without them each frame clears and composites less.
  SDL_GL_SetAttribute(SDL_GL_DEPTH_SIZE, 0);
  SDL_GL_SetAttribute(SDL_GL_STENCIL_SIZE, 0);
  g_app.window = SDL_CreateWindow("ferkit", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, 1280, 720,
                                  static_cast<SDL_WindowFlags>(SDL_WINDOW_OPENGL | SDL_WINDOW_RESIZABLE));
  g_app.gl = g_app.window ? SDL_GL_CreateContext(g_app.window) : nullptr;
  if (!g_app.gl) {
    ferkit_js_fail("This browser cannot create a WebGL 2 context, which ferkit needs to draw.");
    return 1;
  }
  SDL_GL_SetSwapInterval(1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui::StyleColorsDark();
  // The default font (13 px) and the same at twice its size, which keeps its pixels sharp (first-run view).
  ImGui::GetIO().Fonts->AddFontDefault();
  ImFontConfig big;
  big.SizePixels = 26;
  g_app.big_font = ImGui::GetIO().Fonts->AddFontDefault(&big);
  ImGui_ImplSDL2_InitForOpenGL(g_app.window, g_app.gl);
  ImGui_ImplOpenGL3_Init("#version 300 es");

  // The frame texture (the shell uploads each frame from wasm memory).
  g_app.video_tex = make_texture();

  // The bundled default model and face detector (index.data, same origin).
  g_app.models.default_file = read_bundled("/assets/default.ferkit");
  try {
    g_app.pipe = ferkit::open_pipeline(g_app.models.default_file, read_bundled("/assets/blazeface.ferkit"));
  } catch (const std::exception& e) {
    ferkit_js_fail((std::string("The bundled model or face detector could not be loaded: ") + e.what()).c_str());
    return 1;
  }
  g_app.models.reset(*g_app.pipe);
  teach_init(g_app.teach);
  attach_exports(g_app);
  ferkit_js_start();
  emscripten_set_main_loop_arg(main_loop, &g_app, 0, true);
  return 0;
}
