// The fused CPU training kernels against LibTorch autograd (gradients, losses), a scalar Adam
// (updates), and each other (every instruction set this CPU runs).
#include "core/train/fused_cpu.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/util/random.h"

namespace gradzoo::core::fused {
namespace {

struct Case {
  MlpSpec spec;
  LossKind loss;
};

std::vector<Case> Cases() {
  return {
      {MlpSpec{2, {32, 32}, 1, Activation::kRelu}, LossKind::kMse},
      {MlpSpec{3, {5, 7}, 2, Activation::kTanh}, LossKind::kMse},
      {MlpSpec{4, {9}, 3, Activation::kGelu}, LossKind::kCrossEntropy},
      {MlpSpec{5, {17, 6, 13}, 4, Activation::kRelu}, LossKind::kCrossEntropy},
      {MlpSpec{1, {3}, 1, Activation::kGelu}, LossKind::kMse},
  };
}

std::vector<Isa> Isas() {
  std::vector<Isa> isas = {Isa::kSse2};
  if (BestIsa() == Isa::kAvx2 || BestIsa() == Isa::kAvx512) isas.push_back(Isa::kAvx2);
  if (BestIsa() == Isa::kAvx512) isas.push_back(Isa::kAvx512);
  return isas;
}

std::string Name(Isa isa) {
  return isa == Isa::kAvx512 ? "avx512" : isa == Isa::kAvx2 ? "avx2" : "sse2";
}

// Random parameters (padding zero), data and targets (one-hot rows for cross-entropy).
struct Problem {
  std::vector<float> params, x, y;
  int64_t n = 0;
};

Problem MakeProblem(const Net& net, int64_t n, uint64_t seed) {
  Rng rng(seed);
  Problem p;
  p.n = n;
  p.params.assign(static_cast<size_t>(net.stride), 0.0f);
  for (int64_t i = 0; i < net.params; ++i) p.params[i] = static_cast<float>(rng.Uniform(-0.8, 0.8));
  const int in = net.widths.front(), out = net.widths.back();
  p.x.resize(static_cast<size_t>(n * in));
  for (float& v : p.x) v = static_cast<float>(rng.Uniform(-1.0, 1.0));
  p.y.assign(static_cast<size_t>(n * out), 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    if (net.loss == LossKind::kCrossEntropy) {
      p.y[r * out + static_cast<int64_t>(rng.Uniform() * out)] = 1.0f;
    } else {
      for (int o = 0; o < out; ++o) p.y[r * out + o] = static_cast<float>(rng.Uniform(-1.0, 1.0));
    }
  }
  return p;
}

// LibTorch autograd: loss and gradient (parameter layout) over the given rows.
double Reference(const Net& net, const Problem& p, const std::vector<int64_t>& rows,
                 std::vector<float>* grad) {
  const int in = net.widths.front(), out = net.widths.back();
  at::Tensor idx = torch::tensor(rows, torch::kLong);
  at::Tensor x = torch::from_blob(const_cast<float*>(p.x.data()), {p.n, in}).index_select(0, idx);
  at::Tensor y = torch::from_blob(const_cast<float*>(p.y.data()), {p.n, out}).index_select(0, idx);
  std::vector<at::Tensor> leaves;
  at::Tensor h = x;
  for (int l = 0; l < net.layers(); ++l) {
    const int a = net.widths[l], c = net.widths[l + 1];
    at::Tensor w = torch::from_blob(const_cast<float*>(p.params.data()) + net.w_offset[l], {c, a})
                       .clone().requires_grad_(true);
    at::Tensor bb = torch::from_blob(const_cast<float*>(p.params.data()) + net.b_offset[l], {c})
                        .clone().requires_grad_(true);
    leaves.push_back(w);
    leaves.push_back(bb);
    h = torch::addmm(bb, h, w.t());
    if (l + 1 < net.layers()) {
      h = net.activation == Activation::kRelu   ? torch::relu(h)
          : net.activation == Activation::kTanh ? torch::tanh(h)
                                                : torch::gelu(h);
    }
  }
  at::Tensor loss = net.loss == LossKind::kMse
                        ? (h - y).pow(2).mean()
                        : -(y * torch::log_softmax(h, 1)).sum(1).mean();
  loss.backward();
  grad->assign(static_cast<size_t>(net.stride), 0.0f);
  for (int l = 0; l < net.layers(); ++l) {
    at::Tensor gw = leaves[2 * l].grad().contiguous(), gb = leaves[2 * l + 1].grad().contiguous();
    std::copy(gw.data_ptr<float>(), gw.data_ptr<float>() + gw.numel(), grad->begin() + net.w_offset[l]);
    std::copy(gb.data_ptr<float>(), gb.data_ptr<float>() + gb.numel(), grad->begin() + net.b_offset[l]);
  }
  return loss.item<double>();
}

std::vector<int64_t> Shuffled(int64_t n, int64_t b, uint64_t seed) {
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[static_cast<int64_t>(rng.Uniform() * (i + 1))]);
  perm.resize(b);
  return perm;
}

// |a - b| <= 2e-5 max|b| per entry: float32 sums over a few hundred rows in another order.
void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  float scale = 1e-6f;
  for (float v : b) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], 2e-5 * scale) << what << " entry " << i;
  }
}

