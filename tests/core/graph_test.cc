// Known answers for core/grad/graph: ReLU unit edges against their closed form
// p_v |W[v,u]| / ||W[v,:]||, component edges against a slow loop over Jacobians and PCA bases
// (each checked against autograd / SVD in layer_jacobians_test), active sub-graphs against the
// activation patterns, path rarity against a hand computation, and the DOT / JSON texts.
#include "core/grad/graph.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "core/grad/bit_keys.h"
#include "core/grad/layer_jacobians.h"
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

std::map<std::pair<std::string, std::string>, GraphEdge> EdgesById(const ComputationalGraph& g) {
  std::map<std::pair<std::string, std::string>, GraphEdge> m;
  for (const GraphEdge& e : g.edges) m[{g.nodes[e.from].id, g.nodes[e.to].id}] = e;
  return m;
}

TEST(GraphTest, ReluUnitEdgesMatchClosedForm) {
  MlpSpec spec{3, {6, 5}, 2, Activation::kRelu};
  const auto net = RandomNet(spec, 4);
  const int64_t n = 500;
  const auto pts = UniformPoints(n, 3, 5);
  ASSERT_OK_AND_ASSIGN(ComputationalGraph g, BuildGraph(spec, net, pts, n, {}, 0, "cpu", {}, {}));
  ASSERT_EQ(g.nodes.size(), 3u + 6 + 5 + 2);
  EXPECT_EQ(g.nodes[0].id, "L0:0");
  EXPECT_EQ(g.nodes[0].label, "x1");
  EXPECT_EQ(g.nodes[3].label, "h1.0");
  EXPECT_EQ(g.nodes.back().label, "y2");
  EXPECT_EQ(g.dropped_edges, 0);

  // Activation frequencies p_v of hidden units (activity of the node) from the patterns.
  ASSERT_OK_AND_ASSIGN(auto bits, ActivationPatterns(spec, net, pts, n, "cpu", {}));
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  std::vector<std::vector<double>> p(4);
  p[0].assign(3, 1.0);
  p[3].assign(2, 1.0);
  for (int j = 1; j <= 2; ++j) {
    for (int v = 0; v < spec.hidden[j - 1]; ++v) {
      int64_t c = 0;
      for (int64_t q = 0; q < n; ++q) c += (bits[q * offsets.back() + offsets[j - 1]] >> v) & 1;
      p[j].push_back(static_cast<double>(c) / n);
      EXPECT_NEAR(g.nodes[3 + (j == 2 ? 6 : 0) + v].activity, p[j][v], 1e-12);
    }
  }
  const auto edges = EdgesById(g);
  int64_t expected_edges = 0;
  for (int l = 0; l < 3; ++l) {
    const LayerWeights& lw = net[l];
    for (int v = 0; v < lw.out; ++v) {
      double norm = 0;
      for (int u = 0; u < lw.in; ++u) norm += static_cast<double>(lw.weight[v * lw.in + u]) * lw.weight[v * lw.in + u];
      norm = std::sqrt(norm);
      for (int u = 0; u < lw.in; ++u) {
        const double w = lw.weight[v * lw.in + u] / norm;
        const auto it = edges.find({absl::StrCat("L", l, ":", u), absl::StrCat("L", l + 1, ":", v)});
        if (p[l + 1][v] == 0) {
          EXPECT_TRUE(it == edges.end());  // a dead unit has no edges
          continue;
        }
        ++expected_edges;
        ASSERT_TRUE(it != edges.end());
        EXPECT_NEAR(it->second.weight, p[l + 1][v] * std::abs(w), 1e-6);
        EXPECT_NEAR(it->second.signed_weight, p[l + 1][v] * w, 1e-6);
      }
    }
  }
  EXPECT_EQ(static_cast<int64_t>(g.edges.size()), expected_edges);

  // max_edges keeps the strongest; min_abs_weight drops the weak.
  GraphOptions o;
  o.max_edges = 10;
  ASSERT_OK_AND_ASSIGN(ComputationalGraph top, BuildGraph(spec, net, pts, n, {}, 0, "cpu", o, {}));
  EXPECT_EQ(top.edges.size(), 10u);
  EXPECT_EQ(top.dropped_edges, expected_edges - 10);
  std::vector<double> all;
  for (const auto& e : g.edges) all.push_back(e.weight);
  std::sort(all.rbegin(), all.rend());
  for (const auto& e : top.edges) EXPECT_GE(e.weight, all[9]);
  o.max_edges = 0;
  o.min_abs_weight = 0.3;
  ASSERT_OK_AND_ASSIGN(ComputationalGraph strong, BuildGraph(spec, net, pts, n, {}, 0, "cpu", o, {}));
  for (const auto& e : strong.edges) EXPECT_GE(e.weight, 0.3);
  EXPECT_EQ(static_cast<int64_t>(strong.edges.size()),
            std::count_if(all.begin(), all.end(), [](double w) { return w >= 0.3; }));
}

