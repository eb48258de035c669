// The training loop, shared by the native trainer and (later) in-page fine-tuning. It is driven in small
// pieces: begin_epoch(), step() per batch, end_epoch(), so a caller can draw progress, check for cancellation,
// write checkpoints, or run a few batches per animation frame. All randomness (shuffling, augmentation,
// dropout) is derived from (seed, epoch, batch), so a run resumed from an epoch checkpoint continues exactly
// as the uninterrupted run would.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

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

// Evaluates in inference mode. If probs is given it receives size() x classes probabilities.
Metrics evaluate(Model& model, Workspace& ws, const Dataset& data, int batch, bool flip_tta = false,
                 std::vector<float>* probs = nullptr);

class Trainer {
 public:
  Trainer(Model& model, const Dataset& train, const Dataset* val, const TrainConfig& cfg);

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
  // Copies the best validation epoch's weights into the model (if any were recorded).
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

  // Regularization toward reference weights (L2-SP, for fine-tuning): when anchor_strength > 0, each step adds
  // anchor_strength * (w - anchor) to the gradient of every trainable tensor, i.e. the loss gains
  // anchor_strength/2 * |w - anchor|^2 (not included in the reported loss). anchor: params.size() floats.
  Floats anchor;
  float anchor_strength = 0.0f;

  int epoch = 0;  // completed epochs
  float last_loss = 0.0f;  // the last step's mean batch loss
  std::vector<EpochRecord> history;
  double best_val_acc = -1.0;
  int best_epoch = 0;
  int since_best = 0;
  bool stopped_early = false;
  Floats best_params;

 private:
  std::vector<uint32_t> order_;
  std::vector<uint8_t> batch_labels_;
  std::vector<float> batch_soft_;
  size_t cursor_ = 0;
  bool epoch_open_ = false;
  int batch_index_ = 0;
  Rng aug_rng_{1};
  double sum_loss_ = 0, sum_hit_ = 0;
  double epoch_start_ = 0;
  void shuffle_order();
};

nlohmann::json history_to_json(const std::vector<EpochRecord>& history);
std::string history_to_csv(const std::vector<EpochRecord>& history);
std::vector<EpochRecord> history_from_json(const nlohmann::json& j);

}  // namespace ferkit
