#include "client/embedding_client.h"

#include <grpcpp/grpcpp.h>

namespace gradzoo::client {
namespace {

template <typename Resp, typename Call>
absl::StatusOr<Resp> Unary(absl::Duration timeout, Call call) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  Resp resp;
  grpc::Status s = call(&ctx, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

}  // namespace

EmbeddingClient::EmbeddingClient(const Client& client)
    : options_(client.options()),
      stub_(v1::EmbeddingService::NewStub(client.channel())),
      jobs_(v1::TrainingJobService::NewStub(client.channel())) {}

absl::StatusOr<v1::TrainingJob> EmbeddingClient::CreateEmbedderTrainingJob(
    const v1::EmbedderTraining& work, const std::string& request_id) {
  v1::CreateTrainingJobRequest req;
  *req.mutable_job()->mutable_embedder_training() = work;
  req.set_request_id(request_id);
  auto resp = Unary<v1::CreateTrainingJobResponse>(
      options_.timeout, [&](grpc::ClientContext* ctx, auto* out) {
        return jobs_->CreateTrainingJob(ctx, req, out);
      });
  if (!resp.ok()) return resp.status();
  return resp->job();
}

absl::StatusOr<v1::Embedder> EmbeddingClient::GetEmbedder(const std::string& name) {
  v1::GetEmbedderRequest req;
  req.set_name(name);
  auto resp = Unary<v1::GetEmbedderResponse>(
      options_.timeout,
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->GetEmbedder(ctx, req, out); });
  if (!resp.ok()) return resp.status();
  return resp->embedder();
}

absl::StatusOr<std::vector<v1::Embedder>> EmbeddingClient::ListEmbedders() {
  std::vector<v1::Embedder> all;
  v1::ListEmbeddersRequest req;
  req.set_page_size(1000);
  do {
    auto resp = Unary<v1::ListEmbeddersResponse>(
        options_.timeout,
        [&](grpc::ClientContext* ctx, auto* out) { return stub_->ListEmbedders(ctx, req, out); });
    if (!resp.ok()) return resp.status();
    for (const v1::Embedder& e : resp->embedders()) all.push_back(e);
    req.set_page_token(resp->next_page_token());
  } while (!req.page_token().empty());
  return all;
}

absl::Status EmbeddingClient::DeleteEmbedder(const std::string& name) {
  v1::DeleteEmbedderRequest req;
  req.set_name(name);
  return Unary<v1::DeleteEmbedderResponse>(
             options_.timeout,
             [&](grpc::ClientContext* ctx, auto* out) { return stub_->DeleteEmbedder(ctx, req, out); })
      .status();
}

absl::StatusOr<FloatArray> EmbeddingClient::EmbedModels(const std::string& embedder,
                                                        const std::vector<std::string>& models,
                                                        int samples, int64_t seed,
                                                        std::optional<absl::Duration> timeout) {
  v1::EmbedModelsRequest req;
  req.set_embedder(embedder);
  for (const std::string& m : models) req.add_models(m);
  req.set_samples(samples);
  req.set_seed(seed);
  return EmbedModels(req, timeout);
}

absl::StatusOr<FloatArray> EmbeddingClient::EmbedModels(const v1::EmbedModelsRequest& req,
                                                        std::optional<absl::Duration> timeout) {
  auto resp = Unary<v1::EmbedModelsResponse>(
      timeout.value_or(options_.timeout),
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->EmbedModels(ctx, req, out); });
  if (!resp.ok()) return resp.status();
  return Client::DecodeTensor(resp->embeddings());
}

absl::StatusOr<std::vector<v1::Neighbor>> EmbeddingClient::FindNeighbors(
    const std::string& embedder, const std::string& model, int k,
    const std::vector<std::string>& zoos, std::optional<absl::Duration> timeout) {
  v1::FindNeighborsRequest req;
  req.set_embedder(embedder);
  req.set_model(model);
  req.set_k(k);
  for (const std::string& z : zoos) req.add_zoos(z);
  auto resp = Unary<v1::FindNeighborsResponse>(
      timeout.value_or(options_.timeout),
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->FindNeighbors(ctx, req, out); });
  if (!resp.ok()) return resp.status();
  return std::vector<v1::Neighbor>(resp->neighbors().begin(), resp->neighbors().end());
}

absl::StatusOr<std::vector<v1::ProbeScores>> EmbeddingClient::RunProbe(
    const std::string& embedder, const std::vector<std::string>& zoos, const std::string& target,
    int k, std::optional<absl::Duration> timeout) {
  v1::RunProbeRequest req;
  req.set_embedder(embedder);
  for (const std::string& z : zoos) req.add_zoos(z);
  req.set_target(target);
  req.set_k(k);
  auto resp = Unary<v1::RunProbeResponse>(
      timeout.value_or(options_.stream_timeout),
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->RunProbe(ctx, req, out); });
  if (!resp.ok()) return resp.status();
  return std::vector<v1::ProbeScores>(resp->scores().begin(), resp->scores().end());
}

}  // namespace gradzoo::client
