// libFuzzer target: the gzip path of the FER CSV loader, ferkit::load_fer_csv (native/dataio.h). The input is
// written as it is to a temporary .csv.gz file (seeded with gzip files, so the fuzzer explores corrupt, truncated
// and concatenated gzip streams and what they inflate to) and loaded non-strict (and strict). scripts/fuzz.sh bounds
// the input length, which bounds what a zip bomb can inflate to (deflate's ratio is at most ~1032:1); the loader
// must stay within -rss_limit_mb and -timeout. Expected errors are exceptions; anything else is a bug.
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
  static fuzz::TempDir dir("csvgz");
  static const std::string file = dir.path + "/fer.csv.gz";
  fuzz::write_file(file, data, size);
  fuzz::load_csv_both_ways(file);
  return 0;
}
