#include "dataio.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "files.h"
#include "image.h"

namespace ferkit {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxLine = 64 * 1024;  // longer CSV lines are malformed
constexpr size_t kMaxErrors = 20;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string s) {
  for (char& c : s) c = lower(c);
  return s;
}

// Records one malformed row or file: strict mode throws the message, otherwise it is counted.
void malformed(LoadReport& rep, bool strict, const std::string& kind, const std::string& message, size_t count = 1) {
  if (strict) throw std::runtime_error(message);
  rep.skipped += count;
  rep.reasons[kind] += count;
  if (rep.first_errors.size() < kMaxErrors) rep.first_errors.push_back(message);
}

// What a CSV file (plain or gzip) holds, read from its size and for gzip its trailer, for sizing buffers and
// reserving memory up front. A wrong guess only costs time (vectors then grow as usual; reads take more blocks).
struct SizeGuess {
  uint64_t bytes = 0;   // uncompressed bytes (0: unknown)
  uint64_t on_disk = 0; // the file's size
};
SizeGuess guess_size(const std::string& path) {
  SizeGuess g;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return g;
  if (std::fseek(f.get(), 0, SEEK_END) != 0) return g;
  long size = std::ftell(f.get());
  if (size < 0) return g;
  g.on_disk = static_cast<uint64_t>(size);
  unsigned char head[2] = {0, 0};
  std::rewind(f.get());
  if (std::fread(head, 1, 2, f.get()) != 2) return g;
  if (head[0] == 0x1f && head[1] == 0x8b) {
    // The trailer holds the uncompressed size modulo 4 GiB, and can lie: deflate expands at most ~1032:1.
    unsigned char t[4];
    if (std::fseek(f.get(), -4, SEEK_END) != 0 || std::fread(t, 1, 4, f.get()) != 4) return g;
    const uint64_t trailer = t[0] | (t[1] << 8) | (t[2] << 16) | (static_cast<uint64_t>(t[3]) << 24);
    g.bytes = std::min<uint64_t>(trailer, g.on_disk * 1032);
  } else {
    g.bytes = g.on_disk;
  }
  return g;
}

// An upper bound on the data rows: every pixel takes at least two characters.
size_t row_bound(const SizeGuess& g) {
  return g.bytes ? static_cast<size_t>(std::min<uint64_t>(g.bytes / (2 * kPixels) + 1, 100000)) : 0;
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

std::string class_list() {
  std::string s;
  for (int i = 0; i < kNumClasses; ++i) s += std::string(i ? ", " : "") + kClassNames[i];
  return s;
}

bool is_image_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;  // hidden files, macOS "._x.jpg" resource forks
  size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = lowered(name.substr(dot + 1));
  return ext == "png" || ext == "jpg" || ext == "jpeg" || ext == "bmp";
}

