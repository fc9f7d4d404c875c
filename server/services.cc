#include "server/services.h"

#include <algorithm>
#include <atomic>
#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/util/status_macros.h"
#include "gradzoo/v1/analysis.grpc.pb.h"
#include "gradzoo/v1/embedding.grpc.pb.h"
#include "gradzoo/v1/gradient.grpc.pb.h"
#include "gradzoo/v1/info.grpc.pb.h"
#include "gradzoo/v1/job.grpc.pb.h"
#include "gradzoo/v1/zoo.grpc.pb.h"
#include "server/convert.h"
#include "server/status_map.h"

namespace gradzoo::server {
namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Finishes a unary call with `status`, inline.
ServerUnaryReactor* Reply(CallbackServerContext* ctx, const absl::Status& status) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A streaming reply that ends at once with `status` (errors before the first message).
template <typename T>
class FinishedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FinishedWriter(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename T>
class FinishedReader final : public grpc::ServerReadReactor<T> {
 public:
  explicit FinishedReader(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

grpc::Status Unimplemented(const char* rpc, const char* missing) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat(rpc, " is not implemented in this release: ", missing,
                                   " lands later (see the README's API status)"));
}

// ------------------------------------------------------------------------------------------
// ZooService
// ------------------------------------------------------------------------------------------
class ZooServiceImpl final : public v1::ZooService::CallbackService {
 public:
  explicit ZooServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  ServerUnaryReactor* ListZoos(CallbackServerContext* ctx, const v1::ListZoosRequest* req,
                               v1::ListZoosResponse* resp) override {
    return Reply(ctx, DoListZoos(*req, resp));
  }
  ServerUnaryReactor* GetZoo(CallbackServerContext* ctx, const v1::GetZooRequest* req,
                             v1::GetZooResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      ASSIGN_OR_RETURN(auto zoo, deps_.engine->GetZoo(id));
      ZooToProto(*zoo, resp->mutable_zoo());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* DeleteZoo(CallbackServerContext* ctx, const v1::DeleteZooRequest* req,
                                v1::DeleteZooResponse*) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      return deps_.engine->DeleteZoo(id);
    }());
  }
  ServerUnaryReactor* ListModels(CallbackServerContext* ctx, const v1::ListModelsRequest* req,
                                 v1::ListModelsResponse* resp) override {
    return Reply(ctx, DoListModels(*req, resp));
  }
  ServerUnaryReactor* GetModel(CallbackServerContext* ctx, const v1::GetModelRequest* req,
                               v1::GetModelResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(core::ModelRef ref, ParseModelName(req->name(), "name"));
      ASSIGN_OR_RETURN(auto found, deps_.engine->GetModel(ref));
      ModelToProto(ref.zoo_id, *found.second, /*include_weights=*/true, resp->mutable_model());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* ImportModel(CallbackServerContext* ctx, const v1::ImportModelRequest*,
                                  v1::ImportModelResponse*) override {
    ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(Unimplemented("ImportModel", "importing weights trained elsewhere"));
    return r;
  }
  grpc::ServerWriteReactor<v1::ExportZooResponse>* ExportZoo(
      CallbackServerContext*, const v1::ExportZooRequest*) override {
    return new FinishedWriter<v1::ExportZooResponse>(
        Unimplemented("ExportZoo", "the zoo archive transfer between servers"));
  }
  grpc::ServerReadReactor<v1::ImportZooRequest>* ImportZoo(CallbackServerContext*,
                                                           v1::ImportZooResponse*) override {
    return new FinishedReader<v1::ImportZooRequest>(
        Unimplemented("ImportZoo", "the zoo archive transfer between servers"));
  }

 private:
  absl::Status DoListZoos(const v1::ListZoosRequest& req, v1::ListZoosResponse* resp) {
    ASSIGN_OR_RETURN(const int size, PageSize(req.page_size(), 50, 1000));
    ASSIGN_OR_RETURN(const int64_t offset, ParsePageToken(req.page_token()));
    std::vector<core::ZooEntry> all = deps_.engine->ListZoos();
    for (int64_t i = offset; i < static_cast<int64_t>(all.size()) && i < offset + size; ++i) {
      v1::Zoo* z = resp->add_zoos();
      if (all[i].zoo) {
        ZooToProto(*all[i].zoo, z);
      } else {
        z->set_name(ZooName(all[i].id));
        z->set_state(v1::ZOO_STATE_CORRUPT);
      }
    }
    if (offset + size < static_cast<int64_t>(all.size())) {
      resp->set_next_page_token(MakePageToken(offset + size));
    }
    return absl::OkStatus();
  }
  absl::Status DoListModels(const v1::ListModelsRequest& req, v1::ListModelsResponse* resp) {
    ASSIGN_OR_RETURN(std::string id, ParseZooName(req.parent(), "parent"));
    ASSIGN_OR_RETURN(const int size, PageSize(req.page_size(), 100, 1000));
    ASSIGN_OR_RETURN(const int64_t offset, ParsePageToken(req.page_token()));
    ASSIGN_OR_RETURN(auto zoo, deps_.engine->GetZoo(id));
    const int64_t n = static_cast<int64_t>(zoo->models.size());
    int64_t bytes = 0;
    int64_t i = offset;
    for (; i < n && i < offset + size; ++i) {
      v1::Model* m = resp->add_models();
      ModelToProto(id, zoo->models[i], req.include_weights(), m);
      bytes += static_cast<int64_t>(m->ByteSizeLong());
      // Keep pages with weights well under the 4 MiB default client limit.
      if (bytes > (2 << 20)) {
        ++i;
        break;
      }
    }
    if (i < n) resp->set_next_page_token(MakePageToken(i));
    return absl::OkStatus();
  }

  const ServiceDeps deps_;
};

// ------------------------------------------------------------------------------------------
// TrainingJobService
// ------------------------------------------------------------------------------------------

// Streams a job's snapshots until it is final. Listener callbacks come from job threads; the
// shared State keeps them safe after the reactor is gone.
class WatchWriter final : public grpc::ServerWriteReactor<v1::WatchTrainingJobResponse> {
 public:
  WatchWriter(JobManager* jobs, const std::string& id) : jobs_(jobs), id_(id) {
    state_ = std::make_shared<State>();
    state_->self = this;
    std::shared_ptr<State> st = state_;
    absl::StatusOr<int64_t> handle =
        jobs_->AddListener(id_, [st](const JobSnapshot& snap) { State::Deliver(st, snap); });
    if (!handle.ok()) {
      absl::MutexLock lock(&st->mu);
      if (!st->finished) {
        st->finished = true;
        Finish(ToGrpcStatus(handle.status()));
      }
      return;
    }
    absl::MutexLock lock(&st->mu);
    handle_ = *handle;
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->writing = false;
    if (state_->finished) return;
    if (!ok) {
      state_->finished = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    if (state_->wrote_final) {
      state_->finished = true;
      Finish(grpc::Status::OK);
      return;
    }
    if (state_->pending) State::WriteLocked(state_.get());
  }
  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    if (!state_->finished) {
      state_->finished = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    }
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->self = nullptr;
    }
    if (handle_ != 0) jobs_->RemoveListener(id_, handle_);
    delete this;
  }

