#include "core/analysis/plsr.h"

#include <Eigen/Dense>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

namespace {
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<double> ToVector(const RowMatrix& m) {
  return std::vector<double>(m.data(), m.data() + m.size());
}

// Moore-Penrose pseudo-inverse (scipy.linalg.pinv: singular values below max(m, n) * eps * s_max
// are treated as zero).
Eigen::MatrixXd PseudoInverse(const Eigen::MatrixXd& a) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd s = svd.singularValues();
  const double cut = (s.size() ? s(0) : 0.0) * std::max(a.rows(), a.cols()) *
                     std::numeric_limits<double>::epsilon();
  Eigen::VectorXd inv = s;
  for (int i = 0; i < s.size(); ++i) inv(i) = s(i) > cut ? 1.0 / s(i) : 0.0;
  return svd.matrixV() * inv.asDiagonal() * svd.matrixU().transpose();
}
}  // namespace

absl::StatusOr<PlsrResult> PlsrFromMoments(const std::vector<double>& cov,
                                           const std::vector<double>& mean, int p, int q,
                                           int64_t n, const PlsrOptions& o) {
  const int d = p + q;
  if (p < 1 || q < 1) return absl::InvalidArgumentError("PLSR needs at least one X and one Y column");
  if (cov.size() != static_cast<size_t>(d) * d || mean.size() != static_cast<size_t>(d)) {
    return absl::InvalidArgumentError("PLSR moments have the wrong size");
  }
  if (n < 2) return absl::InvalidArgumentError("PLSR needs at least 2 points");
  if (o.components < 1 || o.components > p) {
    return absl::InvalidArgumentError(
        absl::StrCat("components must be in [1, ", p, "] (the source layer's width), got ",
                     o.components));
  }
  if (o.max_iter < 1 || !(o.tol > 0)) {
    return absl::InvalidArgumentError("max_iter must be >= 1 and tol > 0");
  }
  const double eps = std::numeric_limits<double>::epsilon();
  Eigen::Map<const RowMatrix> c(cov.data(), d, d);
  // Scatter matrices of the centred data: S = (n - 1) * cov.
  const double nm1 = static_cast<double>(n - 1);
  Eigen::MatrixXd sxx = nm1 * c.topLeftCorner(p, p);
  Eigen::MatrixXd sxy = nm1 * c.topRightCorner(p, q);
  Eigen::MatrixXd syy = nm1 * c.bottomRightCorner(q, q);

  PlsrResult r;
  r.p = p;
  r.q = q;
  r.x_mean.assign(mean.begin(), mean.begin() + p);
  r.y_mean.assign(mean.begin() + p, mean.end());
  r.x_std.assign(p, 1.0);
  r.y_std.assign(q, 1.0);
  if (o.scale) {
    for (int i = 0; i < p; ++i) {
      const double s = std::sqrt(std::max(0.0, c(i, i)));
      r.x_std[i] = s == 0.0 ? 1.0 : s;
    }
    for (int j = 0; j < q; ++j) {
      const double s = std::sqrt(std::max(0.0, c(p + j, p + j)));
      r.y_std[j] = s == 0.0 ? 1.0 : s;
    }
    Eigen::Map<const Eigen::VectorXd> xs(r.x_std.data(), p), ys(r.y_std.data(), q);
    const Eigen::VectorXd ixs = xs.cwiseInverse(), iys = ys.cwiseInverse();
    sxx = ixs.asDiagonal() * sxx * ixs.asDiagonal();
    sxy = ixs.asDiagonal() * sxy * iys.asDiagonal();
    syy = iys.asDiagonal() * syy * iys.asDiagonal();
  }
  const double y_total = syy.trace();

  const int k_max = o.components;
  Eigen::MatrixXd W(p, k_max), V(q, k_max), P(p, k_max), Q(q, k_max);
  int fitted = 0;
  for (int k = 0; k < k_max; ++k) {
    // Columns of Y_k that are all (numerically) zero are zeroed, as scikit-learn does with
    // |y| < 10 eps everywhere; in moment terms, a diagonal of S_yy below n (10 eps)^2.
    const double zero_col = static_cast<double>(n) * 100.0 * eps * eps;
    for (int j = 0; j < q; ++j) {
      if (syy(j, j) < zero_col) {
        syy.row(j).setZero();
        syy.col(j).setZero();
        sxy.col(j).setZero();
      }
    }
    int first = -1;
    for (int j = 0; j < q && first < 0; ++j) {
      if (syy(j, j) > static_cast<double>(n) * eps * eps) first = j;
    }
    if (first < 0) break;  // Y residual is constant: stop with fewer components
    Eigen::VectorXd cvec = Eigen::VectorXd::Zero(q);
    cvec(first) = 1.0;
    Eigen::VectorXd w, v, w_old;
    int it = 0;
    for (; it < o.max_iter; ++it) {
      w = sxy * cvec / cvec.dot(syy * cvec);
      w /= std::sqrt(w.dot(w)) + eps;
      const double tt = w.dot(sxx * w);
      v = sxy.transpose() * w / tt;
      cvec = v / (v.dot(v) + eps);
      if (it > 0) {
        const Eigen::VectorXd diff = w - w_old;
        if (diff.dot(diff) < o.tol) break;
      }
      if (q == 1) break;
      w_old = w;
    }
    r.iterations.push_back(std::min(it + 1, o.max_iter));
    int arg = 0;
    for (int i = 1; i < p; ++i) {
      if (std::abs(w(i)) > std::abs(w(arg))) arg = i;
    }
    if (w(arg) < 0) {
      w = -w;
      v = -v;
    }
    const double tt = w.dot(sxx * w);
    if (!(tt > 0)) break;  // X residual has no variance along w
    const Eigen::VectorXd pk = sxx * w / tt;
    const Eigen::VectorXd qk = sxy.transpose() * w / tt;
    sxx -= tt * pk * pk.transpose();
    sxy -= tt * pk * qk.transpose();
    syy -= tt * qk * qk.transpose();
    W.col(k) = w;
    V.col(k) = v;
    P.col(k) = pk;
    Q.col(k) = qk;
    r.explained_variance.push_back(y_total > 0 ? tt * qk.squaredNorm() / y_total : 0.0);
    ++fitted;
  }
  if (fitted == 0) {
    return absl::FailedPreconditionError("PLSR: the targets have no variance");
  }
  r.components = fitted;
  W.conservativeResize(p, fitted);
  V.conservativeResize(q, fitted);
  P.conservativeResize(p, fitted);
  Q.conservativeResize(q, fitted);
  const Eigen::MatrixXd R = W * PseudoInverse(P.transpose() * W);
  Eigen::MatrixXd coef = R * Q.transpose();
  for (int j = 0; j < q; ++j) coef.col(j) *= r.y_std[j];
  r.x_weights = ToVector(W);
  r.y_weights = ToVector(V);
  r.x_loadings = ToVector(P);
  r.y_loadings = ToVector(Q);
  r.x_rotations = ToVector(R);
  r.coefficients = ToVector(coef);
  return r;
}

}  // namespace gradzoo::core
