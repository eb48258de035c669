// Inputs found by the fuzzers (tests/fuzz/regressions/) that need files: native only (test_core also runs as
// WebAssembly under node, without a file system).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "model_io.h"

using namespace ferkit;

TEST(FuzzRegressions, ModelFilesThatWouldOverflowOrAllocateGigabytes) {
  for (const char* name : {"model_int_overflow.ferkit", "model_huge_alloc.ferkit"}) {
    const std::string path = std::string(FERKIT_SOURCE_DIR "/tests/fuzz/regressions/model/") + name;
    FILE* f = std::fopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr) << path;
    std::vector<uint8_t> bytes;
    for (int c; (c = std::fgetc(f)) != EOF;) bytes.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
    // The fuzzer recomputes the trailing CRC, so the file is otherwise well formed.
    const uint32_t c = crc32(bytes.data(), bytes.size() - 4);
    std::memcpy(bytes.data() + bytes.size() - 4, &c, 4);
    EXPECT_THROW(load_model(bytes.data(), bytes.size()), ModelFormatError) << name;
  }
}
