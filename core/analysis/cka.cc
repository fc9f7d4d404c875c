#include "core/analysis/cka.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

namespace {
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace

CkaAccumulator::CkaAccumulator(std::vector<int> block_widths) : widths_(std::move(block_widths)) {
  for (int w : widths_) {
    offsets_.push_back(total_);
    total_ += w;
  }
  const size_t b = widths_.size();
  shift_.assign(total_, 0.0);
  sum_.assign(total_, 0.0);
  outer_.assign(static_cast<size_t>(total_) * total_, 0.0);
  sq_.assign(b, 0.0);
  sq_sq_.assign(b * b, 0.0);
  sq_z_.assign(b * total_, 0.0);
}

void CkaAccumulator::AddRows(const double* rows, int64_t m) {
  if (m <= 0 || total_ == 0) return;
  const int b = static_cast<int>(widths_.size());
  Eigen::Map<const RowMatrix> raw(rows, m, total_);
  if (!shift_set_) {
    const int64_t k = std::min<int64_t>(m, 1024);
    Eigen::Map<Eigen::RowVectorXd>(shift_.data(), total_) = raw.topRows(k).colwise().mean();
    shift_set_ = true;
  }
  const RowMatrix z = raw.rowwise() - Eigen::Map<const Eigen::RowVectorXd>(shift_.data(), total_);
  Eigen::Map<Eigen::RowVectorXd>(sum_.data(), total_) += z.colwise().sum();
  Eigen::Map<RowMatrix>(outer_.data(), total_, total_).noalias() += z.transpose() * z;
  RowMatrix a(m, b);  // squared norm of each block per row
  for (int u = 0; u < b; ++u) a.col(u) = z.middleCols(offsets_[u], widths_[u]).rowwise().squaredNorm();
  Eigen::Map<Eigen::RowVectorXd>(sq_.data(), b) += a.colwise().sum();
  Eigen::Map<RowMatrix>(sq_sq_.data(), b, b).noalias() += a.transpose() * a;
  Eigen::Map<RowMatrix>(sq_z_.data(), b, total_).noalias() += a.transpose() * z;
  n_ += m;
}

double CkaAccumulator::HsicU(int u, int v) const {
  const double n = static_cast<double>(n_);
  const int b = static_cast<int>(widths_.size());
  const int ou = offsets_[u], ov = offsets_[v], wu = widths_[u], wv = widths_[v];
  Eigen::Map<const RowMatrix> outer(outer_.data(), total_, total_);
  Eigen::Map<const RowMatrix> sq_z(sq_z_.data(), b, total_);
  const Eigen::MatrixXd cxy = outer.block(ou, ov, wu, wv);
  const Eigen::VectorXd sx = Eigen::Map<const Eigen::VectorXd>(sum_.data() + ou, wu);
  const Eigen::VectorXd sy = Eigen::Map<const Eigen::VectorXd>(sum_.data() + ov, wv);
  const double sum_ab = sq_sq_[static_cast<size_t>(u) * b + v];
  const double tr_kl = cxy.squaredNorm() - sum_ab;
  const double k1 = sx.squaredNorm() - sq_[u];
  const double l1 = sy.squaredNorm() - sq_[v];
  const Eigen::VectorXd a_y = sq_z.row(u).segment(ov, wv).transpose();  // sum a_i y_i
  const Eigen::VectorXd b_x = sq_z.row(v).segment(ou, wu).transpose();  // sum b_i x_i
  const double kl1 = sx.dot(cxy * sy) - a_y.dot(sy) - b_x.dot(sx) + sum_ab;
  return (tr_kl + k1 * l1 / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl1) / (n * (n - 3));
}

double CkaAccumulator::Biased(int u, int v) const {
  const double n = static_cast<double>(n_);
  Eigen::Map<const RowMatrix> outer(outer_.data(), total_, total_);
  Eigen::Map<const Eigen::VectorXd> s(sum_.data(), total_);
  auto centred = [&](int i, int j) -> Eigen::MatrixXd {
    const int oi = offsets_[i], oj = offsets_[j];
    return outer.block(oi, oj, widths_[i], widths_[j]) -
           s.segment(oi, widths_[i]) * s.segment(oj, widths_[j]).transpose() / n;
  };
  const double xy = centred(u, v).squaredNorm();
  const double xx = centred(u, u).norm(), yy = centred(v, v).norm();
  if (!(xx > 0) || !(yy > 0)) return 0.0;
  return std::clamp(xy / (xx * yy), 0.0, 1.0);
}

CkaValue CkaAccumulator::Cka(int u, int v) const {
  CkaValue r;
  if (u < 0 || v < 0 || u >= blocks() || v >= blocks()) {
    r.degenerate = true;
    r.detail = "no such representation";
    return r;
  }
  if (n_ < 4) {
    r.degenerate = true;
    r.detail = absl::StrCat("the unbiased estimator needs at least 4 points, got ", n_);
    return r;
  }
  r.biased_cka = Biased(u, v);
  const double kk = HsicU(u, u), ll = HsicU(v, v);
  if (!(kk > 0) || !(ll > 0)) {
    r.degenerate = true;
    r.detail = absl::StrCat("representation ", !(kk > 0) ? "a" : "b",
                            " has no unbiased variance (HSIC_u <= 0); it is (nearly) constant");
    return r;
  }
  r.cka = u == v ? 1.0 : HsicU(u, v) / std::sqrt(kk * ll);
  return r;
}

}  // namespace gradzoo::core
