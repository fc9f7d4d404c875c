#include "server/convert_gradient.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/convert.h"

namespace gradzoo::server {

namespace {

// Prefixes a status message with the request field it concerns.
absl::Status InField(const absl::Status& s, const char* field) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(field, ": ", s.message()));
}

}  // namespace

void DoubleTensorToProto(const std::vector<int64_t>& shape, const double* data, v1::Tensor* out) {
  int64_t n = 1;
  out->clear_shape();
  for (int64_t d : shape) {
    out->add_shape(d);
    n *= d;
  }
  out->set_dtype(v1::D_TYPE_FLOAT64);
  out->set_data(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(double));
}

absl::Status CheckResponseSize(const google::protobuf::Message& message, const char* advice) {
  const size_t bytes = message.ByteSizeLong();
  if (static_cast<int64_t>(bytes) > kMaxAnalysisResponseBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the response would be ", bytes,
                                                     " bytes, over the limit of ",
                                                     kMaxAnalysisResponseBytes, ": ", advice));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// CountLinearRegions
// ---------------------------------------------------------------------------------------------

absl::StatusOr<core::RegionQuery> RegionQueryFromProto(const v1::CountLinearRegionsRequest& r,
                                                       int64_t max_points) {
  core::RegionQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.points, PointSetFromProto(r.points(), max_points));
  q.options.tolerance = r.tolerance();
  q.options.per_layer = r.per_layer();
  q.options.max_region_sizes = r.max_region_sizes();
  return q;
}

void RegionCountsToProto(const core::RegionCounts& c, v1::CountLinearRegionsResponse* out) {
  out->set_regions(c.regions);
  for (int64_t u : c.unique_gradients_per_output) out->add_unique_gradients_per_output(u);
  out->set_unique_gradient_combinations(c.unique_gradient_combinations);
  out->set_outputs_coincide(c.outputs_coincide);
  for (int64_t s : c.region_sizes) out->add_region_sizes(s);
  out->set_saturated(c.saturated);
  out->set_clustered(c.clustered);
  for (const core::LayerSplintering& l : c.layers) {
    v1::LayerSplintering* p = out->add_layers();
    p->set_layer(l.layer);
    for (int64_t u : l.unique_pre) p->add_unique_pre(u);
    for (int64_t u : l.unique_post) p->add_unique_post(u);
  }
  out->set_points(c.points);
  out->set_singleton_regions(c.singleton_regions);
  out->set_region_sizes_truncated(c.region_sizes_truncated);
  out->set_tolerance(c.tolerance);
}

// ---------------------------------------------------------------------------------------------
// ComputeRegionPartition
// ---------------------------------------------------------------------------------------------

