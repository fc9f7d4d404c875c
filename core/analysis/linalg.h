// Streaming second moments, symmetric eigendecomposition, PCA, principal angles and rank
// correlation: the small dense linear algebra under core/analysis.
//
// Everything here is torch-free and Eigen-free in its interface (plain row-major
// std::vector<double>); Eigen and the SIMD kernels stay in linalg.cc. Matrices are row-major.
//
// Formulas (n rows x_1..x_n in R^d):
//   mean       m = (1/n) sum_i x_i
//   covariance C = (1/(n - ddof)) sum_i (x_i - m)(x_i - m)^T   (ddof = 1 as numpy.cov / sklearn)
//   second moment M = (1/n) sum_i x_i x_i^T                     (uncentred)
// The accumulator sums (x_i - c)(x_i - c)^T around a shift c (the mean of the first rows it
// sees) in double, so C does not suffer the cancellation of sum x x^T - n m m^T. Float input is
// multiplied in float32 within blocks of kFloatBlockRows rows and summed across blocks in double:
// relative error of an entry <= ~1e-6 * (sum_i |x_i - c|_j |x_i - c|_k) / |sum ...| in practice;
// tests check 1e-5 relative (Frobenius) against numpy float64.
//
// Thread-safety: MomentAccumulator is thread-compatible (one writer); the free functions are
// pure and thread-safe. AddRows of a large float block runs on LibTorch's intra-op threads.
#ifndef GRADZOO_CORE_ANALYSIS_LINALG_H_
#define GRADZOO_CORE_ANALYSIS_LINALG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gradzoo::core {

// Rows of float input multiplied in float32 before the double sum (see above).
inline constexpr int64_t kFloatBlockRows = 128;

// Streams rows of a d-dimensional variable and keeps enough to produce its mean, covariance
// and uncentred second moment. O(d^2) memory whatever the number of rows.
class MomentAccumulator {
 public:
  // `centered`: false skips the shift (c = 0), which is exact for the uncentred second moment.
  explicit MomentAccumulator(int d, bool centered = true);

  int dim() const { return d_; }
  int64_t count() const { return n_; }
  bool centered() const { return centered_; }

  // Adds n rows, row-major [n, d].
  void AddRows(const double* x, int64_t n);
  void AddRows(const float* x, int64_t n);
  // Adds the already formed sums of another accumulator with the same d and centring.
  void Merge(const MomentAccumulator& other);

  // Mean, [d].
  std::vector<double> Mean() const;
  // Covariance with divisor n - ddof, [d, d]; zeros when n <= ddof.
  std::vector<double> Covariance(int ddof = 1) const;
  // Uncentred second moment (1/n) sum x x^T, [d, d]; zeros when n == 0.
  std::vector<double> SecondMoment() const;
  // Uncentred sum x x^T (not divided), [d, d].
  std::vector<double> SumOfOuterProducts() const;

 private:
  void SetShift(const double* x, int64_t n, int64_t stride);
  void SetShift(const float* x, int64_t n, int64_t stride);

  int d_;
  bool centered_;
  bool shift_set_ = false;
  int64_t n_ = 0;
  std::vector<double> shift_;  // c, [d]
  std::vector<double> sum_;    // sum (x - c), [d]
  std::vector<double> outer_;  // sum (x - c)(x - c)^T, [d, d], full (kept symmetric)
};

// Eigendecomposition of a symmetric d x d matrix (Eigen's SelfAdjointEigenSolver, relative
// accuracy ~1e-14 of the largest |eigenvalue|). Eigenvalues descending; vectors row-major
// [d, d] with row i the unit eigenvector of values[i], signed so that its largest-magnitude
// entry is positive (ties: the first such entry).
struct SymmetricEigen {
  int d = 0;
  std::vector<double> values;
  std::vector<double> vectors;
};
absl::StatusOr<SymmetricEigen> EigenSymmetric(const std::vector<double>& a, int d);

// PCA of a covariance (or second-moment) matrix.
struct Pca {
  int d = 0;
  int64_t n = 0;                                  // rows it came from
  std::vector<double> mean;                       // [d] (zeros for uncentred moments)
  std::vector<double> explained_variance;         // eigenvalues, descending, clamped >= 0
  std::vector<double> explained_variance_ratio;   // / sum of eigenvalues (0s when the sum is 0)
  std::vector<double> components;                 // [d, d] row-major, sign as SymmetricEigen
  double total_variance = 0.0;                    // trace
};
absl::StatusOr<Pca> PcaFromMoments(const std::vector<double>& matrix, int d,
                                   std::vector<double> mean, int64_t n);
// Centred PCA of the accumulated rows (covariance with ddof = 1, as scikit-learn's PCA).
absl::StatusOr<Pca> PcaOf(const MomentAccumulator& acc);
// PCA of n float rows [n, d] in one streaming pass (blocked float kernel, double sums, all
// intra-op threads): what tests/bench times against numpy/torch cov + eigh.
absl::StatusOr<Pca> PcaOfRows(const float* x, int64_t n, int d);

// Smallest k such that the first k eigenvalues hold at least `threshold` of their sum
// (threshold in (0, 1]); 0 when the sum is 0.
int ComponentsForVariance(const std::vector<double>& eigenvalues, double threshold);

// Principal angles between span(U1) and span(U2), U1 [k1, d], U2 [k2, d] with orthonormal rows:
// the singular values s_i of U1 U2^T are cos(theta_i); angles = acos(clamp(s_i, 0, 1)),
// ascending, min(k1, k2) of them. `overlap` = ||U1 U2^T||_F^2 = sum s_i^2.
struct PrincipalAngles {
  std::vector<double> angles;
  std::vector<double> cosines;
  double overlap = 0.0;
};
PrincipalAngles ComputePrincipalAngles(const std::vector<double>& u1, int k1,
                                       const std::vector<double>& u2, int k2, int d);

// Spearman rank correlation: Pearson correlation of the ranks, ties given their average rank
// (as scipy.stats.spearmanr). 0 when either variable has all ranks equal or n < 2.
double SpearmanCorrelation(const std::vector<double>& x, const std::vector<double>& y);
// Pearson correlation; 0 when either variance is 0.
double PearsonCorrelation(const std::vector<double>& x, const std::vector<double>& y);

// Which kernel multiplies float blocks ("avx512", "avx2", "portable"): for logs and benches.
std::string FloatKernelName();
// Tests only: forces a kernel by name (false if this CPU cannot run it). Not thread-safe with
// concurrent AddRows calls.
bool UseFloatKernelForTesting(const std::string& name);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_LINALG_H_
