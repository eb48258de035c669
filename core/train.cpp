#include "train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace ferkit {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int argmax(const float* p, int k) { return static_cast<int>(std::max_element(p, p + k) - p); }

// x (pixel / 255, as data.h's functions write it) into what the model's input expects (its Preprocess), unless it
// is that already.
void preprocess_input(const Model& model, float* x) {
  const Preprocess& pp = model.preprocess;
  if (pp.mean == 0.0f && pp.std == 1.0f && pp.scale == 1.0f / 255.0f) return;
  const int in_size = model.spec.input.size();
  for (int j = 0; j < in_size; ++j) x[j] = (x[j] * 255.0f * pp.scale - pp.mean) / pp.std;
}

// One image's model input, augmented when rng is given.
void input_image(const Model& model, const uint8_t* pixels, float* x, const Augment& aug, Rng* rng) {
  if (rng) augment_image(pixels, x, aug, *rng);
  else image_to_input(pixels, x);
  preprocess_input(model, x);
}

// A 64-bit digest of bytes (weights, data, options), for checking that data-parallel processes hold the same.
struct Digest {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  void add(const void* data, size_t bytes) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= bytes;
  }
  template <typename T>
  void add(const T& value) { add(&value, sizeof value); }
  template <typename T>
  void add(const std::vector<T>& v) { add(v.data(), v.size() * sizeof(T)); }
};

uint64_t params_hash(const Floats& params) {
  Digest d;
  d.add(params.data(), params.size() * sizeof(float));
  return d.h;
}

// What every process of a data-parallel run must have alike before the first step: the weights, the data and
// every option that steers training.
uint64_t setup_digest(const Model& model, const Dataset& train, const Dataset* val, const TrainConfig& c) {
  Digest d;
  d.add(model.params.data(), model.params.size() * sizeof(float));
  d.add(model.first_trainable);
  for (const Dataset* data : {&train, val}) {
    if (!data) continue;
    d.add(data->pixels);
    d.add(data->labels);
    d.add(data->soft);
  }
  d.add(c.epochs), d.add(c.batch), d.add(c.seed), d.add(c.augment), d.add(c.aug.flip), d.add(c.aug.shift);
  d.add(c.aug.rotate_deg), d.add(c.aug.scale), d.add(c.aug.brightness), d.add(c.aug.contrast), d.add(c.aug.erase);
  d.add(c.optim.kind), d.add(c.optim.lr), d.add(c.optim.beta1), d.add(c.optim.beta2), d.add(c.optim.eps);
  d.add(c.optim.momentum), d.add(c.optim.nesterov), d.add(c.optim.weight_decay);
  d.add(c.schedule.kind), d.add(c.schedule.step_size), d.add(c.schedule.gamma), d.add(c.schedule.warmup_epochs);
  d.add(c.schedule.min_lr), d.add(c.schedule.patience), d.add(c.schedule.factor);
  d.add(c.class_weights), d.add(c.label_smoothing), d.add(c.patience), d.add(c.restore_best), d.add(c.ema);
  d.add(c.recalibrate_images), d.add(c.cutmix), d.add(c.mixup), d.add(c.mixup_alpha), d.add(c.eval_batch);
  return d.h;
}

// Dataset::class_counts() for a model of `classes` outputs (every caller has kNumClasses).
std::vector<size_t> class_counts(const Dataset& data, int classes) {
  std::vector<size_t> counts = data.class_counts();
  counts.resize(classes, 0);
  return counts;
}
}  // namespace

std::vector<float> balanced_class_weights(const Dataset& data, int classes) {
  const std::vector<size_t> counts = class_counts(data, classes);
  std::vector<float> w(classes, 0.0f);
  for (int c = 0; c < classes; ++c)
    if (counts[c]) w[c] = static_cast<float>(static_cast<double>(data.size()) / (classes * counts[c]));
  return w;
}

std::vector<float> sqrt_balanced_class_weights(const Dataset& data, int classes) {
  const std::vector<size_t> counts = class_counts(data, classes);
  double sum_sqrt = 0;  // sum over classes of count_c / sqrt(count_c)
  for (size_t n : counts) sum_sqrt += std::sqrt(static_cast<double>(n));
  std::vector<float> w(classes, 0.0f);
  for (int c = 0; c < classes; ++c)
    if (counts[c])
      w[c] = static_cast<float>(static_cast<double>(data.size()) /
                                (std::sqrt(static_cast<double>(counts[c])) * sum_sqrt));
  return w;
}