// The entries of dir that `keep` accepts (name, entry), sorted by path.
template <class Keep>
std::vector<fs::path> list_folder(const fs::path& dir, Keep keep) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw std::runtime_error(dir.string() + ": cannot list folder: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw std::runtime_error(dir.string() + ": cannot list folder: " + ec.message());
    if (keep(it->path().filename().string(), *it)) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Sub-folders (following links) of dir, sorted by name; hidden ones left out.
std::vector<fs::path> sub_folders(const fs::path& dir) {
  return list_folder(dir, [](const std::string& name, const fs::directory_entry& e) {
    std::error_code ec;
    return !name.empty() && name[0] != '.' && e.is_directory(ec);
  });
}

// Image files (by extension) directly in dir, sorted by name.
std::vector<fs::path> image_files(const fs::path& dir) {
  return list_folder(dir, [](const std::string& name, const fs::directory_entry& e) {
    std::error_code ec;
    return is_image_name(name) && e.is_regular_file(ec);
  });
}

void load_image_folder_into(const std::string& dir, bool strict, LoadReport& rep, Dataset& out) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a folder");
  std::vector<fs::path> folders = sub_folders(dir);
  if (folders.empty())
    throw std::runtime_error(dir + ": no class sub-folders (expected " + dir + "/<class>/*.png|jpg|jpeg|bmp with class " +
                             "names " + class_list() + ")");

  std::vector<std::string> unknown;
  for (const fs::path& f : folders)
    if (class_index(f.filename().string()) < 0) unknown.push_back("'" + f.filename().string() + "'");
  if (strict && !unknown.empty()) {
    std::string names;
    for (const std::string& n : unknown) names += (names.empty() ? "" : ", ") + n;
    throw std::runtime_error(dir + ": unknown class folder" + (unknown.size() > 1 ? "s " : " ") + names +
                             " (expected " + class_list() + ")");
  }

  uint8_t face[kPixels];
  for (const fs::path& folder : folders) {
    const std::string name = folder.filename().string();
    const int label = class_index(name);
    std::vector<fs::path> files = image_files(folder);
    if (label < 0) {
      rep.rows += files.size();
      malformed(rep, false, "unknown class folder",
                folder.string() + ": unknown class folder '" + name + "' (" + std::to_string(files.size()) +
                    " image files skipped; expected " + class_list() + ")",
                files.size());
      continue;
    }
    for (const fs::path& file : files) {
      ++rep.rows;
      const std::string path = file.string();
      std::vector<uint8_t> bytes;
      try {
        bytes = read_file(path);
      } catch (const std::runtime_error& e) {
        malformed(rep, strict, "unreadable file", e.what());
        continue;
      }
      try {
        GrayImage img = decode_image(bytes.data(), bytes.size());
        to_face_pixels(img, face);
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        malformed(rep, strict, "undecodable image", path + ": " + e.what());
        continue;
      }
      out.add(face, label);
      ++rep.kept;
    }
  }
}

// The sub-folder of root whose name matches one of names (case-insensitive, earlier names first); "" if none.
std::string find_split(const std::string& root, std::initializer_list<const char*> names) {
  std::vector<fs::path> folders = sub_folders(root);
  for (const char* want : names)
    for (const fs::path& f : folders)
      if (lowered(f.filename().string()) == want) return f.string();
  return "";
}

}  // namespace

std::string LoadReport::summary() const {
  std::string s = source + ": " + std::to_string(rows) + " read, " + std::to_string(kept) + " kept, " +
                  std::to_string(skipped) + " skipped\n";
  if (!reasons.empty()) {
    s += "  skipped because:\n";
    for (const auto& [reason, count] : reasons) s += "    " + reason + ": " + std::to_string(count) + "\n";
  }
  if (!first_errors.empty()) {
    s += first_errors.size() < skipped ? "  first errors:\n" : "  errors:\n";
    for (const std::string& e : first_errors) s += "    " + e + "\n";
  }
  return s;
}

