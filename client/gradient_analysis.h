// Client calls for GradientService's analyses: linear regions, exact 2-D partitions,
// adjacent-layer Jacobians, the computational graph and path rarity. Free functions over a
// connected Client (its channel and deadlines); results come back decoded.
//
//   ASSIGN_OR_RETURN(auto client, Client::Connect("127.0.0.1:50551"));
//   v1::CountLinearRegionsRequest req;
//   req.set_model("zoos/demo/models/m0000");
//   ASSIGN_OR_RETURN(*req.mutable_points()->mutable_grid(), ParseGrid("0:0:1:200,1:0:1:200", ""));
//   ASSIGN_OR_RETURN(v1::CountLinearRegionsResponse counts, CountLinearRegions(*client, req));
//
// These analyses can take a while on large point sets, so every call uses the client's
// stream_timeout as its deadline. Errors carry the server's code and message.
// Thread-safe like Client.
#ifndef GRADZOO_CLIENT_GRADIENT_ANALYSIS_H_
#define GRADZOO_CLIENT_GRADIENT_ANALYSIS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/gradzoo_client.h"
#include "gradzoo/v1/gradient.pb.h"

namespace gradzoo::client {

// One region of an exact 2-D partition (float64 geometry, as the server computed it).
struct PartitionPolygon {
  std::vector<double> vertices;  // [V, 2], counter-clockwise
  double area = 0.0;
  std::vector<double> gradient;  // [output_dim, 2]
  std::vector<double> offset;    // [output_dim]: y = gradient (x, y) + offset on the region
  std::string activation_pattern;  // packed bits (gradient.proto's layout)
};

struct RegionPartition {
  int output_dim = 0;
  double slice_area = 0.0;
  std::vector<PartitionPolygon> regions;
  std::vector<int64_t> unique_gradients_per_output;
  int64_t unique_gradient_combinations = 0;
};

// Adjacent-layer Jacobians assembled from their chunks.
struct LayerJacobianResult {
  int64_t n = 0;
  int rows = 0;
  int cols = 0;
  std::vector<float> jacobians;  // [n, rows, cols]; empty with summary_only
  int64_t unique_jacobians = 0;
  bool clustered = false;
  std::vector<double> intra_layer_dots;     // [rows, rows]
  std::vector<double> principal_components;  // [rows, width(l+1)] with components
  std::vector<double> explained_variance;    // [rows]
  std::vector<double> activation_mean;       // [width(l+1)]
};

absl::StatusOr<v1::CountLinearRegionsResponse> CountLinearRegions(
    Client& client, const v1::CountLinearRegionsRequest& request);
absl::StatusOr<RegionPartition> ComputeRegionPartition(
    Client& client, const v1::ComputeRegionPartitionRequest& request);
// Streams the chunks and assembles them; DATA_LOSS if the stream is inconsistent.
absl::StatusOr<LayerJacobianResult> ComputeLayerJacobians(
    Client& client, const v1::ComputeLayerJacobiansRequest& request);
absl::StatusOr<v1::BuildComputationalGraphResponse> BuildComputationalGraph(
    Client& client, const v1::BuildComputationalGraphRequest& request);
absl::StatusOr<v1::ScorePathRarityResponse> ScorePathRarity(
    Client& client, const v1::ScorePathRarityRequest& request);

// Decodes a float32 or float64 wire tensor into doubles (no precision lost for float64).
absl::StatusOr<std::vector<double>> DecodeDoubles(const v1::Tensor& t);

// The CLI's point syntax. ParseGrid: "I:MIN:MAX:STEPS[,I:MIN:MAX:STEPS...]" axes and optional
// "V,V,..." fixed values. ParsePoints: "v,v,...;v,v,...", one point per ';'-separated group,
// every group of the same length. INVALID_ARGUMENT naming the bad part.
absl::StatusOr<v1::Grid> ParseGrid(const std::string& axes, const std::string& fixed);
absl::StatusOr<v1::Tensor> ParsePoints(const std::string& text);
// Explicit `points` when non-empty, else the grid of `axes` and `fixed`.
absl::StatusOr<v1::PointSet> ParsePointSet(const std::string& axes, const std::string& fixed,
                                           const std::string& points);

}  // namespace gradzoo::client

#endif  // GRADZOO_CLIENT_GRADIENT_ANALYSIS_H_
