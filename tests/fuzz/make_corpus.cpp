// Writes the fuzz targets' seed corpora: make_corpus <out-dir>
//   <out-dir>/<target>/<seed>, a few small valid and invalid inputs per target (each under 64 KiB). Every image and
//   CSV row is synthetic (computed pixel patterns; nothing from FER-2013). The committed tests/fuzz/corpus/ was
//   written by this program; scripts/fuzz.sh fuzzes a copy of it.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "data.h"
#include "model.h"
#include "model_io.h"
#ifdef FERKIT_HAVE_ONNX
#include "onnx.h"
#include <onnx/onnx_pb.h>
#endif
#include "spec.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

constexpr size_t kMaxSeed = 64 * 1024;
fs::path g_out;

void put(const std::string& target, const std::string& name, const Bytes& bytes) {
  if (bytes.size() > kMaxSeed) {
    std::fprintf(stderr, "make_corpus: %s/%s is %zu bytes (over 64 KiB): left out\n", target.c_str(), name.c_str(),
                 bytes.size());
    return;
  }
  fs::create_directories(g_out / target);
  std::ofstream f(g_out / target / name, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + (g_out / target / name).string());
}
void put(const std::string& target, const std::string& name, const std::string& text) {
  put(target, name, Bytes(text.begin(), text.end()));
}

Bytes head(const Bytes& b, size_t n) { return Bytes(b.begin(), b.begin() + static_cast<long>(std::min(n, b.size()))); }

// ---- gzip (zlib, in memory) ----

