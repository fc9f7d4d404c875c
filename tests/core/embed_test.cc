// Network embedder (core/embed): the pieces against independent references (regions.h's unique
// gradient counts, finite differences, hand-computed baselines, scikit-learn probes), then the
// issue's acceptance results on poly1d zoos with fixed seeds.
#include "core/embed/embedder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <unistd.h>

#include "core/embed/embed_internal.h"
#include "core/embed/probe.h"
#include "core/grad/regions.h"
#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

ZooSpec PolySpec(double similarity, int64_t family_seed, int families, int seeds,
                 int validation_seeds) {
  ZooSpec s;
  s.task.name = "poly1d";
  s.task.families = families;
  s.task.similarity = similarity;
  s.task.family_seed = family_seed;
  s.task.train_examples = 256;
  s.task.validation_examples = 64;
  s.hidden = {16, 16};
  s.seeds.clear();
  for (int i = 0; i < seeds; ++i) s.seeds.push_back(i);
  for (int i = seeds - validation_seeds; i < seeds; ++i) s.validation_seeds.push_back(i);
  s.training.steps = 1500;
  s.training.batch_size = 128;
  s.training.learning_rate = 1e-2;
  return s;
}

// The harder zoo: every family is drawn near one shared polynomial (task.h's similarity).
constexpr double kHardSimilarity = 0.6;

EmbedderOptions FastOptions(int64_t seed) {
  EmbedderOptions o;
  o.points_per_sample = 48;
  o.embedding_size = 16;
  o.steps = 1200;
  o.batch_models = 32;
  o.hidden = 48;
  o.learning_rate = 3e-3;
  o.seed = seed;
  return o;
}

EmbedderOptions HardOptions(int64_t seed) { return FastOptions(seed); }

// For the hardest zoo (similarity 0.95, full configuration only): four times the points and
// three times the steps (about 3.5 minutes on 2 cores), spans of mean width 0.3.
EmbedderOptions HardestOptions(int64_t seed) {
  EmbedderOptions o = FastOptions(seed);
  o.points_per_sample = 192;
  o.steps = 3600;
  o.mask_rate = 0.3;
  return o;
}

// The function-distance term's weight where the acceptance test uses it.
constexpr double kDistanceWeight = 10.0;

// ---- pieces against references ------------------------------------------------------------

ModelRecord RandomModel(int in, int out, int64_t seed) {
  ModelRecord m;
  m.spec.input_dim = in;
  m.spec.hidden = {16, 16};
  m.spec.output_dim = out;
  StackedMlp mlp = InitStacked(m.spec, {seed}, at::kCPU);
  m.layers = Unstack(mlp, 0);
  return m;
}

TEST(EmbedPiecesTest, UniqueGradientGroupsMatchRegionCounts) {
  for (auto [in, out] : {std::pair{1, 1}, std::pair{2, 3}}) {
    ModelRecord m = RandomModel(in, out, 5);
    Rng rng(3);
    std::vector<std::pair<double, double>> domain(in, {-1.0, 1.0});
    std::vector<float> x = embed_internal::SamplePoints(domain, 400, rng);
    at::Tensor g = embed_internal::SubnetGradients({&m}, 0, 0, at::tensor(x).reshape({400, in}),
                                                   at::kCPU)
                       .second;
    int groups = 0;
    embed_internal::UniqueGradientGroups(g.data_ptr<float>(), 400, in * out, &groups);
    ASSERT_OK_AND_ASSIGN(RegionCounts rc,
                         CountRegions(m.spec, m.layers, x, 400, "cpu", RegionOptions{}, {}));
    EXPECT_EQ(groups, rc.unique_gradient_combinations) << in << "x" << out;
    EXPECT_GT(groups, 2);
  }
}

// The whole network, (from, to) = (0, 0), over models of two architectures in one call.
TEST(EmbedPiecesTest, WholeNetworkGradientsMatchFiniteDifferences) {
  ModelRecord a = RandomModel(2, 3, 1), b = RandomModel(2, 3, 2);
  ModelRecord c = RandomModel(2, 3, 3);
  c.spec.hidden = {8};
  c.layers = Unstack(InitStacked(c.spec, {3}, at::kCPU), 0);
  at::Tensor x = at::rand({20, 2}, at::kDouble).to(at::kFloat) * 2 - 1;
  at::Tensor g = embed_internal::SubnetGradients({&a, &c, &b}, 0, 0, x, at::kCPU).second;
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{3, 20, 6}));
  const double h = 1e-6;
  int k = 0;
  for (const ModelRecord* m : {&a, &c, &b}) {
    StackedMlp mlp = Stack(m->spec, {&m->layers}, at::kCPU);
    for (int i = 0; i < 2; ++i) {
      at::Tensor dx = at::zeros({1, 20, 2}, at::kDouble);
      dx.select(2, i).fill_(h);
      StackedMlp md = mlp;
      for (auto& w : md.weight) w = w.to(at::kDouble);
      for (auto& bb : md.bias) bb = bb.to(at::kDouble);
      at::Tensor x3 = x.to(at::kDouble).unsqueeze(0);
      at::Tensor fd = (Forward(md, x3 + dx, nullptr) - Forward(md, x3 - dx, nullptr)) / (2 * h);
      for (int o = 0; o < 3; ++o) {
        EXPECT_TRUE(at::allclose(g[k].select(1, o * 2 + i).to(at::kDouble), fd[0].select(1, o),
                                 1e-3, 1e-3));
      }
    }
    ++k;
  }
}

// h_from and z_to of the sub-network (from, to) in double by plain loops (the reference for
// embed_internal::SubnetGradients): h_0 = x, h_l = relu(W_l h_{l-1} + b_l), z_to = W_to h + b_to.
std::vector<double> SlowLayers(const ModelRecord& m, std::vector<double> h, int from, int to) {
  for (int l = from; l < to; ++l) {
    const LayerWeights& w = m.layers[l];
    std::vector<double> z(w.out);
    for (int o = 0; o < w.out; ++o) {
      z[o] = w.bias[o];
      for (int i = 0; i < w.in; ++i) z[o] += double{w.weight[o * w.in + i]} * h[i];
    }
    if (l + 1 < to) {
      for (double& v : z) v = std::max(v, 0.0);
    }
    h = z;
  }
  return h;
}

TEST(EmbedPiecesTest, SubnetGradientsMatchFiniteDifferences) {
  // 2-16-16-3: layers 0 (x), 1, 2 (hidden activations), 3 (output).
  ModelRecord a = RandomModel(2, 3, 11), b = RandomModel(2, 3, 12);
  Rng rng(4);
  std::vector<std::pair<double, double>> domain(2, {-1.0, 1.0});
  const int n = 24;
  std::vector<float> x = embed_internal::SamplePoints(domain, n, rng);
  at::Tensor xt = at::tensor(x).reshape({n, 2});
  for (auto [from, to] : {std::pair{0, 3}, std::pair{0, 0}, std::pair{1, 2}, std::pair{1, 3},
                          std::pair{2, 0}, std::pair{0, 2}}) {
    at::Tensor y;  // z_to, the function-distance term's outputs
    auto [pts, g] = embed_internal::SubnetGradients({&a, &b}, from, to, xt, at::kCPU, &y);
    const int last = to == 0 ? 3 : to;
    const int in = from == 0 ? 2 : 16, out = last == 3 ? 3 : 16;
    ASSERT_EQ(pts.sizes(), (at::IntArrayRef{2, n, in}));
    ASSERT_EQ(g.sizes(), (at::IntArrayRef{2, n, out * in}));
    ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, n, out}));
    const ModelRecord* models[] = {&a, &b};
    double worst = 0.0;
    for (int k = 0; k < 2; ++k) {
      for (int p = 0; p < n; ++p) {
        std::vector<double> h =
            SlowLayers(*models[k], {double{x[p * 2]}, double{x[p * 2 + 1]}}, 0, from);
        if (from > 0) {
          for (double& v : h) v = std::max(v, 0.0);  // h_from = relu(z_from)
        }
        for (int i = 0; i < in; ++i) {
          ASSERT_NEAR(pts[k][p][i].item<float>(), h[i], 1e-5) << from << " " << to;
        }
        const std::vector<double> z = SlowLayers(*models[k], h, from, last);
        for (int o = 0; o < out; ++o) {
          ASSERT_NEAR(y[k][p][o].item<float>(), z[o], 1e-4 * (1.0 + std::fabs(z[o])))
              << from << " " << to;
        }
        for (int i = 0; i < in; ++i) {
          const double eps = 1e-6;
          std::vector<double> hp = h, hm = h;
          hp[i] += eps;
          hm[i] -= eps;
          std::vector<double> zp = SlowLayers(*models[k], hp, from, last);
          std::vector<double> zm = SlowLayers(*models[k], hm, from, last);
          for (int o = 0; o < out; ++o) {
            const double fd = (zp[o] - zm[o]) / (2 * eps);
            const double got = g[k][p][o * in + i].item<float>();
            worst = std::max(worst, std::fabs(got - fd) / (1.0 + std::fabs(fd)));
          }
        }
      }
    }
    EXPECT_LT(worst, 1e-4) << "layers " << from << ".." << to;
  }
}

