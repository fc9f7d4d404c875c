#include <algorithm>
#include <memory>

#include "core/embed/embedder.h"
#include "core/util/status_macros.h"
#include "gradzoo/v1/embedding.grpc.pb.h"
#include "server/convert.h"
#include "server/convert_embedding.h"
#include "server/services/common.h"

namespace gradzoo::server {
namespace {

// Embedders live in the process-wide core::EmbedderRegistry of the engine's data directory
// (shared with the training-job service, which publishes into it).
class EmbeddingServiceImpl final : public v1::EmbeddingService::CallbackService {
 public:
  explicit EmbeddingServiceImpl(const ServiceDeps& deps)
      : deps_(deps), registry_(core::EmbedderRegistry::Shared(*deps.engine)) {}

  ServerUnaryReactor* GetEmbedder(CallbackServerContext* ctx, const v1::GetEmbedderRequest* req,
                                  v1::GetEmbedderResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto* reg, Registry());
      ASSIGN_OR_RETURN(std::string id, ParseEmbedderName(req->name(), "name"));
      ASSIGN_OR_RETURN(core::EmbedderInfo info, reg->Get(id));
      EmbedderToProto(info, resp->mutable_embedder());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* ListEmbedders(CallbackServerContext* ctx,
                                    const v1::ListEmbeddersRequest* req,
                                    v1::ListEmbeddersResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto* reg, Registry());
      ASSIGN_OR_RETURN(const int size, PageSize(req->page_size(), 50, 1000));
      ASSIGN_OR_RETURN(const int64_t offset, ParsePageToken(req->page_token()));
      std::vector<core::EmbedderInfo> all = reg->List();
      const Tenancy& tenancy = TenancyOf(deps_);
      all.erase(std::remove_if(all.begin(), all.end(),
                               [&](const core::EmbedderInfo& e) {
                                 return !tenancy.CanRead(*who, Tenancy::Kind::kEmbedder, e.id);
                               }),
                all.end());
      const int64_t n = static_cast<int64_t>(all.size());
      for (int64_t i = offset; i < n && i < offset + size; ++i) {
        EmbedderToProto(all[i], resp->add_embedders());
      }
      if (offset + size < n) resp->set_next_page_token(MakePageToken(offset + size));
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* DeleteEmbedder(CallbackServerContext* ctx,
                                     const v1::DeleteEmbedderRequest* req,
                                     v1::DeleteEmbedderResponse*) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto* reg, Registry());
      ASSIGN_OR_RETURN(std::string id, ParseEmbedderName(req->name(), "name"));
      RETURN_IF_ERROR(TenancyOf(deps_).CheckWrite(*who, Tenancy::Kind::kEmbedder, id));
      RETURN_IF_ERROR(reg->Delete(id));
      return TenancyOf(deps_).Forget(Tenancy::Kind::kEmbedder, id);
    }());
  }
  ServerUnaryReactor* EmbedModels(CallbackServerContext* ctx, const v1::EmbedModelsRequest* req,
                                  v1::EmbedModelsResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<Prepared<core::EmbedQuery>> p = Prepare(req->embedder(), EmbedQueryFromProto(*req));
    if (p.ok()) {
      absl::Status s = p->reg->ValidateEmbed(*deps_.engine, p->id, p->query);  // sizes first
      if (!s.ok()) p = s;
    }
    if (!p.ok()) return Reply(ctx, p.status());
    return OnQueryPool(deps_, ctx, [this, p = *std::move(p), resp](const core::CancelFn& cancel) {
      return [&]() -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<float> e, p.reg->Embed(*deps_.engine, p.id, p.query, cancel));
        const int64_t rows = static_cast<int64_t>(p.query.models.size());
        FloatTensorToProto({rows, static_cast<int64_t>(e.size()) / rows}, e.data(),
                           resp->mutable_embeddings());
        return absl::OkStatus();
      }();
    });
  }
  ServerUnaryReactor* FindNeighbors(CallbackServerContext* ctx,
                                    const v1::FindNeighborsRequest* req,
                                    v1::FindNeighborsResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<Prepared<core::NeighborQuery>> p =
        Prepare(req->embedder(), NeighborQueryFromProto(*req));
    if (!p.ok()) return Reply(ctx, p.status());
    // "Every zoo" means every zoo the caller may read: search them all (the embedder skips zoos
    // it cannot read), with k raised by the models of hidden zoos, then drop hidden neighbours.
    // The result is the exact top k among the caller's zoos.
    const Tenancy& tenancy = TenancyOf(deps_);
    const bool scope = p->query.zoos.empty() && tenancy.enabled() && !who->is_admin();
    const int k = p->query.k;
    if (scope) {
      for (const core::ZooEntry& z : deps_.engine->ListZoos()) {
        if (z.zoo && !tenancy.CanRead(*who, Tenancy::Kind::kZoo, z.id)) {
          p->query.k += static_cast<int>(z.zoo->models.size());
        }
      }
    }
    return OnQueryPool(deps_, ctx, [this, p = *std::move(p), resp, scope, k,
                                    who = *who](const core::CancelFn& cancel) {
      return [&]() -> absl::Status {
        ASSIGN_OR_RETURN(auto n, p.reg->FindNeighbors(*deps_.engine, p.id, p.query, cancel));
        if (scope) {
          const Tenancy& tenancy = TenancyOf(deps_);
          n.erase(std::remove_if(n.begin(), n.end(),
                                 [&](const core::EmbedNeighbor& x) {
                                   return !tenancy.CanRead(who, Tenancy::Kind::kZoo,
                                                           x.model.zoo_id);
                                 }),
                  n.end());
          if (static_cast<int>(n.size()) > k) n.resize(k);
        }
        NeighborsToProto(n, resp);
        return absl::OkStatus();
      }();
    });
  }
  ServerUnaryReactor* RunProbe(CallbackServerContext* ctx, const v1::RunProbeRequest* req,
                               v1::RunProbeResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    absl::StatusOr<Prepared<core::ProbeQuery>> p = Prepare(req->embedder(), ProbeQueryFromProto(*req));
    if (!p.ok()) return Reply(ctx, p.status());
    return OnQueryPool(deps_, ctx, [this, p = *std::move(p), resp](const core::CancelFn& cancel) {
      return [&]() -> absl::Status {
        ASSIGN_OR_RETURN(auto s, p.reg->Probe(*deps_.engine, p.id, p.query, cancel));
        ProbeScoresToProto(s, resp);
        return absl::OkStatus();
      }();
    });
  }

 private:
  template <typename Q>
  struct Prepared {
    core::EmbedderRegistry* reg = nullptr;
    std::string id;
    Q query;
  };
  absl::StatusOr<core::EmbedderRegistry*> Registry() const {
    if (!registry_.ok()) return registry_.status();
    return registry_->get();
  }
  template <typename Q>
  absl::StatusOr<Prepared<Q>> Prepare(const std::string& embedder, absl::StatusOr<Q> query) const {
    Prepared<Q> p;
    ASSIGN_OR_RETURN(p.reg, Registry());
    ASSIGN_OR_RETURN(p.id, ParseEmbedderName(embedder, "embedder"));
    ASSIGN_OR_RETURN(p.query, std::move(query));
    RETURN_IF_ERROR(p.reg->Get(p.id).status());
    return p;
  }

  const ServiceDeps deps_;
  const absl::StatusOr<std::shared_ptr<core::EmbedderRegistry>> registry_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeEmbeddingService(const ServiceDeps& deps) {
  return std::make_unique<EmbeddingServiceImpl>(deps);
}

}  // namespace gradzoo::server
