#include "core/embed/probe.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

void Standardise(int dim, std::vector<float>* train_x, std::vector<float>* val_x) {
  const int64_t n = static_cast<int64_t>(train_x->size()) / std::max(dim, 1);
  for (int j = 0; j < dim; ++j) {
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i) mean += (*train_x)[i * dim + j];
    mean /= std::max<int64_t>(n, 1);
    double var = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = (*train_x)[i * dim + j] - mean;
      var += d * d;
    }
    const double sd = std::sqrt(var / std::max<int64_t>(n, 1));
    const double scale = sd < 1e-8 ? 1.0 : 1.0 / sd;
    for (std::vector<float>* v : {train_x, val_x}) {
      const int64_t m = static_cast<int64_t>(v->size()) / std::max(dim, 1);
      for (int64_t i = 0; i < m; ++i) {
        float& x = (*v)[i * dim + j];
        x = static_cast<float>((x - mean) * scale);
      }
    }
  }
}

double Cosine(const float* a, const float* b, int dim) {
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (int i = 0; i < dim; ++i) {
    ab += double{a[i]} * b[i];
    aa += double{a[i]} * a[i];
    bb += double{b[i]} * b[i];
  }
  if (aa <= 0.0 || bb <= 0.0) return 0.0;
  return ab / std::sqrt(aa * bb);
}

namespace {

// Softmax regression by Nesterov-accelerated gradient descent; returns, per validation row,
// whether it is classified right.
std::vector<uint8_t> LinearProbe(const ProbeData& d, const std::vector<float>& tx,
                                 const std::vector<float>& vx, double l2, int iterations) {
  const int dim = d.dim, c = d.classes;
  const int64_t n = static_cast<int64_t>(d.train_y.size());
  const int stride = dim + 1;  // weights then bias per class
  std::vector<double> w(static_cast<size_t>(c) * stride, 0.0), v(w.size(), 0.0), look(w.size());
  std::vector<double> grad(w.size()), logits(c);
  const double lr = 0.5, momentum = 0.9;
  for (int it = 0; it < iterations; ++it) {
    for (size_t i = 0; i < w.size(); ++i) look[i] = w[i] + momentum * v[i];
    std::fill(grad.begin(), grad.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const float* f = tx.data() + i * dim;
      double mx = -1e300;
      for (int k = 0; k < c; ++k) {
        const double* wk = look.data() + static_cast<size_t>(k) * stride;
        double z = wk[dim];
        for (int j = 0; j < dim; ++j) z += wk[j] * f[j];
        logits[k] = z;
        mx = std::max(mx, z);
      }
      double sum = 0.0;
      for (int k = 0; k < c; ++k) sum += (logits[k] = std::exp(logits[k] - mx));
      for (int k = 0; k < c; ++k) {
        const double p = logits[k] / sum - (k == d.train_y[i] ? 1.0 : 0.0);
        double* gk = grad.data() + static_cast<size_t>(k) * stride;
        for (int j = 0; j < dim; ++j) gk[j] += p * f[j];
        gk[dim] += p;
      }
    }
    for (int k = 0; k < c; ++k) {
      for (int j = 0; j < stride; ++j) {
        const size_t idx = static_cast<size_t>(k) * stride + j;
        grad[idx] /= static_cast<double>(n);
        if (j < dim) grad[idx] += l2 * look[idx];
      }
    }
    for (size_t i = 0; i < w.size(); ++i) {
      v[i] = momentum * v[i] - lr * grad[i];
      w[i] += v[i];
    }
  }
  const int64_t m = static_cast<int64_t>(d.val_y.size());
  std::vector<uint8_t> correct(m, 0);
  for (int64_t i = 0; i < m; ++i) {
    const float* f = vx.data() + i * dim;
    int best = 0;
    double best_z = -1e300;
    for (int k = 0; k < c; ++k) {
      const double* wk = w.data() + static_cast<size_t>(k) * stride;
      double z = wk[dim];
      for (int j = 0; j < dim; ++j) z += wk[j] * f[j];
      if (z > best_z) {
        best_z = z;
        best = k;
      }
    }
    correct[i] = best == d.val_y[i];
  }
  return correct;
}

// Per validation row, whether its k cosine-nearest training rows vote for its class.
std::vector<uint8_t> KnnProbe(const ProbeData& d, const std::vector<float>& tx,
                              const std::vector<float>& vx, int k) {
  const int64_t n = static_cast<int64_t>(d.train_y.size());
  const int64_t m = static_cast<int64_t>(d.val_y.size());
  const int kk = static_cast<int>(std::min<int64_t>(k, n));
  std::vector<uint8_t> correct(m, 0);
  std::vector<std::pair<double, int64_t>> sims(n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < n; ++t) {
      sims[t] = {-Cosine(vx.data() + i * d.dim, tx.data() + t * d.dim, d.dim), t};
    }
    std::partial_sort(sims.begin(), sims.begin() + kk, sims.end());
    std::vector<int> votes(d.classes, 0);
    for (int r = 0; r < kk; ++r) ++votes[d.train_y[sims[r].second]];
    int best = 0;
    for (int c = 1; c < d.classes; ++c) {
      if (votes[c] > votes[best]) best = c;
    }
    correct[i] = best == d.val_y[i];
  }
  return correct;
}

