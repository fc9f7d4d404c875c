#include "server/services/common.h"

#include <algorithm>

#include "core/store/zoo_codec.h"
#include "core/util/status_macros.h"
#include "gradzoo/v1/zoo.grpc.pb.h"
#include "server/convert.h"

namespace gradzoo::server {
namespace {

// Streams an archive in 1 MiB chunks; the last carries the SHA-256 of the whole.
class ChunkWriter final : public grpc::ServerWriteReactor<v1::ExportZooResponse> {
 public:
  explicit ChunkWriter(std::string archive)
      : archive_(std::move(archive)), sha_(core::Sha256Hex(archive_)) {
    WriteNext();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  static constexpr size_t kChunk = 1 << 20;
  void WriteNext() {
    if (offset_ >= archive_.size() && offset_ > 0) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min(kChunk, archive_.size() - offset_);
    msg_.Clear();
    msg_.set_chunk(archive_.data() + offset_, n);
    offset_ += n;
    if (offset_ >= archive_.size()) {
      msg_.set_sha256(sha_);
      offset_ = std::max<size_t>(offset_, 1);  // an empty archive still ends
    }
    StartWrite(&msg_);
  }
  const std::string archive_;
  const std::string sha_;
  size_t offset_ = 0;
  v1::ExportZooResponse msg_;
};

// Collects an uploaded archive (bounded size), then imports it on the query pool.
class ArchiveReader final : public grpc::ServerReadReactor<v1::ImportZooRequest> {
 public:
  ArchiveReader(const ServiceDeps& deps, v1::ImportZooResponse* resp) : deps_(deps), resp_(resp) {
    StartRead(&msg_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // client finished sending
      if (!deps_.queries->TrySchedule([this] { Import(); })) {
        Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "the query queue is full; retry in a few seconds"));
      }
      return;
    }
    if (first_) {
      name_ = msg_.name();
      first_ = false;
    }
    if (archive_.size() + msg_.chunk().size() > kMaxArchiveBytes) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("archives larger than ", kMaxArchiveBytes >> 20,
                                       " MiB are refused")));
      return;
    }
    archive_.append(msg_.chunk());
    StartRead(&msg_);
  }
  void OnDone() override { delete this; }

 private:
  static constexpr size_t kMaxArchiveBytes = size_t{1} << 30;
  void Import() {
    absl::Status s = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string id, ParseZooName(name_, "name"));
      ASSIGN_OR_RETURN(auto zoo, deps_.engine->ImportZoo(id, archive_));
      ZooToProto(*zoo, resp_->mutable_zoo());
      return absl::OkStatus();
    }();
    archive_.clear();
    Finish(ToGrpcStatus(s));
  }
  const ServiceDeps deps_;
  v1::ImportZooResponse* const resp_;
  v1::ImportZooRequest msg_;
  bool first_ = true;
  std::string name_;
  std::string archive_;
};

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
  ServerUnaryReactor* ImportModel(CallbackServerContext* ctx, const v1::ImportModelRequest* req,
                                  v1::ImportModelResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string zoo_id, ParseZooName(req->parent(), "parent"));
      ASSIGN_OR_RETURN(core::ModelRecord model, ModelFromProto(req->model()));
      ASSIGN_OR_RETURN(auto imported, deps_.engine->ImportModel(zoo_id, std::move(model)));
      for (const core::ModelRecord& m : imported.first->models) {
        if (m.id == imported.second) ModelToProto(zoo_id, m, false, resp->mutable_model());
      }
      return absl::OkStatus();
    }());
  }
  grpc::ServerWriteReactor<v1::ExportZooResponse>* ExportZoo(
      CallbackServerContext*, const v1::ExportZooRequest* req) override {
    absl::StatusOr<std::string> archive = [&]() -> absl::StatusOr<std::string> {
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      return deps_.engine->ExportZoo(id);
    }();
    if (!archive.ok()) {
      return new FinishedWriter<v1::ExportZooResponse>(ToGrpcStatus(archive.status()));
    }
    return new ChunkWriter(*std::move(archive));
  }
  grpc::ServerReadReactor<v1::ImportZooRequest>* ImportZoo(CallbackServerContext*,
                                                           v1::ImportZooResponse* resp) override {
    return new ArchiveReader(deps_, resp);
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
