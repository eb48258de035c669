// Data loading, CSV parsing, image decoding/resampling and augmentation.
// Every test writes its own small inputs in a temporary folder; only RealFer2013Csv reads the shared data set.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "data.h"
#include "dataio.h"
#include "files.h"
#include "image.h"
#include "rng.h"

namespace fs = std::filesystem;
using namespace ferkit;

namespace {

// A fresh temporary folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("ferkit_test_data_" + std::to_string(::getpid()) + "_" + (info ? info->name() : "x"));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

void write_gz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// A valid row: pixel i = (i * mul + add) % 256.
std::string pixel_string(int mul, int add, int count = kPixels) {
  std::string s;
  for (int i = 0; i < count; ++i) {
    if (i) s += ' ';
    s += std::to_string((i * mul + add) % 256);
  }
  return s;
}

std::string row(int label, const std::string& pixels, const std::string& usage) {
  return std::to_string(label) + "," + pixels + "," + usage;
}

const std::string kHeader = "emotion,pixels,Usage";

// Runs f, expects std::runtime_error, returns its message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected std::runtime_error";
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The test CSV: lines 1 header, 2-3 good, 4 blank, 5-9 one of each malformed kind, 10 good (CRLF), 11 too long,
// 12 good without a trailing newline.
std::string test_csv() {
  std::string s = kHeader + "\n";
  s += row(3, pixel_string(1, 0), "Training") + "\n";     // 2
  s += row(0, pixel_string(7, 3), "PublicTest") + "\n";   // 3
  s += "\n";                                              // 4 blank: ignored
  s += row(2, pixel_string(1, 0, 2303), "Training") + "\n";  // 5 wrong pixel count
  std::string bad = pixel_string(1, 0);
  // pixel 17 (1-based) is "16"; make it 300.
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) pos = bad.find(' ', pos) + 1;
  bad.replace(pos, 2, "300");
  s += row(2, bad, "Training") + "\n";                     // 6 out-of-range pixel
  s += "9," + pixel_string(1, 0) + ",Training\n";          // 7 unknown label
  s += row(1, pixel_string(1, 0), "Validation") + "\n";    // 8 unknown Usage
  s += "1," + pixel_string(1, 0) + "\n";                   // 9 wrong number of fields
  s += row(6, pixel_string(3, 1), "PrivateTest") + "\r\n";  // 10 good, CRLF
  s += "4," + std::string(70000, '1') + ",Training\n";     // 11 line too long
  s += row(5, pixel_string(5, 2), "Training");             // 12 good, no final newline
  return s;
}

void check_test_csv(const FerSplits& s, const LoadReport& rep) {
  EXPECT_EQ(s.train.size(), 2u);
  EXPECT_EQ(s.public_test.size(), 1u);
  EXPECT_EQ(s.private_test.size(), 1u);
  EXPECT_EQ(s.train.labels[0], 3);
  EXPECT_EQ(s.train.labels[1], 5);
  EXPECT_EQ(s.public_test.labels[0], 0);
  EXPECT_EQ(s.private_test.labels[0], 6);
  for (int i = 0; i < kPixels; ++i) {
    ASSERT_EQ(s.train.image(0)[i], i % 256);
    ASSERT_EQ(s.train.image(1)[i], (i * 5 + 2) % 256);
    ASSERT_EQ(s.public_test.image(0)[i], (i * 7 + 3) % 256);
    ASSERT_EQ(s.private_test.image(0)[i], (i * 3 + 1) % 256);
  }
  EXPECT_EQ(rep.rows, 10u);
  EXPECT_EQ(rep.kept, 4u);
  EXPECT_EQ(rep.skipped, 6u);
  EXPECT_EQ(rep.reasons.at("wrong pixel count"), 1u);
  EXPECT_EQ(rep.reasons.at("bad pixel value"), 1u);
  EXPECT_EQ(rep.reasons.at("unknown label"), 1u);
  EXPECT_EQ(rep.reasons.at("unknown Usage"), 1u);
  EXPECT_EQ(rep.reasons.at("wrong number of fields"), 1u);
  EXPECT_EQ(rep.reasons.at("line too long"), 1u);
  ASSERT_EQ(rep.first_errors.size(), 6u);
  const std::string& p = rep.source;
  EXPECT_EQ(rep.first_errors[0], p + ":5: expected 2304 pixel values, got 2303");
  EXPECT_EQ(rep.first_errors[1], p + ":6: pixel 17: expected an integer 0..255, got '300'");
  EXPECT_TRUE(contains(rep.first_errors[2], p + ":7: ")) << rep.first_errors[2];
  EXPECT_TRUE(contains(rep.first_errors[2], "expected 0..6")) << rep.first_errors[2];
  EXPECT_TRUE(contains(rep.first_errors[3], p + ":8: ")) << rep.first_errors[3];
  EXPECT_TRUE(contains(rep.first_errors[3], "'Validation'")) << rep.first_errors[3];
  EXPECT_TRUE(contains(rep.first_errors[3], "expected Training, PublicTest or PrivateTest")) << rep.first_errors[3];
  EXPECT_TRUE(contains(rep.first_errors[4], p + ":9: expected 3 comma-separated fields")) << rep.first_errors[4];
  EXPECT_TRUE(contains(rep.first_errors[5], p + ":11: line too long")) << rep.first_errors[5];
  const std::string sum = rep.summary();
  EXPECT_TRUE(contains(sum, "10 read, 4 kept, 6 skipped")) << sum;
  EXPECT_TRUE(contains(sum, "line too long: 1")) << sum;
}

// Encodes a w x h image with `channels` channels as PNG bytes in memory.
std::vector<uint8_t> png_bytes(int w, int h, int channels, const std::vector<uint8_t>& px) {
  std::vector<uint8_t> out;
  stbi_write_png_to_func(
      [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<uint8_t>*>(ctx);
        v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
      },
      &out, w, h, channels, px.data(), w * channels);
  return out;
}

std::vector<uint8_t> face(uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> px(kPixels);
  // A smooth gradient plus noise, so warps change values.
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) px[y * kSide + x] = static_cast<uint8_t>((x * 4 + y * 2 + rng.below(30)) % 256);
  return px;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

