#include "core/grad/graph.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <tuple>
#include <cmath>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/grad/bit_keys.h"
#include "core/grad/grad_internal.h"
#include "core/grad/layer_jacobians.h"
#include "core/grad/regions.h"
#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

namespace {

constexpr int64_t kDefaultMaxEdges = 20000;
constexpr int64_t kMaxEdgesLimit = 1'000'000;
constexpr double kMaxRarityWork = 2e9;  // reference x query pattern comparisons

// Components per activation layer: units, or for hidden layers min(num_components, width).
constexpr int kDefaultClusters = 16;

std::vector<int> NodeCounts(const MlpSpec& spec, const GraphOptions& o) {
  std::vector<int> k = spec.Widths();
  if (o.basis == GraphBasis::kGradientClusters) {  // at most this many: x, clusters + other, y
    const int c = (o.num_components > 0 ? o.num_components : kDefaultClusters) + 1;
    for (size_t j = 1; j + 1 < k.size(); ++j) k[j] = c;
    k.front() = k.back() = 1;
    return k;
  }
  if (o.basis == GraphBasis::kPrincipalComponents && o.num_components > 0) {
    for (size_t j = 1; j + 1 < k.size(); ++j) k[j] = std::min(k[j], o.num_components);
  }
  return k;
}

absl::Status ValidateOptions(const MlpSpec& spec, const GraphOptions& o, int64_t n, int64_t nq) {
  if (o.basis != GraphBasis::kUnits && o.basis != GraphBasis::kPrincipalComponents &&
      o.basis != GraphBasis::kGradientClusters) {
    return absl::InvalidArgumentError("basis must be units, principal components or gradient clusters");
  }
  if (o.basis == GraphBasis::kGradientClusters) {
    if (o.num_components < 0 || o.num_components > kMaxGraphClusters) {
      return absl::InvalidArgumentError(absl::StrCat("num_components (clusters per layer) must be in [0, ",
                                                     kMaxGraphClusters, "], got ", o.num_components));
    }
  } else if (o.num_components < 0 || o.num_components > MlpSpec::kMaxWidth) {
    return absl::InvalidArgumentError(absl::StrCat("num_components must be in [0, ",
                                                   MlpSpec::kMaxWidth, "], got ",
                                                   o.num_components));
  }
  if (!std::isfinite(o.min_abs_weight) || o.min_abs_weight < 0) {
    return absl::InvalidArgumentError("min_abs_weight must be finite and >= 0");
  }
  if (o.max_edges < 0 || o.max_edges > kMaxEdgesLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_edges must be in [0, ", kMaxEdgesLimit, "], got ", o.max_edges));
  }
  const int64_t min_points = o.basis == GraphBasis::kPrincipalComponents ? 2 : 1;
  if (n < min_points) {
    return absl::InvalidArgumentError(
        absl::StrCat("points: the graph needs at least ", min_points, " example(s)"));
  }
  if (nq > kMaxGraphQueries) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "query_points has ", nq, " points; at most ", kMaxGraphQueries, " per call"));
  }
  if (static_cast<double>(n) * nq > kMaxRarityWork) {
    return absl::ResourceExhaustedError(
        "points x query_points is too large for the rarity search: use fewer of either");
  }
  const std::vector<int> k = NodeCounts(spec, o);
  int64_t slots = 0;
  for (size_t j = 0; j + 1 < k.size(); ++j) slots += static_cast<int64_t>(k[j]) * k[j + 1];
  if (slots > kMaxGraphEdgeSlots) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the graph would have ", slots, " possible edges; at most ", kMaxGraphEdgeSlots,
        ": use principal components with fewer num_components"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Rarity
// ---------------------------------------------------------------------------------------------

