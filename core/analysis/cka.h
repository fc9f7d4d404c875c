// Linear CKA with the unbiased HSIC estimator (Song et al. 2012; Nguyen, Raghu & Kornblith
// 2021), streamed over points without the n x n Gram matrices. Torch-free.
//
// For representations x_i in R^p, y_i in R^q (i = 1..n, n >= 4), K = X X^T, L = Y Y^T and
// K~, L~ the same with zeroed diagonals:
//   HSIC_u(K, L) = [ tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1 ]
//                  / (n (n-3))
//   CKA_u = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))
// Every term is a moment of the rows (a_i = |x_i|^2, b_i = |y_i|^2, s_x = sum x_i):
//   tr(K~ L~)     = ||sum x_i y_i^T||_F^2 - sum a_i b_i
//   1^T K~ 1      = |s_x|^2 - sum a_i
//   1^T K~ L~ 1   = s_x^T (sum x_i y_i^T) s_y - (sum a_i y_i).s_y - (sum b_i x_i).s_x + sum a_i b_i
// so one pass accumulates O((p + q)^2) numbers. HSIC_u is invariant to shifting x or y by a
// constant, so features are shifted by the mean of the first rows seen (less cancellation).
// Also reported: the usual biased linear CKA on centred features,
//   ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F).
// Known answers (tests): identical representations give exactly 1; independent ones give
// values near 0 (E[HSIC_u] = 0) even for small n, where the biased CKA is far from 0.
// Degenerate (flagged, cka = 0): n < 4, or HSIC_u(K, K) <= 0 or HSIC_u(L, L) <= 0 (no
// unbiased variance, e.g. a constant representation).
#ifndef GRADZOO_CORE_ANALYSIS_CKA_H_
#define GRADZOO_CORE_ANALYSIS_CKA_H_

#include <cstdint>
#include <string>
#include <vector>

namespace gradzoo::core {

struct CkaValue {
  double cka = 0.0;         // unbiased
  double biased_cka = 0.0;  // 0 when undefined
  bool degenerate = false;
  std::string detail;
};

// Accumulates rows made of consecutive blocks (representations) of the given widths, and
// answers CKA between any two blocks. Memory O(P^2), P = sum of widths. Thread-compatible.
class CkaAccumulator {
 public:
  explicit CkaAccumulator(std::vector<int> block_widths);

  // Adds m rows, row-major [m, P].
  void AddRows(const double* rows, int64_t m);
  int64_t count() const { return n_; }
  int blocks() const { return static_cast<int>(widths_.size()); }
  // CKA between blocks u and v (u == v gives 1 unless degenerate).
  CkaValue Cka(int u, int v) const;

 private:
  double HsicU(int u, int v) const;
  double Biased(int u, int v) const;

  std::vector<int> widths_;
  std::vector<int> offsets_;
  int total_ = 0;
  int64_t n_ = 0;
  bool shift_set_ = false;
  std::vector<double> shift_;   // [P]
  std::vector<double> sum_;     // sum z, [P]
  std::vector<double> outer_;   // sum z z^T, [P, P]
  std::vector<double> sq_;      // per block: sum a^(u), [B]
  std::vector<double> sq_sq_;   // sum a^(u) a^(v), [B, B]
  std::vector<double> sq_z_;    // sum a^(u) z, [B, P]
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_CKA_H_