// mixup: each mixed image is lambda * itself + (1 - lambda) * one other image, its target the same blend; lambda
// follows Beta(alpha, alpha) (mean 1/2, variance 1 / (4 (2 alpha + 1))).
TEST(Augment, MixupBlendsTwoImagesAndTheirTargetsAlike) {
  const int n = 8, k = 7;
  const size_t size = 30;
  std::vector<float> x(n * size), t(n * k), scratch(n * (size + k));
  auto reset = [&] {
    for (int i = 0; i < n; ++i) {
      std::fill(x.begin() + i * size, x.begin() + (i + 1) * size, static_cast<float>(i + 1));
      std::fill(t.begin() + i * k, t.begin() + (i + 1) * k, 0.0f);
      t[i * k + i % k] = 1.0f;
    }
  };
  reset();
  const std::vector<float> x_in = x, t_in = t;
  Rng off(3);
  mixup(x.data(), t.data(), n, size, k, 0.0f, 0.2f, off, scratch.data());
  EXPECT_EQ(x, x_in);
  EXPECT_EQ(t, t_in);
  int mixed = 0, kept = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    reset();
    Rng rng(seed);
    mixup(x.data(), t.data(), n, size, k, 0.5f, 0.4f, rng, scratch.data());
    for (int i = 0; i < n; ++i) {
      const float v = x[i * size];
      for (size_t p = 1; p < size; ++p) ASSERT_EQ(x[i * size + p], v);  // one blend for the whole image
      double sum = 0;
      for (int c = 0; c < k; ++c) sum += t[i * k + c];
      EXPECT_NEAR(sum, 1.0, 1e-5);
      if (v == static_cast<float>(i + 1)) {
        ++kept;
        continue;
      }
      ++mixed;
      // v = lam (i+1) + (1 - lam) (j+1) for one j != i whose target carries the rest.
      const float own = t[i * k + i % k];
      bool found = false;
      for (int j = 0; j < n && !found; ++j) {
        if (j == i || j % k == i % k) continue;
        const float lam = own;
        if (std::abs(lam * (i + 1) + (1 - lam) * (j + 1) - v) < 1e-4f && std::abs(t[i * k + j % k] - (1 - lam)) < 1e-5f)
          found = true;
      }
      // (a donor of i's class, here only images 0 and 7 for each other, leaves the target one-hot)
      EXPECT_TRUE(found || own == 1.0f) << "image " << i << " seed " << seed;
    }
  }
  EXPECT_GT(mixed, 40);  // about half of 160
  EXPECT_GT(kept, 40);
  Rng b(7);
  double mean = 0, sq = 0;
  const int draws = 20000;
  for (int d = 0; d < draws; ++d) {
    const double v = beta_symmetric(0.4f, b);
    ASSERT_GE(v, 0.0);
    ASSERT_LE(v, 1.0);
    mean += v, sq += v * v;
  }
  mean /= draws;
  EXPECT_NEAR(mean, 0.5, 0.01);
  EXPECT_NEAR(sq / draws - mean * mean, 1.0 / (4 * (2 * 0.4 + 1)), 0.005);
}

TEST(Augment, CutMixPastesAnotherImagesPatchAndMixesTargetsByArea) {
  const int n = 9, side = 12, k = 7, pixels = side * side;
  std::vector<float> x(n * pixels), t(n * k, 0.0f), scratch(n * (pixels + k));
  auto reset = [&] {
    for (int i = 0; i < n; ++i) {
      std::fill(x.begin() + i * pixels, x.begin() + (i + 1) * pixels, static_cast<float>(i + 1));  // image i: all i+1
      std::fill(t.begin() + i * k, t.begin() + (i + 1) * k, 0.0f);
      t[i * k + i % k] = 1.0f;
    }
  };
  reset();
  const std::vector<float> x_in = x, t_in = t;
  Rng off(3);
  cutmix(x.data(), t.data(), n, side, k, 0.0f, off, scratch.data());
  EXPECT_EQ(x, x_in);
  EXPECT_EQ(t, t_in);
  int mixed = 0;
  double pasted = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    reset();
    Rng rng(seed);
    cutmix(x.data(), t.data(), n, side, k, 1.0f, rng, scratch.data());
    for (int i = 0; i < n; ++i) {
      // The pixels that are not image i's all come from one other image j, in one rectangle.
      int foreign = 0, j = -1, x0 = side, x1 = -1, y0 = side, y1 = -1;
      for (int y = 0; y < side; ++y)
        for (int c = 0; c < side; ++c) {
          const float v = x[i * pixels + y * side + c];
          if (v == static_cast<float>(i + 1)) continue;
          const int from = static_cast<int>(v) - 1;
          ASSERT_TRUE(j < 0 || j == from) << "two donors in image " << i;
          j = from;
          ++foreign;
          x0 = std::min(x0, c), x1 = std::max(x1, c), y0 = std::min(y0, y), y1 = std::max(y1, y);
        }
      double sum = 0;
      for (int c = 0; c < k; ++c) sum += t[i * k + c];
      EXPECT_NEAR(sum, 1.0, 1e-6);
      if (!foreign) {
        EXPECT_EQ(t[i * k + i % k], 1.0f);
        continue;
      }
      ++mixed;
      EXPECT_NE(j, i);
      EXPECT_EQ(foreign, (x1 - x0 + 1) * (y1 - y0 + 1)) << "not a rectangle";
      const float a = static_cast<float>(foreign) / pixels;
      pasted += a;
      if (j % k != i % k) {
        EXPECT_NEAR(t[i * k + i % k], 1.0f - a, 1e-6);
        EXPECT_NEAR(t[i * k + j % k], a, 1e-6);
      }
    }
  }
  // Nearly every image is mixed at probability 1; the pasted area averages about 1 - E[lambda] = 0.5 less clipping.
  EXPECT_GT(mixed, 20 * n * 9 / 10);
  EXPECT_GT(pasted / mixed, 0.2);
  EXPECT_LT(pasted / mixed, 0.6);
}

TEST(Data, ClassIndexAliases) {
  EXPECT_EQ(class_index("angry"), 0);
  EXPECT_EQ(class_index("Anger"), 0);
  EXPECT_EQ(class_index("disgust"), 1);
  EXPECT_EQ(class_index("DISGUSTED"), 1);
  EXPECT_EQ(class_index("fear"), 2);
  EXPECT_EQ(class_index("fearful"), 2);
  EXPECT_EQ(class_index("Happy"), 3);
  EXPECT_EQ(class_index("happiness"), 3);
  EXPECT_EQ(class_index("sad"), 4);
  EXPECT_EQ(class_index("Sadness"), 4);
  EXPECT_EQ(class_index("surprise"), 5);
  EXPECT_EQ(class_index("surprised"), 5);
  EXPECT_EQ(class_index("neutral"), 6);
  EXPECT_EQ(class_index(" neutral "), 6);
  EXPECT_EQ(class_index("3"), 3);
  EXPECT_EQ(class_index("7"), -1);
  EXPECT_EQ(class_index("contempt"), -1);
  EXPECT_EQ(class_index(""), -1);
  EXPECT_EQ(class_index("happyy"), -1);
  for (int i = 0; i < kNumClasses; ++i) EXPECT_EQ(class_index(kClassNames[i]), i);
  EXPECT_STREQ(usage_name(Usage::PublicTest), "PublicTest");
}

