// libFuzzer target: the FER CSV parser. The input is parsed in memory line by line (ferkit::check_fer_csv_header for
// the first line, ferkit::parse_fer_csv_row for the others: core/data.h), then written to a temporary .csv file and
// loaded whole with ferkit::load_fer_csv (native/dataio.h, which only reads files), non-strict (and strict).
// Expected errors are exceptions; anything else is a bug.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "data.h"
#include "dataio.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::TempDir dir("csv");
  static const std::string file = dir.path + "/fer.csv";

  // In memory, line by line.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto row = std::make_unique<ferkit::CsvRow>();
  bool first = true;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (first) {
      (void)ferkit::check_fer_csv_header(line);
      first = false;
      continue;
    }
    const char* kind = nullptr;
    const std::string err = ferkit::parse_fer_csv_row(line, *row, &kind);
    if (!err.empty() && !kind) __builtin_trap();  // an error always comes with its category
    if (err.empty() && (row->label < 0 || row->label >= ferkit::kNumClasses)) __builtin_trap();
    (void)ferkit::parse_fer_csv_row(line, *row);
  }

  // The whole-file loader.
  fuzz::write_file(file, data, size);
  fuzz::load_csv_both_ways(file);
  return 0;
}
