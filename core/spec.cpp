#include "spec.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace ferkit {

const char* layer_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::Conv: return "conv";
    case LayerKind::MaxPool: return "maxpool";
    case LayerKind::Dropout: return "dropout";
    case LayerKind::Dense: return "dense";
    case LayerKind::ReLU: return "relu";
    case LayerKind::BatchNorm: return "bn";
    case LayerKind::Flatten: return "flatten";
    case LayerKind::GlobalAvgPool: return "gap";
    case LayerKind::DepthwiseConv: return "dwconv";
    case LayerKind::Save: return "save";
    case LayerKind::Add: return "add";
    case LayerKind::Head: return "head";
  }
  return "?";
}

namespace {

[[noreturn]] void fail(int line, const std::string& what) {
  throw std::runtime_error("architecture spec, line " + std::to_string(line) + ": " + what);
}

int parse_int(const std::string& tok, int line, const char* field, int lo, int hi) {
  char* end = nullptr;
  long v = std::strtol(tok.c_str(), &end, 10);
  if (tok.empty() || *end != '\0' || v < lo || v > hi)
    fail(line, std::string("expected ") + field + " as an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "], got '" + tok + "'");
  return static_cast<int>(v);
}

float parse_float(const std::string& tok, int line, const char* field, float lo, float hi) {
  char* end = nullptr;
  float v = std::strtof(tok.c_str(), &end);
  if (tok.empty() || *end != '\0' || !(v >= lo && v <= hi))
    fail(line, std::string("expected ") + field + " as a number in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "], got '" + tok + "'");
  return v;
}

}  // namespace

Spec parse_spec(const std::string& text) {
  Spec spec;
  bool have_input = false, have_softmax = false;
  // Layers are one per line or separated by ';'. A comment runs to the end of its line, ';' included, and
  // errors name the text line (not the ';' segment).
  std::vector<std::pair<int, std::string>> layer_texts;
  int last_line = 0;
  {
    std::istringstream lines(text);
    std::string line;
    for (int n = 1; std::getline(lines, line); ++n) {
      last_line = n;
      if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      std::istringstream parts(line);
      for (std::string part; std::getline(parts, part, ';');) layer_texts.emplace_back(n, part);
    }
  }
  std::vector<std::string> saved;  // the names saved so far
  bool in_heads = false;
  for (const auto& layer_text : layer_texts) {
    const int lineno = layer_text.first;  // (not a structured binding: C++17 lambdas below cannot capture one)
    const std::string& raw = layer_text.second;
    std::istringstream ts(raw);
    std::vector<std::string> tok;
    for (std::string t; ts >> t;) tok.push_back(t);
    if (tok.empty()) continue;
    if (have_softmax) fail(lineno, "nothing may follow 'softmax'");
    const std::string& op = tok[0];
    if (in_heads && op != "head" && op != "softmax") fail(lineno, "only heads may follow a 'head'");
    // Named options (init=...) may come anywhere after the op.
    LayerSpec l;
    std::vector<std::string> pos;
    for (size_t i = 1; i < tok.size(); ++i) {
      if (tok[i].rfind("init=", 0) == 0) {
        std::string v = tok[i].substr(5);
        if (v == "he") l.init = Init::He;
        else if (v == "glorot") l.init = Init::Glorot;
        else if (v == "uniform") l.init = Init::Uniform;
        else fail(lineno, "expected init=he, init=glorot or init=uniform, got '" + tok[i] + "'");
      } else {
        pos.push_back(tok[i]);
      }
    }
    auto want = [&](size_t lo, size_t hi, const char* usage) {
      if (pos.size() < lo || pos.size() > hi) fail(lineno, std::string("expected '") + usage + "'");
    };
    if (op == "input") {
      if (have_input || !spec.layers.empty()) fail(lineno, "'input' must be the first line, once");
      want(3, 3, "input <height> <width> <channels>");
      spec.input = {parse_int(pos[0], lineno, "height", 1, 4096), parse_int(pos[1], lineno, "width", 1, 4096),
                    parse_int(pos[2], lineno, "channels", 1, 4)};
      have_input = true;
      continue;
    }
    if (!have_input) fail(lineno, "expected 'input <height> <width> <channels>' first");
    if (op == "conv") {
      want(2, 4, "conv <filters> <kernel> [stride] [same|valid]");
      l.kind = LayerKind::Conv;
      l.units = parse_int(pos[0], lineno, "filters", 1, 4096);
      l.kernel = parse_int(pos[1], lineno, "kernel", 1, 15);
      for (size_t i = 2; i < pos.size(); ++i) {
        if (pos[i] == "same") l.same = true;
        else if (pos[i] == "valid") l.same = false;
        else l.stride = parse_int(pos[i], lineno, "stride", 1, 8);
      }
    } else if (op == "dwconv") {
      want(1, 3, "dwconv <kernel> [stride] [same|valid]");
      l.kind = LayerKind::DepthwiseConv;
      l.kernel = parse_int(pos[0], lineno, "kernel", 1, 15);
      for (size_t i = 1; i < pos.size(); ++i) {
        if (pos[i] == "same") l.same = true;
        else if (pos[i] == "valid") l.same = false;
        else l.stride = parse_int(pos[i], lineno, "stride", 1, 8);
      }
    } else if (op == "save" || op == "add" || op == "head") {
      const bool head = op == "head";
      want(head ? 3 : 1, head ? 3 : 1, op == "save" ? "save <name>" : head ? "head <name> <filters> <kernel>" : "add <name>");
      l.kind = op == "save" ? LayerKind::Save : head ? LayerKind::Head : LayerKind::Add;
      l.tap = pos[0];
      if (head) {
        l.units = parse_int(pos[1], lineno, "filters", 1, 4096);
        l.kernel = parse_int(pos[2], lineno, "kernel", 1, 15);
        in_heads = true;
      }
      if (l.tap.size() > 64 || l.tap.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                                   std::string::npos)
        fail(lineno, "expected a name of letters, digits, '_' or '-' (at most 64), got '" + l.tap + "'");
      if (op == "save") saved.push_back(l.tap);
      else if (std::find(saved.begin(), saved.end(), l.tap) == saved.end())
        fail(lineno, "'" + op + " " + l.tap + "' needs a 'save " + l.tap + "' before it");
    } else if (op == "maxpool") {
      want(1, 2, "maxpool <size> [stride]");
      l.kind = LayerKind::MaxPool;
      l.kernel = parse_int(pos[0], lineno, "size", 1, 16);
      l.stride = pos.size() > 1 ? parse_int(pos[1], lineno, "stride", 1, 16) : l.kernel;
    } else if (op == "dropout") {
      want(1, 1, "dropout <rate>");
      l.kind = LayerKind::Dropout;
      l.rate = parse_float(pos[0], lineno, "rate", 0.0f, 0.95f);
    } else if (op == "dense") {
      want(1, 1, "dense <units>");
      l.kind = LayerKind::Dense;
      l.units = parse_int(pos[0], lineno, "units", 1, 65536);
    } else if (op == "relu" || op == "bn" || op == "flatten" || op == "gap") {
      want(0, 0, op.c_str());
      l.kind = op == "relu" ? LayerKind::ReLU
               : op == "bn" ? LayerKind::BatchNorm
               : op == "flatten" ? LayerKind::Flatten
                                 : LayerKind::GlobalAvgPool;
    } else if (op == "softmax") {
      want(0, 0, "softmax");
      if (in_heads) fail(lineno, "a network with heads has no 'softmax': its heads are its outputs");
      have_softmax = true;
      continue;
    } else {
      fail(lineno, "unknown layer '" + op +
                       "' (expected conv, dwconv, maxpool, dropout, dense, relu, bn, flatten, gap, save, add, head, softmax)");
    }
    spec.layers.push_back(l);
  }
  if (!have_input) fail(last_line, "missing 'input <height> <width> <channels>'");
  if (!have_softmax && !in_heads) fail(last_line, "missing 'softmax' (or heads) as the last line");
  if (spec.layers.empty()) fail(last_line, "no layers");
  return spec;
}