class RarityModel {
 public:
  RarityModel(const MlpSpec& spec, const std::vector<uint64_t>& patterns, int64_t n)
      : offsets_(PatternWordOffsets(spec.hidden)),
        words_(offsets_.back()),
        distinct_(offsets_.back()) {
    // Per-bit -log2 P(0) (summed into base_) and -log2 P(1) + log2 P(0) (added per set bit).
    for (size_t l = 0; l < spec.hidden.size(); ++l) {
      for (int u = 0; u < spec.hidden[l]; ++u) {
        const int word = offsets_[l] + u / 64, bit = u % 64;
        int64_t c = 0;
        for (int64_t p = 0; p < n; ++p) c += (patterns[p * words_ + word] >> bit) & 1;
        const double p1 = (c + 1.0) / (n + 2.0);
        base_ += -std::log2(1.0 - p1);
        delta_.push_back({word, bit, -std::log2(p1) + std::log2(1.0 - p1)});
      }
    }
    for (int64_t p = 0; p < n; ++p) {
      const int64_t id = distinct_.Insert(patterns.data() + p * words_);
      if (id == static_cast<int64_t>(counts_.size())) counts_.push_back(0);
      ++counts_[id];
      scores_.push_back(Surprisal(patterns.data() + p * words_));
    }
    std::sort(scores_.begin(), scores_.end());
  }

  double Surprisal(const uint64_t* pattern) const {
    double s = base_;
    for (const Delta& d : delta_) {
      if ((pattern[d.word] >> d.bit) & 1) s += d.value;
    }
    return s;
  }

  PathRarity Score(const uint64_t* pattern) const {
    PathRarity r;
    r.surprisal_bits = Surprisal(pattern);
    const auto lo = std::lower_bound(scores_.begin(), scores_.end(), r.surprisal_bits - 1e-9);
    const auto hi = std::upper_bound(scores_.begin(), scores_.end(), r.surprisal_bits + 1e-9);
    const double below = static_cast<double>(lo - scores_.begin());
    const double equal = static_cast<double>(hi - lo);
    r.percentile = scores_.empty() ? 0.0 : 100.0 * (below + 0.5 * equal) / scores_.size();
    const int64_t id = distinct_.Find(pattern);
    r.same_pattern_count = id >= 0 ? counts_[id] : 0;
    int best = words_ * 64;
    for (int64_t i = 0; i < distinct_.size() && best > 0; ++i) {
      const uint64_t* k = distinct_.key(i);
      int d = 0;
      for (int w = 0; w < words_; ++w) d += __builtin_popcountll(k[w] ^ pattern[w]);
      best = std::min(best, d);
    }
    r.nearest_hamming_distance = distinct_.size() > 0 ? best : 0;
    return r;
  }

  RarityReference Reference() const {
    RarityReference ref;
    ref.examples = static_cast<int64_t>(scores_.size());
    ref.distinct_patterns = distinct_.size();
    ref.levels = {0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0};
    if (scores_.empty()) return ref;
    ref.mean_surprisal_bits =
        std::accumulate(scores_.begin(), scores_.end(), 0.0) / static_cast<double>(scores_.size());
    for (double q : ref.levels) {
      const double h = q * static_cast<double>(scores_.size() - 1);
      const size_t lo = static_cast<size_t>(std::floor(h));
      const size_t hi = std::min(lo + 1, scores_.size() - 1);
      ref.quantiles.push_back(scores_[lo] + (h - lo) * (scores_[hi] - scores_[lo]));
    }
    return ref;
  }

  int words() const { return words_; }

 private:
  struct Delta {
    int word;
    int bit;
    double value;
  };
  std::vector<int> offsets_;
  int words_;
  double base_ = 0.0;
  std::vector<Delta> delta_;
  BitKeySet distinct_;
  std::vector<int64_t> counts_;
  std::vector<double> scores_;
};

// Prefixes a status message with the request field it concerns.
absl::Status InField(const absl::Status& s, const char* field) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(field, ": ", s.message()));
}

std::string NodeLabel(int layer, int index, int last_layer, bool components) {
  if (layer == 0) return absl::StrCat("x", index + 1);
  if (layer == last_layer) return absl::StrCat("y", index + 1);
  return absl::StrCat(components ? "pc" : "h", layer, ".", index);
}

