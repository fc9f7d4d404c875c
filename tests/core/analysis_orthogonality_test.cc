// Task-orthogonality scores and the per-layer gradients under them: gradients and Jacobians vs
// LibTorch autograd; every method vs an independent numpy reference (pinv/SVD projections,
// scipy principal angles); closed-form known answers (separate subnetworks -> 1, identical
// outputs -> 0); degenerate cases flagged, never NaN.
#include "core/analysis/orthogonality.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/analysis/layer_tensors.h"
#include "core/nn/mlp.h"
#include "core/util/random.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

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
  if (!getenv("GZ_KEEP")) std::filesystem::remove_all(dir);
  return v;
}

MlpSpec Spec(int in, std::vector<int> hidden, int out, Activation a = Activation::kRelu) {
  MlpSpec s;
  s.input_dim = in;
  s.hidden = std::move(hidden);
  s.output_dim = out;
  s.activation = a;
  return s;
}

std::vector<LayerWeights> RandomWeights(const MlpSpec& spec, uint64_t seed, double bias_shift = 0.0) {
  Rng rng(seed);
  std::vector<LayerWeights> layers;
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    LayerWeights lw;
    lw.in = w[l];
    lw.out = w[l + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(lw.in));
    for (int i = 0; i < lw.out * lw.in; ++i) lw.weight.push_back(static_cast<float>(rng.Uniform(-1.5 * bound, 1.5 * bound)));
    for (int i = 0; i < lw.out; ++i) lw.bias.push_back(static_cast<float>(rng.Uniform(-0.3, 0.3) + bias_shift));
    layers.push_back(std::move(lw));
  }
  return layers;
}

std::vector<float> RandomPoints(int64_t n, int in, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> p(static_cast<size_t>(n) * in);
  for (float& v : p) v = static_cast<float>(rng.Uniform(-1, 1));
  return p;
}

std::vector<LayerRef> AllLayers(const MlpSpec& spec) {
  std::vector<LayerRef> out = {{0, LayerSide::kPost}};
  for (int l = 1; l < spec.NumLayers(); ++l) {
    out.push_back({l, LayerSide::kPre});
    out.push_back({l, LayerSide::kPost});
  }
  return out;
}

// d y_o / d a and d a / d x at every position vs autograd, for ReLU and tanh.
TEST(AnalysisOrthogonalityTest, LayerGradientsAndJacobiansMatchAutograd) {
  for (Activation act : {Activation::kRelu, Activation::kTanh, Activation::kGelu}) {
    const MlpSpec spec = Spec(3, {5, 4}, 2, act);
    const auto w1 = RandomWeights(spec, 1), w2 = RandomWeights(spec, 2);
    const int64_t n = 7;
    const std::vector<float> pts = RandomPoints(n, 3, 3);
    StackedMlp mlp = StackDouble(spec, {&w1, &w2}, at::kCPU);
    at::Tensor x = ChunkInputs({&pts}, 2, 0, n, 3, at::kCPU);
    Capture cap;
    Forward(mlp, x, &cap);
    const std::vector<int> positions = {4, 3, 2, 1, 0};  // h2, z2, h1, z1, x
    std::vector<at::Tensor> grads = OutputGradientsAt(mlp, cap, {1, 0}, positions);
    std::vector<at::Tensor> jacs = InputJacobiansAt(mlp, cap, {0, 1, 2, 3, 4});

    // Autograd: recompute with leaves at every activation via a hand forward pass.
    at::Tensor xa = x.clone().requires_grad_(true);
    std::vector<at::Tensor> acts = {xa};
    at::Tensor h = xa;
    for (int l = 0; l < 3; ++l) {
      at::Tensor z = at::baddbmm(mlp.bias[l], h, mlp.weight[l].transpose(1, 2));
      if (l < 2) {
        z.retain_grad();
        acts.push_back(z);
        h = Activate(z, act);
        h.retain_grad();
        acts.push_back(h);
      } else {
        h = z;
      }
    }
    for (int r = 0; r < 2; ++r) {
      const int o = r == 0 ? 1 : 0;
      for (at::Tensor& a : acts) {
        if (a.grad().defined()) a.grad().zero_();
      }
      h.select(2, o).sum().backward({}, /*retain_graph=*/true);
      for (size_t pi = 0; pi < positions.size(); ++pi) {
        at::Tensor ref = acts[positions[pi]].grad();
        EXPECT_TRUE(at::allclose(grads[pi].select(2, r), ref, 1e-10, 1e-12))
            << ActivationName(act) << " position " << positions[pi] << " output " << o;
      }
    }
    // Jacobians: column i of d a / d x by forward differences of the double network (exactly
    // linear inside a ReLU region; central differences for the smooth ones).
    for (int i = 0; i < 3; ++i) {
      const double eps = 1e-6;
      at::Tensor dx = at::zeros_like(x);
      dx.select(2, i).fill_(eps);
      Capture cp, cm;
      Forward(mlp, x + dx, &cp);
      Forward(mlp, x - dx, &cm);
      for (int p = 0; p < 5; ++p) {
        auto at_pos = [&](const Capture& c, const at::Tensor& xx) {
          if (p == 0) return xx;
          return p % 2 == 1 ? c.pre[(p - 1) / 2] : c.post[p / 2 - 1];
        };
        at::Tensor fd = (at_pos(cp, x + dx) - at_pos(cm, x - dx)) / (2 * eps);
        EXPECT_TRUE(at::allclose(jacs[p].select(3, i), fd, 1e-5, 1e-7))
            << ActivationName(act) << " position " << p << " input " << i;
      }
    }
  }
}

