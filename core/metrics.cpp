#include "metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace ferkit {

long Metrics::total() const {
  long n = 0;
  for (const auto& row : confusion)
    for (long v : row) n += v;
  return n;
}

double Metrics::accuracy() const {
  long hit = 0;
  for (int c = 0; c < classes; ++c) hit += confusion[c][c];
  const long n = total();
  return n ? static_cast<double>(hit) / n : 0.0;
}

ClassMetrics Metrics::per_class(int c) const {
  ClassMetrics m;
  long predicted = 0;
  for (int t = 0; t < classes; ++t) predicted += confusion[t][c];
  for (int p = 0; p < classes; ++p) m.support += confusion[c][p];
  const double tp = static_cast<double>(confusion[c][c]);
  m.precision = predicted ? tp / predicted : 0.0;
  m.recall = m.support ? tp / m.support : 0.0;
  m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
  return m;
}

double Metrics::macro_f1() const {
  double s = 0;
  for (int c = 0; c < classes; ++c) s += per_class(c).f1;
  return classes ? s / classes : 0.0;
}

std::string Metrics::confusion_csv(const std::vector<std::string>& names) const {
  std::ostringstream o;
  o << "true\\predicted";
  for (int c = 0; c < classes; ++c) o << ',' << names[c];
  o << '\n';
  for (int t = 0; t < classes; ++t) {
    o << names[t];
    for (int p = 0; p < classes; ++p) o << ',' << confusion[t][p];
    o << '\n';
  }
  return o.str();
}

void Metrics::add_confidence(double confidence, bool correct) {
  const int b = std::clamp(static_cast<int>(confidence * kReliabilityBins), 0, kReliabilityBins - 1);
  ReliabilityBin& bin = reliability[b];
  ++bin.count;
  bin.confidence += confidence;
  bin.correct += correct ? 1.0 : 0.0;
}

long Metrics::confidences() const {
  long n = 0;
  for (const ReliabilityBin& b : reliability) n += b.count;
  return n;
}

double Metrics::ece() const {
  const long n = confidences();
  if (n == 0) return 0.0;
  double e = 0;
  for (const ReliabilityBin& b : reliability)
    if (b.count) e += std::fabs(b.correct - b.confidence) / static_cast<double>(n);  // count * |acc - conf| / n
  return e;
}

std::string Metrics::report(const std::vector<std::string>& names) const {
  std::ostringstream o;
  char buf[256];
  std::snprintf(buf, sizeof buf, "images %ld  accuracy %.2f%%  macro-F1 %.4f  loss %.4f", total(), 100 * accuracy(),
                macro_f1(), loss);
  o << buf;
  if (confidences()) {
    std::snprintf(buf, sizeof buf, "  calibration error (ECE) %.4f", ece());
    o << buf;
  }
  o << '\n';
  o << "class        precision  recall     f1  support\n";
  for (int c = 0; c < classes; ++c) {
    ClassMetrics m = per_class(c);
    std::snprintf(buf, sizeof buf, "%-12s %9.4f %7.4f %6.4f %8ld\n", names[c].c_str(), m.precision, m.recall, m.f1,
                  m.support);
    o << buf;
  }
  o << "confusion (rows: true, columns: predicted)\n" << std::string(12, ' ');
  for (int c = 0; c < classes; ++c) {
    std::snprintf(buf, sizeof buf, "%9.8s", names[c].c_str());
    o << buf;
  }
  o << '\n';
  for (int t = 0; t < classes; ++t) {
    std::snprintf(buf, sizeof buf, "%-12s", names[t].c_str());
    o << buf;
    for (int p = 0; p < classes; ++p) {
      std::snprintf(buf, sizeof buf, "%9ld", confusion[t][p]);
      o << buf;
    }
    o << '\n';
  }
  return o.str();
}

}  // namespace ferkit