// Keeps the options.max_edges (0 = the default) strongest candidate edges (ties by (from, to)),
// sorted by (from, to); returns how many were dropped. C has from, to and weight.
template <typename C>
int64_t KeepStrongest(const GraphOptions& options, std::vector<C>* cand) {
  const int64_t max_edges = options.max_edges > 0 ? options.max_edges : kDefaultMaxEdges;
  int64_t dropped = 0;
  if (static_cast<int64_t>(cand->size()) > max_edges) {
    std::nth_element(cand->begin(), cand->begin() + max_edges, cand->end(), [](const C& a, const C& b) {
      if (a.weight != b.weight) return a.weight > b.weight;
      return std::tie(a.from, a.to) < std::tie(b.from, b.to);
    });
    dropped = static_cast<int64_t>(cand->size()) - max_edges;
    cand->resize(max_edges);
  }
  std::sort(cand->begin(), cand->end(),
            [](const C& a, const C& b) { return std::tie(a.from, a.to) < std::tie(b.from, b.to); });
  return dropped;
}

// The gradient-cluster graph (header comment): nodes and edges count examples through each
// layer's most frequent activity patterns. `ref_bits` / `query_bits`: ActivationPatterns of the
// points and the queries.
ComputationalGraph ClusterGraph(const MlpSpec& spec, const std::vector<uint64_t>& ref_bits,
                                int64_t n, const std::vector<uint64_t>& query_bits, int64_t nq,
                                const GraphOptions& options) {
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  const int words = offsets.back();
  const int hidden = static_cast<int>(spec.hidden.size());
  const int keep = options.num_components > 0 ? options.num_components : kDefaultClusters;
  ComputationalGraph g;
  std::vector<int> first(hidden + 3, 0);  // first node index of layer j (0 .. H+1)
  // cluster[j][i]: node rank of example i in hidden layer j (1-based j), `keep` = other.
  std::vector<std::vector<int>> cluster(hidden + 1), qcluster(hidden + 1);
  std::vector<int> nodes_in(hidden + 2, 1);
  g.nodes.push_back({"L0:0", 0, 0, "x", 1.0});
  first[1] = 1;
  for (int j = 1; j <= hidden; ++j) {
    const int lw = offsets[j] - offsets[j - 1];
    BitKeySet keys(lw);
    std::vector<int64_t> id(n), count;
    for (int64_t i = 0; i < n; ++i) {
      id[i] = keys.Insert(ref_bits.data() + i * words + offsets[j - 1]);
      if (id[i] == static_cast<int64_t>(count.size())) count.push_back(0);
      ++count[id[i]];
    }
    // Rank clusters by size, ties by pattern (words compared from the last, i.e. high units).
    std::vector<int64_t> order(count.size());
    for (size_t c = 0; c < order.size(); ++c) order[c] = static_cast<int64_t>(c);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      if (count[a] != count[b]) return count[a] > count[b];
      return std::lexicographical_compare(keys.key(a), keys.key(a) + lw, keys.key(b), keys.key(b) + lw);
    });
    const int kept = static_cast<int>(std::min<int64_t>(keep, static_cast<int64_t>(order.size())));
    std::vector<int> rank(count.size(), kept);  // kept = "other"
    for (int r = 0; r < kept; ++r) rank[order[r]] = r;
    const bool other = static_cast<int64_t>(order.size()) > kept;
    std::vector<int64_t> size(kept + 1, 0);
    cluster[j].resize(n);
    for (int64_t i = 0; i < n; ++i) ++size[cluster[j][i] = rank[id[i]]];
    nodes_in[j] = kept + (other ? 1 : 0);
    for (int r = 0; r < nodes_in[j]; ++r) {
      g.nodes.push_back({absl::StrCat("L", j, ":", r), j, r,
                         r < kept ? absl::StrCat("g", j, ".", r) : absl::StrCat("g", j, ".other"),
                         static_cast<double>(size[r]) / static_cast<double>(n)});
    }
    first[j + 1] = first[j] + nodes_in[j];
    qcluster[j].resize(nq);
    for (int64_t q = 0; q < nq; ++q) {
      const int64_t f = keys.Find(query_bits.data() + q * words + offsets[j - 1]);
      qcluster[j][q] = f >= 0 ? rank[f] : kept;
      if (qcluster[j][q] == kept && !other) qcluster[j][q] = -1;  // a pattern not in the data
    }
  }
  g.nodes.push_back({absl::StrCat("L", hidden + 1, ":0"), hidden + 1, 0, "y", 1.0});
  // Edges: joint counts of adjacent layers (layer 0 and H+1 have one node, cluster 0).
  auto cluster_of = [&](int j, int64_t i) { return j == 0 || j == hidden + 1 ? 0 : cluster[j][i]; };
  struct Candidate {
    int from, to;
    double weight;
  };
  std::vector<Candidate> cand;
  for (int j = 0; j <= hidden; ++j) {
    std::map<std::pair<int, int>, int64_t> joint;
    for (int64_t i = 0; i < n; ++i) ++joint[{cluster_of(j, i), cluster_of(j + 1, i)}];
    for (const auto& [cd, c] : joint) {
      const double w = static_cast<double>(c) / static_cast<double>(n);
      if (w < options.min_abs_weight) continue;
      cand.push_back({first[j] + cd.first, first[j + 1] + cd.second, w});
    }
  }
  g.dropped_edges = KeepStrongest(options, &cand);
  std::map<std::pair<int, int>, int> edge_index;
  for (const Candidate& c : cand) {
    edge_index[{c.from, c.to}] = static_cast<int>(g.edges.size());
    g.edges.push_back({c.from, c.to, c.weight, c.weight});
  }
  // A query's path: x, its cluster per layer (none where its pattern is unseen and no "other"
  // node exists), y; the kept edges between consecutive path nodes.
  for (int64_t q = 0; q < nq; ++q) {
    ActiveSubgraph sub;
    std::vector<int> path = {0};
    for (int j = 1; j <= hidden; ++j) path.push_back(qcluster[j][q] < 0 ? -1 : first[j] + qcluster[j][q]);
    path.push_back(first[hidden + 1]);
    for (int v : path) {
      if (v >= 0) sub.nodes.push_back(v);
    }
    for (size_t t = 0; t + 1 < path.size(); ++t) {
      auto e = edge_index.find({path[t], path[t + 1]});
      if (path[t] >= 0 && path[t + 1] >= 0 && e != edge_index.end()) sub.edges.push_back(e->second);
    }
    g.subgraphs.push_back(std::move(sub));
  }
  return g;
}

}  // namespace

