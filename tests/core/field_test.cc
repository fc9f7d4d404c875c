#include "core/grad/field.h"

#include <gtest/gtest.h>

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
