// Fine-tuning (core/finetune.h). Self-contained (no files): it also runs as WebAssembly under node.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "explain.h"
#include "finetune.h"
#include "model.h"
#include "model_io.h"
#include "rng.h"
#include "spec.h"

using namespace ferkit;

namespace {

// A model with a two-layer head, so that head mode leaves a conv block frozen and trains two dense layers.
Model small_model(uint64_t seed) {
  Model m(parse_spec("input 48 48 1\nconv 8 3 1 same\nrelu\nmaxpool 4\nconv 16 3 1 same\nrelu\nmaxpool 4\n"
                     "flatten\ndense 32\nrelu\ndense 7\nsoftmax\n"));
  m.init(seed);
  return m;
}

// Faces stand-ins: class c is a bright blob at a class-specific place, with noise.
Dataset blobs(const std::vector<int>& per_class, uint64_t seed) {
  Dataset d;
  Rng rng(seed);
  uint8_t px[kPixels];
  for (int c = 0; c < kNumClasses; ++c)
    for (int i = 0; i < per_class[c]; ++i) {
      const int cy = 8 + (c % 3) * 14, cx = 8 + (c / 3) * 14;
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x) {
          const float d2 = static_cast<float>((y - cy) * (y - cy) + (x - cx) * (x - cx));
          px[y * kSide + x] = static_cast<uint8_t>(std::clamp(40.0f + 200.0f * std::exp(-d2 / 40.0f) + rng.uniform(-20.0f, 20.0f), 0.0f, 255.0f));
        }
      d.add(px, c);
    }
  return d;
}

double distance(const Model& a, const Floats& b, int from_layer) {
  double s = 0;
  for (const TensorRef& t : a.tensors)
    if (t.layer >= from_layer)
      for (size_t j = t.offset; j < t.offset + t.size; ++j) s += (a.params[j] - b[j]) * static_cast<double>(a.params[j] - b[j]);
  return std::sqrt(s);
}

}  // namespace

TEST(Finetune, SplitHoldsBackPerClassDeterministically) {
  const Dataset d = blobs({10, 1, 2, 5, 0, 3, 10}, 3);
  const FinetuneSplit a = split_samples(d, 0.2f, 9), b = split_samples(d, 0.2f, 9);
  EXPECT_EQ(a.held.labels, b.held.labels);
  EXPECT_EQ(a.held.pixels, b.held.pixels);
  std::vector<int> held(kNumClasses, 0);
  for (uint8_t l : a.held.labels) ++held[l];
  EXPECT_EQ(held, (std::vector<int>{2, 0, 1, 1, 0, 1, 2}));  // round(0.2 n), at least 1 when n >= 2, never all
  EXPECT_EQ(a.train.size() + a.held.size(), d.size());
  EXPECT_EQ(split_samples(d, 0.0f, 9).held.size(), 0u);
  const FinetuneSplit c = split_samples(d, 0.2f, 10);
  EXPECT_NE(a.held.pixels, c.held.pixels);  // another seed holds back other samples
}

TEST(Finetune, HeadModeKeepsFeaturesFrozenAndLearns) {
  Model base = small_model(5);
  const Floats base_params = base.params;
  const Dataset d = blobs({12, 12, 12, 12, 12, 12, 12}, 4);
  FinetuneConfig cfg;
  cfg.epochs = 25;
  cfg.lr = 3e-3f;
  cfg.augment = false;
  FineTune ft(std::move(base), d, cfg);
  const int head = ft.model().first_trainable;
  EXPECT_EQ(ft.model().layers[head].spec.kind, LayerKind::Dense);
  ft.run();
  EXPECT_TRUE(ft.finished());
  EXPECT_FALSE(ft.step());
  EXPECT_EQ(ft.steps_done(), ft.steps_total());
  EXPECT_GT(ft.prep_steps(), 0);  // head mode caches the frozen layers' features first
  EXPECT_EQ(ft.step_losses().size(), static_cast<size_t>(ft.steps_total() - ft.prep_steps()));
  for (const TensorRef& t : ft.model().tensors)
    for (size_t j = t.offset; j < t.offset + t.size; ++j) {
      if (t.layer < head) {
        ASSERT_EQ(ft.model().params[j], base_params[j]) << t.name << " moved, but it is frozen";
      }
    }
  EXPECT_GT(distance(ft.model(), base_params, head), 0.01);
  EXPECT_GT(ft.held_now(), ft.held_before());
  EXPECT_GE(ft.held_now(), 0.8);
  EXPECT_LT(ft.step_losses().back(), ft.step_losses().front());
}