FeatureCache::FeatureCache(const Model& model, int layer_, int views_, size_t images_)
    : layer(layer_), views(views_), images(images_) {
  if (layer < 1 || layer >= static_cast<int>(model.layers.size()) || views < 1)
    throw std::invalid_argument("feature cache: layer or views out of range");
  if (inside_residual_block(model, layer))
    throw std::invalid_argument("feature cache: layer " + std::to_string(layer + 1) +
                                " is inside a residual block (its add needs the activation saved before it)");
  size = static_cast<size_t>(model.layers[layer].in.size());
  values.assign(total() * size, 0.0f);
}

int FeatureCache::fill(Model& model, Workspace& ws, const Dataset& data, const Augment& aug, uint64_t seed, int batch) {
  if (data.size() != images) throw std::logic_error("feature cache: the data set does not match");
  const int in_size = model.spec.input.size();
  std::vector<size_t>& dest = pending;
  dest.clear();
  int done = 0;  // entries computed or copied; copies do not count toward batch
  while (filled < total() && (static_cast<int>(dest.size()) < batch || filled % images >= preset_from)) {
    const int view = static_cast<int>(filled / images);
    const size_t image = filled % images;
    if (image >= preset_from) {
      std::memcpy(values.data() + filled * size, preset + (image - preset_from) * size, sizeof(float) * size);
    } else {
      Rng rng(mix_seed(seed, 100 + static_cast<uint64_t>(view), image));
      input_image(model, data.image(image), ws.input() + dest.size() * in_size, aug, view ? &rng : nullptr);
      dest.push_back(filled);
    }
    ++filled;
    ++done;
  }
  if (!dest.empty()) {
    ForwardOptions fo;
    fo.until_layer = layer;
    const float* out = forward(model, ws, static_cast<int>(dest.size()), fo);
    for (size_t i = 0; i < dest.size(); ++i)
      std::memcpy(values.data() + dest[i] * size, out + i * size, sizeof(float) * size);
  }
  return done;
}

void recalibrate_batchnorm(Model& model, Workspace& ws, const Dataset& data, int batch, size_t limit) {
  const size_t images = limit > 0 ? std::min(limit, data.size()) : data.size();
  if (images == 0) throw std::runtime_error("batch-norm recalibration: no images");
  ws.reserve(model, batch);
  for (size_t layer = 0; layer < model.layers.size(); ++layer) {
    const LayerPlan& p = model.layers[layer];
    if (p.spec.kind != LayerKind::BatchNorm) continue;
    const int channels = p.in.c;
    const size_t rows_per_image = static_cast<size_t>(p.in.h) * p.in.w;
    std::vector<double> sum(channels, 0.0), sum2(channels, 0.0);
    for (size_t start = 0; start < images; start += batch) {
      const int n = static_cast<int>(std::min<size_t>(batch, images - start));
      load_input(model, ws, data.image(start), n);
      ForwardOptions fo;
      fo.until_layer = static_cast<int>(layer);
      const float* x = layer == 0 ? ws.input() : forward(model, ws, n, fo);
      for (size_t r = 0; r < n * rows_per_image; ++r)
        for (int c = 0; c < channels; ++c) {
          const double v = x[r * channels + c];
          sum[c] += v;
          sum2[c] += v * v;
        }
    }
    const double count = static_cast<double>(images * rows_per_image);
    for (int c = 0; c < channels; ++c) {
      const double mean = sum[c] / count;
      const double var = std::max(0.0, sum2[c] / count - mean * mean) * (count > 1 ? count / (count - 1) : 1.0);
      model.params[p.mean + c] = static_cast<float>(mean);
      model.params[p.var + c] = static_cast<float>(var);  // unbiased, as training's running variance
    }
  }
}

// Adds images [start, start + n) of data, whose probabilities are p (n x k), to m; returns their summed cross-entropy.
static double score(const Dataset& data, size_t start, size_t n, const float* p, int k, Metrics& m) {
  double loss = 0;
  for (size_t i = 0; i < n; ++i) {
    const float* pi = p + i * k;
    const int truth = data.labels[start + i];
    const int guess = argmax(pi, k);
    m.add(truth, guess);
    m.add_confidence(pi[guess], guess == truth);
    loss -= std::log(std::max(pi[truth], 1e-30f));
  }
  return loss;
}

