#include "core/analysis/linalg.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// ---------------------------------------------------------------------------------------------
// Float block kernels: c[i, j] = sum_r x[r, i] x[r, j] for j >= i (at least; entries below the
// diagonal inside a tile are written too and ignored by the caller). x is row-major [m, d], c is
// row-major [d, d] and is overwritten where written.
//
// The tile is 4 rows of c by 32 (AVX-512) or 16 (AVX2) columns held in registers while the m
// rows stream through: per row, two vector loads of x[r, j0:j0+w], four broadcasts of
// x[r, i0:i0+4] and 8 FMAs. Selected at run time, so the build needs no -march flag.
// ---------------------------------------------------------------------------------------------

__attribute__((target("avx512f"))) void OuterBlockAvx512(const float* x, int64_t m, int d,
                                                         float* c) {
  for (int j0 = 0; j0 < d; j0 += 32) {
    const int jw = std::min(32, d - j0);
    const __mmask16 k0 = jw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << jw) - 1);
    const __mmask16 k1 =
        jw <= 16 ? 0 : (jw >= 32 ? 0xFFFF : static_cast<__mmask16>((1u << (jw - 16)) - 1));
    const int i_end = std::min(d, j0 + jw);
    for (int i0 = 0; i0 < i_end; i0 += 4) {
      const int i1 = std::min(i0 + 1, d - 1), i2 = std::min(i0 + 2, d - 1),
                i3 = std::min(i0 + 3, d - 1);
      __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps();
      __m512 a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
      __m512 a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps();
      __m512 a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps();
      const float* row = x;
      for (int64_t r = 0; r < m; ++r, row += d) {
        const __m512 v0 = _mm512_maskz_loadu_ps(k0, row + j0);
        const __m512 v1 = _mm512_maskz_loadu_ps(k1, row + j0 + 16);
        const __m512 b0 = _mm512_set1_ps(row[i0]);
        const __m512 b1 = _mm512_set1_ps(row[i1]);
        const __m512 b2 = _mm512_set1_ps(row[i2]);
        const __m512 b3 = _mm512_set1_ps(row[i3]);
        a00 = _mm512_fmadd_ps(b0, v0, a00);
        a01 = _mm512_fmadd_ps(b0, v1, a01);
        a10 = _mm512_fmadd_ps(b1, v0, a10);
        a11 = _mm512_fmadd_ps(b1, v1, a11);
        a20 = _mm512_fmadd_ps(b2, v0, a20);
        a21 = _mm512_fmadd_ps(b2, v1, a21);
        a30 = _mm512_fmadd_ps(b3, v0, a30);
        a31 = _mm512_fmadd_ps(b3, v1, a31);
      }
      const __m512 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      for (int k = 0; k < 4 && i0 + k < d; ++k) {
        _mm512_mask_storeu_ps(c + static_cast<int64_t>(i0 + k) * d + j0, k0, acc[k][0]);
        _mm512_mask_storeu_ps(c + static_cast<int64_t>(i0 + k) * d + j0 + 16, k1, acc[k][1]);
      }
    }
  }
}

