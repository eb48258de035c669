// The ferkit model file (".ferkit"), version 1. Little-endian:
//
//   offset  size  field
//   0       8     magic "FERKITMD"
//   8       4     u32 format version (1)
//   12      4     u32 header length H (at most 16 MiB)
//   16      H     header: UTF-8 JSON {"spec": architecture text, "classes": [names], "preprocess": {...},
//                 "metadata": {...}, "blobs": [{"name": "params", "dtype": "f32", "count": N}, ...]}
//   16+H    ...   the blobs' data in header order: count * 4 bytes each ("f32"), or count * 2 bytes for "f16"
//                 (IEEE half precision; only "params" may be f16, and loading widens it to float)
//   end-4   4     u32 CRC-32 (IEEE) of every byte before it
//
// A model file holds one blob, "params" (Model::params, all weights and batch-norm statistics in layer order).
// A training checkpoint is the same format with more blobs (optimizer state, best weights) and its state in
// "metadata". Loading never trusts the file: every length is checked against the bytes present.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "model.h"

namespace ferkit {

constexpr uint32_t kModelFormatVersion = 1;
constexpr size_t kMaxHeaderBytes = 16u << 20;
constexpr uint64_t kMaxBlobFloats = 1ull << 28;  // 1 GiB of floats

struct ModelFormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How save_model stores "params": float32, or IEEE half precision (half the bytes; the weights are rounded to
// 11 significant bits, so a model saved as F16 predicts slightly differently: measure before shipping one).
enum class WeightStorage { F32, F16 };

struct Blob {
  std::string name;
  Floats data;
};

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

// Serializes the model and `metadata` (a JSON object: training details, accuracy, ...) plus extra blobs (always
// f32). With WeightStorage::F16, throws std::runtime_error if a parameter is outside half precision's range.
std::vector<uint8_t> save_model(const Model& model, const nlohmann::json& metadata, const std::vector<Blob>& extra = {},
                                WeightStorage params = WeightStorage::F32);
// Parses a model file. Throws ModelFormatError saying what is wrong (bad magic, newer version, truncated,
// checksum mismatch, bad header, architecture/weights size mismatch, non-finite weights).
Model load_model(const uint8_t* data, size_t size, nlohmann::json* metadata = nullptr, std::vector<Blob>* extra = nullptr);

}  // namespace ferkit
