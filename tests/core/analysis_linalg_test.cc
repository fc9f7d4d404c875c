// core/analysis/linalg: streaming moments (every kernel), PCA, principal angles and rank
// correlation against numpy / scipy (via /usr/bin/python3) and closed forms.
#include "core/analysis/linalg.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/util/random.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

// Runs `script` with /usr/bin/python3; input i is available as the float64 file
// os.environ["GZ_DIR"] + "/in{i}.bin". The script prints whitespace-separated numbers.
std::vector<double> RunPython(const std::string& script, const std::vector<std::vector<double>>& inputs) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("gz_py_" + std::to_string(::getpid()) + "_" +
                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::ofstream f(dir / ("in" + std::to_string(i) + ".bin"), std::ios::binary);
    f.write(reinterpret_cast<const char*>(inputs[i].data()), inputs[i].size() * sizeof(double));
  }
  { std::ofstream(dir / "script.py") << "import os, sys\nimport numpy as np\nD = os.environ['GZ_DIR']\n"
                                        "def inp(i): return np.fromfile(D + '/in%d.bin' % i)\n"
                                     << script; }
  const std::string cmd = "GZ_DIR=" + dir.string() + " /usr/bin/python3 " + (dir / "script.py").string() +
                          " > " + (dir / "out.txt").string() + " 2> " + (dir / "err.txt").string();
  const int rc = std::system(cmd.c_str());
  std::ifstream err(dir / "err.txt");
  std::stringstream es;
  es << err.rdbuf();
  EXPECT_EQ(rc, 0) << "python failed: " << es.str();
  std::ifstream out(dir / "out.txt");
  std::vector<double> v;
  double x;
  while (out >> x) v.push_back(x);
  std::filesystem::remove_all(dir);
  return v;
}

std::vector<double> RandomRows(int64_t n, int d, uint64_t seed, double offset) {
  Rng rng(seed);
  std::vector<double> x(static_cast<size_t>(n) * d);
  // Correlated columns: x_j = z_j + 0.5 z_{j-1}, plus an offset that would ruin a naive
  // sum x x^T - n m m^T in float.
  std::vector<double> z(d);
  for (int64_t r = 0; r < n; ++r) {
    for (int j = 0; j < d; ++j) z[j] = rng.Normal() * (1.0 + 0.1 * j);
    for (int j = 0; j < d; ++j) x[r * d + j] = offset + z[j] + (j > 0 ? 0.5 * z[j - 1] : 0.0);
  }
  return x;
}

