// Data-parallel training (collective.h, Trainer's `across`), with the processes played by threads of this test:
// the same Trainer code that `fer-train train --distributed` runs under mpirun (test_cli checks that path), here
// over a Collective that sums in memory. N ranks must compute what one process computes with the same batch, up to
// the order of floating-point sums.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "collective.h"
#include "model.h"
#include "nn.h"
#include "spec.h"
#include "synthetic.h"
#include "train.h"

using namespace ferkit;

namespace {

// A group of threads standing in for processes: every call meets at a barrier, and each rank sums the others'
// buffers in rank order, so all get bit-identical results (as MPI's allreduce gives).
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), slots_(size) {}
  int size() const { return size_; }
  // Throws once a rank has failed (poison()): the others would otherwise wait for it forever.
  void barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    const long gen = generation_;
    if (poisoned_) throw std::runtime_error("another rank failed");
    if (++waiting_ == size_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen || poisoned_; });
      if (generation_ == gen) throw std::runtime_error("another rank failed");
    }
  }
  void poison() {
    std::lock_guard<std::mutex> lock(mu_);
    poisoned_ = true;
    cv_.notify_all();
  }
  std::vector<const void*>& slots() { return slots_; }

 private:
  const int size_;
  std::vector<const void*> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  long generation_ = 0;
  bool poisoned_ = false;
};

class ThreadCollective : public Collective {
 public:
  ThreadCollective(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size(); }
  void sum(double* v, size_t n) override { sum_impl(v, n); }
  void sum(float* v, size_t n) override { sum_impl(v, n); }
  bool same(uint64_t value) override {
    g_.slots()[rank_] = &value;
    g_.barrier();
    bool all = true;
    for (int r = 0; r < g_.size(); ++r) all = all && *static_cast<const uint64_t*>(g_.slots()[r]) == value;
    g_.barrier();
    return all;
  }
  void broadcast(std::vector<uint8_t>& bytes) override {
    g_.slots()[rank_] = &bytes;
    g_.barrier();
    std::vector<uint8_t> copy = *static_cast<const std::vector<uint8_t>*>(g_.slots()[0]);
    g_.barrier();
    bytes = std::move(copy);
  }
  std::function<void(float*, size_t)> after_float_sum;  // a test's fault injection

 private:
  template <typename T>
  void sum_impl(T* v, size_t n) {
    g_.slots()[rank_] = v;
    g_.barrier();
    std::vector<T> acc(n, T(0));
    for (int r = 0; r < g_.size(); ++r) {
      const T* src = static_cast<const T*>(g_.slots()[r]);
      for (size_t j = 0; j < n; ++j) acc[j] += src[j];
    }
    g_.barrier();  // everyone has read every buffer
    std::copy(acc.begin(), acc.end(), v);
    if constexpr (std::is_same_v<T, float>)
      if (after_float_sum) after_float_sum(v, n);
  }
  ThreadGroup& g_;
  const int rank_;
};

// Runs body(rank, collective) on `ranks` threads; rethrows the first rank's exception, if any.
void run_ranks(int ranks, const std::function<void(int, ThreadCollective&)>& body,
               std::vector<std::string>* errors = nullptr) {
  ThreadGroup group(ranks);
  std::vector<ThreadCollective> cols;
  for (int r = 0; r < ranks; ++r) cols.emplace_back(group, r);
  std::vector<std::string> errs(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r, cols[r]);
      } catch (const std::exception& e) {
        errs[r] = e.what();
        group.poison();
      }
    });
  for (auto& t : threads) t.join();
  if (errors) *errors = errs;
  else
    for (int r = 0; r < ranks; ++r)
      if (!errs[r].empty()) throw std::runtime_error("rank " + std::to_string(r) + ": " + errs[r]);
}

float max_abs_diff(const Floats& a, const Floats& b) {
  float d = 0;
  for (size_t j = 0; j < a.size(); ++j) d = std::max(d, std::fabs(a[j] - b[j]));
  return d;
}

