// Layer structure (seed 002): layer PCA and PC covariances vs scikit-learn's PCA on numpy
// activations; PLSR vs scikit-learn's PLSRegression (raw data and between layers, scaled and
// not); linear CKA (unbiased HSIC) vs an explicit n x n numpy formula and known answers;
// scaffold gradients vs autograd, their PCA vs numpy, clusters vs known answers and a slow
// distinct-gradient count. scikit-learn comes from Debian's python3-sklearn.
#include "core/analysis/representation.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/analysis/layer_tensors.h"
#include "core/nn/mlp.h"
#include "core/util/random.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

// Runs `script` with /usr/bin/python3 (numpy, scipy, scikit-learn); input i is the float64
// file in{i}.bin under $GZ_DIR. The script prints whitespace-separated numbers.
std::vector<double> RunPython(const std::string& script, const std::vector<std::vector<double>>& inputs) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("gz_py_" + std::to_string(::getpid()) + "_" +
                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::ofstream f(dir / ("in" + std::to_string(i) + ".bin"), std::ios::binary);
    f.write(reinterpret_cast<const char*>(inputs[i].data()), inputs[i].size() * sizeof(double));
  }
  const bool sklearn = script.find("sklearn") != std::string::npos;
  { std::ofstream(dir / "script.py")
        << "import os, sys, warnings\nwarnings.simplefilter('ignore')\nimport numpy as np\n"
        << (sklearn ? "try:\n    import sklearn\nexcept ImportError:\n"
                      "    sys.exit('scikit-learn is missing: apt-get install python3-sklearn "
                      "(scripts/setup.sh)')\n"
                    : "")
        << "D = os.environ['GZ_DIR']\ndef inp(i): return np.fromfile(D + '/in%d.bin' % i)\n"
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

MlpSpec Spec(int in, std::vector<int> hidden, int out) {
  MlpSpec s;
  s.input_dim = in;
  s.hidden = std::move(hidden);
  s.output_dim = out;
  return s;
}

std::vector<LayerWeights> RandomWeights(const MlpSpec& spec, uint64_t seed) {
  Rng rng(seed);
  std::vector<LayerWeights> layers;
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    LayerWeights lw;
    lw.in = w[l];
    lw.out = w[l + 1];
    const double bound = 1.5 / std::sqrt(static_cast<double>(lw.in));
    for (int i = 0; i < lw.out * lw.in; ++i) lw.weight.push_back(static_cast<float>(rng.Uniform(-bound, bound)));
    for (int i = 0; i < lw.out; ++i) lw.bias.push_back(static_cast<float>(rng.Uniform(-0.2, 0.3)));
    layers.push_back(std::move(lw));
  }
  return layers;
}

std::vector<float> RandomPoints(int64_t n, int in, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> p(static_cast<size_t>(n) * in);
  for (float& v : p) v = static_cast<float>(rng.Uniform(0, 1));
  return p;
}

// Inputs for the python side: points, then W1, b1, W2, b2, ...
std::vector<std::vector<double>> NetInputs(const std::vector<float>& pts, const std::vector<LayerWeights>& w) {
  std::vector<std::vector<double>> in = {std::vector<double>(pts.begin(), pts.end())};
  for (const auto& l : w) {
    in.emplace_back(l.weight.begin(), l.weight.end());
    in.emplace_back(l.bias.begin(), l.bias.end());
  }
  return in;
}

// Python forward pass of a 3-layer ReLU net from NetInputs, exposing x, z1, h1, z2, h2, y.
std::string PyForward(int in, int h1, int h2, int out) {
  std::ostringstream s;
  s << "x = inp(0).reshape(-1, " << in << ")\n"
    << "W1, b1 = inp(1).reshape(" << h1 << ", " << in << "), inp(2)\n"
    << "W2, b2 = inp(3).reshape(" << h2 << ", " << h1 << "), inp(4)\n"
    << "W3, b3 = inp(5).reshape(" << out << ", " << h2 << "), inp(6)\n"
    << "z1 = x @ W1.T + b1; h1 = np.maximum(z1, 0); z2 = h1 @ W2.T + b2; h2 = np.maximum(z2, 0)\n"
    << "y = h2 @ W3.T + b3\n"
    << "def flip(c):  # rows signed so that the largest-magnitude entry is positive\n"
    << "    return c * np.sign(c[np.arange(len(c)), np.argmax(np.abs(c), 1)])[:, None]\n";
  return s.str();
}