TEST(GraphTest, ComponentEdgesMatchSlowLoop) {
  MlpSpec spec{3, {8, 6}, 2, Activation::kGelu};
  const auto net = RandomNet(spec, 6);
  const int64_t n = 200;
  const auto pts = UniformPoints(n, 3, 7);
  GraphOptions o;
  o.basis = GraphBasis::kPrincipalComponents;
  o.num_components = 3;
  ASSERT_OK_AND_ASSIGN(ComputationalGraph g, BuildGraph(spec, net, pts, n, {}, 0, "cpu", o, {}));
  const std::vector<int> k = {3, 3, 3, 2};
  ASSERT_EQ(g.nodes.size(), 11u);
  EXPECT_EQ(g.nodes[3].label, "pc1.0");
  // Bases and unit Jacobians from layer_jacobians (tested against SVD and autograd there).
  std::vector<LayerPca> pca(4);
  for (int j = 1; j <= 2; ++j) {
    ASSERT_OK_AND_ASSIGN(pca[j], ComputeLayerActivationPca(spec, net, pts, n, "cpu", j, 3, {}));
    EXPECT_NEAR(g.nodes[3 * j].activity, pca[j].explained_variance[0] / pca[j].total_variance, 1e-9);
  }
  const auto edges = EdgesById(g);
  const std::vector<int> w = spec.Widths();
  for (int l = 0; l < 3; ++l) {
    LayerJacobianOptions jo;
    jo.layer = l;
    ASSERT_OK_AND_ASSIGN(LayerJacobians j, ComputeAdjacentJacobians(spec, net, pts, n, "cpu", jo, {}));
    // basis(j)[c][i]: component c of layer j as a vector over its units (identity for units).
    auto basis = [&](int layer, int c, int i) {
      if (layer == 0 || layer == 3) return c == i ? 1.0 : 0.0;
      return pca[layer].vectors[c * w[layer] + i];
    };
    std::vector<double> abs_sum(k[l + 1] * k[l], 0), signed_sum(k[l + 1] * k[l], 0);
    for (int64_t q = 0; q < n; ++q) {
      for (int v = 0; v < k[l + 1]; ++v) {
        std::vector<double> row(k[l], 0.0);
        for (int u = 0; u < k[l]; ++u) {
          for (int a = 0; a < w[l + 1]; ++a) {
            for (int b = 0; b < w[l]; ++b) {
              row[u] += basis(l + 1, v, a) * j.jacobians[(q * w[l + 1] + a) * w[l] + b] * basis(l, u, b);
            }
          }
        }
        double norm = 0;
        for (double r : row) norm += r * r;
        norm = std::sqrt(norm);
        for (int u = 0; u < k[l]; ++u) {
          const double e = norm > 0 ? row[u] / norm : 0.0;
          abs_sum[v * k[l] + u] += std::abs(e);
          signed_sum[v * k[l] + u] += e;
        }
      }
    }
    for (int v = 0; v < k[l + 1]; ++v) {
      for (int u = 0; u < k[l]; ++u) {
        const auto it = edges.find({absl::StrCat("L", l, ":", u), absl::StrCat("L", l + 1, ":", v)});
        ASSERT_TRUE(it != edges.end());
        EXPECT_NEAR(it->second.weight, abs_sum[v * k[l] + u] / n, 1e-4);
        EXPECT_NEAR(it->second.signed_weight, signed_sum[v * k[l] + u] / n, 1e-4);
      }
    }
  }
}

