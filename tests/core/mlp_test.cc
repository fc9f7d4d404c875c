// Known answers for core/nn: the analytic input Jacobian and the hand-written MSE backward pass
// against LibTorch autograd (an independent reference) and central finite differences.
#include "core/nn/mlp.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/util/random.h"

namespace gradzoo::core {
namespace {

struct Case {
  MlpSpec spec;
  const char* name;
};

std::vector<Case> Cases() {
  return {
      {{4, {16, 16}, 2, Activation::kRelu}, "relu_reverse"},
      {{4, {16, 8}, 2, Activation::kGelu}, "gelu_reverse"},
      {{3, {10}, 2, Activation::kTanh}, "tanh_reverse"},
      {{2, {12, 12}, 5, Activation::kRelu}, "relu_forward_mode"},
      {{2, {7}, 6, Activation::kTanh}, "tanh_forward_mode"},
      {{3, {}, 2, Activation::kRelu}, "linear"},
  };
}

at::Tensor RandomPoints(int64_t k, int64_t n, int in, uint64_t seed) {
  at::Tensor x = at::empty({k, n, in}, at::kFloat);
  Rng rng(seed);
  for (int64_t i = 0; i < x.numel(); ++i) x.data_ptr<float>()[i] = static_cast<float>(rng.Uniform(-1, 1));
  return x;
}

TEST(MlpTest, InputJacobianMatchesAutograd) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    StackedMlp mlp = InitStacked(c.spec, {1, 2, 3}, at::kCPU);
    at::Tensor x = RandomPoints(3, 20, c.spec.input_dim, 9).to(at::kDouble);
    for (auto& w : mlp.weight) w = w.to(at::kDouble);
    for (auto& b : mlp.bias) b = b.to(at::kDouble);
    Capture cap;
    Forward(mlp, x, &cap);
    at::Tensor j = InputJacobian(mlp, cap);
    ASSERT_EQ(j.sizes(), (std::vector<int64_t>{3, 20, c.spec.output_dim, c.spec.input_dim}));
    // Reference: autograd, one output at a time.
    at::Tensor xr = x.clone().requires_grad_(true);
    at::Tensor y = Forward(mlp, xr, nullptr);
    for (int o = 0; o < c.spec.output_dim; ++o) {
      at::Tensor g = torch::autograd::grad({y.select(2, o).sum()}, {xr}, {}, true)[0];
      EXPECT_TRUE(at::allclose(j.select(2, o), g, 1e-10, 1e-10)) << "output " << o;
    }
  }
}

// Central finite differences in double precision: error O(h^2) away from ReLU kinks; points
// within h of a kink are rare at this size, so compare the median error.
TEST(MlpTest, InputJacobianMatchesFiniteDifferences) {
  MlpSpec spec{4, {16, 16}, 2, Activation::kGelu};
  StackedMlp mlp = InitStacked(spec, {4}, at::kCPU);
  for (auto& w : mlp.weight) w = w.to(at::kDouble);
  for (auto& b : mlp.bias) b = b.to(at::kDouble);
  at::Tensor x = RandomPoints(1, 30, 4, 3).to(at::kDouble);
  Capture cap;
  Forward(mlp, x, &cap);
  at::Tensor j = InputJacobian(mlp, cap);
  const double h = 1e-5;
  for (int i = 0; i < 4; ++i) {
    at::Tensor e = at::zeros_like(x);
    e.select(2, i).fill_(h);
    at::Tensor fd = (Forward(mlp, x + e, nullptr) - Forward(mlp, x - e, nullptr)) / (2 * h);
    EXPECT_TRUE(at::allclose(j.select(3, i), fd, 1e-6, 1e-8)) << "input " << i;
  }
}