float fit_temperature(const float* logits, const uint8_t* labels, size_t n, int classes) {
  if (n == 0) throw std::runtime_error("fit_temperature: no examples");
  // Mean cross-entropy at inverse temperature a: mean over rows of logsumexp(a z) - a z_label, in double.
  const auto loss = [&](double a) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      const float* z = logits + i * classes;
      double mx = z[0];
      for (int c = 1; c < classes; ++c) mx = std::max(mx, static_cast<double>(z[c]));
      double e = 0;
      for (int c = 0; c < classes; ++c) e += std::exp(a * (z[c] - mx));
      sum += std::log(e) - a * (z[labels[i]] - mx);
    }
    return sum / static_cast<double>(n);
  };
  // Golden-section search over log a (a from 1/20 to 1/0.05); the loss is convex in a, so unimodal in log a.
  const double phi = (std::sqrt(5.0) - 1.0) / 2.0;
  double lo = std::log(0.05), hi = std::log(20.0);
  double x1 = hi - phi * (hi - lo), x2 = lo + phi * (hi - lo);
  double f1 = loss(std::exp(x1)), f2 = loss(std::exp(x2));
  for (int it = 0; it < 60; ++it) {
    if (f1 < f2) {
      hi = x2, x2 = x1, f2 = f1;
      x1 = hi - phi * (hi - lo), f1 = loss(std::exp(x1));
    } else {
      lo = x1, x1 = x2, f1 = f2;
      x2 = lo + phi * (hi - lo), f2 = loss(std::exp(x2));
    }
  }
  return static_cast<float>(1.0 / std::exp(0.5 * (lo + hi)));
}

float fit_temperature(Model& model, Workspace& ws, const Dataset& data, int batch) {
  const int k = model.num_classes();
  ws.reserve(model, batch, false);
  std::vector<float> logits(data.size() * k);
  for (size_t start = 0; start < data.size(); start += batch) {
    const int n = static_cast<int>(std::min<size_t>(batch, data.size() - start));
    load_input(model, ws, data.image(start), n);
    const float* z = forward(model, ws, n, ForwardOptions{});
    std::copy(z, z + static_cast<size_t>(n) * k, logits.begin() + start * k);
  }
  return fit_temperature(logits.data(), data.labels.data(), data.size(), k);
}

Metrics evaluate(Model& model, Workspace& ws, const Dataset& data, int batch, bool flip_tta, std::vector<float>* probs,
                 const FeatureCache* features) {
  if (features && (flip_tta || !features->complete() || features->images != data.size()))
    throw std::logic_error("evaluate: features must be complete, of this data set, and without flip_tta");
  const int k = model.num_classes();
  ws.reserve(model, batch, false, features ? features->layer : 0);
  Metrics m(k);
  std::vector<float> p(static_cast<size_t>(batch) * k);
  if (probs) probs->assign(data.size() * k, 0.0f);
  double loss = 0;
  for (size_t start = 0; start < data.size(); start += batch) {
    const int n = static_cast<int>(std::min<size_t>(batch, data.size() - start));
    if (features) {
      std::memcpy(ws.act[features->layer].data(), features->at(0, start), sizeof(float) * n * features->size);
      ForwardOptions fo;
      fo.from_layer = features->layer;
      softmax(forward(model, ws, n, fo), n, k, p.data(), model.temperature);
    } else {
      predict(model, ws, data.image(start), n, p.data(), flip_tta);
    }
    loss += score(data, start, n, p.data(), k, m);
    if (probs) std::copy(p.begin(), p.begin() + static_cast<size_t>(n) * k, probs->begin() + start * k);
  }
  m.loss = data.size() ? loss / data.size() : 0.0;
  return m;
}

Metrics evaluate_ten_crop(Model& model, Workspace& ws, const Dataset& data, int batch, float zoom,
                          std::vector<float>* probs) {
  const Shape in = model.spec.input;
  if (in.h != kSide || in.w != kSide || in.c != 1)
    throw std::runtime_error("ten-crop evaluation needs a 48x48 grey input (this model's is " + std::to_string(in.h) +
                             "x" + std::to_string(in.w) + "x" + std::to_string(in.c) + ")");
  if (!(zoom >= 1.0f)) throw std::runtime_error("ten-crop evaluation: the zoom must be at least 1");
  const int k = model.num_classes();
  const size_t in_size = static_cast<size_t>(in.size());
  ws.reserve(model, batch, false);
  Metrics m(k);
  std::vector<float> p(static_cast<size_t>(batch) * k), mean(static_cast<size_t>(batch) * k);
  if (probs) probs->assign(data.size() * k, 0.0f);
  // A crop of side s = 48 / zoom centred at c + o is zoomed back by apply_augment with the shift t = -o * zoom.
  const float d = 0.5f * (kSide - kSide / zoom);
  const float offsets[5][2] = {{0, 0}, {-d, -d}, {d, -d}, {-d, d}, {d, d}};
  double loss = 0;
  for (size_t start = 0; start < data.size(); start += batch) {
    const int n = static_cast<int>(std::min<size_t>(batch, data.size() - start));
    std::fill(mean.begin(), mean.end(), 0.0f);
    for (int v = 0; v < 10; ++v) {
      AugmentDraw a;
      a.flip = v >= 5;
      a.scale = zoom;
      a.tx = -offsets[v % 5][0] * zoom;
      a.ty = -offsets[v % 5][1] * zoom;
      float* x = ws.input();
      for (int i = 0; i < n; ++i) {
        float* xi = x + i * in_size;
        apply_augment(data.image(start + i), xi, a);
        preprocess_input(model, xi);
      }
      softmax(forward(model, ws, n, ForwardOptions{}), n, k, p.data(), model.temperature);
      for (size_t j = 0; j < static_cast<size_t>(n) * k; ++j) mean[j] += 0.1f * p[j];
    }
    loss += score(data, start, n, mean.data(), k, m);
    if (probs) std::copy(mean.begin(), mean.begin() + static_cast<size_t>(n) * k, probs->begin() + start * k);
  }
  m.loss = data.size() ? loss / data.size() : 0.0;
  return m;
}

