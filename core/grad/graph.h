// The layer-by-layer computational graph of one model over a dataset (seed 001), the part of it
// a given input activates, and how unusual that input's activation path is (path rarity).
//
// Nodes are (layer, component) for activation layers 0 (input) .. H+1 (output); components are
// units, or (basis = principal components) the top principal components of each hidden layer's
// activations over the dataset (inputs and outputs stay units), or (basis = gradient clusters,
// below) the unique-gradient clusters of each hidden layer. With B_l the basis of layer l
// (identity, or the [width, k] matrix of component vectors) and J_n = d a_{l+1} / d a_l
// (layer_jacobians.h), the edge block at example n is E_n = B_{l+1}^T J_n B_l, i.e. the
// gradient of each downstream node w.r.t. each upstream node. Each row (one downstream node) is
// normalised to unit length (zero rows stay zero) so weights are layer-wise, and
//   weight(u -> v)        = mean_n |E^_n[v, u]|   (mean normalised gradient magnitude)
//   signed_weight(u -> v) = mean_n  E^_n[v, u].
// For ReLU units this is the closed form p_v |W[v,u]| / ||W[v,:]|| (p_v = how often v is active),
// which the tests check. Edges with weight < min_abs_weight are dropped, and only the
// max_edges strongest are kept (dropped_edges counts the rest).
//
// Gradient clusters (seed 001's "unique gradients", layer by layer): the examples of hidden
// layer l fall into clusters by their layer-l activity pattern (bit_keys.h). For ReLU, equal
// patterns are exactly equal local maps D_l W_l (so equal gradients d a_l / d a_{l-1} and, with
// the later layers' patterns, equal input gradients); for GELU/tanh the pattern of activity bits
// groups them. Each hidden layer keeps its `num_components` most frequent clusters (0 = 16;
// ties by pattern) as nodes "g{l}.{rank}" and merges the rest into one node "g{l}.other"; the
// input and the output are one node each ("x", "y"). Nodes and edges count examples flowing
// through them:
//   activity(c) = |c| / N,  weight(c -> d) = signed_weight(c -> d) = |c AND d| / N
// (x -> c and c -> y likewise), so the weights between two adjacent layers sum to 1. An input's
// active sub-graph is its path: x, its cluster in each layer (its pattern's, or "other"), y.
//
// Node activity: for hidden units the fraction of examples whose activity bit (bit_keys.h) is
// set; for components the explained-variance ratio; 1 for inputs and outputs.
//
// Active sub-graph of an input x: every input and output node, hidden units whose activity bit is
// set at x (components count as active), and the kept edges whose upstream node is active and
// whose own normalised gradient at x, |E^_x[v, u]|, is nonzero and at least min_abs_weight.
//
// Path rarity of x against the reference examples (the dataset), over the activity bits b_u of
// all hidden units, with Laplace-smoothed frequencies p_u = (count_u(b_u = 1) + 1) / (N + 2):
//   surprisal(x) = sum_u -log2 P(b_u(x)),  P(1) = p_u, P(0) = 1 - p_u   (bits; naive Bayes),
// its percentile among the reference examples' own surprisals (100 * (#below + #equal / 2) / N),
// how many reference examples share x's exact pattern, and the Hamming distance to the nearest
// reference pattern. An input taking a path the data never takes scores high on all of these
// (seed 000's idea for spotting adversarial routes).
//
// Torch-free header; thread-compatible; `cancel` is polled between chunks.
#ifndef GRADZOO_CORE_GRAD_GRAPH_H_
#define GRADZOO_CORE_GRAD_GRAPH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/grad/field.h"
#include "core/grad/points.h"
#include "core/model.h"