absl::StatusOr<RarityResult> ScoreRarity(const MlpSpec& spec,
                                         const std::vector<LayerWeights>& layers,
                                         const std::vector<float>& reference, int64_t n,
                                         const std::vector<float>& queries, int64_t nq,
                                         const std::string& device, const CancelFn& cancel) {
  if (n < 1) return absl::InvalidArgumentError("reference_points: give at least one example");
  if (static_cast<double>(n) * nq > kMaxRarityWork) {
    return absl::ResourceExhaustedError(
        "reference_points x query_points is too large: use fewer of either");
  }
  ASSIGN_OR_RETURN(std::vector<uint64_t> ref_bits,
                   ActivationPatterns(spec, layers, reference, n, device, cancel));
  ASSIGN_OR_RETURN(std::vector<uint64_t> query_bits,
                   ActivationPatterns(spec, layers, queries, nq, device, cancel));
  const RarityModel model(spec, ref_bits, n);
  RarityResult r;
  r.reference = model.Reference();
  for (int64_t q = 0; q < nq; ++q) {
    if ((q & 63) == 0 && cancel && cancel()) return absl::CancelledError("rarity cancelled");
    r.scores.push_back(model.Score(query_bits.data() + q * model.words()));
  }
  return r;
}

absl::StatusOr<ComputationalGraph> BuildGraph(const MlpSpec& spec,
                                              const std::vector<LayerWeights>& layers,
                                              const std::vector<float>& points, int64_t n,
                                              const std::vector<float>& queries, int64_t nq,
                                              const std::string& device,
                                              const GraphOptions& options,
                                              const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(spec, layers));
  RETURN_IF_ERROR(ValidateOptions(spec, options, n, nq));
  if (points.size() != static_cast<size_t>(n) * spec.input_dim ||
      queries.size() != static_cast<size_t>(nq) * spec.input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
  }
  if (options.basis == GraphBasis::kGradientClusters) {
    ASSIGN_OR_RETURN(std::vector<uint64_t> ref_bits,
                     ActivationPatterns(spec, layers, points, n, device, cancel));
    ASSIGN_OR_RETURN(std::vector<uint64_t> query_bits,
                     ActivationPatterns(spec, layers, queries, nq, device, cancel));
    ComputationalGraph g = ClusterGraph(spec, ref_bits, n, query_bits, nq, options);
    const RarityModel model(spec, ref_bits, n);
    g.reference = model.Reference();
    for (int64_t q = 0; q < nq; ++q) g.subgraphs[q].rarity = model.Score(query_bits.data() + q * model.words());
    return g;
  }
  const bool pcs = options.basis == GraphBasis::kPrincipalComponents;
  const std::vector<int> widths = spec.Widths();
  const std::vector<int> k = NodeCounts(spec, options);
  const int last = static_cast<int>(widths.size()) - 1;  // H + 1
  const int hidden = last - 1;

  std::vector<LayerPca> pca(widths.size());
  if (pcs) {
    for (int j = 1; j <= hidden; ++j) {
      ASSIGN_OR_RETURN(pca[j], ComputeLayerActivationPca(spec, layers, points, n, device, j, k[j], cancel));
    }
  }

  ComputationalGraph g;
  std::vector<int> first_node(widths.size() + 1, 0);
  for (int j = 0; j <= last; ++j) {
    first_node[j + 1] = first_node[j] + k[j];
    for (int c = 0; c < k[j]; ++c) {
      GraphNode node;
      node.id = absl::StrCat("L", j, ":", c);
      node.layer = j;
      node.index = c;
      node.label = NodeLabel(j, c, last, pcs);
      if (pcs && j >= 1 && j <= hidden) {
        node.activity = pca[j].total_variance > 0
                            ? pca[j].explained_variance[c] / pca[j].total_variance
                            : 0.0;
      }
      g.nodes.push_back(std::move(node));
    }
  }

  absl::Status s = GuardTorch("computational graph", [&]() -> absl::Status {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    const StackedMlp mlp = Stack(spec, {&layers}, dev);
    std::vector<at::Tensor> basis(widths.size());  // [k_j, w_j] for PCA layers
    for (int j = 1; pcs && j <= hidden; ++j) {
      basis[j] = at::from_blob(pca[j].vectors.data(), {k[j], widths[j]}, at::kDouble).to(dev, at::kFloat);
    }
    // The normalised edge block of layer l at every point of a chunk: [m, k_{l+1}, k_l].
    auto block = [&](const Capture& cap, int l) {
      at::Tensor e = grad_internal::AdjacentJacobian(mlp, cap, l);
      if (basis[l + 1].defined()) e = at::matmul(basis[l + 1], e);
      if (basis[l].defined()) e = at::matmul(e, basis[l].t());
      at::Tensor norm = e.norm(2, {2}, /*keepdim=*/true);
      return e / at::where(norm > 0, norm, at::ones_like(norm));
    };
    int64_t slots = 0;
    for (int l = 0; l < last; ++l) slots += static_cast<int64_t>(k[l]) * k[l + 1];
    int64_t width_sum = 0;
    for (int w : widths) width_sum += 2 * w;
    const int64_t chunk = grad_internal::ChunkFor(width_sum + 3 * slots);

    std::vector<at::Tensor> abs_sum(last), signed_sum(last);
    for (int l = 0; l < last; ++l) {
      abs_sum[l] = at::zeros({k[l + 1], k[l]}, at::kDouble);
      signed_sum[l] = at::zeros({k[l + 1], k[l]}, at::kDouble);
    }
    std::vector<at::Tensor> active_count(widths.size());
    at::Tensor all = ViewFloats(points, {n, spec.input_dim});
    for (int64_t start = 0; start < n; start += chunk) {
      if (cancel && cancel()) return absl::CancelledError("computational graph cancelled");
      const int64_t m = std::min(chunk, n - start);
      at::Tensor x = all.narrow(0, start, m).to(dev).unsqueeze(0);
      Capture cap;
      Forward(mlp, x, &cap);
      for (int l = 0; l < last; ++l) {
        at::Tensor e = block(cap, l).to(at::kDouble);
        abs_sum[l] += e.abs().sum(0).to(at::kCPU);
        signed_sum[l] += e.sum(0).to(at::kCPU);
      }
      for (int j = 1; j <= hidden; ++j) {
        const at::Tensor& z = cap.pre[j - 1][0];
        at::Tensor on = spec.activation == Activation::kTanh ? (z.abs() < 0.88137358702) : (z > 0);
        at::Tensor c = on.sum(0).to(at::kCPU, at::kDouble);
        active_count[j] = active_count[j].defined() ? active_count[j] + c : c;
      }
    }
    for (int j = 1; !pcs && j <= hidden; ++j) {
      for (int c = 0; c < k[j]; ++c) {
        g.nodes[first_node[j] + c].activity = active_count[j][c].item<double>() / static_cast<double>(n);
      }
    }

    // Edges: nonzero, >= min_abs_weight, the max_edges strongest.
    struct Candidate {
      int from, to, layer, v, u;
      double weight, signed_weight;
    };
    std::vector<Candidate> cand;
    for (int l = 0; l < last; ++l) {
      at::Tensor a = (abs_sum[l] / static_cast<double>(n)).contiguous();
      at::Tensor sg = (signed_sum[l] / static_cast<double>(n)).contiguous();
      const double* ap = a.data_ptr<double>();
      const double* sp = sg.data_ptr<double>();
      for (int v = 0; v < k[l + 1]; ++v) {
        for (int u = 0; u < k[l]; ++u) {
          const double w = ap[v * k[l] + u];
          if (w <= 0 || w < options.min_abs_weight) continue;
          cand.push_back({first_node[l] + u, first_node[l + 1] + v, l, v, u, w, sp[v * k[l] + u]});
        }
      }
    }
    g.dropped_edges = KeepStrongest(options, &cand);
    for (const Candidate& c : cand) g.edges.push_back({c.from, c.to, c.weight, c.signed_weight});

    // Active sub-graphs of the queries.
    if (nq == 0) return absl::OkStatus();
    at::Tensor qall = ViewFloats(queries, {nq, spec.input_dim});
    const int64_t qchunk = std::min<int64_t>(chunk, 1024);
    for (int64_t start = 0; start < nq; start += qchunk) {
      if (cancel && cancel()) return absl::CancelledError("computational graph cancelled");
      const int64_t m = std::min(qchunk, nq - start);
      at::Tensor x = qall.narrow(0, start, m).to(dev).unsqueeze(0);
      Capture cap;
      Forward(mlp, x, &cap);
      std::vector<at::Tensor> blocks(last), on(widths.size());
      for (int l = 0; l < last; ++l) blocks[l] = block(cap, l).to(at::kCPU).contiguous();
      for (int j = 1; j <= hidden; ++j) {
        const at::Tensor& z = cap.pre[j - 1][0];
        on[j] = (spec.activation == Activation::kTanh ? (z.abs() < 0.88137358702) : (z > 0))
                    .to(at::kCPU)
                    .contiguous();
      }
      for (int64_t q = 0; q < m; ++q) {
        ActiveSubgraph sub;
        std::vector<bool> node_on(g.nodes.size(), true);
        for (int j = 1; !pcs && j <= hidden; ++j) {
          const bool* b = on[j].data_ptr<bool>() + q * widths[j];
          for (int c = 0; c < k[j]; ++c) node_on[first_node[j] + c] = b[c];
        }
        for (size_t i = 0; i < g.nodes.size(); ++i) {
          if (node_on[i]) sub.nodes.push_back(static_cast<int>(i));
        }
        for (size_t e = 0; e < cand.size(); ++e) {
          const Candidate& c = cand[e];
          if (!node_on[c.from]) continue;
          const float* bp = blocks[c.layer].data_ptr<float>() + q * k[c.layer + 1] * k[c.layer];
          const double w = std::abs(static_cast<double>(bp[c.v * k[c.layer] + c.u]));
          if (w > 0 && w >= options.min_abs_weight) sub.edges.push_back(static_cast<int>(e));
        }
        g.subgraphs.push_back(std::move(sub));
      }
    }
    return absl::OkStatus();
  });
  RETURN_IF_ERROR(s);

  // Rarity of the queries against the dataset.
  ASSIGN_OR_RETURN(RarityResult rarity, ScoreRarity(spec, layers, points, n, queries, nq, device, cancel));
  g.reference = rarity.reference;
  for (int64_t q = 0; q < nq; ++q) g.subgraphs[q].rarity = rarity.scores[q];
  return g;
}

