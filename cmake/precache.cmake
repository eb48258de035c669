# Writes DIST/sw.js, the page's service worker, from web/sw.js: the files the page needs (FERKIT_PRECACHE below),
# each with its SHA-256, and a build id from those hashes (and the template's), so that any changed file gives a
# new sw.js and a new cache. Run after the page is built (web/CMakeLists.txt does), or after changing a file of a
# built site by hand:
#   cmake -DDIST=build/wasm/dist -P cmake/precache.cmake
# A missing file stops it with an error naming the file (with -DOPTIONAL=ON it writes nothing, quietly: the build
# runs it so before the page's first link). sw.js is replaced atomically, and only when it changes.
if(NOT DIST)
  message(FATAL_ERROR "precache.cmake: pass -DDIST=<the built site's folder>")
endif()
if(NOT TEMPLATE)
  set(TEMPLATE ${CMAKE_CURRENT_LIST_DIR}/../web/sw.js)
endif()
# Every file index.html loads, directly or through ferkit-shell.js, index.js and the fine-tuning worker.
set(FERKIT_PRECACHE
  index.html ferkit-shell.js ferkit-offline.js index.js index.wasm index.data
  finetune-worker.mjs ferkit-engine.mjs ferkit-engine.wasm
  manifest.webmanifest icon-192.png icon-512.png)

if(OPTIONAL)
  foreach(f IN LISTS FERKIT_PRECACHE)
    if(NOT EXISTS ${DIST}/${f})
      return()
    endif()
  endforeach()
endif()

file(READ ${TEMPLATE} template)
string(SHA256 all "${template}")
set(entries)
foreach(f IN LISTS FERKIT_PRECACHE)
  if(NOT EXISTS ${DIST}/${f})
    message(FATAL_ERROR "precache.cmake: ${DIST}/${f} is missing: the page needs it offline (build the ferkit_web target)")
  endif()
  file(SHA256 ${DIST}/${f} h)
  string(SHA256 all "${all} ${h} ${f}")
  list(APPEND entries "[\"${f}\", \"${h}\"]")
endforeach()
string(SUBSTRING ${all} 0 16 build)
list(JOIN entries ",\n  " files)
string(REPLACE "@FERKIT_BUILD@" "${build}" out "${template}")
string(REPLACE "@FERKIT_FILES@" "[\n  ${files}\n]" out "${out}")

set(sw ${DIST}/sw.js)
if(EXISTS ${sw})
  file(READ ${sw} old)
  if(old STREQUAL out)
    return()
  endif()
endif()
file(WRITE ${sw}.tmp "${out}")
file(RENAME ${sw}.tmp ${sw})
list(LENGTH FERKIT_PRECACHE n)
message(STATUS "precache.cmake: ${sw} (build ${build}, ${n} files)")
