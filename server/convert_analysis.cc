#include "server/convert_analysis.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/convert_gradient.h"

namespace gradzoo::server {

namespace {

void DegeneracyToProto(const core::Degeneracy& d, v1::Degeneracy* out) {
  out->set_degenerate(d.degenerate);
  out->set_zero_variance(d.zero_variance);
  out->set_dead_layer(d.dead_layer);
  out->set_points_excluded(d.points_excluded);
  out->set_detail(d.detail);
}

bool HasPoints(const v1::PointSet& p) { return p.points_case() != v1::PointSet::POINTS_NOT_SET; }

// The first k rows of a row-major [rows, width] matrix.
void RowsToProto(const std::vector<double>& m, int width, int k, v1::Tensor* out) {
  DoubleTensorToProto({k, width}, m.data(), out);
}

int Truncate(int requested, int available) {
  return requested > 0 ? std::min(requested, available) : available;
}

}  // namespace

absl::StatusOr<core::LayerRef> LayerRefFromProto(const v1::LayerRef& l, const char* field) {
  core::LayerRef r;
  r.index = l.index();
  if (r.index < 0) return absl::InvalidArgumentError(absl::StrCat(field, ".index must be >= 0"));
  switch (l.side()) {
    case v1::LAYER_SIDE_UNSPECIFIED:
    case v1::LAYER_SIDE_POST:
      r.side = core::LayerSide::kPost;
      break;
    case v1::LAYER_SIDE_PRE:
      r.side = core::LayerSide::kPre;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ".side is not a LayerSide value"));
  }
  return r;
}

void LayerRefToProto(const core::LayerRef& l, v1::LayerRef* out) {
  out->set_index(l.index);
  out->set_side(l.side == core::LayerSide::kPre ? v1::LAYER_SIDE_PRE : v1::LAYER_SIDE_POST);
}

absl::StatusOr<core::OrthogonalityMethod> OrthogonalityMethodFromProto(v1::OrthogonalityMethod m) {
  switch (m) {
    case v1::ORTHOGONALITY_METHOD_UNSPECIFIED:
    case v1::ORTHOGONALITY_METHOD_FUNCTIONAL:
      return core::OrthogonalityMethod::kFunctional;
    case v1::ORTHOGONALITY_METHOD_PCA:
      return core::OrthogonalityMethod::kPca;
    case v1::ORTHOGONALITY_METHOD_COS:
      return core::OrthogonalityMethod::kCos;
    case v1::ORTHOGONALITY_METHOD_GRAM:
      return core::OrthogonalityMethod::kGram;
    default:
      return absl::InvalidArgumentError("method is not an OrthogonalityMethod value");
  }
}

v1::OrthogonalityMethod OrthogonalityMethodToProto(core::OrthogonalityMethod m) {
  switch (m) {
    case core::OrthogonalityMethod::kPca:
      return v1::ORTHOGONALITY_METHOD_PCA;
    case core::OrthogonalityMethod::kCos:
      return v1::ORTHOGONALITY_METHOD_COS;
    case core::OrthogonalityMethod::kGram:
      return v1::ORTHOGONALITY_METHOD_GRAM;
    case core::OrthogonalityMethod::kFunctional:
      return v1::ORTHOGONALITY_METHOD_FUNCTIONAL;
  }
  return v1::ORTHOGONALITY_METHOD_UNSPECIFIED;
}

absl::StatusOr<core::PointSource> PointSourceFromProto(const v1::PointSet& p, int64_t max_points) {
  core::PointSource s;
  if (!HasPoints(p)) return s;
  s.validation = false;
  ASSIGN_OR_RETURN(s.spec, PointSetFromProto(p, max_points));
  return s;
}

namespace {
absl::StatusOr<core::OrthogonalityOptions> OptionsFromProto(v1::OrthogonalityMethod method,
                                                            int32_t a, int32_t b,
                                                            double threshold, bool center) {
  core::OrthogonalityOptions o;
  ASSIGN_OR_RETURN(o.method, OrthogonalityMethodFromProto(method));
  if (a == 0 && b == 0) {
    o.output_a = 0;
    o.output_b = 1;
  } else {
    o.output_a = a;
    o.output_b = b;
  }
  if (threshold != 0.0) o.variance_threshold = threshold;
  if (!std::isfinite(o.variance_threshold)) {
    return absl::InvalidArgumentError("variance_threshold must be finite");
  }
  o.center = center;
  return o;
}
}  // namespace

