// A sequential CNN built from a Spec. All parameters (and batch-norm running statistics) live in one
// contiguous array, `params`; gradients in `grads`, same layout. Activations live in a Workspace sized once
// for a batch, so forward and backward allocate nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aligned.h"
#include "nn.h"
#include "spec.h"

namespace ferkit {

// Limits that keep hostile specs and files from overflowing sizes or exhausting memory.
constexpr size_t kMaxModelParams = size_t{1} << 26;  // 64 M parameters (256 MiB)
constexpr long long kMaxActivation = 1LL << 26;      // values per image in any layer's output
constexpr int kMaxClasses = 1000;                     // outputs of the last layer (a class name each)

// A named slice of Model::params.
struct TensorRef {
  std::string name;  // e.g. "l0.conv.w"
  int layer = 0;     // index into Model::layers
  size_t offset = 0, size = 0;
  bool trainable = true;  // false: batch-norm running statistics
  bool decay = true;      // weight decay applies (weights only, not biases or batch-norm)
};

struct LayerPlan {
  LayerSpec spec;
  Shape in, out;
  ConvGeom geom;          // conv and maxpool
  size_t w = 0, b = 0;    // param offsets: conv/dense weight+bias; bn gamma+beta
  size_t mean = 0, var = 0;  // bn running statistics
  int tap = -1;           // add and head: the index of the save layer whose output it adds back (reads)
  long long macs() const;  // multiply-accumulates of one image's forward pass through this layer
};

// How the input pixels are turned into the model's input: x = (pixel * scale - mean) / std.
struct Preprocess {
  int side = 48;
  int channels = 1;
  float scale = 1.0f / 255.0f;
  float mean = 0.0f;
  float std = 1.0f;
};

// A taught model's gate (core/finetune.h, docs/teaching.md): what teaching changed applies only near the faces it
// was taught. Inference runs the head (layers from `layer` on) twice, with the model's weights and with the base's,
// and gives logits base + g * (taught - base), g = exp((s - 1) / tau), s the largest cosine similarity between the
// face's head input and a key (a taught sample's, of unit length). Training ignores it; after a gated pass the
// workspace holds the taught head's activations, so a backward pass (explain.h) goes through the taught head only.
struct TeachGate {
  int layer = 0;
  float tau = 0;  // 0: no gate
  Floats base;    // the base model's parameters, all of them (the layers before `layer` equal the model's own)
  Floats keys;    // count x the head's input size
  bool active() const { return tau > 0 && !base.empty() && !keys.empty(); }
};

class Model {
 public:
  Model() = default;
  // Plans the layers and allocates and initializes the parameters. Throws std::runtime_error if the spec's
  // shapes don't work out or the model exceeds kMaxModelParams / kMaxActivation.
  explicit Model(const Spec& spec) : Model(spec, true) {}
  // allocate = false: layers and tensors only, params stay empty (to check a file's size before allocating).
  Model(const Spec& spec, bool allocate);
  size_t planned_params() const { return tensors.empty() ? 0 : tensors.back().offset + tensors.back().size; }
  void allocate(bool initialize = true);  // params (zeros), class names, init(1) unless !initialize

  Spec spec;
  std::vector<LayerPlan> layers;
  std::vector<TensorRef> tensors;
  Floats params;
  Floats grads;  // sized by the trainer (enable_grads)
  std::vector<std::string> class_names;
  Preprocess preprocess;
  // Calibration (temperature scaling, Guo et al. 2017): inference's probabilities are softmax(logits / temperature),
  // so that a face read at 0.8 is right about 80% of the time. Fitted by fit_temperature (train.h); training's
  // loss ignores it. 1: uncalibrated.
  float temperature = 1.0f;
  TeachGate gate;  // inactive unless the model was taught (fine-tuned head only)
  // Layers before this index are frozen: no gradients, batch-norm uses running statistics.
  int first_trainable = 0;