TEST(Data, CsvHeader) {
  EXPECT_EQ(check_fer_csv_header("emotion,pixels,Usage"), "");
  EXPECT_EQ(check_fer_csv_header("emotion,pixels,Usage\r"), "");
  EXPECT_EQ(check_fer_csv_header("\xEF\xBB\xBF" "emotion,pixels,Usage"), "");
  EXPECT_NE(check_fer_csv_header("emotion,pixels"), "");
  EXPECT_NE(check_fer_csv_header("emotion,pixels,Usage,extra"), "");
  EXPECT_NE(check_fer_csv_header("label,pixels,Usage"), "");
  EXPECT_TRUE(contains(check_fer_csv_header("0,1 2 3,Training"), "expected the header 'emotion,pixels,Usage'"));
}

TEST(Data, CsvRowParsing) {
  CsvRow r;
  EXPECT_EQ(parse_fer_csv_row(row(4, pixel_string(1, 0), "PrivateTest"), r), "");
  EXPECT_EQ(r.label, 4);
  EXPECT_EQ(r.usage, Usage::PrivateTest);
  EXPECT_EQ(r.pixels[0], 0);
  EXPECT_EQ(r.pixels[255], 255);
  EXPECT_EQ(r.pixels[2303], 2303 % 256);
  // Quoted pixels, CR, extra blanks between values.
  std::string px = pixel_string(1, 0);
  EXPECT_EQ(parse_fer_csv_row("2,\"  " + px + " \",Training\r", r), "");

  const char* kind = nullptr;
  EXPECT_EQ(parse_fer_csv_row(row(1, pixel_string(1, 0, 2305), "Training"), r, &kind),
            "expected 2304 pixel values, got 2305");
  EXPECT_STREQ(kind, "wrong pixel count");
  EXPECT_EQ(parse_fer_csv_row(row(1, "", "Training"), r, &kind), "expected 2304 pixel values, got 0");
  std::string bad = "x" + pixel_string(1, 0).substr(1);
  EXPECT_EQ(parse_fer_csv_row(row(1, bad, "Training"), r, &kind), "pixel 1: expected an integer 0..255, got 'x'");
  EXPECT_STREQ(kind, "bad pixel value");
  EXPECT_EQ(parse_fer_csv_row(row(1, "-1" + pixel_string(1, 0).substr(1), "Training"), r, &kind),
            "pixel 1: expected an integer 0..255, got '-1'");
  EXPECT_EQ(parse_fer_csv_row(row(1, "99999999999999999999" + pixel_string(1, 0).substr(1), "Training"), r, &kind),
            "pixel 1: expected an integer 0..255, got '99999999999999999999'");
  EXPECT_TRUE(contains(parse_fer_csv_row("7," + px + ",Training", r, &kind), "expected 0..6"));
  EXPECT_STREQ(kind, "unknown label");
  EXPECT_TRUE(contains(parse_fer_csv_row("x," + px + ",Training", r, &kind), "expected 0..6"));
  EXPECT_TRUE(contains(parse_fer_csv_row("1," + px + ",Test", r, &kind), "unknown Usage 'Test'"));
  EXPECT_STREQ(kind, "unknown Usage");
  EXPECT_EQ(parse_fer_csv_row("1," + px, r, &kind),
            "expected 3 comma-separated fields (emotion,pixels,Usage), got 2");
  EXPECT_STREQ(kind, "wrong number of fields");
  EXPECT_TRUE(contains(parse_fer_csv_row("1," + px + ",Training,x", r, &kind), "got 4"));
  EXPECT_TRUE(contains(parse_fer_csv_row("", r, &kind), "got 1"));
}

TEST(Data, LoadCsvPlainStrictAndLenient) {
  TempDir dir;
  const std::string path = dir / "fer.csv";
  write_text(path, test_csv());
  LoadReport rep;
  FerSplits s = load_fer_csv(path, false, &rep);
  EXPECT_EQ(rep.source, path);
  check_test_csv(s, rep);
  // Strict: the first malformed row (line 5) stops the load.
  EXPECT_EQ(error_of([&] { load_fer_csv(path, true, nullptr); }), path + ":5: expected 2304 pixel values, got 2303");
  // load_dataset dispatches a file to the CSV loader.
  LoadReport rep2;
  FerSplits s2 = load_dataset(path, false, &rep2);
  EXPECT_EQ(s2.train.pixels, s.train.pixels);
  EXPECT_EQ(rep2.skipped, 6u);
}

// The FER+ majority vote as a second set of labels: the most voted class; a tie or no vote among the 7 leaves the
// face out.
TEST(Data, RelabellingByVotesTakesTheMajorityAndLeavesTiesOut) {
  Dataset d;
  uint8_t px[kPixels] = {};
  for (int i = 0; i < 4; ++i) {
    px[0] = static_cast<uint8_t>(i);
    d.add(px, 6);
  }
  const std::vector<float> votes = {0, 0, 0, 9, 1, 0, 0,   // happy
                                    3, 0, 0, 0, 3, 0, 0,   // angry and sad tie
                                    0, 0, 0, 0, 0, 0, 0,   // no vote among the 7
                                    0, 1, 0, 0, 0, 0, 2};  // neutral
  std::vector<size_t> index;
  const Dataset r = d.relabelled_by_votes(votes, &index);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.labels, (std::vector<uint8_t>{3, 6}));
  EXPECT_EQ(index, (std::vector<size_t>{0, 3}));
  EXPECT_EQ(r.image(1)[0], 3);  // the fourth face's pixels
  EXPECT_THROW(d.relabelled_by_votes(std::vector<float>(7)), std::invalid_argument);
}

