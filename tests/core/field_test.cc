#include "core/grad/field.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

TEST(FieldTest, LinearModelGradientIsItsWeight) {
  MlpSpec spec{3, {}, 2, Activation::kRelu};
  std::vector<LayerWeights> m = {{2, 3, {1, 2, 3, 4, 5, 6}, {0.5f, -0.5f}}};
  std::vector<float> pts = {0, 0, 0, 1, 1, 1};
  ASSERT_OK_AND_ASSIGN(auto f, ComputeInputGradients(spec, {&m}, pts, 2, "cpu", true, {}));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].gradients, (std::vector<float>{1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f[0].outputs, (std::vector<float>{0.5f, -0.5f, 6.5f, 14.5f}));
}

TEST(FieldTest, OneHiddenReluKnownAnswer) {
  // y = relu(x1 - x2) + 2 relu(x2): gradient (1, -1) + (0, 2) where both units are active.
  MlpSpec spec{2, {2}, 1, Activation::kRelu};
  std::vector<LayerWeights> m = {{2, 2, {1, -1, 0, 1}, {0, 0}}, {1, 2, {1, 2}, {0}}};
  std::vector<float> pts = {0.8f, 0.3f, 0.2f, 0.6f, -0.5f, -0.1f};
  ASSERT_OK_AND_ASSIGN(auto f, ComputeInputGradients(spec, {&m}, pts, 3, "cpu", false, {}));
  EXPECT_EQ(f[0].gradients, (std::vector<float>{1, 1, 0, 2, 0, 0}));
  EXPECT_TRUE(f[0].outputs.empty());
}

TEST(FieldTest, ChunkingDoesNotChangeResults) {
  MlpSpec spec{2, {64, 64}, 2, Activation::kTanh};
  std::vector<LayerWeights> m;
  int seed = 1;
  for (auto [o, i] : {std::pair{64, 2}, {64, 64}, {2, 64}}) {
    LayerWeights l{o, i, std::vector<float>(o * i), std::vector<float>(o)};
    for (auto& v : l.weight) v = static_cast<float>(((seed = seed * 1103515245 + 12345) >> 8) % 200 - 100) / 400.0f;
    m.push_back(l);
  }
  const int64_t n = 40000;  // above one chunk for K = 2
  std::vector<float> pts(n * 2);
  for (int64_t i = 0; i < n * 2; ++i) pts[i] = static_cast<float>(i % 997) / 997.0f;
  ASSERT_OK_AND_ASSIGN(auto big, ComputeInputGradients(spec, {&m, &m}, pts, n, "cpu", false, {}));
  std::vector<float> tail(pts.end() - 20, pts.end());
  ASSERT_OK_AND_ASSIGN(auto small, ComputeInputGradients(spec, {&m}, tail, 10, "cpu", false, {}));
  for (int i = 0; i < 10 * 4; ++i) {
    EXPECT_NEAR(big[1].gradients[(n - 10) * 4 + i], small[0].gradients[i], 1e-6);
  }
}

