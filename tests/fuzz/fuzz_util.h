// Shared by the fuzz targets that go through files (the CSV and image-folder loaders take paths).
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "dataio.h"

namespace fuzz {

// A private temporary folder for this process, removed at exit.
struct TempDir {
  std::string path;
  explicit TempDir(const char* tag) {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/ferkit-fuzz-" + tag + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// Loads a CSV file non-strict, then strict when that skipped rows (otherwise strict would repeat the same work:
// each load reads and parses the file again, which dominates the time per input
// under the sanitizers). Traps on inconsistent reports and on strict mode accepting what non-strict skipped.
inline void load_csv_both_ways(const std::string& file) {
  bool skipped = false;
  try {
    ferkit::LoadReport report;
    ferkit::FerSplits s = ferkit::load_fer_csv(file, false, &report);
    (void)report.summary();
    if (report.kept != s.train.size() + s.public_test.size() + s.private_test.size()) __builtin_trap();
    if (report.kept + report.skipped != report.rows) __builtin_trap();
    skipped = report.skipped > 0;
  } catch (const std::exception&) {
  }
  if (skipped) {
    try {
      (void)ferkit::load_fer_csv(file, true, nullptr);
      __builtin_trap();  // strict mode must reject a file that non-strict mode skipped rows of
    } catch (const std::exception&) {
    }
  }
}

}  // namespace fuzz