FerSplits load_fer_csv(const std::string& path, bool strict, LoadReport* report, size_t max_images) {
  LoadReport local;
  LoadReport& rep = report ? *report : local;
  rep = LoadReport{};
  rep.source = path;

  errno = 0;
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw std::runtime_error(path + ": cannot open: " + (errno ? std::strerror(errno) : "out of memory"));
  const SizeGuess guess = guess_size(path);
  // Blocks of up to 1 MiB, smaller for a small file (a fuzzer's input: fresh megabyte buffers dominated its time).
  const unsigned block = static_cast<unsigned>(std::clamp<uint64_t>(guess.bytes + 1, 4096, 1 << 20));
  gzbuffer(f.get(), std::min(block, 1u << 18));

  // Reserve room for every row in each split: a growing vector would copy (and page-fault) its contents at every
  // doubling, which dominated the load time of the real 300 MB file. Only the pages written are ever touched.
  FerSplits splits;
  Dataset* by_usage[3] = {&splits.train, &splits.public_test, &splits.private_test};
  if (size_t bound = row_bound(guess)) {
    for (Dataset* d : by_usage) {
      d->pixels.reserve(bound * kPixels);
      d->labels.reserve(bound);
    }
  }
  auto row = std::make_unique<CsvRow>();
  size_t line_no = 0;

  auto handle_line = [&](std::string_view line, bool too_long) {
    ++line_no;
    if (line_no == 1) {
      std::string err = too_long ? "expected the header 'emotion,pixels,Usage', got a line over 64 KiB"
                                 : check_fer_csv_header(line);
      if (!err.empty()) throw std::runtime_error(path + ":1: " + err);
      return;
    }
    if (!too_long) {
      size_t i = 0;
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      if (i == line.size()) return;  // blank line
    }
    ++rep.rows;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    if (too_long) {
      malformed(rep, strict, "line too long", where + "line too long (over " + std::to_string(kMaxLine) + " bytes)");
      return;
    }
    const char* kind = "malformed row";
    std::string err = parse_fer_csv_row(line, *row, &kind);
    if (!err.empty()) {
      malformed(rep, strict, kind, where + err);
      return;
    }
    if (rep.kept >= max_images)
      throw std::runtime_error(where + "more than " + std::to_string(max_images) +
                               " images: refusing to load more (the limit bounds memory; FER-2013 has 35,887)");
    by_usage[static_cast<int>(row->usage)]->add(row->pixels, row->label);
    ++rep.kept;
  };

  // Read in large blocks and split lines here (faster than gzgets). A line that spans blocks is gathered in
  // `partial`, which never grows past kMaxLine: the rest of an over-long line is dropped.
  // Decompression runs one block ahead on a second thread while this one parses (the gzFile is only ever used
  // by one thread at a time: each read is handed over through its future). A file that fits in one block is read
  // on this thread (no thread start for a small file).
  std::unique_ptr<char[]> bufs[2] = {std::unique_ptr<char[]>(new char[block]),
                                     std::unique_ptr<char[]>(new char[block])};
  const auto policy = guess.bytes < block ? std::launch::deferred : std::launch::async;
  std::string partial;
  bool partial_too_long = false;
  int read_errno = 0;  // errno is per thread: the reader's is passed back here (synchronized by the future)
  auto read_block = [gz = f.get(), &bufs, &read_errno, block](int which) {
    int n = gzread(gz, bufs[which].get(), block);
    if (n < 0) read_errno = errno;
    return n;
  };
  // Declared after f, so it is destroyed (waited for) before the file is closed, also when parsing throws.
  std::future<int> ahead = std::async(policy, read_block, 0);
  for (int cur = 0;; cur ^= 1) {
    int n = ahead.get();
    if (n <= 0) break;
    ahead = std::async(policy, read_block, cur ^ 1);
    const char* p = bufs[cur].get();
    const char* e = p + n;
    while (p < e) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(e - p)));
      const char* end = nl ? nl : e;
      const size_t len = static_cast<size_t>(end - p);
      if (!partial_too_long) {
        if (partial.size() + len > kMaxLine) {
          partial_too_long = true;
          partial.clear();
        } else if (!nl || !partial.empty()) {
          partial.append(p, len);
        }
      }
      if (nl) {
        if (partial_too_long)
          handle_line(std::string_view(), true);
        else if (partial.empty())
          handle_line(std::string_view(p, len), false);  // the common case: no copy
        else
          handle_line(partial, false);
        partial.clear();
        partial_too_long = false;
        p = nl + 1;
      } else {
        p = e;
      }
    }
  }
  int err = Z_OK;
  const char* msg = gzerror(f.get(), &err);
  if (err == Z_BUF_ERROR)
    throw std::runtime_error(path + ": the compressed data ends early at line " + std::to_string(line_no + 1) +
                             " (truncated or incomplete gzip file)");
  if (err == Z_ERRNO)
    throw std::runtime_error(path + ": read error at line " + std::to_string(line_no + 1) + ": " +
                             std::strerror(read_errno));
  if (err != Z_OK)
    throw std::runtime_error(path + ": corrupt gzip data at line " + std::to_string(line_no + 1) + ": " +
                             (msg ? msg : "unknown error"));
  if (partial_too_long || !partial.empty()) handle_line(partial, partial_too_long);  // last line without '\n'
  if (line_no == 0) throw std::runtime_error(path + ": empty file (expected the header emotion,pixels,Usage)");

  return splits;
}