Bytes gzip(const std::string& text, int level = 6) {
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("zlib");
  Bytes out(deflateBound(&z, text.size()) + 64);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("zlib deflate");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// ---- images ----

void append(void* ctx, void* data, int size) {
  auto* out = static_cast<Bytes*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

// A synthetic w x h picture with `comp` channels: gradients, a disc and a checker pattern.
Bytes picture(int w, int h, int comp) {
  Bytes px(static_cast<size_t>(w) * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int dx = 2 * x - w, dy = 2 * y - h;
      const bool disc = dx * dx + dy * dy < w * h / 2;
      for (int c = 0; c < comp; ++c) {
        int v = (x * 255) / std::max(1, w - 1) * (c % 2 ? 1 : 0) + (y * 255) / std::max(1, h - 1) * (c % 2 ? 0 : 1);
        v = (v / 2 + (disc ? 90 : 0) + ((x / 2 + y / 2) % 2) * 30) % 256;
        if (c == 3) v = 255 - (x * 4) % 128;  // alpha
        px[(static_cast<size_t>(y) * w + x) * comp + c] = static_cast<uint8_t>(v);
      }
    }
  return px;
}

Bytes png(int w, int h, int comp) {
  Bytes out, px = picture(w, h, comp);
  if (!stbi_write_png_to_func(append, &out, w, h, comp, px.data(), w * comp)) throw std::runtime_error("png");
  return out;
}
Bytes jpg(int w, int h, int comp, int quality) {
  Bytes out, px = picture(w, h, comp);
  if (!stbi_write_jpg_to_func(append, &out, w, h, comp, px.data(), quality)) throw std::runtime_error("jpg");
  return out;
}
Bytes bmp(int w, int h, int comp) {
  Bytes out, px = picture(w, h, comp);
  if (!stbi_write_bmp_to_func(append, &out, w, h, comp, px.data())) throw std::runtime_error("bmp");
  return out;
}
Bytes tga(int w, int h, int comp) {
  Bytes out, px = picture(w, h, comp);
  if (!stbi_write_tga_to_func(append, &out, w, h, comp, px.data())) throw std::runtime_error("tga");
  return out;
}

// A grey GIF89a (stb_image_write has no GIF writer): a 256-entry grey palette and uncompressed LZW, i.e. 9-bit
// literal codes with a clear code every 100 pixels, so the code width never grows.
Bytes gif(int w, int h) {
  Bytes px = picture(w, h, 1);
  Bytes o = {'G', 'I', 'F', '8', '9', 'a'};
  auto u16 = [&](int v) {
    o.push_back(static_cast<uint8_t>(v));
    o.push_back(static_cast<uint8_t>(v >> 8));
  };
  u16(w);
  u16(h);
  o.push_back(0xF7);  // global colour table, 8 bits, 256 entries
  o.push_back(0);
  o.push_back(0);
  for (int i = 0; i < 256; ++i) o.insert(o.end(), 3, static_cast<uint8_t>(i));
  o.push_back(0x2C);  // image descriptor
  u16(0);
  u16(0);
  u16(w);
  u16(h);
  o.push_back(0);
  o.push_back(8);  // LZW minimum code size
  Bytes lzw;
  uint32_t acc = 0;
  int bits = 0;
  auto code = [&](unsigned c) {
    acc |= c << bits;
    bits += 9;
    while (bits >= 8) {
      lzw.push_back(static_cast<uint8_t>(acc));
      acc >>= 8;
      bits -= 8;
    }
  };
  for (size_t i = 0; i < px.size(); ++i) {
    if (i % 100 == 0) code(256);
    code(px[i]);
  }
  code(257);
  if (bits) lzw.push_back(static_cast<uint8_t>(acc));
  for (size_t i = 0; i < lzw.size(); i += 255) {
    const size_t n = std::min<size_t>(255, lzw.size() - i);
    o.push_back(static_cast<uint8_t>(n));
    o.insert(o.end(), lzw.begin() + static_cast<long>(i), lzw.begin() + static_cast<long>(i + n));
  }
  o.push_back(0);     // block terminator
  o.push_back(0x3B);  // trailer
  return o;
}

// ---- FER CSV (synthetic rows) ----

std::string pixels_text(int seed, int count = ferkit::kPixels) {
  std::string s;
  for (int i = 0; i < count; ++i) {
    if (i) s += ' ';
    s += std::to_string((i * 7 + seed * 13 + (i / 48) * 3) % 256);
  }
  return s;
}

std::string csv_valid() {
  return "emotion,pixels,Usage\n"
         "3," + pixels_text(1) + ",Training\n"
         "0," + pixels_text(2) + ",PublicTest\n"
         "6," + pixels_text(3) + ",PrivateTest\n";
}

#ifdef FERKIT_HAVE_ONNX
// A detector-shaped graph of two outputs (native/onnx.h's heads): an NHWC input behind a Transpose, a strided
// convolution and a ReLU, then two 1x1 convolutions of it, each transposed to NHWC and reshaped to 1 x cells x k,
// as MediaPipe's BlazeFace ends.
Bytes heads_graph() {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.add_opset_import()->set_version(12);
  onnx::GraphProto* g = m.mutable_graph();
  auto value = [](onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  auto weights = [&](const std::string& name, std::vector<int64_t> dims, float scale) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) t->add_dims(d), n *= d;
    for (int64_t i = 0; i < n; ++i) t->add_float_data(scale * static_cast<float>((i * 37) % 11 - 5));
  };
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  };
  auto node = [&](const char* op, std::vector<std::string> in, const std::string& out) {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
  };
  auto attr = [](onnx::NodeProto* n, const char* name, std::vector<int64_t> v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  };
  value(g->add_input(), "image", {1, 8, 8, 3});
  attr(node("Transpose", {"image"}, "nchw"), "perm", {0, 3, 1, 2});
  weights("w0", {4, 3, 3, 3}, 0.05f);
  weights("b0", {4}, 0.1f);
  onnx::NodeProto* c0 = node("Conv", {"nchw", "w0", "b0"}, "c0");
  attr(c0, "strides", {2, 2});
  attr(c0, "pads", {0, 0, 1, 1});
  attr(c0, "kernel_shape", {3, 3});
  node("Relu", {"c0"}, "r0");
  const std::pair<const char*, int> heads[] = {{"scores", 2}, {"boxes", 32}};
  for (const auto& [name, k] : heads) {
    const std::string n = name;
    weights(n + ".w", {k, 4, 1, 1}, 0.03f);
    weights(n + ".b", {k}, 0.01f);
    node("Conv", {"r0", n + ".w", n + ".b"}, n + ".conv");
    attr(node("Transpose", {n + ".conv"}, n + ".nhwc"), "perm", {0, 2, 3, 1});
    ints(n + ".shape", {1, -1, k == 2 ? 1 : 16});
    node("Reshape", {n + ".nhwc", n + ".shape"}, n);
    value(g->add_output(), n, {1, 4 * 4 * 2, k == 2 ? 1 : 16});
  }
  const std::string bytes = m.SerializeAsString();
  return Bytes(bytes.begin(), bytes.end());
}
#endif

