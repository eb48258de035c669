// ferkit in the browser: SDL2 + WebGL 2 + Dear ImGui (the structure of ImGui's Emscripten example), linked with
// ferkit_core. This first page proves the core runs as WebAssembly: it builds the built-in "tiny" model, shows
// its parameter count and times one inference pass.
//
// For the page and its tests: when the first frame has been drawn, Module.ferkitReady is true and
// Module.ferkitInfo holds {params, classes, predict_ms}; the loading message is hidden.
#include <GLES3/gl3.h>
#include <SDL.h>
#include <emscripten.h>
#include <emscripten/html5.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "imgui.h"
#include "imgui_impl_opengl3.h"
#include "imgui_impl_sdl.h"
#include "model.h"
#include "spec.h"

// Publishes the core check to the page (Module.ferkitInfo, Module.ferkitReady) and tells the shell.
EM_JS(void, ferkit_announce, (int ok, double params, int classes, double predict_ms), {
  Module.ferkitInfo = {ok: !!ok, params: params, classes: classes, predict_ms: predict_ms};
  Module.ferkitReady = true;
  if (Module.onFerkitReady) Module.onFerkitReady();
});

namespace {

struct App {
  SDL_Window* window = nullptr;
  SDL_GLContext gl = nullptr;
  // Core status.
  bool core_ok = false;
  std::string core_error;
  size_t params = 0;
  int classes = 0;
  double predict_ms = 0.0;
  std::vector<float> probs;
  bool announced = false;
};
App g_app;

void run_core_check(App& app) {
  try {
    ferkit::Model model(ferkit::resolve_spec("tiny"));
    model.init(1);
    app.params = model.num_params();
    app.classes = model.num_classes();
    ferkit::Workspace ws;
    ws.reserve(model, 1);
    const int side = model.preprocess.side;
    std::vector<uint8_t> pixels(static_cast<size_t>(side) * side * model.preprocess.channels);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37) & 255);
    app.probs.assign(app.classes, 0.0f);
    const auto t0 = std::chrono::steady_clock::now();
    ferkit::predict(model, ws, pixels.data(), 1, app.probs.data());
    app.predict_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    app.core_ok = true;
  } catch (const std::exception& e) {
    app.core_error = e.what();
    std::fprintf(stderr, "ferkit core check failed: %s\n", e.what());
  }
}

void main_loop(void* arg) {
  App& app = *static_cast<App*>(arg);
  SDL_Event event;
  while (SDL_PollEvent(&event)) ImGui_ImplSDL2_ProcessEvent(&event);

  // Keep the drawing buffer the size of the canvas as laid out by the page.
  double css_w = 0, css_h = 0;
  emscripten_get_element_css_size("#canvas", &css_w, &css_h);
  int w = 0, h = 0;
  SDL_GetWindowSize(app.window, &w, &h);
  if (css_w > 0 && css_h > 0 && (static_cast<int>(css_w) != w || static_cast<int>(css_h) != h))
    SDL_SetWindowSize(app.window, static_cast<int>(css_w), static_cast<int>(css_h));

  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplSDL2_NewFrame();
  ImGui::NewFrame();

  ImGui::SetNextWindowPos(ImVec2(20, 20), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowSize(ImVec2(360, 0), ImGuiCond_FirstUseEver);
  ImGui::Begin("ferkit");
  ImGui::Text("ferkit");
  ImGui::Separator();
  if (app.core_ok) {
    ImGui::Text("tiny model: %zu parameters", app.params);
    ImGui::Text("classes: %d", app.classes);
    ImGui::Text("one inference: %.3f ms", app.predict_ms);
  } else {
    ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "core error: %s", app.core_error.c_str());
  }
  ImGui::Text("%.1f FPS", ImGui::GetIO().Framerate);
  ImGui::End();

  ImGui::Render();
  SDL_GL_MakeCurrent(app.window, app.gl);
  const ImGuiIO& io = ImGui::GetIO();
  glViewport(0, 0, static_cast<int>(io.DisplaySize.x), static_cast<int>(io.DisplaySize.y));
  glClearColor(0.12f, 0.13f, 0.15f, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  SDL_GL_SwapWindow(app.window);

  if (!app.announced) {
    app.announced = true;
    ferkit_announce(app.core_ok, static_cast<double>(app.params), app.classes, app.predict_ms);
  }
}

}  // namespace

int main(int, char**) {
  if (SDL_Init(SDL_INIT_VIDEO | SDL_INIT_TIMER) != 0) {
    std::fprintf(stderr, "SDL_Init: %s\n", SDL_GetError());
    return 1;
  }
  // WebGL 2 = OpenGL ES 3.0.
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_FLAGS, 0);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_PROFILE_MASK, SDL_GL_CONTEXT_PROFILE_ES);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_MAJOR_VERSION, 3);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_MINOR_VERSION, 0);
  SDL_GL_SetAttribute(SDL_GL_DOUBLEBUFFER, 1);
  g_app.window = SDL_CreateWindow("ferkit", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, 1280, 720,
                                  static_cast<SDL_WindowFlags>(SDL_WINDOW_OPENGL | SDL_WINDOW_RESIZABLE));
  if (!g_app.window) {
    std::fprintf(stderr, "SDL_CreateWindow: %s\n", SDL_GetError());
    return 1;
  }
  g_app.gl = SDL_GL_CreateContext(g_app.window);
  if (!g_app.gl) {
    std::fprintf(stderr, "WebGL 2 context: %s\n", SDL_GetError());
    return 1;
  }
  SDL_GL_SetSwapInterval(1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;  // no imgui.ini in the browser
  ImGui::StyleColorsDark();
  ImGui_ImplSDL2_InitForOpenGL(g_app.window, g_app.gl);
  ImGui_ImplOpenGL3_Init("#version 300 es");

  run_core_check(g_app);

  // Hands control to the browser: main_loop runs once per animation frame; main() does not return.
  emscripten_set_main_loop_arg(main_loop, &g_app, 0, true);
  return 0;
}
