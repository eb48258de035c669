// Classification metrics: confusion matrix, accuracy, per-class precision/recall/F1, macro-F1.
#pragma once
#include <string>
#include <vector>

namespace ferkit {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  long support = 0;  // true examples of the class
};

struct Metrics {
  int classes = 0;
  std::vector<std::vector<long>> confusion;  // [true][predicted]
  double loss = 0;                            // mean cross-entropy (unweighted, no smoothing)
  explicit Metrics(int k = 0) : classes(k), confusion(k, std::vector<long>(k, 0)) {}
  void add(int truth, int predicted) { ++confusion[truth][predicted]; }
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
