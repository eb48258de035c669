// libFuzzer target: the ONNX importer, ferkit::import_onnx (native/onnx.h): protobuf parsing, then the graph walk,
// the constant folding of shape arithmetic, the layout conversion and the residual-shortcut matching. Expected errors
// are exceptions; anything else is a bug. A graph it reads must also export and read back as the same network (the
// same parameters, bit for bit); one of several outputs (a detector's heads, which export does not write) must save
// and load back as the same model file.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>

#include "model_io.h"
#include "onnx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferkit::OnnxImport first;
  try {
    first = ferkit::import_onnx(data, size);
  } catch (const std::exception&) {
    return 0;
  }
  if (first.model.spec.has_heads()) {
    const std::vector<uint8_t> file = ferkit::save_model(first.model, first.metadata);
    const ferkit::Model back = ferkit::load_model(file.data(), file.size());
    if (back.params != first.model.params || ferkit::format_spec(back.spec) != ferkit::format_spec(first.model.spec))
      __builtin_trap();
    return 0;
  }
  const std::vector<uint8_t> bytes = ferkit::export_onnx(first.model, first.metadata);
  const ferkit::OnnxImport again = ferkit::import_onnx(bytes.data(), bytes.size());
  if (again.model.params.size() != first.model.params.size() ||
      std::memcmp(again.model.params.data(), first.model.params.data(), first.model.params.size() * sizeof(float)))
    __builtin_trap();
  return 0;
}
