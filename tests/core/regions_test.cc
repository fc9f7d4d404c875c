// Known answers for core/grad/regions: hand-computed regions of a 1-hidden-layer net, a slow
// float64 reference loop for counts on random (partly sparse) nets, LibTorch autograd for the
// clustered (tanh/GELU) counts, and the bit layout of activation patterns.
#include "core/grad/regions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <random>
#include <set>

#include "core/grad/bit_keys.h"
#include "core/grad/grad_internal.h"
#include "core/nn/mlp.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::gradzoo::testing::StatusIs;

// Random weights ~ N(0, 1/in), biases ~ N(0, 0.3); each weight is zeroed with `sparsity`.
std::vector<LayerWeights> RandomNet(const MlpSpec& spec, uint32_t seed, double sparsity = 0.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<LayerWeights> layers;
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    LayerWeights lw{w[l + 1], w[l], std::vector<float>(w[l + 1] * w[l]), std::vector<float>(w[l + 1])};
    for (auto& v : lw.weight) {
      v = static_cast<float>(normal(rng) / std::sqrt(static_cast<double>(w[l])));
      if (unif(rng) < sparsity) v = 0.0f;
    }
    for (auto& v : lw.bias) v = static_cast<float>(0.3 * normal(rng));
    layers.push_back(std::move(lw));
  }
  return layers;
}

std::vector<float> UniformPoints(int64_t n, int in, uint32_t seed, double lo = -1, double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unif(lo, hi);
  std::vector<float> p(static_cast<size_t>(n) * in);
  for (auto& v : p) v = static_cast<float>(unif(rng));
  return p;
}

// The slow reference: float64 forward pass and masked backward loops per point. Gradients are
// compared bit for bit (after -0 -> +0): regions with equal live sets produce the very same
// sums (masked terms are exact zeros), so this counts unique gradients independently of the
// live-set keys.
struct Reference {
  int64_t regions = 0;
  std::vector<int64_t> unique_per_output;
  int64_t combos = 0;
  std::vector<std::vector<int64_t>> unique_pre, unique_post;  // [layer][output]
  std::vector<int64_t> sizes;                                 // descending
  int64_t skipped = 0;  // points within 1e-4 of a kink (float32 vs float64 could disagree)
};

