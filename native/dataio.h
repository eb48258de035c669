// Loading FER data sets from disk: the Kaggle fer2013.csv (plain or gzip) and image-folder layouts.
// Every loader reports what it kept and skipped; strict mode stops at the first malformed row or file.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "data.h"

namespace ferkit {

struct LoadReport {
  std::string source;                      // file or folder
  size_t rows = 0, kept = 0, skipped = 0;  // data rows (CSV) or image files (folders)
  std::map<std::string, size_t> reasons;   // reason -> count of skipped rows/files
  std::vector<std::string> first_errors;   // first 20 errors as "path:line: reason" (or "path: reason" for images)
  std::string summary() const;             // human readable, multi-line
};

struct FerSplits {
  Dataset train, public_test, private_test;
};

// Reads Kaggle fer2013.csv, plain or gzip. The header must be emotion,pixels,Usage (otherwise always an error).
// strict: throws std::runtime_error("path:line: reason") at the first malformed row; otherwise skips and counts it.
// Lines longer than 64 KiB are malformed ("line too long") and are read in bounded memory. Blank lines are ignored.
// A gzip stream that ends early (truncated file) or is corrupt is an error naming the file and the line reached,
// even when not strict.
// At most max_images rows are kept (then it is an error naming the line): the loaded images take 2,304 bytes each,
// so a small gzip bomb of valid rows cannot exhaust memory.
constexpr size_t kMaxCsvImages = 1000000;  // 2.3 GB of pixels
FerSplits load_fer_csv(const std::string& path, bool strict, LoadReport* report, size_t max_images = kMaxCsvImages);

// One folder of class sub-folders: dir/<class-name>/*.png|jpg|jpeg|bmp (names as class_index() accepts, case-
// insensitive; the extensions too). Any size, colour or grey -> 48x48 grayscale via to_face_pixels. Undecodable files
// are malformed (strict: throw; else skip and count). Unknown class folder names are an error naming them (strict),
// or skipped with their files counted. Hidden files, other extensions and nested folders are ignored.
// Files are loaded in sorted order (deterministic). Throws if dir has no sub-folders at all.
Dataset load_image_folder(const std::string& dir, bool strict, LoadReport* report);

// root/train (required), root/val|valid|validation (optional), root/test (optional); names case-insensitive.
// public_test = val if present, else test; private_test = test if present, else val. The report sums all folders.
FerSplits load_folder_dataset(const std::string& root, bool strict, LoadReport* report);

// Dispatch: a directory -> load_folder_dataset; otherwise load_fer_csv.
FerSplits load_dataset(const std::string& path, bool strict, LoadReport* report);

// FER+ votes (fer2013new.csv, row-aligned with fer2013.csv) for the Training rows, in file order: training_rows
// rows of kNumClasses vote counts (FER order), ready for blend_soft_targets. Throws "path:line: reason" for a bad
// header or row, and names both counts when the file's Training rows are not training_rows.
std::vector<float> load_ferplus_training_votes(const std::string& path, size_t training_rows);
// The same for the rows of any split (PublicTest, PrivateTest: `rows` of them).
std::vector<float> load_ferplus_votes(const std::string& path, Usage usage, size_t rows);

// Soft targets (check_soft_targets_header / parse_soft_targets_row): one row per Training image of the whole
// fer2013.csv, in file order. Same errors as load_ferplus_training_votes.
std::vector<float> load_soft_targets(const std::string& path, size_t training_rows);

}  // namespace ferkit