TEST(Data, FerPlusVotesBecomeSoftTargets) {
  TempDir dir;
  const std::string path = dir / "fer2013new.csv";
  const std::string header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n";
  write_text(path, header +
                       "Training,fer0000000.png,0,10,0,0,0,0,0,0,0,0\n"   // all happiness
                       "PublicTest,fer0000001.png,10,0,0,0,0,0,0,0,0,0\n" // not a training row
                       "Training,fer0000002.png,2,0,0,0,4,2,0,1,1,0\r\n" // neutral 2, anger 4, disgust 2
                       "Training,,0,0,0,0,0,0,0,0,3,7\n");                // no usable vote
  const std::vector<float> votes = load_ferplus_training_votes(path, 3);
  ASSERT_EQ(votes.size(), 21u);
  EXPECT_EQ(std::vector<float>(votes.begin(), votes.begin() + 7), (std::vector<float>{0, 0, 0, 10, 0, 0, 0}));
  EXPECT_EQ(std::vector<float>(votes.begin() + 7, votes.begin() + 14), (std::vector<float>{4, 2, 0, 0, 0, 0, 2}));
  EXPECT_EQ(load_ferplus_votes(path, Usage::PublicTest, 1), (std::vector<float>{0, 0, 0, 0, 0, 0, 10}));
  EXPECT_EQ(error_of([&] { load_ferplus_votes(path, Usage::PrivateTest, 1); }),
            path + ": 0 PrivateTest rows, but the PrivateTest set has 1 images: FER+ must be row-aligned with the "
                   "whole fer2013.csv");

  Dataset d;
  d.pixels.assign(3 * kPixels, 0);
  d.labels = {3, 6, 2};
  blend_soft_targets(d, votes, 0.5f);
  ASSERT_EQ(d.soft.size(), 21u);
  EXPECT_EQ(std::vector<float>(d.soft.begin(), d.soft.begin() + 7), (std::vector<float>{0, 0, 0, 1, 0, 0, 0}));
  // label neutral: 0.5 * (0.5 angry, 0.25 disgust, 0.25 neutral) + 0.5 * neutral
  EXPECT_EQ(std::vector<float>(d.soft.begin() + 7, d.soft.begin() + 14),
            (std::vector<float>{0.25f, 0.125f, 0, 0, 0, 0, 0.625f}));
  EXPECT_EQ(std::vector<float>(d.soft.begin() + 14, d.soft.end()), (std::vector<float>{0, 0, 1, 0, 0, 0, 0}));
  EXPECT_THROW(blend_soft_targets(d, std::vector<float>(14), 0.5f), std::invalid_argument);
  EXPECT_THROW(blend_soft_targets(d, votes, 1.5f), std::invalid_argument);

  // Errors name the file, the line and what was expected.
  EXPECT_EQ(error_of([&] { load_ferplus_training_votes(path, 4); }),
            path + ": 3 Training rows, but the Training set has 4 images: FER+ must be row-aligned with the whole "
                   "fer2013.csv");
  write_text(path, header + "Training,a.png,1,2,3\n");
  EXPECT_EQ(error_of([&] { load_ferplus_training_votes(path, 1); }),
            path + ":2: expected 12 fields (Usage, Image name, 10 vote counts), got 5");
  write_text(path, header + "Training,a.png,1,2,3,4,5,6,7,8,x,0\n");
  EXPECT_EQ(error_of([&] { load_ferplus_training_votes(path, 1); }),
            path + ":2: vote count 9 is 'x', expected a number 0..999");
  write_text(path, "emotion,pixels,Usage\n");
  EXPECT_NE(error_of([&] { load_ferplus_training_votes(path, 1); }).find(path + ":1: expected the FER+ header"),
            std::string::npos);
}

TEST(Data, SoftTargetsFileIsRowAlignedAndChecked) {
  TempDir dir;
  const std::string path = dir / "soft.csv";
  const std::string header = "angry,disgust,fear,happy,sad,surprise,neutral\n";
  write_text(path, header + "0.1,0,0,0.7,0,0,0.2\n"
                            "0,0,0,0,0,0,0\r\n"  // all zero: the image keeps its label
                            "1e-3, 0.5 ,0,0,0,0,0.499\n");
  const std::vector<float> p = load_soft_targets(path, 3);
  ASSERT_EQ(p.size(), 21u);
  EXPECT_EQ(std::vector<float>(p.begin(), p.begin() + 7), (std::vector<float>{0.1f, 0, 0, 0.7f, 0, 0, 0.2f}));
  EXPECT_EQ(std::vector<float>(p.begin() + 14, p.end()), (std::vector<float>{1e-3f, 0.5f, 0, 0, 0, 0, 0.499f}));
  Dataset d;
  d.pixels.assign(3 * kPixels, 0);
  d.labels = {3, 6, 2};
  blend_soft_targets(d, p, 0.5f);
  EXPECT_FLOAT_EQ(d.soft[0], 0.05f);
  EXPECT_FLOAT_EQ(d.soft[3], 0.85f);
  EXPECT_FLOAT_EQ(d.soft[7 + 6], 1.0f);

  EXPECT_EQ(error_of([&] { load_soft_targets(path, 2); }),
            path + ": 3 Training rows, but the Training set has 2 images: soft targets must be row-aligned with the "
                   "whole fer2013.csv");
  write_text(path, header + "0.1,0,0,0.7,0,0\n");
  EXPECT_EQ(error_of([&] { load_soft_targets(path, 1); }), path + ":2: expected 7 comma-separated values, got 6");
  write_text(path, header + "0.1,0,0,0.7,0,0,0.2,0\n");
  EXPECT_EQ(error_of([&] { load_soft_targets(path, 1); }), path + ":2: expected 7 comma-separated values, got 8");
  write_text(path, header + "0.1,0,-0.5,0.7,0,0,0.2\n");
  EXPECT_EQ(error_of([&] { load_soft_targets(path, 1); }),
            path + ":2: value 3 is '-0.5', expected a non-negative number");
  write_text(path, header + "0.1,0,0,0.7x,0,nan,0.2\n");
  EXPECT_EQ(error_of([&] { load_soft_targets(path, 1); }),
            path + ":2: value 4 is '0.7x', expected a non-negative number");
  write_text(path, "emotion,pixels,Usage\n");
  EXPECT_EQ(error_of([&] { load_soft_targets(path, 1); }),
            path + ":1: expected the soft-targets header \"angry,disgust,fear,happy,sad,surprise,neutral\"");
}

TEST(Data, LoadCsvGzip) {
  TempDir dir;
  const std::string path = dir / "fer.csv.gz";
  write_gz(path, test_csv());
  LoadReport rep;
  FerSplits s = load_fer_csv(path, false, &rep);
  check_test_csv(s, rep);
  EXPECT_TRUE(contains(error_of([&] { load_fer_csv(path, true, nullptr); }), path + ":5: "));
}

// Hostile CSVs are read in bounded memory: a row of a million fields is one over-long line (skipped, or an error
// when strict); a gzip bomb of one endless line (100 MB of zeros in ~100 KB) likewise; a gzip bomb of valid rows
// stops at the image limit with an error naming the line.
TEST(Data, LoadCsvHostileInputStaysBounded) {
  TempDir dir;
  std::string fields = "1," ;
  fields.reserve(2u << 20);
  for (int i = 0; i < 1000000; ++i) fields += "7,";
  fields += "Training";
  const std::string wide = dir / "wide.csv";
  write_text(wide, "emotion,pixels,Usage\n" + fields + "\n" + row(3, pixel_string(1, 0), "Training") + "\n");
  LoadReport rep;
  FerSplits s = load_fer_csv(wide, false, &rep);
  EXPECT_EQ(s.train.size(), 1u);
  EXPECT_EQ(rep.reasons.at("line too long"), 1u);
  EXPECT_EQ(error_of([&] { load_fer_csv(wide, true, nullptr); }), wide + ":2: line too long (over 65536 bytes)");

  const std::string zeros = dir / "zeros.csv.gz";
  write_gz(zeros, "emotion,pixels,Usage\n" + std::string(100u << 20, '0'));
  EXPECT_LT(fs::file_size(zeros), 1u << 20);
  rep = {};
  s = load_fer_csv(zeros, false, &rep);
  EXPECT_EQ(s.train.size() + s.public_test.size() + s.private_test.size(), 0u);
  EXPECT_EQ(rep.reasons.at("line too long"), 1u);

  const std::string many = dir / "many.csv.gz";
  std::string text = "emotion,pixels,Usage\n";
  const std::string r = row(3, pixel_string(1, 0), "Training") + "\n";
  for (int i = 0; i < 3000; ++i) text += r;
  write_gz(many, text);
  EXPECT_EQ(error_of([&] { load_fer_csv(many, false, nullptr, 1000); }),
            many + ":1002: more than 1000 images: refusing to load more (the limit bounds memory; FER-2013 has 35,887)");
}

