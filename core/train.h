// The training loop, shared by the native trainer and fine-tuning (finetune.h: `fer-train finetune` and the
// page's teach panel). It is driven in small pieces: begin_epoch(), step() per batch, end_epoch(), so a caller can
// draw progress, check for cancellation, write checkpoints, or run a few batches per animation frame. All
// randomness (shuffling, augmentation, dropout) is derived from (seed, epoch, batch), so a run resumed from an
// epoch checkpoint continues exactly as the uninterrupted run would.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "collective.h"
#include "data.h"
#include "metrics.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"

namespace ferkit {

struct TrainConfig {
  int epochs = 50;
  int batch = 64;
  uint64_t seed = 1;
  bool augment = false;
  Augment aug;
  OptimConfig optim;
  ScheduleConfig schedule;
  std::vector<float> class_weights;  // empty: every example weighs 1
  float label_smoothing = 0.0f;
  int patience = 0;                  // early stopping on validation accuracy; 0 = off
  bool restore_best = true;          // at the end, keep the weights of the best validation epoch
  // Exponential moving average of the weights (all of Model::params, batch-norm statistics included): after
  // optimizer step t, ema += (1 - d) * (params - ema) with d = min(ema, (1 + t) / (10 + t)), so the average follows
  // closely at first. When on (> 0), validation, the best epoch and the final weights are the average's. 0 = off.
  float ema = 0.0f;
  // > 0: before each epoch's validation, the judged weights' batch-norm statistics are recalibrated on the first
  // recalibrate_images training images (recalibrate_batchnorm), so the best epoch is chosen, and kept, as it will
  // ship; training itself goes on with its running statistics. 0 = off. Not with a validation FeatureCache.
  size_t recalibrate_images = 0;
  // CutMix (see cutmix() in data.h): the probability that a training image gets a patch of another image of its
  // batch, its target mixed by area. 0 = off. Only with augmentation, and not with cached training features.
  float cutmix = 0.0f;
  // mixup (see mixup() in data.h), after CutMix: the probability that a training image is blended with another
  // image of its batch, lambda ~ Beta(mixup_alpha, mixup_alpha). 0 = off. The same conditions as CutMix.
  float mixup = 0.0f, mixup_alpha = 0.2f;
  bool mixes() const { return cutmix > 0.0f || mixup > 0.0f; }  // CutMix or mixup: targets become mixtures
  int eval_batch = 256;
};

struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, lr = 0, seconds = 0, images_per_sec = 0;
};

struct Progress {
  int epoch = 0, epochs = 0;  // epoch is 1-based
  size_t done = 0, total = 0;  // images this epoch
  double loss = 0, acc = 0;    // running means this epoch
  double images_per_sec = 0, eta_seconds = 0;  // eta: this epoch
};

// Per-class weights n / (k * count_c), as scikit-learn's "balanced" (classes with no examples get 0).
std::vector<float> balanced_class_weights(const Dataset& data, int classes);
// A milder balance: weights proportional to 1 / sqrt(count_c), scaled so that their mean over the images is 1
// (FER-2013 Training: disgust 3.2, happy 0.79). Classes with no examples get 0.
std::vector<float> sqrt_balanced_class_weights(const Dataset& data, int classes);

// What a model's first `layer` layers (a frozen part) output for `views` versions of each image of a data set, so
// that training the layers after them (fine-tuning a head) need not run the frozen ones again for every batch.
// View 0 is each image as it is; view v >= 1 is image i augmented with Rng(mix_seed(seed, 100 + v, i)).
// Computed in inference mode, a few images at a time (fill), so a caller can spread the work.
struct FeatureCache {
  int layer = 0;                // the values are this layer's input (ws.act[layer] of a forward pass)
  int views = 1;
  size_t images = 0, size = 0;  // images per view; values per image
  size_t filled = 0;            // (view, image) pairs computed so far, view-major
  Floats values;                // [view][image][size]

  // Images from preset_from on are not computed: fill() copies their values, the same in every view, from
  // preset (size floats each, in order), as for a replay memory of stored features. The data set fill() reads
  // then only needs images before preset_from (the rest may be placeholders).
  size_t preset_from = static_cast<size_t>(-1);
  const float* preset = nullptr;
  std::vector<size_t> pending;  // fill()'s scratch: where each computed image of a batch goes