Reference SlowReference(const MlpSpec& spec, const std::vector<LayerWeights>& layers,
                        const std::vector<float>& points, int64_t n) {
  const int hidden = static_cast<int>(spec.hidden.size());
  const int out = spec.output_dim, in = spec.input_dim;
  std::map<std::vector<bool>, int64_t> patterns;
  std::vector<std::set<std::vector<double>>> per_output(out);
  std::set<std::vector<double>> combos;
  std::vector<std::vector<std::set<std::vector<double>>>> pre(hidden), post(hidden);
  for (int l = 0; l < hidden; ++l) {
    pre[l].resize(out);
    post[l].resize(out);
  }
  Reference ref;
  for (int64_t p = 0; p < n; ++p) {
    std::vector<double> h(points.begin() + p * in, points.begin() + (p + 1) * in);
    std::vector<std::vector<double>> masks;
    std::vector<bool> pattern;
    bool near_kink = false;
    for (int l = 0; l < hidden; ++l) {
      const LayerWeights& lw = layers[l];
      std::vector<double> z(lw.out), mask(lw.out);
      for (int v = 0; v < lw.out; ++v) {
        double s = lw.bias[v];
        for (int u = 0; u < lw.in; ++u) s += static_cast<double>(lw.weight[v * lw.in + u]) * h[u];
        z[v] = s;
        near_kink |= std::abs(s) < 1e-4;
        mask[v] = s > 0 ? 1.0 : 0.0;
        pattern.push_back(s > 0);
      }
      for (int v = 0; v < lw.out; ++v) z[v] *= mask[v];
      h = z;
      masks.push_back(mask);
    }
    if (near_kink) {
      ++ref.skipped;
      continue;
    }
    ++patterns[pattern];
    std::vector<double> all;
    for (int o = 0; o < out; ++o) {
      // post = W_L[o, :]; pre_l = post * mask_l; post_{l-1} = pre_l W_l; input = pre_0 W_0.
      const LayerWeights& last = layers[hidden];
      std::vector<double> g(last.in);
      for (int u = 0; u < last.in; ++u) g[u] = last.weight[o * last.in + u];
      for (int l = hidden - 1; l >= 0; --l) {
        std::vector<double> gpost = g;
        for (double& v : gpost) v += 0.0;
        post[l][o].insert(gpost);
        for (size_t u = 0; u < g.size(); ++u) g[u] *= masks[l][u];
        std::vector<double> gpre = g;
        for (double& v : gpre) v += 0.0;
        pre[l][o].insert(gpre);
        const LayerWeights& lw = layers[l];
        std::vector<double> next(lw.in, 0.0);
        for (int v = 0; v < lw.out; ++v) {
          for (int u = 0; u < lw.in; ++u) next[u] += g[v] * static_cast<double>(lw.weight[v * lw.in + u]);
        }
        g = next;
      }
      for (double& v : g) v += 0.0;
      per_output[o].insert(g);
      all.insert(all.end(), g.begin(), g.end());
    }
    combos.insert(all);
  }
  ref.regions = static_cast<int64_t>(patterns.size());
  for (const auto& s : per_output) ref.unique_per_output.push_back(static_cast<int64_t>(s.size()));
  ref.combos = static_cast<int64_t>(combos.size());
  ref.unique_pre.resize(hidden);
  ref.unique_post.resize(hidden);
  for (int l = 0; l < hidden; ++l) {
    for (int o = 0; o < out; ++o) {
      ref.unique_pre[l].push_back(static_cast<int64_t>(pre[l][o].size()));
      ref.unique_post[l].push_back(static_cast<int64_t>(post[l][o].size()));
    }
  }
  for (const auto& [pat, c] : patterns) ref.sizes.push_back(c);
  std::sort(ref.sizes.rbegin(), ref.sizes.rend());
  return ref;
}

// Drops points within 1e-4 of a kink so float32 and float64 patterns agree.
std::vector<float> AwayFromKinks(const MlpSpec& spec, const std::vector<LayerWeights>& layers,
                                 const std::vector<float>& points, int64_t* n) {
  std::vector<float> kept;
  const int in = spec.input_dim;
  for (int64_t p = 0; p < *n; ++p) {
    std::vector<float> one(points.begin() + p * in, points.begin() + (p + 1) * in);
    if (SlowReference(spec, layers, one, 1).skipped == 0) kept.insert(kept.end(), one.begin(), one.end());
  }
  *n = static_cast<int64_t>(kept.size()) / in;
  return kept;
}