TEST(Data, LoadCsvHeaderAndEmptyFile) {
  TempDir dir;
  const std::string bad = dir / "bad.csv";
  write_text(bad, "label,pixels,usage\n" + row(1, pixel_string(1, 0), "Training") + "\n");
  // A wrong header is an error even when not strict.
  std::string e = error_of([&] { load_fer_csv(bad, false, nullptr); });
  EXPECT_TRUE(contains(e, bad + ":1: expected the header 'emotion,pixels,Usage'")) << e;
  const std::string empty = dir / "empty.csv";
  write_text(empty, "");
  EXPECT_TRUE(contains(error_of([&] { load_fer_csv(empty, false, nullptr); }), "empty file"));
  const std::string header_only = dir / "header.csv";
  write_text(header_only, kHeader + "\r\n");
  LoadReport rep;
  FerSplits s = load_fer_csv(header_only, true, &rep);
  EXPECT_EQ(s.train.size() + s.public_test.size() + s.private_test.size(), 0u);
  EXPECT_EQ(rep.rows, 0u);
  const std::string missing = dir / "missing.csv";
  e = error_of([&] { load_fer_csv(missing, false, nullptr); });
  EXPECT_TRUE(contains(e, missing + ": cannot open")) << e;
}

TEST(Data, LoadCsvTruncatedGzip) {
  TempDir dir;
  // Random pixels so the compressed file is large enough to cut in the middle of the data.
  Rng rng(5);
  std::string text = kHeader + "\n";
  for (int r = 0; r < 40; ++r) {
    std::string px;
    for (int i = 0; i < kPixels; ++i) px += (i ? " " : "") + std::to_string(rng.below(256));
    text += row(r % 7, px, "Training") + "\n";
  }
  const std::string full = dir / "full.csv.gz";
  write_gz(full, text);
  LoadReport rep;
  EXPECT_EQ(load_fer_csv(full, true, &rep).train.size(), 40u);

  std::vector<uint8_t> bytes = read_file(full);
  const std::string cut = dir / "cut.csv.gz";
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() / 2));
  }
  for (bool strict : {false, true}) {
    std::string e = error_of([&] { load_fer_csv(cut, strict, nullptr); });
    EXPECT_TRUE(contains(e, cut + ": ")) << e;
    EXPECT_TRUE(contains(e, "ends early at line ")) << e;
    EXPECT_TRUE(contains(e, "truncated")) << e;
  }
  // Cut just before the 8-byte trailer: all the data is there, but the stream is still incomplete.
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() - 4));
  }
  EXPECT_TRUE(contains(error_of([&] { load_fer_csv(cut, false, nullptr); }), "truncated"));
}

TEST(Data, LoadCsvLinesAcrossReadBlocks) {
  // Over 1 MiB of rows (the reader's block size), with a 3 MiB line in the middle and a bad row after it.
  TempDir dir;
  const std::string px = pixel_string(13, 7);
  std::string text = kHeader + "\n";
  for (int r = 0; r < 150; ++r) text += row(r % 7, px, "Training") + "\n";  // lines 2..151
  text += "1," + std::string(3 << 20, '7') + ",Training\n";                // line 152: too long
  for (int r = 0; r < 150; ++r) text += row(r % 7, px, "PublicTest") + "\n";  // lines 153..302
  text += "1,1 2 3,Training\n";                                             // line 303: too few pixels
  for (const std::string& path : {dir / "big.csv", dir / "big.csv.gz"}) {
    if (contains(path, ".gz"))
      write_gz(path, text);
    else
      write_text(path, text);
    LoadReport rep;
    FerSplits s = load_fer_csv(path, false, &rep);
    EXPECT_EQ(s.train.size(), 150u);
    EXPECT_EQ(s.public_test.size(), 150u);
    EXPECT_EQ(rep.rows, 302u);
    ASSERT_EQ(rep.first_errors.size(), 2u);
    EXPECT_EQ(rep.first_errors[0], path + ":152: line too long (over 65536 bytes)");
    EXPECT_EQ(rep.first_errors[1], path + ":303: expected 2304 pixel values, got 3");
    for (size_t i = 0; i < s.public_test.size(); ++i) {
      ASSERT_EQ(s.public_test.labels[i], i % 7);
      ASSERT_TRUE(std::equal(s.public_test.image(i), s.public_test.image(i) + kPixels, s.train.image(i)));
    }
    for (int j = 0; j < kPixels; ++j) ASSERT_EQ(s.train.image(149)[j], (j * 13 + 7) % 256);
    EXPECT_EQ(error_of([&] { load_fer_csv(path, true, nullptr); }), path + ":152: line too long (over 65536 bytes)");
  }
}

