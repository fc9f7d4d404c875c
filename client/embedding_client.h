// EmbeddingClient: the typed C++ API for EmbeddingService (seed 003's network embeddings) and
// for embedder-training jobs, on a gradzoo::client::Client's channel.
//
//   ASSIGN_OR_RETURN(auto client, gradzoo::client::Client::Connect("127.0.0.1:50551"));
//   gradzoo::client::EmbeddingClient emb(*client);
//   v1::EmbedderTraining t;
//   t.set_embedder_id("e1");
//   t.add_zoos("zoos/poly");
//   ASSIGN_OR_RETURN(v1::TrainingJob job, emb.CreateEmbedderTrainingJob(t));
//   ASSIGN_OR_RETURN(job, client->WaitForJob(job.name(), nullptr));
//   ASSIGN_OR_RETURN(auto e, emb.EmbedModels("embedders/e1", {"zoos/poly/models/m0000"}));
//
// Every call has a deadline (Client::Options::timeout unless the call passes its own); list
// calls follow page tokens. Errors carry the server's gRPC code and message. Thread-safe; the
// Client must outlive it.
#ifndef GRADZOO_CLIENT_EMBEDDING_CLIENT_H_
#define GRADZOO_CLIENT_EMBEDDING_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/gradzoo_client.h"
#include "gradzoo/v1/embedding.grpc.pb.h"
#include "gradzoo/v1/job.grpc.pb.h"

namespace gradzoo::client {

class EmbeddingClient {
 public:
  explicit EmbeddingClient(const Client& client);

  // Queues an embedder-training job (TrainingJobService.CreateTrainingJob).
  absl::StatusOr<v1::TrainingJob> CreateEmbedderTrainingJob(const v1::EmbedderTraining& work,
                                                            const std::string& request_id = "");
  absl::StatusOr<v1::Embedder> GetEmbedder(const std::string& name);
  absl::StatusOr<std::vector<v1::Embedder>> ListEmbedders();
  absl::Status DeleteEmbedder(const std::string& name);
  // Embeddings [models, embedding_size], in request order.
  absl::StatusOr<FloatArray> EmbedModels(const std::string& embedder,
                                         const std::vector<std::string>& models, int samples = 0,
                                         int64_t seed = 0,
                                         std::optional<absl::Duration> timeout = std::nullopt);
  // The same with every field of the request (sub-network layers among them).
  absl::StatusOr<FloatArray> EmbedModels(const v1::EmbedModelsRequest& request,
                                         std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<std::vector<v1::Neighbor>> FindNeighbors(
      const std::string& embedder, const std::string& model, int k,
      const std::vector<std::string>& zoos = {},
      std::optional<absl::Duration> timeout = std::nullopt);
  absl::StatusOr<std::vector<v1::ProbeScores>> RunProbe(
      const std::string& embedder, const std::vector<std::string>& zoos,
      const std::string& target = "label", int k = 0,
      std::optional<absl::Duration> timeout = std::nullopt);

 private:
  const Client::Options options_;
  std::unique_ptr<v1::EmbeddingService::Stub> stub_;
  std::unique_ptr<v1::TrainingJobService::Stub> jobs_;
};

}  // namespace gradzoo::client

#endif  // GRADZOO_CLIENT_EMBEDDING_CLIENT_H_