// Every method against numpy: gradients by explicit mask products, projections by
// np.linalg.pinv (not the eigen route), PCA by np.linalg.eigh, angles by scipy.
TEST(AnalysisOrthogonalityTest, EveryMethodMatchesNumpyReference) {
  const MlpSpec spec = Spec(4, {16, 3}, 3);  // h1 wider than the input, h2 narrower: both projection routes
  const auto w = RandomWeights(spec, 11);
  const int64_t n = 300;
  const std::vector<float> pts = RandomPoints(n, 4, 12);
  const std::vector<LayerRef> layers = AllLayers(spec);
  std::vector<double> flat(pts.begin(), pts.end());
  std::vector<std::vector<double>> inputs = {flat};
  for (const auto& l : w) {
    inputs.emplace_back(l.weight.begin(), l.weight.end());
    inputs.emplace_back(l.bias.begin(), l.bias.end());
  }
  const std::string script = R"PY(
from scipy.linalg import subspace_angles
x = inp(0).reshape(-1, 4)
W = [inp(1).reshape(16, 4), inp(3).reshape(3, 16), inp(5).reshape(3, 3)]
b = [inp(2), inp(4), inp(6)]
z1 = x @ W[0].T + b[0]; h1 = np.maximum(z1, 0); d1 = (z1 > 0) * 1.0
z2 = h1 @ W[1].T + b[1]; h2 = np.maximum(z2, 0); d2 = (z2 > 0) * 1.0
N = len(x)
def grads(o):
    gh2 = np.tile(W[2][o], (N, 1)); gz2 = gh2 * d2; gh1 = gz2 @ W[1]; gz1 = gh1 * d1; gx = gz1 @ W[0]
    return [gx, gz1, gh1, gz2, gh2]
def jacs():
    I = np.tile(np.eye(4), (N, 1, 1)); Az1 = np.tile(W[0], (N, 1, 1)); Ah1 = Az1 * d1[:, :, None]
    Az2 = np.einsum('ij,njk->nik', W[1], Ah1); Ah2 = Az2 * d2[:, :, None]
    return [I, Az1, Ah1, Az2, Ah2]
A, B = grads(0), grads(2)
J = jacs()
out = []
for li in range(5):
    ga, gb = A[li], B[li]
    # cos
    na, nb = np.linalg.norm(ga, axis=1), np.linalg.norm(gb, axis=1)
    ok = (na > 1e-200) & (nb > 1e-200)
    cos = 1 - np.mean(np.abs((ga * gb).sum(1)[ok]) / (na[ok] * nb[ok]))
    # functional: P = A pinv(A)
    pa, pb = [], []
    for i in range(N):
        P = J[li][i] @ np.linalg.pinv(J[li][i], rcond=1e-5)
        pa.append(P @ ga[i]); pb.append(P @ gb[i])
    pa, pb = np.array(pa), np.array(pb)
    npa, npb = np.linalg.norm(pa, axis=1), np.linalg.norm(pb, axis=1)
    ok = (na > 1e-200) & (nb > 1e-200) & (npa > 1e-9 * na) & (npb > 1e-9 * nb)
    func = 1 - np.mean(np.abs((pa * pb).sum(1)[ok]) / (npa[ok] * npb[ok]))
    # gram (uncentred)
    Sa, Sb = ga.T @ ga / N, gb.T @ gb / N
    gram = 1 - (Sa * Sb).sum() / (np.linalg.norm(Sa) * np.linalg.norm(Sb))
    # pca at 0.9 (uncentred) and centred gram
    def top(S, t=0.9):
        w, v = np.linalg.eigh(S); o = np.argsort(w)[::-1]; w, v = np.clip(w[o], 0, None), v[:, o]
        k = int(np.searchsorted(np.cumsum(w) / w.sum(), t - 1e-12) + 1)
        return v[:, :k]
    Ua, Ub = top(Sa), top(Sb)
    pca = 1 - np.linalg.norm(Ua.T @ Ub) ** 2 / min(Ua.shape[1], Ub.shape[1])
    ang = np.sort(subspace_angles(Ua, Ub))
    Ca, Cb = np.cov(ga.T, ddof=0), np.cov(gb.T, ddof=0)
    nc = np.linalg.norm(Ca) * np.linalg.norm(Cb)
    gramc = 1 - (Ca * Cb).sum() / nc if nc > 0 else 2.0  # 2 = undefined (constant gradients)
    print(cos, func, gram, pca, gramc, Ua.shape[1], Ub.shape[1], ok.sum(), *ang)
    print(-1)
)PY";
  std::vector<double> ref = RunPython(script, inputs);
  // Parse: 8 numbers then the angles then a -1 sentinel, per layer.
  std::vector<std::vector<double>> rows;
  std::vector<double> row;
  for (double v : ref) {
    if (v == -1) {
      rows.push_back(row);
      row.clear();
    } else {
      row.push_back(v);
    }
  }
  ASSERT_EQ(rows.size(), 5u);
  auto run = [&](OrthogonalityMethod m, bool center = false) {
    OrthogonalityOptions o;
    o.method = m;
    o.output_a = 0;
    o.output_b = 2;
    o.center = center;
    auto r = ScoreOrthogonality(spec, {&w}, {&pts}, n, layers, o, "cpu", {});
    EXPECT_OK(r);
    return r.ok() ? (*r)[0] : std::vector<OrthogonalityScore>();
  };
  const auto cos = run(OrthogonalityMethod::kCos);
  const auto func = run(OrthogonalityMethod::kFunctional);
  const auto gram = run(OrthogonalityMethod::kGram);
  const auto pca = run(OrthogonalityMethod::kPca);
  const auto gramc = run(OrthogonalityMethod::kGram, /*center=*/true);
  ASSERT_EQ(cos.size(), 5u);
  for (int li = 0; li < 5; ++li) {
    SCOPED_TRACE("layer " + LayerLabel(spec, layers[li]));
    const std::vector<double>& r = rows[li];
    EXPECT_NEAR(cos[li].score, r[0], 1e-10);
    EXPECT_NEAR(func[li].score, r[1], 1e-8);
    EXPECT_EQ(func[li].points_used, static_cast<int64_t>(r[7]));
    EXPECT_NEAR(gram[li].score, r[2], 1e-5);  // float32 gradients (orthogonality.h)
    EXPECT_NEAR(pca[li].score, r[3], 1e-5);
    if (r[4] == 2.0) {
      EXPECT_TRUE(gramc[li].degeneracy.degenerate);
      EXPECT_TRUE(gramc[li].degeneracy.zero_variance);
      EXPECT_EQ(gramc[li].score, 0.0);
    } else {
      EXPECT_NEAR(gramc[li].score, r[4], 1e-5);
    }
    EXPECT_EQ(pca[li].components_a, static_cast<int>(r[5]));
    EXPECT_EQ(pca[li].components_b, static_cast<int>(r[6]));
    ASSERT_EQ(pca[li].principal_angles.size(), r.size() - 8);
    for (size_t a = 0; a < pca[li].principal_angles.size(); ++a) {
      EXPECT_NEAR(pca[li].principal_angles[a], r[8 + a], 1e-3);
    }
    for (const auto* s : {&cos[li], &func[li], &gram[li], &pca[li]}) {
      EXPECT_FALSE(s->degeneracy.degenerate);
      EXPECT_TRUE(std::isfinite(s->score));
    }
  }
  // At the input, functional is cos.
  EXPECT_DOUBLE_EQ(func[0].score, cos[0].score);
}