Metrics evaluate_ensemble(const std::vector<Model*>& models, const Dataset& data, int batch,
                          bool flip_tta, std::vector<float>* probs, bool ten_crop) {
  if (models.empty()) throw std::logic_error("evaluate_ensemble: no models");
  const int k = models[0]->num_classes();
  for (size_t i = 1; i < models.size(); ++i)
    if (models[i]->num_classes() != k)
      throw std::runtime_error("ensemble: model " + std::to_string(i + 1) + " has " +
                               std::to_string(models[i]->num_classes()) + " classes, model 1 has " + std::to_string(k));
  const auto one_model = [&](Model& model, std::vector<float>* p) {
    Workspace ws;  // sized for this model's layers
    return ten_crop ? evaluate_ten_crop(model, ws, data, batch, kTenCropZoom, p)
                    : evaluate(model, ws, data, batch, flip_tta, p);
  };
  if (models.size() == 1) return one_model(*models[0], probs);
  std::vector<float> mean(data.size() * k, 0.0f), one;
  for (Model* model : models) {
    one_model(*model, &one);
    for (size_t j = 0; j < mean.size(); ++j) mean[j] += one[j];
  }
  for (float& v : mean) v /= static_cast<float>(models.size());
  Metrics m(k);
  const double loss = score(data, 0, data.size(), mean.data(), k, m);
  m.loss = data.size() ? loss / data.size() : 0.0;
  if (probs) *probs = std::move(mean);
  return m;
}

Trainer::Trainer(Model& m, const Dataset& t, const Dataset* v, const TrainConfig& c, const FeatureCache* tf,
                 const FeatureCache* vf, Collective* a)
    : model(m), train(t), val(v), cfg(c), opt(c.optim), sched(c.schedule, c.optim.lr, c.epochs), train_features(tf),
      val_features(vf), across(a) {
  if (cfg.batch < 1) throw std::runtime_error("batch size must be at least 1");
  if (model.spec.has_heads())
    throw std::runtime_error("the model has heads (a detector's outputs, spec.h) and no classes: it runs for "
                             "inference only and cannot be trained here");
  if (train.size() == 0) throw std::runtime_error("the training set is empty");
  if (!cfg.class_weights.empty() && cfg.class_weights.size() != static_cast<size_t>(model.num_classes()))
    throw std::runtime_error("class weights: expected " + std::to_string(model.num_classes()) + " values, got " +
                             std::to_string(cfg.class_weights.size()));
  if (!train.soft.empty() && train.soft.size() != train.size() * model.num_classes())
    throw std::runtime_error("soft targets do not match the training set size");
  model.enable_grads();
  if ((tf && tf->images != train.size()) || (vf && (!val || vf->images != val->size())))
    throw std::logic_error("Trainer: cached features do not match the data sets");
  if (vf && cfg.recalibrate_images > 0)
    throw std::logic_error("Trainer: per-epoch batch-norm recalibration needs the whole network (no validation features)");
  if (across) {
    if (tf || vf) throw std::logic_error("Trainer: data-parallel training needs the whole network (no cached features)");
    // The processes must start alike: a difference would show only as weights diverging after the first step, or
    // not at all (a schedule or early stopping that differs leaves the processes waiting for each other).
    if (!across->same(setup_digest(model, train, val, cfg)))
      throw std::runtime_error("distributed training: the processes do not start alike (each needs the same data, "
                               "options and initial weights)");
    if (cfg.mixes()) batch_input_.resize(static_cast<size_t>(cfg.batch) * model.spec.input.size());
  }
  const int ranks = across ? across->size() : 1;
  ws.reserve(model, (cfg.batch + ranks - 1) / ranks, true, tf ? tf->layer : 0);
  if (vf) eval_ws.reserve(model, static_cast<int>(std::min<size_t>(cfg.eval_batch, val->size())), false, vf->layer);
  order_.resize(train.size());
  batch_labels_.resize(cfg.batch);
  batch_soft_.resize(static_cast<size_t>(cfg.batch) * model.num_classes());
  if (cfg.mixes()) {
    if (tf || !cfg.augment)
      throw std::logic_error("Trainer: CutMix and mixup need augmentation of whole images (no cached training features)");
    const Shape& in = model.spec.input;
    if (cfg.cutmix > 0 && (in.h != in.w || in.c != 1))
      throw std::logic_error("Trainer: CutMix needs square single-channel inputs");
    mix_scratch_.resize(static_cast<size_t>(cfg.batch) * (in.size() + model.num_classes()));
  }
  cursor_ = train.size();  // no epoch in progress
}