namespace {

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.9g", v);
}

// Quotes a string for DOT or JSON (ids and labels are ASCII letters, digits, '.', ':').
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

std::string Grey(double activity) {
  const int v = static_cast<int>(std::lround(255 - 155 * std::clamp(activity, 0.0, 1.0)));
  return absl::StrFormat("#%02x%02x%02x", v, v, 255);
}

}  // namespace

std::string GraphToDot(const ComputationalGraph& g, const std::string& title) {
  // The title with a one-line key on top; small arrowheads (direction is always left to
  // right) so that dozens of edges entering one node stay readable; layers named and labelled
  // below their nodes, where no edge crosses the label.
  std::string out = absl::StrCat(
      "digraph ", Quote(title), " {\n",
      "  rankdir=LR;\n  splines=line;\n  nodesep=0.05;\n  ranksep=1.6;\n",
      "  labelloc=t;\n  fontsize=14;\n",
      // Quote() would escape the line break: append the key inside the closing quote.
      "  label=", Quote(title).substr(0, Quote(title).size() - 1),
      "\\nedge width: mean |normalised gradient|; blue > 0, red < 0; node shade: activity\";\n",
      "  node [shape=circle, style=filled, fontsize=9, width=0.45, fixedsize=true];\n",
      "  edge [arrowsize=0.35];\n");
  const int last_layer = g.nodes.empty() ? 0 : g.nodes.back().layer;
  int layer = -1;
  for (const GraphNode& n : g.nodes) {
    if (n.layer != layer) {
      if (layer >= 0) out += "  }\n";
      layer = n.layer;
      const std::string name = layer == 0            ? std::string("input")
                               : layer == last_layer ? std::string("output")
                                                     : absl::StrCat("hidden ", layer);
      absl::StrAppend(&out, "  subgraph cluster_L", layer, " {\n    label=\"", name,
                      "\";\n    labelloc=b;\n    color=lightgrey;\n");
    }
    absl::StrAppend(&out, "    ", Quote(n.id), " [label=", Quote(n.label), ", fillcolor=\"",
                    Grey(n.activity), "\", tooltip=\"activity ", Num(n.activity), "\"];\n");
  }
  if (layer >= 0) out += "  }\n";
  double max_w = 0;
  for (const GraphEdge& e : g.edges) max_w = std::max(max_w, e.weight);
  for (const GraphEdge& e : g.edges) {
    const double width = 0.2 + 3.8 * (max_w > 0 ? e.weight / max_w : 0.0);
    absl::StrAppend(&out, "  ", Quote(g.nodes[e.from].id), " -> ", Quote(g.nodes[e.to].id),
                    " [penwidth=", absl::StrFormat("%.3f", width), ", color=\"",
                    e.signed_weight >= 0 ? "#1f77b4" : "#d62728", "\", weight=",
                    // Fixed notation: graphviz's parser rejects exponents like 5.3e-05.
                    absl::StrFormat("%.6f", e.weight), "];\n");
  }
  out += "}\n";
  return out;
}

