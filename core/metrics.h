// Classification metrics: confusion matrix, accuracy, per-class precision/recall/F1, macro-F1.
#pragma once
#include <string>
#include <vector>

namespace ferkit {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  long support = 0;  // true examples of the class
};

// Calibration: predictions binned by their confidence (the top probability) into equal-width bins of [0, 1].
struct ReliabilityBin {
  long count = 0;
  double confidence = 0, correct = 0;  // sums over the bin's predictions
};
constexpr int kReliabilityBins = 15;

struct Metrics {
  int classes = 0;
  std::vector<std::vector<long>> confusion;  // [true][predicted]
  double loss = 0;                            // mean cross-entropy (unweighted, no smoothing)
  std::vector<ReliabilityBin> reliability;    // kReliabilityBins, filled by add_confidence
  explicit Metrics(int k = 0)
      : classes(k), confusion(k, std::vector<long>(k, 0)), reliability(kReliabilityBins) {}
  void add(int truth, int predicted) { ++confusion[truth][predicted]; }
  // A prediction's confidence (its top probability) and whether it was right.
  void add_confidence(double confidence, bool correct);
  // Expected calibration error: the count-weighted mean over the bins of |accuracy - mean confidence| (0 when no
  // confidences were added).
  double ece() const;
  long confidences() const;  // predictions added with add_confidence
  long total() const;
  double accuracy() const;
  ClassMetrics per_class(int c) const;
  double macro_f1() const;
  // "true\pred,angry,...\nangry,12,..." with class names.
  std::string confusion_csv(const std::vector<std::string>& names) const;
  // A readable report: accuracy, macro-F1, per-class table, confusion matrix.
  std::string report(const std::vector<std::string>& names) const;
};

}  // namespace ferkit