TEST(GraphTest, ActiveSubgraphsFollowPatterns) {
  MlpSpec spec{2, {5, 4}, 1, Activation::kRelu};
  const auto net = RandomNet(spec, 8);
  const auto pts = UniformPoints(300, 2, 9);
  const auto queries = UniformPoints(20, 2, 10);
  ASSERT_OK_AND_ASSIGN(ComputationalGraph g, BuildGraph(spec, net, pts, 300, queries, 20, "cpu", {}, {}));
  ASSERT_EQ(g.subgraphs.size(), 20u);
  ASSERT_OK_AND_ASSIGN(auto bits, ActivationPatterns(spec, net, queries, 20, "cpu", {}));
  for (int q = 0; q < 20; ++q) {
    // Node i is on when it is an input/output or its activity bit is set.
    auto on = [&](int i) {
      const GraphNode& node = g.nodes[i];
      if (node.layer == 0 || node.layer == 3) return true;
      return ((bits[q * 2 + node.layer - 1] >> node.index) & 1) == 1;
    };
    std::vector<int> nodes;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (on(static_cast<int>(i))) nodes.push_back(static_cast<int>(i));
    }
    EXPECT_EQ(g.subgraphs[q].nodes, nodes);
    // ReLU units: an edge carries gradient at x exactly when both of its ends are on.
    std::vector<int> edges;
    for (size_t e = 0; e < g.edges.size(); ++e) {
      if (on(g.edges[e].from) && on(g.edges[e].to)) edges.push_back(static_cast<int>(e));
    }
    EXPECT_EQ(g.subgraphs[q].edges, edges);
  }
}

