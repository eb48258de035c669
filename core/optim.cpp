#include "optim.h"

#include <cmath>
#include <stdexcept>

namespace ferkit {

void Optimizer::step(Model& model, float lr, const float* anchor, float anchor_strength) {
  const size_t n = model.params.size();
  if (m.size() != n) m.assign(n, 0.0f);
  if (cfg.kind == OptimKind::Adam && v.size() != n) v.assign(n, 0.0f);
  ++t;
  float* P = model.params.data();
  const float* G = model.grads.data();
  for (const TensorRef& tr : model.tensors) {
    if (!tr.trainable || tr.layer < model.first_trainable) continue;
    const float wd = tr.decay ? cfg.weight_decay : 0.0f;
    float* p = P + tr.offset;
    const float* g = G + tr.offset;
    float* mm = m.data() + tr.offset;
    const float* a = anchor ? anchor + tr.offset : nullptr;
    const float s = anchor ? anchor_strength : 0.0f;
    if (cfg.kind == OptimKind::Adam) {
      float* vv = v.data() + tr.offset;
      const float b1 = cfg.beta1, b2 = cfg.beta2;
      const float c1 = 1.0f - static_cast<float>(std::pow(b1, static_cast<double>(t)));
      const float c2 = 1.0f - static_cast<float>(std::pow(b2, static_cast<double>(t)));
      const float step = lr / c1, inv_c2 = 1.0f / c2;
#pragma omp parallel for simd schedule(static) if (tr.size > 65536)
      for (size_t j = 0; j < tr.size; ++j) {
        const float gj = a ? g[j] + s * (p[j] - a[j]) : g[j];
        mm[j] = b1 * mm[j] + (1.0f - b1) * gj;
        vv[j] = b2 * vv[j] + (1.0f - b2) * gj * gj;
        p[j] -= step * mm[j] / (std::sqrt(vv[j] * inv_c2) + cfg.eps) + lr * wd * p[j];
      }
    } else {
      const float mu = cfg.momentum;
#pragma omp parallel for simd schedule(static) if (tr.size > 65536)
      for (size_t j = 0; j < tr.size; ++j) {
        const float gj = (a ? g[j] + s * (p[j] - a[j]) : g[j]) + wd * p[j];
        mm[j] = mu * mm[j] + gj;
        p[j] -= lr * (cfg.nesterov ? gj + mu * mm[j] : mm[j]);
      }
    }
  }
}

float Schedule::lr(int epoch) const {
  if (cfg.kind == ScheduleKind::Plateau) return plateau_lr;
  if (cfg.warmup_epochs > 0 && epoch < cfg.warmup_epochs)
    return base_lr * static_cast<float>(epoch + 1) / static_cast<float>(cfg.warmup_epochs + 1);
  switch (cfg.kind) {
    case ScheduleKind::Step: return base_lr * std::pow(cfg.gamma, static_cast<float>(epoch / std::max(cfg.step_size, 1)));
    case ScheduleKind::Cosine: {
      const int span = std::max(total_epochs - cfg.warmup_epochs, 1);
      const float progress = static_cast<float>(epoch - cfg.warmup_epochs) / static_cast<float>(span);
      return cfg.min_lr + 0.5f * (base_lr - cfg.min_lr) * (1.0f + std::cos(3.14159265358979f * progress));
    }
    default: return base_lr;
  }
}

void Schedule::observe(float val_loss) {
  if (cfg.kind != ScheduleKind::Plateau) return;
  if (!have_best || val_loss < best - 1e-4f * std::fabs(best)) {
    best = val_loss;
    have_best = true;
    wait = 0;
    return;
  }
  if (++wait > cfg.patience) {
    plateau_lr = std::max(plateau_lr * cfg.factor, cfg.min_lr);
    wait = 0;
  }
}

ScheduleKind parse_schedule_kind(const std::string& s) {
  if (s == "constant") return ScheduleKind::Constant;
  if (s == "step") return ScheduleKind::Step;
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "plateau") return ScheduleKind::Plateau;
  throw std::runtime_error("unknown schedule '" + s + "' (expected constant, step, cosine or plateau)");
}

const char* schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Step: return "step";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Plateau: return "plateau";
  }
  return "?";
}

OptimKind parse_optim_kind(const std::string& s) {
  if (s == "adam" || s == "adamw") return OptimKind::Adam;
  if (s == "sgd") return OptimKind::SGD;
  throw std::runtime_error("unknown optimizer '" + s + "' (expected adam or sgd)");
}

const char* optim_name(OptimKind k) { return k == OptimKind::Adam ? "adam" : "sgd"; }

}  // namespace ferkit
