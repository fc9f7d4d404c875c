// Known answers for core/grad/partition: the closed-form region count of n lines in general
// position, per-region gradients against LibTorch autograd and central finite differences,
// outputs and patterns at region centroids, and dense sampling (sampled patterns are a subset
// of the exact ones and their count converges to the exact count).
#include "core/grad/partition.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <random>
#include <set>

#include "core/grad/bit_keys.h"
#include "core/grad/regions.h"
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
    for (auto& v : lw.bias) v = static_cast<float>(0.5 * normal(rng));
    layers.push_back(std::move(lw));
  }
  return layers;
}

// Float64 forward pass of one point: outputs and the activation pattern.
struct Eval {
  std::vector<double> y;
  std::vector<uint64_t> pattern;
  double min_abs_z = INFINITY;
};
Eval Evaluate(const MlpSpec& spec, const std::vector<LayerWeights>& net, std::vector<double> h) {
  Eval e;
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  e.pattern.assign(offsets.back(), 0);
  for (size_t l = 0; l < net.size(); ++l) {
    const LayerWeights& lw = net[l];
    std::vector<double> z(lw.out);
    for (int v = 0; v < lw.out; ++v) {
      double s = lw.bias[v];
      for (int u = 0; u < lw.in; ++u) s += static_cast<double>(lw.weight[v * lw.in + u]) * h[u];
      z[v] = s;
    }
    if (l + 1 < net.size()) {
      for (int v = 0; v < lw.out; ++v) {
        e.min_abs_z = std::min(e.min_abs_z, std::abs(z[v]));
        if (z[v] > 0) e.pattern[offsets[l] + v / 64] |= uint64_t{1} << (v % 64);
        z[v] = std::max(z[v], 0.0);
      }
    }
    h = z;
  }
  e.y = h;
  return e;
}

std::pair<double, double> Centroid(const PartitionRegion& r) {
  const size_t n = r.vertices.size() / 2;
  double cx = 0, cy = 0, a = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x0 = r.vertices[2 * i], y0 = r.vertices[2 * i + 1];
    const double x1 = r.vertices[2 * ((i + 1) % n)], y1 = r.vertices[2 * ((i + 1) % n) + 1];
    const double cr = x0 * y1 - x1 * y0;
    a += cr;
    cx += (x0 + x1) * cr;
    cy += (y0 + y1) * cr;
  }
  return {cx / (3 * a), cy / (3 * a)};
}

double AreaSum(const Partition& p) {
  double s = 0;
  for (const auto& r : p.regions) s += r.area;
  return s;
}

TEST(PartitionTest, OneHiddenLayerOfNLinesInGeneralPosition) {
  for (int n : {1, 2, 5, 12}) {
    SCOPED_TRACE(n);
    MlpSpec spec{2, {n}, 1, Activation::kRelu};
    auto net = RandomNet(spec, 100 + n);
    // A window holding every pairwise intersection (so every line crosses it), with margin.
    double x0 = -1, x1 = 1, y0 = -1, y1 = 1;
    const auto& w = net[0].weight;
    const auto& b = net[0].bias;
    for (int i = 0; i < n; ++i) {
      for (int j = i + 1; j < n; ++j) {
        const double det = static_cast<double>(w[2 * i]) * w[2 * j + 1] - static_cast<double>(w[2 * i + 1]) * w[2 * j];
        ASSERT_GT(std::abs(det), 1e-6);
        const double x = (-b[i] * static_cast<double>(w[2 * j + 1]) + b[j] * static_cast<double>(w[2 * i + 1])) / det;
        const double y = (-b[j] * static_cast<double>(w[2 * i]) + b[i] * static_cast<double>(w[2 * j])) / det;
        x0 = std::min(x0, x - 1);
        x1 = std::max(x1, x + 1);
        y0 = std::min(y0, y - 1);
        y1 = std::max(y1, y + 1);
      }
    }
    // With n = 1 the single line must cross the window: it passes within |b| / |w| of 0.
    const double reach = 2 + std::abs(b[0]) / std::hypot(w[0], w[1]);
    x0 = std::min(x0, -reach), x1 = std::max(x1, reach), y0 = std::min(y0, -reach), y1 = std::max(y1, reach);
    SliceSpec s{0, 1, x0, x1, y0, y1, {}};
    ASSERT_OK_AND_ASSIGN(Partition p, ComputePartition(spec, net, s, {}, {}));
    EXPECT_EQ(static_cast<int>(p.regions.size()), 1 + n + n * (n - 1) / 2);
    EXPECT_NEAR(p.slice_area, (x1 - x0) * (y1 - y0), 1e-9);
    EXPECT_NEAR(AreaSum(p), p.slice_area, 1e-9 * p.slice_area);
    std::set<std::vector<uint64_t>> patterns;
    for (const auto& r : p.regions) {
      EXPECT_GT(r.area, 0);
      patterns.insert(r.pattern);
    }
    EXPECT_EQ(patterns.size(), p.regions.size());  // one convex cell per pattern
  }
}

