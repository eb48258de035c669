// File helpers for the native programs: whole-file reads and atomic writes (temporary file + rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ferkit {

// Reads a whole file; throws std::runtime_error naming the file and the reason.
std::vector<uint8_t> read_file(const std::string& path);
std::string read_text_file(const std::string& path);
// Writes to "<path>.tmp.<pid>", flushes it to disk, then renames it over path, so a reader never sees a
// half-written file and a crash leaves the previous version intact. Throws std::runtime_error on failure.
void write_file_atomic(const std::string& path, const void* data, size_t size);
void write_file_atomic(const std::string& path, const std::string& text);
// Creates a directory and its parents (no error if it exists).
void make_dirs(const std::string& path);
// Deletes what write_file_atomic leaves behind when a process is killed between creating its temporary file and
// renaming it: files in dir named "<name>.tmp.<digits>". Returns how many were removed.
int remove_stale_temporaries(const std::string& dir);
bool file_exists(const std::string& path);

}  // namespace ferkit
