// Architecture spec: a short text that describes a sequential network, one layer per line
// (or separated by ';'). '#' starts a comment. Example (the seed network):
//
//   input 48 48 1
//   conv 32 3 same      # filters kernel [stride] [same|valid] [init=he|glorot]
//   relu
//   maxpool 2           # size [stride]
//   dropout 0.25
//   flatten
//   dense 256           # units [init=he|glorot]
//   softmax             # marks the output: the preceding layer's outputs are the class logits
//
// Other layers: bn (batch normalization over the last axis), gap (global average pooling), and for the networks
// small modern CNNs are made of:
//
//   dwconv 3 2 same     # depthwise convolution: kernel [stride] [same|valid], one filter per channel
//   save a              # remembers the activation here under a name (the start of a residual block)
//   ...                 # the block
//   add a               # adds the latest 'save a' back: max-pooled 2x2 if the block halved the size, zero-padded
//                       # if it added channels
//
// A BlazeFace block, for example: "save b; dwconv 5 same; conv 24 1; add b; relu".
//
// A network with several outputs (a detector's score and box maps) ends with heads instead of 'softmax':
//
//   head a 2 1          # a convolution (filters kernel, stride 1, 'same') of the activation 'save a' remembered
//
// Heads come last, one after another; the model's output is every head's output, each flattened (NHWC), one after
// another in the spec's order. Such a model has no classes: it runs for inference (a converted detector), not
// training.
#pragma once
#include <string>
#include <vector>

namespace ferkit {

enum class LayerKind { Conv, MaxPool, Dropout, Dense, ReLU, BatchNorm, Flatten, GlobalAvgPool, DepthwiseConv, Save, Add, Head };
enum class Init { Auto, He, Glorot, Uniform };  // Uniform: within 1/sqrt(fan_in), PyTorch's default

struct LayerSpec {
  LayerKind kind = LayerKind::ReLU;
  int units = 0;        // conv filters / dense units
  int kernel = 0;       // conv kernel, pool size
  int stride = 1;
  bool same = true;     // conv padding
  float rate = 0.0f;    // dropout probability
  Init init = Init::Auto;
  std::string tap;      // save, add and head: the name
};

struct Shape {
  int h = 0, w = 0, c = 0;
  int size() const { return h * w * c; }
  bool operator==(const Shape& o) const { return h == o.h && w == o.w && c == o.c; }
};

struct Spec {
  Shape input;
  std::vector<LayerSpec> layers;
  bool has_heads() const { return !layers.empty() && layers.back().kind == LayerKind::Head; }
};

// Parses a spec; throws std::runtime_error naming the line and what was expected.
Spec parse_spec(const std::string& text);
// Canonical text of a spec (parse_spec(format_spec(s)) == s).
std::string format_spec(const Spec& spec);
// Built-in architectures by name ("seed", ...). Returns "" for an unknown name.
std::string builtin_spec(const std::string& name);
std::vector<std::string> builtin_names();
// A name of a built-in, or spec text itself (contains a newline or ';').
Spec resolve_spec(const std::string& name_or_text);

const char* layer_name(LayerKind kind);

}  // namespace ferkit
