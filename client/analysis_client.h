// AnalysisClient: the typed C++ API for AnalysisService (task orthogonality, zoo-wide lambda
// sweeps, layer PCA, PLSR, CKA, scaffold gradients), on a gradzoo::client::Client's channel.
//
//   ASSIGN_OR_RETURN(auto client, gradzoo::client::Client::Connect("127.0.0.1:50551"));
//   gradzoo::client::AnalysisClient analysis(*client);
//   v1::ScoreZooOrthogonalityRequest req;
//   req.set_zoo("zoos/lam");
//   ASSIGN_OR_RETURN(auto sweep, analysis.ScoreZooOrthogonality(req));
//
// Every call has a deadline: Client::Options::timeout for single-model queries and
// Client::Options::stream_timeout for zoo-wide scoring (it scores every model), unless the call
// passes its own. Errors carry the server's gRPC code and message (NOT_FOUND for unknown names,
// INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED for oversize requests, CANCELLED,
// DEADLINE_EXCEEDED). Thread-safe; the Client must outlive it.
#ifndef GRADZOO_CLIENT_ANALYSIS_CLIENT_H_
#define GRADZOO_CLIENT_ANALYSIS_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/gradzoo_client.h"
#include "gradzoo/v1/analysis.grpc.pb.h"

namespace gradzoo::client {

// A float64 array decoded from the wire (float32 tensors are widened).
struct DoubleArray {
  std::vector<int64_t> shape;
  std::vector<double> data;
  // Element (i, j) of a 2-D array.
  double at(int64_t i, int64_t j) const { return data[i * shape[1] + j]; }
};

class AnalysisClient {
 public:
  explicit AnalysisClient(const Client& client);

  absl::StatusOr<v1::ScoreOrthogonalityResponse> ScoreOrthogonality(
      const v1::ScoreOrthogonalityRequest& request,
      std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<v1::ScoreZooOrthogonalityResponse> ScoreZooOrthogonality(
      const v1::ScoreZooOrthogonalityRequest& request,
      std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<v1::ComputeLayerPcaResponse> ComputeLayerPca(
      const v1::ComputeLayerPcaRequest& request,
      std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<v1::ComputePlsrResponse> ComputePlsr(
      const v1::ComputePlsrRequest& request, std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<v1::ComputeCkaResponse> ComputeCka(
      const v1::ComputeCkaRequest& request, std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<v1::ComputeScaffoldGradientsResponse> ComputeScaffoldGradients(
      const v1::ComputeScaffoldGradientsRequest& request,
      std::optional<absl::Duration> timeout = std::nullopt);

  // Decodes a float32 / float64 wire tensor, checking its byte count against its shape.
  static absl::StatusOr<DoubleArray> DecodeDoubles(const v1::Tensor& t);

 private:
  const Client::Options options_;
  std::unique_ptr<v1::AnalysisService::Stub> stub_;
};

// "h1", "z2", "x", "y"-style labels are the CLI's; these parse "1", "1:pre", "2:post" into a
// LayerRef (INVALID_ARGUMENT naming `flag` otherwise).
absl::StatusOr<v1::LayerRef> ParseLayerRef(const std::string& text, const char* flag);
std::string LayerRefLabel(const v1::LayerRef& l);

}  // namespace gradzoo::client

#endif  // GRADZOO_CLIENT_ANALYSIS_CLIENT_H_
