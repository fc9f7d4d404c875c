#include "server/services/common.h"

#include <algorithm>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "core/util/status_macros.h"
#include "gradzoo/v1/job.grpc.pb.h"
#include "core/embed/embedder.h"
#include "server/convert.h"
#include "server/convert_embedding.h"

namespace gradzoo::server {
namespace {

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

// What a job stores of its request: everything but an uploaded dataset (which can be large and
// is kept with the zoo instead).
std::string JobPayload(v1::ZooTraining zt) {
  zt.mutable_spec()->mutable_task()->clear_custom_inputs();
  zt.mutable_spec()->mutable_task()->clear_custom_targets();
  return zt.SerializeAsString();
}

class TrainingJobServiceImpl final : public v1::TrainingJobService::CallbackService {
 public:
  explicit TrainingJobServiceImpl(const ServiceDeps& deps)
      : deps_(deps), embedders_(core::EmbedderRegistry::Shared(*deps.engine)) {}

  ServerUnaryReactor* CreateTrainingJob(CallbackServerContext* ctx,
                                        const v1::CreateTrainingJobRequest* req,
                                        v1::CreateTrainingJobResponse* resp) override {
    // Reading the zoos an embedder trains on needs read access to each (Authorize).
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    Tenancy& tenancy = TenancyOf(deps_);
    const std::string owner = tenancy.enabled() ? who->user : "";
    return Reply(ctx, [&]() -> absl::Status {
      if (req->job().has_embedder_training()) {
        const v1::EmbedderTraining& et = req->job().embedder_training();
        ASSIGN_OR_RETURN(EmbedderTrainingWork w, EmbedderTrainingFromProto(et));
        if (!embedders_.ok()) return embedders_.status();
        std::shared_ptr<core::EmbedderRegistry> reg = *embedders_;
        RETURN_IF_ERROR(reg->ValidateTraining(*deps_.engine, w.id, w.zoos, w.options));
        ASSIGN_OR_RETURN(Claimed claim, Claim(*who, Tenancy::Kind::kEmbedder, w.id,
                                              reg->Get(w.id).ok()));
        core::TrainProgress initial;
        initial.total_steps = w.options.steps;
        core::Engine* engine = deps_.engine;
        absl::StatusOr<JobSnapshot> snap =
            deps_.jobs->Submit(JobKind::kEmbedderTraining, w.id, et.SerializeAsString(),
                               req->request_id(), initial,
                               [reg, engine, w](const core::ProgressFn& progress,
                                                const core::CancelFn& cancel) {
                                 return reg->Train(*engine, w.id, w.zoos, w.options, progress,
                                                   cancel)
                                     .status();
                               },
                               owner);
        if (!snap.ok()) return Unclaim(claim, snap.status());
        JobToProto(*snap, resp->mutable_job());
        return absl::OkStatus();
      }
      if (!req->job().has_zoo_training()) {
        return absl::InvalidArgumentError("job: set zoo_training (what the job should train)");
      }
      const v1::ZooTraining& zt = req->job().zoo_training();
      RETURN_IF_ERROR(core::ValidateResourceId(zt.zoo_id(), "job.zoo_training.zoo_id"));
      ASSIGN_OR_RETURN(core::ZooSpec spec, ZooSpecFromProto(zt.spec()));
      RETURN_IF_ERROR(CheckStoredBytesQuota(deps_, *who, 0));
      ASSIGN_OR_RETURN(Claimed claim, Claim(*who, Tenancy::Kind::kZoo, zt.zoo_id(),
                                            deps_.engine->GetZoo(zt.zoo_id()).ok()));
      absl::StatusOr<JobSnapshot> snap = deps_.jobs->SubmitZooTraining(
          zt.zoo_id(), spec, JobPayload(zt), req->request_id(), owner);
      if (!snap.ok()) return Unclaim(claim, snap.status());
      JobToProto(*snap, resp->mutable_job());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* GetTrainingJob(CallbackServerContext* ctx,
                                     const v1::GetTrainingJobRequest* req,
                                     v1::GetTrainingJobResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string id, ParseJobName(req->name()));
      ASSIGN_OR_RETURN(JobSnapshot snap, VisibleJob(ctx, id));
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
      ASSIGN_OR_RETURN(Identity who, IdentityOf(deps_.auth, ctx));
      std::vector<JobSnapshot> all = deps_.jobs->List();
      all.erase(std::remove_if(all.begin(), all.end(),
                               [&](const JobSnapshot& j) {
                                 return !TenancyOf(deps_).CanSeeJob(who, j.owner);
                               }),
                all.end());
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
      ASSIGN_OR_RETURN(JobSnapshot seen, VisibleJob(ctx, id));
      ASSIGN_OR_RETURN(Identity who, IdentityOf(deps_.auth, ctx));
      if (TenancyOf(deps_).enabled() && !who.is_admin() && seen.owner != who.user) {
        return absl::PermissionDeniedError(absl::StrCat(
            "trainingJobs/", id, " has no owner (submitted before authentication was on): "
            "only an admin may cancel it"));
      }
      ASSIGN_OR_RETURN(JobSnapshot snap, deps_.jobs->Cancel(id));
      JobToProto(snap, resp->mutable_job());
      return absl::OkStatus();
    }());
  }
  grpc::ServerWriteReactor<v1::WatchTrainingJobResponse>* WatchTrainingJob(
      CallbackServerContext* ctx, const v1::WatchTrainingJobRequest* req) override {
    absl::StatusOr<std::string> id = ParseJobName(req->name());
    absl::Status visible = id.ok() ? VisibleJob(ctx, *id).status() : id.status();
    if (!visible.ok()) {
      return new FinishedWriter<v1::WatchTrainingJobResponse>(ToGrpcStatus(visible));
    }
    return new WatchWriter(deps_.jobs, *id);
  }

 private:
  // A name reserved for a job's output; `fresh` when this call created the reservation.
  struct Claimed {
    Tenancy::Kind kind;
    std::string id;
    bool fresh = false;
  };
  absl::StatusOr<Claimed> Claim(const Identity& who, Tenancy::Kind kind, const std::string& id,
                                bool exists) {
    Tenancy& tenancy = TenancyOf(deps_);
    Claimed c{kind, id, tenancy.enabled() && !tenancy.AclOf(kind, id).has_value()};
    RETURN_IF_ERROR(tenancy.Claim(who, kind, id, exists));
    return c;
  }
  // Releases a fresh reservation when the submission failed; returns `why`.
  absl::Status Unclaim(const Claimed& c, absl::Status why) {
    if (c.fresh) (void)TenancyOf(deps_).Forget(c.kind, c.id);
    return why;
  }
  // The job if the caller may see it; the manager's own NOT_FOUND otherwise.
  absl::StatusOr<JobSnapshot> VisibleJob(CallbackServerContext* ctx, const std::string& id) {
    ASSIGN_OR_RETURN(Identity who, IdentityOf(deps_.auth, ctx));
    ASSIGN_OR_RETURN(JobSnapshot snap, deps_.jobs->Get(id));
    if (!TenancyOf(deps_).CanSeeJob(who, snap.owner)) {
      return absl::NotFoundError(absl::StrCat("job \"trainingJobs/", id.substr(0, 80),
                                              "\" not found"));
    }
    return snap;
  }

  const ServiceDeps deps_;
  // Where embedder-training jobs publish (shared with the embedding service).
  const absl::StatusOr<std::shared_ptr<core::EmbedderRegistry>> embedders_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeTrainingJobService(const ServiceDeps& deps) { return std::make_unique<TrainingJobServiceImpl>(deps); }

}  // namespace gradzoo::server