TEST(EmbedPiecesTest, LayerRangesAreChecked) {
  ModelRecord m = RandomModel(2, 3, 1);  // layers 0..3
  EXPECT_EQ(*embed_internal::ResolveLayers(m.spec, 1, 0, "from_layer", "to_layer"),
            (std::pair<int, int>{1, 3}));
  EXPECT_THAT(embed_internal::ResolveLayers(m.spec, 3, 0, "from_layer", "to_layer"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from_layer")));
  EXPECT_THAT(embed_internal::ResolveLayers(m.spec, 2, 2, "from_layer", "to_layer"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
  EXPECT_THAT(embed_internal::ResolveLayers(m.spec, 0, 4, "from_layer", "to_layer"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
  ModelRecord sub = embed_internal::SubModel(m, 1, 3);
  EXPECT_EQ(sub.spec.input_dim, 16);
  EXPECT_EQ(sub.spec.hidden, std::vector<int>{16});
  EXPECT_EQ(sub.spec.output_dim, 3);
  ASSERT_OK(ValidateWeights(sub.spec, sub.layers));
}

TEST(EmbedPiecesTest, BaselinesByHand) {
  // 1-D: visible at x = 0 (g 1), 1 (g 3), 3 (g 7); masked at 0.5 and 2 and 4.
  const std::vector<float> x = {0, 0.5, 1, 2, 3, 4};
  const std::vector<float> g = {1, 100, 3, 100, 7, 100};
  const std::vector<float> m = {0, 1, 0, 1, 0, 1};
  auto [mean, interp] = embed_internal::BaselineSse(x.data(), g.data(), m.data(), 6, 1, 1);
  const double mv = (1 + 3 + 7) / 3.0;
  EXPECT_NEAR(mean, 3 * (100 - mv) * (100 - mv), 1e-6);
  // 0.5 -> 2, 2 -> 5, 4 -> 7 (nearest alone at the end).
  EXPECT_NEAR(interp, 98.0 * 98 + 95.0 * 95 + 93.0 * 93, 1e-6);
  // 2-D: inverse-distance weights of the two nearest visible points.
  const std::vector<float> x2 = {0, 0, 1, 0, 0, 3, 0.25, 0};
  const std::vector<float> g2 = {2, 6, 50, 9};
  const std::vector<float> m2 = {0, 0, 0, 1};
  auto [mean2, interp2] = embed_internal::BaselineSse(x2.data(), g2.data(), m2.data(), 4, 2, 1);
  const double pred = (2 / 0.25 + 6 / 0.75) / (1 / 0.25 + 1 / 0.75);
  EXPECT_NEAR(interp2, (pred - 9) * (pred - 9), 1e-5);
  EXPECT_NEAR(mean2, (58.0 / 3 - 9) * (58.0 / 3 - 9), 1e-4);
}

TEST(EmbedPiecesTest, MaskCoversWholeGroups) {
  std::vector<int> group = {0, 1, 1, 2, 0, 3, 3, 3};
  Rng rng(9);
  for (int t = 0; t < 50; ++t) {
    std::vector<float> m = embed_internal::DrawMask(group, 4, 0.3, rng);
    std::set<float> per_group[4];
    for (size_t i = 0; i < group.size(); ++i) per_group[group[i]].insert(m[i]);
    int masked = 0;
    for (auto& s : per_group) {
      EXPECT_EQ(s.size(), 1u);
      masked += *s.begin() == 1.0f;
    }
    EXPECT_GE(masked, 1);
    EXPECT_LE(masked, 3);
  }
}

TEST(EmbedPiecesTest, SpanMaskCoversARunOfNeighbouringPieces) {
  // 1-D: 60 sorted points in [-1, 1], 12 linear pieces of 5 points each.
  const int n = 60;
  std::vector<float> x(n);
  std::vector<int> group(n);
  for (int i = 0; i < n; ++i) {
    x[i] = static_cast<float>(-1.0 + 2.0 * (i + 0.5) / n);
    group[i] = i / 5;
  }
  Rng rng(21);
  double masked_fraction = 0.0;
  const int trials = 400;
  for (int t = 0; t < trials; ++t) {
    std::vector<float> m = embed_internal::DrawSpanMask(group, 12, x.data(), 1, 0.3, rng);
    std::vector<int> state(12, -1);
    for (int i = 0; i < n; ++i) {
      if (state[group[i]] < 0) state[group[i]] = static_cast<int>(m[i]);
      ASSERT_EQ(state[group[i]], static_cast<int>(m[i])) << "a group is split";
    }
    // The masked pieces are one run of neighbours, and neither none nor all are masked.
    int first = -1, last = -1, count = 0;
    for (int c = 0; c < 12; ++c) {
      if (state[c] == 1) {
        if (first < 0) first = c;
        last = c;
        ++count;
      }
    }
    ASSERT_GE(count, 1);
    ASSERT_LE(count, 11);
    EXPECT_EQ(last - first + 1, count) << "trial " << t;
    masked_fraction += count / 12.0 / trials;
  }
  // Slab width ~ U[0, 0.6) of the extent: 0.3 on average, plus the pieces it cuts into.
  EXPECT_GT(masked_fraction, 0.3);
  EXPECT_LT(masked_fraction, 0.5);
  // One group: nothing to mask.
  std::vector<int> one(n, 0);
  std::vector<float> m = embed_internal::DrawSpanMask(one, 1, x.data(), 1, 0.3, rng);
  EXPECT_EQ(std::count(m.begin(), m.end(), 1.0f), 0);
}

TEST(EmbedPiecesTest, SpanMaskInTwoDimensionsMasksWholeGroups) {
  Rng rng(5);
  const int n = 200;
  std::vector<float> x = embed_internal::SampleStratified({{-1.0, 1.0}, {-1.0, 1.0}}, n, rng);
  std::vector<int> group(n);
  for (int i = 0; i < n; ++i) {  // a 4 x 4 grid of cells
    group[i] = std::min(3, static_cast<int>((x[2 * i] + 1) * 2)) * 4 +
               std::min(3, static_cast<int>((x[2 * i + 1] + 1) * 2));
  }
  int groups = 0;
  for (int g : group) groups = std::max(groups, g + 1);
  for (int t = 0; t < 100; ++t) {
    std::vector<float> m = embed_internal::DrawSpanMask(group, groups, x.data(), 2, 0.25, rng);
    std::vector<int> state(groups, -1);
    int masked = 0, visible = 0;
    for (int i = 0; i < n; ++i) {
      if (state[group[i]] < 0) {
        state[group[i]] = static_cast<int>(m[i]);
        (m[i] == 1.0f ? masked : visible) += 1;
      }
      ASSERT_EQ(state[group[i]], static_cast<int>(m[i]));
    }
    EXPECT_GE(masked, 1);
    EXPECT_GE(visible, 1);
  }
}

TEST(EmbedPiecesTest, GradientPathMatchesAPerPointLoop) {
  // 2 inputs x 3 outputs: G = 6 gradient entries, rank R = 6.
  auto net = embed_internal::EncoderNet::Init(2, 3, 5, 8, 7, /*gradient_path=*/true);
  ASSERT_EQ(net.params.size(), 21u);
  const int h = 8, g = 6, r = net.GradRank();
  ASSERT_EQ(r, 6);
  at::Tensor f = at::randn({2, 7, net.FeatureDim()});
  at::Tensor e = net.Encode(f);
  auto acc = [](const at::Tensor& t) { return t.accessor<float, 2>(); };
  auto vec = [](const at::Tensor& t) { return t.accessor<float, 1>(); };
  auto relu = [](double v) { return v > 0 ? v : 0.0; };
  // Dense layer y = W v + b, one point at a time, in double.
  auto dense = [&](const at::Tensor& w, const at::Tensor* b, const std::vector<double>& v,
                   bool act) {
    auto W = acc(w);
    std::vector<double> y(w.size(0));
    for (int64_t o = 0; o < w.size(0); ++o) {
      double s = b ? double{vec(*b)[o]} : 0.0;
      for (int64_t i = 0; i < w.size(1); ++i) s += double{W[o][i]} * v[i];
      y[o] = act ? relu(s) : s;
    }
    return y;
  };
  const auto& p = net.params;
  for (int b = 0; b < 2; ++b) {
    std::vector<double> pooled(2 * h, 0.0);
    for (int n = 0; n < 7; ++n) {
      std::vector<double> feat(net.FeatureDim());
      for (int k = 0; k < net.FeatureDim(); ++k) feat[k] = f[b][n][k].item<float>();
      std::vector<double> phi = dense(p[0], &p[1], feat, true);
      phi = dense(p[2], &p[3], phi, true);
      phi = dense(p[4], &p[5], phi, true);
      const std::vector<double> x(feat.begin(), feat.begin() + 2);
      const std::vector<double> grad(feat.begin() + 2, feat.begin() + 2 + g);
      const std::vector<double> v = dense(p[16], nullptr, grad, false);  // V g
      const std::vector<double> u = dense(p[19], &p[20], dense(p[17], &p[18], x, true), false);
      for (int j = 0; j < h; ++j) {
        double q = 0.0;
        for (int k = 0; k < r; ++k) q += u[j * r + k] * v[k];  // U(x) [h, r] times V g
        pooled[j] += phi[j] / 7;
        pooled[h + j] += q / 7;
      }
    }
    const std::vector<double> want = dense(p[8], &p[9], dense(p[6], &p[7], pooled, true), false);
    for (int k = 0; k < 5; ++k) EXPECT_NEAR(e[b][k].item<float>(), want[k], 1e-4) << b << " " << k;
  }
  // Without the gradient path: the first version's 16 tensors.
  EXPECT_EQ(embed_internal::EncoderNet::Init(2, 3, 5, 8, 7, false).params.size(), 16u);
  // Large gradients keep the rank at 16.
  EXPECT_EQ(embed_internal::EncoderNet::Init(16, 4, 5, 8, 7).GradRank(), 16);
}

TEST(EmbedPiecesTest, EncoderIsPermutationInvariant) {
  auto net = embed_internal::EncoderNet::Init(2, 1, 8, 16, 4);
  at::Tensor f = at::randn({3, 10, net.FeatureDim()});
  at::Tensor perm = at::randperm(10);
  EXPECT_TRUE(at::allclose(net.Encode(f), net.Encode(f.index_select(1, perm)), 1e-5, 1e-6));
}

TEST(EmbedPiecesTest, MaskedEncodeIsTheEncodingOfTheVisiblePoints) {
  auto net = embed_internal::EncoderNet::Init(1, 1, 8, 16, 4);
  at::Tensor f = at::randn({2, 10, net.FeatureDim()});
  at::Tensor mask = at::zeros({2, 10});
  mask[0][2] = 1;
  mask[0][7] = 1;
  mask[1][0] = 1;
  at::Tensor e = net.Encode(f, mask);
  at::Tensor e0 = net.Encode(f[0].index_select(0, at::tensor({0, 1, 3, 4, 5, 6, 8, 9})).unsqueeze(0));
  at::Tensor e1 = net.Encode(f[1].slice(0, 1).unsqueeze(0));
  EXPECT_TRUE(at::allclose(e[0], e0[0], 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(e[1], e1[0], 1e-5, 1e-6));
  // Nothing masked: the plain mean.
  EXPECT_TRUE(at::allclose(net.Encode(f, at::zeros({2, 10})), net.Encode(f), 1e-5, 1e-6));
}

TEST(EmbedPiecesTest, StratifiedPointsFillEveryStratum) {
  Rng rng(8);
  const std::vector<std::pair<double, double>> domain = {{-1.0, 1.0}, {0.0, 4.0}};
  const int n = 50;
  std::vector<float> x = embed_internal::SampleStratified(domain, n, rng);
  ASSERT_EQ(x.size(), 100u);
  for (int k = 0; k < 2; ++k) {
    std::vector<int> hits(n, 0);
    const double lo = domain[k].first, width = domain[k].second - domain[k].first;
    for (int i = 0; i < n; ++i) {
      const int stratum = static_cast<int>(std::floor((x[i * 2 + k] - lo) / width * n));
      ASSERT_GE(stratum, 0);
      ASSERT_LT(stratum, n);
      ++hits[stratum];
    }
    for (int h : hits) EXPECT_EQ(h, 1);
  }
  // The inputs are paired at random, not along the diagonal.
  std::vector<float> y = embed_internal::SampleStratified(domain, n, rng);
  EXPECT_NE(x, y);
}

TEST(EmbedPiecesTest, ProbesMatchScikitLearn) {
  // Three noisy clusters in 5-D, written out for sklearn.
  Rng rng(17);
  ProbeData d;
  d.dim = 5;
  d.classes = 3;
  auto add = [&](std::vector<float>* x, std::vector<int>* y, int n) {
    for (int i = 0; i < n; ++i) {
      const int c = i % 3;
      for (int j = 0; j < 5; ++j) x->push_back(static_cast<float>((j == c ? 1.0 : 0.0) + 0.9 * rng.Normal() + 3.0 * (j == 4)));
      y->push_back(c);
    }
  };
  add(&d.train_x, &d.train_y, 60);
  add(&d.val_x, &d.val_y, 90);
  ASSERT_OK_AND_ASSIGN(ProbeAccuracy acc, RunProbes(d, 5, 1e-3, 500));
  const std::string dir = ::testing::TempDir();
  const std::string data = dir + "/probe_data.txt", script = dir + "/probe.py",
                    result = dir + "/probe_out.txt";
  {
    std::ofstream f(data);
    for (size_t i = 0; i < d.train_y.size(); ++i) {
      f << "t " << d.train_y[i];
      for (int j = 0; j < 5; ++j) f << " " << d.train_x[i * 5 + j];
      f << "\n";
    }
    for (size_t i = 0; i < d.val_y.size(); ++i) {
      f << "v " << d.val_y[i];
      for (int j = 0; j < 5; ++j) f << " " << d.val_x[i * 5 + j];
      f << "\n";
    }
  }
  {
    std::ofstream f(script);
    f << "import sys, numpy as np\n"
         "from sklearn.linear_model import LogisticRegression\n"
         "from sklearn.neighbors import KNeighborsClassifier\n"
         "rows=[l.split() for l in open(sys.argv[1])]\n"
         "T=[r for r in rows if r[0]=='t']; V=[r for r in rows if r[0]=='v']\n"
         "Xt=np.array([[float(v) for v in r[2:]] for r in T]); yt=np.array([int(r[1]) for r in T])\n"
         "Xv=np.array([[float(v) for v in r[2:]] for r in V]); yv=np.array([int(r[1]) for r in V])\n"
         "mu=Xt.mean(0); sd=Xt.std(0); Xt=(Xt-mu)/sd; Xv=(Xv-mu)/sd\n"
         "lr=LogisticRegression(C=1.0/(1e-3*len(yt)), max_iter=10000).fit(Xt,yt)\n"
         "kn=KNeighborsClassifier(5, metric='cosine', algorithm='brute').fit(Xt,yt)\n"
         "C=np.array([Xt[yt==c].mean(0) for c in range(3)]); p=np.bincount(yt)/len(yt)\n"
         "sep=(p*((C-p@C)**2).sum(1)).sum()/((Xv-C[yv])**2).sum(1).mean()\n"
         "open(sys.argv[2],'w').write('%r %r %r' % ((lr.predict(Xv)==yv).mean(), (kn.predict(Xv)==yv).mean(), sep))\n";
  }
  const std::string cmd = "/usr/bin/python3 " + script + " " + data + " " + result;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(result);
  double lin = 0, knn = 0, sep = 0;
  f >> lin >> knn >> sep;
  // Same optimum up to the solvers' tolerance: at most one validation row apart.
  EXPECT_NEAR(acc.linear, lin, 1.0 / 90 + 1e-9);
  EXPECT_NEAR(acc.knn, knn, 1.0 / 90 + 1e-9);
  EXPECT_GT(acc.linear, 0.5);
  EXPECT_NEAR(acc.separation, sep, 1e-4 * sep);
}

TEST(EmbedPiecesTest, SeparationClosedForm) {
  // 1-D, two classes of two training rows each at -2, -2 (class 0) and 2, 2 (class 1): the
  // column's mean is 0 and its sd 2, so the standardised centroids are -1 and 1 and the
  // between-class variance is 1. Validation rows at 0 and 4 (class 1) standardise to 0 and 2,
  // each 1 from the centroid: within = 1, separation = 1. A validation row of a class with no
  // training rows is skipped.
  ProbeData d;
  d.dim = 1;
  d.classes = 3;
  d.train_x = {-2, -2, 2, 2};
  d.train_y = {0, 0, 1, 1};
  d.val_x = {0, 4, 100};
  d.val_y = {1, 1, 2};
  ASSERT_OK_AND_ASSIGN(ProbeAccuracy acc, RunProbes(d, 1));
  EXPECT_NEAR(acc.separation, 1.0, 1e-12);
  // Validation rows on the centroid (2, 2 -> standardised 1, 1): nothing within.
  d.val_x = {2, 2, 100};
  ASSERT_OK_AND_ASSIGN(acc, RunProbes(d, 1));
  EXPECT_EQ(acc.separation, std::numeric_limits<double>::infinity());
  // One centroid for every class (a constant column): no separation at all.
  d.train_x = {1, 1, 1, 1};
  ASSERT_OK_AND_ASSIGN(acc, RunProbes(d, 1));
  EXPECT_EQ(acc.separation, 0.0);
  d.train_x = {-2, -2, 2, 2};
  // Halving the validation spread about the centroid quadruples the separation.
  d.val_x = {1, 3, 100};
  ASSERT_OK_AND_ASSIGN(acc, RunProbes(d, 1));
  EXPECT_NEAR(acc.separation, 4.0, 1e-12);
}

TEST(EmbedPiecesTest, FunctionDistancesAndTheirLossMatchALoop) {
  at::manual_seed(5);
  const at::Tensor y = at::randn({4, 7, 2}, at::kFloat) + 3.0;  // offsets are centred away
  const at::Tensor e = at::randn({4, 3}, at::kDouble);
  // D_ij = mean over points and outputs of the centred outputs' squared differences.
  double d[4][4], dsum = 0.0;
  auto ya = y.accessor<float, 3>();
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      double s = 0.0;
      for (int o = 0; o < 2; ++o) {
        double mi = 0.0, mj = 0.0;
        for (int n = 0; n < 7; ++n) {
          mi += ya[i][n][o] / 7.0;
          mj += ya[j][n][o] / 7.0;
        }
        for (int n = 0; n < 7; ++n) s += std::pow((ya[i][n][o] - mi) - (ya[j][n][o] - mj), 2);
      }
      d[i][j] = s / 14.0;
      dsum += d[i][j];
    }
  }
  const at::Tensor target = embed_internal::FunctionDistances(y);
  ASSERT_EQ(target.sizes(), (at::IntArrayRef{4, 4}));
  double esq[4][4], esum = 0.0;
  auto ea = e.accessor<double, 2>();
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      EXPECT_NEAR(target[i][j].item<double>(), d[i][j] / (dsum / 16), 1e-5) << i << j;
      esq[i][j] = 0.0;
      for (int k = 0; k < 3; ++k) esq[i][j] += std::pow(ea[i][k] - ea[j][k], 2);
      esum += esq[i][j];
    }
  }
  double loss = 0.0;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      loss += std::pow(esq[i][j] / (esum / 16) - target[i][j].item<double>(), 2) / 16;
    }
  }
  const at::Tensor t64 = target.to(at::kDouble);
  at::Tensor ev = e.clone().set_requires_grad(true);
  at::Tensor l = embed_internal::DistanceLoss(ev, t64);
  EXPECT_NEAR(l.item<double>(), loss, 1e-9 * loss);
  // Its gradient (autograd through the Gram form) against central differences.
  l.backward();
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 3; ++k) {
      at::Tensor plus = e.clone(), minus = e.clone();
      plus[i][k] += 1e-6;
      minus[i][k] -= 1e-6;
      const double fd = (embed_internal::DistanceLoss(plus, t64).item<double>() -
                         embed_internal::DistanceLoss(minus, t64).item<double>()) / 2e-6;
      EXPECT_NEAR(ev.grad()[i][k].item<double>(), fd, 1e-6 + 1e-5 * std::fabs(fd)) << i << k;
    }
  }
  // Identical networks: no distances at all, and no division by zero.
  const at::Tensor same = embed_internal::FunctionDistances(y[0].unsqueeze(0).expand({3, 7, 2}));
  EXPECT_EQ(same.abs().max().item<float>(), 0.0f);
}