absl::StatusOr<core::ModelOrthogonalityQuery> ModelOrthogonalityQueryFromProto(
    const v1::ScoreOrthogonalityRequest& r, int64_t max_points) {
  core::ModelOrthogonalityQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.layer, LayerRefFromProto(r.layer(), "layer"));
  ASSIGN_OR_RETURN(q.options, OptionsFromProto(r.method(), r.output_a(), r.output_b(),
                                               r.variance_threshold(), r.center()));
  ASSIGN_OR_RETURN(q.points, PointSourceFromProto(r.points(), max_points));
  return q;
}

void OrthogonalityScoreToProto(const core::OrthogonalityScore& s, core::OrthogonalityMethod m,
                               v1::ScoreOrthogonalityResponse* out) {
  out->set_score(s.score);
  for (double a : s.principal_angles) out->add_principal_angles(a);
  if (m == core::OrthogonalityMethod::kPca) {
    out->add_components(s.components_a);
    out->add_components(s.components_b);
  }
  DegeneracyToProto(s.degeneracy, out->mutable_degeneracy());
  out->set_points_used(s.points_used);
  out->set_method(OrthogonalityMethodToProto(m));
}

absl::StatusOr<core::ZooOrthogonalityQuery> ZooOrthogonalityQueryFromProto(
    const v1::ScoreZooOrthogonalityRequest& r, int64_t max_points) {
  core::ZooOrthogonalityQuery q;
  ASSIGN_OR_RETURN(q.zoo_id, ParseZooName(r.zoo(), "zoo"));
  if (r.layers_size() > 64) return absl::InvalidArgumentError("layers: at most 64");
  for (const v1::LayerRef& l : r.layers()) {
    ASSIGN_OR_RETURN(core::LayerRef ref, LayerRefFromProto(l, "layers"));
    q.layers.push_back(ref);
  }
  ASSIGN_OR_RETURN(q.options, OptionsFromProto(r.method(), r.output_a(), r.output_b(),
                                               r.variance_threshold(), r.center()));
  ASSIGN_OR_RETURN(q.points, PointSourceFromProto(r.points(), max_points));
  return q;
}

void ZooOrthogonalityToProto(const core::ZooOrthogonalityResult& r, const std::string& zoo_id,
                             core::OrthogonalityMethod m, v1::ScoreZooOrthogonalityResponse* out) {
  for (const core::SettingDistribution& d : r.settings) {
    v1::SettingScores* s = out->add_settings();
    s->set_lambda(d.lambda);
    LayerRefToProto(d.layer, s->mutable_layer());
    for (double v : d.scores) s->add_scores(v);
    s->set_mean(d.mean);
    s->set_stddev(d.stddev);
    s->set_task(d.task);
    s->set_variant(d.variant);
    s->set_degenerate_count(d.degenerate_count);
    for (const core::ModelScoreEntry& e : d.models) {
      v1::ModelScore* ms = s->add_models();
      ms->set_model(ModelName(zoo_id, e.model_id));
      ms->set_seed(e.seed);
      ms->set_score(e.score.score);
      DegeneracyToProto(e.score.degeneracy, ms->mutable_degeneracy());
    }
  }
  for (double v : r.spearman_with_lambda) out->add_spearman_with_lambda(v);
  for (const core::LayerRef& l : r.layers) LayerRefToProto(l, out->add_layers());
  for (double v : r.spearman_of_means) out->add_spearman_of_means(v);
  out->set_models_scored(r.models_scored);
  out->set_method(OrthogonalityMethodToProto(m));
}

absl::StatusOr<core::LayerPcaQuery> LayerPcaQueryFromProto(const v1::ComputeLayerPcaRequest& r,
                                                           int64_t max_points) {
  core::LayerPcaQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.layer, LayerRefFromProto(r.layer(), "layer"));
  if (r.components() < 0) return absl::InvalidArgumentError("components must be >= 0");
  q.components = r.components();
  if (r.has_second_layer()) {
    q.has_second = true;
    ASSIGN_OR_RETURN(q.second, LayerRefFromProto(r.second_layer(), "second_layer"));
  }
  ASSIGN_OR_RETURN(q.points, PointSourceFromProto(r.points(), max_points));
  return q;
}