std::string GraphToJson(const ComputationalGraph& g) {
  std::string out = "{\"directed\": true, \"multigraph\": false, \"graph\": {\"dropped_edges\": ";
  absl::StrAppend(&out, g.dropped_edges, "}, \"nodes\": [");
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const GraphNode& n = g.nodes[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"id\": ", Quote(n.id), ", \"layer\": ", n.layer,
                    ", \"index\": ", n.index, ", \"label\": ", Quote(n.label),
                    ", \"activity\": ", Num(n.activity), "}");
  }
  out += "], \"links\": [";
  for (size_t i = 0; i < g.edges.size(); ++i) {
    const GraphEdge& e = g.edges[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"source\": ", Quote(g.nodes[e.from].id),
                    ", \"target\": ", Quote(g.nodes[e.to].id), ", \"weight\": ", Num(e.weight),
                    ", \"signed_weight\": ", Num(e.signed_weight), "}");
  }
  out += "]}\n";
  return out;
}

absl::Status ValidateGraphQuery(const Engine& engine, const GraphQuery& query) {
  ASSIGN_OR_RETURN(grad_internal::ResolvedModel r,
                   grad_internal::ResolveModel(engine, query.model, query.points));
  int64_t nq = 0;
  if (query.has_queries) {
    absl::StatusOr<int64_t> count = CountPoints(query.queries, r.model->spec.input_dim,
                                                engine.options().max_points_per_query);
    if (!count.ok()) return InField(count.status(), "query_points");
    nq = *count;
  }
  return ValidateOptions(r.model->spec, query.options, r.n, nq);
}