TEST(Data, LoadImageFolders) {
  TempDir dir;
  const fs::path root = dir.path() / "faces";
  for (const char* sub : {"train/Happy", "train/sad", "train/angry", "train/bogus_class", "test/neutral"})
    fs::create_directories(root / sub);
  // Colour PNG, 100 x 80, one flat colour: grey = BT.601 luma.
  std::vector<uint8_t> rgb(100 * 80 * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = 200;
    rgb[i + 1] = 100;
    rgb[i + 2] = 50;
  }
  ASSERT_TRUE(stbi_write_png((root / "train/Happy/b.png").c_str(), 100, 80, 3, rgb.data(), 100 * 3));
  // Colour RGBA PNG, 7 x 300.
  std::vector<uint8_t> rgba(7 * 300 * 4, 255);
  ASSERT_TRUE(stbi_write_png((root / "train/Happy/a.PNG").c_str(), 7, 300, 4, rgba.data(), 7 * 4));
  // Grey JPEG, 33 x 57, flat 90.
  std::vector<uint8_t> grey(33 * 57, 90);
  ASSERT_TRUE(stbi_write_jpg((root / "train/sad/x.jpg").c_str(), 33, 57, 1, grey.data(), 95));
  // Colour JPEG, 48 x 48, and a BMP.
  std::vector<uint8_t> rgb48(kPixels * 3, 30);
  ASSERT_TRUE(stbi_write_jpg((root / "train/sad/y.jpeg").c_str(), 48, 48, 3, rgb48.data(), 95));
  ASSERT_TRUE(stbi_write_bmp((root / "train/angry/ok.bmp").c_str(), 48, 48, 3, rgb48.data()));
  // Corrupt image, a non-image file, a hidden file (all in known class folders).
  write_text((root / "train/angry/broken.png").string(), "\x89PNG\r\n\x1a\n this is not really a png");
  write_text((root / "train/angry/notes.txt").string(), "ignored");
  write_text((root / "train/angry/._ok.bmp").string(), "ignored resource fork");
  // Unknown class folder with one image.
  std::vector<uint8_t> grey48(kPixels, 60);
  ASSERT_TRUE(stbi_write_png((root / "train/bogus_class/z.png").c_str(), 48, 48, 1, grey48.data(), 48));
  ASSERT_TRUE(stbi_write_png((root / "test/neutral/t.png").c_str(), 20, 20, 1, grey.data(), 20));

  LoadReport rep;
  FerSplits s = load_dataset(root.string(), false, &rep);
  EXPECT_EQ(rep.source, root.string());
  EXPECT_EQ(rep.rows, 8u);  // 6 in train known folders + 1 unknown folder + 1 test
  EXPECT_EQ(rep.kept, 6u);
  EXPECT_EQ(rep.skipped, 2u);
  EXPECT_EQ(rep.reasons.at("undecodable image"), 1u);
  EXPECT_EQ(rep.reasons.at("unknown class folder"), 1u);
  ASSERT_EQ(s.train.size(), 5u);
  // Sorted by name (bytes, so "Happy" < "angry"): Happy/a.PNG, Happy/b.png, angry/ok.bmp, sad/x.jpg, sad/y.jpeg.
  std::vector<uint8_t> labels(s.train.labels.begin(), s.train.labels.end());
  EXPECT_EQ(labels, (std::vector<uint8_t>{3, 3, 0, 4, 4}));
  const int luma = static_cast<int>(std::lround(0.299 * 200 + 0.587 * 100 + 0.114 * 50));
  for (int i = 0; i < kPixels; ++i) {
    ASSERT_EQ(s.train.image(0)[i], 255);         // white RGBA
    ASSERT_EQ(s.train.image(1)[i], luma);        // flat colour
    ASSERT_EQ(s.train.image(2)[i], 30);          // BMP, exact
    ASSERT_NEAR(s.train.image(3)[i], 90, 2);     // JPEG: lossy
  }
  EXPECT_EQ(s.public_test.size(), 1u);
  EXPECT_EQ(s.private_test.size(), 1u);
  EXPECT_EQ(s.public_test.labels[0], 6);
  EXPECT_EQ(s.private_test.pixels, s.public_test.pixels);
  bool named_broken = false, named_bogus = false;
  for (const std::string& e : rep.first_errors) {
    named_broken |= contains(e, "broken.png: cannot decode image");
    named_bogus |= contains(e, "unknown class folder 'bogus_class'");
  }
  EXPECT_TRUE(named_broken && named_bogus) << rep.summary();

  // Strict: the unknown folder is named before anything loads.
  std::string e = error_of([&] { load_folder_dataset(root.string(), true, nullptr); });
  EXPECT_TRUE(contains(e, "unknown class folder 'bogus_class'")) << e;
  fs::remove_all(root / "train/bogus_class");
  e = error_of([&] { load_folder_dataset(root.string(), true, nullptr); });
  EXPECT_TRUE(contains(e, "broken.png: cannot decode image")) << e;
  fs::remove(root / "train/angry/broken.png");
  LoadReport rep2;
  s = load_folder_dataset(root.string(), true, &rep2);
  EXPECT_EQ(rep2.skipped, 0u);
  EXPECT_EQ(s.train.size(), 5u);

  // One folder on its own; val/ is preferred for public_test when both exist.
  fs::create_directories(root / "Validation/fear");
  ASSERT_TRUE(stbi_write_png((root / "Validation/fear/v.png").c_str(), 48, 48, 1, grey48.data(), 48));
  s = load_folder_dataset(root.string(), true, nullptr);
  EXPECT_EQ(s.public_test.labels.at(0), 2);
  EXPECT_EQ(s.private_test.labels.at(0), 6);
  Dataset d = load_image_folder((root / "test").string(), true, nullptr);
  EXPECT_EQ(d.size(), 1u);
  EXPECT_EQ(d.class_counts()[6], 1u);

  // Missing train/ and a folder without class sub-folders.
  fs::create_directories(dir.path() / "empty");
  e = error_of([&] { load_folder_dataset((dir.path() / "empty").string(), false, nullptr); });
  EXPECT_TRUE(contains(e, "no train/ folder")) << e;
  e = error_of([&] { load_image_folder((dir.path() / "empty").string(), false, nullptr); });
  EXPECT_TRUE(contains(e, "no class sub-folders")) << e;
}

TEST(Image, DecodeRefusesGarbageAndHugeImages) {
  const std::string garbage = "definitely not an image";
  std::string e = error_of([&] { decode_image(reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size()); });
  EXPECT_TRUE(contains(e, "cannot decode image")) << e;
  e = error_of([&] { decode_image(nullptr, 0); });
  EXPECT_TRUE(contains(e, "cannot decode image")) << e;

  std::vector<uint8_t> px(16 * 16, 7);
  std::vector<uint8_t> png = png_bytes(16, 16, 1, px);
  GrayImage g = decode_image(png.data(), png.size());
  EXPECT_EQ(g.width, 16);
  EXPECT_EQ(g.height, 16);
  EXPECT_EQ(g.pixels, px);
  // Claim 10000 x 10000 in the IHDR chunk (width at byte 16, height at 20, big-endian): refused before decoding.
  for (int off : {16, 20}) {
    png[off] = 0;
    png[off + 1] = 0;
    png[off + 2] = 0x27;
    png[off + 3] = 0x10;
  }
  e = error_of([&] { decode_image(png.data(), png.size()); });
  EXPECT_EQ(e, "image too large: 10000 x 10000 (limit 40000000 pixels)");
  // 30000 x 30000 (0x7530): the same, before any pixel memory is allocated.
  for (int off : {16, 20}) png[off + 2] = 0x75, png[off + 3] = 0x30;
  e = error_of([&] { decode_image(png.data(), png.size()); });
  EXPECT_EQ(e, "image too large: 30000 x 30000 (limit 40000000 pixels)");
  // A 75-byte BMP (found by fuzzing) claiming 7 x 5,111,808 pixels: refused at once, not decoded for seconds.
  const std::vector<uint8_t> bmp = {
      0x42, 0x4d, 0xae, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x36, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x07,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x4e, 0x00, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d, 0x9d};
  e = error_of([&] { decode_image(bmp.data(), bmp.size()); });
  EXPECT_EQ(e, "image claims 7 x 5111808 pixels, more than its " + std::to_string(bmp.size()) + " bytes can hold");
  // A truncated PNG.
  std::vector<uint8_t> cut = png_bytes(16, 16, 1, px);
  cut.resize(cut.size() / 2);
  e = error_of([&] { decode_image(cut.data(), cut.size()); });
  EXPECT_TRUE(contains(e, "cannot decode image")) << e;
}