double MaxAbsDiff(const std::vector<double>& a, const double* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(AnalysisRepresentationTest, LayerPcaAndPcCovarianceMatchSklearn) {
  const MlpSpec spec = Spec(4, {12, 8}, 2);
  const auto w = RandomWeights(spec, 1);
  const int64_t n = 700;
  const std::vector<float> pts = RandomPoints(n, 4, 2);
  ModelInput in{&spec, &w, &pts, n};
  const LayerRef h1{1, LayerSide::kPost}, z2{2, LayerSide::kPre};
  ASSERT_OK_AND_ASSIGN(LayerPcaResult r, ActivationPca(in, h1, &z2, "cpu", {}));
  EXPECT_EQ(r.points_used, n);
  std::vector<double> ref = RunPython(PyForward(4, 12, 8, 2) + R"PY(
from sklearn.decomposition import PCA
a, b = PCA().fit(h1), PCA().fit(z2)
print(*a.explained_variance_, *a.explained_variance_ratio_, *flip(a.components_).ravel(), *a.mean_)
print(*b.explained_variance_, *flip(b.components_).ravel())
pa = (h1 - a.mean_) @ flip(a.components_).T; pb = (z2 - b.mean_) @ flip(b.components_).T
C = np.cov(np.hstack([pa, pb]).T)[:12, 12:]
print(*C.ravel())
)PY", NetInputs(pts, w));
  ASSERT_EQ(ref.size(), 12u * 2 + 144 + 12 + 8 + 64 + 96);
  const double* p = ref.data();
  const double scale = ref[0];
  for (int i = 0; i < 12; ++i) {
    EXPECT_NEAR(r.pca.explained_variance[i], p[i], 1e-9 * scale);
    EXPECT_NEAR(r.pca.explained_variance_ratio[i], p[12 + i], 1e-9);
  }
  // Components: compare where the eigenvalue is not (numerically) zero, so they are determined.
  for (int i = 0; i < 12; ++i) {
    if (p[i] < 1e-6 * scale) continue;
    for (int j = 0; j < 12; ++j) EXPECT_NEAR(r.pca.components[i * 12 + j], p[24 + i * 12 + j], 1e-6) << i;
  }
  EXPECT_LT(MaxAbsDiff(r.pca.mean, p + 24 + 144, 12), 1e-12);
  p += 24 + 144 + 12;
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(r.second.explained_variance[i], p[i], 1e-9 * p[0]);
  p += 8 + 64;
  for (int i = 0; i < 12; ++i) {
    for (int j = 0; j < 8; ++j) {
      if (ref[i] < 1e-6 * scale || ref[24 + 144 + 12 + j] < 1e-6 * ref[24 + 144 + 12]) continue;
      EXPECT_NEAR(r.pc_covariance[i * 8 + j], p[i * 8 + j], 1e-8 * scale) << i << "," << j;
    }
  }
  // PCs are uncorrelated within a layer: the covariance of a layer's PCs with itself is diagonal.
  ASSERT_OK_AND_ASSIGN(LayerPcaResult self, ActivationPca(in, h1, &h1, "cpu", {}));
  for (int i = 0; i < 12; ++i) {
    for (int j = 0; j < 12; ++j) {
      EXPECT_NEAR(self.pc_covariance[i * 12 + j], i == j ? self.pca.explained_variance[i] : 0.0, 1e-10 * scale);
    }
    if (self.pca.explained_variance[i] > 1e-9 * scale) {
      EXPECT_NEAR(self.pc_correlation[i * 12 + i], 1.0, 1e-9);
    }
  }
}

// PLSR on raw data against scikit-learn, with and without scaling, several targets (NIPALS
// iterates) and one target (a single iteration).
TEST(AnalysisRepresentationTest, PlsrFromMomentsMatchesSklearn) {
  const int64_t n = 400;
  const int p = 6, q = 3;
  Rng rng(7);
  std::vector<double> xy(static_cast<size_t>(n) * (p + q));
  for (int64_t i = 0; i < n; ++i) {
    double* row = &xy[i * (p + q)];
    for (int j = 0; j < p; ++j) row[j] = rng.Normal() * (1 + j) + 3.0;
    row[p] = row[0] - 2 * row[1] + 0.3 * rng.Normal();
    row[p + 1] = 0.5 * row[2] * row[3] + row[4] + 0.5 * rng.Normal();
    row[p + 2] = 10 * rng.Normal() + row[5];
  }
  // One python run fits every configuration (scale x number of targets), in this order.
  std::vector<double> ref = RunPython(
      "from sklearn.cross_decomposition import PLSRegression\n"
      "d = inp(0).reshape(-1, 9)\n"
      "for scale in (False, True):\n"
      "    for q in (3, 1):\n"
      "        X, Y = d[:, :6], d[:, 6:6 + q]\n"
      "        m = PLSRegression(n_components=4, scale=scale, tol=1e-12, max_iter=500).fit(X, Y)\n"
      "        T = m.x_scores_; ys = Y.std(0, ddof=1) if scale else np.ones(q)\n"
      "        tot = (((Y - Y.mean(0)) / ys) ** 2).sum()\n"
      "        ev = [(T[:, k] ** 2).sum() * (m.y_loadings_[:, k] ** 2).sum() / tot for k in range(4)]\n"
      "        print(*m.x_weights_.ravel(), *m.y_weights_.ravel(), *m.x_loadings_.ravel(), *m.y_loadings_.ravel())\n"
      "        print(*m.x_rotations_.ravel(), *m.coef_.ravel(), *ev, *m.n_iter_)\n"
      "        print(*(m.predict(X[:5]).ravel()))\n",
      {xy});
  size_t want_total = 0;
  for (int qq : {3, 1}) want_total += 2 * (p * 4 + qq * 4 + p * 4 + qq * 4 + p * 4 + p * qq + 4 + 4 + 5 * qq);
  ASSERT_EQ(ref.size(), want_total);
  const double* s = ref.data();
  for (bool scale : {false, true}) {
    for (int qq : {3, 1}) {
      SCOPED_TRACE(std::string(scale ? "scaled" : "unscaled") + " q=" + std::to_string(qq));
      MomentAccumulator acc(p + qq);
      std::vector<double> rows;
      for (int64_t i = 0; i < n; ++i) rows.insert(rows.end(), &xy[i * (p + q)], &xy[i * (p + q)] + p + qq);
      acc.AddRows(rows.data(), n);
      PlsrOptions o;
      o.components = 4;
      o.scale = scale;
      ASSERT_OK_AND_ASSIGN(PlsrResult r, PlsrFromMoments(acc.Covariance(1), acc.Mean(), p, qq, n, o));
      ASSERT_EQ(r.components, 4);
      auto expect = [&](const std::vector<double>& got, const char* what) {
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_NEAR(got[i], s[i], 1e-6 * std::max(1.0, std::abs(s[i]))) << what << " " << i;
        }
        s += got.size();
      };
      expect(r.x_weights, "x_weights");
      expect(r.y_weights, "y_weights");
      expect(r.x_loadings, "x_loadings");
      expect(r.y_loadings, "y_loadings");
      expect(r.x_rotations, "x_rotations");
      expect(r.coefficients, "coef");
      expect(r.explained_variance, "explained_variance");
      for (int k = 0; k < 4; ++k) EXPECT_EQ(r.iterations[k], static_cast<int>(s[k])) << "n_iter " << k;
      s += 4;
      // Predictions from the documented formula Y_hat = ((X - x_mean) / x_std) coef + y_mean.
      for (int i = 0; i < 5; ++i) {
        for (int j = 0; j < qq; ++j) {
          double y = r.y_mean[j];
          for (int t = 0; t < p; ++t) y += (rows[i * (p + qq) + t] - r.x_mean[t]) / r.x_std[t] * r.coefficients[t * qq + j];
          EXPECT_NEAR(y, s[i * qq + j], 1e-8 * std::max(1.0, std::abs(y)));
        }
      }
      s += 5 * qq;
    }
  }
  MomentAccumulator acc(3);
  const double rows[9] = {1, 2, 3, 2, 1, 3, 4, 4, 3};
  acc.AddRows(rows, 3);
  PlsrOptions o;
  o.components = 1;
  EXPECT_THAT(PlsrFromMoments(acc.Covariance(1), acc.Mean(), 2, 1, 3, o),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no variance")));
  o.components = 3;
  EXPECT_THAT(PlsrFromMoments(acc.Covariance(1), acc.Mean(), 2, 1, 3, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("components")));
}

// Between layers: X = h1, Y = the first 3 PCs of z2 (scikit-learn PCA, flipped to our sign
// convention), then PLSRegression; plus the overlap of the x weights with h1's PCs.
TEST(AnalysisRepresentationTest, LayerPlsrMatchesSklearnOnActivations) {
  const MlpSpec spec = Spec(4, {10, 8}, 2);
  const auto w = RandomWeights(spec, 3);
  const int64_t n = 600;
  const std::vector<float> pts = RandomPoints(n, 4, 4);
  ModelInput in{&spec, &w, &pts, n};
  PlsrOptions o;
  o.components = 3;
  o.scale = true;
  ASSERT_OK_AND_ASSIGN(LayerPlsrResult r, LayerPlsr(in, {1, LayerSide::kPost}, {2, LayerSide::kPre}, 3, o, "cpu", {}));
  ASSERT_EQ(r.targets, 3);
  ASSERT_EQ(r.plsr.components, 3);
  std::vector<double> ref = RunPython(PyForward(4, 10, 8, 2) + R"PY(
from sklearn.decomposition import PCA
from sklearn.cross_decomposition import PLSRegression
t = PCA().fit(z2); U = flip(t.components_)[:3]
Y = (z2 - t.mean_) @ U.T
m = PLSRegression(n_components=3, scale=True, tol=1e-12, max_iter=500).fit(h1, Y)
S = flip(PCA().fit(h1).components_)
Wn = m.x_weights_ / np.linalg.norm(m.x_weights_, axis=0)
print(*m.x_weights_.ravel(), *m.y_loadings_.ravel(), *m.coef_.ravel(), *np.abs(Wn.T @ S.T).ravel())
)PY", NetInputs(pts, w));
  ASSERT_EQ(ref.size(), 30u + 9 + 30 + 30);
  const double* s = ref.data();
  for (size_t i = 0; i < 30; ++i) EXPECT_NEAR(r.plsr.x_weights[i], s[i], 1e-6) << i;
  for (size_t i = 0; i < 9; ++i) EXPECT_NEAR(r.plsr.y_loadings[i], s[30 + i], 1e-6 * std::max(1.0, std::abs(s[30 + i]))) << i;
  for (size_t i = 0; i < 30; ++i) EXPECT_NEAR(r.plsr.coefficients[i], s[39 + i], 1e-6 * std::max(1.0, std::abs(s[39 + i]))) << i;
  // Overlap rows are PLS components, columns the source PCs; compare where the PC is determined.
  for (int k = 0; k < 3; ++k) {
    for (int j = 0; j < 10; ++j) {
      if (r.source_pca.explained_variance[j] < 1e-6 * r.source_pca.explained_variance[0]) continue;
      EXPECT_NEAR(r.pc_overlap[k * 10 + j], s[69 + k * 10 + j], 1e-6) << k << "," << j;
    }
  }
  double ev = 0;
  for (double v : r.plsr.explained_variance) ev += v;
  EXPECT_GT(ev, 0.0);
  EXPECT_LE(ev, 1.0 + 1e-12);
  // Defaults: target PCs for 99% of the variance.
  ASSERT_OK_AND_ASSIGN(LayerPlsrResult d, LayerPlsr(in, {1, LayerSide::kPost}, {2, LayerSide::kPost}, 0, o, "cpu", {}));
  EXPECT_EQ(d.targets, ComponentsForVariance(d.target_pca.explained_variance, 0.99));
}

TEST(AnalysisRepresentationTest, CkaMatchesExplicitFormulaAndKnownAnswers) {
  // Explicit n x n reference on random correlated representations.
  const int64_t n = 60;
  const int p = 5, q = 3;
  Rng rng(11);
  std::vector<double> rows(static_cast<size_t>(n) * (p + q));
  for (int64_t i = 0; i < n; ++i) {
    double* r = &rows[i * (p + q)];
    for (int j = 0; j < p; ++j) r[j] = rng.Normal() + 5.0;
    for (int j = 0; j < q; ++j) r[p + j] = r[j] * (j + 1) + rng.Normal() - 2.0;
  }
  CkaAccumulator acc({p, q});
  acc.AddRows(rows.data(), 20);
  acc.AddRows(rows.data() + 20 * (p + q), n - 20);
  std::vector<double> ref = RunPython(R"PY(
d = inp(0).reshape(-1, 8); X, Y = d[:, :5], d[:, 5:]
def hsic(K, L):
    n = len(K); K = K.copy(); L = L.copy(); np.fill_diagonal(K, 0); np.fill_diagonal(L, 0); o = np.ones(n)
    return (np.trace(K @ L) + (o @ K @ o) * (o @ L @ o) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (o @ K @ L @ o)) / (n * (n - 3))
K, L = X @ X.T, Y @ Y.T
Xc, Yc = X - X.mean(0), Y - Y.mean(0)
print(hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L)), np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)))
)PY", {rows});
  ASSERT_EQ(ref.size(), 2u);
  CkaValue v = acc.Cka(0, 1);
  EXPECT_FALSE(v.degenerate);
  EXPECT_NEAR(v.cka, ref[0], 1e-9);
  EXPECT_NEAR(v.biased_cka, ref[1], 1e-9);
  // Identical representations: exactly 1 (also rotated + shifted copies: CKA is invariant).
  EXPECT_DOUBLE_EQ(acc.Cka(0, 0).cka, 1.0);
  // Independent random representations, small n: unbiased ~ 0, biased clearly positive.
  double mean_u = 0, mean_b = 0;
  const int trials = 20;
  for (int t = 0; t < trials; ++t) {
    CkaAccumulator ind({10, 10});
    std::vector<double> r(30 * 20);
    for (double& x : r) x = rng.Normal();
    ind.AddRows(r.data(), 30);
    CkaValue c = ind.Cka(0, 1);
    EXPECT_LT(std::abs(c.cka), 0.15) << t;
    mean_u += c.cka / trials;
    mean_b += c.biased_cka / trials;
  }
  EXPECT_LT(std::abs(mean_u), 0.03);
  EXPECT_GT(mean_b, 0.2);
  // Degenerate: a constant representation, or too few points.
  CkaAccumulator constant({2, 2});
  std::vector<double> c(10 * 4);
  for (int i = 0; i < 10; ++i) {
    c[i * 4] = 1;
    c[i * 4 + 1] = 2;
    c[i * 4 + 2] = rng.Normal();
    c[i * 4 + 3] = rng.Normal();
  }
  constant.AddRows(c.data(), 10);
  CkaValue dv = constant.Cka(0, 1);
  EXPECT_TRUE(dv.degenerate);
  EXPECT_EQ(dv.cka, 0.0);
  CkaAccumulator few({1, 1});
  few.AddRows(c.data(), 3);
  EXPECT_TRUE(few.Cka(0, 1).degenerate);
}

