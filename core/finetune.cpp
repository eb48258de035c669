#include "finetune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "metrics.h"
#include "rng.h"

namespace ferkit {

namespace {
// Inference at temperature 1 while it lives: the raw softmax(logits) that training fits, for targets and priors
// computed from the model's own predictions.
struct UnitTemperature {
  Model& model;
  const float saved;
  explicit UnitTemperature(Model& m) : model(m), saved(m.temperature) { m.temperature = 1.0f; }
  ~UnitTemperature() { model.temperature = saved; }
  UnitTemperature(const UnitTemperature&) = delete;
  UnitTemperature& operator=(const UnitTemperature&) = delete;
};

// The same for the teach gate: targets and the prior correction come from the head itself, ungated.
struct NoGate {
  Model& model;
  TeachGate saved;
  explicit NoGate(Model& m) : model(m), saved(std::move(m.gate)) { m.gate = TeachGate{}; }
  ~NoGate() { model.gate = std::move(saved); }
  NoGate(const NoGate&) = delete;
  NoGate& operator=(const NoGate&) = delete;
};
}  // namespace

// Held-back samples are few: a small evaluation batch keeps the workspace (sized per batch) small.
constexpr int kEvalBatch = 16;
// The frozen layers run a few images at a time: a step stays short (the page runs steps in 30 ms slices) and the
// workspace small.
constexpr int kFillBatch = 4;

namespace {
std::vector<float> mean_probabilities(const std::vector<float>& probs) {
  std::vector<float> m(kNumClasses, 0.0f);
  const size_t n = probs.size() / kNumClasses;
  for (size_t i = 0; i < probs.size(); ++i) m[i % kNumClasses] += probs[i] / static_cast<float>(n);
  return m;
}
}  // namespace

nlohmann::json FinetuneConfig::to_json() const {
  return {{"whole_network", whole_network}, {"head_layers", head_layers}, {"epochs", epochs},
          {"lr", effective_lr()}, {"anchor", anchor}, {"batch", batch}, {"holdout", holdout},
          {"augment", augment}, {"views", views}, {"replay", replay}, {"keep_priors", keep_priors}, {"blend", blend}, {"gate", gate},
          {"seed", seed}};
}

FinetuneConfig FinetuneConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("fine-tune settings: expected a JSON object");
  FinetuneConfig c;
  auto num = [&](const char* key, double lo, double hi, auto& out) {
    if (!j.contains(key)) return;
    const auto& v = j.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < lo || v.get<double>() > hi)
      throw std::invalid_argument(std::string("fine-tune settings: '") + key + "' must be a number in [" +
                                  std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out = static_cast<std::remove_reference_t<decltype(out)>>(v.get<double>());
  };
  auto flag = [&](const char* key, bool& out) {
    if (!j.contains(key)) return;
    if (!j.at(key).is_boolean()) throw std::invalid_argument(std::string("fine-tune settings: '") + key + "' must be true or false");
    out = j.at(key).get<bool>();
  };
  flag("whole_network", c.whole_network);
  flag("augment", c.augment);
  flag("keep_priors", c.keep_priors);
  num("blend", 0, 1, c.blend);
  num("gate", 0, 100, c.gate);
  num("epochs", 1, 1000, c.epochs);
  num("lr", 0, 1, c.lr);
  num("anchor", 0, 100, c.anchor);
  num("batch", 1, 1024, c.batch);
  num("holdout", 0, 0.9, c.holdout);
  num("views", 0, 64, c.views);
  num("head_layers", 0, 100, c.head_layers);
  num("replay", 0, static_cast<double>(kMaxFinetuneSamples), c.replay);
  double seed = static_cast<double>(c.seed);
  num("seed", 0, 9007199254740991.0, seed);
  c.seed = static_cast<uint64_t>(seed);
  return c;
}

