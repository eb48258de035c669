// Shared by the fuzz targets that go through files (the CSV and image-folder loaders take paths).
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

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

}  // namespace fuzz