double Fraction(const std::vector<uint8_t>& correct) {
  const int64_t right = std::accumulate(correct.begin(), correct.end(), int64_t{0});
  return static_cast<double>(right) / static_cast<double>(correct.size());
}

double Separation(const ProbeData& d, const std::vector<float>& tx, const std::vector<float>& vx) {
  const int dim = d.dim, c = d.classes;
  const int64_t n = static_cast<int64_t>(d.train_y.size());
  std::vector<double> centroid(static_cast<size_t>(c) * dim, 0.0), mean(dim, 0.0);
  std::vector<int64_t> count(c, 0);
  for (int64_t i = 0; i < n; ++i) {
    ++count[d.train_y[i]];
    double* ci = centroid.data() + static_cast<size_t>(d.train_y[i]) * dim;
    for (int j = 0; j < dim; ++j) ci[j] += tx[i * dim + j];
  }
  for (int k = 0; k < c; ++k) {
    for (int j = 0; j < dim; ++j) {
      double& v = centroid[static_cast<size_t>(k) * dim + j];
      v /= static_cast<double>(std::max<int64_t>(count[k], 1));
      mean[j] += v * static_cast<double>(count[k]) / static_cast<double>(n);
    }
  }
  double between = 0.0;
  for (int k = 0; k < c; ++k) {
    for (int j = 0; j < dim; ++j) {
      const double diff = centroid[static_cast<size_t>(k) * dim + j] - mean[j];
      between += static_cast<double>(count[k]) / static_cast<double>(n) * diff * diff;
    }
  }
  double within = 0.0;
  int64_t rows = 0;
  for (size_t i = 0; i < d.val_y.size(); ++i) {
    const int k = d.val_y[i];
    if (count[k] == 0) continue;
    ++rows;
    for (int j = 0; j < dim; ++j) {
      const double diff = vx[i * dim + j] - centroid[static_cast<size_t>(k) * dim + j];
      within += diff * diff;
    }
  }
  if (rows == 0) return 0.0;
  within /= static_cast<double>(rows);
  if (within > 0.0) return between / within;
  return between > 0.0 ? std::numeric_limits<double>::infinity() : 0.0;
}

}  // namespace

absl::StatusOr<ProbeAccuracy> RunProbes(const ProbeData& data, int k, double l2, int iterations) {
  const int64_t n = static_cast<int64_t>(data.train_y.size());
  const int64_t m = static_cast<int64_t>(data.val_y.size());
  if (data.dim < 1 || n < 1 || m < 1 || data.classes < 1) {
    return absl::InvalidArgumentError(
        "a probe needs training and validation models with at least one feature");
  }
  if (static_cast<int64_t>(data.train_x.size()) != n * data.dim ||
      static_cast<int64_t>(data.val_x.size()) != m * data.dim) {
    return absl::InvalidArgumentError("probe features do not match the label counts");
  }
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be >= 1, got ", k));
  for (const std::vector<int>* ys : {&data.train_y, &data.val_y}) {
    for (int y : *ys) {
      if (y < 0 || y >= data.classes) return absl::InvalidArgumentError("probe label out of range");
    }
  }
  std::vector<float> tx = data.train_x, vx = data.val_x;
  Standardise(data.dim, &tx, &vx);
  ProbeAccuracy acc;
  acc.linear_correct = LinearProbe(data, tx, vx, l2, iterations);
  acc.knn_correct = KnnProbe(data, tx, vx, k);
  acc.linear = Fraction(acc.linear_correct);
  acc.knn = Fraction(acc.knn_correct);
  acc.separation = Separation(data, tx, vx);
  return acc;
}

double McNemarP(int64_t only_a, int64_t only_b) {
  only_a = std::max<int64_t>(only_a, 0);  // counts; nothing below 0 is meaningful
  only_b = std::max<int64_t>(only_b, 0);
  const int64_t n = only_a + only_b;
  if (n == 0) return 1.0;
  // 2 P(X <= min) for X ~ Binomial(n, 1/2): terms C(n, i) / 2^n from their logs, by the
  // recurrence log C(n, i) = log C(n, i - 1) + log((n - i + 1) / i) (no std::lgamma, which
  // writes the global signgam), summed smallest first.
  const int64_t lo = std::min(only_a, only_b);
  const double log_half_n = static_cast<double>(n) * std::log(0.5);
  double log_c = 0.0, tail = 0.0;
  for (int64_t i = 0; i <= lo; ++i) {
    if (i > 0) log_c += std::log(static_cast<double>(n - i + 1) / static_cast<double>(i));
    tail += std::exp(log_c + log_half_n);
  }
  return std::min(1.0, 2.0 * tail);
}

absl::StatusOr<double> PairedP(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paired test: ", a.size(), " against ", b.size(), " rows (score the same rows)"));
  }
  int64_t only_a = 0, only_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    only_a += a[i] && !b[i];
    only_b += b[i] && !a[i];
  }
  return McNemarP(only_a, only_b);
}

}  // namespace gradzoo::core