namespace gradzoo::core {

enum class GraphBasis { kUnits = 1, kPrincipalComponents = 2, kGradientClusters = 3 };

struct GraphOptions {
  GraphBasis basis = GraphBasis::kUnits;
  // Per hidden layer: principal components (0 = all, the width) or gradient clusters kept as
  // nodes (0 = 16, at most kMaxGraphClusters).
  int num_components = 0;
  double min_abs_weight = 0.0;
  int64_t max_edges = 0;  // 0 = 20000; at most 1000000
};

struct GraphNode {
  std::string id;  // "L{layer}:{index}"
  int layer = 0;
  int index = 0;
  std::string label;  // x1.., h{layer}.{unit}, pc{layer}.{component}, g{layer}.{rank}, y1..
  double activity = 1.0;
};

struct GraphEdge {
  int from = 0;  // node indices
  int to = 0;
  double weight = 0.0;
  double signed_weight = 0.0;
};

struct PathRarity {
  double surprisal_bits = 0.0;
  double percentile = 0.0;
  int64_t same_pattern_count = 0;
  int nearest_hamming_distance = 0;
};

// The reference distribution of surprisals.
struct RarityReference {
  int64_t examples = 0;
  int64_t distinct_patterns = 0;
  double mean_surprisal_bits = 0.0;
  std::vector<double> levels;     // 0, .01, .05, .25, .5, .75, .95, .99, 1
  std::vector<double> quantiles;  // linear interpolation between order statistics
};

struct ActiveSubgraph {
  std::vector<int> nodes;  // node indices
  std::vector<int> edges;  // indices into ComputationalGraph::edges
  PathRarity rarity;
};

struct ComputationalGraph {
  std::vector<GraphNode> nodes;  // layer by layer
  std::vector<GraphEdge> edges;  // by (upstream layer, from, to)
  int64_t dropped_edges = 0;
  std::vector<ActiveSubgraph> subgraphs;  // one per query point
  RarityReference reference;
};

// Limits checked before any work.
inline constexpr int64_t kMaxGraphQueries = 10000;
inline constexpr int kMaxGraphClusters = 1000;
inline constexpr int64_t kMaxGraphEdgeSlots = 4'000'000;

// Builds the graph over `points` ([n, in], n >= 1; >= 2 with components) and the active
// sub-graphs and rarity of `queries` ([nq, in]).
absl::StatusOr<ComputationalGraph> BuildGraph(const MlpSpec& spec,
                                              const std::vector<LayerWeights>& layers,
                                              const std::vector<float>& points, int64_t n,
                                              const std::vector<float>& queries, int64_t nq,
                                              const std::string& device,
                                              const GraphOptions& options,
                                              const CancelFn& cancel);

// Graphviz DOT (one cluster per layer, edge width ~ weight, blue positive / red negative
// signed weight) and node-link JSON (networkx's node_link_graph format).
std::string GraphToDot(const ComputationalGraph& graph, const std::string& title);
std::string GraphToJson(const ComputationalGraph& graph);

struct RarityResult {
  std::vector<PathRarity> scores;  // one per query
  RarityReference reference;
};
absl::StatusOr<RarityResult> ScoreRarity(const MlpSpec& spec,
                                         const std::vector<LayerWeights>& layers,
                                         const std::vector<float>& reference, int64_t n,
                                         const std::vector<float>& queries, int64_t nq,
                                         const std::string& device, const CancelFn& cancel);

// Through the engine.
struct GraphQuery {
  ModelRef model;
  PointSpec points;
  bool has_queries = false;
  PointSpec queries;
  GraphOptions options;
};
absl::Status ValidateGraphQuery(const Engine& engine, const GraphQuery& query);
absl::StatusOr<ComputationalGraph> BuildComputationalGraph(const Engine& engine,
                                                           const GraphQuery& query,
                                                           const CancelFn& cancel);

struct RarityQuery {
  ModelRef model;
  PointSpec reference;
  PointSpec queries;
};
absl::Status ValidateRarityQuery(const Engine& engine, const RarityQuery& query);
absl::StatusOr<RarityResult> ScorePathRarity(const Engine& engine, const RarityQuery& query,
                                             const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_GRAPH_H_