// The largest difference between two parameter arrays of model m's layout, each tensor's taken relative to its
// largest value where that exceeds 1 (a running variance of 6.9 came out 4e-4 apart between one process and three on
// an AVX-512 machine: the same sums in another order).
float max_scaled_diff(const Model& m, const Floats& a, const Floats& b) {
  float d = 0;
  for (const TensorRef& t : m.tensors) {
    float td = 0, scale = 1;
    for (size_t j = t.offset; j < t.offset + t.size; ++j)
      td = std::max(td, std::fabs(a[j] - b[j])), scale = std::max(scale, std::fabs(a[j]));
    d = std::max(d, td / scale);
  }
  return d;
}

// A network with every layer whose training depends on the whole batch or on the image's place in it: batch norm
// after a convolution and after a dense layer, dropout, a residual block, depthwise convolution.
const char* kNet =
    "input 48 48 1\nconv 6 3 2 same\nbn\nrelu\nsave a\ndwconv 3 same\nbn\nrelu\nconv 6 1\nadd a\nmaxpool 2\n"
    "flatten\ndropout 0.3\ndense 16\nbn\nrelu\ndense 7\nsoftmax\n";

TrainConfig config() {
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch = 8;
  cfg.seed = 7;
  cfg.augment = true;
  cfg.cutmix = 0.5f;
  cfg.label_smoothing = 0.1f;
  cfg.class_weights = {1.0f, 3.0f, 1.0f, 0.5f, 1.0f, 1.0f, 1.0f};
  cfg.optim.lr = 2e-3f;
  cfg.ema = 0.9f;
  return cfg;
}

}  // namespace

TEST(Distributed, ShardsSplitTheBatchInRankOrder) {
  for (int ranks : {1, 2, 3, 5})
    for (int n : {0, 1, 2, 7, 8, 64}) {
      int next = 0, smallest = n, largest = 0;
      for (int r = 0; r < ranks; ++r) {
        const Shard s = shard_of(n, r, ranks);
        EXPECT_EQ(s.begin, next) << n << " rows, rank " << r << " of " << ranks;
        next = s.end;
        smallest = std::min(smallest, s.size());
        largest = std::max(largest, s.size());
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 1) << n << " rows over " << ranks;
    }
}

// Synchronized batch norm: each rank's rows normalized with the whole batch's statistics, the running statistics
// updated with them, and the input gradient the whole batch's; dgamma and dbeta are each rank's part (their sum is
// one process's).
TEST(Distributed, BatchNormTakesTheWholeBatchsStatistics) {
  const int C = 3;
  const size_t rows = 11;  // split 3 / 4 / 4 over three ranks
  std::vector<float> x(rows * C), dy(rows * C), gamma = {1.5f, 0.5f, -1.0f}, beta = {0.1f, 0.0f, 2.0f};
  Rng r(5);
  for (size_t j = 0; j < x.size(); ++j) x[j] = r.uniform() * 4.0f - 1.0f + static_cast<float>(j % C), dy[j] = r.uniform() - 0.5f;
  std::vector<float> mean(C, 0.2f), var(C, 1.0f), xhat(rows * C), invstd(C), y(rows * C), dx(rows * C), dg(C, 0.0f),
      db(C, 0.0f);
  batchnorm_forward_train(x.data(), rows, C, {gamma.data(), beta.data(), mean.data(), var.data()}, xhat.data(),
                          invstd.data(), y.data());
  batchnorm_backward(dy.data(), xhat.data(), invstd.data(), rows, C, gamma.data(), dg.data(), db.data(), dx.data());
  std::vector<float> y3(rows * C), dx3(rows * C), dg3(C, 0.0f), db3(C, 0.0f);
  std::vector<std::vector<float>> means(3, std::vector<float>(C, 0.2f)), vars(3, std::vector<float>(C, 1.0f));
  std::mutex mu;
  run_ranks(3, [&](int rank, ThreadCollective& col) {
    const size_t b = rank == 0 ? 0 : rank == 1 ? 3 : 7, e = rank == 0 ? 3 : rank == 1 ? 7 : 11, n = e - b;
    std::vector<float> xh(n * C), is(C), g(C, 0.0f), bb(C, 0.0f);
    batchnorm_forward_train(x.data() + b * C, n, C, {gamma.data(), beta.data(), means[rank].data(), vars[rank].data()},
                            xh.data(), is.data(), y3.data() + b * C, &col);
    batchnorm_backward(dy.data() + b * C, xh.data(), is.data(), n, C, gamma.data(), g.data(), bb.data(),
                       dx3.data() + b * C, &col);
    std::lock_guard<std::mutex> lock(mu);
    for (int c = 0; c < C; ++c) dg3[c] += g[c], db3[c] += bb[c];
  });
  for (size_t j = 0; j < y.size(); ++j) {
    EXPECT_NEAR(y3[j], y[j], 1e-5f) << j;
    EXPECT_NEAR(dx3[j], dx[j], 1e-5f) << j;
  }
  for (int c = 0; c < C; ++c) {
    EXPECT_NEAR(dg3[c], dg[c], 1e-5f);
    EXPECT_NEAR(db3[c], db[c], 1e-5f);
    for (int rank = 0; rank < 3; ++rank) {
      EXPECT_FLOAT_EQ(means[rank][c], mean[c]) << "rank " << rank;
      EXPECT_FLOAT_EQ(vars[rank][c], var[c]) << "rank " << rank;
    }
  }
  // The statistics really are the batch's: a rank's own rows alone would give others.
  std::vector<float> m0(C, 0.2f), v0(C, 1.0f), xh(3 * C), is(C), y0(3 * C);
  batchnorm_forward_train(x.data(), 3, C, {gamma.data(), beta.data(), m0.data(), v0.data()}, xh.data(), is.data(),
                          y0.data());
  EXPECT_GT(std::fabs(m0[0] - mean[0]) + std::fabs(m0[1] - mean[1]) + std::fabs(m0[2] - mean[2]), 1e-3f);
}