// Two separate subnetworks (x1,x2 -> units 0..7 -> y1; x3,x4 -> units 8..15 -> y2): every method
// scores exactly 1 at every layer. Outputs that are the same function: every method scores 0.
TEST(AnalysisOrthogonalityTest, KnownAnswersSeparateAndIdenticalTasks) {
  const MlpSpec spec = Spec(4, {16, 16}, 2);
  std::vector<LayerWeights> sep = RandomWeights(spec, 21);
  auto block = [](LayerWeights& lw, int split_out, int split_in) {
    for (int o = 0; o < lw.out; ++o) {
      for (int i = 0; i < lw.in; ++i) {
        if ((o < split_out) != (i < split_in)) lw.weight[o * lw.in + i] = 0.0f;
      }
    }
  };
  block(sep[0], 8, 2);
  block(sep[1], 8, 8);
  block(sep[2], 1, 8);
  std::vector<LayerWeights> same = RandomWeights(spec, 22);
  for (int i = 0; i < 16; ++i) same[2].weight[16 + i] = 2.0f * same[2].weight[i];  // y2 = 2 y1 + c
  const int64_t n = 400;
  std::vector<float> pts = RandomPoints(n, 4, 23);
  const std::vector<LayerRef> layers = AllLayers(spec);
  for (OrthogonalityMethod m : {OrthogonalityMethod::kCos, OrthogonalityMethod::kFunctional,
                                OrthogonalityMethod::kGram, OrthogonalityMethod::kPca}) {
    OrthogonalityOptions o;
    o.method = m;
    ASSERT_OK_AND_ASSIGN(auto s, ScoreOrthogonality(spec, {&sep, &same}, {&pts}, n, layers, o, "cpu", {}));
    for (size_t li = 0; li < layers.size(); ++li) {
      SCOPED_TRACE(std::string(OrthogonalityMethodName(m)) + " " + LayerLabel(spec, layers[li]));
      EXPECT_NEAR(s[0][li].score, 1.0, 1e-9);
      EXPECT_NEAR(s[1][li].score, 0.0, 1e-9);
      EXPECT_FALSE(s[0][li].degeneracy.degenerate);
    }
  }
}