std::string format_spec(const Spec& spec) {
  std::ostringstream o;
  o << "input " << spec.input.h << ' ' << spec.input.w << ' ' << spec.input.c << '\n';
  for (const LayerSpec& l : spec.layers) {
    o << layer_name(l.kind);
    switch (l.kind) {
      case LayerKind::Conv:
        o << ' ' << l.units << ' ' << l.kernel << ' ' << l.stride << (l.same ? " same" : " valid");
        break;
      case LayerKind::DepthwiseConv: o << ' ' << l.kernel << ' ' << l.stride << (l.same ? " same" : " valid"); break;
      case LayerKind::Save:
      case LayerKind::Add: o << ' ' << l.tap; break;
      case LayerKind::Head: o << ' ' << l.tap << ' ' << l.units << ' ' << l.kernel; break;
      case LayerKind::MaxPool: o << ' ' << l.kernel << ' ' << l.stride; break;
      case LayerKind::Dropout: o << ' ' << l.rate; break;
      case LayerKind::Dense: o << ' ' << l.units; break;
      default: break;
    }
    if (l.init == Init::He) o << " init=he";
    if (l.init == Init::Glorot) o << " init=glorot";
    if (l.init == Init::Uniform) o << " init=uniform";
    o << '\n';
  }
  if (!spec.has_heads()) o << "softmax\n";
  return o.str();
}