FinetuneSplit split_samples(const Dataset& samples, float holdout, uint64_t seed) {
  std::vector<uint8_t> held(samples.size(), 0);
  for (int c = 0; c < kNumClasses; ++c) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < samples.size(); ++i)
      if (samples.labels[i] == c) idx.push_back(i);
    if (idx.size() < 2 || holdout <= 0) continue;
    size_t k = static_cast<size_t>(std::lround(holdout * static_cast<double>(idx.size())));
    k = std::clamp<size_t>(k, 1, idx.size() - 1);
    Rng rng(mix_seed(seed, static_cast<uint64_t>(c), 7));
    for (size_t i = 0; i < k; ++i) {  // partial Fisher-Yates: the first k of a shuffle
      std::swap(idx[i], idx[i + rng.below(static_cast<uint32_t>(idx.size() - i))]);
      held[idx[i]] = 1;
    }
  }
  FinetuneSplit s;
  for (size_t i = 0; i < samples.size(); ++i) (held[i] ? s.held : s.train).add(samples.image(i), samples.labels[i]);
  return s;
}

ReplayBank make_replay_bank(Model& model, const Dataset& faces, int layer) {
  if (faces.size() == 0) throw std::invalid_argument("replay bank: no faces");
  if (layer <= 0) layer = head_start(model, FinetuneConfig{}.head_layers);
  FeatureCache c(model, layer, 1, faces.size());  // throws for a layer out of range
  Workspace ws;
  ws.reserve(model, kEvalBatch);
  while (c.fill(model, ws, faces, Augment{}, 1, kEvalBatch)) {
  }
  ReplayBank b;
  b.layer = layer;
  b.size = c.size;
  b.features = std::move(c.values);
  return b;
}

void add_replay_bank(const ReplayBank& bank, nlohmann::json& metadata, std::vector<Blob>& blobs) {
  if (!bank.count()) return;
  metadata["replay_layer"] = bank.layer;
  metadata["replay_faces"] = bank.count();
  blobs.push_back({"replay", bank.features, true});  // half precision: half the bytes, far within what replay needs
}

ReplayBank read_replay_bank(const Model& model, const nlohmann::json& metadata, const std::vector<Blob>& blobs) {
  ReplayBank b;
  if (!metadata.is_object() || !metadata.contains("replay_layer") || !metadata["replay_layer"].is_number_integer())
    return b;
  const int layer = metadata["replay_layer"].get<int>();
  if (layer < 1 || layer >= static_cast<int>(model.layers.size())) return b;
  const size_t size = static_cast<size_t>(model.layers[static_cast<size_t>(layer)].in.size());
  for (const Blob& blob : blobs)
    if (blob.name == "replay" && size && !blob.data.empty() && blob.data.size() % size == 0) {
      b.layer = layer;
      b.size = size;
      b.features = blob.data;
    }
  return b;
}

int head_start(const Model& model, int dense_layers) {
  std::vector<int> dense;
  for (size_t i = 0; i < model.layers.size(); ++i)
    if (model.layers[i].spec.kind == LayerKind::Dense) dense.push_back(static_cast<int>(i));
  if (dense.empty())
    throw std::invalid_argument("the model has no dense layer to fine-tune as a head: fine-tune the whole network");
  const int k = static_cast<int>(dense.size());
  return dense[dense_layers <= 0 || dense_layers >= k ? 0 : k - dense_layers];
}