TEST(MlpTest, MseBackwardMatchesAutograd) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    StackedMlp mlp = InitStacked(c.spec, {5, 6}, at::kCPU);
    at::Tensor x = RandomPoints(2, 17, c.spec.input_dim, 1).to(at::kDouble);
    at::Tensor y = RandomPoints(2, 17, c.spec.output_dim, 2).to(at::kDouble);
    for (auto& w : mlp.weight) w = w.to(at::kDouble).requires_grad_(true);
    for (auto& b : mlp.bias) b = b.to(at::kDouble).requires_grad_(true);
    Capture cap;
    at::Tensor pred = Forward(mlp, x, &cap);
    std::vector<at::Tensor> grads;
    {
      at::NoGradGuard no_grad;
      grads = MseBackward(mlp, x, y, cap, pred);
    }
    at::Tensor loss = (pred - y).pow(2).mean({1, 2}).sum();
    std::vector<at::Tensor> params;
    for (size_t l = 0; l < mlp.weight.size(); ++l) {
      params.push_back(mlp.weight[l]);
      params.push_back(mlp.bias[l]);
    }
    auto ref = torch::autograd::grad({loss}, params);
    ASSERT_EQ(ref.size(), grads.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_TRUE(at::allclose(grads[i], ref[i], 1e-10, 1e-12)) << "param " << i;
    }
  }
}

TEST(MlpTest, CrossEntropyBackwardMatchesAutograd) {
  MlpSpec spec{3, {7}, 4, Activation::kGelu};
  StackedMlp mlp = InitStacked(spec, {5, 6}, at::kCPU);
  at::Tensor x = RandomPoints(2, 9, 3, 1).to(at::kDouble);
  at::Tensor y = at::softmax(RandomPoints(2, 9, 4, 2).to(at::kDouble) * 3, 2);  // distributions
  for (auto& w : mlp.weight) w = w.to(at::kDouble).requires_grad_(true);
  for (auto& b : mlp.bias) b = b.to(at::kDouble).requires_grad_(true);
  Capture cap;
  at::Tensor pred = Forward(mlp, x, &cap);
  std::vector<at::Tensor> grads;
  {
    at::NoGradGuard no_grad;
    grads = CrossEntropyBackward(mlp, x, y, cap, pred);
  }
  at::Tensor loss = -(y * at::log_softmax(pred, 2)).sum(2).mean(1).sum();
  std::vector<at::Tensor> params = {mlp.weight[0], mlp.bias[0], mlp.weight[1], mlp.bias[1]};
  auto ref = torch::autograd::grad({loss}, params);
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_TRUE(at::allclose(grads[i], ref[i], 1e-10, 1e-12)) << "param " << i;
  }
}

TEST(MlpTest, StackUnstackRoundTrip) {
  MlpSpec spec{4, {8}, 2, Activation::kRelu};
  StackedMlp a = InitStacked(spec, {1, 2}, at::kCPU);
  std::vector<LayerWeights> m0 = Unstack(a, 0), m1 = Unstack(a, 1);
  StackedMlp b = Stack(spec, {&m1, &m0}, at::kCPU);
  EXPECT_TRUE(at::equal(b.weight[0][0], a.weight[0][1]));
  EXPECT_TRUE(at::equal(b.bias[1][1], a.bias[1][0]));
  // Init is deterministic per seed, independent of the other models.
  StackedMlp c = InitStacked(spec, {2}, at::kCPU);
  EXPECT_TRUE(at::equal(c.weight[0][0], a.weight[0][1]));
}

TEST(MlpTest, ReluJacobianIsPiecewiseConstant) {
  // For ReLU nets the Jacobian is W_L D ... D W_1: identical for two points with the same
  // activation pattern. Nudging a point by 1e-7 keeps its pattern almost surely.
  MlpSpec spec{2, {8, 8}, 1, Activation::kRelu};
  StackedMlp mlp = InitStacked(spec, {3}, at::kCPU);
  at::Tensor x = RandomPoints(1, 10, 2, 4);
  Capture c1, c2;
  Forward(mlp, x, &c1);
  Forward(mlp, x + 1e-7, &c2);
  EXPECT_TRUE(at::allclose(InputJacobian(mlp, c1), InputJacobian(mlp, c2), 1e-5, 1e-6));
}

}  // namespace
}  // namespace gradzoo::core