absl::StatusOr<ComputationalGraph> BuildComputationalGraph(const Engine& engine,
                                                           const GraphQuery& query,
                                                           const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateGraphQuery(engine, query));
  ASSIGN_OR_RETURN(auto found, engine.GetModel(query.model));
  const ModelRecord& m = *found.second;
  const int64_t max_points = engine.options().max_points_per_query;
  ASSIGN_OR_RETURN(std::vector<float> points, MakePoints(query.points, m.spec.input_dim, max_points));
  std::vector<float> queries;
  if (query.has_queries) {
    ASSIGN_OR_RETURN(queries, MakePoints(query.queries, m.spec.input_dim, max_points));
  }
  const int64_t n = static_cast<int64_t>(points.size()) / m.spec.input_dim;
  const int64_t nq = static_cast<int64_t>(queries.size()) / m.spec.input_dim;
  return BuildGraph(m.spec, m.layers, points, n, queries, nq, engine.device(), query.options, cancel);
}

absl::Status ValidateRarityQuery(const Engine& engine, const RarityQuery& query) {
  ASSIGN_OR_RETURN(auto found, engine.GetModel(query.model));
  const int in = found.second->spec.input_dim;
  const int64_t max_points = engine.options().max_points_per_query;
  absl::StatusOr<int64_t> n = CountPoints(query.reference, in, max_points);
  if (!n.ok()) return InField(n.status(), "reference_points");
  absl::StatusOr<int64_t> nq = CountPoints(query.queries, in, max_points);
  if (!nq.ok()) return InField(nq.status(), "query_points");
  if (*n < 1) return absl::InvalidArgumentError("reference_points: give at least one example");
  if (static_cast<double>(*n) * *nq > kMaxRarityWork) {
    return absl::ResourceExhaustedError(
        "reference_points x query_points is too large: use fewer of either");
  }
  return absl::OkStatus();
}

absl::StatusOr<RarityResult> ScorePathRarity(const Engine& engine, const RarityQuery& query,
                                             const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateRarityQuery(engine, query));
  ASSIGN_OR_RETURN(auto found, engine.GetModel(query.model));
  const ModelRecord& m = *found.second;
  const int64_t max_points = engine.options().max_points_per_query;
  ASSIGN_OR_RETURN(std::vector<float> reference, MakePoints(query.reference, m.spec.input_dim, max_points));
  ASSIGN_OR_RETURN(std::vector<float> queries, MakePoints(query.queries, m.spec.input_dim, max_points));
  return ScoreRarity(m.spec, m.layers, reference,
                     static_cast<int64_t>(reference.size()) / m.spec.input_dim, queries,
                     static_cast<int64_t>(queries.size()) / m.spec.input_dim, engine.device(),
                     cancel);
}

}  // namespace gradzoo::core