// Gradient clusters against a slow loop: each example's per-layer ReLU pattern from a plain
// float forward pass, clusters ranked by size (ties by pattern), the top K kept plus "other";
// activities and edge weights are the counted fractions; a query follows its own patterns.
TEST(GraphTest, GradientClusterGraphMatchesSlowLoop) {
  MlpSpec spec{2, {5, 4}, 1, Activation::kRelu};
  const auto net = RandomNet(spec, 11);
  const int64_t n = 400;
  const auto pts = UniformPoints(n, 2, 12);
  const int keep = 3;
  // Slow reference: patterns as strings of 0/1 per hidden layer.
  std::vector<std::vector<std::string>> pattern(2, std::vector<std::string>(n));
  auto patterns_of = [&](const float* x, std::string* p1, std::string* p2) {
    std::vector<float> h(x, x + 2);
    for (int l = 0; l < 2; ++l) {
      const LayerWeights& lw = net[l];
      std::vector<float> z(lw.out);
      std::string bits;
      for (int o = 0; o < lw.out; ++o) {
        float acc = lw.bias[o];
        for (int i = 0; i < lw.in; ++i) acc += lw.weight[o * lw.in + i] * h[i];
        z[o] = acc;
        bits.push_back(acc > 0 ? '1' : '0');
      }
      for (float& v : z) v = std::max(v, 0.0f);
      h = z;
      *(l == 0 ? p1 : p2) = bits;
    }
  };
  for (int64_t i = 0; i < n; ++i) patterns_of(&pts[i * 2], &pattern[0][i], &pattern[1][i]);
  std::vector<std::map<std::string, int>> rank(2);
  std::vector<std::vector<int>> cl(2, std::vector<int>(n));
  std::vector<int> nodes(2);
  for (int l = 0; l < 2; ++l) {
    std::map<std::string, int64_t> count;
    for (int64_t i = 0; i < n; ++i) ++count[pattern[l][i]];
    std::vector<std::pair<int64_t, std::string>> order;
    for (auto& [p, c] : count) order.push_back({c, p});
    // Size descending; equal sizes are tied deterministically by the pattern (any fixed order
    // is fine here: the test only uses sizes, so it checks the multiset of cluster sizes).
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    const int kept = std::min<int>(keep, static_cast<int>(order.size()));
    nodes[l] = kept + (static_cast<int>(order.size()) > kept ? 1 : 0);
    for (int r = 0; r < kept; ++r) rank[l][order[r].second] = r;
    for (int64_t i = 0; i < n; ++i) {
      auto it = rank[l].find(pattern[l][i]);
      cl[l][i] = it == rank[l].end() ? kept : it->second;
    }
  }
  GraphOptions o;
  o.basis = GraphBasis::kGradientClusters;
  o.num_components = keep;
  const std::vector<float> query = {pts[0], pts[1]};
  ASSERT_OK_AND_ASSIGN(ComputationalGraph g, BuildGraph(spec, net, pts, n, query, 1, "cpu", o, {}));
  ASSERT_EQ(static_cast<int>(g.nodes.size()), 1 + nodes[0] + nodes[1] + 1);
  EXPECT_EQ(g.nodes.front().label, "x");
  EXPECT_EQ(g.nodes.back().label, "y");
  // Node activities per layer, as sorted multisets (ties may rank either way).
  for (int l = 0; l < 2; ++l) {
    std::vector<double> want(nodes[l], 0.0), got;
    for (int64_t i = 0; i < n; ++i) want[cl[l][i]] += 1.0 / n;
    for (const GraphNode& node : g.nodes) {
      if (node.layer == l + 1) got.push_back(node.activity);
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got.size(), want.size());
    for (size_t r = 0; r < got.size(); ++r) EXPECT_NEAR(got[r], want[r], 1e-12);
  }
  // Edge weights between adjacent layers sum to 1; x -> layer 1 equals the activities.
  std::map<int, double> sum_by_layer;
  for (const GraphEdge& e : g.edges) {
    EXPECT_DOUBLE_EQ(e.weight, e.signed_weight);
    sum_by_layer[g.nodes[e.from].layer] += e.weight;
    if (g.nodes[e.from].layer == 0) EXPECT_DOUBLE_EQ(e.weight, g.nodes[e.to].activity);
  }
  ASSERT_EQ(sum_by_layer.size(), 3u);
  for (auto [l, w] : sum_by_layer) EXPECT_NEAR(w, 1.0, 1e-12) << "layer " << l;
  // Hidden-to-hidden weights: the joint fractions of (layer-1 cluster, layer-2 cluster), as a
  // multiset (rank-invariant).
  std::map<std::pair<int, int>, int64_t> joint;
  for (int64_t i = 0; i < n; ++i) ++joint[{cl[0][i], cl[1][i]}];
  std::vector<double> want_joint, got_joint;
  for (auto& [k, c] : joint) want_joint.push_back(static_cast<double>(c) / n);
  for (const GraphEdge& e : g.edges) {
    if (g.nodes[e.from].layer == 1) got_joint.push_back(e.weight);
  }
  std::sort(want_joint.begin(), want_joint.end());
  std::sort(got_joint.begin(), got_joint.end());
  ASSERT_EQ(got_joint.size(), want_joint.size());
  for (size_t r = 0; r < got_joint.size(); ++r) EXPECT_NEAR(got_joint[r], want_joint[r], 1e-12);
  // Joint counts: the node of each example (by the service's own ranking) via a query of it.
  // The query (example 0) has a 4-node path and 3 edges, each at least 1/n.
  ASSERT_EQ(g.subgraphs.size(), 1u);
  EXPECT_EQ(g.subgraphs[0].nodes.size(), 4u);
  ASSERT_EQ(g.subgraphs[0].edges.size(), 3u);
  for (int e : g.subgraphs[0].edges) EXPECT_GE(g.edges[e].weight, 1.0 / n - 1e-15);
  // The query's layer-1 node holds exactly the examples sharing its layer-1 pattern (or the
  // whole "other" remainder).
  const GraphNode& q1 = g.nodes[g.subgraphs[0].nodes[1]];
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i) same += cl[0][i] == cl[0][0];
  EXPECT_NEAR(q1.activity, static_cast<double>(same) / n, 1e-12);

  // Limits.
  o.num_components = kMaxGraphClusters + 1;
  EXPECT_THAT(BuildGraph(spec, net, pts, n, {}, 0, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_components")));
}

TEST(GraphTest, PathRarityByHand) {
  // h = relu(x): bits are the signs of x1, x2. Reference: 6 x (+,+), 3 x (+,-), 1 x (-,-), so
  // p_1 = 10/12, p_2 = 7/12 and surprisal(b) = sum_u -log2 P(b_u).
  MlpSpec spec{2, {2}, 1, Activation::kRelu};
  std::vector<LayerWeights> net = {{2, 2, {1, 0, 0, 1}, {0, 0}}, {1, 2, {1, 1}, {0}}};
  std::vector<float> ref;
  for (int i = 0; i < 6; ++i) ref.insert(ref.end(), {0.5f, 0.5f});
  for (int i = 0; i < 3; ++i) ref.insert(ref.end(), {0.5f, -0.5f});
  ref.insert(ref.end(), {-0.5f, -0.5f});
  const std::vector<float> queries = {-0.5f, 0.5f, 0.5f, 0.5f};
  ASSERT_OK_AND_ASSIGN(RarityResult r, ScoreRarity(spec, net, ref, 10, queries, 2, "cpu", {}));
  const double s_pp = -std::log2(10.0 / 12) - std::log2(7.0 / 12);
  const double s_pm = -std::log2(10.0 / 12) - std::log2(5.0 / 12);
  const double s_mm = -std::log2(2.0 / 12) - std::log2(5.0 / 12);
  const double s_mp = -std::log2(2.0 / 12) - std::log2(7.0 / 12);
  ASSERT_EQ(r.scores.size(), 2u);
  EXPECT_NEAR(r.scores[0].surprisal_bits, s_mp, 1e-12);
  EXPECT_NEAR(r.scores[0].percentile, 90.0, 1e-9);  // above 9 of 10, below (-,-)
  EXPECT_EQ(r.scores[0].same_pattern_count, 0);
  EXPECT_EQ(r.scores[0].nearest_hamming_distance, 1);
  EXPECT_NEAR(r.scores[1].surprisal_bits, s_pp, 1e-12);
  EXPECT_NEAR(r.scores[1].percentile, 30.0, 1e-9);  // ties with 6 of 10: 0 + 6 / 2
  EXPECT_EQ(r.scores[1].same_pattern_count, 6);
  EXPECT_EQ(r.scores[1].nearest_hamming_distance, 0);
  EXPECT_EQ(r.reference.examples, 10);
  EXPECT_EQ(r.reference.distinct_patterns, 3);
  EXPECT_NEAR(r.reference.mean_surprisal_bits, (6 * s_pp + 3 * s_pm + s_mm) / 10, 1e-12);
  ASSERT_EQ(r.reference.quantiles.size(), 9u);
  EXPECT_NEAR(r.reference.quantiles[0], s_pp, 1e-12);
  EXPECT_NEAR(r.reference.quantiles[4], s_pp, 1e-12);  // median: order statistics 4 and 5
  EXPECT_NEAR(r.reference.quantiles[5], s_pm, 1e-12);  // 0.75 * 9 = 6.75 -> both s_pm
  EXPECT_NEAR(r.reference.quantiles[7], s_pm + 0.91 * (s_mm - s_pm), 1e-12);  // 8.91
  EXPECT_NEAR(r.reference.quantiles[8], s_mm, 1e-12);

  // The graph carries the same scores for its queries.
  ASSERT_OK_AND_ASSIGN(ComputationalGraph g, BuildGraph(spec, net, ref, 10, queries, 2, "cpu", {}, {}));
  EXPECT_NEAR(g.subgraphs[0].rarity.surprisal_bits, s_mp, 1e-12);
  EXPECT_EQ(g.reference.distinct_patterns, 3);
}

TEST(GraphTest, DotAndJsonTexts) {
  MlpSpec spec{2, {3}, 1, Activation::kRelu};
  std::vector<LayerWeights> net = {{3, 2, {1, 0, 0, 1, 1, -1}, {0.1f, 0.1f, 0.1f}},
                                   {1, 3, {1, -2, 0.5f}, {0}}};
  const auto pts = UniformPoints(100, 2, 11);
  ASSERT_OK_AND_ASSIGN(ComputationalGraph g, BuildGraph(spec, net, pts, 100, {}, 0, "cpu", {}, {}));
  // Zero weights (x2 -> h1.0, x1 -> h1.1) give no edge: 4 + 3 edges.
  ASSERT_EQ(g.edges.size(), 7u);
  const std::string dot = GraphToDot(g, "zoos/z/models/m0000");
  EXPECT_THAT(dot, HasSubstr("digraph \"zoos/z/models/m0000\" {"));
  EXPECT_THAT(dot, HasSubstr("subgraph cluster_L1"));
  // Readable rendering: named layers, a key under the title, small arrowheads.
  EXPECT_THAT(dot, HasSubstr("label=\"input\""));
  EXPECT_THAT(dot, HasSubstr("label=\"hidden 1\""));
  EXPECT_THAT(dot, HasSubstr("label=\"output\""));
  EXPECT_THAT(dot, HasSubstr("label=\"zoos/z/models/m0000\\nedge width: mean |normalised gradient|"));
  EXPECT_THAT(dot, HasSubstr("edge [arrowsize=0.35]"));
  EXPECT_THAT(dot, HasSubstr("\"L1:1\" -> \"L2:0\""));
  EXPECT_THAT(dot, HasSubstr("#d62728"));  // the negative weight h1.1 -> y1
  size_t arrows = 0;
  for (size_t p = dot.find("->"); p != std::string::npos; p = dot.find("->", p + 2)) ++arrows;
  EXPECT_EQ(arrows, 7u);
  // Attribute values graphviz can parse: no exponent notation, even for tiny weights.
  ComputationalGraph tiny = g;
  tiny.edges[0].weight = 5.3e-5;
  const std::string tiny_dot = GraphToDot(tiny, "t");
  EXPECT_THAT(tiny_dot, HasSubstr("weight=0.000053"));
  EXPECT_THAT(tiny_dot, ::testing::Not(HasSubstr("e-05")));
  const std::string json = GraphToJson(g);
  EXPECT_THAT(json, HasSubstr("\"directed\": true"));
  EXPECT_THAT(json, HasSubstr("{\"id\": \"L0:0\", \"layer\": 0, \"index\": 0, \"label\": \"x1\""));
  EXPECT_THAT(json, HasSubstr("{\"source\": \"L1:1\", \"target\": \"L2:0\""));
  size_t links = 0;
  for (size_t p = json.find("\"source\""); p != std::string::npos; p = json.find("\"source\"", p + 1)) ++links;
  EXPECT_EQ(links, 7u);
}

TEST(GraphTest, Errors) {
  MlpSpec spec{2, {4}, 1, Activation::kRelu};
  const auto net = RandomNet(spec, 1);
  const auto pts = UniformPoints(5, 2, 1);
  GraphOptions o;
  o.max_edges = -1;
  EXPECT_THAT(BuildGraph(spec, net, pts, 5, {}, 0, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_edges")));
  o.max_edges = 0;
  o.min_abs_weight = NAN;
  EXPECT_THAT(BuildGraph(spec, net, pts, 5, {}, 0, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_abs_weight")));
  o.min_abs_weight = 0;
  o.basis = GraphBasis::kPrincipalComponents;
  EXPECT_THAT(BuildGraph(spec, net, {0.1f, 0.2f}, 1, {}, 0, "cpu", o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 2")));
  o.basis = GraphBasis::kUnits;
  std::vector<float> many(2 * (kMaxGraphQueries + 1), 0.1f);
  EXPECT_THAT(BuildGraph(spec, net, pts, 5, many, kMaxGraphQueries + 1, "cpu", o, {}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("query_points")));
  // 2 x 2048 + 2048 x 2048 + 2048 possible edges exceed the limit; refused before any work.
  MlpSpec wide{2, {2048, 2048}, 1, Activation::kRelu};
  std::vector<LayerWeights> zeros = {{2048, 2, std::vector<float>(2 * 2048), std::vector<float>(2048)},
                                     {2048, 2048, std::vector<float>(2048 * 2048), std::vector<float>(2048)},
                                     {1, 2048, std::vector<float>(2048), {0}}};
  EXPECT_THAT(BuildGraph(wide, zeros, pts, 5, {}, 0, "cpu", o, {}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("possible edges")));
  EXPECT_THAT(BuildGraph(spec, net, pts, 5, {}, 0, "cpu", o, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

}  // namespace
}  // namespace gradzoo::core