__attribute__((target("avx2,fma"))) void OuterBlockAvx2(const float* x, int64_t m, int d,
                                                        float* c) {
  alignas(32) static const int kLanes[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  const __m256i lanes = _mm256_load_si256(reinterpret_cast<const __m256i*>(kLanes));
  for (int j0 = 0; j0 < d; j0 += 16) {
    const int jw = std::min(16, d - j0);
    const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(std::min(jw, 8)), lanes);
    const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(std::max(jw - 8, 0)), lanes);
    const int i_end = std::min(d, j0 + jw);
    for (int i0 = 0; i0 < i_end; i0 += 4) {
      const int i1 = std::min(i0 + 1, d - 1), i2 = std::min(i0 + 2, d - 1),
                i3 = std::min(i0 + 3, d - 1);
      __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();
      __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
      __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();
      __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
      const float* row = x;
      for (int64_t r = 0; r < m; ++r, row += d) {
        const __m256 v0 = _mm256_maskload_ps(row + j0, k0);
        const __m256 v1 = _mm256_maskload_ps(row + j0 + 8, k1);
        const __m256 b0 = _mm256_broadcast_ss(row + i0);
        const __m256 b1 = _mm256_broadcast_ss(row + i1);
        const __m256 b2 = _mm256_broadcast_ss(row + i2);
        const __m256 b3 = _mm256_broadcast_ss(row + i3);
        a00 = _mm256_fmadd_ps(b0, v0, a00);
        a01 = _mm256_fmadd_ps(b0, v1, a01);
        a10 = _mm256_fmadd_ps(b1, v0, a10);
        a11 = _mm256_fmadd_ps(b1, v1, a11);
        a20 = _mm256_fmadd_ps(b2, v0, a20);
        a21 = _mm256_fmadd_ps(b2, v1, a21);
        a30 = _mm256_fmadd_ps(b3, v0, a30);
        a31 = _mm256_fmadd_ps(b3, v1, a31);
      }
      const __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      for (int k = 0; k < 4 && i0 + k < d; ++k) {
        _mm256_maskstore_ps(c + static_cast<int64_t>(i0 + k) * d + j0, k0, acc[k][0]);
        _mm256_maskstore_ps(c + static_cast<int64_t>(i0 + k) * d + j0 + 8, k1, acc[k][1]);
      }
    }
  }
}

void OuterBlockPortable(const float* x, int64_t m, int d, float* c) {
  for (int i = 0; i < d; ++i) {
    float* ci = c + static_cast<int64_t>(i) * d;
    std::fill(ci + i, ci + d, 0.0f);
    const float* row = x;
    for (int64_t r = 0; r < m; ++r, row += d) {
      const float a = row[i];
      for (int j = i; j < d; ++j) ci[j] += a * row[j];
    }
  }
}

using OuterBlockFn = void (*)(const float*, int64_t, int, float*);

struct FloatKernel {
  OuterBlockFn fn;
  const char* name;
};

FloatKernel PickKernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {OuterBlockAvx512, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {OuterBlockAvx2, "avx2"};
  }
  return {OuterBlockPortable, "portable"};
}

FloatKernel& Kernel() {
  static FloatKernel k = PickKernel();
  return k;
}

// Partial sums of a row range: sum (x - c) and the upper triangle of sum (x - c)(x - c)^T.
struct Partial {
  std::vector<double> sum;
  std::vector<double> outer;
};

void AccumulateFloatRange(const float* x, int64_t n, int d, const std::vector<double>& shift,
                          Partial* p) {
  std::vector<float> block(static_cast<size_t>(kFloatBlockRows) * d);
  std::vector<float> c(static_cast<size_t>(d) * d);
  std::vector<float> shift_f(shift.begin(), shift.end());
  const OuterBlockFn fn = Kernel().fn;
  for (int64_t start = 0; start < n; start += kFloatBlockRows) {
    const int64_t m = std::min(kFloatBlockRows, n - start);
    const float* src = x + start * d;
    for (int64_t r = 0; r < m; ++r) {
      float* dst = block.data() + r * d;
      const float* s = src + r * d;
      for (int j = 0; j < d; ++j) {
        dst[j] = s[j] - shift_f[j];
      }
    }
    // Column sums in double from the float block (exactly the values multiplied).
    for (int64_t r = 0; r < m; ++r) {
      const float* row = block.data() + r * d;
      for (int j = 0; j < d; ++j) p->sum[j] += row[j];
    }
    fn(block.data(), m, d, c.data());
    for (int i = 0; i < d; ++i) {
      const float* ci = c.data() + static_cast<int64_t>(i) * d;
      double* oi = p->outer.data() + static_cast<int64_t>(i) * d;
      for (int j = i; j < d; ++j) oi[j] += ci[j];
    }
  }
}

}  // namespace

std::string FloatKernelName() { return Kernel().name; }