absl::StatusOr<core::PartitionQuery> PartitionQueryFromProto(
    const v1::ComputeRegionPartitionRequest& r) {
  core::PartitionQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  if (r.slice().axes_size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice.axes must have exactly two axes (the slice's x and y), got ", r.slice().axes_size()));
  }
  const v1::GridAxis& x = r.slice().axes(0);
  const v1::GridAxis& y = r.slice().axes(1);
  q.slice.x_input = x.input_index();
  q.slice.y_input = y.input_index();
  q.slice.x_min = x.min();
  q.slice.x_max = x.max();
  q.slice.y_min = y.min();
  q.slice.y_max = y.max();
  q.slice.fixed_values.assign(r.slice().fixed_values().begin(), r.slice().fixed_values().end());
  q.options.max_regions = r.max_regions();
  return q;
}

void PartitionToProto(const core::Partition& p, v1::ComputeRegionPartitionResponse* out) {
  out->set_region_count(static_cast<int64_t>(p.regions.size()));
  for (const core::PartitionRegion& r : p.regions) {
    v1::RegionPolygon* poly = out->add_regions();
    DoubleTensorToProto({static_cast<int64_t>(r.vertices.size() / 2), 2}, r.vertices.data(),
                        poly->mutable_vertices());
    poly->set_area(r.area);
    DoubleTensorToProto({static_cast<int64_t>(r.offset.size()), 2}, r.gradient.data(),
                        poly->mutable_gradient());
    DoubleTensorToProto({static_cast<int64_t>(r.offset.size())}, r.offset.data(),
                        poly->mutable_offset());
    poly->set_activation_pattern(reinterpret_cast<const char*>(r.pattern.data()),
                                 r.pattern.size() * sizeof(uint64_t));
  }
  out->set_slice_area(p.slice_area);
  for (int64_t u : p.unique_gradients_per_output) out->add_unique_gradients_per_output(u);
  out->set_unique_gradient_combinations(p.unique_gradient_combinations);
}

// ---------------------------------------------------------------------------------------------
// ComputeLayerJacobians
// ---------------------------------------------------------------------------------------------

absl::StatusOr<core::LayerJacobianQuery> LayerJacobianQueryFromProto(
    const v1::ComputeLayerJacobiansRequest& r, int64_t max_points) {
  core::LayerJacobianQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.points, PointSetFromProto(r.points(), max_points));
  if (r.chunk_examples() < 0) return absl::InvalidArgumentError("chunk_examples must be >= 0");
  q.options.layer = r.layer();
  q.options.use_principal_components = r.use_principal_components();
  q.options.num_components = r.num_components();
  q.options.normalize = r.normalize();
  q.options.include_jacobians = !r.summary_only();
  q.options.tolerance = r.tolerance();
  if (!r.use_principal_components() && r.num_components() != 0) {
    return absl::InvalidArgumentError("num_components needs use_principal_components");
  }
  return q;
}

int64_t LayerJacobianChunk(const core::LayerJacobians& j, int64_t requested) {
  const int64_t per_example = 4 * std::max<int64_t>(1, int64_t{j.rows} * j.cols);
  const int64_t automatic = std::max<int64_t>(1, (1 << 20) / per_example);
  return requested > 0 ? std::min(requested, 3 * automatic) : automatic;
}

void LayerJacobianChunkToProto(const core::LayerJacobians& j, int64_t offset, int64_t count,
                               bool last, v1::ComputeLayerJacobiansResponse* out) {
  out->set_offset(offset);
  out->set_total_examples(j.n);
  if (!j.jacobians.empty()) {
    FloatTensorToProto({count, j.rows, j.cols},
                       j.jacobians.data() + offset * int64_t{j.rows} * j.cols,
                       out->mutable_jacobians());
  }
  if (!last) return;
  out->set_last(true);
  out->set_unique_jacobians(j.unique_jacobians);
  out->set_clustered(j.clustered);
  DoubleTensorToProto({j.rows, j.rows}, j.intra_layer_dots.data(), out->mutable_intra_layer_dots());
  if (j.has_pca) {
    DoubleTensorToProto({j.pca.components, j.pca.width}, j.pca.vectors.data(),
                        out->mutable_principal_components());
    DoubleTensorToProto({j.pca.components}, j.pca.explained_variance.data(),
                        out->mutable_explained_variance());
    DoubleTensorToProto({j.pca.width}, j.pca.mean.data(), out->mutable_activation_mean());
  }
}

// ---------------------------------------------------------------------------------------------
// BuildComputationalGraph and ScorePathRarity
// ---------------------------------------------------------------------------------------------

