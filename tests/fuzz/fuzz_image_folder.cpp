// libFuzzer target: the image-folder loader, ferkit::load_image_folder (native/dataio.h). The input is written as
// the only file of a class folder (<tmp>/happy/face.png, whatever its real format: stb_image sniffs the content)
// and the folder is loaded non-strict, then strict when the file was skipped (strict mode must then throw).
// Expected errors are exceptions; anything else is a bug.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "dataio.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::TempDir dir("folder");
  static const std::string file = [] {
    std::filesystem::create_directory(dir.path + "/happy");
    return dir.path + "/happy/face.png";
  }();
  fuzz::write_file(file, data, size);
  bool skipped = false;
  try {
    ferkit::LoadReport report;
    ferkit::Dataset d = ferkit::load_image_folder(dir.path, false, &report);
    (void)report.summary();
    if (report.rows != 1 || report.kept + report.skipped != 1 || d.size() != report.kept) __builtin_trap();
    skipped = report.skipped > 0;
  } catch (const std::exception&) {
  }
  if (skipped) {  // strict mode must throw where non-strict mode skipped the file
    try {
      ferkit::LoadReport report;
      (void)ferkit::load_image_folder(dir.path, true, &report);
      __builtin_trap();
    } catch (const std::exception&) {
    }
  }
  return 0;
}