TEST(EmbedPiecesTest, McNemarMatchesExactBinomialSums) {
  // References: min(1, 2 sum_{i <= min(a, b)} C(a + b, i) / 2^(a + b)) in Python's exact
  // integers (fractions.Fraction, math.comb), rounded to double.
  struct Case {
    int64_t a, b;
    double p;
  };
  for (const Case& c : std::vector<Case>{{0, 0, 1.0},
                                         {0, 5, 0.0625},
                                         {1, 9, 0.021484375},
                                         {9, 1, 0.021484375},
                                         {5, 5, 1.0},
                                         {3, 4, 1.0},
                                         {2, 0, 0.5},
                                         {40, 65, 0.01874091540825805},
                                         {0, 60, 1.734723475976807e-18},
                                         {300, 360, 0.02157234823197102},
                                         {1000, 1100, 0.030720707864242296}}) {
    EXPECT_NEAR(McNemarP(c.a, c.b), c.p, 1e-9 * c.p) << c.a << " " << c.b;
  }
  EXPECT_EQ(McNemarP(-1, 0), 1.0);  // not a count: read as 0, no disagreement
  // Only the rows on which the two disagree count: one right only for a, four only for b.
  const std::vector<uint8_t> a = {1, 1, 0, 1, 0, 0, 0, 1, 0};
  const std::vector<uint8_t> b = {1, 0, 0, 1, 1, 1, 1, 1, 1};
  ASSERT_OK_AND_ASSIGN(double p, PairedP(a, b));
  EXPECT_DOUBLE_EQ(p, 2.0 * (1 + 5) / 32);  // C(5, 0) + C(5, 1) over 2^5, twice: 0.375
  EXPECT_THAT(PairedP(a, {1, 0}), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("same rows")));
}