TEST(PartitionTest, RegionGradientsMatchAutogradFiniteDifferencesAndOutputs) {
  MlpSpec spec{3, {8, 8}, 2, Activation::kRelu};
  const auto net = RandomNet(spec, 5);
  SliceSpec s{0, 2, -2.0, 2.0, -1.5, 2.5, {0.0, 0.3, 0.0}};
  ASSERT_OK_AND_ASSIGN(Partition p, ComputePartition(spec, net, s, {}, {}));
  ASSERT_GT(p.regions.size(), 10u);
  EXPECT_NEAR(AreaSum(p), 16.0, 1e-9 * 16);

  // Autograd reference in float64 at every region centroid.
  const int64_t r = static_cast<int64_t>(p.regions.size());
  at::Tensor x = at::zeros({r, 3}, at::kDouble);
  for (int64_t i = 0; i < r; ++i) {
    auto [cx, cy] = Centroid(p.regions[i]);
    x[i][0] = cx;
    x[i][1] = 0.3;
    x[i][2] = cy;
  }
  x.requires_grad_(true);
  at::Tensor h = x;
  for (size_t l = 0; l < net.size(); ++l) {
    at::Tensor w = torch::from_blob(const_cast<float*>(net[l].weight.data()), {net[l].out, net[l].in}).to(at::kDouble);
    at::Tensor b = torch::from_blob(const_cast<float*>(net[l].bias.data()), {net[l].out}).to(at::kDouble);
    h = at::matmul(h, w.t()) + b;
    if (l + 1 < net.size()) h = at::relu(h);
  }
  int fd_checked = 0;
  for (int o = 0; o < 2; ++o) {
    at::Tensor g = torch::autograd::grad({h.select(1, o).sum()}, {x}, {}, true)[0];
    for (int64_t i = 0; i < r; ++i) {
      const PartitionRegion& reg = p.regions[i];
      EXPECT_NEAR(reg.gradient[o * 2 + 0], g[i][0].item<double>(), 1e-9) << "region " << i;
      EXPECT_NEAR(reg.gradient[o * 2 + 1], g[i][2].item<double>(), 1e-9) << "region " << i;
      auto [cx, cy] = Centroid(reg);
      const Eval e = Evaluate(spec, net, {cx, 0.3, cy});
      EXPECT_NEAR(reg.gradient[o * 2] * cx + reg.gradient[o * 2 + 1] * cy + reg.offset[o], e.y[o], 1e-9);
      EXPECT_EQ(reg.pattern, e.pattern) << "region " << i;
      // Central differences with a step well inside the region: exact on a linear piece.
      const double step = 1e-3 * std::sqrt(reg.area);
      const Eval xp = Evaluate(spec, net, {cx + step, 0.3, cy}), xm = Evaluate(spec, net, {cx - step, 0.3, cy});
      const Eval yp = Evaluate(spec, net, {cx, 0.3, cy + step}), ym = Evaluate(spec, net, {cx, 0.3, cy - step});
      if (xp.pattern != e.pattern || xm.pattern != e.pattern || yp.pattern != e.pattern || ym.pattern != e.pattern) continue;
      ++fd_checked;
      EXPECT_NEAR(reg.gradient[o * 2], (xp.y[o] - xm.y[o]) / (2 * step), 1e-6);
      EXPECT_NEAR(reg.gradient[o * 2 + 1], (yp.y[o] - ym.y[o]) / (2 * step), 1e-6);
    }
  }
  EXPECT_GT(fd_checked, static_cast<int>(2 * r * 9 / 10));

  // Unique gradients: distinct float64 gradient pairs among the regions (rounded at 1e-9).
  std::vector<std::set<std::pair<int64_t, int64_t>>> distinct(2);
  for (const auto& reg : p.regions) {
    for (int o = 0; o < 2; ++o) {
      distinct[o].insert({std::llround(reg.gradient[o * 2] * 1e9), std::llround(reg.gradient[o * 2 + 1] * 1e9)});
    }
  }
  EXPECT_EQ(p.unique_gradients_per_output[0], static_cast<int64_t>(distinct[0].size()));
  EXPECT_EQ(p.unique_gradients_per_output[1], static_cast<int64_t>(distinct[1].size()));
}