void LayerPcaToProto(const core::LayerPcaResult& r, int components,
                     v1::ComputeLayerPcaResponse* out) {
  const int d = r.pca.d;
  const int k = Truncate(components, d);
  for (int i = 0; i < k; ++i) {
    out->add_explained_variance_ratio(r.pca.explained_variance_ratio[i]);
    out->add_explained_variance(r.pca.explained_variance[i]);
  }
  RowsToProto(r.pca.components, d, k, out->mutable_components());
  DoubleTensorToProto({d}, r.pca.mean.data(), out->mutable_mean());
  out->set_points_used(r.points_used);
  if (r.has_second) {
    const int d2 = r.second.d;
    const int k2 = Truncate(components, d2);
    v1::LayerPca* s = out->mutable_second();
    LayerRefToProto(r.second_layer, s->mutable_layer());
    for (int i = 0; i < k2; ++i) {
      s->add_explained_variance_ratio(r.second.explained_variance_ratio[i]);
      s->add_explained_variance(r.second.explained_variance[i]);
    }
    RowsToProto(r.second.components, d2, k2, s->mutable_components());
    DoubleTensorToProto({d2}, r.second.mean.data(), s->mutable_mean());
    std::vector<double> cov, cor;
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < k2; ++j) {
        cov.push_back(r.pc_covariance[i * d2 + j]);
        cor.push_back(r.pc_correlation[i * d2 + j]);
      }
    }
    DoubleTensorToProto({k, k2}, cov.data(), out->mutable_pc_covariance());
    DoubleTensorToProto({k, k2}, cor.data(), out->mutable_pc_correlation());
  }
}

absl::StatusOr<core::PlsrQuery> PlsrQueryFromProto(const v1::ComputePlsrRequest& r,
                                                   int64_t max_points) {
  core::PlsrQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.layer, LayerRefFromProto(r.layer(), "layer"));
  if (r.has_target_layer()) {
    q.has_target = true;
    ASSIGN_OR_RETURN(q.target, LayerRefFromProto(r.target_layer(), "target_layer"));
  }
  if (r.components() < 0) return absl::InvalidArgumentError("components must be >= 0");
  if (r.target_components() < 0) return absl::InvalidArgumentError("target_components must be >= 0");
  q.options.components = r.components() == 0 ? 2 : r.components();
  q.options.scale = r.scale();
  q.target_components = r.target_components();
  ASSIGN_OR_RETURN(q.points, PointSourceFromProto(r.points(), max_points));
  return q;
}

void PlsrToProto(const core::LayerPlsrResult& r, v1::ComputePlsrResponse* out) {
  const core::PlsrResult& p = r.plsr;
  const int c = p.components;
  DoubleTensorToProto({p.p, c}, p.x_weights.data(), out->mutable_x_weights());
  DoubleTensorToProto({p.p, c}, p.x_loadings.data(), out->mutable_x_loadings());
  DoubleTensorToProto({p.p, p.q}, p.coefficients.data(), out->mutable_coefficients());
  for (double v : p.explained_variance) out->add_explained_variance(v);
  DoubleTensorToProto({c, r.source_pca.d}, r.pc_overlap.data(), out->mutable_pc_overlap());
  DoubleTensorToProto({p.q, c}, p.y_loadings.data(), out->mutable_y_loadings());
  DoubleTensorToProto({p.q, c}, p.y_weights.data(), out->mutable_y_weights());
  DoubleTensorToProto({p.p, c}, p.x_rotations.data(), out->mutable_x_rotations());
  RowsToProto(r.target_pca.components, r.target_pca.d, r.targets, out->mutable_target_pcs());
  for (int i = 0; i < r.targets; ++i) {
    out->add_target_explained_variance_ratio(r.target_pca.explained_variance_ratio[i]);
  }
  out->set_points_used(r.points_used);
  for (int it : p.iterations) out->add_iterations(it);
}