  FeatureCache() = default;
  FeatureCache(const Model& model, int layer, int views, size_t images);
  size_t total() const { return static_cast<size_t>(views) * images; }
  bool complete() const { return filled == total(); }
  const float* at(int view, size_t image) const { return values.data() + (view * images + image) * size; }
  // Computes up to `batch` more entries through the model's layers [0, layer) with ws (capacity >= batch);
  // returns how many.
  int fill(Model& model, Workspace& ws, const Dataset& data, const Augment& aug, uint64_t seed, int batch);
};

// Sets every batch-norm layer's running mean and variance to the exact statistics of its input over `data`, as
// inference sees it: the images as they are (no augmentation), the layers before already recalibrated (one pass
// per batch-norm layer, up to it). Training's running averages follow the augmented images and drifting weights
// (and, with --ema, are averaged like the weights); this matches them to the pictures the model will be shown.
// limit > 0: only the first `limit` images of data.
void recalibrate_batchnorm(Model& model, Workspace& ws, const Dataset& data, int batch, size_t limit = 0);

// Temperature scaling (Guo et al. 2017): the temperature T that minimizes the mean cross-entropy of
// softmax(logits / T) over n rows of `classes` logits (T from 0.05 to 20; the loss is convex in 1/T, searched by
// golden section). It leaves every argmax, so accuracy, as it is.
float fit_temperature(const float* logits, const uint8_t* labels, size_t n, int classes);
// The same over a model's logits on data (inference mode, the model's own temperature ignored), e.g. PublicTest,
// the split that chooses; the caller stores the result in model.temperature.
float fit_temperature(Model& model, Workspace& ws, const Dataset& data, int batch);

// Evaluates in inference mode. If probs is given it receives size() x classes probabilities. With features (view 0
// of data, complete), the layers before features->layer are not run again; flip_tta is not available then.
Metrics evaluate(Model& model, Workspace& ws, const Dataset& data, int batch, bool flip_tta = false,
                 std::vector<float>* probs = nullptr, const FeatureCache* features = nullptr);

// Ten-crop test-time averaging: the mean probabilities of ten views of each face, the five crops of side
// input / zoom (the centre and the four corners), each zoomed back to the input's size, and their mirror images.
// Ten times one view's work. 48x48 grey inputs only.
constexpr float kTenCropZoom = 48.0f / 44.0f;  // 44x44 crops of a 48x48 face
Metrics evaluate_ten_crop(Model& model, Workspace& ws, const Dataset& data, int batch, float zoom = kTenCropZoom,
                          std::vector<float>* probs = nullptr);

// Evaluates an ensemble: the mean of the models' probabilities (each flip-averaged with flip_tta, or over ten crops
// with ten_crop). The models must have the same classes; their architectures may differ (each gets its own
// workspace). One model gives exactly evaluate()'s (or evaluate_ten_crop()'s) result.
Metrics evaluate_ensemble(const std::vector<Model*>& models, const Dataset& data, int batch,
                          bool flip_tta = false, std::vector<float>* probs = nullptr, bool ten_crop = false);

class Trainer {
 public:
  // train_features / val_features: see below (nullptr: none).
  // across: data-parallel training (collective.h; nullptr: this process alone). Every process builds its Trainer
  // with the same model, data and configuration; each step, every process draws the whole batch (shuffle,
  // augmentation, CutMix: the same streams as one process), prepares and runs its shard of it (shard_of; with
  // CutMix it prepares every image, to paste from) forward and back,
  // with batch norm's statistics synchronized across; the loss is normalized by the whole batch's weight, and the
  // gradients (one contiguous buffer) are summed across before the optimizer step. Every process then holds the
  // same weights, which each step checks (a difference throws). Validation and the epoch's bookkeeping run on
  // every process alike. So a run over N processes computes what one process computes with the same batch, up to
  // the order of floating-point sums. Not with cached features.
  Trainer(Model& model, const Dataset& train, const Dataset* val, const TrainConfig& cfg,
          const FeatureCache* train_features = nullptr, const FeatureCache* val_features = nullptr,
          Collective* across = nullptr);