void Trainer::shuffle_order() {
  const size_t n = train.size(), fixed = std::min(replay_from, n);
  order_.resize(n);  // within its capacity
  for (size_t i = 0; i < n; ++i) order_[i] = static_cast<uint32_t>(i);
  if (fixed < n && replay_per_epoch < n - fixed) {
    // This epoch's replay rows: the first replay_per_epoch of a shuffle of them (partial Fisher-Yates).
    Rng pick(mix_seed(cfg.seed, static_cast<uint64_t>(epoch), 3));
    for (size_t i = 0; i < replay_per_epoch; ++i)
      std::swap(order_[fixed + i], order_[fixed + i + pick.below(static_cast<uint32_t>(n - fixed - i))]);
    order_.resize(fixed + replay_per_epoch);
  }
  Rng shuffle(mix_seed(cfg.seed, static_cast<uint64_t>(epoch), 1));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[shuffle.below(static_cast<uint32_t>(i))]);
}

void Trainer::begin_epoch() {
  shuffle_order();
  aug_rng_ = Rng(mix_seed(cfg.seed, static_cast<uint64_t>(epoch), 2));
  cursor_ = 0;
  epoch_open_ = true;
  batch_index_ = 0;
  sum_loss_ = sum_hit_ = 0;
  epoch_start_ = now_seconds();
}