TEST(AnalysisRepresentationTest, LayerCkaWithinAndAcrossModels) {
  const MlpSpec spec = Spec(4, {12, 12}, 2);
  const auto w1 = RandomWeights(spec, 21), w2 = RandomWeights(spec, 22);
  const int64_t n = 300;
  const std::vector<float> pts = RandomPoints(n, 4, 23);
  ModelInput a{&spec, &w1, &pts, n}, b{&spec, &w2, &pts, n};
  ASSERT_OK_AND_ASSIGN(CkaResult r, LayerCka(a, {1, LayerSide::kPost}, b, {2, LayerSide::kPre}, true, "cpu", {}));
  std::vector<double> ref = RunPython(R"PY(
x = inp(0).reshape(-1, 4)
def fwd(o):
    W1, b1, W2, b2 = inp(o).reshape(12, 4), inp(o + 1), inp(o + 2).reshape(12, 12), inp(o + 3)
    h1 = np.maximum(x @ W1.T + b1, 0); z2 = h1 @ W2.T + b2; return h1, z2
def cka(X, Y):
    def hsic(K, L):
        n = len(K); K = K.copy(); L = L.copy(); np.fill_diagonal(K, 0); np.fill_diagonal(L, 0); o = np.ones(n)
        return (np.trace(K @ L) + (o @ K @ o) * (o @ L @ o) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (o @ K @ L @ o)) / (n * (n - 3))
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))
a1, a2 = fwd(1); b1, b2 = fwd(7)
print(cka(a1, b2), cka(x, x), cka(a1, b1))
)PY", {std::vector<double>(pts.begin(), pts.end()),
       std::vector<double>(w1[0].weight.begin(), w1[0].weight.end()), std::vector<double>(w1[0].bias.begin(), w1[0].bias.end()),
       std::vector<double>(w1[1].weight.begin(), w1[1].weight.end()), std::vector<double>(w1[1].bias.begin(), w1[1].bias.end()),
       {}, {},
       std::vector<double>(w2[0].weight.begin(), w2[0].weight.end()), std::vector<double>(w2[0].bias.begin(), w2[0].bias.end()),
       std::vector<double>(w2[1].weight.begin(), w2[1].weight.end()), std::vector<double>(w2[1].bias.begin(), w2[1].bias.end())});
  ASSERT_EQ(ref.size(), 3u);
  EXPECT_NEAR(r.value.cka, ref[0], 1e-9);
  EXPECT_EQ(r.points_used, n);
  ASSERT_TRUE(r.has_matrix);
  ASSERT_EQ(r.layers_a.size(), 4u);  // x, h1, h2, y
  ASSERT_EQ(r.matrix.size(), 16u);
  EXPECT_DOUBLE_EQ(r.matrix[0], 1.0);  // x of a vs x of b: the same points
  EXPECT_NEAR(r.matrix[1 * 4 + 1], ref[2], 1e-9);  // h1 vs h1 across models
  // Within one model, a layer against itself is exactly 1.
  ASSERT_OK_AND_ASSIGN(CkaResult self, LayerCka(a, {2, LayerSide::kPost}, a, {2, LayerSide::kPost}, false, "cpu", {}));
  EXPECT_DOUBLE_EQ(self.value.cka, 1.0);
  EXPECT_FALSE(self.has_matrix);
}

