# Dear ImGui 1.86 as a static library for the WebAssembly app, from Debian's source package (`apt-get source imgui`;
# libimgui-dev has no backends and only a native library): the core plus the SDL2 and OpenGL 3 / WebGL 2 backends.
# Needs SDL2::SDL2 (cmake/sdl2_emscripten.cmake). Defines ImGui::ImGui.
#
# FERKIT_IMGUI_SOURCE_DIR: the unpacked source (scripts/setup.sh --web puts it at build/deps/imgui).

set(FERKIT_IMGUI_SOURCE_DIR ${PROJECT_SOURCE_DIR}/build/deps/imgui CACHE PATH
    "Dear ImGui source tree (Debian source package imgui, from scripts/setup.sh --web)")
if(NOT EXISTS ${FERKIT_IMGUI_SOURCE_DIR}/imgui.cpp OR NOT EXISTS ${FERKIT_IMGUI_SOURCE_DIR}/backends/imgui_impl_sdl.cpp)
  message(FATAL_ERROR "No Dear ImGui source at ${FERKIT_IMGUI_SOURCE_DIR}: run scripts/setup.sh --web "
                      "(apt-get source imgui), or set FERKIT_IMGUI_SOURCE_DIR")
endif()

add_library(ferkit_imgui STATIC
  ${FERKIT_IMGUI_SOURCE_DIR}/imgui.cpp
  ${FERKIT_IMGUI_SOURCE_DIR}/imgui_demo.cpp
  ${FERKIT_IMGUI_SOURCE_DIR}/imgui_draw.cpp
  ${FERKIT_IMGUI_SOURCE_DIR}/imgui_tables.cpp
  ${FERKIT_IMGUI_SOURCE_DIR}/imgui_widgets.cpp
  ${FERKIT_IMGUI_SOURCE_DIR}/backends/imgui_impl_sdl.cpp
  ${FERKIT_IMGUI_SOURCE_DIR}/backends/imgui_impl_opengl3.cpp)
set_target_properties(ferkit_imgui PROPERTIES OUTPUT_NAME imgui)
target_include_directories(ferkit_imgui SYSTEM PUBLIC ${FERKIT_IMGUI_SOURCE_DIR} ${FERKIT_IMGUI_SOURCE_DIR}/backends)
# WebGL 2 = OpenGL ES 3: the app calls ImGui_ImplOpenGL3_Init("#version 300 es").
target_compile_definitions(ferkit_imgui PUBLIC IMGUI_IMPL_OPENGL_ES3)
target_compile_options(ferkit_imgui PRIVATE -w)
target_link_libraries(ferkit_imgui PUBLIC SDL2::SDL2)
target_link_options(ferkit_imgui INTERFACE -sMIN_WEBGL_VERSION=2 -sMAX_WEBGL_VERSION=2)
add_library(ImGui::ImGui ALIAS ferkit_imgui)