TEST(FusedCpuTest, GradientMatchesAutograd) {
  for (const Case& c : Cases()) {
    for (Isa isa : Isas()) {
      const Net net = Net::Make(c.spec, c.loss, isa);
      Workspace ws(net);
      // 300 rows: more than one chunk; 13 and 1: partial vectors.
      for (int64_t b : {int64_t{1}, int64_t{13}, int64_t{300}}) {
        const Problem p = MakeProblem(net, 400, 17 + b);
        const std::vector<int64_t> rows = Shuffled(p.n, b, 5 + b);
        std::vector<float> want, got(static_cast<size_t>(net.stride), 7.0f);
        const double want_loss = Reference(net, p, rows, &want);
        const double loss = Gradient(net, p.params.data(), p.x.data(), p.y.data(), rows.data(), b,
                                     got.data(), ws);
        const std::string what = Name(isa) + " widths " + std::to_string(net.widths[1]) +
                                 " batch " + std::to_string(b);
        EXPECT_NEAR(loss, want_loss, 1e-5 * std::abs(want_loss)) << what;
        ExpectClose(got, want, what);
      }
      // Null rows: the first b rows in order.
      const Problem p = MakeProblem(net, 70, 3);
      std::vector<int64_t> first(70);
      std::iota(first.begin(), first.end(), 0);
      std::vector<float> want, got(static_cast<size_t>(net.stride));
      const double want_loss = Reference(net, p, first, &want);
      EXPECT_NEAR(Gradient(net, p.params.data(), p.x.data(), p.y.data(), nullptr, 70, got.data(), ws),
                  want_loss, 1e-5 * std::abs(want_loss));
      ExpectClose(got, want, Name(isa) + " all rows");
    }
  }
}

TEST(FusedCpuTest, EvaluateMatchesLibTorch) {
  for (const Case& c : Cases()) {
    for (Isa isa : Isas()) {
      const Net net = Net::Make(c.spec, c.loss, isa);
      Workspace ws(net);
      const Problem p = MakeProblem(net, 531, 11);
      std::vector<int64_t> rows(531);
      std::iota(rows.begin(), rows.end(), 0);
      std::vector<float> unused;
      const double want = Reference(net, p, rows, &unused);
      const LossSum s = Evaluate(net, p.params.data(), p.x.data(), p.y.data(), nullptr, p.n, ws);
      EXPECT_NEAR(s.loss / p.n, want, 1e-5 * std::abs(want)) << Name(isa);
      // Accuracy by a slow loop over LibTorch's forward pass.
      const int in = net.widths.front(), out = net.widths.back();
      at::Tensor h = torch::from_blob(const_cast<float*>(p.x.data()), {p.n, in});
      for (int l = 0; l < net.layers(); ++l) {
        const int a = net.widths[l], o = net.widths[l + 1];
        at::Tensor w = torch::from_blob(const_cast<float*>(p.params.data()) + net.w_offset[l], {o, a});
        at::Tensor bb = torch::from_blob(const_cast<float*>(p.params.data()) + net.b_offset[l], {o});
        h = torch::addmm(bb, h, w.t());
        if (l + 1 < net.layers()) {
          h = net.activation == Activation::kRelu   ? torch::relu(h)
              : net.activation == Activation::kTanh ? torch::tanh(h)
                                                    : torch::gelu(h);
        }
      }
      at::Tensor y = torch::from_blob(const_cast<float*>(p.y.data()), {p.n, out});
      const int64_t correct = (h.argmax(1) == y.argmax(1)).sum().item<int64_t>();
      EXPECT_EQ(s.correct, correct) << Name(isa);
    }
  }
}