bool Trainer::step() {
  if (cursor_ >= order_.size()) return false;
  const int k = model.num_classes();
  const int n = static_cast<int>(std::min<size_t>(cfg.batch, order_.size() - cursor_));
  const FeatureCache* fc = train_features;
  if (fc && (!fc->complete() || fc->images != train.size() || model.first_trainable < fc->layer))
    throw std::logic_error("Trainer: train_features must be complete, match the training set, and be frozen");
  const int from = fc ? fc->layer : 0;
  const size_t in_size = fc ? fc->size : static_cast<size_t>(model.spec.input.size());
  const bool mixed = cfg.mixes();  // targets are mixed: every image needs one as a distribution
  // With across, this process runs its share of the batch. It prepares only those images, drawing the others'
  // augmentations without applying them so that the stream stays one process's, unless CutMix needs the whole
  // batch to paste from (then every process prepares every image).
  const Shard part = across ? shard_of(n, across->rank(), across->size()) : Shard{0, n};
  const bool whole = !across || mixed;
  float* x = across && mixed ? batch_input_.data() : ws.act[from].data();
  for (int i = 0; i < n; ++i) {
    const size_t idx = order_[cursor_ + i];
    batch_labels_[i] = train.labels[idx];
    float* ti = batch_soft_.data() + static_cast<size_t>(i) * k;
    if (!train.soft.empty()) std::memcpy(ti, train.soft.data() + idx * k, sizeof(float) * k);
    else if (mixed) for (int c = 0; c < k; ++c) ti[c] = c == train.labels[idx] ? 1.0f : 0.0f;
    if (!whole && (i < part.begin || i >= part.end)) {  // another process's image (no cached features with across)
      if (cfg.augment) draw_augment(cfg.aug, aug_rng_);
      continue;
    }
    float* xi = x + (whole ? i : i - part.begin) * in_size;
    if (fc) {
      const int view = fc->views > 1 ? static_cast<int>(aug_rng_.below(static_cast<uint32_t>(fc->views))) : 0;
      std::memcpy(xi, fc->at(view, idx), sizeof(float) * in_size);
    } else {
      input_image(model, train.image(idx), xi, cfg.aug, cfg.augment ? &aug_rng_ : nullptr);
    }
  }
  if (mixed) {
    Rng mix_rng(mix_seed(cfg.seed, static_cast<uint64_t>(epoch), 1000000 + static_cast<uint64_t>(batch_index_)));
    cutmix(x, batch_soft_.data(), n, model.spec.input.w, k, cfg.cutmix, mix_rng, mix_scratch_.data());
    mixup(x, batch_soft_.data(), n, in_size, k, cfg.mixup, cfg.mixup_alpha, mix_rng, mix_scratch_.data());
  }
  const int ln = part.size();
  if (across && mixed) std::memcpy(ws.act[from].data(), x + part.begin * in_size, sizeof(float) * ln * in_size);
  ForwardOptions fo;
  fo.train = true;
  fo.from_layer = from;
  fo.dropout_seed = mix_seed(cfg.seed, static_cast<uint64_t>(epoch), 1000 + static_cast<uint64_t>(batch_index_));
  fo.across = across;
  fo.first_image = part.begin;
  const float* logits = forward(model, ws, ln, fo);
  const float* targets = train.soft.empty() && !mixed ? nullptr : batch_soft_.data() + static_cast<size_t>(part.begin) * k;
  double weight = 0;
  float loss = softmax_xent(logits, batch_labels_.data() + part.begin, targets,
                            cfg.class_weights.empty() ? nullptr : cfg.class_weights.data(), ln, k, cfg.label_smoothing,
                            ws.probs.data(), ws.dlogits.data(), &weight);
  double hits = 0;
  for (int i = 0; i < ln; ++i)
    hits += argmax(ws.probs.data() + static_cast<size_t>(i) * k, k) == batch_labels_[part.begin + i];
  if (across) {  // the whole batch's loss and hits; the gradients become this shard's part of the batch's mean
    double sums[3] = {static_cast<double>(loss) * weight, weight, hits};
    across->sum(sums, 3);
    loss = sums[1] > 0 ? static_cast<float>(sums[0] / sums[1]) : 0.0f;
    hits = sums[2];
    const float rescale = sums[1] > 0 ? static_cast<float>(weight / sums[1]) : 0.0f;
    for (size_t j = 0; j < static_cast<size_t>(ln) * k; ++j) ws.dlogits[j] *= rescale;
  }
  if (!std::isfinite(loss))
    throw std::runtime_error("training diverged: the loss is " + std::to_string(loss) + " at epoch " +
                             std::to_string(epoch + 1) + ", batch " + std::to_string(batch_index_ + 1) +
                             " (try a lower learning rate)");
  zero_grads(model);
  backward(model, ws, ln, ws.dlogits.data(), across);
  if (across) {  // one sum of the trainable layers' gradients (contiguous: tensors are in layer order)
    const size_t g0 = first_trainable_offset(model);
    across->sum(model.grads.data() + g0, model.grads.size() - g0);
  }
  if (anchor_strength > 0.0f && anchor.size() != model.params.size())
    throw std::logic_error("Trainer: anchor does not match the model");
  opt.step(model, sched.lr(epoch), anchor_strength > 0.0f ? anchor.data() : nullptr, anchor_strength);
  if (cfg.ema > 0.0f) update_ema();
  if (across && !across->same(params_hash(model.params)))
    throw std::runtime_error("distributed training: the processes' weights differ after epoch " +
                             std::to_string(epoch + 1) + ", batch " + std::to_string(batch_index_ + 1) +
                             " (their gradient sums were not identical)");
  sum_hit_ += hits;
  sum_loss_ += static_cast<double>(loss) * n;
  last_loss = loss;
  cursor_ += n;
  ++batch_index_;
  return true;
}

void Trainer::update_ema() {
  if (ema_params.size() != model.params.size()) {
    ema_params = model.params;
    return;
  }
  const double t = static_cast<double>(opt.t);
  const float d = std::min(cfg.ema, static_cast<float>((1.0 + t) / (10.0 + t)));
  const float* p = model.params.data();
  float* e = ema_params.data();
  const size_t n = ema_params.size();
  for (size_t i = 0; i < n; ++i) e[i] += (1.0f - d) * (p[i] - e[i]);
}

Progress Trainer::progress() const {
  Progress p;
  p.epoch = epoch + 1;
  p.epochs = cfg.epochs;
  p.done = std::min(cursor_, order_.size());
  p.total = order_.size();
  if (p.done) {
    p.loss = sum_loss_ / p.done;
    p.acc = sum_hit_ / p.done;
    const double dt = now_seconds() - epoch_start_;
    p.images_per_sec = dt > 0 ? p.done / dt : 0;
    p.eta_seconds = p.images_per_sec > 0 ? (p.total - p.done) / p.images_per_sec : 0;
  }
  return p;
}