TEST(EmbedPiecesTest, ProbesReportWhichRowsTheyGetRight) {
  // 1-D, classes 0 (training rows -2, -2) and 1 (2, 2): both probes put a row in the class on
  // its side of 0. Validation rows -3 (class 0), 3 (class 0: wrong side) and 1 (class 1).
  ProbeData d;
  d.dim = 1;
  d.classes = 2;
  d.train_x = {-2, -2, 2, 2};
  d.train_y = {0, 0, 1, 1};
  d.val_x = {-3, 3, 1};
  d.val_y = {0, 0, 1};
  ASSERT_OK_AND_ASSIGN(ProbeAccuracy acc, RunProbes(d, 1));
  EXPECT_EQ(acc.linear_correct, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(acc.knn_correct, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_DOUBLE_EQ(acc.linear, 2.0 / 3);
  EXPECT_DOUBLE_EQ(acc.knn, 2.0 / 3);
}

// ---- acceptance on poly1d zoos -----------------------------------------------------------
//
// ctest runs every TEST in a process of its own, so a fixture's SetUpTestSuite runs once per
// TEST. The expensive setup (three zoos, two embedders) therefore feeds ONE test that checks
// every result of the issue; the cheap behaviours (lookups, errors, cancellation, sub-network
// embedders) run on a tiny zoo.
//
// Probe data from lookups (4 samples, seed 0, as EmbedderRegistry::Probe embeds) of the
// models of `zoo`: each row the concatenation of the embeddings of `embedders` (each of size
// `dim`), trained or untrained; labels numbered in sorted order, as Probe numbers them.
absl::StatusOr<ProbeData> LookupProbeData(const Engine& engine, EmbedderRegistry& registry,
                                          const std::string& zoo_id,
                                          const std::vector<std::string>& embedders, int dim,
                                          bool untrained) {
  ASSIGN_OR_RETURN(auto zoo, engine.GetZoo(zoo_id));
  std::map<std::string, int> classes;
  for (const ModelRecord& m : zoo->models) classes.emplace(m.label, 0);
  int next = 0;
  for (auto& [label, c] : classes) c = next++;
  EmbedQuery q[2];  // train, validation
  ProbeData d;
  d.classes = next;
  d.dim = dim * static_cast<int>(embedders.size());
  for (const ModelRecord& m : zoo->models) {
    const bool train = m.split == Split::kTrain;
    q[train ? 0 : 1].models.push_back({zoo_id, m.id});
    (train ? d.train_y : d.val_y).push_back(classes[m.label]);
  }
  for (int split : {0, 1}) {
    q[split].samples = 4;
    q[split].untrained = untrained;
    std::vector<float>& rows = split == 0 ? d.train_x : d.val_x;
    rows.resize(q[split].models.size() * d.dim);
    for (size_t k = 0; k < embedders.size(); ++k) {
      ASSIGN_OR_RETURN(std::vector<float> e, registry.Embed(engine, embedders[k], q[split], {}));
      for (size_t r = 0; r < q[split].models.size(); ++r) {
        std::copy(e.begin() + r * dim, e.begin() + (r + 1) * dim,
                  rows.begin() + r * d.dim + k * dim);
      }
    }
  }
  return d;
}

// Two configurations, both with fixed seeds:
//   default (make test): 10 families x 20 seeds (16 train / 4 validation), zoo training 1000
//     steps, embedders with kConfig's options: what the issue asks, on fewer seeds.
//   GRADZOO_EMBED_FULL=1: the issue's configuration, 10 families x 50 seeds (40 / 10), 1500
//     zoo steps. Run: GRADZOO_EMBED_FULL=1 build/tests/gradzoo_core_tests
//     --gtest_filter=EmbedAcceptanceTest.*   (core/embed/README.md records the numbers).
struct AcceptanceConfig {
  int seeds = 20, validation_seeds = 4, zoo_steps = 1000;
  EmbedderOptions easy, hard;
  double hard_similarity = 0.0;
};

AcceptanceConfig Config() {
  AcceptanceConfig c;
  const bool full = std::getenv("GRADZOO_EMBED_FULL") != nullptr;
  if (full) {
    c.seeds = 50;
    c.validation_seeds = 10;
    c.zoo_steps = 1500;
  }
  c.easy = FastOptions(1);
  c.hard = HardOptions(4);
  c.hard_similarity = kHardSimilarity;
  if (!full) {
    c.easy.steps = 800;
  }
  return c;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Trains embedder `id` on zoo `zoo` with `o`, probes the zoo's labels (the embedding, then the
// three baselines) and prints every row under `tag`.
absl::StatusOr<std::vector<ProbeScore>> TrainAndProbe(const Engine& engine,
                                                      EmbedderRegistry& registry,
                                                      const std::string& id,
                                                      const std::string& zoo,
                                                      const EmbedderOptions& o,
                                                      const std::string& tag,
                                                      std::chrono::steady_clock::time_point t0) {
  RETURN_IF_ERROR(registry.Train(engine, id, {zoo}, o, {}, {}).status());
  ProbeQuery pq;
  pq.zoos = {zoo};
  ASSIGN_OR_RETURN(std::vector<ProbeScore> scores, registry.Probe(engine, id, pq, {}));
  if (scores.size() != 4) return absl::InternalError("expected 4 probe rows");
  for (const ProbeScore& s : scores) {
    std::printf("[%.0fs] %s %-18s linear %.3f  5-NN %.3f  separation %.3f  p %.3g / %.3g\n",
                Seconds(t0), tag.c_str(), s.representation.c_str(), s.linear_accuracy,
                s.knn_accuracy, s.separation, s.linear_p_value, s.knn_p_value);
  }
  return scores;
}

TEST(EmbedAcceptanceTest, PolyZoosMeetTheIssuesResults) {
  const AcceptanceConfig cfg = Config();
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("embed_accept_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Engine> engine, Engine::Create({dir.string(), "cpu"}));
  ASSERT_OK_AND_ASSIGN(auto registry, EmbedderRegistry::Create({"", "cpu"}));
  const int families = 10;
  const int64_t models = int64_t{families} * cfg.seeds;
  const int64_t validation = int64_t{families} * cfg.validation_seeds;
  auto t0 = std::chrono::steady_clock::now();
  ZooSpec easy = PolySpec(0.0, 1, families, cfg.seeds, cfg.validation_seeds);
  easy.training.steps = cfg.zoo_steps;
  ASSERT_OK(engine->TrainZoo("poly", easy, {}, {}).status());
  std::printf("[%.0fs] poly zoo trained\n", Seconds(t0));

  // The zoo fits its polynomials.
  ASSERT_OK_AND_ASSIGN(auto zoo, engine->GetZoo("poly"));
  ASSERT_EQ(static_cast<int64_t>(zoo->models.size()), models);
  double mean_fit = 0;
  for (const ModelRecord& m : zoo->models) mean_fit += m.validation_loss / models;
  std::printf("poly zoo validation MSE: mean %.4g\n", mean_fit);
  EXPECT_LT(mean_fit, 2e-3);

  // Cloze loss against the two baselines.
  ASSERT_OK_AND_ASSIGN(EmbedderInfo info,
                       registry->Train(*engine, "poly-e", {"poly"}, cfg.easy, {}, {}));
  std::printf("[%.0fs] poly embedder trained\n", Seconds(t0));
  std::printf("cloze MSE %.4g | mean-gradient baseline %.4g | interpolation baseline %.4g\n",
              info.validation_cloze_loss, info.mean_gradient_baseline_loss,
              info.interpolation_baseline_loss);
  EXPECT_EQ(info.train_models, models - validation);
  EXPECT_EQ(info.validation_models, validation);
  EXPECT_LE(info.validation_cloze_loss, 0.3 * info.mean_gradient_baseline_loss);

  // Probes recover the family, with the baselines.
  ProbeQuery pq;
  pq.zoos = {"poly"};
  ASSERT_OK_AND_ASSIGN(auto scores, registry->Probe(*engine, "poly-e", pq, {}));
  ASSERT_EQ(scores.size(), 4u);
  for (const ProbeScore& s : scores) {
    std::printf("poly %-18s linear %.3f  5-NN %.3f  separation %.3f\n",
                s.representation.c_str(), s.linear_accuracy, s.knn_accuracy, s.separation);
    EXPECT_EQ(s.classes, families);
    EXPECT_EQ(s.validation_models, validation);
  }
  EXPECT_EQ(scores[0].representation, "embedding");
  EXPECT_EQ(scores[3].representation, "untrained_encoder");
  EXPECT_GE(scores[0].linear_accuracy, 0.95);
  EXPECT_GE(scores[0].knn_accuracy, 0.95);

  // The sub-network from layer 0 to the end of a 1-16-16-1 is the whole network.
  {
    EmbedQuery q;
    q.models = {{"poly", zoo->models[3].id}, {"poly", zoo->models[17].id}};
    ASSERT_OK_AND_ASSIGN(std::vector<float> whole, registry->Embed(*engine, "poly-e", q, {}));
    for (int to : {3, 0}) {
      EmbedQuery sub = q;
      sub.from_layer = 0;
      sub.to_layer = to;
      ASSERT_OK_AND_ASSIGN(std::vector<float> e, registry->Embed(*engine, "poly-e", sub, {}));
      ASSERT_EQ(e.size(), whole.size());
      for (size_t k = 0; k < e.size(); ++k) EXPECT_EQ(e[k], whole[k]) << to;
    }
  }

  // Families the embedder never saw: same-family neighbours.
  ASSERT_OK(engine->TrainZoo("unseen", PolySpec(0.0, 77, 6, 10, 2), {}, {}).status());
  ASSERT_OK_AND_ASSIGN(auto unseen, engine->GetZoo("unseen"));
  double hits = 0, total = 0;
  for (const ModelRecord& m : unseen->models) {
    NeighborQuery q;
    q.model = {"unseen", m.id};
    q.k = 5;
    q.zoos = {"unseen"};
    ASSERT_OK_AND_ASSIGN(auto nb, registry->FindNeighbors(*engine, "poly-e", q, {}));
    ASSERT_EQ(nb.size(), 5u);
    for (const EmbedNeighbor& n : nb) {
      hits += n.label == m.label;
      total += 1;
      EXPECT_NE(n.model.model_id, m.id);
    }
  }
  std::printf("[%.0fs] unseen families precision@5 %.3f\n", Seconds(t0), hits / total);
  EXPECT_GE(hits / total, 0.9);

  // The harder zoo: members drawn near one shared polynomial.
  ZooSpec hard = PolySpec(cfg.hard_similarity, 5, families, cfg.seeds, cfg.validation_seeds);
  hard.training.steps = cfg.zoo_steps;
  ASSERT_OK(engine->TrainZoo("hard", hard, {}, {}).status());
  ASSERT_OK_AND_ASSIGN(EmbedderInfo hinfo,
                       registry->Train(*engine, "hard-e", {"hard"}, cfg.hard, {}, {}));
  std::printf("[%.0fs] hard embedder trained; cloze %.4g | mean %.4g | interpolation %.4g\n",
              Seconds(t0), hinfo.validation_cloze_loss, hinfo.mean_gradient_baseline_loss,
              hinfo.interpolation_baseline_loss);
  pq.zoos = {"hard"};
  ASSERT_OK_AND_ASSIGN(auto hs, registry->Probe(*engine, "hard-e", pq, {}));
  ASSERT_EQ(hs.size(), 4u);
  for (const ProbeScore& s : hs) {
    std::printf("hard %-18s linear %.3f  5-NN %.3f  separation %.3f\n",
                s.representation.c_str(), s.linear_accuracy, s.knn_accuracy, s.separation);
  }
  EXPECT_GE(hs[0].linear_accuracy, 0.90);
  EXPECT_GE(hs[0].knn_accuracy, 0.90);
  // Issue 6 also asks that the learned embedding beat the untrained encoder. With the cloze
  // loss alone both saturate here (0.99-1.00) and their separations are close (37.7 vs 35.9
  // here, 44.5 vs 34.8 in the full configuration). Asserted for it: no more than 0.05 behind.
  EXPECT_GE(hs[0].linear_accuracy, hs[3].linear_accuracy - 0.05);
  EXPECT_GE(hs[0].knn_accuracy, hs[3].knn_accuracy - 0.05);
  // With the function-distance term the learned embedding pulls ahead of the untrained encoder
  // even where both accuracies saturate: separation 64.8 against 35.9 here (1.81 x; 70.3 on
  // one thread), 49.5 against 34.8 in the full configuration (1.42 x); asserted: 1.3 x.
  EmbedderOptions hard_distances = cfg.hard;
  hard_distances.distance_weight = kDistanceWeight;
  ASSERT_OK_AND_ASSIGN(auto hd, TrainAndProbe(*engine, *registry, "hard-d", "hard",
                                              hard_distances, "hard distances", t0));
  EXPECT_GE(hd[0].linear_accuracy, 0.90);
  EXPECT_GE(hd[0].knn_accuracy, 0.90);
  EXPECT_GE(hd[0].linear_accuracy, hd[3].linear_accuracy);
  EXPECT_GE(hd[0].knn_accuracy, hd[3].knn_accuracy);
  EXPECT_GE(hd[0].separation, 1.3 * hd[3].separation);

  if (std::getenv("GRADZOO_EMBED_FULL") != nullptr) {
    // The hardest zoo measured (similarity 0.95, 10 x 50), over embedder seeds 1, 3 and 5.
    // With the cloze loss alone the learned embedding reaches >= 0.90 on average but only ties
    // the untrained encoder: the accuracies tie within seed noise, and its separation is higher
    // for seeds 1, 3 and 5 but not for 2 and 4 (tests/bench/embed_hard_sweep.sh runs all five
    // through the server; core/embed/README.md has the numbers). Asserted: the accuracies, and
    // no more than 0.02 behind the untrained encoder on the mean. The function-distance term
    // below is what beats it.
    ZooSpec hardest = PolySpec(0.95, 5, families, cfg.seeds, cfg.validation_seeds);
    hardest.training.steps = cfg.zoo_steps;
    ASSERT_OK(engine->TrainZoo("hardest", hardest, {}, {}).status());
    double mean_linear[2] = {0, 0}, mean_knn[2] = {0, 0};
    for (int64_t seed : {1, 3, 5}) {
      const std::string id = "hardest-e" + std::to_string(seed);
      ASSERT_OK_AND_ASSIGN(auto xs, TrainAndProbe(*engine, *registry, id, "hardest",
                                                  HardestOptions(seed), id, t0));
      EXPECT_GE(xs[0].linear_accuracy, 0.90) << seed;
      EXPECT_GE(xs[0].knn_accuracy, 0.85) << seed;
      for (int r : {0, 1}) {
        mean_linear[r] += xs[r == 0 ? 0 : 3].linear_accuracy / 3;
        mean_knn[r] += xs[r == 0 ? 0 : 3].knn_accuracy / 3;
      }
    }
    std::printf("hardest mean over seeds: learned %.3f / %.3f, untrained %.3f / %.3f\n",
                mean_linear[0], mean_knn[0], mean_linear[1], mean_knn[1]);
    EXPECT_GE(mean_linear[0], 0.90);
    EXPECT_GE(mean_knn[0], 0.90);
    EXPECT_GE(mean_linear[0], mean_linear[1] - 0.02);
    EXPECT_GE(mean_knn[0], mean_knn[1] - 0.02);

    // The same seeds with the function-distance term (distance_weight 10): the embeddings sit
    // as far apart as the networks' functions do, and the learned embedding beats the
    // untrained encoder: 0.980 / 0.950 / 7.26, 0.980 / 0.930 / 9.10, 0.990 / 0.940 / 10.86
    // against 0.970 / 0.900 / 2.60, 0.970 / 0.920 / 2.09, 0.980 / 0.910 / 1.78 (one thread,
    // 2026-12-06). Asserted per seed: >= 0.90 on both probes and at least twice the untrained
    // encoder's separation; on the mean, ahead on 5-NN (0.940 against 0.910).
    double dist_knn[2] = {0, 0};
    for (int64_t seed : {1, 3, 5}) {
      const std::string id = "hardest-d" + std::to_string(seed);
      EmbedderOptions o = HardestOptions(seed);
      o.distance_weight = kDistanceWeight;
      ASSERT_OK_AND_ASSIGN(auto xs, TrainAndProbe(*engine, *registry, id, "hardest", o, id, t0));
      EXPECT_GE(xs[0].linear_accuracy, 0.90) << seed;
      EXPECT_GE(xs[0].knn_accuracy, 0.90) << seed;
      EXPECT_GE(xs[0].separation, 2.0 * xs[3].separation) << seed;
      dist_knn[0] += xs[0].knn_accuracy / 3;
      dist_knn[1] += xs[3].knn_accuracy / 3;
    }
    std::printf("hardest with distances, mean 5-NN: learned %.3f, untrained %.3f\n", dist_knn[0],
                dist_knn[1]);
    EXPECT_GT(dist_knn[0], dist_knn[1]);
    // The three embeddings side by side (48 dimensions) against the three untrained encoders
    // side by side: 1.000 / 0.950 / 3.57 against 1.000 / 0.930 / 2.12 here, but independent
    // draws of that comparison (the members below, core/embed/README.md) tie on the mean, so
    // only >= 0.90 is asserted.
    ProbeAccuracy joint[2];
    for (bool untrained : {false, true}) {
      ASSERT_OK_AND_ASSIGN(ProbeData d,
                           LookupProbeData(*engine, *registry, "hardest",
                                           {"hardest-e1", "hardest-e3", "hardest-e5"}, 16,
                                           untrained));
      ASSERT_OK_AND_ASSIGN(joint[untrained], RunProbes(d, 5));
      std::printf("hardest seeds 1+3+5 side by side, %-9s linear %.3f  5-NN %.3f  separation %.3f\n",
                  untrained ? "untrained" : "learned", joint[untrained].linear,
                  joint[untrained].knn, joint[untrained].separation);
    }
    EXPECT_GE(joint[0].linear, 0.90);
    EXPECT_GE(joint[0].knn, 0.90);

    // The served form of that: one embedder of three members (seeds 1, 2, 3), whose probe
    // compares it with its three untrained encoders side by side. Its members 2 and 3 take the
    // gradient scale of seed 1, so they are other draws than embedders trained alone with seeds
    // 2 and 3. This draw: 0.990 / 0.910 / 2.31 against 1.000 / 0.930 / 2.08. Over four such
    // draws (core/embed/README.md) members are more accurate than one encoder but tie as many
    // untrained encoders; asserted is what held for all four: >= 0.90 on both probes.
    EmbedderOptions members = HardestOptions(1);
    members.members = 3;
    ASSERT_OK_AND_ASSIGN(auto ms, TrainAndProbe(*engine, *registry, "hardest-m3", "hardest",
                                                members, "hardest-m3", t0));
    EXPECT_GE(ms[0].linear_accuracy, 0.90);
    EXPECT_GE(ms[0].knn_accuracy, 0.90);
  }
  std::printf("[%.0fs] done\n", Seconds(t0));
  std::filesystem::remove_all(dir);
}

// ---- behaviours on a tiny zoo --------------------------------------------------------------

class EmbedTinyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                     ("embed_tiny_" + std::to_string(::getpid())));
    std::filesystem::remove_all(*dir_);
    auto e = Engine::Create({dir_->string(), "cpu"});
    ASSERT_OK(e);
    engine_ = e->release();
    // 3 families x 6 seeds (seeds 4, 5 validate), 1-16-16-1.
    ZooSpec spec = PolySpec(0.0, 1, 3, 6, 2);
    spec.training.steps = 300;
    ASSERT_OK(engine_->TrainZoo("poly", spec, {}, {}).status());
    auto r = EmbedderRegistry::Create({dir_->string(), "cpu"});
    ASSERT_OK(r);
    registry_ = new std::shared_ptr<EmbedderRegistry>(*r);
    EmbedderOptions o = FastOptions(1);
    o.steps = 20;
    ASSERT_OK((*registry_)->Train(*engine_, "poly-e", {"poly"}, o, {}, {}).status());
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete engine_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::filesystem::path* dir_;
  static Engine* engine_;
  static std::shared_ptr<EmbedderRegistry>* registry_;
};
std::filesystem::path* EmbedTinyTest::dir_ = nullptr;
Engine* EmbedTinyTest::engine_ = nullptr;
std::shared_ptr<EmbedderRegistry>* EmbedTinyTest::registry_ = nullptr;

TEST_F(EmbedTinyTest, LookupsAreDeterministicCachedAndReloaded) {
  ASSERT_OK_AND_ASSIGN(auto info, (*registry_)->Get("poly-e"));
  EmbedQuery q;
  q.models = {{"poly", "m0003"}, {"poly", "m0010"}};
  q.seed = 5;
  q.samples = 3;
  ASSERT_OK_AND_ASSIGN(std::vector<float> a, (*registry_)->Embed(*engine_, "poly-e", q, {}));
  ASSERT_EQ(a.size(), 2u * 16);
  // Alone, in another order, and after a reload from disk: the same vectors.
  EmbedQuery single = q;
  single.models = {{"poly", "m0010"}};
  auto fresh = EmbedderRegistry::Create({dir_->string(), "cpu"});
  ASSERT_OK(fresh);
  ASSERT_OK_AND_ASSIGN(auto reloaded, (*fresh)->Get("poly-e"));
  EXPECT_EQ(reloaded.validation_cloze_loss, info.validation_cloze_loss);
  EXPECT_EQ(reloaded.source_domain, info.source_domain);
  ASSERT_OK_AND_ASSIGN(std::vector<float> b, (*fresh)->Embed(*engine_, "poly-e", single, {}));
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(a[16 + i], b[i], 1e-5);
  EXPECT_GE((*registry_)->CachedEmbeddings(), 2);
  // Different seeds give different samples, hence (slightly) different embeddings.
  EmbedQuery other = q;
  other.seed = 6;
  ASSERT_OK_AND_ASSIGN(std::vector<float> c, (*registry_)->Embed(*engine_, "poly-e", other, {}));
  EXPECT_NE(a, c);
}

// The probe rows "embedding" and "untrained_encoder" are RunProbes on what Embed returns for
// the trained and the untrained encoder (EmbedQuery::untrained), with the probes' samples and
// seed: the same numbers exactly. The two encoders embed differently.
TEST_F(EmbedTinyTest, ProbeRowsAreProbesOfTheLookups) {
  ProbeQuery pq;
  pq.zoos = {"poly"};
  ASSERT_OK_AND_ASSIGN(auto scores, (*registry_)->Probe(*engine_, "poly-e", pq, {}));
  ASSERT_EQ(scores.size(), 4u);
  std::vector<float> first_rows[2];
  std::vector<uint8_t> correct[2][2];  // [untrained][linear, k-NN]
  for (bool untrained : {false, true}) {
    ASSERT_OK_AND_ASSIGN(ProbeData d, LookupProbeData(*engine_, **registry_, "poly", {"poly-e"},
                                                      16, untrained));
    ASSERT_EQ(d.train_y.size(), 12u);
    ASSERT_EQ(d.val_y.size(), 6u);
    first_rows[untrained].assign(d.train_x.begin(), d.train_x.begin() + 16);
    ASSERT_OK_AND_ASSIGN(ProbeAccuracy acc, RunProbes(d, pq.k));
    const ProbeScore& row = scores[untrained ? 3 : 0];
    EXPECT_EQ(row.representation, untrained ? "untrained_encoder" : "embedding");
    EXPECT_EQ(acc.linear, row.linear_accuracy) << untrained;
    EXPECT_EQ(acc.knn, row.knn_accuracy) << untrained;
    EXPECT_EQ(acc.separation, row.separation) << untrained;
    correct[untrained][0] = acc.linear_correct;
    correct[untrained][1] = acc.knn_correct;
  }
  EXPECT_NE(first_rows[0], first_rows[1]);
  // The untrained encoder's p-values test its rows against the embedding's; the embedding's
  // own row is 1.
  EXPECT_EQ(scores[0].linear_p_value, 1.0);
  EXPECT_EQ(scores[0].knn_p_value, 1.0);
  ASSERT_OK_AND_ASSIGN(double lp, PairedP(correct[0][0], correct[1][0]));
  ASSERT_OK_AND_ASSIGN(double kp, PairedP(correct[0][1], correct[1][1]));
  EXPECT_EQ(scores[3].linear_p_value, lp);
  EXPECT_EQ(scores[3].knn_p_value, kp);
  for (const ProbeScore& s : scores) {
    EXPECT_GT(s.linear_p_value, 0.0) << s.representation;
    EXPECT_LE(s.linear_p_value, 1.0) << s.representation;
    EXPECT_GT(s.knn_p_value, 0.0) << s.representation;
    EXPECT_LE(s.knn_p_value, 1.0) << s.representation;
  }
}

TEST_F(EmbedTinyTest, ErrorsAreSpecific) {
  EmbedQuery q;
  q.models = {{"poly", "nope"}};
  EXPECT_THAT((*registry_)->Embed(*engine_, "poly-e", q, {}),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  q.models = {{"poly", "m0000"}};
  EXPECT_THAT((*registry_)->Embed(*engine_, "missing", q, {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  q.samples = 0;
  EXPECT_THAT((*registry_)->Embed(*engine_, "poly-e", q, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("samples")));
  q.samples = 4;
  q.from_layer = 1;  // 16 -> 1: not the embedder's 1 -> 1
  EXPECT_THAT((*registry_)->Embed(*engine_, "poly-e", q, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("16 inputs")));
  q.from_layer = 3;
  EXPECT_THAT((*registry_)->Embed(*engine_, "poly-e", q, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from_layer")));
  q.from_layer = 1;
  q.to_layer = 1;
  EXPECT_THAT((*registry_)->Embed(*engine_, "poly-e", q, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
  q.from_layer = q.to_layer = -1;
  q.samples = 64;
  q.models.assign(100000, {"poly", "m0000"});
  EXPECT_THAT((*registry_)->Embed(*engine_, "poly-e", q, {}),
              StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  EmbedderOptions o = FastOptions(1);
  o.mask_rate = 1.5;
  EXPECT_THAT((*registry_)->ValidateTraining(*engine_, "x", {"poly"}, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mask_rate")));
  o = FastOptions(1);
  o.from_layer = 2;
  o.to_layer = 2;
  EXPECT_THAT((*registry_)->ValidateTraining(*engine_, "x", {"poly"}, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
  o.to_layer = 7;  // valid in general, but these networks end at layer 3
  EXPECT_THAT((*registry_)->ValidateTraining(*engine_, "x", {"poly"}, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
  EXPECT_THAT((*registry_)->ValidateTraining(*engine_, "poly-e", {"poly"}, FastOptions(1)),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  EXPECT_THAT((*registry_)->ValidateTraining(*engine_, "x", {"nozoo"}, FastOptions(1)),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  ProbeQuery pq;
  pq.zoos = {"poly"};
  pq.target = "colour";
  EXPECT_THAT((*registry_)->Probe(*engine_, "poly-e", pq, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("target")));
}

TEST_F(EmbedTinyTest, CancelPublishesNothingAndCorruptFilesAreDataLoss) {
  int polls = 0;
  EXPECT_THAT((*registry_)->Train(*engine_, "cancelled", {"poly"}, FastOptions(2), {},
                                  [&] { return ++polls > 3; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_THAT((*registry_)->Get("cancelled"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "embedders" / "cancelled.gzemb"));

  EmbedderOptions tiny = FastOptions(3);
  tiny.steps = 5;
  std::vector<int> steps;
  ASSERT_OK((*registry_)->Train(*engine_, "tiny", {"poly"}, tiny,
                                [&](const TrainProgress& p) { steps.push_back(p.step); }, {})
                .status());
  EXPECT_EQ(steps.back(), 5);
  const auto path = *dir_ / "embedders" / "tiny.gzemb";
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x55');
  }
  ASSERT_OK_AND_ASSIGN(auto fresh, EmbedderRegistry::Create({dir_->string(), "cpu"}));
  EXPECT_THAT(fresh->Get("tiny"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("checksum")));
  EXPECT_OK(fresh->Get("poly-e").status());
  ASSERT_OK(fresh->Delete("tiny"));
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_OK((*registry_)->Delete("tiny"));
}

// A version-2 file (before span masks and the gradient path), written field by field as
// embedder.cc wrote them then; it must load as what it was and answer lookups.
// An embedder file as versions 2-4 wrote it ("old-e", 1-1 networks, seed 1, size 16):
// version 2 without mask_shape and the gradient path, version 3 with them, version 4 also with
// members; none with distance_weight.
std::string OldEmbedderFile(int version) {
  std::string out = absl::StrCat("GZEMB00", version);
  auto pod = [&out](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  auto str = [&](const std::string& v) {
    pod(static_cast<uint32_t>(v.size()));
    out += v;
  };
  str("old-e");
  pod(uint32_t{1});
  str("poly");
  pod(int32_t{48});   // points_per_sample
  pod(0.25);          // mask_rate
  pod(int32_t{16});   // embedding_size
  pod(int32_t{20});   // steps
  pod(int64_t{1});    // seed
  pod(int32_t{32});   // batch_models
  pod(int32_t{48});   // hidden
  pod(3e-3);          // learning_rate
  pod(int32_t{0});    // from_layer
  pod(int32_t{0});    // to_layer
  if (version >= 3) {
    pod(int32_t{2});  // mask_shape: spans
    pod(int32_t{1});  // gradient path
  }
  if (version >= 4) pod(int32_t{1});  // members
  pod(int32_t{1});    // input_dim
  pod(int32_t{1});    // output_dim
  pod(-1.0);          // domain
  pod(1.0);
  pod(uint32_t{1});   // source domain
  pod(-1.0);
  pod(1.0);
  pod(1.5);           // gradient_scale
  pod(int64_t{12});   // train / validation models
  pod(int64_t{6});
  pod(0.5);           // cloze and baseline losses
  pod(2.0);
  pod(1.0);
  pod(int64_t{1700000000000});
  const auto old = embed_internal::EncoderNet::Init(1, 1, 16, 48, 1, version >= 3);
  for (const at::Tensor& t : old.params) {
    pod(static_cast<int64_t>(t.numel()));
    at::Tensor c = t.contiguous();
    out.append(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
  }
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (unsigned char c : out) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  pod(h);
  return out;
}

TEST_F(EmbedTinyTest, VersionTwoToFourFilesLoadAsOneMemberWithoutDistances) {
  for (int version : {2, 3, 4}) {
    const auto path = *dir_ / "embedders" / "old-e.gzemb";
    {
      std::ofstream f(path, std::ios::binary);
      f << OldEmbedderFile(version);
    }
    ASSERT_OK_AND_ASSIGN(auto fresh, EmbedderRegistry::Create({dir_->string(), "cpu"}));
    ASSERT_OK_AND_ASSIGN(EmbedderInfo info, fresh->Get("old-e"));
    EXPECT_EQ(info.options.mask_shape, version == 2 ? MaskShape::kGroups : MaskShape::kSpans);
    EXPECT_EQ(info.options.hidden, 48);
    EXPECT_EQ(info.options.members, 1);
    EXPECT_EQ(info.options.distance_weight, 0.0);
    ASSERT_OK_AND_ASSIGN(EmbedderInfo current, fresh->Get("poly-e"));
    EXPECT_EQ(current.options.mask_shape, MaskShape::kSpans);
    EmbedQuery q;
    q.models = {{"poly", "m0003"}};
    ASSERT_OK_AND_ASSIGN(std::vector<float> e, fresh->Embed(*engine_, "old-e", q, {}));
    ASSERT_EQ(e.size(), 16u);
    for (float v : e) EXPECT_TRUE(std::isfinite(v));
    ProbeQuery pq;
    pq.zoos = {"poly"};
    EXPECT_OK(fresh->Probe(*engine_, "old-e", pq, {}).status());  // the untrained encoder too
    ASSERT_OK(fresh->Delete("old-e"));
  }
}

// distance_weight: the embeddings' squared distances follow the networks' function distances
// (centred outputs on a grid) more closely than the cloze loss alone makes them; the weight is
// stored and reloaded, and out-of-range weights are INVALID_ARGUMENT.
TEST_F(EmbedTinyTest, DistanceWeightMakesEmbeddingDistancesFollowFunctionDistances) {
  ASSERT_OK_AND_ASSIGN(auto zoo, engine_->GetZoo("poly"));
  std::vector<const ModelRecord*> models;
  EmbedQuery q;
  for (const ModelRecord& m : zoo->models) {
    models.push_back(&m);
    q.models.push_back({"poly", m.id});
  }
  const int64_t b = static_cast<int64_t>(models.size());
  at::Tensor y;
  embed_internal::SubnetGradients(models, 0, 0, at::linspace(-1, 1, 64).reshape({64, 1}),
                                  at::kCPU, &y);
  const at::Tensor target = embed_internal::FunctionDistances(y).to(at::kDouble);
  const at::Tensor upper = at::triu(at::ones({b, b}, at::kBool), 1);
  auto correlation = [&](const std::string& id) -> double {
    std::vector<float> e = *(*registry_)->Embed(*engine_, id, q, {});
    at::Tensor et = at::tensor(e).reshape({b, -1}).to(at::kDouble);
    at::Tensor d = (et.unsqueeze(1) - et.unsqueeze(0)).pow(2).sum(2);
    at::Tensor u = d.masked_select(upper), v = target.masked_select(upper);
    u = u - u.mean();
    v = v - v.mean();
    return ((u * v).sum() / (u.norm() * v.norm())).item<double>();
  };
  double r[2];
  for (int k : {0, 1}) {
    EmbedderOptions o = FastOptions(1);
    o.steps = 200;
    o.distance_weight = k;
    const std::string id = "poly-d" + std::to_string(k);
    ASSERT_OK((*registry_)->Train(*engine_, id, {"poly"}, o, {}, {}).status());
    r[k] = correlation(id);
  }
  std::printf("correlation of embedding and function distances: cloze only %.3f, weight 1 %.3f\n",
              r[0], r[1]);
  EXPECT_GT(r[1], r[0] + 0.05);
  EXPECT_GT(r[1], 0.8);
  ASSERT_OK_AND_ASSIGN(auto fresh, EmbedderRegistry::Create({dir_->string(), "cpu"}));
  ASSERT_OK_AND_ASSIGN(EmbedderInfo info, fresh->Get("poly-d1"));
  EXPECT_EQ(info.options.distance_weight, 1.0);
  for (const std::string id : {"poly-d0", "poly-d1"}) ASSERT_OK((*registry_)->Delete(id));
  for (double bad : {-0.5, 101.0, std::nan("")}) {
    EmbedderOptions o = FastOptions(1);
    o.distance_weight = bad;
    EXPECT_THAT(ValidateEmbedderOptions(o),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("distance_weight")));
  }
}

// members = 2: the first member is the single embedder of the same seed and options (same
// gradient scale, same streams), the second another encoder; lookups, the untrained encoders,
// reloads and probes carry both, side by side.
TEST_F(EmbedTinyTest, MembersAreEncodersSideBySide) {
  EmbedderOptions o = FastOptions(1);
  o.steps = 20;
  o.members = 2;
  std::vector<int64_t> steps_seen;
  ASSERT_OK_AND_ASSIGN(
      EmbedderInfo info,
      (*registry_)->Train(*engine_, "poly-m2", {"poly"}, o,
                          [&](const TrainProgress& p) {
                            steps_seen.push_back(p.step);
                            EXPECT_EQ(p.total_steps, 40);
                          },
                          {}));
  EXPECT_EQ(info.options.members, 2);
  EXPECT_EQ(EmbeddingDim(info.options), 32);
  ASSERT_FALSE(steps_seen.empty());
  EXPECT_EQ(steps_seen.back(), 40);
  EmbedQuery q;
  q.models = {{"poly", "m0003"}, {"poly", "m0010"}};
  for (bool untrained : {false, true}) {
    q.untrained = untrained;
    ASSERT_OK_AND_ASSIGN(std::vector<float> one, (*registry_)->Embed(*engine_, "poly-e", q, {}));
    ASSERT_OK_AND_ASSIGN(std::vector<float> two, (*registry_)->Embed(*engine_, "poly-m2", q, {}));
    ASSERT_EQ(one.size(), 2u * 16);
    ASSERT_EQ(two.size(), 2u * 32);
    for (int r = 0; r < 2; ++r) {
      for (int k = 0; k < 16; ++k) EXPECT_EQ(two[r * 32 + k], one[r * 16 + k]) << untrained;
      EXPECT_NE(std::vector<float>(two.begin() + r * 32, two.begin() + r * 32 + 16),
                std::vector<float>(two.begin() + r * 32 + 16, two.begin() + r * 32 + 32));
    }
  }
  q.untrained = false;
  ASSERT_OK_AND_ASSIGN(std::vector<float> before, (*registry_)->Embed(*engine_, "poly-m2", q, {}));
  ASSERT_OK_AND_ASSIGN(auto fresh, EmbedderRegistry::Create({dir_->string(), "cpu"}));
  ASSERT_OK_AND_ASSIGN(EmbedderInfo reloaded, fresh->Get("poly-m2"));
  EXPECT_EQ(reloaded.options.members, 2);
  EXPECT_EQ(reloaded.validation_cloze_loss, info.validation_cloze_loss);
  ASSERT_OK_AND_ASSIGN(std::vector<float> after, fresh->Embed(*engine_, "poly-m2", q, {}));
  ASSERT_EQ(after.size(), before.size());
  for (size_t k = 0; k < after.size(); ++k) EXPECT_NEAR(after[k], before[k], 1e-5);
  ProbeQuery pq;
  pq.zoos = {"poly"};
  ASSERT_OK_AND_ASSIGN(auto scores, fresh->Probe(*engine_, "poly-m2", pq, {}));
  ASSERT_EQ(scores.size(), 4u);
  ASSERT_OK_AND_ASSIGN(ProbeData d, LookupProbeData(*engine_, *fresh, "poly", {"poly-m2"}, 32,
                                                    false));
  ASSERT_OK_AND_ASSIGN(ProbeAccuracy acc, RunProbes(d, pq.k));
  EXPECT_EQ(acc.knn, scores[0].knn_accuracy);
  EXPECT_EQ(acc.separation, scores[0].separation);
  NeighborQuery nq;
  nq.model = {"poly", "m0003"};
  nq.k = 3;
  ASSERT_OK_AND_ASSIGN(auto nb, fresh->FindNeighbors(*engine_, "poly-m2", nq, {}));
  EXPECT_EQ(nb.size(), 3u);
  for (int bad : {0, 9}) {
    o.members = bad;
    EXPECT_THAT((*registry_)->Train(*engine_, "poly-bad", {"poly"}, o, {}, {}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("members")));
  }
  ASSERT_OK((*registry_)->Delete("poly-m2"));
}

TEST_F(EmbedTinyTest, SubNetworkEmbedderBetweenHiddenLayers) {
  // The function from layer 1's activations to the output, through hidden layer 2: 16 -> 1.
  // (Layers 1 to 2 alone would be one affine map: a constant gradient, nothing to mask.)
  EmbedderOptions o = FastOptions(5);
  o.from_layer = 1;
  o.to_layer = 3;
  o.steps = 10;
  std::vector<double> losses;
  ASSERT_OK_AND_ASSIGN(
      EmbedderInfo info,
      (*registry_)->Train(*engine_, "sub-e", {"poly"}, o,
                          [&](const TrainProgress& p) { losses.push_back(p.mean_train_loss); },
                          {}));
  EXPECT_EQ(info.input_dim, 16);
  EXPECT_EQ(info.output_dim, 1);
  ASSERT_EQ(info.domain.size(), 16u);
  ASSERT_EQ(info.source_domain.size(), 1u);
  for (const auto& [lo, hi] : info.domain) {
    EXPECT_GE(lo, 0.0);  // ReLU activations
    EXPECT_GE(hi, lo);
  }
  EXPECT_GT(info.mean_gradient_baseline_loss, 0.0);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));

  EmbedQuery q;
  q.models = {{"poly", "m0001"}, {"poly", "m0007"}};
  q.seed = 2;
  ASSERT_OK_AND_ASSIGN(std::vector<float> a, (*registry_)->Embed(*engine_, "sub-e", q, {}));
  ASSERT_EQ(a.size(), 2u * 16);  // embedding size 16
  for (float v : a) EXPECT_TRUE(std::isfinite(v));
  // Deterministic: explicit layers, and a reload from disk, give the same vectors.
  EmbedQuery explicit_layers = q;
  explicit_layers.from_layer = 1;
  explicit_layers.to_layer = 0;  // the output: layer 3
  ASSERT_OK_AND_ASSIGN(auto fresh, EmbedderRegistry::Create({dir_->string(), "cpu"}));
  ASSERT_OK_AND_ASSIGN(auto reloaded, fresh->Get("sub-e"));
  EXPECT_EQ(reloaded.options.from_layer, 1);
  EXPECT_EQ(reloaded.options.to_layer, 3);
  EXPECT_EQ(reloaded.domain, info.domain);
  ASSERT_OK_AND_ASSIGN(std::vector<float> b, fresh->Embed(*engine_, "sub-e", explicit_layers, {}));
  EXPECT_EQ(a, b);
  // The two models' sub-networks differ, and so do their embeddings.
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + 16), std::vector<float>(a.begin() + 16, a.end()));
  // A 1 -> 1 whole network is not what this embedder reads.
  EmbedQuery whole = q;
  whole.from_layer = 0;
  whole.to_layer = 0;
  EXPECT_THAT((*registry_)->Embed(*engine_, "sub-e", whole, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  // Neighbours and probes read the embedder's own sub-network.
  NeighborQuery nq;
  nq.model = {"poly", "m0001"};
  nq.k = 3;
  ASSERT_OK_AND_ASSIGN(auto nb, (*registry_)->FindNeighbors(*engine_, "sub-e", nq, {}));
  EXPECT_EQ(nb.size(), 3u);
  ProbeQuery pq;
  pq.zoos = {"poly"};
  ASSERT_OK_AND_ASSIGN(auto scores, (*registry_)->Probe(*engine_, "sub-e", pq, {}));
  EXPECT_EQ(scores.size(), 4u);
  ASSERT_OK((*registry_)->Delete("sub-e"));
}

}  // namespace
}  // namespace gradzoo::core
