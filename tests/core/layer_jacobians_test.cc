// Known answers for core/grad/layer_jacobians: per-example Jacobians against LibTorch autograd
// (units and principal components), PCA against LibTorch's SVD of the centred activations,
// unique counts and intra-layer dots against slow loops over the returned matrices.
#include "core/grad/layer_jacobians.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>
#include <set>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<LayerWeights> RandomNet(const MlpSpec& spec, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<LayerWeights> layers;
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    LayerWeights lw{w[l + 1], w[l], std::vector<float>(w[l + 1] * w[l]), std::vector<float>(w[l + 1])};
    for (auto& v : lw.weight) v = static_cast<float>(normal(rng) / std::sqrt(static_cast<double>(w[l])));
    for (auto& v : lw.bias) v = static_cast<float>(0.3 * normal(rng));
    layers.push_back(std::move(lw));
  }
  return layers;
}

std::vector<float> UniformPoints(int64_t n, int in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unif(-1, 1);
  std::vector<float> p(static_cast<size_t>(n) * in);
  for (auto& v : p) v = static_cast<float>(unif(rng));
  return p;
}

at::Tensor Weight(const LayerWeights& lw) {
  return torch::from_blob(const_cast<float*>(lw.weight.data()), {lw.out, lw.in}).to(at::kDouble);
}
at::Tensor Bias(const LayerWeights& lw) {
  return torch::from_blob(const_cast<float*>(lw.bias.data()), {lw.out}).to(at::kDouble);
}
at::Tensor Act(const at::Tensor& z, Activation a) {
  return a == Activation::kRelu ? at::relu(z) : a == Activation::kGelu ? at::gelu(z) : at::tanh(z);
}

// Activations a_0..a_{H+1} in float64 (a_0 = x).
std::vector<at::Tensor> Activations(const MlpSpec& spec, const std::vector<LayerWeights>& net,
                                    const at::Tensor& x) {
  std::vector<at::Tensor> a = {x};
  for (size_t l = 0; l < net.size(); ++l) {
    at::Tensor z = at::matmul(a.back(), Weight(net[l]).t()) + Bias(net[l]);
    a.push_back(l + 1 < net.size() ? Act(z, spec.activation) : z);
  }
  return a;
}

// Autograd reference: J[n, i, :] = d (rows a_{l+1})_i / d a_l, with a_l a leaf.
at::Tensor AutogradJacobian(const MlpSpec& spec, const std::vector<LayerWeights>& net,
                            const at::Tensor& x, int l, const at::Tensor& basis /* [k, w1] or undefined */) {
  at::Tensor src = Activations(spec, net, x)[l].detach().requires_grad_(true);
  at::Tensor z = at::matmul(src, Weight(net[l]).t()) + Bias(net[l]);
  at::Tensor tgt = l + 1 < static_cast<int>(net.size()) ? Act(z, spec.activation) : z;
  if (basis.defined()) tgt = at::matmul(tgt, basis.t());
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < tgt.size(1); ++i) {
    rows.push_back(torch::autograd::grad({tgt.select(1, i).sum()}, {src}, {}, true)[0]);
  }
  return at::stack(rows, 1);  // [n, k, w0]
}

at::Tensor Returned(const LayerJacobians& r) {
  return torch::from_blob(const_cast<float*>(r.jacobians.data()), {r.n, r.rows, r.cols}).to(at::kDouble);
}