bool UseFloatKernelForTesting(const std::string& name) {
  __builtin_cpu_init();
  if (name == "avx512" && __builtin_cpu_supports("avx512f")) {
    Kernel() = {OuterBlockAvx512, "avx512"};
  } else if (name == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    Kernel() = {OuterBlockAvx2, "avx2"};
  } else if (name == "portable") {
    Kernel() = {OuterBlockPortable, "portable"};
  } else {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// MomentAccumulator
// ---------------------------------------------------------------------------------------------

MomentAccumulator::MomentAccumulator(int d, bool centered)
    : d_(d),
      centered_(centered),
      shift_(d, 0.0),
      sum_(d, 0.0),
      outer_(static_cast<size_t>(d) * d, 0.0) {
  if (!centered_) shift_set_ = true;
}

void MomentAccumulator::SetShift(const double* x, int64_t n, int64_t stride) {
  const int64_t m = std::min<int64_t>(n, 1024);
  for (int64_t r = 0; r < m; ++r) {
    for (int j = 0; j < d_; ++j) shift_[j] += x[r * stride + j];
  }
  for (int j = 0; j < d_; ++j) shift_[j] /= static_cast<double>(m);
  shift_set_ = true;
}

void MomentAccumulator::SetShift(const float* x, int64_t n, int64_t stride) {
  const int64_t m = std::min<int64_t>(n, 1024);
  for (int64_t r = 0; r < m; ++r) {
    for (int j = 0; j < d_; ++j) shift_[j] += x[r * stride + j];
  }
  // Rounded to float so that the float kernel subtracts exactly this shift.
  for (int j = 0; j < d_; ++j) shift_[j] = static_cast<float>(shift_[j] / static_cast<double>(m));
  shift_set_ = true;
}

void MomentAccumulator::AddRows(const double* x, int64_t n) {
  if (n <= 0 || d_ == 0) return;
  if (!shift_set_) SetShift(x, n, d_);
  Eigen::Map<const RowMatrix> xm(x, n, d_);
  Eigen::Map<const Eigen::RowVectorXd> c(shift_.data(), d_);
  Eigen::Map<RowMatrix> outer(outer_.data(), d_, d_);
  constexpr int64_t kBlock = 4096;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t m = std::min(kBlock, n - start);
    RowMatrix centred = xm.middleRows(start, m).rowwise() - c;
    for (int j = 0; j < d_; ++j) sum_[j] += centred.col(j).sum();
    outer.noalias() += centred.transpose() * centred;
  }
  n_ += n;
}

void MomentAccumulator::AddRows(const float* x, int64_t n) {
  if (n <= 0 || d_ == 0) return;
  if (!shift_set_) SetShift(x, n, d_);
  // Split large inputs over the intra-op threads, each with its own partial sums.
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t parts =
      std::min<int64_t>(threads, std::max<int64_t>(1, n / (16 * kFloatBlockRows)));
  std::vector<Partial> partials(parts);
  for (Partial& p : partials) {
    p.sum.assign(d_, 0.0);
    p.outer.assign(static_cast<size_t>(d_) * d_, 0.0);
  }
  const int64_t per = (n + parts - 1) / parts;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t s = t * per;
      const int64_t m = std::min(per, n - s);
      if (m > 0) AccumulateFloatRange(x + s * d_, m, d_, shift_, &partials[t]);
    }
  };
  if (parts == 1) {
    run(0, 1);
  } else {
    at::parallel_for(0, parts, 1, run);
  }
  for (const Partial& p : partials) {
    for (int j = 0; j < d_; ++j) sum_[j] += p.sum[j];
    for (int i = 0; i < d_; ++i) {
      for (int j = i; j < d_; ++j) {
        const double v = p.outer[static_cast<int64_t>(i) * d_ + j];
        outer_[static_cast<int64_t>(i) * d_ + j] += v;
        if (j != i) outer_[static_cast<int64_t>(j) * d_ + i] += v;
      }
    }
  }
  n_ += n;
}