FineTune::FineTune(Model base, const Dataset& samples, const FinetuneConfig& cfg, const ReplayBank* replay)
    : cfg_(cfg), model_(std::move(base)), prior_shift_(kNumClasses, 0.0f) {
  if (samples.size() == 0) throw std::invalid_argument("fine-tune: no samples (capture or import some first)");
  if (samples.size() > kMaxFinetuneSamples)
    throw std::invalid_argument("fine-tune: " + std::to_string(samples.size()) + " samples, at most " +
                                std::to_string(kMaxFinetuneSamples) + " are accepted");
  if (samples.pixels.size() != samples.size() * kPixels)
    throw std::invalid_argument("fine-tune: samples must be 48x48 grey crops");
  if (model_.num_classes() != kNumClasses || model_.spec.input.size() != kPixels)
    throw std::invalid_argument("fine-tune: the model must take 48x48x1 faces and give 7 classes");
  for (size_t i = 0; i < samples.size(); ++i)
    if (samples.labels[i] >= kNumClasses)
      throw std::invalid_argument("fine-tune: sample " + std::to_string(i + 1) + " has label " +
                                  std::to_string(samples.labels[i]) + ", expected 0..6");
  if (cfg_.epochs < 1 || cfg_.batch < 1) throw std::invalid_argument("fine-tune: epochs and batch must be at least 1");
  split_ = split_samples(samples, cfg_.holdout, cfg_.seed);
  model_.first_trainable = cfg_.whole_network ? 0 : head_start(model_, cfg_.head_layers);

  TrainConfig tc;
  tc.epochs = cfg_.epochs;
  tc.batch = cfg_.batch;
  tc.seed = cfg_.seed;
  tc.augment = cfg_.augment;
  tc.aug.erase = 0.0f;
  tc.optim.kind = OptimKind::Adam;
  tc.optim.lr = cfg_.effective_lr();
  tc.patience = 0;
  tc.restore_best = false;
  tc.eval_batch = kEvalBatch;
  const bool cache = model_.first_trainable > 0 && cfg_.views > 0;
  train_ = split_.train;
  const int layer = model_.first_trainable;
  if (replay && replay->count() && replay->layer <= layer) carried_ = *replay;
  if (cache && cfg_.replay > 0 && replay && replay->count() && replay->layer == layer &&
      replay->size == static_cast<size_t>(model_.layers[static_cast<size_t>(layer)].in.size())) {
    // The bank's faces join the training set as placeholders whose features are preset, with the base model's
    // probabilities for them as targets (the samples' targets are their labels).
    replay_count_ = replay->count();
    const std::vector<uint8_t> blank(kPixels, 0);
    for (size_t i = 0; i < replay_count_; ++i) replay_set_.add(blank.data(), 0);
    replay_view_ = FeatureCache(model_, layer, 1, replay_count_);
    replay_view_.preset_from = 0;
    replay_view_.preset = carried_.features.data();  // the bank is carried whenever it is replayed
    Workspace ws;
    while (replay_view_.fill(model_, ws, replay_set_, tc.aug, cfg_.seed, kEvalBatch)) {
    }
    std::vector<float> probs;
    {
      const UnitTemperature raw(model_);  // targets for training, which fits softmax(logits) itself
      const NoGate whole(model_);
      evaluate(model_, ws, replay_set_, kEvalBatch, false, &probs, &replay_view_);
    }
    base_prior_ = mean_probabilities(probs);
    train_.soft.assign(train_.size() * kNumClasses, 0.0f);
    for (size_t i = 0; i < train_.size(); ++i) train_.soft[i * kNumClasses + train_.labels[i]] = 1.0f;
    for (size_t i = 0; i < replay_count_; ++i) {
      const float* p = probs.data() + i * kNumClasses;
      replay_set_.labels[i] = static_cast<uint8_t>(std::max_element(p, p + kNumClasses) - p);
      train_.add(blank.data(), replay_set_.labels[i]);
      train_.soft.insert(train_.soft.end(), p, p + kNumClasses);
    }
  }
  if (cache) {
    // The held-back samples are few: their features (as they are) are computed now, the training views by step().
    train_features_ = FeatureCache(model_, layer, cfg_.augment ? cfg_.views : 1, train_.size());
    if (replay_count_) {
      train_features_.preset_from = split_.train.size();
      train_features_.preset = carried_.features.data();
    }
    held_features_ = FeatureCache(model_, layer, 1, split_.held.size());
    fill_ws_.reserve(model_, kFillBatch);
    while (held_features_.fill(model_, fill_ws_, split_.held, tc.aug, cfg_.seed, kFillBatch)) {
    }
    const size_t computed = static_cast<size_t>(train_features_.views) * split_.train.size();
    prep_steps_ = static_cast<int>((computed + kFillBatch - 1) / kFillBatch);
    if (!prep_steps_) {  // nothing to compute (no training samples): the bank's copies only
      while (train_features_.fill(model_, fill_ws_, train_, tc.aug, cfg_.seed, kFillBatch)) {
      }
    }
  }
  set_gate();
  const Dataset* held = split_.held.size() ? &split_.held : nullptr;
  trainer_ = std::make_unique<Trainer>(model_, train_, held, tc, cache ? &train_features_ : nullptr,
                                       cache && held ? &held_features_ : nullptr);
  trainer_->replay_from = split_.train.size();
  trainer_->replay_per_epoch = static_cast<size_t>(cfg_.replay);
  trainer_->anchor = model_.params;
  trainer_->anchor_strength = cfg_.anchor;
  held_before_ = held_now();
  const size_t rows = split_.train.size() + std::min(replay_count_, static_cast<size_t>(cfg_.replay));
  steps_per_epoch_ = static_cast<int>((rows + cfg_.batch - 1) / cfg_.batch);
}