// The cached features are exactly what the frozen layers compute: without augmentation (one view) and with no
// dropout in the frozen part, training the head from the cache gives the same weights, bit for bit, as running
// the whole network at every step.
TEST(Finetune, CachedFeaturesTrainTheHeadExactlyAsTheFullForwardPass) {
  const Dataset d = blobs({6, 6, 6, 6, 6, 6, 6}, 11);
  Floats weights[2];
  double held[2];
  for (int cached = 0; cached < 2; ++cached) {
    FinetuneConfig cfg;
    cfg.epochs = 4;
    cfg.augment = false;
    cfg.views = cached ? 4 : 0;
    FineTune ft(small_model(3), d, cfg);
    EXPECT_EQ(ft.prep_steps() > 0, cached == 1);
    ft.run();
    weights[cached] = ft.model().params;
    held[cached] = ft.held_now();
  }
  EXPECT_EQ(weights[0], weights[1]);
  EXPECT_EQ(held[0], held[1]);
}

// With augmentation, view 0 is each sample as it is and the other views are augmented copies, all computed by the
// frozen layers; training draws among them.
TEST(Finetune, FeatureCacheViewsAreThePlainAndAugmentedSamples) {
  Model m = small_model(2);
  const Dataset d = blobs({2, 1, 1, 0, 0, 0, 0}, 5);
  const int layer = head_start(m);
  FeatureCache fc(m, layer, 3, d.size());
  Workspace ws;
  ws.reserve(m, 3);
  Augment aug;
  while (fc.fill(m, ws, d, aug, 9, 3)) {
  }
  ASSERT_TRUE(fc.complete());
  for (size_t i = 0; i < d.size(); ++i) {
    load_input(m, ws, d.image(i), 1);
    ForwardOptions fo;
    fo.until_layer = layer;
    const float* plain = forward(m, ws, 1, fo);
    EXPECT_EQ(std::vector<float>(plain, plain + fc.size), std::vector<float>(fc.at(0, i), fc.at(0, i) + fc.size));
    EXPECT_NE(std::vector<float>(fc.at(1, i), fc.at(1, i) + fc.size), std::vector<float>(fc.at(0, i), fc.at(0, i) + fc.size));
    EXPECT_NE(std::vector<float>(fc.at(1, i), fc.at(1, i) + fc.size), std::vector<float>(fc.at(2, i), fc.at(2, i) + fc.size));
  }
  EXPECT_THROW(FeatureCache(m, 0, 1, 1), std::invalid_argument);
}

TEST(Finetune, AnchorPullsTowardTheBaseWeights) {
  const Dataset d = blobs({0, 0, 0, 16, 0, 0, 0}, 6);  // one expression only: the head is pulled hardest
  double dist[2];
  const float anchors[2] = {0.0f, 5.0f};
  for (int k = 0; k < 2; ++k) {
    Model base = small_model(7);
    const Floats base_params = base.params;
    FinetuneConfig cfg;
    cfg.epochs = 30;
    cfg.anchor = anchors[k];
    cfg.whole_network = true;
    cfg.lr = 1e-3f;
    FineTune ft(std::move(base), d, cfg);
    ft.run();
    dist[k] = distance(ft.model(), base_params, 0);
  }
  EXPECT_LT(dist[1], 0.7 * dist[0]) << "without anchor " << dist[0] << ", with " << dist[1];
}

