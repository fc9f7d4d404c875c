// Shared pieces of the gRPC service implementations (server/services/*.cc). Internal to
// server/: handlers only translate (STYLE rule 2); these helpers finish calls uniformly.
#ifndef GRADZOO_SERVER_SERVICES_COMMON_H_
#define GRADZOO_SERVER_SERVICES_COMMON_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/services.h"
#include "server/status_map.h"

namespace gradzoo::server {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Tenancy rules of the call (server/tenancy.h); a disabled one when deps has none.
inline Tenancy& TenancyOf(const ServiceDeps& deps) {
  static Tenancy* const kOff = new Tenancy(nullptr, false);
  return deps.tenancy != nullptr ? *deps.tenancy : *kOff;
}

// The caller of `ctx`, after checking it may read every zoo, model and embedder `request`
// names (NOT_FOUND otherwise). One line at the top of each handler.
inline absl::StatusOr<Identity> Authorize(const ServiceDeps& deps, CallbackServerContext* ctx,
                                          const google::protobuf::Message& request) {
  absl::StatusOr<Identity> who = IdentityOf(deps.auth, ctx);
  if (!who.ok()) return who.status();
  if (absl::Status s = TenancyOf(deps).CheckRequest(*who, request); !s.ok()) return s;
  return who;
}

// RESOURCE_EXHAUSTED naming the quota when the zoos `who` owns (every zoo without
// authentication) already hold ServiceDeps::max_stored_bytes_per_user bytes, or would with
// `adding` more. Checked before a zoo is created, so one zoo may take a user past the quota.
inline absl::Status CheckStoredBytesQuota(const ServiceDeps& deps, const Identity& who,
                                          int64_t adding) {
  const int64_t limit = deps.max_stored_bytes_per_user;
  if (limit <= 0) return absl::OkStatus();
  const Tenancy& tenancy = TenancyOf(deps);
  int64_t used = 0;
  for (const core::ZooEntry& e : deps.engine->ListZoos()) {
    if (!e.zoo) continue;
    if (tenancy.enabled()) {
      std::optional<core::Acl> acl = tenancy.AclOf(Tenancy::Kind::kZoo, e.id);
      if (!acl || acl->owner != who.user) continue;
    }
    used += e.zoo->stored_bytes;
  }
  // A creation of known size must fit; one of unknown size (a training job) needs room left.
  const bool over = adding > 0 ? used + adding > limit : used >= limit;
  if (!over) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "quota max_stored_bytes_per_user reached: ", who.user, " owns zoos of ", used,
      " bytes", adding > 0 ? absl::StrCat(" and this adds ", adding) : std::string(),
      " (limit ", limit, "); delete zoos you no longer need, then retry"));
}

// The computation budget of one call: until the client cancels or goes away, or its deadline
// passes (gRPC then cancels the call: ctx->IsCancelled()), or, when the client set no deadline,
// until ServiceDeps::default_deadline after the call arrived. Core loops poll AsCancelFn()
// between chunks of work, so an expired call stops within one chunk. Copyable; `ctx` must
// outlive the computation (it does: the call finishes only after it).
class CallBudget {
 public:
  CallBudget(const ServiceDeps& deps, const CallbackServerContext* ctx)
      : ctx_(ctx), budget_(deps.default_deadline), end_(absl::InfiniteFuture()) {
    const bool client_deadline = ctx->deadline() != std::chrono::system_clock::time_point::max();
    if (!client_deadline && budget_ > absl::ZeroDuration()) end_ = absl::Now() + budget_;
  }
  bool Expired() const {
    return ctx_->IsCancelled() || (end_ != absl::InfiniteFuture() && absl::Now() >= end_);
  }
  core::CancelFn AsCancelFn() const {
    return [b = *this] { return b.Expired(); };
  }
  // `s`, or DEADLINE_EXCEEDED with advice when the server's default budget ran out.
  absl::Status Explain(absl::Status s) const {
    if (s.ok() || end_ == absl::InfiniteFuture() || absl::Now() < end_ || ctx_->IsCancelled()) {
      return s;
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "the server's default budget of ", absl::FormatDuration(budget_),
        " per query (--default-deadline) ran out; set a deadline on the call to allow longer, "
        "or ask for fewer points or models"));
  }

 private:
  const CallbackServerContext* ctx_;
  absl::Duration budget_;
  absl::Time end_;
};

// Finishes a unary call with `status`, inline.
inline ServerUnaryReactor* Reply(CallbackServerContext* ctx, const absl::Status& status) {
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

// Runs `compute(cancel)` for a unary call on the query pool and finishes the call with its
// status; RESOURCE_EXHAUSTED at once when the queue is full.
template <typename Fn>
inline ServerUnaryReactor* OnQueryPool(const ServiceDeps& deps, CallbackServerContext* ctx, Fn compute) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const CallBudget budget(deps, ctx);
  const bool scheduled = deps.queries->TrySchedule([reactor, budget, compute = std::move(compute)] {
    reactor->Finish(ToGrpcStatus(budget.Explain(compute(budget.AsCancelFn()))));
  });
  if (!scheduled) {
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "the query queue is full; retry in a few seconds"));
  }
  return reactor;
}

// One factory per service (server/services/<name>_service.cc).
std::unique_ptr<grpc::Service> MakeZooService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeTrainingJobService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeGradientService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeAnalysisService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeEmbeddingService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeInfoService(const ServiceDeps& deps);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_SERVICES_COMMON_H_
