// The C++ side's calls into the page (shell/ferkit-shell.js). Included once, by web/main.cpp: EM_JS defines
// the functions here. Each forwards to Module.ferkitShell, which owns the camera, file pickers and messages.
#pragma once
#include <emscripten.h>

// Width/height of the current source (camera or opened image); 0 when there is none.
EM_JS(int, ferkit_js_frame_width, (), { return Module.ferkitShell.frameWidth(); });
EM_JS(int, ferkit_js_frame_height, (), { return Module.ferkitShell.frameHeight(); });
// Copies the newest frame into wasm memory at `ptr` (w*h RGBA) and uploads it from there into texture `tex`. Returns 0 (camera) or 1 (image) for a new frame, -1 for none.
EM_JS(int, ferkit_js_grab_frame, (unsigned tex, unsigned char* ptr, int w, int h), {
  return Module.ferkitShell.grab(tex, ptr, w, h);
});
EM_JS(void, ferkit_js_publish, (const char* json), { Module.ferkitShell.publish(UTF8ToString(json)); });
EM_JS(void, ferkit_js_select_camera, (int index), { Module.ferkitShell.startCamera(index); });
EM_JS(void, ferkit_js_open_image, (), { Module.ferkitShell.pickImage(); });
EM_JS(void, ferkit_js_open_model, (), { Module.ferkitShell.pickModel(); });
EM_JS(void, ferkit_js_start, (), { Module.ferkitShell.start(); });
EM_JS(void, ferkit_js_ready, (), { Module.ferkitShell.ready(); });
EM_JS(void, ferkit_js_fail, (const char* message), { Module.ferkitShell.fail(UTF8ToString(message)); });
