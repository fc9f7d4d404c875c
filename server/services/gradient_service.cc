#include "server/services/common.h"

#include <algorithm>
#include <atomic>

#include "core/util/status_macros.h"
#include "gradzoo/v1/gradient.grpc.pb.h"
#include "core/grad/graph.h"
#include "core/grad/layer_jacobians.h"
#include "core/grad/partition.h"
#include "core/grad/regions.h"
#include "server/convert.h"
#include "server/convert_gradient.h"

namespace gradzoo::server {
namespace {

// Computes a field on the query pool, then streams it chunk by chunk (one write in flight).
class FieldWriter final : public grpc::ServerWriteReactor<v1::ComputeGradientFieldResponse> {
 public:
  FieldWriter(const ServiceDeps& deps, CallbackServerContext* ctx,
              const v1::ComputeGradientFieldRequest& req)
      : deps_(deps),
        ctx_(ctx),
        budget_(deps, ctx),
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
    auto cancel = [this] { return cancelled_.load() || budget_.Expired(); };
    absl::StatusOr<std::vector<core::NamedField>> r =
        deps_.engine->ComputeGradientField(request_, cancel);
    if (!r.ok()) {
      Finish(ToGrpcStatus(budget_.Explain(r.status())));
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
  const CallBudget budget_;
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

// Computes adjacent-layer Jacobians on the query pool, then streams them chunk by chunk; the
// last message carries the summary.
class JacobianWriter final : public grpc::ServerWriteReactor<v1::ComputeLayerJacobiansResponse> {
 public:
  JacobianWriter(const ServiceDeps& deps, CallbackServerContext* ctx,
                 const v1::ComputeLayerJacobiansRequest& req)
      : deps_(deps), ctx_(ctx), budget_(deps, ctx), chunk_examples_(req.chunk_examples()) {
    absl::Status s = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(query_, LayerJacobianQueryFromProto(
                                   req, deps_.engine->options().max_points_per_query));
      return core::ValidateLayerJacobianQuery(*deps_.engine, query_).status();
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
    auto cancel = [this] { return cancelled_.load() || budget_.Expired(); };
    absl::StatusOr<core::LayerJacobians> r = core::ComputeLayerJacobians(*deps_.engine, query_, cancel);
    if (!r.ok()) {
      Finish(ToGrpcStatus(budget_.Explain(r.status())));
      return;
    }
    result_ = *std::move(r);
    chunk_ = LayerJacobianChunk(result_, chunk_examples_);
    WriteNext();
  }
  void WriteNext() {
    if (done_) {
      Finish(grpc::Status::OK);
      return;
    }
    // Without per-example matrices (summary_only, or no examples) one message carries it all.
    const int64_t remaining = result_.jacobians.empty() ? 0 : result_.n - offset_;
    const int64_t m = std::min(chunk_, remaining);
    const bool last = offset_ + m >= result_.n || result_.jacobians.empty();
    msg_.Clear();
    LayerJacobianChunkToProto(result_, offset_, m, last, &msg_);
    offset_ += m;
    done_ = last;
    StartWrite(&msg_);
  }

  const ServiceDeps deps_;
  CallbackServerContext* const ctx_;
  const CallBudget budget_;
  const int64_t chunk_examples_;
  core::LayerJacobianQuery query_;
  std::atomic<bool> cancelled_{false};
  core::LayerJacobians result_;
  int64_t chunk_ = 1;
  int64_t offset_ = 0;
  bool done_ = false;
  v1::ComputeLayerJacobiansResponse msg_;
};

class GradientServiceImpl final : public v1::GradientService::CallbackService {
 public:
  explicit GradientServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::ServerWriteReactor<v1::ComputeGradientFieldResponse>* ComputeGradientField(
      CallbackServerContext* ctx, const v1::ComputeGradientFieldRequest* req) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) {
      return new FinishedWriter<v1::ComputeGradientFieldResponse>(ToGrpcStatus(who.status()));
    }
    return new FieldWriter(deps_, ctx, *req);
  }
  ServerUnaryReactor* CountLinearRegions(CallbackServerContext* ctx,
                                         const v1::CountLinearRegionsRequest* req,
                                         v1::CountLinearRegionsResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<core::RegionQuery> query =
        RegionQueryFromProto(*req, deps_.engine->options().max_points_per_query);
    if (!query.ok()) return Reply(ctx, query.status());
    if (auto n = core::ValidateRegionQuery(*deps_.engine, *query); !n.ok()) {
      return Reply(ctx, n.status());
    }
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(query), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::RegionCounts c, core::CountLinearRegions(*engine, q, cancel));
      RegionCountsToProto(c, resp);
      return absl::OkStatus();
    });
  }
  ServerUnaryReactor* ComputeRegionPartition(CallbackServerContext* ctx,
                                             const v1::ComputeRegionPartitionRequest* req,
                                             v1::ComputeRegionPartitionResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<core::PartitionQuery> query = PartitionQueryFromProto(*req);
    if (!query.ok()) return Reply(ctx, query.status());
    if (absl::Status s = core::ValidatePartitionQuery(*deps_.engine, *query); !s.ok()) {
      return Reply(ctx, s);
    }
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(query), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::Partition p, core::ComputeRegionPartition(*engine, q, cancel));
      PartitionToProto(p, resp);
      return CheckResponseSize(*resp, "narrow the slice or lower max_regions");
    });
  }
  grpc::ServerWriteReactor<v1::ComputeLayerJacobiansResponse>* ComputeLayerJacobians(
      CallbackServerContext* ctx, const v1::ComputeLayerJacobiansRequest* req) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) {
      return new FinishedWriter<v1::ComputeLayerJacobiansResponse>(ToGrpcStatus(who.status()));
    }
    return new JacobianWriter(deps_, ctx, *req);
  }
  ServerUnaryReactor* BuildComputationalGraph(CallbackServerContext* ctx,
                                              const v1::BuildComputationalGraphRequest* req,
                                              v1::BuildComputationalGraphResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<core::GraphQuery> query =
        GraphQueryFromProto(*req, deps_.engine->options().max_points_per_query);
    if (!query.ok()) return Reply(ctx, query.status());
    if (absl::Status s = core::ValidateGraphQuery(*deps_.engine, *query); !s.ok()) {
      return Reply(ctx, s);
    }
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(query), resp, title = req->model(),
                                    dot = req->include_dot(), json = req->include_json()](
                                       const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::ComputationalGraph g, core::BuildComputationalGraph(*engine, q, cancel));
      GraphToProto(g, title, dot, json, resp);
      return CheckResponseSize(
          *resp, "lower max_edges, raise min_abs_weight, use fewer query_points or leave out "
                 "include_dot / include_json");
    });
  }
  ServerUnaryReactor* ScorePathRarity(CallbackServerContext* ctx,
                                      const v1::ScorePathRarityRequest* req,
                                      v1::ScorePathRarityResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<core::RarityQuery> query =
        RarityQueryFromProto(*req, deps_.engine->options().max_points_per_query);
    if (!query.ok()) return Reply(ctx, query.status());
    if (absl::Status s = core::ValidateRarityQuery(*deps_.engine, *query); !s.ok()) {
      return Reply(ctx, s);
    }
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(query), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::RarityResult r, core::ScorePathRarity(*engine, q, cancel));
      RarityToProto(r, resp);
      return CheckResponseSize(*resp, "score fewer query_points per call");
    });
  }

 private:
  const ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeGradientService(const ServiceDeps& deps) { return std::make_unique<GradientServiceImpl>(deps); }

}  // namespace gradzoo::server