 private:
  struct State {
    absl::Mutex mu;
    WatchWriter* self ABSL_GUARDED_BY(mu) = nullptr;
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool pending ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    bool wrote_final ABSL_GUARDED_BY(mu) = false;
    JobSnapshot latest ABSL_GUARDED_BY(mu);
    v1::WatchTrainingJobResponse msg ABSL_GUARDED_BY(mu);

    static void Deliver(const std::shared_ptr<State>& st, const JobSnapshot& snap) {
      absl::MutexLock lock(&st->mu);
      if (st->self == nullptr || st->finished || st->wrote_final) return;
      if (snap.version < st->latest.version) return;
      st->latest = snap;
      st->pending = true;
      if (!st->writing) WriteLocked(st.get());
    }
    static void WriteLocked(State* st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(st->mu) {
      st->msg.Clear();
      JobToProto(st->latest, st->msg.mutable_job());
      st->pending = false;
      st->writing = true;
      st->wrote_final = IsFinal(st->latest.state);
      st->self->StartWrite(&st->msg);
    }
  };

  JobManager* const jobs_;
  const std::string id_;
  std::shared_ptr<State> state_;
  int64_t handle_ = 0;
};

absl::StatusOr<std::string> ParseJobName(const std::string& name) {
  constexpr char kPrefix[] = "trainingJobs/";
  if (name.rfind(kPrefix, 0) != 0 || name.size() == sizeof(kPrefix) - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name \"", name.substr(0, 80), "\" is not a job name of the form trainingJobs/{job}"));
  }
  return name.substr(sizeof(kPrefix) - 1);
}