// The ReLU pattern path (one Jacobian per distinct activation pattern, gathered) against
// LibTorch autograd in float64 on every point: two models, three outputs, a 70-unit layer (two
// pattern words) and a 40-unit one, 30000 points over several chunks (a grid, so patterns
// repeat across chunks). Points within 1e-4 of a kink in the float64 pass are skipped (float32
// may put them on the other side); they must be rare (< 3%).
TEST(FieldTest, ReluPatternPathMatchesAutogradOnEveryPoint) {
  MlpSpec spec{3, {70, 40}, 3, Activation::kRelu};
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<std::vector<LayerWeights>> models(2);
  for (auto& net : models) {
    const std::vector<int> w = spec.Widths();
    for (size_t l = 0; l + 1 < w.size(); ++l) {
      LayerWeights lw{w[l + 1], w[l], std::vector<float>(w[l + 1] * w[l]), std::vector<float>(w[l + 1])};
      for (auto& v : lw.weight) v = static_cast<float>(normal(rng) / std::sqrt(static_cast<double>(w[l])));
      for (auto& v : lw.bias) v = static_cast<float>(0.3 * normal(rng));
      net.push_back(std::move(lw));
    }
  }
  const int64_t n = 30000;
  std::vector<float> pts;
  for (int64_t i = 0; i < n; ++i) {
    pts.insert(pts.end(), {static_cast<float>(-2 + 4.0 * (i / 200) / 149), static_cast<float>(-2 + 4.0 * (i % 200) / 199), 0.25f});
  }
  ASSERT_OK_AND_ASSIGN(auto fields, ComputeInputGradients(spec, {&models[0], &models[1]}, pts, n, "cpu", true, {}));
  ASSERT_EQ(fields.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    SCOPED_TRACE(k);
    const auto& net = models[k];
    at::Tensor x = torch::from_blob(pts.data(), {n, 3}).to(at::kDouble).requires_grad_(true);
    at::Tensor h = x;
    at::Tensor kink = at::zeros({n}, at::kBool);
    for (size_t l = 0; l < net.size(); ++l) {
      at::Tensor w = torch::from_blob(const_cast<float*>(net[l].weight.data()), {net[l].out, net[l].in}).to(at::kDouble);
      at::Tensor b = torch::from_blob(const_cast<float*>(net[l].bias.data()), {net[l].out}).to(at::kDouble);
      h = at::matmul(h, w.t()) + b;
      if (l + 1 < net.size()) {
        kink |= (h.detach().abs() < 1e-4).any(1);
        h = at::relu(h);
      }
    }
    EXPECT_LT(kink.sum().item<int64_t>(), 3 * n / 100);  // ~1.1% with 110 units
    const auto* kp = kink.data_ptr<bool>();
    int64_t bad = 0, compared = 0;
    for (int o = 0; o < 3; ++o) {
      at::Tensor g = torch::autograd::grad({h.select(1, o).sum()}, {x}, {}, true)[0].contiguous();
      at::Tensor y = h.select(1, o).detach().contiguous();
      const double* gp = g.data_ptr<double>();
      const double* yp = y.data_ptr<double>();
      for (int64_t p = 0; p < n; ++p) {
        bad += !(std::abs(fields[k].outputs[p * 3 + o] - yp[p]) <= 1e-4);
        if (kp[p]) continue;
        ++compared;
        for (int i = 0; i < 3; ++i) bad += !(std::abs(fields[k].gradients[(p * 3 + o) * 3 + i] - gp[p * 3 + i]) <= 1e-5);
      }
    }
    EXPECT_EQ(bad, 0);
    EXPECT_GT(compared, 3 * n * 97 / 100);
  }
}

TEST(FieldTest, CompareWithTheoryKnownAnswers) {
  ModelField f;
  f.n = 3;
  f.input_dim = 2;
  f.output_dim = 1;
  f.gradients = {1, 0, 0, 2, 0, 0};
  // |g - t| / |t|: 0 (exact), |(0,2)-(0,1)|/1 = 1, |0 - (0, 0.5)| / 0.5 = 1.
  CompareWithTheory({1, 0, 0, 1, 0, 0.5f}, &f);
  EXPECT_NEAR(f.summary.mean_relative_error, 2.0 / 3, 1e-6);
  EXPECT_NEAR(f.summary.median_relative_error, 1.0, 1e-6);
  EXPECT_NEAR(f.summary.aggregate_relative_error, 1.5 / 2.5, 1e-6);
  ASSERT_EQ(f.relative_errors.size(), 3u);
  EXPECT_FLOAT_EQ(f.relative_errors[0], 0.0f);
  // A zero theory gradient uses eps = 1e-3 * max |t| instead of dividing by zero.
  ModelField z;
  z.n = 2;
  z.input_dim = 1;
  z.output_dim = 1;
  z.gradients = {0.001f, 1};
  CompareWithTheory({0, 1}, &z);
  EXPECT_NEAR(z.relative_errors[0], 1.0, 1e-4);
  EXPECT_TRUE(std::isfinite(z.summary.mean_relative_error));
}

TEST(FieldTest, CancelStops) {
  MlpSpec spec{2, {8}, 1, Activation::kRelu};
  std::vector<LayerWeights> m = {{8, 2, std::vector<float>(16, 0.1f), std::vector<float>(8)},
                                 {1, 8, std::vector<float>(8, 0.1f), std::vector<float>(1)}};
  std::vector<float> pts(200, 0.5f);
  EXPECT_EQ(ComputeInputGradients(spec, {&m}, pts, 100, "cpu", false, [] { return true; })
                .status()
                .code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace gradzoo::core