absl::StatusOr<core::GraphQuery> GraphQueryFromProto(const v1::BuildComputationalGraphRequest& r,
                                                     int64_t max_points) {
  core::GraphQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.points, PointSetFromProto(r.points(), max_points));
  if (r.has_query_points()) {
    absl::StatusOr<core::PointSpec> qp = PointSetFromProto(r.query_points(), max_points);
    if (!qp.ok()) return InField(qp.status(), "query_points");
    q.queries = *std::move(qp);
    q.has_queries = true;
  }
  switch (r.basis()) {
    case v1::GRAPH_BASIS_UNSPECIFIED:
    case v1::GRAPH_BASIS_UNITS:
      q.options.basis = core::GraphBasis::kUnits;
      break;
    case v1::GRAPH_BASIS_PRINCIPAL_COMPONENTS:
      q.options.basis = core::GraphBasis::kPrincipalComponents;
      break;
    case v1::GRAPH_BASIS_GRADIENT_CLUSTERS:
      q.options.basis = core::GraphBasis::kGradientClusters;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("basis ", r.basis(), " is not a GraphBasis"));
  }
  if (q.options.basis == core::GraphBasis::kUnits && r.num_components() != 0) {
    return absl::InvalidArgumentError(
        "num_components needs basis GRAPH_BASIS_PRINCIPAL_COMPONENTS or GRAPH_BASIS_GRADIENT_CLUSTERS");
  }
  q.options.num_components = r.num_components();
  q.options.min_abs_weight = r.min_abs_weight();
  q.options.max_edges = r.max_edges();
  return q;
}

namespace {
void PathRarityToProto(const core::PathRarity& r, v1::PathRarity* out) {
  out->set_surprisal_bits(r.surprisal_bits);
  out->set_percentile(r.percentile);
  out->set_same_pattern_count(r.same_pattern_count);
  out->set_nearest_hamming_distance(r.nearest_hamming_distance);
}
void ReferenceToProto(const core::RarityReference& r, v1::RarityDistribution* out) {
  out->set_examples(r.examples);
  out->set_distinct_patterns(r.distinct_patterns);
  out->set_mean_surprisal_bits(r.mean_surprisal_bits);
  for (double v : r.levels) out->add_levels(v);
  for (double v : r.quantiles) out->add_quantiles(v);
}
}  // namespace

void GraphToProto(const core::ComputationalGraph& g, const std::string& title, bool include_dot,
                  bool include_json, v1::BuildComputationalGraphResponse* out) {
  for (const core::GraphNode& n : g.nodes) {
    v1::GraphNode* p = out->add_nodes();
    p->set_id(n.id);
    p->set_layer(n.layer);
    p->set_index(n.index);
    p->set_label(n.label);
    p->set_activity(n.activity);
  }
  for (const core::GraphEdge& e : g.edges) {
    v1::GraphEdge* p = out->add_edges();
    p->set_from(g.nodes[e.from].id);
    p->set_to(g.nodes[e.to].id);
    p->set_weight(e.weight);
    p->set_signed_weight(e.signed_weight);
  }
  out->set_dropped_edges(g.dropped_edges);
  if (include_dot) out->set_dot(core::GraphToDot(g, title));
  if (include_json) out->set_json(core::GraphToJson(g));
  for (const core::ActiveSubgraph& s : g.subgraphs) {
    v1::ActiveSubgraph* p = out->add_subgraphs();
    for (int n : s.nodes) p->add_node_ids(g.nodes[n].id);
    for (int e : s.edges) p->add_edge_indices(e);
    PathRarityToProto(s.rarity, p->mutable_rarity());
  }
  if (!g.subgraphs.empty()) ReferenceToProto(g.reference, out->mutable_reference());
}

absl::StatusOr<core::RarityQuery> RarityQueryFromProto(const v1::ScorePathRarityRequest& r,
                                                       int64_t max_points) {
  core::RarityQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  absl::StatusOr<core::PointSpec> ref = PointSetFromProto(r.reference_points(), max_points);
  if (!ref.ok()) return InField(ref.status(), "reference_points");
  q.reference = *std::move(ref);
  absl::StatusOr<core::PointSpec> qp = PointSetFromProto(r.query_points(), max_points);
  if (!qp.ok()) return InField(qp.status(), "query_points");
  q.queries = *std::move(qp);
  return q;
}

void RarityToProto(const core::RarityResult& r, v1::ScorePathRarityResponse* out) {
  for (const core::PathRarity& s : r.scores) PathRarityToProto(s, out->add_scores());
  ReferenceToProto(r.reference, out->mutable_reference());
}

}  // namespace gradzoo::server