Bytes read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <out-dir>\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  try {
    // ---- model files ----
    {
      ferkit::Model tiny(ferkit::resolve_spec("tiny"));
      const Bytes file = ferkit::save_model(tiny, {{"note", "fuzz seed"}, {"epochs", 0}});
      put("model", "tiny.ferkit", file);
      ferkit::Model mini(ferkit::parse_spec("input 4 4 1; conv 2 3; bn; relu; gap; dense 3; softmax"));
      mini.class_names = {"a", "b", "c"};
      put("model", "mini.ferkit", ferkit::save_model(mini, nlohmann::json::object()));
      mini.init(3);  // nonzero weights: int8 scales and half-precision values worth mutating
      put("model", "mini_f16.ferkit", ferkit::save_model(mini, nlohmann::json::object(), {}, ferkit::WeightStorage::F16));
      put("model", "mini_i8.ferkit", ferkit::save_model(mini, nlohmann::json::object(), {}, ferkit::WeightStorage::I8));
      // A replay bank (core/finetune.h): the dense layer's inputs (2 values) for 3 reference faces.
      put("model", "mini_replay.ferkit",
          ferkit::save_model(mini, {{"replay_layer", 4}, {"replay_faces", 3}}, {{"replay", ferkit::Floats(6, 0.5f)}}));
      // A teach gate (TeachGate, core/model.h): the dense layer's base weights and 2 keys of its 2 inputs.
      {
        ferkit::Model gated = mini;
        gated.gate = {4, 0.4f, mini.params, {0.6f, 0.8f, 1.0f, 0.0f}};
        for (float& w : gated.params) w *= 0.9f;
        put("model", "mini_gate.ferkit", ferkit::save_model(gated, nlohmann::json::object()));
      }
      // Residual and depthwise layers: a strided depthwise block whose shortcut is pooled and zero-padded.
      ferkit::Model residual(ferkit::parse_spec(
          "input 6 6 1; conv 2 3 same; save a; dwconv 3 2 same; bn; conv 3 1; add a; relu; gap; dense 2; softmax"));
      residual.init(4);
      put("model", "mini_residual.ferkit", ferkit::save_model(residual, nlohmann::json::object()));
      put("model", "mini_residual_i8.ferkit",
          ferkit::save_model(residual, nlohmann::json::object(), {}, ferkit::WeightStorage::I8));
      // Heads (a detector's outputs): two convolutions of saved maps, the model's outputs one after another.
      ferkit::Model heads(ferkit::parse_spec("input 8 8 3; conv 2 3 2 same; relu; save a; dwconv 3 2 same; save b; "
                                             "head a 1 1; head b 2 1; head a 4 1; head b 8 1"));
      heads.init(5);
      put("model", "mini_heads.ferkit", ferkit::save_model(heads, nlohmann::json::object()));
      ferkit::Model flat(ferkit::parse_spec("input 2 2 1; flatten; dense 2; softmax"));
      put("model", "flat_extra_blobs.ferkit",
          ferkit::save_model(flat, {{"best_epoch", 1}},
                             {{"adam.m", ferkit::Floats(10, 0.5f)}, {"adam.v", ferkit::Floats(10, 0.25f)}}));
      put("model", "truncated.ferkit", head(file, 200));
      Bytes bad_crc = file;
      bad_crc[bad_crc.size() / 2] ^= 0x40;
      put("model", "bad_checksum.ferkit", bad_crc);
      Bytes version = file;
      version[8] = 2;
      put("model", "newer_version.ferkit", version);
      put("model", "bad_magic.ferkit", std::string("NOTAMODEL-----------------------"));
    }

    // ---- architecture specs ----
    put("spec", "seed.txt", ferkit::builtin_spec("seed"));
    put("spec", "tiny.txt", ferkit::builtin_spec("tiny"));
    put("spec", "one_line.txt", std::string("input 32 32 3; conv 16 5 2 valid init=glorot; bn; relu; maxpool 3 2; gap; "
                                            "dropout 0.1; dense 10 init=he; softmax"));
    put("spec", "comments.txt", std::string("# a comment\ninput 8 8 1   # input\n\nconv 4 1 1 same\nrelu\nflatten\n"
                                            "dense 2\nsoftmax\n"));
    put("spec", "unknown_layer.txt", std::string("input 48 48 1\nconv 8 3\npool 2\nflatten\ndense 7\nsoftmax\n"));
    put("spec", "no_softmax.txt", std::string("input 48 48 1\nflatten\ndense 7\n"));
    put("spec", "shape_error.txt", std::string("input 4 4 1\nmaxpool 8\nflatten\ndense 2\nsoftmax\n"));
    // Residual and depthwise layers: blocks with identity and pooled, zero-padded shortcuts; an add whose shapes do
    // not fit; MediaPipe's BlazeFace backbone (tests/test_core.cpp's Spec.BlazeFaceBackboneIsExpressible).
    put("spec", "residual.txt",
        std::string("input 32 32 3\nconv 16 3 2 same\nrelu\nsave a\ndwconv 5 same\nconv 16 1\nadd a\nrelu\n"
                    "save b        # a halving block that adds channels: the shortcut is pooled and padded\n"
                    "dwconv 3 2 same\nbn\nconv 24 1\nadd b\nrelu\ngap\ndense 7\nsoftmax\n"));
    put("spec", "heads.txt", std::string("input 16 16 3\nconv 4 3 2 same\nrelu\nsave a\ndwconv 3 2 same\nsave b\n"
                                         "head a 2 1\nhead b 6 1\nhead a 32 1\nhead b 96 3\n"));
    put("spec", "head_then_layer.txt", std::string("input 8 8 1; save a; head a 2 1; relu\n"));
    put("spec", "add_bad_shape.txt", std::string("input 8 8 4\nsave x; dwconv 3 2 valid; add x\nflatten; dense 2\nsoftmax\n"));
    {
      std::string blazeface = "input 128 128 3\nconv 24 5 2 same\nrelu\n";
      const std::vector<std::pair<int, int>> blocks = {{24, 1}, {28, 1}, {32, 2}, {36, 1}, {42, 1}, {48, 2},
                                                       {56, 1}, {64, 1}, {72, 1}, {80, 1}, {88, 1}, {96, 2},
                                                       {96, 1}, {96, 1}, {96, 1}, {96, 1}};
      for (const auto& [c, s] : blocks)
        blazeface += "save s; dwconv 3 " + std::to_string(s) + " same; conv " + std::to_string(c) + " 1; add s; relu\n";
      put("spec", "blazeface_backbone.txt", blazeface + "gap\ndense 2\nsoftmax\n");
    }

    // ---- FER CSV ----
    const std::string valid = csv_valid();
    put("csv", "valid.csv", valid);
    put("csv", "header_only.csv", std::string("emotion,pixels,Usage\n"));
    put("csv", "crlf_bom_quoted.csv", "\xEF\xBB\xBF\"emotion\",\"pixels\",\"Usage\"\r\n\"4\",\"" + pixels_text(4) +
                                          "\",\"Training\"\r\n");
    put("csv", "malformed_rows.csv",
        "emotion,pixels,Usage\n"
        "7," + pixels_text(5) + ",Training\n"
        "1," + pixels_text(6, ferkit::kPixels - 1) + ",PublicTest\n"
        "2," + pixels_text(7) + ",Validation\n"
        "5,1 2 256 4,Training\n"
        "\n"
        "3,1,2,3\n"
        "6," + pixels_text(8) + ",PrivateTest");  // a valid last line without a newline
    put("csv", "bad_header.csv", std::string("label,pixels\n0,1 2 3,Training\n"));

    // ---- FER CSV, gzip ----
    const Bytes gz = gzip(valid);
    put("csv_gz", "valid.csv.gz", gz);
    put("csv_gz", "truncated.csv.gz", head(gz, gz.size() / 2));
    Bytes two = gzip("emotion,pixels,Usage\n1," + pixels_text(9) + ",Training\n");
    const Bytes second = gzip("2," + pixels_text(10) + ",PublicTest\n", 1);
    two.insert(two.end(), second.begin(), second.end());
    put("csv_gz", "two_members.csv.gz", two);
    put("csv_gz", "stored.csv.gz", gzip("emotion,pixels,Usage\n0,1 2 3,Training\n", 0));
    Bytes corrupt = gz;
    corrupt[corrupt.size() / 3] ^= 0x55;
    put("csv_gz", "corrupt.csv.gz", corrupt);
    put("csv_gz", "not_gzip.csv", std::string("emotion,pixels,Usage\n3,0 0 0,Training\n"));

    // ---- images (decode_image and the folder loader) ----
    const std::pair<std::string, Bytes> images[] = {
        {"grey.png", png(12, 9, 1)},       {"grey_alpha.png", png(5, 7, 2)}, {"rgb.png", png(16, 16, 3)},
        {"rgba.png", png(9, 4, 4)},        {"one_pixel.png", png(1, 1, 1)},  {"rgb.jpg", jpg(16, 16, 3, 80)},
        {"grey.jpg", jpg(9, 13, 1, 50)},   {"rgb.bmp", bmp(7, 5, 3)},        {"rgba.bmp", bmp(4, 4, 4)},
        {"grey.tga", tga(6, 6, 1)},        {"grey.gif", gif(11, 8)},
    };
    for (const auto& [name, bytes] : images) put("image", name, bytes);
    const Bytes p = png(16, 16, 3);
    put("image", "truncated.png", head(p, p.size() - 10));
    put("image", "garbage.bin", std::string("\x89PNG\r\n\x1a\nnot really a png at all"));
    for (const char* name : {"grey.png", "rgb.jpg", "rgb.bmp", "grey.gif"})
      for (const auto& [n, bytes] : images)
        if (n == name) put("image_folder", n, bytes);
    put("image_folder", "truncated.png", head(p, p.size() - 10));

#ifdef FERKIT_HAVE_ONNX
    // ---- ONNX graphs (native/onnx.h): ferkit's own exports of small networks with every layer kind; the
    // PyTorch export of tests/onnx/torch_cnn.onnx is copied in by hand (its shape arithmetic, F.pad's, is worth
    // mutating) ----
    {
      ferkit::Model chain(ferkit::parse_spec("input 8 8 1; conv 3 3 same; bn; relu; maxpool 2; flatten; bn; dense 3; "
                                             "softmax"));
      chain.init(5);
      put("onnx", "chain.onnx", ferkit::export_onnx(chain, nlohmann::json{{"note", "fuzz seed"}}));
      ferkit::Model residual(ferkit::parse_spec(
          "input 7 7 1; conv 2 3 2 same; save a; dwconv 3 same; conv 2 1; add a; relu; save b; dwconv 3 2 same; "
          "conv 3 1; add b; gap; dense 4; save c; dense 4; add c; softmax"));
      residual.init(6);
      put("onnx", "residual.onnx", ferkit::export_onnx(residual, nullptr));
      put("onnx", "heads.onnx", heads_graph());
    }
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