class TrainingJobServiceImpl final : public v1::TrainingJobService::CallbackService {
 public:
  explicit TrainingJobServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  ServerUnaryReactor* CreateTrainingJob(CallbackServerContext* ctx,
                                        const v1::CreateTrainingJobRequest* req,
                                        v1::CreateTrainingJobResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      if (req->job().has_embedder_training()) {
        return absl::UnimplementedError(
            "embedder_training jobs are not implemented in this release: the network embedder "
            "(seed 003) lands later");
      }
      if (!req->job().has_zoo_training()) {
        return absl::InvalidArgumentError("job: set zoo_training (what the job should train)");
      }
      const v1::ZooTraining& zt = req->job().zoo_training();
      RETURN_IF_ERROR(core::ValidateResourceId(zt.zoo_id(), "job.zoo_training.zoo_id"));
      ASSIGN_OR_RETURN(core::ZooSpec spec, ZooSpecFromProto(zt.spec()));
      ASSIGN_OR_RETURN(JobSnapshot snap,
                       deps_.jobs->SubmitZooTraining(zt.zoo_id(), spec, req->request_id()));
      JobToProto(snap, resp->mutable_job());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* GetTrainingJob(CallbackServerContext* ctx,
                                     const v1::GetTrainingJobRequest* req,
                                     v1::GetTrainingJobResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string id, ParseJobName(req->name()));
      ASSIGN_OR_RETURN(JobSnapshot snap, deps_.jobs->Get(id));
      JobToProto(snap, resp->mutable_job());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* ListTrainingJobs(CallbackServerContext* ctx,
                                       const v1::ListTrainingJobsRequest* req,
                                       v1::ListTrainingJobsResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(const int size, PageSize(req->page_size(), 50, 1000));
      ASSIGN_OR_RETURN(const int64_t offset, ParsePageToken(req->page_token()));
      std::vector<JobSnapshot> all = deps_.jobs->List();
      const int64_t n = static_cast<int64_t>(all.size());
      for (int64_t i = offset; i < n && i < offset + size; ++i) {
        JobToProto(all[i], resp->add_jobs());
      }
      if (offset + size < n) resp->set_next_page_token(MakePageToken(offset + size));
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* CancelTrainingJob(CallbackServerContext* ctx,
                                        const v1::CancelTrainingJobRequest* req,
                                        v1::CancelTrainingJobResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string id, ParseJobName(req->name()));
      ASSIGN_OR_RETURN(JobSnapshot snap, deps_.jobs->Cancel(id));
      JobToProto(snap, resp->mutable_job());
      return absl::OkStatus();
    }());
  }
  grpc::ServerWriteReactor<v1::WatchTrainingJobResponse>* WatchTrainingJob(
      CallbackServerContext*, const v1::WatchTrainingJobRequest* req) override {
    absl::StatusOr<std::string> id = ParseJobName(req->name());
    if (!id.ok()) {
      return new FinishedWriter<v1::WatchTrainingJobResponse>(ToGrpcStatus(id.status()));
    }
    return new WatchWriter(deps_.jobs, *id);
  }

 private:
  const ServiceDeps deps_;
};

// ------------------------------------------------------------------------------------------
// GradientService
// ------------------------------------------------------------------------------------------