// The whole Trainer over 2, 3 and 4 ranks, with augmentation (with and without CutMix), dropout, class weights, label smoothing, a
// moving average and batch norm, against one process with the same batch: 43 images in batches of 8 leave a last
// batch of 3, which four ranks split 0 / 1 / 1 / 1 (a rank with nothing to run still joins every sum).
// Compared: the weights (SGD with momentum) and the validation predictions (SGD, and Adam, whose steps turn the
// rounding noise of gradients that are zero in exact arithmetic, such as a bias before batch norm, into whole
// steps of the learning rate: such weights differ, the function does not).
TEST(Distributed, RanksTrainLikeOneProcessWithTheSameBatch) {
  Dataset train43 = synthetic(7, 41);
  train43.labels.resize(43);
  train43.pixels.resize(43 * kPixels);
  const Dataset val = synthetic(2, 42);
  const Spec spec = parse_spec(kNet);
  struct Case {
    int ranks;
    OptimKind optimizer;
    float cutmix;  // with CutMix every process prepares the whole batch; without, only its share
    bool soft;     // soft targets (a teacher's, FER+ votes) instead of the labels
  };
  Dataset soft = train43;
  soft.soft.resize(soft.size() * kNumClasses);
  Rng votes(43);
  for (size_t i = 0; i < soft.size(); ++i) {
    float sum = 0;
    for (int c = 0; c < kNumClasses; ++c) sum += soft.soft[i * kNumClasses + c] = votes.uniform() + (c == soft.labels[i] ? 3.0f : 0.0f);
    for (int c = 0; c < kNumClasses; ++c) soft.soft[i * kNumClasses + c] /= sum;
  }
  for (const Case& c : {Case{2, OptimKind::SGD, 0.5f, false}, Case{3, OptimKind::SGD, 0.0f, false},
                        Case{4, OptimKind::SGD, 0.0f, true}, Case{4, OptimKind::SGD, 0.5f, false},
                        Case{2, OptimKind::Adam, 0.5f, false}}) {
    const Dataset& train = c.soft ? soft : train43;
    TrainConfig cfg = config();
    cfg.optim.kind = c.optimizer;
    cfg.cutmix = c.cutmix;
    if (c.optimizer == OptimKind::SGD) cfg.optim.lr = 0.02f, cfg.optim.nesterov = true;
    const bool sgd = c.optimizer == OptimKind::SGD;
    const std::string what =
        std::to_string(c.ranks) + " ranks, " + (sgd ? "SGD" : "Adam") + (c.cutmix > 0 ? ", CutMix" : "") +
        (c.soft ? ", soft targets" : "");
    Model one(spec);
    one.init(3);
    Trainer solo(one, train, &val, cfg);
    while (!solo.finished()) solo.run_epoch();
    std::vector<Model> models(c.ranks, Model(spec));
    std::vector<std::vector<EpochRecord>> histories(c.ranks);
    std::vector<Floats> emas(c.ranks);
    run_ranks(c.ranks, [&](int rank, ThreadCollective& col) {
      Model& m = models[rank];
      m.init(3);
      Trainer t(m, train, &val, cfg, nullptr, nullptr, &col);
      while (!t.finished()) t.run_epoch();
      histories[rank] = t.history;
      emas[rank] = t.ema_params;
    });
    for (int r = 1; r < c.ranks; ++r) {
      EXPECT_EQ(models[r].params, models[0].params) << what << ": rank " << r << " differs from rank 0";
      EXPECT_EQ(emas[r], emas[0]) << what;
    }
    Workspace ws;
    std::vector<float> p_one, p_ranks;
    evaluate(one, ws, val, 64, false, &p_one);
    evaluate(models[0], ws, val, 64, false, &p_ranks);
    float dp = 0;
    for (size_t j = 0; j < p_one.size(); ++j) dp = std::max(dp, std::fabs(p_one[j] - p_ranks[j]));
    // Adam: inference's running batch-norm statistics lag behind those biases' steps (measured 2.1e-3 here).
    EXPECT_LT(dp, sgd ? 1e-4f : 5e-3f) << what << ": validation probabilities";
    const float d = max_scaled_diff(one, models[0].params, one.params);
    if (sgd) {
      EXPECT_LT(d, 1e-4f) << what << ": weights";
      EXPECT_LT(max_scaled_diff(one, emas[0], solo.ema_params), 1e-4f) << what << ": averaged weights";
    }
    ASSERT_EQ(histories[0].size(), solo.history.size());
    for (size_t e = 0; e < solo.history.size(); ++e) {
      EXPECT_NEAR(histories[0][e].train_loss, solo.history[e].train_loss, 1e-5) << what << ", epoch " << e + 1;
      EXPECT_NEAR(histories[0][e].train_acc, solo.history[e].train_acc, 1e-9) << what << ", epoch " << e + 1;
      EXPECT_NEAR(histories[0][e].val_loss, solo.history[e].val_loss, sgd ? 1e-5 : 2e-3) << what << ", epoch " << e + 1;
    }
    // The comparison can fail: one process with another seed is far from it.
    TrainConfig other_cfg = cfg;
    other_cfg.seed = 8;
    Model other(spec);
    other.init(3);
    Trainer t(other, train, &val, other_cfg);
    while (!t.finished()) t.run_epoch();
    EXPECT_GT(max_abs_diff(other.params, one.params), 100 * std::max(d, 1e-5f)) << what;
  }
}

