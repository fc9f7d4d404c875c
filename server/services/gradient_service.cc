#include "server/services/common.h"

#include <algorithm>
#include <atomic>

#include "core/util/status_macros.h"
#include "gradzoo/v1/gradient.grpc.pb.h"
#include "server/convert.h"

namespace gradzoo::server {
namespace {

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

}  // namespace

std::unique_ptr<grpc::Service> MakeGradientService(const ServiceDeps& deps) { return std::make_unique<GradientServiceImpl>(deps); }

}  // namespace gradzoo::server