TEST(Image, RgbaToGray) {
  const uint8_t rgba[8] = {255, 0, 0, 255, 0, 0, 255, 0};
  GrayImage g = rgba_to_gray(rgba, 2, 1);
  EXPECT_EQ(g.pixels[0], 76);  // 0.299 * 255
  EXPECT_EQ(g.pixels[1], 29);  // 0.114 * 255
  const uint8_t rgb[3] = {0, 255, 0};
  EXPECT_EQ(rgba_to_gray(rgb, 1, 1, 3).pixels[0], 150);  // 0.587 * 255
}

TEST(Image, ResampleConstantAndSmooth) {
  for (auto [w, h] : {std::pair{1000, 1000}, std::pair{48, 48}, std::pair{5, 9}, std::pair{1, 1}, std::pair{300, 7}}) {
    GrayImage g;
    g.width = w;
    g.height = h;
    g.pixels.assign(static_cast<size_t>(w) * h, 123);
    uint8_t out[kPixels];
    to_face_pixels(g, out);
    for (int i = 0; i < kPixels; ++i) ASSERT_EQ(out[i], 123) << w << "x" << h;
  }
  // A 1000 x 1000 one-pixel checkerboard shrinks to a smooth mid grey (no aliasing).
  GrayImage c;
  c.width = c.height = 1000;
  c.pixels.resize(1000 * 1000);
  for (int y = 0; y < 1000; ++y)
    for (int x = 0; x < 1000; ++x) c.pixels[y * 1000 + x] = ((x + y) & 1) ? 255 : 0;
  uint8_t out[kPixels];
  to_face_pixels(c, out);
  for (int i = 0; i < kPixels; ++i) ASSERT_NEAR(out[i], 127.5, 1.5);
  // Same size is the identity; a sub-rectangle picks the right pixels; enlarging is bilinear between neighbours.
  GrayImage r;
  r.width = r.height = kSide;
  r.pixels.resize(kPixels);
  for (int i = 0; i < kPixels; ++i) r.pixels[i] = static_cast<uint8_t>(i * 31 % 256);
  to_face_pixels(r, out);
  EXPECT_TRUE(std::equal(out, out + kPixels, r.pixels.begin()));
  uint8_t one;
  resample_gray(r, 10, 20, 1, 1, &one, 1, 1);
  EXPECT_EQ(one, r.pixels[20 * kSide + 10]);
  GrayImage two;
  two.width = 2;
  two.height = 1;
  two.pixels = {0, 200};
  uint8_t wide[4];
  resample_gray(two, 0, 0, 2, 1, wide, 4, 1);
  EXPECT_EQ(wide[0], 0);
  EXPECT_EQ(wide[1], 50);
  EXPECT_EQ(wide[2], 150);
  EXPECT_EQ(wide[3], 200);
  EXPECT_THROW(resample_gray(r, 0, 0, 0, 10, out, 48, 48), std::invalid_argument);
}

TEST(Augment, DeterministicAndSeedDependent) {
  const std::vector<uint8_t> img = face(1);
  Augment aug;
  aug.erase = 0.5f;
  std::vector<float> a(kPixels), b(kPixels), c(kPixels);
  int differing_seeds = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng r1(seed), r2(seed), r3(seed + 1000);
    augment_image(img.data(), a.data(), aug, r1);
    augment_image(img.data(), b.data(), aug, r2);
    augment_image(img.data(), c.data(), aug, r3);
    ASSERT_EQ(a, b) << "seed " << seed;
    EXPECT_EQ(r1.state(), r2.state());
    differing_seeds += (a != c);
    for (float v : a) {
      ASSERT_GE(v, 0.0f);
      ASSERT_LE(v, 1.0f);
    }
  }
  EXPECT_EQ(differing_seeds, 20);
  // Consecutive calls on one Rng give different augmentations.
  Rng rng(7);
  augment_image(img.data(), a.data(), aug, rng);
  augment_image(img.data(), b.data(), aug, rng);
  EXPECT_NE(a, b);
}

TEST(Augment, DisabledIsPlainInputAndFlipOnlyMirrors) {
  const std::vector<uint8_t> img = face(2);
  Augment none;
  none.flip = false;
  none.shift = none.rotate_deg = none.scale = none.brightness = none.contrast = none.erase = 0.0f;
  EXPECT_FALSE(none.enabled());
  EXPECT_TRUE(Augment().enabled());
  std::vector<float> plain(kPixels), out(kPixels), mirrored(kPixels);
  image_to_input(img.data(), plain.data());
  Rng rng(3);
  augment_image(img.data(), out.data(), none, rng);
  EXPECT_EQ(out, plain);
  // Flip only: each output is either the image or its mirror, and both occur.
  Augment flip_only = none;
  flip_only.flip = true;
  flip_input(plain.data(), mirrored.data());
  int flips = 0, same = 0;
  for (int i = 0; i < 40; ++i) {
    augment_image(img.data(), out.data(), flip_only, rng);
    if (out == mirrored) ++flips;
    else if (out == plain) ++same;
  }
  EXPECT_EQ(flips + same, 40);
  EXPECT_GT(flips, 5);
  EXPECT_GT(same, 5);
}

TEST(Augment, ShiftOnlyMovesPixels) {
  // A random shift alone changes the image but keeps its overall brightness (edges are replicated, not black).
  std::vector<uint8_t> img = face(4);
  Augment aug;
  aug.flip = false;
  aug.rotate_deg = aug.scale = aug.brightness = aug.contrast = aug.erase = 0.0f;
  aug.shift = 0.2f;
  std::vector<float> out(kPixels);
  Rng rng(11);
  augment_image(img.data(), out.data(), aug, rng);
  std::vector<float> plain(kPixels);
  image_to_input(img.data(), plain.data());
  EXPECT_NE(out, plain);
  float mean_in = 0, mean_out = 0;
  for (int i = 0; i < kPixels; ++i) {
    mean_in += plain[i];
    mean_out += out[i];
  }
  EXPECT_NEAR(mean_in / kPixels, mean_out / kPixels, 0.2f);
}