// Each rank's shard alone (no synchronization) would give different statistics and gradients; with it, not.
// Corrupting one rank's gradient sum makes the weights differ, which the step's check finds on every rank.
TEST(Distributed, DifferentWeightsOrStartsAreFound) {
  const Dataset train = synthetic(3, 51);
  const Spec spec = parse_spec(kNet);
  TrainConfig cfg = config();
  cfg.epochs = 1;
  std::vector<std::string> errors;
  run_ranks(
      2,
      [&](int rank, ThreadCollective& col) {
        if (rank == 1)
          col.after_float_sum = [](float* v, size_t n) {
            if (n > 100) v[n / 2] += 1e-3f;
          };
        Model m(spec);
        m.init(3);
        Trainer t(m, train, nullptr, cfg, nullptr, nullptr, &col);
        t.begin_epoch();
        t.step();
      },
      &errors);
  for (const std::string& e : errors) EXPECT_NE(e.find("weights differ after epoch 1, batch 1"), std::string::npos) << e;
  run_ranks(
      2,
      [&](int rank, ThreadCollective& col) {
        Model m(spec);
        m.init(rank == 0 ? 3 : 4);  // another initialization on rank 1
        Trainer t(m, train, nullptr, cfg, nullptr, nullptr, &col);
      },
      &errors);
  for (const std::string& e : errors) EXPECT_NE(e.find("do not start alike"), std::string::npos) << e;
  run_ranks(
      2,
      [&](int rank, ThreadCollective& col) {
        TrainConfig mine = cfg;
        if (rank == 1) mine.optim.lr *= 2;  // an option that would show only after the first step
        Model m(spec);
        m.init(3);
        Trainer t(m, train, nullptr, mine, nullptr, nullptr, &col);
      },
      &errors);
  for (const std::string& e : errors) EXPECT_NE(e.find("do not start alike"), std::string::npos) << e;
}