double RelFrobenius(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

TEST(AnalysisLinalgTest, DoubleMomentsMatchNumpy) {
  const int64_t n = 3000;
  const int d = 7;
  std::vector<double> x = RandomRows(n, d, 1, 1000.0);
  MomentAccumulator acc(d);
  acc.AddRows(x.data(), 1000);
  acc.AddRows(x.data() + 1000 * d, n - 1000);
  std::vector<double> ref = RunPython(
      "x = inp(0).reshape(-1, 7)\n"
      "print(*x.mean(0)); print(*np.cov(x.T, ddof=1).ravel()); print(*(x.T @ x / len(x)).ravel())\n",
      {x});
  ASSERT_EQ(ref.size(), static_cast<size_t>(d + 2 * d * d));
  std::vector<double> mean(ref.begin(), ref.begin() + d);
  std::vector<double> cov(ref.begin() + d, ref.begin() + d + d * d);
  std::vector<double> second(ref.begin() + d + d * d, ref.end());
  EXPECT_LT(RelFrobenius(acc.Mean(), mean), 1e-13);
  EXPECT_LT(RelFrobenius(acc.Covariance(1), cov), 1e-11);
  EXPECT_LT(RelFrobenius(acc.SecondMoment(), second), 1e-12);
  EXPECT_EQ(acc.count(), n);
}

// Every float kernel (the ones this CPU runs), odd widths that exercise the tile tails, blocks
// that do not divide n, and an offset: 1e-5 relative against numpy float64 on the same floats.
TEST(AnalysisLinalgTest, FloatKernelsMatchNumpyForEveryWidth) {
  const std::string original = FloatKernelName();
  for (const char* kernel : {"portable", "avx2", "avx512"}) {
    if (!UseFloatKernelForTesting(kernel)) continue;
    for (int d : {1, 3, 4, 5, 16, 17, 31, 33, 64, 70}) {
      SCOPED_TRACE(std::string(kernel) + " d=" + std::to_string(d));
      const int64_t n = 5000 + d;  // several threads' ranges, partial last block
      std::vector<double> xd = RandomRows(n, d, 10 + d, 50.0);
      std::vector<float> xf(xd.begin(), xd.end());
      std::vector<double> xr(xf.begin(), xf.end());  // exactly the floats, in double
      MomentAccumulator acc(d);
      acc.AddRows(xf.data(), n);
      MomentAccumulator ref(d);
      ref.AddRows(xr.data(), n);
      EXPECT_LT(RelFrobenius(acc.Covariance(1), ref.Covariance(1)), 1e-5);
      EXPECT_LT(RelFrobenius(acc.Mean(), ref.Mean()), 1e-7);
      MomentAccumulator un(d, /*centered=*/false);
      un.AddRows(xf.data(), n);
      EXPECT_LT(RelFrobenius(un.SecondMoment(), ref.SecondMoment()), 1e-5);
    }
  }
  ASSERT_TRUE(UseFloatKernelForTesting(original));
  // The double reference itself is checked against numpy above; one float case against numpy.
  const int d = 9;
  std::vector<double> xd = RandomRows(4000, d, 99, 3.0);
  std::vector<float> xf(xd.begin(), xd.end());
  std::vector<double> xr(xf.begin(), xf.end());
  MomentAccumulator acc(d);
  acc.AddRows(xf.data(), 4000);
  std::vector<double> cov = RunPython("x = inp(0).reshape(-1, 9)\nprint(*np.cov(x.T).ravel())\n", {xr});
  EXPECT_LT(RelFrobenius(acc.Covariance(1), cov), 1e-5);
}

TEST(AnalysisLinalgTest, MergeEqualsOnePass) {
  const int d = 5;
  std::vector<double> x = RandomRows(800, d, 3, -20.0);
  MomentAccumulator all(d), a(d), b(d);
  all.AddRows(x.data(), 800);
  a.AddRows(x.data(), 300);
  b.AddRows(x.data() + 300 * d, 500);
  a.Merge(b);
  EXPECT_EQ(a.count(), 800);
  EXPECT_LT(RelFrobenius(a.Covariance(1), all.Covariance(1)), 1e-12);
  EXPECT_LT(RelFrobenius(a.Mean(), all.Mean()), 1e-13);
  EXPECT_LT(RelFrobenius(a.SecondMoment(), all.SecondMoment()), 1e-12);
  MomentAccumulator empty(d);
  empty.Merge(all);
  EXPECT_LT(RelFrobenius(empty.Covariance(1), all.Covariance(1)), 1e-12);
}

TEST(AnalysisLinalgTest, DegenerateCountsGiveZerosNotNaN) {
  MomentAccumulator acc(3);
  for (double v : acc.Covariance(1)) EXPECT_EQ(v, 0.0);
  for (double v : acc.SecondMoment()) EXPECT_EQ(v, 0.0);
  const double one[3] = {1, 2, 3};
  acc.AddRows(one, 1);
  for (double v : acc.Covariance(1)) EXPECT_EQ(v, 0.0);
  ASSERT_OK_AND_ASSIGN(Pca p, PcaOf(acc));
  for (double r : p.explained_variance_ratio) EXPECT_EQ(r, 0.0);
  EXPECT_EQ(ComponentsForVariance(p.explained_variance, 0.9), 0);
}

TEST(AnalysisLinalgTest, PcaOfRowsMatchesNumpyEigh) {
  const int64_t n = 20000;
  const int d = 6;
  Rng rng(5);
  // Well separated spectrum so eigenvectors are determined: scales 6, 5, ..., 1 on a rotated basis.
  std::vector<double> x(static_cast<size_t>(n) * d);
  for (int64_t r = 0; r < n; ++r) {
    for (int j = 0; j < d; ++j) x[r * d + j] = rng.Normal() * (d - j);
  }
  for (int64_t r = 0; r < n; ++r) {  // rotate by a fixed orthogonal mix of coordinates 0 and 1
    const double a = x[r * d], b = x[r * d + 1];
    x[r * d] = 0.6 * a + 0.8 * b + 2.0;
    x[r * d + 1] = -0.8 * a + 0.6 * b - 1.0;
  }
  std::vector<float> xf(x.begin(), x.end());
  std::vector<double> xr(xf.begin(), xf.end());
  ASSERT_OK_AND_ASSIGN(Pca p, PcaOfRows(xf.data(), n, d));
  std::vector<double> ref = RunPython(
      "x = inp(0).reshape(-1, 6)\nw, v = np.linalg.eigh(np.cov(x.T))\n"
      "o = np.argsort(w)[::-1]\nprint(*w[o]); print(*v[:, o].T.ravel()); print(*(w[o] / w.sum()))\n",
      {xr});
  ASSERT_EQ(ref.size(), static_cast<size_t>(d + d * d + d));
  for (int i = 0; i < d; ++i) {
    EXPECT_NEAR(p.explained_variance[i], ref[i], 1e-5 * ref[0]);
    EXPECT_NEAR(p.explained_variance_ratio[i], ref[d + d * d + i], 1e-6);
    double dot = 0;
    for (int j = 0; j < d; ++j) dot += p.components[i * d + j] * ref[d + i * d + j];
    EXPECT_NEAR(std::abs(dot), 1.0, 1e-6) << "component " << i;
    // Sign convention: the largest-magnitude entry is positive.
    int arg = 0;
    for (int j = 1; j < d; ++j) {
      if (std::abs(p.components[i * d + j]) > std::abs(p.components[i * d + arg])) arg = j;
    }
    EXPECT_GT(p.components[i * d + arg], 0);
  }
  EXPECT_NEAR(p.mean[0], 2.0, 0.1);
  EXPECT_EQ(p.n, n);
}

TEST(AnalysisLinalgTest, EigenReconstructsTheMatrix) {
  const std::vector<double> a = {4, 1, 0.5, 1, 3, -0.2, 0.5, -0.2, 1};
  ASSERT_OK_AND_ASSIGN(SymmetricEigen e, EigenSymmetric(a, 3));
  EXPECT_GE(e.values[0], e.values[1]);
  EXPECT_GE(e.values[1], e.values[2]);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      double v = 0;
      for (int k = 0; k < 3; ++k) v += e.vectors[k * 3 + i] * e.values[k] * e.vectors[k * 3 + j];
      EXPECT_NEAR(v, a[i * 3 + j], 1e-12);
    }
  }
  EXPECT_FALSE(EigenSymmetric({1, 2, 3}, 2).ok());
  EXPECT_FALSE(EigenSymmetric({1, NAN, NAN, 1}, 2).ok());
}