// Computes a field on the query pool, then streams it chunk by chunk (one write in flight).
class FieldWriter final : public grpc::ServerWriteReactor<v1::ComputeGradientFieldResponse> {
 public:
  FieldWriter(const ServiceDeps& deps, CallbackServerContext* ctx,
              const v1::ComputeGradientFieldRequest& req)
      : deps_(deps),
        ctx_(ctx),
        chunk_points_(req.chunk_points()),
        include_error_field_(req.include_error_field()) {
    absl::Status s = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(request_, FieldRequestFromProto(
                                     req, deps_.engine->options().max_points_per_query));
      return deps_.engine->ValidateField(request_).status();  // sizes checked before allocating
    }();
    if (!s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    if (!deps_.queries->TrySchedule([this] { Compute(); })) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "the query queue is full; retry in a few seconds"));
    }
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    WriteNext();
  }
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override { delete this; }

 private:
  void Compute() {
    auto cancel = [this] { return cancelled_.load() || ctx_->IsCancelled(); };
    absl::StatusOr<std::vector<core::NamedField>> r =
        deps_.engine->ComputeGradientField(request_, cancel);
    if (!r.ok()) {
      Finish(ToGrpcStatus(r.status()));
      return;
    }
    results_ = *std::move(r);
    points_ = std::move(results_.front().points);
    const core::ModelField& f = results_.front().field;
    // Bytes per point of one chunk message; aim for <= 1 MiB per message.
    const int64_t per_point =
        4 * (f.input_dim + int64_t{f.output_dim} * f.input_dim * (request_.compare_with_theory ? 2 : 1) +
             f.output_dim * (1 + (request_.compare_with_theory ? 1 : 0)));
    const int64_t auto_chunk = std::max<int64_t>(1, (1 << 20) / per_point);
    chunk_ = chunk_points_ > 0 ? std::min<int64_t>(chunk_points_, 3 * auto_chunk) : auto_chunk;
    WriteNext();
  }
  void WriteNext() {
    if (model_ >= results_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const core::NamedField& nf = results_[model_];
    const core::ModelField& f = nf.field;
    const int64_t m = std::min(chunk_, f.n - offset_);
    const int in = f.input_dim, out = f.output_dim;
    msg_.Clear();
    msg_.set_model(ModelName(nf.model.zoo_id, nf.model.model_id));
    msg_.set_offset(offset_);
    msg_.set_total_points(f.n);
    FloatTensorToProto({m, in}, points_.data() + offset_ * in, msg_.mutable_points());
    FloatTensorToProto({m, out, in}, f.gradients.data() + offset_ * out * in,
                       msg_.mutable_gradients());
    if (!f.outputs.empty()) {
      FloatTensorToProto({m, out}, f.outputs.data() + offset_ * out, msg_.mutable_outputs());
    }
    if (f.has_theory) {
      FloatTensorToProto({m, out, in}, f.theory.data() + offset_ * out * in,
                         msg_.mutable_theory_gradients());
      if (include_error_field_) {
        FloatTensorToProto({m, out}, f.relative_errors.data() + offset_ * out,
                           msg_.mutable_relative_errors());
      }
    }
    offset_ += m;
    if (offset_ >= f.n) {
      msg_.set_last(true);
      if (f.has_theory) ErrorSummaryToProto(f.summary, msg_.mutable_summary());
      ++model_;
      offset_ = 0;
    }
    StartWrite(&msg_);
  }

  const ServiceDeps deps_;
  CallbackServerContext* const ctx_;
  const int64_t chunk_points_;
  const bool include_error_field_;
  core::FieldRequest request_;
  std::atomic<bool> cancelled_{false};
  std::vector<core::NamedField> results_;
  std::vector<float> points_;
  int64_t chunk_ = 1;
  size_t model_ = 0;
  int64_t offset_ = 0;
  v1::ComputeGradientFieldResponse msg_;
};

class GradientServiceImpl final : public v1::GradientService::CallbackService {
 public:
  explicit GradientServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::ServerWriteReactor<v1::ComputeGradientFieldResponse>* ComputeGradientField(
      CallbackServerContext* ctx, const v1::ComputeGradientFieldRequest* req) override {
    return new FieldWriter(deps_, ctx, *req);
  }
  ServerUnaryReactor* CountLinearRegions(CallbackServerContext* ctx,
                                         const v1::CountLinearRegionsRequest*,
                                         v1::CountLinearRegionsResponse*) override {
    ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(Unimplemented("CountLinearRegions", "linear-region counting (unique gradients)"));
    return r;
  }
  ServerUnaryReactor* ComputeRegionPartition(CallbackServerContext* ctx,
                                             const v1::ComputeRegionPartitionRequest*,
                                             v1::ComputeRegionPartitionResponse*) override {
    ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(Unimplemented("ComputeRegionPartition", "exact 2-D region partitions"));
    return r;
  }
  grpc::ServerWriteReactor<v1::ComputeLayerJacobiansResponse>* ComputeLayerJacobians(
      CallbackServerContext*, const v1::ComputeLayerJacobiansRequest*) override {
    return new FinishedWriter<v1::ComputeLayerJacobiansResponse>(
        Unimplemented("ComputeLayerJacobians", "adjacent-layer Jacobians"));
  }
  ServerUnaryReactor* BuildComputationalGraph(CallbackServerContext* ctx,
                                              const v1::BuildComputationalGraphRequest*,
                                              v1::BuildComputationalGraphResponse*) override {
    ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(Unimplemented("BuildComputationalGraph", "the layer-by-layer computational graph"));
    return r;
  }