  // The values a forward pass gives per image: the logits, or with heads (spec.h) every head's outputs.
  int num_outputs() const;
  // A classifier's classes; 0 for a model with heads (a detector), which has no class names.
  int num_classes() const { return spec.has_heads() ? 0 : num_outputs(); }
  Shape input_shape() const { return spec.input; }
  size_t num_params() const { return params.size(); }
  size_t num_trainable() const;
  long long macs_per_image() const;  // multiply-accumulates of one forward pass
  void init(uint64_t seed);          // dense uniform(1/sqrt(fan_in)), conv He / Glorot; bn gamma=1 beta=0 mean=0 var=1
  void enable_grads() { grads.assign(params.size(), 0.0f); }
  std::string summary() const;       // a table of layers, shapes and parameter counts
};

// Activation and scratch buffers for batches of up to `capacity` images. An inference-only workspace
// (training = false) has no gradient buffers.
// The samples a model's teach gate holds (its keys; 0: none).
inline size_t gate_samples(const Model& m) {
  return m.gate.keys.empty() ? 0 : m.gate.keys.size() / m.layers[static_cast<size_t>(m.gate.layer)].in.size();
}

struct Workspace {
  int capacity = 0;
  bool training = false;
  // Training buffers (dact) exist for layers >= grad_from only: the model's first_trainable when reserved (frozen
  // layers need no gradients). backward() refuses a model whose first_trainable is below it.
  int grad_from = 0;
  // Inputs start at act[from_layer] (ForwardOptions::from_layer >= it): the layers before it have no buffers.
  int from_layer = 0;
  std::vector<Floats> act;   // act[0]: input; act[i+1]: output of layer i
  std::vector<Floats> dact;  // gradients, same shapes
  std::vector<Floats> col;   // conv: im2col (kept for backward); bn: xhat; dropout: mask
  std::vector<Floats> aux;   // bn: invstd
  std::vector<std::vector<int32_t>> argmax;  // maxpool
  Floats dcol;               // conv backward scratch (shared)
  Floats probs, dlogits;
  Floats gated;  // a gated model's taught logits while its base head runs (TeachGate)
  Floats heads;  // a model with heads: each image's outputs, its heads' one after another
  // Makes the buffers fit model for batches of up to `batch` (never shrinks capacity). Buffers made for another
  // model are re-made where they do not fit, so one workspace may serve several models in turn.
  void reserve(const Model& model, int batch, bool for_training = false, int from_layer = 0);
  float* input() { return act[0].data(); }
};

// Weights prepared once for faster inference. Every convolution followed by batch norm gets the batch norm folded
// into its weights and bias (w * scale and (b - mean) * scale + beta per output channel, scale = gamma /
// sqrt(var + eps)), so forward() skips the batch-norm pass and runs a ReLU that follows in the convolution's
// output stores (conv2d_forward's relu). In the WebAssembly build also the Winograd transform of every 3x3 layer that can run as
// Winograd (conv2d_prepare_winograd, of the folded weights where folded), so forward() does not redo it per call
// and runs small maps (6x6) as Winograd too. Made from the model's current weights: whoever holds one makes it
// again after the weights change (Pipeline does, in its constructor and set_model).
struct InferencePlan {
  const float* params = nullptr;  // the weights it was made from (forward refuses it for another array)
  size_t size = 0;
  std::vector<Floats> weights, bias;  // per layer: a convolution's folded weights and bias, or empty
  std::vector<Floats> conv;           // per layer: the prepared Winograd weights, or empty
};
InferencePlan plan_inference(const Model& model);
// The same into an existing plan, reusing its buffers when they are already the right size (as after a plan of
// the same architecture): what swapping in new weights of one architecture calls, so that it allocates nothing.
void plan_inference(const Model& model, InferencePlan& plan);

// Net2WiderNet (Chen, Goodfellow & Shlens 2016): puts src's function into dst, a model with the same layers but
// as many or more units in each conv and dense layer (the same number of classes). Each extra unit is a copy of a
// randomly chosen unit of src's layer (weights, bias, and the batch-norm statistics and scale after it), and the
// next layer divides each copied unit's outgoing weights among its copies, so dst computes exactly src's logits
// when noise is 0. noise > 0 adds Gaussian noise of noise x (the layer's weight standard deviation) to the extra
// units' incoming weights, so that copies can learn apart. Returns a line per widened layer ("l4 conv 64 -> 80").
// Throws std::runtime_error naming the first layer that does not fit (another kind, kernel, or fewer units).
std::string widen(const Model& src, Model& dst, uint64_t seed, float noise);

// Net2DeeperNet with residual blocks, zero-initialized as Goyal et al. (2017) start theirs: puts src's function into
// dst, a model with src's layers and extra residual blocks between them, each `save X ... add X` (and a relu right
// after the add where the block's input is a relu's output), keeping the shape. A block's layers keep dst's
// initialization except its last, a batch norm, whose scale and shift become 0: the block adds nothing at first, so
// dst computes exactly src's logits, and it learns from there. Returns a line per inserted block. Throws
// std::runtime_error naming the first layer of dst that does not fit.
std::string deepen(const Model& src, Model& dst);

// A uniform "model soup" (Wortsman et al. 2022): the mean of models' parameters, all of one architecture (the same
// spec text; the first model's preprocessing and class names). Batch-norm statistics are averaged too, and those
// are not the statistics of the averaged weights: recalibrate_batchnorm afterwards. Throws std::runtime_error
// naming the first model that differs from the first: by names[i] if given (e.g. file paths), else "model i+1".
Model average_models(const std::vector<Model>& models, const std::vector<std::string>& names = {});

struct ForwardOptions {
  bool train = false;         // dropout active, batch-norm uses (and updates) batch statistics
  uint64_t dropout_seed = 0;  // dropout masks are a function of (seed, layer)
  // Data-parallel training (collective.h): these n images are images first_image.. of a batch spread over the
  // processes of `across`; batch norm takes the whole batch's statistics and dropout the masks those images
  // would get in one process. nullptr: the batch is these n images.
  Collective* across = nullptr;
  int first_image = 0;
  // Start at this layer: ws.act[from_layer] already holds its input (e.g. features of frozen layers computed
  // once, see FeatureCache in train.h). 0: from the input image. Inside a residual block (inside_residual_block),
  // the block's add reads the activation its save left in ws from an earlier pass.
  int from_layer = 0;
  // Stop before this layer and return its input, ws.act[until_layer] (0: run to the end).
  int until_layer = 0;
  const InferencePlan* plan = nullptr;  // inference only (ignored with train)
  // Inference: max-pool layers record their argmax in ws.argmax, so that gradients can be taken back through the
  // pass (explain.h does; training always records it).
  bool keep_argmax = false;
};

// The shapes an add layer (p) joins: its saved activation's and its input's.
AddGeom add_geom(const Model& model, const LayerPlan& p);

// Whether a pass that starts at `layer` (ForwardOptions::from_layer) crosses an add whose saved activation comes
// from before it: such a pass reads that activation from the workspace as an earlier whole pass left it.
bool inside_residual_block(const Model& model, int layer);

// Runs n images (already in ws.input(), n <= capacity) through the model; returns the logits (n x classes), a model
// with heads its outputs (n x num_outputs(), in ws.heads; inference only), or with opt.until_layer that layer's input.
const float* forward(Model& model, Workspace& ws, int n, const ForwardOptions& opt);
// Back-propagates dlogits (n x classes); accumulates into model.grads (call zero_grads first). across: as the
// forward pass's (ForwardOptions::across); the gradients are then this process's part, to be summed across.
void backward(Model& model, Workspace& ws, int n, const float* dlogits, Collective* across = nullptr);
// Zeros the gradients of the trainable layers (>= first_trainable); frozen layers get none.
void zero_grads(Model& model);
// Where the trainable layers' parameters (and gradients) begin: tensors are laid out in layer order, so
// [first_trainable_offset, params.size()) is every trainable tensor and nothing else.
size_t first_trainable_offset(const Model& model);

// Inference helper: pixels (n images of side*side bytes) -> probabilities (n x classes). Batch-norm and dropout
// in inference mode. ws must have capacity >= n. If flip_tta, averages with the mirrored image. plan: see
// InferencePlan (nullptr: none).
void predict(Model& model, Workspace& ws, const uint8_t* pixels, int n, float* probs, bool flip_tta = false,
             const InferencePlan* plan = nullptr);
// Fills ws.input() with preprocessed pixels (n images).
void load_input(const Model& model, Workspace& ws, const uint8_t* pixels, int n);

}  // namespace ferkit