TEST(RegionsTest, OneHiddenLayerByHand) {
  // u1 = relu(x1 - x2), u2 = relu(x2); y1 = u1 + 2 u2, y2 = u1 (a zero weight).
  // Regions: (u1, u2) in {00, 01, 10, 11}; y1's gradients (0,0), (0,2), (1,-1), (1,1) are all
  // distinct; y2's are (0,0) or (1,-1); combinations = 4, so the outputs do not coincide.
  MlpSpec spec{2, {2}, 2, Activation::kRelu};
  std::vector<LayerWeights> net = {{2, 2, {1, -1, 0, 1}, {0, 0}}, {2, 2, {1, 2, 1, 0}, {0, 0}}};
  // A 20 x 20 grid on [-0.975, 0.975]^2 (no point on a kink): count each pattern by hand.
  std::vector<float> pts;
  std::map<std::pair<bool, bool>, int64_t> by_hand;
  for (int i = 0; i < 20; ++i) {
    for (int j = 0; j < 20; ++j) {
      const float x1 = -0.975f + 0.1f * i, x2 = -0.975f + 0.1f * j + 0.0123f;
      pts.push_back(x1);
      pts.push_back(x2);
      ++by_hand[{x1 - x2 > 0, x2 > 0}];
    }
  }
  ASSERT_EQ(by_hand.size(), 4u);
  std::vector<int64_t> sizes;
  for (const auto& [k, c] : by_hand) sizes.push_back(c);
  std::sort(sizes.rbegin(), sizes.rend());

  RegionOptions opt;
  opt.per_layer = true;
  ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(spec, net, pts, 400, "cpu", opt, {}));
  EXPECT_EQ(r.points, 400);
  EXPECT_EQ(r.regions, 4);
  EXPECT_THAT(r.unique_gradients_per_output, ElementsAre(4, 2));
  EXPECT_EQ(r.unique_gradient_combinations, 4);
  EXPECT_FALSE(r.outputs_coincide);
  EXPECT_EQ(r.region_sizes, sizes);
  EXPECT_FALSE(r.region_sizes_truncated);
  EXPECT_EQ(r.singleton_regions, 0);
  EXPECT_FALSE(r.saturated);
  EXPECT_FALSE(r.clustered);
  // d y / d h_0 = W_2 rows (constant); d y / d z_0 = W_2 rows masked: y1 sees 4 masks, y2 only
  // u1's bit (its weight on u2 is zero).
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_THAT(r.layers[0].unique_post, ElementsAre(1, 1));
  EXPECT_THAT(r.layers[0].unique_pre, ElementsAre(4, 2));

  opt.max_region_sizes = 2;
  ASSERT_OK_AND_ASSIGN(RegionCounts cut, CountRegions(spec, net, pts, 400, "cpu", opt, {}));
  EXPECT_EQ(cut.region_sizes, std::vector<int64_t>(sizes.begin(), sizes.begin() + 2));
  EXPECT_TRUE(cut.region_sizes_truncated);
}

TEST(RegionsTest, CountsMatchSlowReferenceOnRandomNets) {
  struct Case {
    MlpSpec spec;
    double sparsity;
    double range;
  };
  const std::vector<Case> cases = {
      {{2, {8, 8}, 2, Activation::kRelu}, 0.0, 1.0},
      {{3, {6, 5, 4}, 3, Activation::kRelu}, 0.35, 2.0},   // zero weights: live sets matter
      {{2, {70, 3}, 2, Activation::kRelu}, 0.5, 1.0},      // two words for layer 0
      {{4, {3, 3}, 2, Activation::kRelu}, 0.3, 3.0},       // dead layers merge gradients
  };
  int seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(seed);
    const auto net = RandomNet(c.spec, seed, c.sparsity);
    int64_t n = 3000;
    const auto raw = UniformPoints(n, c.spec.input_dim, seed + 100, -c.range, c.range);
    const auto pts = AwayFromKinks(c.spec, net, raw, &n);
    ++seed;
    ASSERT_GT(n, 2500);
    const Reference ref = SlowReference(c.spec, net, pts, n);
    ASSERT_EQ(ref.skipped, 0);
    RegionOptions opt;
    opt.per_layer = true;
    opt.max_region_sizes = 100000;
    ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(c.spec, net, pts, n, "cpu", opt, {}));
    EXPECT_EQ(r.regions, ref.regions);
    EXPECT_EQ(r.unique_gradients_per_output, ref.unique_per_output);
    EXPECT_EQ(r.unique_gradient_combinations, ref.combos);
    EXPECT_EQ(r.region_sizes, ref.sizes);
    bool coincide = true;
    for (int64_t u : ref.unique_per_output) coincide &= u == ref.combos;
    EXPECT_EQ(r.outputs_coincide, coincide);
    ASSERT_EQ(r.layers.size(), c.spec.hidden.size());
    for (size_t l = 0; l < r.layers.size(); ++l) {
      EXPECT_EQ(r.layers[l].unique_pre, ref.unique_pre[l]) << "layer " << l;
      EXPECT_EQ(r.layers[l].unique_post, ref.unique_post[l]) << "layer " << l;
    }
  }
}