TEST(LayerJacobiansTest, UnitsMatchAutogradForEveryLayer) {
  for (Activation act : {Activation::kRelu, Activation::kGelu, Activation::kTanh}) {
    MlpSpec spec{3, {7, 5}, 2, act};
    const auto net = RandomNet(spec, 3);
    const int64_t n = 50;
    const auto pts = UniformPoints(n, 3, 4);
    at::Tensor x = torch::from_blob(const_cast<float*>(pts.data()), {n, 3}).to(at::kDouble);
    for (int l = 0; l <= 2; ++l) {
      SCOPED_TRACE(::testing::Message() << ActivationName(act) << " layer " << l);
      LayerJacobianOptions o;
      o.layer = l;
      ASSERT_OK_AND_ASSIGN(LayerJacobians r, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", o, {}));
      EXPECT_EQ(r.rows, spec.Widths()[l + 1]);
      EXPECT_EQ(r.cols, spec.Widths()[l]);
      EXPECT_FALSE(r.has_pca);
      at::Tensor ref = AutogradJacobian(spec, net, x, l, at::Tensor());
      EXPECT_TRUE(at::allclose(Returned(r), ref, 1e-4, 1e-5));
      // Normalised rows: unit length or zero, parallel to the raw rows.
      o.normalize = true;
      ASSERT_OK_AND_ASSIGN(LayerJacobians nr, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", o, {}));
      at::Tensor norms = ref.norm(2, {2}, true);
      at::Tensor expected = ref / at::where(norms > 0, norms, at::ones_like(norms));
      EXPECT_TRUE(at::allclose(Returned(nr), expected, 1e-4, 1e-5));
      // Intra-layer dots: mean over examples of row dot products (slow loop).
      for (int i = 0; i < nr.rows; ++i) {
        for (int j = 0; j < nr.rows; ++j) {
          double s = 0;
          for (int64_t p = 0; p < n; ++p) {
            for (int c = 0; c < nr.cols; ++c) {
              s += static_cast<double>(nr.jacobians[(p * nr.rows + i) * nr.cols + c]) *
                   nr.jacobians[(p * nr.rows + j) * nr.cols + c];
            }
          }
          EXPECT_NEAR(nr.intra_layer_dots[i * nr.rows + j], s / n, 1e-9);
        }
      }
    }
  }
}

TEST(LayerJacobiansTest, PrincipalComponentsMatchSvdAndAutograd) {
  MlpSpec spec{4, {12, 9}, 2, Activation::kGelu};
  const auto net = RandomNet(spec, 8);
  const int64_t n = 400;
  const auto pts = UniformPoints(n, 4, 9);
  at::Tensor x = torch::from_blob(const_cast<float*>(pts.data()), {n, 4}).to(at::kDouble);
  LayerJacobianOptions o;
  o.layer = 1;  // d (components of h_2) / d h_1
  o.use_principal_components = true;
  o.num_components = 4;
  ASSERT_OK_AND_ASSIGN(LayerJacobians r, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", o, {}));
  ASSERT_TRUE(r.has_pca);
  EXPECT_EQ(r.rows, 4);
  EXPECT_EQ(r.cols, 12);
  ASSERT_EQ(r.pca.width, 9);

  // Reference PCA: SVD of the centred float64 activations; variance = s^2 / (n - 1).
  at::Tensor a = Activations(spec, net, x)[2];
  at::Tensor mean = a.mean(0);
  auto [u, s, vh] = at::linalg_svd(a - mean, false);
  at::Tensor basis = at::zeros({4, 9}, at::kDouble);
  for (int c = 0; c < 4; ++c) {
    EXPECT_NEAR(r.pca.explained_variance[c], (s[c] * s[c]).item<double>() / (n - 1), 1e-4);
    at::Tensor v = vh[c];
    if (v[v.abs().argmax()].item<double>() < 0) v = -v;
    basis[c] = v;
    for (int j = 0; j < 9; ++j) EXPECT_NEAR(r.pca.vectors[c * 9 + j], v[j].item<double>(), 1e-4);
  }
  for (int j = 0; j < 9; ++j) EXPECT_NEAR(r.pca.mean[j], mean[j].item<double>(), 1e-5);
  EXPECT_NEAR(r.pca.total_variance, (s * s).sum().item<double>() / (n - 1), 1e-4);
  // Jacobians of the components against autograd through the same basis.
  at::Tensor ref = AutogradJacobian(spec, net, x, 1, basis);
  EXPECT_TRUE(at::allclose(Returned(r), ref, 1e-3, 1e-4));
}

TEST(LayerJacobiansTest, UniqueJacobiansAgainstSlowLoops) {
  // ReLU: J_n = D W has entries W or exactly 0, so distinct float matrices are distinct J.
  MlpSpec spec{2, {6, 6}, 2, Activation::kRelu};
  auto net = RandomNet(spec, 21);
  net[1].weight[6 * 2 + 0] = 0;  // a partly zero row changes nothing...
  for (int u = 0; u < 6; ++u) net[1].weight[6 * 4 + u] = 0;  // ...an all-zero row hides unit 4
  const int64_t n = 2000;
  const auto pts = UniformPoints(n, 2, 22);
  for (int l = 0; l <= 2; ++l) {
    SCOPED_TRACE(l);
    LayerJacobianOptions o;
    o.layer = l;
    ASSERT_OK_AND_ASSIGN(LayerJacobians r, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", o, {}));
    std::set<std::vector<float>> distinct;
    const int64_t d = static_cast<int64_t>(r.rows) * r.cols;
    for (int64_t p = 0; p < n; ++p) {
      std::vector<float> m(r.jacobians.begin() + p * d, r.jacobians.begin() + (p + 1) * d);
      for (float& v : m) v += 0.0f;
      distinct.insert(m);
    }
    EXPECT_EQ(r.unique_jacobians, static_cast<int64_t>(distinct.size()));
    EXPECT_FALSE(r.clustered);
    if (l == 2) EXPECT_EQ(r.unique_jacobians, 1);  // the output layer is linear
    // Components do not change the count (V^T D W is distinct for distinct D).
    o.use_principal_components = true;
    ASSERT_OK_AND_ASSIGN(LayerJacobians pr, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", o, {}));
    EXPECT_EQ(pr.unique_jacobians, r.unique_jacobians);
    // Summary only: same summary, no matrices.
    o.use_principal_components = false;
    o.include_jacobians = false;
    ASSERT_OK_AND_ASSIGN(LayerJacobians sr, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", o, {}));
    EXPECT_TRUE(sr.jacobians.empty());
    EXPECT_EQ(sr.unique_jacobians, r.unique_jacobians);
    EXPECT_EQ(sr.intra_layer_dots, r.intra_layer_dots);
  }

  // Tanh: grid cells of spacing tolerance * max |J| over the returned matrices.
  MlpSpec tspec{2, {5}, 1, Activation::kTanh};
  const auto tnet = RandomNet(tspec, 23);
  LayerJacobianOptions o;
  o.tolerance = 0.05;
  ASSERT_OK_AND_ASSIGN(LayerJacobians r, ComputeAdjacentJacobians(tspec, tnet, pts, n, "cpu", o, {}));
  EXPECT_TRUE(r.clustered);
  EXPECT_DOUBLE_EQ(r.tolerance, 0.05);
  double max_abs = 0;
  for (float v : r.jacobians) max_abs = std::max(max_abs, std::abs(static_cast<double>(v)));
  std::set<std::vector<int64_t>> cells;
  for (int64_t p = 0; p < n; ++p) {
    std::vector<int64_t> c;
    for (int i = 0; i < 10; ++i) c.push_back(std::llround(r.jacobians[p * 10 + i] / (0.05 * max_abs)));
    cells.insert(c);
  }
  EXPECT_EQ(r.unique_jacobians, static_cast<int64_t>(cells.size()));
  EXPECT_GT(r.unique_jacobians, 1);
  o.include_jacobians = false;
  ASSERT_OK_AND_ASSIGN(LayerJacobians s, ComputeAdjacentJacobians(tspec, tnet, pts, n, "cpu", o, {}));
  EXPECT_EQ(s.unique_jacobians, r.unique_jacobians);
}

TEST(LayerJacobiansTest, Errors) {
  MlpSpec spec{2, {4}, 1, Activation::kRelu};
  const auto net = RandomNet(spec, 1);
  const auto pts = UniformPoints(3, 2, 1);
  LayerJacobianOptions o;
  o.layer = 2;
  EXPECT_THAT(ComputeAdjacentJacobians(spec, net, pts, 3, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer must be in [0, 1]")));
  o.layer = 0;
  o.num_components = 5;
  EXPECT_THAT(ComputeAdjacentJacobians(spec, net, pts, 3, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_components")));
  o.num_components = 0;
  o.use_principal_components = true;
  EXPECT_THAT(ComputeAdjacentJacobians(spec, net, {0.1f, 0.2f}, 1, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 2 points")));
  o.use_principal_components = false;
  o.tolerance = -1;
  EXPECT_THAT(ComputeAdjacentJacobians(spec, net, pts, 3, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tolerance")));
  o.tolerance = 0;
  EXPECT_THAT(ComputeAdjacentJacobians(spec, net, pts, 3, "cpu", o, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  // The size check is arithmetic: 40M points x 4 x 2 is refused before anything is allocated.
  MlpSpec wide{2, {4}, 1, Activation::kRelu};
  std::vector<float> none;
  EXPECT_THAT(ComputeAdjacentJacobians(wide, net, none, 40'000'000, "cpu", o, {}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("summary_only")));
}

}  // namespace
}  // namespace gradzoo::core