// The gate (head only): the base's weights (a taught base keeps its own base) and the training samples' head
// inputs as keys, never the held-back ones, so that the held-back accuracy is measured as a new face meets it.
// With the feature cache the keys are its un-augmented view, taken when step() has filled it (add_gate_keys).
void FineTune::set_gate() {
  const int layer = model_.first_trainable;
  if (cfg_.whole_network || cfg_.gate <= 0 || layer <= 0 || split_.train.size() == 0) {
    model_.gate = TeachGate{};
    return;
  }
  TeachGate& g = model_.gate;
  if (!g.active() || g.layer != layer) g = TeachGate{layer, 0.0f, model_.params, {}};
  if (gate_samples(model_) + split_.train.size() > FinetuneConfig::kMaxGateKeys)
    throw std::invalid_argument("teach gate: " + std::to_string(gate_samples(model_)) + " samples taught before and " +
                                std::to_string(split_.train.size()) + " now pass its " +
                                std::to_string(FinetuneConfig::kMaxGateKeys) +
                                " (each face is compared with every one); teach with 'gate' 0 (no gate), or from "
                                "the base model");
  g.tau = cfg_.gate;
  if (prep_steps_ > 0) return;  // the cache's first view, when step() has computed it
  const NoGate off(model_);
  const ReplayBank k = make_replay_bank(model_, split_.train, layer);
  add_gate_keys(k.features.data());
}

void FineTune::add_gate_keys(const float* features) {
  TeachGate& g = model_.gate;
  if (g.tau <= 0) return;
  const size_t d = static_cast<size_t>(model_.layers[static_cast<size_t>(g.layer)].in.size());
  for (size_t i = 0; i < split_.train.size(); ++i) {
    const float* x = features + i * d;
    double norm = 0;
    for (size_t j = 0; j < d; ++j) norm += double(x[j]) * x[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(std::max(norm, 1e-12)));
    for (size_t j = 0; j < d; ++j) g.keys.push_back(x[j] * inv);
  }
}

bool FineTune::finished() const { return trainer_->finished() && !trainer_->in_epoch(); }

bool FineTune::step() {
  if (finished()) return false;
  if (prep_done_ < prep_steps_) {
    train_features_.fill(model_, fill_ws_, train_, trainer_->cfg.aug, cfg_.seed, kFillBatch);
    if (++prep_done_ == prep_steps_) {
      fill_ws_ = Workspace{};  // the frozen layers run no more
      add_gate_keys(train_features_.at(0, 0));  // view 0: the samples as they are
    }
    return true;
  }
  if (!trainer_->in_epoch()) trainer_->begin_epoch();
  if (trainer_->step()) losses_.push_back(trainer_->last_loss);
  const Progress pr = trainer_->progress();
  if (pr.done >= pr.total) {
    trainer_->end_epoch();
    if (trainer_->finished()) {
      blend_with_base();
      keep_priors();
    }
  }
  return true;
}

// Frozen weights equal their anchor, so they stay as they are.
void FineTune::blend_with_base() {
  if (cfg_.blend >= 1.0f) return;
  const Floats& base = trainer_->anchor;
  for (size_t i = 0; i < model_.params.size(); ++i)
    model_.params[i] = base[i] + cfg_.blend * (model_.params[i] - base[i]);
}

