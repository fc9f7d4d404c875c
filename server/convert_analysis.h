// Converters for AnalysisService (task orthogonality, layer PCA, PLSR, CKA, scaffold gradients)
// between gradzoo.v1 and core/analysis.
//
// Like server/convert.h: every *FromProto validates what it reads and answers INVALID_ARGUMENT
// naming the field, and applies the defaults documented in analysis.proto (method FUNCTIONAL,
// side POST, outputs 0 and 1 when both are unset, variance_threshold 0.9, PLS components 2,
// cluster_cosine 0.99, an empty PointSet = each model's validation inputs). Result tensors are
// float64 (the scaffold's per-point gradients float32). Stateless and thread-safe.
#ifndef GRADZOO_SERVER_CONVERT_ANALYSIS_H_
#define GRADZOO_SERVER_CONVERT_ANALYSIS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/analysis/analysis.h"
#include "gradzoo/v1/analysis.pb.h"

namespace gradzoo::server {

absl::StatusOr<core::LayerRef> LayerRefFromProto(const v1::LayerRef& l, const char* field);
void LayerRefToProto(const core::LayerRef& l, v1::LayerRef* out);
absl::StatusOr<core::OrthogonalityMethod> OrthogonalityMethodFromProto(v1::OrthogonalityMethod m);
v1::OrthogonalityMethod OrthogonalityMethodToProto(core::OrthogonalityMethod m);
// An unset PointSet means the models' validation inputs.
absl::StatusOr<core::PointSource> PointSourceFromProto(const v1::PointSet& p, int64_t max_points);

absl::StatusOr<core::ModelOrthogonalityQuery> ModelOrthogonalityQueryFromProto(
    const v1::ScoreOrthogonalityRequest& r, int64_t max_points);
void OrthogonalityScoreToProto(const core::OrthogonalityScore& s, core::OrthogonalityMethod m,
                               v1::ScoreOrthogonalityResponse* out);

absl::StatusOr<core::ZooOrthogonalityQuery> ZooOrthogonalityQueryFromProto(
    const v1::ScoreZooOrthogonalityRequest& r, int64_t max_points);
void ZooOrthogonalityToProto(const core::ZooOrthogonalityResult& r, const std::string& zoo_id,
                             core::OrthogonalityMethod m, v1::ScoreZooOrthogonalityResponse* out);

absl::StatusOr<core::LayerPcaQuery> LayerPcaQueryFromProto(const v1::ComputeLayerPcaRequest& r,
                                                           int64_t max_points);
// `components` (0 = all) truncates the returned components.
void LayerPcaToProto(const core::LayerPcaResult& r, int components,
                     v1::ComputeLayerPcaResponse* out);

absl::StatusOr<core::PlsrQuery> PlsrQueryFromProto(const v1::ComputePlsrRequest& r,
                                                   int64_t max_points);
void PlsrToProto(const core::LayerPlsrResult& r, v1::ComputePlsrResponse* out);

absl::StatusOr<core::CkaQuery> CkaQueryFromProto(const v1::ComputeCkaRequest& r,
                                                 int64_t max_points);
void CkaToProto(const core::CkaResult& r, v1::ComputeCkaResponse* out);

absl::StatusOr<core::ScaffoldQuery> ScaffoldQueryFromProto(
    const v1::ComputeScaffoldGradientsRequest& r, int64_t max_points);
// `components` (0 = all) truncates the gradient PCA.
void ScaffoldToProto(const core::ScaffoldResult& r, int components,
                     v1::ComputeScaffoldGradientsResponse* out);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_CONVERT_ANALYSIS_H_
