#include "server/services/common.h"

#include "core/util/status_macros.h"
#include "gradzoo/v1/zoo.grpc.pb.h"
#include "server/convert.h"

namespace gradzoo::server {
namespace {

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

}  // namespace

std::unique_ptr<grpc::Service> MakeZooService(const ServiceDeps& deps) { return std::make_unique<ZooServiceImpl>(deps); }

}  // namespace gradzoo::server