TEST(Augment, FlipOfFlipIsIdentityAndInputRange) {
  const std::vector<uint8_t> img = face(5);
  std::vector<float> x(kPixels), f(kPixels), ff(kPixels);
  image_to_input(img.data(), x.data());
  for (int i = 0; i < kPixels; ++i) {
    ASSERT_GE(x[i], 0.0f);
    ASSERT_LE(x[i], 1.0f);
    ASSERT_FLOAT_EQ(x[i], img[i] / 255.0f);
  }
  const uint8_t extremes[2] = {0, 255};
  std::vector<uint8_t> ends(kPixels);
  for (int i = 0; i < kPixels; ++i) ends[i] = extremes[i & 1];
  std::vector<float> e(kPixels);
  image_to_input(ends.data(), e.data());
  EXPECT_EQ(*std::min_element(e.begin(), e.end()), 0.0f);
  EXPECT_EQ(*std::max_element(e.begin(), e.end()), 1.0f);

  flip_input(x.data(), f.data());
  EXPECT_NE(f, x);
  EXPECT_EQ(f[0], x[kSide - 1]);
  flip_input(f.data(), ff.data());
  EXPECT_EQ(ff, x);
  // In place, and another side length.
  std::vector<float> inplace = x;
  flip_input(inplace.data(), inplace.data());
  EXPECT_EQ(inplace, f);
  std::vector<float> small = {1, 2, 3, 4, 5, 6, 7, 8, 9}, small_f(9);
  flip_input(small.data(), small_f.data(), 3);
  EXPECT_EQ(small_f, (std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7}));
}

TEST(Data, RealFer2013Csv) {
  const std::string path = FERKIT_SHARED_DIR "/data/fer2013/fer2013.csv.gz";
  if (!file_exists(path)) GTEST_SKIP() << path << " not present";
  auto t0 = std::chrono::steady_clock::now();
  LoadReport rep;
  FerSplits s = load_fer_csv(path, true, &rep);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("loaded %s in %.2f s\n", path.c_str(), secs);
  EXPECT_EQ(s.train.size(), 28709u);
  EXPECT_EQ(s.public_test.size(), 3589u);
  EXPECT_EQ(s.private_test.size(), 3589u);
  EXPECT_EQ(s.train.class_counts(), (std::vector<size_t>{3995, 436, 4097, 7215, 4830, 3171, 4965}));
  EXPECT_EQ(s.public_test.class_counts(), (std::vector<size_t>{467, 56, 496, 895, 653, 415, 607}));
  EXPECT_EQ(s.private_test.class_counts(), (std::vector<size_t>{491, 55, 528, 879, 594, 416, 626}));
  EXPECT_EQ(rep.rows, 35887u);
  EXPECT_EQ(rep.kept, 35887u);
  EXPECT_EQ(rep.skipped, 0u);
  EXPECT_EQ(s.train.pixels.size(), 28709u * kPixels);
}

// Found by tests/fuzz/fuzz_image: a JPEG Huffman table with more than 256 codes overflowed stb_image's tables.
TEST(FuzzRegressions, JpegHuffmanTableWithTooManyCodes) {
  const uint8_t nine[] = {0xff, 0xd8, 0xff, 0xc4, 0x01, 0x01, 0x00, 0xff, 0x73};
  try {
    ferkit::decode_image(nine, sizeof nine);
    FAIL() << "decoded a corrupt JPEG";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot decode image"), std::string::npos) << e.what();
  }
  auto bytes = ferkit::read_file(FERKIT_SOURCE_DIR "/tests/fuzz/regressions/image/stb_jpeg_dht_over_256_codes.jpg");
  EXPECT_THROW(ferkit::decode_image(bytes.data(), bytes.size()), std::runtime_error);
  // Found later: the counts of a table running past its DHT segment, and a JPEG behind 104 FF fill bytes (stb
  // skips them) whose DHT the first guard never looked at. Both overflowed stb's 257-entry size table.
  for (const char* name : {"image/jpeg_dht_counts_past_segment.jpg", "image_folder/jpeg_dht_counts_past_segment_2.jpg"}) {
    bytes = ferkit::read_file(std::string(FERKIT_SOURCE_DIR "/tests/fuzz/regressions/") + name);
    EXPECT_EQ(error_of([&] { ferkit::decode_image(bytes.data(), bytes.size()); }).find("cannot decode image: corrupt JPEG: a Huffman table declares"), 0u) << name;
  }
}

// Found by tests/fuzz/fuzz_image_folder in CI: a corrupt JPEG whose scan uses a Huffman table it never defines.
// Debian's stb_image did not clear its decoder state, so the table came from whatever the heap held: after a
// valid JPEG had been decoded, its freed tables made this file decode (a 16x16 image built with another file's
// tables); alone it failed. Now it fails the same way whatever was decoded before.
TEST(FuzzRegressions, JpegDecodesTheSameWhateverWasDecodedBefore) {
  const auto bad = ferkit::read_file(FERKIT_SOURCE_DIR "/tests/fuzz/regressions/image_folder/jpeg_undefined_huffman_table.jpg");
  const auto good = ferkit::read_file(FERKIT_SOURCE_DIR "/tests/fuzz/corpus/image/rgb.jpg");
  const std::string alone = error_of([&] { ferkit::decode_image(bad.data(), bad.size()); });
  EXPECT_EQ(alone.find("cannot decode image"), 0u) << alone;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ferkit::decode_image(good.data(), good.size()).width, 16);
    EXPECT_EQ(error_of([&] { ferkit::decode_image(bad.data(), bad.size()); }), alone) << "after a valid JPEG, run " << i;
  }
}

// A PNG whose first IDAT chunk is empty made Debian's stb_image memcpy from a null pointer (UBSan).
TEST(FuzzRegressions, PngWithAnEmptyFirstIdatChunk) {
  auto bytes = ferkit::read_file(FERKIT_SOURCE_DIR "/tests/fuzz/regressions/image/png_empty_first_idat.png");
  EXPECT_EQ(error_of([&] { ferkit::decode_image(bytes.data(), bytes.size()); }),
            "cannot decode image: corrupt PNG: an empty IDAT chunk before any image data");
}

// Found by CI's image fuzzer: stb_image grows its IDAT buffer to what a chunk claims before reading it, so a
// 65-byte PNG whose IDAT claims 2 GB allocated 2 GB. Every chunk must now fit in the file; a valid PNG cut just
// before its last CRC (which stb does not read) still decodes.
TEST(FuzzRegressions, PngChunkClaimingMoreThanTheFileIsRefusedBeforeAllocating) {
  auto bytes = ferkit::read_file(FERKIT_SOURCE_DIR "/tests/fuzz/regressions/image/png_idat_claims_2gb.png");
  EXPECT_EQ(error_of([&] { ferkit::decode_image(bytes.data(), bytes.size()); }),
            "cannot decode image: truncated PNG: the chunk at byte 33 claims 2147483632 bytes of data, the file has "
            "24 left");
  auto good = ferkit::read_file(FERKIT_SOURCE_DIR "/tests/fuzz/corpus/image/grey.png");
  const ferkit::GrayImage whole = ferkit::decode_image(good.data(), good.size());
  good.resize(good.size() - 4);
  const ferkit::GrayImage cut = ferkit::decode_image(good.data(), good.size());
  EXPECT_EQ(cut.pixels, whole.pixels);
  good.resize(good.size() - 1);  // now IEND's (empty) data is fine but its type is cut: stb refuses
  EXPECT_THROW(ferkit::decode_image(good.data(), good.size()), std::runtime_error);
}