// Machines of different kinds may round the same validation differently; the epoch's decisions must not differ
// (a process that stops early while another goes on would wait forever), so every process takes process 0's.
TEST(Distributed, EveryProcessTakesProcessZerosValidationFigures) {
  const Dataset train = synthetic(3, 71), val = synthetic(2, 72);
  const Spec spec = parse_spec(kNet);
  TrainConfig cfg = config();
  cfg.epochs = 1;
  cfg.patience = 1;
  cfg.ema = 0.0f;  // the epoch is judged by the weights themselves
  std::vector<EpochRecord> records(2), own(2);
  run_ranks(2, [&](int rank, ThreadCollective& col) {
    Model m(spec);
    m.init(3);
    Trainer t(m, train, &val, cfg, nullptr, nullptr, &col);
    t.begin_epoch();
    while (t.step()) {
    }
    if (rank == 1) m.params[m.tensors.back().offset] += 0.5f;  // as if it rounded differently
    Workspace ws;
    own[rank].val_loss = evaluate(m, ws, val, 64).loss;
    records[rank] = t.end_epoch();
  });
  EXPECT_NE(own[0].val_loss, own[1].val_loss);  // the processes' own figures differ ...
  EXPECT_EQ(records[1].val_loss, records[0].val_loss);  // ... the epoch's are process 0's
  EXPECT_EQ(records[1].val_acc, records[0].val_acc);
  EXPECT_EQ(records[0].val_loss, own[0].val_loss);
}

// A checkpoint written by rank 0 mid-epoch and broadcast to every rank continues exactly as the run that was not
// interrupted.
TEST(Distributed, ACheckpointBroadcastFromRankZeroResumesExactly) {
  const Dataset train = synthetic(6, 61), val = synthetic(2, 62);
  const Spec spec = parse_spec(kNet);
  TrainConfig cfg = config();
  std::vector<Model> straight(2, Model(spec)), resumed(2, Model(spec));
  run_ranks(2, [&](int rank, ThreadCollective& col) {
    Model& m = straight[rank];
    m.init(3);
    Trainer t(m, train, &val, cfg, nullptr, nullptr, &col);
    while (!t.finished()) t.run_epoch();
  });
  run_ranks(2, [&](int rank, ThreadCollective& col) {
    std::vector<uint8_t> bytes;
    {
      Model m(spec);
      m.init(3);
      Trainer t(m, train, &val, cfg, nullptr, nullptr, &col);
      t.run_epoch();
      t.begin_epoch();
      t.step();
      t.step();
      if (rank == 0) bytes = t.save_checkpoint(nlohmann::json());
    }
    col.broadcast(bytes);
    Model& m = resumed[rank];
    m.init(3);  // every rank builds its trainer from the same start, then loads rank 0's state
    Trainer t(m, train, &val, cfg, nullptr, nullptr, &col);
    t.load_checkpoint(bytes.data(), bytes.size());
    while (!t.finished()) {
      if (!t.in_epoch()) t.begin_epoch();
      while (t.step()) {
      }
      t.end_epoch();
    }
  });
  for (int r = 0; r < 2; ++r) EXPECT_EQ(resumed[r].params, straight[0].params) << "rank " << r;
}