TEST(AnalysisOrthogonalityTest, DegenerateCasesAreFlaggedNotNaN) {
  const MlpSpec spec = Spec(3, {8, 8}, 2);
  const std::vector<float> pts = RandomPoints(100, 3, 31);
  // Dead first layer: biases far below any pre-activation.
  std::vector<LayerWeights> dead = RandomWeights(spec, 32);
  for (float& b : dead[0].bias) b = -100.0f;
  // Output 1 ignores everything: its row of W_3 is zero.
  std::vector<LayerWeights> mute = RandomWeights(spec, 33);
  for (int i = 0; i < 8; ++i) mute[2].weight[8 + i] = 0.0f;
  for (OrthogonalityMethod m : {OrthogonalityMethod::kCos, OrthogonalityMethod::kFunctional,
                                OrthogonalityMethod::kGram, OrthogonalityMethod::kPca}) {
    SCOPED_TRACE(OrthogonalityMethodName(m));
    OrthogonalityOptions o;
    o.method = m;
    const std::vector<LayerRef> layers = {{1, LayerSide::kPost}, {1, LayerSide::kPre}, {2, LayerSide::kPost}, {0, LayerSide::kPost}};
    ASSERT_OK_AND_ASSIGN(auto s, ScoreOrthogonality(spec, {&dead, &mute}, {&pts}, 100, layers, o, "cpu", {}));
    // Dead model: layer 1 flagged dead on both sides.
    for (int li : {0, 1}) {
      EXPECT_TRUE(s[0][li].degeneracy.degenerate);
      EXPECT_TRUE(s[0][li].degeneracy.dead_layer);
      EXPECT_EQ(s[0][li].score, 0.0);
      EXPECT_THAT(s[0][li].degeneracy.detail, HasSubstr("dead"));
    }
    // Gradients w.r.t. the input of a dead-first-layer net vanish: degenerate, not NaN.
    EXPECT_TRUE(s[0][3].degeneracy.degenerate);
    EXPECT_TRUE(s[0][3].degeneracy.zero_variance);
    // Muted output: zero gradients everywhere.
    for (int li = 0; li < 4; ++li) {
      EXPECT_TRUE(s[1][li].degeneracy.degenerate) << li;
      EXPECT_TRUE(s[1][li].degeneracy.zero_variance) << li;
      EXPECT_TRUE(std::isfinite(s[1][li].score));
    }
  }
}