// Synthetic directions with known multiplicities and small noise: exactly those clusters.
TEST(AnalysisRepresentationTest, ClustersFindKnownDirections) {
  const int d = 6, k = 7;
  Rng rng(31);
  std::vector<std::vector<double>> dirs(k, std::vector<double>(d));
  for (auto& v : dirs) {
    double s = 0;
    for (double& x : v) { x = rng.Normal(); s += x * x; }
    for (double& x : v) x /= std::sqrt(s);
  }
  std::vector<float> g;
  std::vector<int> truth;
  std::map<int, int64_t> count;
  for (int i = 0; i < 700; ++i) {
    const int c = static_cast<int>(rng.Uniform() * rng.Uniform() * k);  // uneven sizes
    const double scale = 0.5 + 2 * rng.Uniform();
    for (int j = 0; j < d; ++j) g.push_back(static_cast<float>(scale * (dirs[c][j] + 0.002 * rng.Normal())));
    truth.push_back(c);
    ++count[c];
    if (i % 50 == 0) {  // zero rows are left out
      for (int j = 0; j < d; ++j) g.push_back(0.0f);
      truth.push_back(-1);
    }
  }
  const int64_t n = static_cast<int64_t>(truth.size());
  ASSERT_OK_AND_ASSIGN(DirectionClusters cl, ClusterDirections(g.data(), n, d, 0.99));
  EXPECT_EQ(cl.found, static_cast<int>(count.size()));
  // Same partition as the truth, and sizes descending.
  std::map<int, int> map;
  for (int64_t i = 0; i < n; ++i) {
    if (truth[i] < 0) {
      EXPECT_EQ(cl.assignment[i], -1);
      continue;
    }
    auto it = map.find(truth[i]);
    if (it == map.end()) map[truth[i]] = cl.assignment[i];
    else EXPECT_EQ(it->second, cl.assignment[i]) << i;
  }
  for (int c = 0; c + 1 < cl.found; ++c) EXPECT_GE(cl.sizes[c], cl.sizes[c + 1]);
  for (const auto& [t, c] : map) EXPECT_EQ(cl.sizes[c], count[t]);
  for (double mc : cl.min_cosine) EXPECT_GT(mc, 0.99);
  EXPECT_FALSE(ClusterDirections(g.data(), n, d, 0.0).ok());
  // All zero: nothing found.
  std::vector<float> z(30, 0.0f);
  ASSERT_OK_AND_ASSIGN(DirectionClusters none, ClusterDirections(z.data(), 5, 6, 0.99));
  EXPECT_EQ(none.found, 0);
}