TEST(PartitionTest, DenseSamplingNeverExceedsAndConvergesToExactCount) {
  MlpSpec spec{4, {16, 16}, 2, Activation::kRelu};
  const auto net = RandomNet(spec, 9);
  SliceSpec s{1, 3, -1.0, 1.0, -1.0, 1.0, {0.2, 0.0, -0.4, 0.0}};
  ASSERT_OK_AND_ASSIGN(Partition p, ComputePartition(spec, net, s, {}, {}));
  std::set<std::vector<uint64_t>> exact;
  for (const auto& r : p.regions) exact.insert(r.pattern);
  ASSERT_EQ(exact.size(), p.regions.size());
  const int words = PatternWordOffsets(spec.hidden).back();
  int64_t previous = 0;
  for (int steps : {10, 40, 160, 640}) {
    SCOPED_TRACE(steps);
    std::vector<float> pts;
    for (int i = 0; i < steps; ++i) {
      for (int j = 0; j < steps; ++j) {
        // Cell centres of a steps x steps grid (never on the slice border).
        pts.insert(pts.end(), {0.2f, static_cast<float>(-1 + (i + 0.5) * 2.0 / steps), -0.4f,
                               static_cast<float>(-1 + (j + 0.5) * 2.0 / steps)});
      }
    }
    const int64_t n = static_cast<int64_t>(steps) * steps;
    ASSERT_OK_AND_ASSIGN(auto bits, ActivationPatterns(spec, net, pts, n, "cpu", {}));
    std::set<std::vector<uint64_t>> sampled;
    for (int64_t q = 0; q < n; ++q) sampled.insert(std::vector<uint64_t>(bits.begin() + q * words, bits.begin() + (q + 1) * words));
    for (const auto& pat : sampled) EXPECT_TRUE(exact.count(pat)) << "sampled a pattern the partition lacks";
    EXPECT_LE(sampled.size(), exact.size());
    EXPECT_GE(static_cast<int64_t>(sampled.size()), previous);
    previous = static_cast<int64_t>(sampled.size());
  }
  // At 640 x 640 only regions much smaller than a grid cell can be missed.
  EXPECT_GE(previous, static_cast<int64_t>(0.95 * exact.size()));
}

TEST(PartitionTest, LinearModelAndErrors) {
  MlpSpec lin{2, {}, 1, Activation::kRelu};
  std::vector<LayerWeights> w = {{1, 2, {2, -3}, {1}}};
  ASSERT_OK_AND_ASSIGN(Partition p, ComputePartition(lin, w, {0, 1, 0, 1, 0, 2, {}}, {}, {}));
  ASSERT_EQ(p.regions.size(), 1u);
  EXPECT_EQ(p.regions[0].gradient, (std::vector<double>{2, -3}));
  EXPECT_EQ(p.regions[0].offset, (std::vector<double>{1}));
  EXPECT_DOUBLE_EQ(p.regions[0].area, 2.0);
  EXPECT_EQ(p.regions[0].vertices, (std::vector<double>{0, 0, 1, 0, 1, 2, 0, 2}));

  MlpSpec spec{2, {8}, 1, Activation::kRelu};
  const auto net = RandomNet(spec, 3);
  EXPECT_THAT(ComputePartition(spec, net, {0, 0, 0, 1, 0, 1, {}}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different inputs")));
  EXPECT_THAT(ComputePartition(spec, net, {0, 2, 0, 1, 0, 1, {}}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of range")));
  EXPECT_THAT(ComputePartition(spec, net, {0, 1, 1, 1, 0, 1, {}}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min < max")));
  EXPECT_THAT(ComputePartition(spec, net, {0, 1, 0, NAN, 0, 1, {}}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("finite")));
  EXPECT_THAT(ComputePartition(spec, net, {0, 1, 0, 1, 0, 1, {0.5}}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("fixed_values")));
  PartitionOptions small;
  small.max_regions = 2;
  EXPECT_THAT(ComputePartition(spec, net, {0, 1, -50, 50, -50, 50, {}}, small, {}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_regions")));
  EXPECT_THAT(ComputePartition(spec, net, {0, 1, 0, 1, 0, 1, {}}, {}, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  MlpSpec tanh_spec{2, {8}, 1, Activation::kTanh};
  EXPECT_THAT(ComputePartition(tanh_spec, net, {0, 1, 0, 1, 0, 1, {}}, {}, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ReLU")));
}

}  // namespace
}  // namespace gradzoo::core
