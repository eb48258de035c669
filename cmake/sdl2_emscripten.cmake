# SDL2 for Emscripten, built from Debian's own source package (`apt-get source libsdl2`, 2.26.5), because
# `-sUSE_SDL=2` downloads a port from the internet. Compiles the sources that Emscripten's SDL2 port compiles
# (its emscripten video/audio/joystick backends; tools/ports/sdl2.py) plus the files newer than the port's list,
# into a static libSDL2.a in the build tree (built once per build directory, like any other target).
#
# Defines SDL2::SDL2 (link it; do not use -sUSE_SDL). Its include directory is SDL's include/ (the <SDL.h>
# layout of <prefix>/include/SDL2), which comes before Emscripten's built-in SDL 1 headers.
#
# FERKIT_SDL2_SOURCE_DIR: the unpacked source (scripts/setup.sh --web puts it at build/deps/sdl2).

set(FERKIT_SDL2_SOURCE_DIR ${PROJECT_SOURCE_DIR}/build/deps/sdl2 CACHE PATH
    "SDL 2 source tree (Debian source package libsdl2, from scripts/setup.sh --web)")
if(NOT EXISTS ${FERKIT_SDL2_SOURCE_DIR}/include/SDL.h OR NOT EXISTS ${FERKIT_SDL2_SOURCE_DIR}/src/SDL.c)
  message(FATAL_ERROR "No SDL 2 source at ${FERKIT_SDL2_SOURCE_DIR}: run scripts/setup.sh --web "
                      "(apt-get source libsdl2), or set FERKIT_SDL2_SOURCE_DIR")
endif()

set(_sdl_srcs
  SDL.c SDL_assert.c SDL_dataqueue.c SDL_error.c SDL_guid.c SDL_hints.c SDL_list.c SDL_log.c SDL_utils.c
  atomic/SDL_atomic.c atomic/SDL_spinlock.c
  audio/SDL_audio.c audio/SDL_audiocvt.c audio/SDL_audiodev.c audio/SDL_audiotypecvt.c audio/SDL_mixer.c
  audio/SDL_wave.c audio/emscripten/SDL_emscriptenaudio.c audio/disk/SDL_diskaudio.c audio/dummy/SDL_dummyaudio.c
  cpuinfo/SDL_cpuinfo.c dynapi/SDL_dynapi.c
  events/SDL_clipboardevents.c events/SDL_displayevents.c events/SDL_dropevents.c events/SDL_events.c
  events/SDL_gesture.c events/SDL_keyboard.c events/SDL_mouse.c events/SDL_quit.c events/SDL_touch.c
  events/SDL_windowevents.c
  file/SDL_rwops.c filesystem/emscripten/SDL_sysfilesystem.c
  haptic/SDL_haptic.c haptic/dummy/SDL_syshaptic.c
  joystick/SDL_gamecontroller.c joystick/SDL_joystick.c joystick/controller_type.c
  joystick/emscripten/SDL_sysjoystick.c
  loadso/dlopen/SDL_sysloadso.c locale/SDL_locale.c locale/emscripten/SDL_syslocale.c
  main/dummy/SDL_dummy_main.c misc/SDL_url.c misc/dummy/SDL_sysurl.c
  power/SDL_power.c power/emscripten/SDL_syspower.c
  render/SDL_d3dmath.c render/SDL_render.c render/SDL_yuv_sw.c render/direct3d/SDL_render_d3d.c
  render/direct3d11/SDL_render_d3d11.c render/opengl/SDL_render_gl.c render/opengl/SDL_shaders_gl.c
  render/opengles/SDL_render_gles.c render/opengles2/SDL_render_gles2.c render/opengles2/SDL_shaders_gles2.c
  render/psp/SDL_render_psp.c render/software/SDL_blendfillrect.c render/software/SDL_blendline.c
  render/software/SDL_blendpoint.c render/software/SDL_drawline.c render/software/SDL_drawpoint.c
  render/software/SDL_render_sw.c render/software/SDL_rotate.c render/software/SDL_triangle.c
  sensor/SDL_sensor.c sensor/dummy/SDL_dummysensor.c
  stdlib/SDL_crc16.c stdlib/SDL_crc32.c stdlib/SDL_getenv.c stdlib/SDL_iconv.c stdlib/SDL_malloc.c
  stdlib/SDL_qsort.c stdlib/SDL_stdlib.c stdlib/SDL_string.c stdlib/SDL_strtokr.c
  thread/SDL_thread.c thread/generic/SDL_syscond.c thread/generic/SDL_sysmutex.c thread/generic/SDL_syssem.c
  thread/generic/SDL_systhread.c thread/generic/SDL_systls.c
  timer/SDL_timer.c timer/unix/SDL_systimer.c
  video/SDL_RLEaccel.c video/SDL_blit.c video/SDL_blit_0.c video/SDL_blit_1.c video/SDL_blit_A.c
  video/SDL_blit_N.c video/SDL_blit_auto.c video/SDL_blit_copy.c video/SDL_blit_slow.c video/SDL_bmp.c
  video/SDL_clipboard.c video/SDL_egl.c video/SDL_fillrect.c video/SDL_pixels.c video/SDL_rect.c
  video/SDL_shape.c video/SDL_stretch.c video/SDL_surface.c video/SDL_video.c video/SDL_vulkan_utils.c
  video/SDL_yuv.c video/yuv2rgb/yuv_rgb.c
  video/emscripten/SDL_emscriptenevents.c video/emscripten/SDL_emscriptenframebuffer.c
  video/emscripten/SDL_emscriptenmouse.c video/emscripten/SDL_emscriptenopengles.c
  video/emscripten/SDL_emscriptenvideo.c
  video/dummy/SDL_nullevents.c video/dummy/SDL_nullframebuffer.c video/dummy/SDL_nullvideo.c)
list(TRANSFORM _sdl_srcs PREPEND ${FERKIT_SDL2_SOURCE_DIR}/src/)

add_library(ferkit_sdl2 STATIC ${_sdl_srcs})
set_target_properties(ferkit_sdl2 PROPERTIES OUTPUT_NAME SDL2 ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/sdl2/lib)
target_include_directories(ferkit_sdl2 PUBLIC ${FERKIT_SDL2_SOURCE_DIR}/include)
# Third-party C code: no -fexceptions, no warnings (as the port does).
target_compile_options(ferkit_sdl2 PRIVATE -O2 -w -fno-exceptions)
# JS library functions the port's linker setup adds (emscripten audio backend).
file(WRITE ${CMAKE_BINARY_DIR}/sdl2/js_funcs.json "[\"$autoResumeAudioContext\", \"$dynCall\"]\n")
target_link_options(ferkit_sdl2 INTERFACE "-sDEFAULT_LIBRARY_FUNCS_TO_INCLUDE=@${CMAKE_BINARY_DIR}/sdl2/js_funcs.json")
add_library(SDL2::SDL2 ALIAS ferkit_sdl2)
