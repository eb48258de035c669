# cmake --install for C++ applications (native builds; included by the top-level CMakeLists.txt). docs/cpp.md
# describes the result for users. Installed under the prefix:
#
#   include/ferkit/          core/ferkit.h and the core headers it includes, directly or not (found below by
#                            following its #include "..." lines): applications write #include <ferkit/ferkit.h>.
#                            The headers stay in a folder of their own since some have generic names (image.h).
#   lib/libferkit_core.a     the core (CMAKE_INSTALL_LIBDIR)
#   lib/cmake/ferkit/        ferkitConfig.cmake, ferkitConfigVersion.cmake, ferkitTargets*.cmake: find_package(ferkit)
#                            gives the imported target ferkit::core
#   share/ferkit/            default.ferkit (the default model) and its card default.md, blazeface.ferkit (the
#                            face detector) and its licence; the package sets ferkit_DEFAULT_MODEL and
#                            ferkit_DEFAULT_DETECTOR to their paths
#
# What ferkit::core asks of its users, and what it leaves out:
#   - nlohmann_json (json_fwd.hpp is in model_io.h): found by the package (find_dependency), linked publicly.
#   - OpenMP, when the core was built with it: found by the package; users link its runtime, nothing more (no
#     -fopenmp for their own code: no header needs it).
#   - oneDNN, when the core was built with it (core/kernels_dnnl.cpp): found by the package; users link libdnnl.
#   - Eigen: only in core/*.cpp (header-only, so nothing to link): users need no Eigen.
#   - stb_image: compiled into image.cpp, its include path private.
#   - -march=native (FERKIT_NATIVE_ARCH): not passed on. Users' code compiles with their own flags; the library
#     itself still runs only on CPUs with this machine's instruction set (the portable preset builds one that
#     runs on any x86-64). The package records the choice in ferkit_NATIVE_ARCH.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FERKIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/ferkit CACHE STRING
    "Where cmake --install puts ferkit's CMake package (relative to the prefix)")
set(FERKIT_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/ferkit)

# The public headers: core/ferkit.h and, transitively, every core header it includes with #include "...".
set(_ferkit_headers "")
set(_ferkit_todo ferkit.h)
while(_ferkit_todo)
  list(POP_FRONT _ferkit_todo _h)
  if(_h IN_LIST _ferkit_headers)
    continue()
  endif()
  set(_path ${PROJECT_SOURCE_DIR}/core/${_h})
  if(NOT EXISTS ${_path})
    message(FATAL_ERROR "cmake/install.cmake: a public header includes \"${_h}\", which is not in core/")
  endif()
  list(APPEND _ferkit_headers ${_h})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_path})
  file(STRINGS ${_path} _includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]+\"")
  foreach(_line IN LISTS _includes)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*$" "\\1" _inc "${_line}")
    list(APPEND _ferkit_todo ${_inc})
  endforeach()
endwhile()
list(TRANSFORM _ferkit_headers PREPEND ${PROJECT_SOURCE_DIR}/core/)
set(FERKIT_PUBLIC_HEADERS ${_ferkit_headers})

target_include_directories(ferkit_core PUBLIC $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(ferkit_core PROPERTIES EXPORT_NAME core)

install(TARGETS ferkit_core EXPORT ferkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${FERKIT_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ferkit)
install(EXPORT ferkitTargets NAMESPACE ferkit:: DESTINATION ${FERKIT_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/assets/models/default.ferkit
              ${PROJECT_SOURCE_DIR}/assets/models/default.md
              ${PROJECT_SOURCE_DIR}/assets/detector/blazeface.ferkit
              ${PROJECT_SOURCE_DIR}/assets/detector/LICENSE-blazeface.txt
        DESTINATION ${FERKIT_INSTALL_DATADIR})

# The version file: 0.x releases may change the API between minor versions, so find_package(ferkit 0.1) takes
# any 0.1.z and nothing else.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ferkitConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/ferkitConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/ferkitConfig.cmake
                              INSTALL_DESTINATION ${FERKIT_INSTALL_CMAKEDIR}
                              PATH_VARS FERKIT_INSTALL_DATADIR)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ferkitConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/ferkitConfigVersion.cmake
        DESTINATION ${FERKIT_INSTALL_CMAKEDIR})