void MomentAccumulator::Merge(const MomentAccumulator& o) {
  if (o.n_ == 0) return;
  if (n_ == 0 && centered_) {
    shift_ = o.shift_;
    shift_set_ = true;
  }
  // Re-centre o's sums on this shift: with delta = c_o - c,
  //   sum (x - c) = s_o + n_o delta,
  //   sum (x - c)(x - c)^T = S_o + s_o delta^T + delta s_o^T + n_o delta delta^T.
  std::vector<double> delta(d_);
  for (int j = 0; j < d_; ++j) delta[j] = o.shift_[j] - shift_[j];
  const double no = static_cast<double>(o.n_);
  for (int i = 0; i < d_; ++i) {
    for (int j = 0; j < d_; ++j) {
      outer_[static_cast<int64_t>(i) * d_ + j] += o.outer_[static_cast<int64_t>(i) * d_ + j] +
                                                  o.sum_[i] * delta[j] + delta[i] * o.sum_[j] +
                                                  no * delta[i] * delta[j];
    }
  }
  for (int j = 0; j < d_; ++j) sum_[j] += o.sum_[j] + no * delta[j];
  n_ += o.n_;
}

std::vector<double> MomentAccumulator::Mean() const {
  std::vector<double> m(d_, 0.0);
  if (n_ == 0) return m;
  for (int j = 0; j < d_; ++j) m[j] = shift_[j] + sum_[j] / static_cast<double>(n_);
  return m;
}

std::vector<double> MomentAccumulator::Covariance(int ddof) const {
  std::vector<double> c(static_cast<size_t>(d_) * d_, 0.0);
  if (n_ <= ddof) return c;
  const double n = static_cast<double>(n_);
  const double denom = n - ddof;
  for (int i = 0; i < d_; ++i) {
    for (int j = 0; j < d_; ++j) {
      c[static_cast<int64_t>(i) * d_ + j] =
          (outer_[static_cast<int64_t>(i) * d_ + j] - sum_[i] * sum_[j] / n) / denom;
    }
  }
  return c;
}

std::vector<double> MomentAccumulator::SumOfOuterProducts() const {
  // sum x x^T = S + s c^T + c s^T + n c c^T.
  std::vector<double> m(static_cast<size_t>(d_) * d_, 0.0);
  const double n = static_cast<double>(n_);
  for (int i = 0; i < d_; ++i) {
    for (int j = 0; j < d_; ++j) {
      m[static_cast<int64_t>(i) * d_ + j] = outer_[static_cast<int64_t>(i) * d_ + j] +
                                            sum_[i] * shift_[j] + shift_[i] * sum_[j] +
                                            n * shift_[i] * shift_[j];
    }
  }
  return m;
}

std::vector<double> MomentAccumulator::SecondMoment() const {
  std::vector<double> m = SumOfOuterProducts();
  if (n_ == 0) return m;
  for (double& v : m) v /= static_cast<double>(n_);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Eigen, PCA, angles, correlations
// ---------------------------------------------------------------------------------------------

absl::StatusOr<SymmetricEigen> EigenSymmetric(const std::vector<double>& a, int d) {
  if (d < 0 || a.size() != static_cast<size_t>(d) * d) {
    return absl::InvalidArgumentError("EigenSymmetric: matrix is not d x d");
  }
  for (double v : a) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("EigenSymmetric: non-finite entry");
  }
  SymmetricEigen out;
  out.d = d;
  if (d == 0) return out;
  Eigen::Map<const RowMatrix> m(a.data(), d, d);
  const Eigen::MatrixXd sym = 0.5 * (m + m.transpose());
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(sym);
  if (solver.info() != Eigen::Success) {
    return absl::InternalError("EigenSymmetric: the eigensolver did not converge");
  }
  out.values.resize(d);
  out.vectors.resize(static_cast<size_t>(d) * d);
  for (int i = 0; i < d; ++i) {
    const int src = d - 1 - i;  // Eigen sorts ascending
    out.values[i] = solver.eigenvalues()(src);
    Eigen::VectorXd v = solver.eigenvectors().col(src);
    int arg = 0;
    for (int j = 1; j < d; ++j) {
      if (std::abs(v(j)) > std::abs(v(arg)) + 1e-12) arg = j;
    }
    if (v(arg) < 0) v = -v;
    for (int j = 0; j < d; ++j) out.vectors[static_cast<int64_t>(i) * d + j] = v(j);
  }
  return out;
}

