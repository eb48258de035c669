// The ferkit model file (".ferkit"), version 1. Little-endian:
//
//   offset  size  field
//   0       8     magic "FERKITMD"
//   8       4     u32 format version (1)
//   12      4     u32 header length H (at most 16 MiB)
//   16      H     header: UTF-8 JSON {"spec": architecture text, "classes": [names], "preprocess": {...},
//                 "metadata": {...}, "blobs": [{"name": "params", "dtype": "f32", "count": N}, ...]}
//   16+H    ...   the blobs' data in header order: count * 4 bytes each ("f32"), or count * 2 bytes for "f16"
//                 (IEEE half precision, widened to float on loading; any blob, e.g. the replay bank), or "bytes"
//                 bytes for "i8" (only "params"): tensor by tensor in Model::tensors order, each convolution and
//                 dense weight as one f32 scale per output channel then one int8 per weight (w = q * scale of its
//                 output channel, in the weights' own [rows][outputs] order), every other tensor as f32
//   end-4   4     u32 CRC-32 (IEEE) of every byte before it
//
// A model file holds the blob "params" (Model::params, all weights and batch-norm statistics in layer order), and
// may hold a replay bank ("replay", core/finetune.h).
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
// 11 significant bits), or I8: convolution and dense weights as 8-bit integers with one float32 scale per output
// channel (scale = the channel's largest |w| / 127, so each weight is off by at most scale / 2), biases and
// batch-norm values as float32 (about a quarter of the bytes). F16 and I8 predict slightly differently: measure
// before shipping one.
enum class WeightStorage { F32, F16, I8 };

struct Blob {
  std::string name;
  Floats data;
  bool f16 = false;  // stored as half precision (set by load_model from the file)
};

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

// Serializes the model and `metadata` (a JSON object: training details, accuracy, ...) plus extra blobs (f32, or f16
// where Blob::f16). With WeightStorage::F16 or an f16 blob, throws std::runtime_error if a value is outside half
// precision's range.
std::vector<uint8_t> save_model(const Model& model, const nlohmann::json& metadata, const std::vector<Blob>& extra = {},
                                WeightStorage params = WeightStorage::F32);
// Parses a model file. Throws ModelFormatError saying what is wrong (bad magic, newer version, truncated,
// checksum mismatch, bad header, architecture/weights size mismatch, non-finite weights).
Model load_model(const uint8_t* data, size_t size, nlohmann::json* metadata = nullptr, std::vector<Blob>* extra = nullptr);
// The same into `into`, reusing its parameter buffer when it is large enough (as when it held a model of the same
// architecture before), so that loading model after model of one architecture allocates no new weights. On an
// error `into` is left without weights (an empty Model's parameters).
void load_model(const uint8_t* data, size_t size, Model& into, nlohmann::json* metadata = nullptr,
                std::vector<Blob>* extra = nullptr);

}  // namespace ferkit
