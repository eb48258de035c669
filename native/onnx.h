// ONNX graphs in and out (native only: it needs protobuf and Debian's libonnx-dev; the build defines
// FERKIT_HAVE_ONNX when they are there, and without them export_onnx and import_onnx throw, saying what to
// install). docs/onnx.md shows both paths end to end.
//
// Export writes any model the spec language expresses as an opset-13 graph: input "pixels" (N x C x H x W floats,
// the grey values 0-255), the model's preprocessing as a Mul and an Add at its start, NCHW layers, and "probabilities"
// (N x classes, Softmax) out. The metadata properties keep what ONNX has no place for: ferkit.classes (a JSON list),
// ferkit.preprocess, ferkit.spec (the architecture text) and ferkit.metadata (the model file's metadata).
//
// Import reads a graph of the operators listed in kOnnxOperators into a Model: NCHW weights go to ferkit's NHWC
// layout (a Flatten of a C x H x W map reorders the next dense layer's rows), explicit padding must be what
// 'same' or 'valid' pads, a branch that comes back through an Add becomes save/add (its shortcut may be a 2x2
// MaxPool and a zero channel Pad or Concat, as ferkit's add does), leading Mul/Add/Sub/Div by scalars become the
// preprocessing. A graph with several outputs (a detector) is read when each output is a head: a convolution of a
// value of the main chain, transposed to N x H x W x C and reshaped; they become the model's heads (spec.h), in the
// order of the graph's outputs. Anything else is refused with the node's index, name and operator.
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model.h"

namespace ferkit {

// The ONNX bytes of a model; metadata (the model file's, may be null) goes into ferkit.metadata.
std::vector<uint8_t> export_onnx(const Model& model, const nlohmann::json& metadata);

struct OnnxImportOptions {
  // What the graph's input expects, as a preprocessing of 0-255 grey values (the graph's own leading scalar
  // Mul/Add/Sub/Div come after it). Default: the graph takes the grey values themselves.
  float scale = 1.0f, mean = 0.0f, std = 1.0f;
  std::vector<std::string> class_names;  // empty: ferkit.classes, else FER-2013's for 7 outputs, else class0...
};

struct OnnxImport {
  Model model;
  nlohmann::json metadata;  // ferkit.metadata if the graph has it, plus "onnx_import": what was read
};

// Parses ONNX bytes (`what` names them in errors, e.g. the file's path). Throws std::runtime_error.
OnnxImport import_onnx(const uint8_t* data, size_t size, const OnnxImportOptions& opt = {},
                       const std::string& what = "ONNX model");

extern const char* const kOnnxOperators;  // the operators import_onnx reads, for messages and docs

}  // namespace ferkit