  void begin_epoch();
  // Trains one batch. Returns false (doing nothing) when this epoch has no batches left.
  // Throws std::runtime_error if the loss is NaN or infinite (the weights are left as before the batch).
  bool step();
  // Evaluates on the validation set, records the epoch, updates the schedule, best weights, early stopping.
  EpochRecord end_epoch();
  // Runs a whole epoch (begin, all steps, end).
  EpochRecord run_epoch();
  bool finished() const { return stopped_early || epoch >= cfg.epochs; }
  // True between begin_epoch() and end_epoch() (also after resuming a mid-epoch checkpoint).
  bool in_epoch() const { return epoch_open_; }
  // Copies the best validation epoch's weights into the model (if any were recorded); with cfg.restore_best off and
  // cfg.ema on, the average's last weights.
  void restore_best();
  Progress progress() const;
  float current_lr() const { return sched.lr(epoch); }

  // Checkpoint: the model file format with training state in its metadata and extra blobs. It may be written
  // between any two steps; resuming mid-epoch continues with exactly the batches and augmentations that the
  // uninterrupted run would have used.
  std::vector<uint8_t> save_checkpoint(const nlohmann::json& extra_metadata) const;
  // Restores the state written by save_checkpoint (the model's weights included). Throws on mismatch.
  void load_checkpoint(const uint8_t* data, size_t size);

  Model& model;
  const Dataset& train;
  const Dataset* val;
  TrainConfig cfg;
  Optimizer opt;
  Schedule sched;
  Workspace ws;       // training batches
  Workspace eval_ws;  // validation (inference only)

  // Regularization toward reference weights (L2-SP, for fine-tuning; Optimizer::step applies it): when
  // anchor_strength > 0 the loss gains anchor_strength/2 * |w - anchor|^2 over the trainable tensors (not included
  // in the reported loss). anchor: params.size() floats.
  Floats anchor;
  float anchor_strength = 0.0f;

  // Rows of the training set from replay_from on (fine-tuning's replay memory) take part in an epoch only
  // replay_per_epoch at a time, drawn anew each epoch (with the seed), so that a large memory does not make every
  // epoch long. Set before the first epoch.
  size_t replay_from = static_cast<size_t>(-1);
  size_t replay_per_epoch = 0;

  // Cached inputs of a later layer for the training and validation images (given to the constructor; complete by
  // the first step): each step then feeds a view of each image's features, drawn from the epoch's augmentation
  // stream, instead of augmenting pixels and running the layers before features->layer, which must be frozen
  // (model.first_trainable >= layer). The workspaces then have no buffers for those layers.
  const FeatureCache* train_features;
  const FeatureCache* val_features;
  Collective* const across;

  int epoch = 0;  // completed epochs
  float last_loss = 0.0f;  // the last step's mean batch loss
  std::vector<EpochRecord> history;
  double best_val_acc = -1.0;
  int best_epoch = 0;
  int since_best = 0;
  bool stopped_early = false;
  Floats best_params;
  Floats ema_params;  // cfg.ema > 0: the running average (empty until the first step)

 private:
  std::vector<uint32_t> order_;
  std::vector<uint8_t> batch_labels_;
  std::vector<float> batch_soft_;
  Floats mix_scratch_;  // cfg.cutmix > 0: cutmix()'s copy of the batch
  Floats batch_input_;  // with across and CutMix: the whole batch's inputs, before this process takes its shard
  Floats judged_;  // cfg.recalibrate_images > 0: end_epoch's judged weights before recalibration (scratch)
  size_t cursor_ = 0;
  bool epoch_open_ = false;
  int batch_index_ = 0;
  Rng aug_rng_{1};
  double sum_loss_ = 0, sum_hit_ = 0;
  double epoch_start_ = 0;
  void shuffle_order();
  void update_ema();
};

nlohmann::json history_to_json(const std::vector<EpochRecord>& history);
std::string history_to_csv(const std::vector<EpochRecord>& history);
std::vector<EpochRecord> history_from_json(const nlohmann::json& j);

}  // namespace ferkit
