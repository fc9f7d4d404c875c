// AnalysisService: each handler converts the request, validates its sizes against the engine
// (cheap, inline), then runs the one core/analysis call on the query pool with the call's
// cancellation, converts the result and finishes the call. Zoo-wide scoring runs the same way
// (a few seconds for a 30-model zoo; the call's deadline and cancellation bound it).
#include "core/util/status_macros.h"
#include "gradzoo/v1/analysis.grpc.pb.h"
#include "server/convert_analysis.h"
#include "server/convert_gradient.h"
#include "server/services/common.h"

namespace gradzoo::server {
namespace {

class AnalysisServiceImpl final : public v1::AnalysisService::CallbackService {
 public:
  explicit AnalysisServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  ServerUnaryReactor* ScoreOrthogonality(CallbackServerContext* ctx,
                                         const v1::ScoreOrthogonalityRequest* req,
                                         v1::ScoreOrthogonalityResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    auto q = ModelOrthogonalityQueryFromProto(*req, max_points());
    if (!q.ok()) return Reply(ctx, q.status());
    if (absl::Status s = core::ValidateModelOrthogonality(*deps_.engine, *q); !s.ok()) {
      return Reply(ctx, s);
    }
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(q), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::OrthogonalityScore s, core::ScoreModelOrthogonality(*engine, q, cancel));
      OrthogonalityScoreToProto(s, q.options.method, resp);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* ScoreZooOrthogonality(CallbackServerContext* ctx,
                                            const v1::ScoreZooOrthogonalityRequest* req,
                                            v1::ScoreZooOrthogonalityResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    auto q = ZooOrthogonalityQueryFromProto(*req, max_points());
    if (!q.ok()) return Reply(ctx, q.status());
    if (absl::Status s = core::ValidateZooOrthogonality(*deps_.engine, *q); !s.ok()) {
      return Reply(ctx, s);
    }
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(q), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::ZooOrthogonalityResult r, core::ScoreZooOrthogonality(*engine, q, cancel));
      ZooOrthogonalityToProto(r, q.zoo_id, q.options.method, resp);
      return CheckResponseSize(*resp, "score fewer layers per call");
    });
  }

  ServerUnaryReactor* ComputeLayerPca(CallbackServerContext* ctx,
                                      const v1::ComputeLayerPcaRequest* req,
                                      v1::ComputeLayerPcaResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    auto q = LayerPcaQueryFromProto(*req, max_points());
    if (!q.ok()) return Reply(ctx, q.status());
    if (absl::Status s = core::ValidateLayerPca(*deps_.engine, *q); !s.ok()) return Reply(ctx, s);
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(q), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::LayerPcaResult r, core::ComputeLayerPca(*engine, q, cancel));
      LayerPcaToProto(r, q.components, resp);
      return CheckResponseSize(*resp, "ask for fewer components");
    });
  }

  ServerUnaryReactor* ComputePlsr(CallbackServerContext* ctx, const v1::ComputePlsrRequest* req,
                                  v1::ComputePlsrResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    auto q = PlsrQueryFromProto(*req, max_points());
    if (!q.ok()) return Reply(ctx, q.status());
    if (absl::Status s = core::ValidatePlsr(*deps_.engine, *q); !s.ok()) return Reply(ctx, s);
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(q), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::LayerPlsrResult r, core::ComputeLayerPlsr(*engine, q, cancel));
      PlsrToProto(r, resp);
      return CheckResponseSize(*resp, "fit fewer components or target components");
    });
  }

  ServerUnaryReactor* ComputeCka(CallbackServerContext* ctx, const v1::ComputeCkaRequest* req,
                                 v1::ComputeCkaResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    auto q = CkaQueryFromProto(*req, max_points());
    if (!q.ok()) return Reply(ctx, q.status());
    if (absl::Status s = core::ValidateCka(*deps_.engine, *q); !s.ok()) return Reply(ctx, s);
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(q), resp](const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::CkaResult r, core::ComputeLayerCka(*engine, q, cancel));
      CkaToProto(r, resp);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* ComputeScaffoldGradients(CallbackServerContext* ctx,
                                               const v1::ComputeScaffoldGradientsRequest* req,
                                               v1::ComputeScaffoldGradientsResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    auto q = ScaffoldQueryFromProto(*req, max_points());
    if (!q.ok()) return Reply(ctx, q.status());
    if (absl::Status s = core::ValidateScaffold(*deps_.engine, *q); !s.ok()) return Reply(ctx, s);
    const core::Engine* engine = deps_.engine;
    return OnQueryPool(deps_, ctx, [engine, q = *std::move(q), resp, k = req->gradient_components()](
                                          const core::CancelFn& cancel) -> absl::Status {
      ASSIGN_OR_RETURN(core::ScaffoldResult r, core::ComputeScaffold(*engine, q, cancel));
      ScaffoldToProto(r, k, resp);
      return CheckResponseSize(*resp, "use fewer points or leave out include_gradients");
    });
  }

 private:
  int64_t max_points() const { return deps_.engine->options().max_points_per_query; }
  const ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAnalysisService(const ServiceDeps& deps) {
  return std::make_unique<AnalysisServiceImpl>(deps);
}

}  // namespace gradzoo::server
