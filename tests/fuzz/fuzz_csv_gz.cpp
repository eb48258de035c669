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
  // Non-strict, then strict when that skipped rows (otherwise strict would repeat the same work: each load costs
  // two fresh 1 MiB read buffers and a read-ahead thread, which dominates the time per input under the sanitizers).
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
  return 0;
}