namespace {
const char* const kFlattenHead = "flatten\ndropout 0.4\ndense 256\nrelu\ndropout 0.4\ndense 7\nsoftmax\n";

std::string conv_bn_relu(int c) { return "conv " + std::to_string(c) + " 3 same\nbn\nrelu\n"; }

// A VGG block: two 3x3 conv + batch norm + ReLU, a 2x2 max-pool.
std::string vgg_block(int c) { return conv_bn_relu(c) + conv_bn_relu(c) + "maxpool 2\n"; }

// A residual VGG block: a 3x3 conv, then a residual block of two (the second's batch norm before the add), a 2x2
// max-pool.
std::string res_block(int c) {
  return conv_bn_relu(c) + "save a\n" + conv_bn_relu(c) + "conv " + std::to_string(c) + " 3 same\nbn\nadd a\nrelu\n" +
         "maxpool 2\n";
}

// The vgg-xs-f family: four blocks of two 3x3 conv + batch norm (16, 32, c3, c4 filters), a flatten head (the 3x3
// map keeps where on the face a feature is), dense 256.
std::string vgg_xs_flatten(int c3, int c4) {
  return "input 48 48 1\n" + vgg_block(16) + vgg_block(32) + vgg_block(c3) + vgg_block(c4) + kFlattenHead;
}

// A depthwise-separable block: 3x3 depthwise (stride 1 or 2) and 1x1 pointwise convolutions, each with batch norm
// and ReLU.
std::string dw_block(int c, int stride) {
  return "dwconv 3 " + std::to_string(stride) + " same\nbn\nrelu\nconv " + std::to_string(c) + " 1\nbn\nrelu\n";
}
}  // namespace

std::string builtin_spec(const std::string& name) {
  if (name == "seed")  // the Keras seed: conv 32/64/128 + ReLU + max-pool + dropout, dense 256, 128, softmax 7
    return "input 48 48 1\n"
           "conv 32 3 same\nrelu\nmaxpool 2\ndropout 0.25\n"
           "conv 64 3 same\nrelu\nmaxpool 2\ndropout 0.25\n"
           "conv 128 3 same\nrelu\nmaxpool 2\ndropout 0.25\n"
           "flatten\n"
           "dense 256\nrelu\ndropout 0.5\n"
           "dense 128\nrelu\ndropout 0.5\n"
           "dense 7\nsoftmax\n";
  if (name == "vgg-s")  // VGG-style: four blocks of two 3x3 conv + batch norm, global average pooling, dense 256
    return "input 48 48 1\n"
           "conv 32 3 same\nbn\nrelu\nconv 32 3 same\nbn\nrelu\nmaxpool 2\n"
           "conv 64 3 same\nbn\nrelu\nconv 64 3 same\nbn\nrelu\nmaxpool 2\n"
           "conv 128 3 same\nbn\nrelu\nconv 128 3 same\nbn\nrelu\nmaxpool 2\n"
           "conv 256 3 same\nbn\nrelu\nconv 256 3 same\nbn\nrelu\n"
           "gap\ndropout 0.4\n"
           "dense 256\nrelu\ndropout 0.4\n"
           "dense 7\nsoftmax\n";
  if (name == "vgg-xs-f")  // vgg-s at half width with a flatten head: a 3x3 map keeps where on the face a feature is
    return vgg_xs_flatten(64, 128);
  if (name == "vgg-xs-fw")  // vgg-xs-f with wider deep blocks (80, 160): 1.28x the MACs; widen vgg-xs-f into it
    return vgg_xs_flatten(80, 160);
  if (name == "vgg-xs-fw2")  // wider still (96, 192): 1.26x vgg-xs-fw's MACs; the default model's network
    return vgg_xs_flatten(96, 192);
  if (name == "res-xs")  // vgg-xs-fw's widths, each deep block a plain convolution then a residual block of two
    return "input 48 48 1\n" + vgg_block(16) + vgg_block(32) + res_block(80) + res_block(160) + kFlattenHead;
  if (name == "mb-s")  // MobileNet v1 style: a plain 3x3 convolution and 2x2 max-pool at 48x48, then depthwise 3x3 +
                       // pointwise 1x1 blocks of 64 to 512 channels at 24x24 to 6x6, a flatten head
    return "input 48 48 1\n" + conv_bn_relu(32) + "maxpool 2\n" + dw_block(64, 1) + dw_block(128, 1) +
           dw_block(128, 2) + dw_block(256, 1) + dw_block(256, 1) + dw_block(512, 2) + dw_block(512, 1) +
           dw_block(512, 1) + dw_block(512, 1) + "maxpool 2\n" + kFlattenHead;
  if (name == "tiny")  // a few thousand parameters: for tests and smoke runs
    return "input 48 48 1\n"
           "conv 8 3 1 same\nrelu\nmaxpool 4\n"
           "conv 16 3 1 same\nbn\nrelu\nmaxpool 4\n"
           "flatten\ndense 7\nsoftmax\n";
  return "";
}

std::vector<std::string> builtin_names() { return {"seed", "vgg-s", "vgg-xs-f", "vgg-xs-fw", "vgg-xs-fw2", "res-xs", "mb-s", "tiny"}; }

Spec resolve_spec(const std::string& name_or_text) {
  if (name_or_text.find('\n') != std::string::npos || name_or_text.find(';') != std::string::npos)
    return parse_spec(name_or_text);
  std::string text = builtin_spec(name_or_text);
  if (text.empty()) {
    std::string names;
    for (const auto& n : builtin_names()) names += (names.empty() ? "" : ", ") + n;
    throw std::runtime_error("unknown architecture '" + name_or_text + "' (built-ins: " + names +
                             "; or pass a spec file)");
  }
  return parse_spec(text);
}

}  // namespace ferkit