TEST(RegionsTest, DenseNetsHaveCoincidingOutputsAndSaturate) {
  // Dense weights: every output's gradient is keyed by the same live pattern, so the counts
  // coincide (seed 001's observation). 300 random points in 4-D through 64 + 64 units almost
  // all land in their own region.
  MlpSpec spec{4, {64, 64}, 2, Activation::kRelu};
  const auto net = RandomNet(spec, 7);
  const auto pts = UniformPoints(300, 4, 8);
  ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(spec, net, pts, 300, "cpu", {}, {}));
  EXPECT_TRUE(r.outputs_coincide);
  EXPECT_TRUE(r.saturated);
  EXPECT_GT(2 * r.singleton_regions, 300);
  // The same points repeated 4 times: no singletons left.
  std::vector<float> rep;
  for (int i = 0; i < 4; ++i) rep.insert(rep.end(), pts.begin(), pts.end());
  ASSERT_OK_AND_ASSIGN(RegionCounts r4, CountRegions(spec, net, rep, 1200, "cpu", {}, {}));
  EXPECT_EQ(r4.regions, r.regions);
  EXPECT_EQ(r4.singleton_regions, 0);
  EXPECT_FALSE(r4.saturated);
}

TEST(RegionsTest, TanhClustersByHand) {
  // y = tanh(x): gradient 1 - tanh(x)^2 = 1, 0.99999999, 0.41997, 0.41997, 0.00987 at these
  // points; s = 1, eps = 0.01 * s: cells 100, 100, 42, 42, 1 -> three clusters.
  MlpSpec spec{1, {1}, 1, Activation::kTanh};
  std::vector<LayerWeights> net = {{1, 1, {1}, {0}}, {1, 1, {1}, {0}}};
  std::vector<float> pts = {0.0f, 0.0001f, 1.0f, 1.0001f, 3.0f};
  RegionOptions opt;
  opt.tolerance = 0.01;
  opt.per_layer = true;
  ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(spec, net, pts, 5, "cpu", opt, {}));
  EXPECT_TRUE(r.clustered);
  EXPECT_DOUBLE_EQ(r.tolerance, 0.01);
  EXPECT_EQ(r.regions, 3);
  EXPECT_THAT(r.unique_gradients_per_output, ElementsAre(3));
  EXPECT_EQ(r.unique_gradient_combinations, 3);
  EXPECT_TRUE(r.outputs_coincide);
  EXPECT_THAT(r.region_sizes, ElementsAre(2, 2, 1));
  // d y / d h = 1 everywhere; d y / d z = the same three clusters.
  EXPECT_THAT(r.layers[0].unique_post, ElementsAre(1));
  EXPECT_THAT(r.layers[0].unique_pre, ElementsAre(3));
}

TEST(RegionsTest, GeluClustersMatchAutogradReference) {
  // Reference: autograd gradients in float64, rounded to the same grid. Float32 vs float64 can
  // move a gradient across a cell boundary, so allow 2% difference.
  MlpSpec spec{2, {16, 16}, 2, Activation::kGelu};
  const auto net = RandomNet(spec, 11);
  const int64_t n = 4000;
  const auto pts = UniformPoints(n, 2, 12);
  RegionOptions opt;
  opt.tolerance = 0.05;
  ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(spec, net, pts, n, "cpu", opt, {}));
  EXPECT_TRUE(r.clustered);

  at::Tensor x = torch::from_blob(const_cast<float*>(pts.data()), {n, 2}).to(at::kDouble).requires_grad_(true);
  at::Tensor h = x;
  for (size_t l = 0; l < net.size(); ++l) {
    at::Tensor w = torch::from_blob(const_cast<float*>(net[l].weight.data()), {net[l].out, net[l].in}).to(at::kDouble);
    at::Tensor b = torch::from_blob(const_cast<float*>(net[l].bias.data()), {net[l].out}).to(at::kDouble);
    h = at::matmul(h, w.t()) + b;
    if (l + 1 < net.size()) h = at::gelu(h);
  }
  std::vector<at::Tensor> grads;
  for (int o = 0; o < 2; ++o) {
    grads.push_back(torch::autograd::grad({h.select(1, o).sum()}, {x}, {}, true)[0]);
  }
  std::set<std::vector<int64_t>> combos;
  std::vector<std::set<std::vector<int64_t>>> per(2);
  std::vector<double> eps(2);
  for (int o = 0; o < 2; ++o) eps[o] = 0.05 * grads[o].abs().max().item<double>();
  for (int64_t p = 0; p < n; ++p) {
    std::vector<int64_t> all;
    for (int o = 0; o < 2; ++o) {
      std::vector<int64_t> cell;
      for (int i = 0; i < 2; ++i) cell.push_back(std::llround(grads[o][p][i].item<double>() / eps[o]));
      per[o].insert(cell);
      all.insert(all.end(), cell.begin(), cell.end());
    }
    combos.insert(all);
  }
  EXPECT_NEAR(r.regions, static_cast<double>(combos.size()), 0.02 * combos.size());
  for (int o = 0; o < 2; ++o) {
    EXPECT_NEAR(r.unique_gradients_per_output[o], static_cast<double>(per[o].size()), 0.02 * per[o].size() + 1);
  }
}