 private:
  const ServiceDeps deps_;
};

// ------------------------------------------------------------------------------------------
// AnalysisService and EmbeddingService: later releases.
// ------------------------------------------------------------------------------------------
#define GRADZOO_UNIMPLEMENTED_UNARY(Rpc, what)                                         \
  ServerUnaryReactor* Rpc(CallbackServerContext* ctx, const v1::Rpc##Request*,          \
                          v1::Rpc##Response*) override {                                \
    ServerUnaryReactor* r = ctx->DefaultReactor();                                      \
    r->Finish(Unimplemented(#Rpc, what));                                               \
    return r;                                                                           \
  }

class AnalysisServiceImpl final : public v1::AnalysisService::CallbackService {
 public:
  GRADZOO_UNIMPLEMENTED_UNARY(ScoreOrthogonality, "task-orthogonality scores")
  GRADZOO_UNIMPLEMENTED_UNARY(ScoreZooOrthogonality, "zoo-wide orthogonality scores")
  GRADZOO_UNIMPLEMENTED_UNARY(ComputeLayerPca, "layer PCA")
  GRADZOO_UNIMPLEMENTED_UNARY(ComputePlsr, "PLSR between layers")
  GRADZOO_UNIMPLEMENTED_UNARY(ComputeCka, "linear CKA")
};

class EmbeddingServiceImpl final : public v1::EmbeddingService::CallbackService {
 public:
  GRADZOO_UNIMPLEMENTED_UNARY(GetEmbedder, "network embedders (seed 003)")
  GRADZOO_UNIMPLEMENTED_UNARY(ListEmbedders, "network embedders (seed 003)")
  GRADZOO_UNIMPLEMENTED_UNARY(DeleteEmbedder, "network embedders (seed 003)")
  GRADZOO_UNIMPLEMENTED_UNARY(EmbedModels, "embedding lookups")
  GRADZOO_UNIMPLEMENTED_UNARY(FindNeighbors, "embedding neighbours")
  GRADZOO_UNIMPLEMENTED_UNARY(RunProbe, "embedding probes")
};
#undef GRADZOO_UNIMPLEMENTED_UNARY

// ------------------------------------------------------------------------------------------
// InfoService
// ------------------------------------------------------------------------------------------
class InfoServiceImpl final : public v1::InfoService::CallbackService {
 public:
  explicit InfoServiceImpl(const ServiceDeps& deps) : deps_(deps) {}
  ServerUnaryReactor* GetServerInfo(CallbackServerContext* ctx, const v1::GetServerInfoRequest*,
                                    v1::GetServerInfoResponse* resp) override {
    const core::EngineFacts f = deps_.engine->Facts();
    resp->set_version(f.version);
    resp->set_device(f.device);
    resp->set_blas(f.blas);
    resp->set_torch_threads(f.torch_threads);
    resp->set_torch_version(f.torch_version);
    resp->set_max_points_per_query(f.max_points_per_query);
    resp->set_max_receive_message_bytes(deps_.max_receive_message_bytes);
    resp->set_data_dir(f.data_dir);
    resp->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - deps_.start_time));
    return Reply(ctx, absl::OkStatus());
  }

 private:
  const ServiceDeps deps_;
};

}  // namespace

std::vector<std::unique_ptr<grpc::Service>> MakeServices(const ServiceDeps& deps) {
  std::vector<std::unique_ptr<grpc::Service>> s;
  s.push_back(std::make_unique<ZooServiceImpl>(deps));
  s.push_back(std::make_unique<TrainingJobServiceImpl>(deps));
  s.push_back(std::make_unique<GradientServiceImpl>(deps));
  s.push_back(std::make_unique<AnalysisServiceImpl>());
  s.push_back(std::make_unique<EmbeddingServiceImpl>());
  s.push_back(std::make_unique<InfoServiceImpl>(deps));
  return s;
}

}  // namespace gradzoo::server