absl::StatusOr<core::CkaQuery> CkaQueryFromProto(const v1::ComputeCkaRequest& r,
                                                 int64_t max_points) {
  core::CkaQuery q;
  ASSIGN_OR_RETURN(q.model_a, ParseModelName(r.model_a(), "model_a"));
  if (!r.model_b().empty()) {
    ASSIGN_OR_RETURN(q.model_b, ParseModelName(r.model_b(), "model_b"));
  }
  ASSIGN_OR_RETURN(q.layer_a, LayerRefFromProto(r.layer_a(), "layer_a"));
  ASSIGN_OR_RETURN(q.layer_b, LayerRefFromProto(r.layer_b(), "layer_b"));
  q.all_layers = r.all_layers();
  ASSIGN_OR_RETURN(q.points, PointSourceFromProto(r.points(), max_points));
  return q;
}

void CkaToProto(const core::CkaResult& r, v1::ComputeCkaResponse* out) {
  out->set_cka(r.value.cka);
  out->set_biased_cka(r.value.biased_cka);
  out->set_points_used(r.points_used);
  v1::Degeneracy* d = out->mutable_degeneracy();
  d->set_degenerate(r.value.degenerate);
  d->set_zero_variance(r.value.degenerate);
  d->set_detail(r.value.detail);
  if (r.has_matrix) {
    const int64_t la = static_cast<int64_t>(r.layers_a.size());
    const int64_t lb = static_cast<int64_t>(r.layers_b.size());
    DoubleTensorToProto({la, lb}, r.matrix.data(), out->mutable_matrix());
    for (const core::LayerRef& l : r.layers_a) LayerRefToProto(l, out->add_matrix_layers_a());
    for (const core::LayerRef& l : r.layers_b) LayerRefToProto(l, out->add_matrix_layers_b());
  }
}

absl::StatusOr<core::ScaffoldQuery> ScaffoldQueryFromProto(
    const v1::ComputeScaffoldGradientsRequest& r, int64_t max_points) {
  core::ScaffoldQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  ASSIGN_OR_RETURN(q.layer, LayerRefFromProto(r.layer(), "layer"));
  if (r.has_target_layer()) {
    q.has_target = true;
    ASSIGN_OR_RETURN(q.target, LayerRefFromProto(r.target_layer(), "target_layer"));
  }
  if (r.component() < 0) return absl::InvalidArgumentError("component must be >= 0");
  if (r.gradient_components() < 0) {
    return absl::InvalidArgumentError("gradient_components must be >= 0");
  }
  q.options.component = r.component();
  q.options.cluster_cosine = r.cluster_cosine() == 0.0 ? 0.99 : r.cluster_cosine();
  if (!(q.options.cluster_cosine > 0.0 && q.options.cluster_cosine <= 1.0)) {
    return absl::InvalidArgumentError("cluster_cosine must be in (0, 1]");
  }
  q.options.keep_gradients = r.include_gradients();
  ASSIGN_OR_RETURN(q.points, PointSourceFromProto(r.points(), max_points));
  return q;
}

void ScaffoldToProto(const core::ScaffoldResult& r, int components,
                     v1::ComputeScaffoldGradientsResponse* out) {
  DoubleTensorToProto({static_cast<int64_t>(r.target_direction.size())}, r.target_direction.data(),
                      out->mutable_target_direction());
  const int d = r.gradient_pca.d;
  const int k = Truncate(components, d);
  for (int i = 0; i < k; ++i) out->add_explained_variance_ratio(r.gradient_pca.explained_variance_ratio[i]);
  RowsToProto(r.gradient_pca.components, d, k, out->mutable_components());
  out->set_clusters_found(r.clusters.found);
  for (int c = 0; c < r.clusters.found; ++c) {
    v1::GradientCluster* g = out->add_clusters();
    g->set_size(r.clusters.sizes[c]);
    DoubleTensorToProto({d}, r.clusters.directions.data() + static_cast<int64_t>(c) * d,
                        g->mutable_direction());
    g->set_min_cosine(r.clusters.min_cosine[c]);
    g->set_mean_norm(r.clusters.mean_norm[c]);
  }
  for (int32_t a : r.clusters.assignment) out->add_assignments(a);
  out->set_zero_gradients(r.zero_gradients);
  out->set_distinct_gradients(r.distinct_gradients);
  if (!r.gradients.empty()) {
    FloatTensorToProto({r.points_used, d}, r.gradients.data(), out->mutable_gradients());
  }
  out->set_points_used(r.points_used);
}

}  // namespace gradzoo::server