TEST(AnalysisOrthogonalityTest, PerModelPointsChunkingAndCancellation) {
  const MlpSpec spec = Spec(4, {12, 12}, 2);
  const auto w1 = RandomWeights(spec, 41), w2 = RandomWeights(spec, 42);
  const int64_t n = 5000;
  const std::vector<float> p1 = RandomPoints(n, 4, 43), p2 = RandomPoints(n, 4, 44);
  const std::vector<LayerRef> layers = {{1, LayerSide::kPost}, {2, LayerSide::kPre}};
  OrthogonalityOptions o;
  // Per-model points give each model the score it gets alone on its own points.
  ASSERT_OK_AND_ASSIGN(auto both, ScoreOrthogonality(spec, {&w1, &w2}, {&p1, &p2}, n, layers, o, "cpu", {}));
  ASSERT_OK_AND_ASSIGN(auto one, ScoreOrthogonality(spec, {&w2}, {&p2}, n, layers, o, "cpu", {}));
  for (int li = 0; li < 2; ++li) EXPECT_NEAR(both[1][li].score, one[0][li].score, 1e-12);
  int polls = 0;
  EXPECT_THAT(ScoreOrthogonality(spec, {&w1}, {&p1}, n, layers, o, "cpu", [&] { return ++polls > 0; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  // Validation names the problem.
  o.output_b = 0;
  EXPECT_THAT(ScoreOrthogonality(spec, {&w1}, {&p1}, n, layers, o, "cpu", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("differ")));
  o.output_b = 5;
  EXPECT_THAT(ScoreOrthogonality(spec, {&w1}, {&p1}, n, layers, o, "cpu", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("output_a")));
  o.output_b = 1;
  EXPECT_THAT(ScoreOrthogonality(spec, {&w1}, {&p1}, n, {{3, LayerSide::kPost}}, o, "cpu", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer.index")));
  o.variance_threshold = 1.5;
  EXPECT_THAT(ScoreOrthogonality(spec, {&w1}, {&p1}, n, layers, o, "cpu", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("variance_threshold")));
}

}  // namespace
}  // namespace gradzoo::core
