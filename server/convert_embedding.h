// Converters between gradzoo.v1 embedding messages and core/embed types (the embedding
// service's half of server/convert.h). Validate what they read, apply the .proto defaults and
// answer INVALID_ARGUMENT naming the field. Stateless and thread-safe.
#ifndef GRADZOO_SERVER_CONVERT_EMBEDDING_H_
#define GRADZOO_SERVER_CONVERT_EMBEDDING_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/embed/embedder.h"
#include "gradzoo/v1/embedding.pb.h"
#include "gradzoo/v1/job.pb.h"

namespace gradzoo::server {

// "embedders/{id}" <-> id.
absl::StatusOr<std::string> ParseEmbedderName(const std::string& name, const char* field);
std::string EmbedderName(const std::string& id);

// An embedder-training job's work: id, zoo ids and options (defaults applied).
struct EmbedderTrainingWork {
  std::string id;
  std::vector<std::string> zoos;
  core::EmbedderOptions options;
};
absl::StatusOr<EmbedderTrainingWork> EmbedderTrainingFromProto(const v1::EmbedderTraining& t);

void EmbedderToProto(const core::EmbedderInfo& info, v1::Embedder* out);

absl::StatusOr<core::EmbedQuery> EmbedQueryFromProto(const v1::EmbedModelsRequest& r);
absl::StatusOr<core::NeighborQuery> NeighborQueryFromProto(const v1::FindNeighborsRequest& r);
absl::StatusOr<core::ProbeQuery> ProbeQueryFromProto(const v1::RunProbeRequest& r);
void NeighborsToProto(const std::vector<core::EmbedNeighbor>& n, v1::FindNeighborsResponse* out);
void ProbeScoresToProto(const std::vector<core::ProbeScore>& s, v1::RunProbeResponse* out);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_CONVERT_EMBEDDING_H_
