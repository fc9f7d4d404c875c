// Probes of a representation: how well a label can be read off feature vectors.
//
// Both probes fit on the training rows and score on the validation rows. Features are first
// standardised with the training rows' per-column mean and standard deviation (columns with
// std < 1e-8 are only centred), so every representation is treated the same way.
//
//   Linear probe: multinomial logistic regression (softmax) on the standardised features with
//     an L2 penalty, loss = mean_i -log softmax(W f_i + b)_{y_i} + (l2 / 2) |W|_F^2, minimised
//     by full-batch gradient descent with Nesterov momentum (lr 0.5 / momentum 0.9,
//     `iterations` steps from W = 0, b = 0: deterministic). Accuracy = fraction of validation
//     rows whose argmax class (lowest class index on ties) is the true class.
//   k-NN probe: cosine similarity between standardised vectors, the k most similar training
//     rows vote (one vote each); ties between classes go to the lowest class id (what sklearn's
//     majority vote does). Equal similarities are ordered by training row index.
//   Separation: how far apart the classes sit relative to how tightly held-out rows gather
//     around their class, a threshold-free number that keeps moving where the accuracies have
//     saturated near 1. With mu_c the standardised training rows' mean of class c, p_c the
//     fraction of training rows in class c and mu = sum_c p_c mu_c (0: the features are
//     centred on the training rows),
//       separation = sum_c p_c |mu_c - mu|^2 / mean_i |v_i - mu_{y_i}|^2
//     over the validation rows v_i whose class has training rows (0 when there are none or
//     every class has the same centroid; +infinity when every such row sits on its centroid
//     and the centroids differ). The
//     numerator is the between-class variance; the denominator is the held-out within-class
//     variance, which also counts the error of the training centroids.
//
// sklearn's LogisticRegression(C = 1 / (l2 * n_train)) and KNeighborsClassifier(metric="cosine")
// on the same standardised features, and numpy for the separation, are the references in
// tests/core/embed_test.cc.
//
// Torch-free, pure C++; thread-compatible.
#ifndef GRADZOO_CORE_EMBED_PROBE_H_
#define GRADZOO_CORE_EMBED_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gradzoo::core {

struct ProbeData {
  int dim = 0;
  std::vector<float> train_x;  // [n_train, dim]
  std::vector<int> train_y;    // class ids in [0, classes)
  std::vector<float> val_x;    // [n_val, dim]
  std::vector<int> val_y;
  int classes = 0;
};

struct ProbeAccuracy {
  double linear = 0.0;
  double knn = 0.0;
  double separation = 0.0;
  // Per validation row (ProbeData order): 1 where that probe classifies it right. Two
  // representations scored on the same rows are compared with PairedP.
  std::vector<uint8_t> linear_correct, knn_correct;
};

// INVALID_ARGUMENT for inconsistent sizes, no training or validation rows, or k < 1.
absl::StatusOr<ProbeAccuracy> RunProbes(const ProbeData& data, int k, double l2 = 1e-3,
                                        int iterations = 500);

// Exact two-sided McNemar test: of the rows on which two classifiers disagree, `only_a` are
// right only for the first, `only_b` only for the second. Under "equally accurate" each such
// row goes either way with probability 1/2, so p = min(1, 2 P(X <= min(only_a, only_b))) with
// X ~ Binomial(only_a + only_b, 1/2); 1 when they never disagree. A small p says the
// accuracies differ by more than which rows happened to be held out explains.
double McNemarP(int64_t only_a, int64_t only_b);
// McNemarP of two per-row correctness vectors (ProbeAccuracy::linear_correct, knn_correct) of
// the same rows; INVALID_ARGUMENT when their lengths differ.
absl::StatusOr<double> PairedP(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

// Standardises both row sets in place with the training rows' column statistics.
void Standardise(int dim, std::vector<float>* train_x, std::vector<float>* val_x);

// Cosine similarity a.b / (|a| |b|) (0 when either norm is 0), in double.
double Cosine(const float* a, const float* b, int dim);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_EMBED_PROBE_H_