EpochRecord Trainer::end_epoch() {
  epoch_open_ = false;
  EpochRecord r;
  r.epoch = epoch + 1;
  const double train_time = now_seconds() - epoch_start_;
  const size_t seen = std::min(cursor_, order_.size());
  r.train_loss = seen ? sum_loss_ / seen : 0;
  r.train_acc = seen ? sum_hit_ / seen : 0;
  r.lr = sched.lr(epoch);
  r.images_per_sec = train_time > 0 ? seen / train_time : 0;
  // With the moving average on, the epoch is judged (and kept) by the averaged weights.
  const bool use_ema = cfg.ema > 0.0f && ema_params.size() == model.params.size();
  if (use_ema) std::swap(model.params, ema_params);
  // Judged (and kept, if best) with batch-norm statistics recalibrated; the trajectory keeps its own.
  const bool recalibrate = cfg.recalibrate_images > 0 && val && val->size();
  if (recalibrate) {
    judged_ = model.params;
    recalibrate_batchnorm(model, eval_ws, train, cfg.eval_batch, cfg.recalibrate_images);
  }
  if (val && val->size()) {
    Metrics m = evaluate(model, eval_ws, *val, static_cast<int>(std::min<size_t>(cfg.eval_batch, val->size())), false,
                         nullptr, val_features);
    r.val_loss = m.loss;
    r.val_acc = m.accuracy();
  } else {
    r.val_loss = r.train_loss;
    r.val_acc = r.train_acc;
  }
  if (across) {
    // Every process validated the same weights, but machines of another kind may round differently; the epoch's
    // decisions (best epoch, plateau, early stopping) must be the same everywhere, so all take process 0's figures.
    std::vector<uint8_t> figures(2 * sizeof(double));
    std::memcpy(figures.data(), &r.val_loss, sizeof(double));
    std::memcpy(figures.data() + sizeof(double), &r.val_acc, sizeof(double));
    across->broadcast(figures);
    std::memcpy(&r.val_loss, figures.data(), sizeof(double));
    std::memcpy(&r.val_acc, figures.data() + sizeof(double), sizeof(double));
  }
  r.seconds = now_seconds() - epoch_start_;
  history.push_back(r);
  sched.observe(static_cast<float>(r.val_loss));
  if (r.val_acc > best_val_acc) {
    best_val_acc = r.val_acc;
    best_epoch = r.epoch;
    best_params = model.params;
    since_best = 0;
  } else {
    ++since_best;
  }
  if (recalibrate) std::swap(model.params, judged_);
  if (use_ema) std::swap(model.params, ema_params);
  ++epoch;
  if (cfg.patience > 0 && since_best >= cfg.patience) stopped_early = true;
  return r;
}

EpochRecord Trainer::run_epoch() {
  begin_epoch();
  while (step()) {
  }
  return end_epoch();
}

void Trainer::restore_best() {
  if (cfg.restore_best && best_params.size() == model.params.size()) model.params = best_params;
  else if (!cfg.restore_best && cfg.ema > 0.0f && ema_params.size() == model.params.size()) model.params = ema_params;
}

std::vector<uint8_t> Trainer::save_checkpoint(const nlohmann::json& extra_metadata) const {
  nlohmann::json meta = extra_metadata.is_null() ? nlohmann::json::object() : extra_metadata;
  meta["checkpoint"] = {{"epoch", epoch},
                        {"best_val_acc", best_val_acc},
                        {"best_epoch", best_epoch},
                        {"since_best", since_best},
                        {"stopped_early", stopped_early},
                        {"optimizer_steps", opt.t},
                        {"optimizer", optim_name(opt.cfg.kind)},
                        {"plateau_lr", sched.plateau_lr},
                        {"plateau_best", sched.best},
                        {"plateau_wait", sched.wait},
                        {"plateau_have_best", sched.have_best},
                        {"seed", cfg.seed},
                        {"history", history_to_json(history)}};
  if (in_epoch())
    meta["checkpoint"]["in_epoch"] = {{"cursor", cursor_},         {"batch_index", batch_index_},
                                      {"sum_loss", sum_loss_},     {"sum_hit", sum_hit_},
                                      {"aug_rng", aug_rng_.state()}, {"elapsed", now_seconds() - epoch_start_}};
  std::vector<Blob> blobs = {{"optimizer.m", opt.m}, {"optimizer.v", opt.v}, {"best.params", best_params},
                              {"ema.params", ema_params}};
  return save_model(model, meta, blobs);
}

