// Optimizers over the model's one parameter array, and learning-rate schedules.
#pragma once
#include <string>
#include <vector>

#include "model.h"

namespace ferkit {

enum class OptimKind { Adam, SGD };

struct OptimConfig {
  OptimKind kind = OptimKind::Adam;
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;  // Adam (eps as Keras)
  float momentum = 0.9f;                             // SGD
  bool nesterov = false;                             // SGD
  // Adam: decoupled (AdamW: p -= lr * wd * p); SGD: L2 added to the gradient (g += wd * p).
  // Applies to weights only (TensorRef::decay), never to biases or batch-norm.
  float weight_decay = 0.0f;
};

// Optimizer state: first and second moments (Adam) or the momentum buffer (SGD, in m), one per parameter.
struct Optimizer {
  OptimConfig cfg;
  Floats m, v;
  long long t = 0;  // steps taken
  explicit Optimizer(const OptimConfig& c = {}) : cfg(c) {}
  // One update of every trainable tensor of layers >= model.first_trainable, at learning rate lr. With an anchor
  // (params.size() floats), each gradient first gains anchor_strength * (p - anchor): L2-SP regularization toward
  // reference weights, i.e. the loss gains anchor_strength/2 * |p - anchor|^2.
  void step(Model& model, float lr, const float* anchor = nullptr, float anchor_strength = 0.0f);
};

enum class ScheduleKind { Constant, Step, Cosine, Plateau };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Constant;
  int step_size = 10;       // Step: multiply by gamma every step_size epochs
  float gamma = 0.1f;
  int warmup_epochs = 0;    // linear warm-up (Step, Cosine)
  float min_lr = 0.0f;      // Cosine floor; Plateau floor
  int patience = 3;         // Plateau: epochs without improvement of the validation loss
  float factor = 0.5f;      // Plateau: multiply by factor
};

// The learning rate per epoch. Plateau keeps state (current lr, best loss, wait) updated by observe().
struct Schedule {
  ScheduleConfig cfg;
  float base_lr = 1e-3f;
  int total_epochs = 1;
  float plateau_lr = 0.0f, best = 0.0f;
  int wait = 0;
  bool have_best = false;
  Schedule() = default;
  Schedule(const ScheduleConfig& c, float base, int epochs) : cfg(c), base_lr(base), total_epochs(epochs), plateau_lr(base) {}
  float lr(int epoch) const;         // epoch counts from 0
  void observe(float val_loss);      // end of an epoch (Plateau)
};

ScheduleKind parse_schedule_kind(const std::string& s);  // constant|step|cosine|plateau; throws otherwise
const char* schedule_name(ScheduleKind k);
OptimKind parse_optim_kind(const std::string& s);        // adam|sgd
const char* optim_name(OptimKind k);

}  // namespace ferkit
