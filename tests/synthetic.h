// Test data: seven synthetic "expressions", a bright bar at one of seven positions/orientations plus noise.
#pragma once
#include <cstdint>

#include "data.h"
#include "rng.h"

namespace ferkit {

inline Dataset synthetic(int per_class, uint64_t seed) {
  Dataset d;
  Rng r(seed);
  uint8_t img[kPixels];
  for (int i = 0; i < per_class * kNumClasses; ++i) {
    const int c = i % kNumClasses;
    for (int p = 0; p < kPixels; ++p) img[p] = static_cast<uint8_t>(40 + r.below(60));
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) {
        bool on = c < 4 ? (y / 6 == 1 + 2 * c && x > 4 && x < 44) : (x / 6 == 1 + 2 * (c - 4) && y > 4 && y < 44);
        if (on) img[y * kSide + x] = static_cast<uint8_t>(200 + r.below(50));
      }
    d.add(img, c);
  }
  return d;
}

}  // namespace ferkit