TEST(Finetune, SameInputsGiveSameWeightsAndMetadataSaysWhatRan) {
  const Dataset d = blobs({4, 4, 4, 4, 4, 4, 4}, 8);
  FinetuneConfig cfg;
  cfg.epochs = 3;
  Model a_base = small_model(1), b_base = small_model(1);
  FineTune a(std::move(a_base), d, cfg), b(std::move(b_base), d, cfg);
  a.run();
  b.run();
  EXPECT_EQ(a.model().params, b.model().params);
  const nlohmann::json m =
      a.metadata({{"name", "base"}, {"eval", {{"private", {{"accuracy", 0.7}}}}}, {"eval_tta", 1}, {"weights", "i8"}});
  EXPECT_EQ(m["name"], "base");
  // The base's evaluation and storage are not this model's: dropped, not carried over.
  EXPECT_FALSE(m.contains("eval") || m.contains("eval_tta") || m.contains("weights")) << m.dump();
  EXPECT_EQ(m["finetune"]["config"]["epochs"], 3);
  EXPECT_EQ(m["finetune"]["epochs_run"], 3);
  EXPECT_EQ(m["finetune"]["samples_per_class"][0], 4);
}

TEST(Finetune, BadInputIsRefusedWithAReason) {
  Dataset empty;
  EXPECT_THROW(FineTune(small_model(1), empty, {}), std::invalid_argument);
  Dataset bad = blobs({1, 0, 0, 0, 0, 0, 0}, 1);
  bad.labels[0] = 9;
  try {
    FineTune ft(small_model(1), bad, {});
    FAIL() << "label 9 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("label 9"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FinetuneConfig::from_json({{"epochs", 0}}), std::invalid_argument);
  EXPECT_THROW(FinetuneConfig::from_json({{"lr", "fast"}}), std::invalid_argument);
  EXPECT_THROW(FinetuneConfig::from_json(nlohmann::json::array()), std::invalid_argument);
  const FinetuneConfig c = FinetuneConfig::from_json({{"whole_network", true}, {"epochs", 4}});
  EXPECT_TRUE(c.whole_network);
  EXPECT_EQ(c.epochs, 4);
  EXPECT_FLOAT_EQ(c.effective_lr(), FinetuneConfig::kWholeLr);
  Model no_dense(parse_spec("input 48 48 1\nconv 7 3 1 same\ngap\nsoftmax\n"));
  EXPECT_THROW(head_start(no_dense), std::invalid_argument);
}

// Teaching one class must not make the model forget the others: with the base model's replay bank, samples of
// class 3 only (with a mark of their own, as one person's look) leave the predictions on held-out images of the
// six other classes nearly as they were; without it (replay 0) the same teaching moves them. A base that knows
// the made-up classes comes first (the head fine-tuned on all of them).
Model base_that_knows_the_blobs() {
  FinetuneConfig learn;
  learn.epochs = 25;
  learn.lr = 3e-3f;
  learn.augment = false;
  learn.holdout = 0;
  learn.gate = 0;  // a base, not a teaching: no gate to carry into the tests' teachings
  FineTune pre(small_model(5), blobs({16, 16, 16, 16, 16, 16, 16}, 4), learn);
  pre.run();
  return pre.model();
}

// 12 images of class 2 labelled 3 (a person whose fear the base reads as something else): a teaching that shifts
// the priors toward class 3.
Dataset class_2_taught_as_class_3() {
  Dataset samples = blobs({0, 0, 12, 0, 0, 0, 0}, 31);
  std::fill(samples.labels.begin(), samples.labels.end(), 3);
  return samples;
}

// Samples of class 3 only, with a mark of their own (one person's look): the bottom rows dark.
Dataset marked_samples_of_class_3() {
  Dataset samples = blobs({0, 0, 0, 12, 0, 0, 0}, 31);
  for (size_t i = 0; i < samples.size(); ++i)
    for (size_t px = 40 * kSide; px < kPixels; ++px) samples.pixels[i * kPixels + px] = 0;
  return samples;
}

TEST(Finetune, ReplayKeepsTheClassesTheSamplesDoNotShow) {
  Model base = base_that_knows_the_blobs();
  const Dataset test = blobs({30, 30, 30, 30, 30, 30, 30}, 11);
  auto predictions = [&](Model m) {
    Workspace ws;
    std::vector<float> p;
    evaluate(m, ws, test, 30, false, &p);
    std::vector<int> out(test.size());
    for (size_t i = 0; i < test.size(); ++i)
      out[i] = static_cast<int>(std::max_element(p.begin() + i * kNumClasses, p.begin() + (i + 1) * kNumClasses) -
                                (p.begin() + i * kNumClasses));
    return out;
  };
  const std::vector<int> before = predictions(base);
  int right = 0;
  for (size_t i = 0; i < test.size(); ++i) right += before[i] == test.labels[i];
  ASSERT_GE(right, static_cast<int>(0.8 * test.size())) << "the base must know the classes";
  const ReplayBank bank = make_replay_bank(base, blobs({10, 10, 10, 10, 10, 10, 10}, 21));
  ASSERT_EQ(bank.count(), 70u);
  const Dataset samples = marked_samples_of_class_3();
  auto teach = [&](int replay, double* held_before, double* held_after, double* agreement) {
    FinetuneConfig cfg;
    cfg.epochs = 30;
    cfg.lr = 5e-3f;
    cfg.replay = replay;
    FineTune ft(base, samples, cfg, &bank);
    EXPECT_EQ(ft.replay_count(), replay ? 70u : 0u);
    ft.run();
    *held_before = ft.held_before();
    *held_after = ft.held_now();
    *agreement = ft.replay_agreement();
    return predictions(ft.model());
  };
  // Of the held-out images of the untaught classes: how many keep the base model's class.
  auto kept = [&](const std::vector<int>& after) {
    int same = 0, n = 0;
    for (size_t i = 0; i < test.size(); ++i)
      if (test.labels[i] != 3) n++, same += after[i] == before[i];
    return static_cast<double>(same) / n;
  };
  double hb, ha, agreement;
  const std::vector<int> with = teach(96, &hb, &ha, &agreement);
  EXPECT_GE(ha, hb);  // the taught samples held back are (still) recognised
  EXPECT_GE(ha, 0.99);
  EXPECT_GE(agreement, 0.9);  // what the page reports: the bank's faces keep the base's class
  double nb, na, none_agreement;
  const std::vector<int> without = teach(0, &nb, &na, &none_agreement);
  EXPECT_EQ(none_agreement, -1);
  std::printf("untaught held-out images that keep the base's class: %.3f with replay, %.3f without\n", kept(with),
              kept(without));
  EXPECT_GE(kept(with), 0.95);
  EXPECT_LT(kept(without), kept(with) - 0.05);
}

// Prior correction: after a teaching that moves the class priors, the last layer's biases move so that the mean
// probabilities over the replay bank are the base model's again; without it they lean toward the taught class. The
// shift is the only difference: the rest of the weights are the same.
TEST(Finetune, KeepPriorsGivesTheBankTheBaseModelsMeanProbabilities) {
  Model base = base_that_knows_the_blobs();
  const Dataset bank_faces = blobs({10, 10, 10, 10, 10, 10, 10}, 21);
  const ReplayBank bank = make_replay_bank(base, bank_faces);
  auto mean_probs = [&](Model m) {
    Workspace ws;
    std::vector<float> p;
    evaluate(m, ws, bank_faces, 35, false, &p);
    std::vector<double> mean(kNumClasses, 0.0);
    for (size_t i = 0; i < p.size(); ++i) mean[i % kNumClasses] += p[i] / bank_faces.size();
    return mean;
  };
  const std::vector<double> want = mean_probs(base);
  auto teach = [&](bool keep_priors) {
    FinetuneConfig cfg;
    cfg.epochs = 30;
    cfg.lr = 1e-2f;
    cfg.replay = 7;  // a few of the bank each epoch: the samples outweigh it
    cfg.keep_priors = keep_priors;
    cfg.gate = 0;  // the shift is solved for the head's own answers (the gate, when on, mixes them afterwards)
    // Images of class 2 taught as class 3 (a person whose fear the base reads as something else): class 3 then
    // takes over part of class 2's faces in the bank, and its mean probability rises.
    const Dataset samples = class_2_taught_as_class_3();
    auto ft = std::make_unique<FineTune>(base, samples, cfg, &bank);
    ft->run();
    return ft;
  };
  auto with = teach(true), without = teach(false);
  const std::vector<double> got = mean_probs(with->model()), leaning = mean_probs(without->model());
  EXPECT_GT(leaning[3], want[3] + 0.01) << "the test needs a teaching that shifts the priors";
  for (int c = 0; c < kNumClasses; ++c) EXPECT_NEAR(got[c], want[c], 1e-4) << "class " << c;
  EXPECT_LT(with->prior_shift()[3], 0.0f);
  for (float s : without->prior_shift()) EXPECT_EQ(s, 0.0f);
  const LayerPlan& last = base.layers.back();
  for (size_t i = 0; i < base.params.size(); ++i) {
    const float shift = i >= last.b && i < last.b + kNumClasses ? with->prior_shift()[i - last.b] : 0.0f;
    ASSERT_NEAR(with->model().params[i], without->model().params[i] + shift, 1e-6) << "param " << i;
  }
}

// A calibrated base teaches to the same weights as the uncalibrated one: training fits softmax(logits), so the
// replay targets and the prior correction are computed at temperature 1 too; the temperature rides along.
TEST(Finetune, TheTemperatureDoesNotChangeWhatIsLearnt) {
  Model base = base_that_knows_the_blobs();
  const ReplayBank bank = make_replay_bank(base, blobs({10, 10, 10, 10, 10, 10, 10}, 21));
  const Dataset samples = class_2_taught_as_class_3();
  FinetuneConfig cfg;
  cfg.epochs = 10;
  cfg.replay = 7;
  Model hot = base;
  hot.temperature = 2.5f;
  FineTune plain(base, samples, cfg, &bank), calibrated(hot, samples, cfg, &bank);
  plain.run();
  calibrated.run();
  EXPECT_EQ(calibrated.model().params, plain.model().params);
  EXPECT_EQ(calibrated.model().temperature, 2.5f);
}

// Residual and depthwise networks fine-tune like chains: head only, the layers below the head stay as they were
// (their features are cached once, through the blocks); the whole network, the blocks' weights move too, and the
// taught blobs are learnt either way.
TEST(Finetune, ResidualDepthwiseNetworksTrainHeadOnlyOrWhole) {
  Model base(parse_spec("input 48 48 1; conv 8 3 2 same; bn; relu; save a; dwconv 3 same; bn; relu; conv 8 1; "
                        "add a; relu; save b; dwconv 3 2 same; conv 12 1; add b; relu; maxpool 4; flatten; dense 32; "
                        "relu; dense 7; softmax"));
  base.init(3);
  const Dataset samples = blobs({8, 8, 8, 8, 8, 8, 8}, 5);
  for (bool whole : {false, true}) {
    FinetuneConfig cfg;
    cfg.whole_network = whole;
    cfg.epochs = 20;
    cfg.lr = 3e-3f;
    cfg.augment = false;
    FineTune ft(base, samples, cfg);
    ft.run();
    const int head = head_start(base, cfg.head_layers);
    size_t frozen_end = 0;  // the parameters of the layers below the head
    for (const TensorRef& t : base.tensors)
      if (t.layer < head) frozen_end = t.offset + t.size;
    ASSERT_GT(frozen_end, 0u);
    const bool same_below = std::equal(base.params.begin(), base.params.begin() + frozen_end, ft.model().params.begin());
    EXPECT_EQ(same_below, !whole) << (whole ? "whole network" : "head only");
    EXPECT_GT(ft.held_now(), ft.held_before()) << (whole ? "whole network" : "head only");
  }
}

// The teach gate (TeachGate): training is the same with and without it; at a taught sample the taught model's
// answer holds in full, away from the taught faces the base's answer comes back; the gate survives the file.
TEST(Finetune, TheGateKeepsTheChangeAtTheTaughtFacesAndTheBaseAwayFromThem) {
  Model base = base_that_knows_the_blobs();
  const ReplayBank bank = make_replay_bank(base, blobs({10, 10, 10, 10, 10, 10, 10}, 21));
  const Dataset samples = class_2_taught_as_class_3();
  FinetuneConfig cfg;
  cfg.epochs = 10;
  cfg.lr = 1e-2f;
  cfg.replay = 7;
  FinetuneConfig off = cfg;
  off.gate = 0;
  FineTune gated(base, samples, cfg, &bank), plain(base, samples, off, &bank);
  gated.run();
  plain.run();
  ASSERT_TRUE(gated.model().gate.active());
  EXPECT_FALSE(plain.model().gate.active());
  EXPECT_EQ(gated.model().params, plain.model().params) << "the gate must not change what is learnt";
  EXPECT_EQ(gated.model().gate.keys.size() / gated.model().layers[gated.model().gate.layer].in.size(),
            gated.train_count());
  auto logits = [](Model m, const Dataset& d) {
    Workspace ws;
    ws.reserve(m, static_cast<int>(d.size()));
    load_input(m, ws, d.image(0), static_cast<int>(d.size()));
    const float* z = forward(m, ws, static_cast<int>(d.size()), ForwardOptions{});
    return std::vector<float>(z, z + d.size() * kNumClasses);
  };
  // The training samples themselves: similarity 1, the whole change.
  const Dataset trained = split_samples(samples, cfg.holdout, cfg.seed).train;
  const std::vector<float> at_t = logits(plain.model(), trained), at_g = logits(gated.model(), trained);
  for (size_t i = 0; i < at_t.size(); ++i) EXPECT_NEAR(at_g[i], at_t[i], 1e-3f) << i;
  // Faces unlike the samples (other classes' blobs): the gated answer is nearer the base's than the taught one.
  const Dataset far = blobs({4, 4, 0, 4, 4, 4, 4}, 77);
  const std::vector<float> zb = logits(base, far), zt = logits(plain.model(), far), zg = logits(gated.model(), far);
  double to_base_gated = 0, to_base_taught = 0;
  for (size_t i = 0; i < zb.size(); ++i) {
    to_base_gated += std::abs(zg[i] - zb[i]);
    to_base_taught += std::abs(zt[i] - zb[i]);
    // between the two, face by face: base + g (taught - base) with g in (0, 1]
    EXPECT_LE(std::abs(zg[i] - zb[i]), std::abs(zt[i] - zb[i]) + 1e-4f) << i;
  }
  EXPECT_LT(to_base_gated, 0.8 * to_base_taught) << "far faces must get less of the change";
  // Round trip through the model file: the same gated answers.
  const std::vector<uint8_t> file = gated.save(nlohmann::json::object());
  Model back = load_model(file.data(), file.size());
  ASSERT_TRUE(back.gate.active());
  EXPECT_EQ(back.gate.tau, cfg.gate);
  const std::vector<float> zr = logits(back, far);
  for (size_t i = 0; i < zr.size(); ++i) EXPECT_NEAR(zr[i], zg[i], 2e-3f) << i;  // keys stored as f16
  // Saliency (explain.h) of a gated model: the gated probabilities, the taught head's gradient.
  {
    Explainer eg(gated.model()), et(plain.model());
    ExplainOptions o;
    o.cls = 3;  // the taught class (the two models may not agree on the top one)
    std::vector<float> map_g(kPixels), map_t(kPixels), pg(kNumClasses), pt(kNumClasses);
    eg.explain(far.image(0), o, map_g.data(), pg.data());
    et.explain(far.image(0), o, map_t.data(), pt.data());
    const Model& m = gated.model();
    std::vector<float> want(kNumClasses);
    softmax(zg.data(), 1, kNumClasses, want.data(), m.temperature);
    for (int c = 0; c < kNumClasses; ++c) EXPECT_NEAR(pg[c], want[c], 1e-5f) << c;
    EXPECT_EQ(map_g, map_t);
  }
  // Taught again: the first base stays the gate's base, the new samples join the keys.
  FineTune again(gated.model(), blobs({0, 0, 0, 0, 12, 0, 0}, 41), cfg, &bank);
  again.run();
  EXPECT_EQ(again.model().gate.base, base.params);
  EXPECT_EQ(again.model().gate.keys.size(), 2 * gated.model().gate.keys.size());
}