Dataset load_image_folder(const std::string& dir, bool strict, LoadReport* report) {
  LoadReport local;
  LoadReport& rep = report ? *report : local;
  rep = LoadReport{};
  rep.source = dir;
  Dataset out;
  load_image_folder_into(dir, strict, rep, out);
  return out;
}

FerSplits load_folder_dataset(const std::string& root, bool strict, LoadReport* report) {
  LoadReport local;
  LoadReport& rep = report ? *report : local;
  rep = LoadReport{};
  rep.source = root;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw std::runtime_error(root + ": not a folder");

  const std::string train = find_split(root, {"train"});
  const std::string val = find_split(root, {"val", "valid", "validation"});
  const std::string test = find_split(root, {"test"});
  if (train.empty())
    throw std::runtime_error(root + ": no train/ folder (expected " + root +
                             "/train/<class>/*.png|jpg|jpeg|bmp, optionally val/ and test/ alike)");

  FerSplits s;
  load_image_folder_into(train, strict, rep, s.train);
  if (s.train.size() == 0) throw std::runtime_error(train + ": no images loaded");
  Dataset v, t;
  if (!val.empty()) load_image_folder_into(val, strict, rep, v);
  if (!test.empty()) load_image_folder_into(test, strict, rep, t);
  if (!val.empty() && !test.empty()) {
    s.public_test = std::move(v);
    s.private_test = std::move(t);
  } else if (!val.empty()) {
    s.public_test = v;
    s.private_test = std::move(v);
  } else if (!test.empty()) {
    s.public_test = t;
    s.private_test = std::move(t);
  }
  return s;
}

namespace {

// The rows of a per-image target file after its header: parse(line, usage, row) fills kNumClasses values and the
// row's split; only the rows of split `keep` are kept. Errors name the file and the line; `what` names the file's
// kind.
template <class CheckHeader, class ParseRow>
std::vector<float> load_target_rows(const std::string& path, Usage keep, size_t expected_rows, const char* what,
                                    CheckHeader check_header, ParseRow parse) {
  const std::string text = read_text_file(path);
  std::vector<float> rows;
  rows.reserve(expected_rows * kNumClasses);
  size_t line_no = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + at, end - at);
    at = end + 1;
    ++line_no;
    if (line_no == 1) {
      const std::string err = check_header(line);
      if (!err.empty()) throw std::runtime_error(path + ":1: " + err);
      continue;
    }
    if (line.empty() || line == "\r") continue;
    Usage usage = Usage::Training;
    float v[kNumClasses];
    const std::string err = parse(line, usage, v);
    if (!err.empty()) throw std::runtime_error(path + ":" + std::to_string(line_no) + ": " + err);
    if (usage == keep) rows.insert(rows.end(), v, v + kNumClasses);
  }
  if (line_no == 0) throw std::runtime_error(path + ": empty file (expected the " + what + " header)");
  if (rows.size() != expected_rows * kNumClasses)
    throw std::runtime_error(path + ": " + std::to_string(rows.size() / kNumClasses) + " " + usage_name(keep) +
                             " rows, but the " + usage_name(keep) + " set has " + std::to_string(expected_rows) +
                             " images: " + what + " must be row-aligned with the whole fer2013.csv");
  return rows;
}

}  // namespace

std::vector<float> load_ferplus_training_votes(const std::string& path, size_t training_rows) {
  return load_ferplus_votes(path, Usage::Training, training_rows);
}

std::vector<float> load_ferplus_votes(const std::string& path, Usage usage, size_t rows) {
  return load_target_rows(path, usage, rows, "FER+", check_ferplus_header, parse_ferplus_row);
}

std::vector<float> load_soft_targets(const std::string& path, size_t training_rows) {
  auto parse = [](std::string_view line, Usage&, float* v) { return parse_soft_targets_row(line, v); };
  return load_target_rows(path, Usage::Training, training_rows, "soft targets", check_soft_targets_header, parse);
}

FerSplits load_dataset(const std::string& path, bool strict, LoadReport* report) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_folder_dataset(path, strict, report);
  return load_fer_csv(path, strict, report);
}

}  // namespace ferkit