absl::StatusOr<Pca> PcaFromMoments(const std::vector<double>& matrix, int d,
                                   std::vector<double> mean, int64_t n) {
  absl::StatusOr<SymmetricEigen> eig = EigenSymmetric(matrix, d);
  if (!eig.ok()) return eig.status();
  Pca p;
  p.d = d;
  p.n = n;
  p.mean = std::move(mean);
  if (p.mean.empty()) p.mean.assign(d, 0.0);
  p.explained_variance.resize(d);
  double total = 0.0;
  for (int i = 0; i < d; ++i) {
    p.explained_variance[i] = std::max(0.0, eig->values[i]);
    total += p.explained_variance[i];
  }
  p.total_variance = total;
  p.explained_variance_ratio.assign(d, 0.0);
  if (total > 0) {
    for (int i = 0; i < d; ++i) p.explained_variance_ratio[i] = p.explained_variance[i] / total;
  }
  p.components = std::move(eig->vectors);
  return p;
}

absl::StatusOr<Pca> PcaOf(const MomentAccumulator& acc) {
  if (!acc.centered()) {
    return absl::InvalidArgumentError("PcaOf: the accumulator is uncentred");
  }
  return PcaFromMoments(acc.Covariance(1), acc.dim(), acc.Mean(), acc.count());
}

absl::StatusOr<Pca> PcaOfRows(const float* x, int64_t n, int d) {
  if (d <= 0 || n < 0) return absl::InvalidArgumentError("PcaOfRows: bad shape");
  MomentAccumulator acc(d, /*centered=*/true);
  acc.AddRows(x, n);
  return PcaOf(acc);
}

int ComponentsForVariance(const std::vector<double>& eigenvalues, double threshold) {
  double total = 0.0;
  for (double v : eigenvalues) total += std::max(0.0, v);
  if (!(total > 0)) return 0;
  const double target = std::min(1.0, threshold) * total * (1.0 - 1e-12);
  double cum = 0.0;
  for (size_t i = 0; i < eigenvalues.size(); ++i) {
    cum += std::max(0.0, eigenvalues[i]);
    if (cum >= target) return static_cast<int>(i + 1);
  }
  return static_cast<int>(eigenvalues.size());
}

PrincipalAngles ComputePrincipalAngles(const std::vector<double>& u1, int k1,
                                       const std::vector<double>& u2, int k2, int d) {
  PrincipalAngles out;
  if (k1 <= 0 || k2 <= 0) return out;
  Eigen::Map<const RowMatrix> a(u1.data(), k1, d);
  Eigen::Map<const RowMatrix> b(u2.data(), k2, d);
  const Eigen::MatrixXd m = a * b.transpose();
  out.overlap = m.squaredNorm();
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(m);
  const Eigen::VectorXd s = svd.singularValues();  // descending
  for (int i = 0; i < s.size(); ++i) {
    const double c = std::clamp(s(i), 0.0, 1.0);
    out.cosines.push_back(c);
    out.angles.push_back(std::acos(c));
  }
  return out;
}

namespace {
std::vector<double> AverageRanks(const std::vector<double>& v) {
  const size_t n = v.size();
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double PearsonCorrelation(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return 0.0;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (!(sxx > 0) || !(syy > 0)) return 0.0;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double SpearmanCorrelation(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return 0.0;
  return PearsonCorrelation(AverageRanks({x.begin(), x.begin() + n}),
                            AverageRanks({y.begin(), y.begin() + n}));
}

}  // namespace gradzoo::core