// Softmax then bias: p'(c) is proportional to p(c) exp(shift_c), so the shift that brings the bank's mean
// probabilities back to the base's is found on the bank's probabilities alone (a fixed-point iteration, as in
// Saerens et al. 2002's prior adjustment), with one pass of the head over the bank.
void FineTune::keep_priors() {
  if (!cfg_.keep_priors || base_prior_.empty()) return;
  std::vector<float> probs;
  {
    const UnitTemperature raw(model_);  // the shift below is added to the logits: solve for it in their scale
    const NoGate whole(model_);
    evaluate(model_, trainer_->eval_ws, replay_set_, kEvalBatch, false, &probs, &replay_view_);
  }
  const size_t n = probs.size() / kNumClasses;
  std::vector<double> shift(kNumClasses, 0.0);
  for (int it = 0; it < 100; ++it) {
    std::vector<double> mean(kNumClasses, 0.0);
    for (size_t i = 0; i < n; ++i) {
      double q[kNumClasses], z = 0;
      for (int c = 0; c < kNumClasses; ++c) z += q[c] = probs[i * kNumClasses + c] * std::exp(shift[c]);
      for (int c = 0; c < kNumClasses; ++c) mean[c] += q[c] / z / static_cast<double>(n);
    }
    double worst = 0;
    for (int c = 0; c < kNumClasses; ++c) {
      const double step = std::log(std::max<double>(base_prior_[c], 1e-6) / std::max(mean[c], 1e-12));
      shift[c] += step;
      worst = std::max(worst, std::abs(step));
    }
    if (worst < 1e-6) break;
  }
  const double centre = std::accumulate(shift.begin(), shift.end(), 0.0) / kNumClasses;
  const LayerPlan& last = model_.layers.back();
  for (int c = 0; c < kNumClasses; ++c) {
    prior_shift_[static_cast<size_t>(c)] = static_cast<float>(shift[c] - centre);
    model_.params[last.b + static_cast<size_t>(c)] += prior_shift_[static_cast<size_t>(c)];
  }
}

void FineTune::run() {
  while (step()) {
  }
}

double FineTune::held_now() {
  if (split_.held.size() == 0) return -1;
  return evaluate(model_, trainer_->eval_ws, split_.held,
                  static_cast<int>(std::min<size_t>(kEvalBatch, split_.held.size())), false, nullptr,
                  trainer_->val_features)
      .accuracy();
}

double FineTune::replay_agreement() {
  if (!replay_count_) return -1;
  return evaluate(model_, trainer_->eval_ws, replay_set_, kEvalBatch, false, nullptr, &replay_view_).accuracy();
}

nlohmann::json FineTune::metadata(const nlohmann::json& base_metadata) {
  nlohmann::json m = base_metadata.is_object() ? base_metadata : nlohmann::json::object();
  // The base's test-set figures and weight storage describe the base's weights, not these; its replay bank is
  // described again by save() when it is carried.
  // The temperature stays (the taught head starts from the base's), but the base's calibration figures do not hold.
  for (const char* stale : {"eval", "eval_tta", "weights", "replay_layer", "replay_faces", "calibration"}) m.erase(stale);
  std::vector<int> counts(kNumClasses, 0);
  for (uint8_t l : split_.train.labels) ++counts[l];
  for (uint8_t l : split_.held.labels) ++counts[l];
  m["finetune"] = {{"config", cfg_.to_json()},
                   {"samples_per_class", counts},
                   {"train_samples", split_.train.size()},
                   {"held_samples", split_.held.size()},
                   {"held_accuracy_before", held_before_},
                   {"held_accuracy_after", held_now()},
                   {"epochs_run", trainer_->epoch},
                   {"replay_faces", replay_count_},
                   {"replay_agreement_after", replay_agreement()},
                   {"base", base_metadata.is_object() ? base_metadata.value("name", "") : ""}};
  return m;
}

std::vector<uint8_t> FineTune::save(const nlohmann::json& base_metadata, nlohmann::json* metadata_out) {
  nlohmann::json m = metadata(base_metadata);
  std::vector<Blob> blobs;
  add_replay_bank(carried_, m, blobs);
  if (metadata_out) *metadata_out = m;
  return save_model(model_, m, blobs);
}

}  // namespace ferkit