TEST(FusedCpuTest, TrainStepIsAdamOnTheGradient) {
  const Case c = Cases()[3];
  for (Isa isa : Isas()) {
    const Net net = Net::Make(c.spec, c.loss, isa);
    Workspace ws(net);
    Problem p = MakeProblem(net, 200, 23);
    const std::vector<int64_t> rows = Shuffled(p.n, 64, 1);
    std::vector<float> m(static_cast<size_t>(net.stride), 0.0f), v = m, grad = m;
    Rng rng(9);
    for (int64_t i = 0; i < net.params; ++i) {
      m[i] = static_cast<float>(rng.Uniform(-0.01, 0.01));
      v[i] = static_cast<float>(rng.Uniform(0.0, 1e-4));
    }
    AdamStep adam;
    adam.step = 0.01 / (1.0 - std::pow(0.9, 3.0));
    adam.bc2 = 1.0 - std::pow(0.999, 3.0);
    Gradient(net, p.params.data(), p.x.data(), p.y.data(), rows.data(), 64, grad.data(), ws);
    std::vector<float> p0 = p.params, m0 = m, v0 = v;
    TrainStep(net, p.params.data(), m.data(), v.data(), p.x.data(), p.y.data(), rows.data(), 64, adam, ws);
    for (int64_t i = 0; i < net.stride; ++i) {
      const double g = grad[i];
      const double mm = 0.9 * m0[i] + 0.1 * g, vv = 0.999 * v0[i] + 0.001 * g * g;
      const double den = std::sqrt(vv / adam.bc2) + 1e-8;
      const double pp = p0[i] - adam.step * mm / den;
      // Float rounding, relative to the terms (m's two terms may cancel); the update inherits
      // m's error and p its own rounding.
      const double m_tol = 1e-6 * (0.9 * std::abs(m0[i]) + 0.1 * std::abs(g)) + 1e-12;
      ASSERT_NEAR(m[i], mm, m_tol) << Name(isa) << " m " << i;
      ASSERT_NEAR(v[i], vv, 1e-6 * vv + 1e-15) << Name(isa) << " v " << i;
      ASSERT_NEAR(p.params[i], pp, 2e-7 * std::abs(p0[i]) + adam.step * (m_tol + 1e-6 * std::abs(mm)) / den + 1e-9)
          << Name(isa) << " p " << i;
      if (i >= net.params) EXPECT_EQ(p.params[i], 0.0f);  // padding stays zero
    }
  }
}

// Three steps of TrainStep against LibTorch end to end: the gradient by autograd and the
// update by torch::optim::Adam (PyTorch's formula: denominator sqrt(v) / sqrt(bc2) + eps), a
// different learning rate each step as the cosine schedule gives. Tolerance: ExpectClose's 2e-5 of
// the largest parameter (float rounding of the gradient sums, carried through three steps).
TEST(FusedCpuTest, TrainStepsMatchTorchOptimAdam) {
  for (const Case& c : Cases()) {
    for (Isa isa : Isas()) {
      const Net net = Net::Make(c.spec, c.loss, isa);
      Workspace ws(net);
      Problem p = MakeProblem(net, 300, 31);
      Problem ref = p;
      std::vector<float> m(static_cast<size_t>(net.stride), 0.0f), v = m;
      std::vector<at::Tensor> leaves;
      for (int l = 0; l < net.layers(); ++l) {
        leaves.push_back(torch::from_blob(ref.params.data() + net.w_offset[l],
                                          {net.widths[l + 1], net.widths[l]})
                             .requires_grad_(true));
        leaves.push_back(
            torch::from_blob(ref.params.data() + net.b_offset[l], {net.widths[l + 1]}).requires_grad_(true));
      }
      torch::optim::Adam opt(leaves, torch::optim::AdamOptions(1.0).betas({0.9, 0.999}).eps(1e-8));
      const double lrs[3] = {0.02, 0.015, 0.005};
      for (int t = 1; t <= 3; ++t) {
        const std::vector<int64_t> rows = Shuffled(p.n, 70, 40 + t);
        AdamStep adam;
        adam.step = lrs[t - 1] / (1.0 - std::pow(0.9, t));
        adam.bc2 = 1.0 - std::pow(0.999, t);
        TrainStep(net, p.params.data(), m.data(), v.data(), p.x.data(), p.y.data(), rows.data(), 70,
                  adam, ws);
        // Reference: autograd gradient at the reference parameters, then the optimizer.
        std::vector<float> grad;
        Reference(net, ref, rows, &grad);
        for (int l = 0; l < net.layers(); ++l) {
          leaves[2 * l].mutable_grad() =
              torch::from_blob(grad.data() + net.w_offset[l], {net.widths[l + 1], net.widths[l]}).clone();
          leaves[2 * l + 1].mutable_grad() =
              torch::from_blob(grad.data() + net.b_offset[l], {net.widths[l + 1]}).clone();
        }
        static_cast<torch::optim::AdamOptions&>(opt.param_groups()[0].options()).lr(lrs[t - 1]);
        opt.step();
      }
      ExpectClose(p.params, ref.params, Name(isa) + " widths " + std::to_string(net.widths[1]));
    }
  }
}

TEST(FusedCpuTest, SuitsZooSizedNetworksOnly) {
  EXPECT_TRUE(Suits(MlpSpec{2, {32, 32}, 1, Activation::kRelu}));
  EXPECT_TRUE(Suits(MlpSpec{784, {64}, 10, Activation::kRelu}));
  EXPECT_FALSE(Suits(MlpSpec{784, {256, 128}, 10, Activation::kRelu}));
  const Net net = Net::Make(MlpSpec{2, {32, 32}, 1, Activation::kRelu}, LossKind::kMse);
  EXPECT_EQ(net.params, 2 * 32 + 32 + 32 * 32 + 32 + 32 + 1);
  EXPECT_EQ(net.stride % 16, 0);
  EXPECT_EQ(net.w_offset, (std::vector<int64_t>{0, 96, 1152}));
  EXPECT_EQ(net.b_offset, (std::vector<int64_t>{64, 1120, 1184}));
}

}  // namespace
}  // namespace gradzoo::core::fused