TEST(RegionsTest, PatternLayoutAndOptionChecks) {
  // Layer 0 has 70 units (two words), layer 1 has 3 (one word): 3 words per point.
  MlpSpec spec{1, {70, 3}, 1, Activation::kRelu};
  std::vector<LayerWeights> net = {{70, 1, std::vector<float>(70, 1.0f), std::vector<float>(70, 0.0f)},
                                   {3, 70, std::vector<float>(210, 0.0f), {1, -1, 0}},
                                   {1, 3, {1, 1, 1}, {0}}};
  net[0].weight[69] = -1.0f;  // unit 69 is active for x < 0 only
  ASSERT_OK_AND_ASSIGN(auto bits, ActivationPatterns(spec, net, {0.5f, -0.5f}, 2, "cpu", {}));
  ASSERT_EQ(bits.size(), 6u);
  EXPECT_EQ(bits[0], ~uint64_t{0});  // x = 0.5: units 0..63 on
  EXPECT_EQ(bits[1], (uint64_t{1} << 5) - 1);  // units 64..68 on, 69 off
  EXPECT_EQ(bits[2], 1u);                      // layer 1: bias 1 on, -1 off, 0 off
  EXPECT_EQ(bits[3], 0u);
  EXPECT_EQ(bits[4], uint64_t{1} << 5);
  EXPECT_EQ(bits[5], 1u);

  RegionOptions bad;
  bad.tolerance = 1.5;
  EXPECT_THAT(CountRegions(spec, net, {0.5f}, 1, "cpu", bad, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tolerance")));
  bad.tolerance = 0;
  bad.max_region_sizes = -1;
  EXPECT_THAT(CountRegions(spec, net, {0.5f}, 1, "cpu", bad, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_region_sizes")));
  EXPECT_THAT(CountRegions(spec, net, {0.5f, 1.0f}, 1, "cpu", {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shape")));
  EXPECT_THAT(CountRegions(spec, net, {0.5f}, 1, "cpu", {}, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST(RegionsTest, PatternDeduplicatedInputJacobianMatchesAutograd) {
  // core/nn's InputJacobian forms the ReLU product once per activation pattern on large float32
  // point sets. Model 0 sees a 128 x 64 grid of a 2-D slice (few regions: the pattern path);
  // model 1 sees random points of [-1, 1]^4 (mostly one point per region: the direct path).
  // Reference: autograd through the same float32 forward pass, and the direct path on small
  // chunks.
  MlpSpec spec{4, {32, 32}, 2, Activation::kRelu};
  StackedMlp mlp = InitStacked(spec, {3, 4}, at::kCPU);
  const int64_t n = 128 * 64;
  at::Tensor x = at::empty({2, n, 4}, at::kFloat);
  for (int64_t p = 0; p < n; ++p) {
    x[0][p] = torch::tensor({(p / 64) / 127.0f, (p % 64) / 63.0f, 0.5f, 0.5f});
  }
  const std::vector<float> random = UniformPoints(n, 4, 31);
  x[1] = torch::from_blob(const_cast<float*>(random.data()), {n, 4}).clone();
  // Both paths are taken: model 0 has few regions on its points, model 1 mostly singletons.
  for (int64_t k = 0; k < 2; ++k) {
    at::Tensor xk = x[k].contiguous();
    const std::vector<float> pts(xk.data_ptr<float>(), xk.data_ptr<float>() + xk.numel());
    ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(spec, Unstack(mlp, k), pts, n, "cpu", {}, {}));
    EXPECT_EQ(2 * r.regions > n, k == 1) << r.regions;
  }
  Capture cap;
  Forward(mlp, x, &cap);
  at::Tensor j = InputJacobian(mlp, cap);
  ASSERT_EQ(j.sizes(), (std::vector<int64_t>{2, n, 2, 4}));
  at::Tensor xr = x.clone().requires_grad_(true);
  at::Tensor y = Forward(mlp, xr, nullptr);
  for (int o = 0; o < 2; ++o) {
    at::Tensor g = torch::autograd::grad({y.select(2, o).sum()}, {xr}, {}, true)[0];
    EXPECT_TRUE(at::allclose(j.select(2, o), g, 1e-5, 1e-6)) << "output " << o;
  }
  for (int64_t start = 0; start < n; start += 1000) {  // the direct path (n < 4096)
    const int64_t m = std::min<int64_t>(1000, n - start);
    Capture small;  // the same pre-activations (a new forward pass could flip kink points)
    for (const at::Tensor& z : cap.pre) small.pre.push_back(z.narrow(1, start, m));
    at::Tensor diff = (InputJacobian(mlp, small) - j.narrow(1, start, m)).abs();
    EXPECT_LT(diff.max().item<double>(), 1e-5 * j.abs().max().item<double>())
        << diff.max().item<double>() << " at " << diff.argmax().item<int64_t>() << " of chunk " << start;
  }
}

TEST(RegionsTest, SecondLayerMapsAcrossChunksMatchTheLayer) {
  // grad_internal::CollapsedSecondLayer with maps kept across chunks (unbounded, and capped at 5
  // so later patterns get chunk-local maps) must give the same floats as chunk-local maps
  // alone (the same float64 sums), and z_2 = W_2 relu(W_1 x + b_1) + b_2 (LibTorch, float64)
  // within float32 rounding.
  MlpSpec spec{3, {6, 10}, 2, Activation::kRelu};  // <= 42 first-layer regions in 3-D
  StackedMlp mlp = InitStacked(spec, {7}, at::kCPU);
  const int64_t n = 3000, chunk = 1000;
  const std::vector<float> raw = UniformPoints(n, 3, 41);
  const at::Tensor x = torch::from_blob(const_cast<float*>(raw.data()), {n, 3}).clone();
  at::Tensor z1 = at::addmm(mlp.bias[0][0][0], x, mlp.weight[0][0].t()).contiguous();
  std::vector<uint64_t> bits(n);  // one word: layer 0's 6 bits
  for (int64_t p = 0; p < n; ++p) PackPositive(z1.data_ptr<float>() + p * 6, 6, &bits[p]);
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor ref = at::addmm(mlp.bias[1][0][0].to(at::kDouble),
                                   at::addmm(mlp.bias[0][0][0].to(at::kDouble), xd,
                                             mlp.weight[0][0].t().to(at::kDouble))
                                       .clamp_min(0),
                                   mlp.weight[1][0].t().to(at::kDouble));
  grad_internal::SecondLayerMaps all(mlp), capped(mlp, 5);
  for (int64_t start = 0; start < n; start += chunk) {
    const at::Tensor xc = x.narrow(0, start, chunk).contiguous();
    const uint64_t* b = bits.data() + start;
    at::Tensor local = grad_internal::CollapsedSecondLayer(mlp, xc, b, 1);
    at::Tensor kept = grad_internal::CollapsedSecondLayer(mlp, xc, b, 1, &all);
    at::Tensor few = grad_internal::CollapsedSecondLayer(mlp, xc, b, 1, &capped);
    ASSERT_TRUE(local.defined() && kept.defined() && few.defined());  // few patterns (6 units)
    EXPECT_TRUE(at::equal(local, kept)) << start;
    EXPECT_TRUE(at::equal(local, few)) << start;
    const double err = (kept.to(at::kDouble) - ref.narrow(0, start, chunk)).abs().max().item<double>();
    EXPECT_LT(err, 1e-5) << start;
  }
  EXPECT_GT(all.size(), 5);
  EXPECT_EQ(capped.size(), 5);
  // A chunk with more than m / 8 new patterns beyond the cap falls back to the GEMM (undefined).
  grad_internal::SecondLayerMaps none(mlp, 0);
  std::vector<uint64_t> distinct(16);
  for (int p = 0; p < 16; ++p) distinct[p] = p;
  EXPECT_FALSE(grad_internal::CollapsedSecondLayer(mlp, x.narrow(0, 0, 16).contiguous(),
                                                   distinct.data(), 1, &none)
                   .defined());
}

TEST(RegionsTest, ManyChunksMatchSlowReference) {
  // 30000 random points of [-2, 2]^4 (several chunks, so the second-layer maps persist across
  // chunks) against the float64 reference loop.
  const MlpSpec spec{4, {10, 8}, 2, Activation::kRelu};
  const auto net = RandomNet(spec, 77);
  int64_t n = 30000;
  const auto pts = AwayFromKinks(spec, net, UniformPoints(n, 4, 78, -2, 2), &n);
  ASSERT_GT(n, 25000);
  const Reference ref = SlowReference(spec, net, pts, n);
  ASSERT_EQ(ref.skipped, 0);
  RegionOptions opt;
  opt.max_region_sizes = 100000;
  ASSERT_OK_AND_ASSIGN(RegionCounts r, CountRegions(spec, net, pts, n, "cpu", opt, {}));
  EXPECT_EQ(r.regions, ref.regions);
  EXPECT_EQ(r.region_sizes, ref.sizes);
}

TEST(RegionsTest, PackPositiveMatchesScalarBits) {
  // 70 values (two words, an SSE2 tail): z > 0 sets the bit; 0, -0, negatives and NaN do not.
  std::vector<float> z(70);
  for (int u = 0; u < 70; ++u) z[u] = static_cast<float>((u * 37) % 11) - 5.0f;
  z[3] = 0.0f;
  z[5] = -0.0f;
  z[8] = NAN;
  z[69] = 1e-30f;
  uint64_t words[2] = {~uint64_t{0}, ~uint64_t{0}};
  PackPositive(z.data(), 70, words);
  for (int u = 0; u < 70; ++u) {
    EXPECT_EQ((words[u / 64] >> (u % 64)) & 1, z[u] > 0.0f ? 1u : 0u) << u;
  }
  EXPECT_EQ(words[1] >> 6, 0u);  // bits past the width stay clear
}

TEST(RegionsTest, BitKeySetIsExact) {
  BitKeySet set(2);
  std::vector<uint64_t> keys;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) keys.push_back(rng() & 0xFF);  // many repeats
  std::set<std::pair<uint64_t, uint64_t>> ref;
  for (size_t i = 0; i + 1 < keys.size(); i += 2) {
    const uint64_t k[2] = {keys[i], keys[i + 1] & 3};
    const int64_t before = set.size();
    const int64_t id = set.Insert(k);
    const bool inserted = ref.insert({k[0], k[1]}).second;
    EXPECT_EQ(set.size(), before + (inserted ? 1 : 0));
    EXPECT_EQ(set.Find(k), id);
    EXPECT_EQ(set.key(id)[0], k[0]);
  }
  EXPECT_EQ(set.size(), static_cast<int64_t>(ref.size()));
  const uint64_t absent[2] = {1000, 0};
  EXPECT_EQ(set.Find(absent), -1);
}

}  // namespace
}  // namespace gradzoo::core