void Trainer::load_checkpoint(const uint8_t* data, size_t size) {
  nlohmann::json meta;
  std::vector<Blob> blobs;
  Model loaded = load_model(data, size, &meta, &blobs);
  if (format_spec(loaded.spec) != format_spec(model.spec))
    throw std::runtime_error("checkpoint: its architecture differs from the model being trained");
  if (!meta.contains("checkpoint") || !meta["checkpoint"].is_object())
    throw std::runtime_error("checkpoint: this is a model file without training state");
  const auto& c = meta["checkpoint"];
  try {
    if (c.at("optimizer").get<std::string>() != optim_name(opt.cfg.kind))
      throw std::runtime_error("it was written with optimizer " + c.at("optimizer").get<std::string>());
    if (c.at("seed").get<uint64_t>() != cfg.seed)
      throw std::runtime_error("it was written with seed " + std::to_string(c.at("seed").get<uint64_t>()));
    epoch = c.at("epoch").get<int>();
    best_val_acc = c.at("best_val_acc").get<double>();
    best_epoch = c.at("best_epoch").get<int>();
    since_best = c.at("since_best").get<int>();
    stopped_early = c.at("stopped_early").get<bool>();
    opt.t = c.at("optimizer_steps").get<long long>();
    sched.plateau_lr = c.at("plateau_lr").get<float>();
    sched.best = c.at("plateau_best").get<float>();
    sched.wait = c.at("plateau_wait").get<int>();
    sched.have_best = c.at("plateau_have_best").get<bool>();
    history = history_from_json(c.at("history"));
    cursor_ = train.size();
    epoch_open_ = false;
    if (c.contains("in_epoch")) {
      const auto& e = c["in_epoch"];
      const size_t cursor = e.at("cursor").get<size_t>();
      if (cursor > train.size()) throw std::runtime_error("its epoch position is past the training set's size");
      shuffle_order();
      cursor_ = cursor;
      epoch_open_ = true;
      batch_index_ = e.at("batch_index").get<int>();
      sum_loss_ = e.at("sum_loss").get<double>();
      sum_hit_ = e.at("sum_hit").get<double>();
      aug_rng_.set_state(e.at("aug_rng").get<uint64_t>());
      epoch_start_ = now_seconds() - e.at("elapsed").get<double>();
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("checkpoint: cannot resume: ") + e.what());
  }
  for (Blob& b : blobs) {
    if (b.name == "optimizer.m") opt.m = std::move(b.data);
    else if (b.name == "optimizer.v") opt.v = std::move(b.data);
    else if (b.name == "best.params") best_params = std::move(b.data);
    else if (b.name == "ema.params") ema_params = std::move(b.data);
  }
  model.params = loaded.params;
}

nlohmann::json history_to_json(const std::vector<EpochRecord>& history) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : history)
    j.push_back({{"epoch", r.epoch},
                 {"train_loss", r.train_loss},
                 {"train_acc", r.train_acc},
                 {"val_loss", r.val_loss},
                 {"val_acc", r.val_acc},
                 {"lr", r.lr},
                 {"seconds", r.seconds},
                 {"images_per_sec", r.images_per_sec}});
  return j;
}

std::vector<EpochRecord> history_from_json(const nlohmann::json& j) {
  std::vector<EpochRecord> h;
  for (const auto& e : j) {
    EpochRecord r;
    r.epoch = e.at("epoch").get<int>();
    r.train_loss = e.at("train_loss").get<double>();
    r.train_acc = e.at("train_acc").get<double>();
    r.val_loss = e.at("val_loss").get<double>();
    r.val_acc = e.at("val_acc").get<double>();
    r.lr = e.at("lr").get<double>();
    r.seconds = e.at("seconds").get<double>();
    r.images_per_sec = e.value("images_per_sec", 0.0);
    h.push_back(r);
  }
  return h;
}

std::string history_to_csv(const std::vector<EpochRecord>& history) {
  std::ostringstream o;
  o << "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_sec\n";
  char buf[256];
  for (const auto& r : history) {
    std::snprintf(buf, sizeof buf, "%d,%.6f,%.6f,%.6f,%.6f,%.8g,%.3f,%.1f\n", r.epoch, r.train_loss, r.train_acc,
                  r.val_loss, r.val_acc, r.lr, r.seconds, r.images_per_sec);
    o << buf;
  }
  return o.str();
}

}  // namespace ferkit
