// Fine-tuning a trained model on a user's own labelled 48x48 face crops: the page's "teach it your face" and
// `fer-train finetune` run this same code, so the same base model, samples (in the same order) and settings give
// the same weights on both sides, up to float rounding differences between the native and WebAssembly kernels.
//
// The guard against forgetting the base model is twofold:
//  - by default only the classifier head trains (the last two dense layers, which in the shipped default's network
//    are all of its dense layers); the convolutional features, learnt from 28,709 FER-2013 faces, stay frozen. A
//    few dozen crops of one person cannot teach better features, but they can move the decision boundaries for
//    that person's face.
//  - L2-SP: the loss gains anchor/2 * |w - w_base|^2 over the trainable weights, so the head (or, in
//    whole-network mode, every layer, at a 10x smaller learning rate) stays near the base model unless the
//    samples pull it away. Weight decay toward zero would instead erase what the base model knew.
// In head-only mode the frozen layers' outputs are cached (FeatureCache, `views` per sample), so a training step
// costs only the head: most of a forward pass is in the convolutions.
// Driven in small pieces (step() = one batch), so the page can run it in a worker and report progress, and
// cancel between any two steps.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "data.h"
#include "model.h"
#include "model_io.h"
#include "train.h"

namespace ferkit {

struct FinetuneConfig {
  bool whole_network = false;  // false: the head only (the last head_layers dense layers)
  // Head only: how many dense layers train, counted from the output; 0 (or more than the model has): all of them.
  // The default's network (vgg-xs-fw2) ends in dense 256 -> dense 7 over 1728 frozen convolution outputs, so the
  // default 2 trains both: 444 K of its 1.07 M parameters, and a step costs only those two layers. The seed
  // network's head is dense 256 -> dense 128 -> dense 7, where 2 trains the last two over 256 frozen features.
  int head_layers = 2;
  int epochs = 5;  // 15 before replay: each epoch now also goes through the replay bank
  float lr = 0.0f;             // 0: the default for the mode (kHeadLr or kWholeLr)
  // L2-SP strength toward the base weights; 0: off. 0.3 (0.01 until replay's prior correction) with the head's
  // rate 2e-3: the weights settle where the samples' pull and the anchor's balance, within 2 points of recall for
  // the expressions not shown (docs/teaching.md#what-teaching-keeps).
  float anchor = 0.3f;
  int batch = 8;
  float holdout = 0.2f;        // fraction of each class's samples held back to measure accuracy
  bool augment = true;         // flips, small shifts, rotations, scale, brightness and contrast
  // Head only: the frozen layers run once per sample and view (the sample itself, then views-1 augmented copies),
  // and each training step draws one cached view per sample: 0 runs the frozen layers at every step instead
  // (fresh augmentation and frozen-layer dropout every time, several times slower).
  int views = 4;
  // Replay (head only, with a ReplayBank for the model's head): each epoch also trains on this many of the bank's
  // stored faces (drawn anew each epoch; all of them if it has fewer) toward the base model's own probabilities
  // for them (learning without forgetting on reference faces), so that what the samples do not show keeps the
  // base model's answers. 0: off.
  int replay = 256;
  // With replay, after the last epoch: the last layer's biases shift so that the model's mean probabilities over
  // the replay bank are the base model's again (prior correction). Samples of one or two expressions otherwise
  // teach the head that those expressions are more common everywhere; the shift undoes that and keeps what the
  // samples taught about the faces they show (the weights).
  bool keep_priors = true;
  // After the last epoch (before the prior correction), the weights go back part of the way to the base's:
  // base + blend * (tuned - base), weight-space ensembling (WiSE-FT, Wortsman et al. 2022). 1 (the default): the
  // trained weights. 0.4 (with lr 0.004) forgets less (the worst untaught drop 2.4 points instead of 3.4) but
  // learns a user's own face less: a face taught 12 times in the page still read as before
  // (docs/teaching.md#what-teaching-keeps).
  float blend = 1.0f;
  // Head only: the taught change applies only near the taught samples (TeachGate in model.h): a face's logits are
  // the base's plus exp((s - 1) / gate) times the change, s its largest cosine similarity to a training sample in
  // the head's input. 0.4 keeps every untaught expression within 2 points of recall in every draw of 5, 12 and 30
  // faces a class, where 1.0 and no gate do not (docs/teaching.md#what-teaching-keeps). 0: no gate.
  float gate = 0.4f;
  static constexpr size_t kMaxGateKeys = 4096;  // taught samples a gate holds, over all teachings
  uint64_t seed = 1;

