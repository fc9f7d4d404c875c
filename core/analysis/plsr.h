// Partial least squares regression (PLS2, NIPALS) computed from streamed second moments, with
// the exact arithmetic of scikit-learn 1.2's PLSRegression (algorithm="nipals",
// deflation_mode="regression", mode A, norm_y_weights=False). Torch-free.
//
// With X [n, p] and Y [n, q] centred (and divided by their ddof = 1 standard deviations when
// `scale`; zero deviations become 1), every quantity NIPALS touches is a product of the scatter
// matrices S_xx = X^T X, S_xy = X^T Y, S_yy = Y^T Y, so the n x (p + q) data never has to exist:
//   power iteration (y_score = Y c, c = e_j for the first non-zero column j of Y_k):
//     w = S_xy c / (c^T S_yy c);  w /= |w| + eps;  t.t = w^T S_xx w;
//     v = S_xy^T w / t.t;  c = v / (v.v + eps);  stop when |w - w_old|^2 < tol (or q == 1)
//   sign: w, v flipped so that w's largest-magnitude entry is positive
//   loadings: p_k = S_xx w / t.t,  q_k = S_xy^T w / t.t
//   deflation (X -= t p^T, Y -= t q^T):  S_xx -= t.t p p^T,  S_xy -= t.t p q^T,  S_yy -= t.t q q^T
//   rotations R = W (P^T W)^+,  coef = R Q^T * y_std (columnwise), so that
//   Y_hat = ((X - x_mean) / x_std) coef + y_mean   (scikit-learn 1.2's coef_, [p, q]).
// explained_variance[k] = t.t |q_k|^2 / trace(S_yy): the fraction of (scaled) Y variance the
// component's rank-one term removes.
// Tolerance: tests match scikit-learn on the same data and tol to 1e-6 relative.
#ifndef GRADZOO_CORE_ANALYSIS_PLSR_H_
#define GRADZOO_CORE_ANALYSIS_PLSR_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace gradzoo::core {

struct PlsrOptions {
  int components = 2;     // >= 1, <= p
  bool scale = false;     // divide X and Y columns by their standard deviations
  int max_iter = 500;     // per component
  double tol = 1e-12;     // on |w - w_old|^2 (scikit-learn's default is 1e-6)
};

struct PlsrResult {
  int p = 0, q = 0;
  int components = 0;  // fitted (fewer than asked when Y's residual vanishes)
  std::vector<double> x_weights;    // [p, components]
  std::vector<double> y_weights;    // [q, components]
  std::vector<double> x_loadings;   // [p, components]
  std::vector<double> y_loadings;   // [q, components]
  std::vector<double> x_rotations;  // [p, components]
  std::vector<double> coefficients; // [p, q]
  std::vector<double> x_mean, y_mean, x_std, y_std;
  std::vector<double> explained_variance;  // [components]
  std::vector<int> iterations;             // [components]
};

// Fits from the joint moments of (X, Y): `cov` is the ddof = 1 covariance of the concatenated
// rows [x, y] ([(p + q)^2], row-major), `mean` their mean ([p + q]), `n` the rows (>= 2).
absl::StatusOr<PlsrResult> PlsrFromMoments(const std::vector<double>& cov,
                                           const std::vector<double>& mean, int p, int q,
                                           int64_t n, const PlsrOptions& options);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_PLSR_H_