// Scaffold: d (u_c . h2) / d h1 at every point vs autograd; gradient PCA vs numpy; clusters
// consistent with the gradients; distinct gradients vs a slow count (numpy unique).
TEST(AnalysisRepresentationTest, ScaffoldGradientsMatchAutogradAndSlowReferences) {
  const MlpSpec spec = Spec(4, {10, 8}, 2);
  const auto w = RandomWeights(spec, 41);
  const int64_t n = 500;
  const std::vector<float> pts = RandomPoints(n, 4, 42);
  ModelInput in{&spec, &w, &pts, n};
  ScaffoldOptions o;
  o.component = 1;
  o.keep_gradients = true;
  ASSERT_OK_AND_ASSIGN(ScaffoldResult r, ScaffoldGradients(in, {1, LayerSide::kPost}, {2, LayerSide::kPost}, o, "cpu", {}));
  ASSERT_EQ(r.gradients.size(), static_cast<size_t>(n) * 10);
  ASSERT_EQ(r.target_direction.size(), 8u);
  // Autograd on the double network.
  StackedMlp mlp = StackDouble(spec, {&w}, at::kCPU);
  at::Tensor x = ChunkInputs({&pts}, 1, 0, n, 4, at::kCPU);
  at::Tensor z1 = at::baddbmm(mlp.bias[0], x, mlp.weight[0].transpose(1, 2));
  at::Tensor h1 = at::relu(z1).detach().requires_grad_(true);
  at::Tensor h2 = at::relu(at::baddbmm(mlp.bias[1], h1, mlp.weight[1].transpose(1, 2)));
  at::Tensor u = at::tensor(r.target_direction, at::kDouble);
  (h2 * u).sum().backward();
  at::Tensor ref = h1.grad().select(0, 0).to(at::kFloat);
  at::Tensor got = at::from_blob(r.gradients.data(), {n, 10}, at::kFloat);
  EXPECT_TRUE(at::allclose(got, ref, 1e-6, 1e-7));
  // Every non-zero gradient sits in its cluster; zero ones are unassigned.
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0, dot = 0;
    const int32_t c = r.clusters.assignment[i];
    for (int j = 0; j < 10; ++j) norm += double{r.gradients[i * 10 + j]} * r.gradients[i * 10 + j];
    if (norm == 0) {
      ++zeros;
      EXPECT_EQ(c, -1);
      continue;
    }
    ASSERT_GE(c, 0);
    for (int j = 0; j < 10; ++j) dot += r.gradients[i * 10 + j] * r.clusters.directions[c * 10 + j];
    EXPECT_GE(dot / std::sqrt(norm), o.cluster_cosine - 1e-9);
  }
  EXPECT_EQ(zeros, r.zero_gradients);
  EXPECT_GT(r.clusters.found, 1);
  EXPECT_LE(r.clusters.found, r.distinct_gradients);
  std::vector<double> gd(r.gradients.begin(), r.gradients.end());
  std::vector<double> py = RunPython(R"PY(
g = inp(0).reshape(-1, 10).astype(np.float32) + np.float32(0)  # -0 -> +0
nz = g[np.abs(g).sum(1) > 0]
w, v = np.linalg.eigh(np.cov(g.astype(np.float64).T))
print(len(np.unique(nz, axis=0)), *np.sort(w)[::-1])
)PY", {gd});
  ASSERT_EQ(py.size(), 11u);
  EXPECT_EQ(r.distinct_gradients, static_cast<int64_t>(py[0]));
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(r.gradient_pca.explained_variance[i], py[1 + i], 1e-6 * py[1] + 1e-12);
  // Validation.
  EXPECT_THAT(ScaffoldGradients(in, {2, LayerSide::kPost}, {1, LayerSide::kPost}, o, "cpu", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("after")));
  o.component = 8;
  EXPECT_THAT(ScaffoldGradients(in, {1, LayerSide::kPost}, {2, LayerSide::kPost}, o, "cpu", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("component")));
}

}  // namespace
}  // namespace gradzoo::core
