// Converters for GradientService's analysis RPCs (linear regions, exact partitions, layer
// Jacobians, the computational graph, path rarity) between gradzoo.v1 and core/grad.
//
// Like server/convert.h: every *FromProto validates what it reads and answers
// INVALID_ARGUMENT naming the field; defaults documented in gradient.proto are applied by core.
// Stateless and thread-safe.
#ifndef GRADZOO_SERVER_CONVERT_GRADIENT_H_
#define GRADZOO_SERVER_CONVERT_GRADIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/grad/graph.h"
#include "core/grad/layer_jacobians.h"
#include "core/grad/partition.h"
#include "core/grad/regions.h"
#include "gradzoo/v1/gradient.pb.h"

namespace gradzoo::server {

// Largest unary analysis response sent (bytes): under the 4 MiB every gRPC client accepts by
// default, so the Python client needs no tuning.
inline constexpr int64_t kMaxAnalysisResponseBytes = 4'000'000;

// A float64 wire tensor of `shape` holding `data`.
void DoubleTensorToProto(const std::vector<int64_t>& shape, const double* data, v1::Tensor* out);

absl::StatusOr<core::RegionQuery> RegionQueryFromProto(const v1::CountLinearRegionsRequest& r,
                                                       int64_t max_points);
void RegionCountsToProto(const core::RegionCounts& c, v1::CountLinearRegionsResponse* out);

absl::StatusOr<core::PartitionQuery> PartitionQueryFromProto(
    const v1::ComputeRegionPartitionRequest& r);
void PartitionToProto(const core::Partition& p, v1::ComputeRegionPartitionResponse* out);

absl::StatusOr<core::LayerJacobianQuery> LayerJacobianQueryFromProto(
    const v1::ComputeLayerJacobiansRequest& r, int64_t max_points);
// Examples per chunk: `requested` if > 0 (capped at 3x the automatic size), else sized to stay
// under 1 MiB per message.
int64_t LayerJacobianChunk(const core::LayerJacobians& j, int64_t requested);
// Chunk [offset, offset + count) of the Jacobians; `last` adds the summary fields.
void LayerJacobianChunkToProto(const core::LayerJacobians& j, int64_t offset, int64_t count,
                               bool last, v1::ComputeLayerJacobiansResponse* out);

absl::StatusOr<core::GraphQuery> GraphQueryFromProto(const v1::BuildComputationalGraphRequest& r,
                                                     int64_t max_points);
// `title` names the graph in the DOT text.
void GraphToProto(const core::ComputationalGraph& g, const std::string& title, bool include_dot,
                  bool include_json, v1::BuildComputationalGraphResponse* out);

absl::StatusOr<core::RarityQuery> RarityQueryFromProto(const v1::ScorePathRarityRequest& r,
                                                       int64_t max_points);
void RarityToProto(const core::RarityResult& r, v1::ScorePathRarityResponse* out);

// RESOURCE_EXHAUSTED (with `advice`) when `message` serialises to more than
// kMaxAnalysisResponseBytes.
absl::Status CheckResponseSize(const google::protobuf::Message& message, const char* advice);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_CONVERT_GRADIENT_H_