  // The head's rate: 2e-3, with the anchor above (5e-4 with the weak anchor of 0.01 forgot more).
  static constexpr float kHeadLr = 2e-3f, kWholeLr = 2e-4f;
  float effective_lr() const { return lr > 0 ? lr : whole_network ? kWholeLr : kHeadLr; }
  nlohmann::json to_json() const;
  // Reads the fields present (others keep their defaults); throws std::invalid_argument naming a bad field.
  static FinetuneConfig from_json(const nlohmann::json& j);
};

// A replay memory: the inputs of one layer (the head's first, where fine-tuning's feature cache starts) for a few
// reference faces, stored with the model (derived values, not images). Fine-tuning trains on them toward the
// base model's probabilities, so that the classes a user does not show stay as they were.
struct ReplayBank {
  int layer = 0;      // the values are this layer's input
  size_t size = 0;    // values per face
  Floats features;    // faces x size
  size_t count() const { return size ? features.size() / size : 0; }
};
// The bank of `faces` (as they are, no augmentation) for the input of `layer` (0: the head's first layer for the
// default FinetuneConfig). Throws std::invalid_argument for a layer out of range or no faces.
ReplayBank make_replay_bank(Model& model, const Dataset& faces, int layer = 0);
// In a model file: the blob "replay" with the metadata field "replay_layer". read_replay_bank returns an empty
// bank (count() == 0) when the file has none or its size does not fit the model (the bank is then ignored).
void add_replay_bank(const ReplayBank& bank, nlohmann::json& metadata, std::vector<Blob>& blobs);
ReplayBank read_replay_bank(const Model& model, const nlohmann::json& metadata, const std::vector<Blob>& blobs);

// Limits for samples a page or folder hands in.
constexpr size_t kMaxFinetuneSamples = 5000;

// Splits samples into training and held-back sets: for each class with at least 2 samples, round(holdout * count)
// of them (at least 1, and never all) chosen by the seed; the rest train, in their original order.
struct FinetuneSplit {
  Dataset train, held;
};
FinetuneSplit split_samples(const Dataset& samples, float holdout, uint64_t seed);

// Index of the first layer that trains in head-only mode: the dense_layers-th dense layer counted from the output
// (0 or more than there are: the first dense layer). Throws if there is none.
int head_start(const Model& model, int dense_layers = 0);

class FineTune {
 public:
  // Throws std::invalid_argument for unusable input (no samples, labels out of range, too many samples, bad
  // settings): the message says what was expected.
  // replay: the base model's bank (nullptr or empty: none); used when cfg.replay and it is for the head's first
  // layer in head-only mode. Copied: it need not outlive the constructor.
  FineTune(Model base, const Dataset& samples, const FinetuneConfig& cfg, const ReplayBank* replay = nullptr);
  FineTune(const FineTune&) = delete;
  FineTune& operator=(const FineTune&) = delete;

  // Trains one batch, opening and closing epochs as needed. Returns false (doing nothing) once finished.
  bool step();
  bool finished() const;
  // Runs to the end.
  void run();

  int epoch() const { return trainer_->epoch; }  // completed epochs
  int epochs() const { return cfg_.epochs; }
  // Steps: first filling the feature cache (head only, views > 0), then one per training batch.
  int steps_done() const { return prep_done_ + static_cast<int>(losses_.size()); }
  int steps_total() const { return prep_steps_ + steps_per_epoch_ * cfg_.epochs; }
  int prep_steps() const { return prep_steps_; }
  const std::vector<float>& step_losses() const { return losses_; }  // one per step
  const std::vector<EpochRecord>& history() const { return trainer_->history; }
  // Accuracy on the held-back samples before training and now; -1 when nothing is held back.
  double held_before() const { return held_before_; }
  double held_now();
  // How often the model now gives the base model's class on the replay bank's faces (1 before training; -1
  // without replay): what the samples did to the expressions they did not show.
  double replay_agreement();
  size_t replay_count() const { return replay_count_; }
  // The shift keep_priors gave the last layer's biases (zeros before the end, or without replay).
  const std::vector<float>& prior_shift() const { return prior_shift_; }
  size_t train_count() const { return split_.train.size(); }
  size_t held_count() const { return split_.held.size(); }
  const FinetuneConfig& config() const { return cfg_; }

  Model& model() { return model_; }
  // The metadata a saved fine-tuned model carries: the base model's, plus {"finetune": {config, samples, held
  // accuracy before and after, epochs run}}.
  nlohmann::json metadata(const nlohmann::json& base_metadata);
  // The fine-tuned model file: metadata(base_metadata) (also into *metadata if given), and the base's replay bank
  // when the layers that computed it stayed frozen (head only), so that the next fine-tuning replays it too.
  std::vector<uint8_t> save(const nlohmann::json& base_metadata, nlohmann::json* metadata = nullptr);

 private:
  FinetuneConfig cfg_;
  Model model_;
  FinetuneSplit split_;
  Dataset train_;             // split_.train, then the replay bank's placeholders (its features are preset)
  Dataset replay_set_;        // the bank's placeholders with the base model's classes, for replay_agreement()
  FeatureCache replay_view_;  // the bank as one view, for replay_agreement()
  size_t replay_count_ = 0;
  // The base's bank, still valid for this model (empty if none or whole network); when replayed, its values are
  // preset into train_features_ and replay_view_.
  ReplayBank carried_;
  std::unique_ptr<Trainer> trainer_;
  Workspace fill_ws_;  // runs the frozen layers to fill the caches
  FeatureCache train_features_, held_features_;
  int prep_steps_ = 0, prep_done_ = 0;
  int steps_per_epoch_ = 0;
  std::vector<float> losses_;
  double held_before_ = -1;
  std::vector<float> base_prior_;   // the base model's mean probabilities over the replay bank
  std::vector<float> prior_shift_;  // kNumClasses
  void blend_with_base();
  void keep_priors();
  void set_gate();
  void add_gate_keys(const float* features);  // the training samples' head inputs, made unit length
};

}  // namespace ferkit