TEST(AnalysisLinalgTest, ComponentsForVarianceThreshold) {
  EXPECT_EQ(ComponentsForVariance({5, 3, 2}, 0.5), 1);
  EXPECT_EQ(ComponentsForVariance({5, 3, 2}, 0.8), 2);  // exactly 0.8 reaches it
  EXPECT_EQ(ComponentsForVariance({5, 3, 2}, 0.81), 3);
  EXPECT_EQ(ComponentsForVariance({5, 3, 2}, 1.0), 3);
  EXPECT_EQ(ComponentsForVariance({0, 0}, 0.9), 0);
}

// Closed form: span(e1, e2) vs span(cos t e1 + sin t e3, e2) has principal angles {0, t}.
TEST(AnalysisLinalgTest, PrincipalAnglesClosedForm) {
  const double t = 0.7;
  const std::vector<double> u1 = {1, 0, 0, 0, 0, 1, 0, 0};
  const std::vector<double> u2 = {std::cos(t), 0, std::sin(t), 0, 0, 1, 0, 0};
  PrincipalAngles pa = ComputePrincipalAngles(u1, 2, u2, 2, 4);
  ASSERT_EQ(pa.angles.size(), 2u);
  EXPECT_NEAR(pa.angles[0], 0.0, 1e-7);
  EXPECT_NEAR(pa.angles[1], t, 1e-12);
  EXPECT_NEAR(pa.overlap, 1.0 + std::cos(t) * std::cos(t), 1e-12);
  // Orthogonal subspaces: every angle pi/2, overlap 0.
  const std::vector<double> u3 = {0, 0, 1, 0};
  PrincipalAngles orth = ComputePrincipalAngles(u1, 2, u3, 1, 4);
  ASSERT_EQ(orth.angles.size(), 1u);
  EXPECT_NEAR(orth.angles[0], M_PI / 2, 1e-12);
  EXPECT_EQ(orth.overlap, 0.0);
}

TEST(AnalysisLinalgTest, SpearmanMatchesScipyWithTies) {
  const std::vector<double> lam = {0, 0, 0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3};
  const std::vector<double> s = {0.9, 0.95, 0.9, 0.7, 0.8, 0.75, 0.71, 0.5, 0.4, 0.1, 0.2, 0.2};
  std::vector<double> ref = RunPython(
      "from scipy.stats import spearmanr, pearsonr\nx, y = inp(0), inp(1)\n"
      "print(spearmanr(x, y).correlation, pearsonr(x, y)[0])\n",
      {lam, s});
  ASSERT_EQ(ref.size(), 2u);
  EXPECT_NEAR(SpearmanCorrelation(lam, s), ref[0], 1e-12);
  EXPECT_NEAR(PearsonCorrelation(lam, s), ref[1], 1e-12);
  EXPECT_EQ(SpearmanCorrelation({1, 1, 1}, {1, 2, 3}), 0.0);
  EXPECT_EQ(SpearmanCorrelation({1}, {2}), 0.0);
  EXPECT_NEAR(SpearmanCorrelation({1, 2, 3}, {30, 20, 10}), -1.0, 1e-15);
}

}  // namespace
}  // namespace gradzoo::core
