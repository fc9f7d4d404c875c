#include "server/services/common.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"

#include "core/store/zoo_codec.h"
#include "core/util/status_macros.h"
#include "gradzoo/v1/zoo.grpc.pb.h"
#include "server/convert.h"

namespace gradzoo::server {
namespace {

// Owner and readers of zoo `id` into `out` (Zoo.owner, Zoo.readers), when it has an owner.
void FillAcl(const ServiceDeps& deps, const std::string& id, v1::Zoo* out) {
  std::optional<core::Acl> acl = TenancyOf(deps).AclOf(Tenancy::Kind::kZoo, id);
  if (!acl) return;
  out->set_owner(acl->owner);
  out->clear_readers();
  for (const std::string& r : acl->readers) out->add_readers(r);
}

// INVALID_ARGUMENT unless `name` could be a user of the tokens file (server/auth.h).
absl::Status ValidateReader(const std::string& name, int index) {
  bool ok = !name.empty() && name.size() <= 64 && absl::ascii_isalnum(name[0]);
  for (char c : name) ok = ok && (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "readers[", index, "] \"", name.substr(0, 80),
      "\" is not a user name (1-64 characters of [A-Za-z0-9._-], starting with a letter or digit)"));
}

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
  ArchiveReader(const ServiceDeps& deps, Identity who, v1::ImportZooResponse* resp)
      : deps_(deps), who_(std::move(who)), resp_(resp) {
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
      RETURN_IF_ERROR(CheckStoredBytesQuota(deps_, who_, static_cast<int64_t>(archive_.size())));
      Tenancy& tenancy = TenancyOf(deps_);
      const bool fresh = tenancy.enabled() && !tenancy.AclOf(Tenancy::Kind::kZoo, id);
      RETURN_IF_ERROR(tenancy.Claim(who_, Tenancy::Kind::kZoo, id, deps_.engine->GetZoo(id).ok()));
      absl::StatusOr<std::shared_ptr<const core::Zoo>> zoo = deps_.engine->ImportZoo(id, archive_);
      if (!zoo.ok()) {
        if (fresh) (void)tenancy.Forget(Tenancy::Kind::kZoo, id);
        return zoo.status();
      }
      ZooToProto(**zoo, resp_->mutable_zoo());
      FillAcl(deps_, id, resp_->mutable_zoo());
      return absl::OkStatus();
    }();
    archive_.clear();
    Finish(ToGrpcStatus(s));
  }
  const ServiceDeps deps_;
  const Identity who_;
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
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    return Reply(ctx, DoListZoos(*who, *req, resp));
  }
  ServerUnaryReactor* GetZoo(CallbackServerContext* ctx, const v1::GetZooRequest* req,
                             v1::GetZooResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      RETURN_IF_ERROR(Authorize(deps_, ctx, *req).status());
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      ASSIGN_OR_RETURN(auto zoo, deps_.engine->GetZoo(id));
      ZooToProto(*zoo, resp->mutable_zoo());
      FillAcl(deps_, id, resp->mutable_zoo());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* DeleteZoo(CallbackServerContext* ctx, const v1::DeleteZooRequest* req,
                                v1::DeleteZooResponse*) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Identity who, Authorize(deps_, ctx, *req));
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      // A missing zoo stays NOT_FOUND; a corrupt one (DATA_LOSS) may still be deleted.
      if (absl::Status s = deps_.engine->GetZoo(id).status(); absl::IsNotFound(s)) return s;
      RETURN_IF_ERROR(TenancyOf(deps_).CheckWrite(who, Tenancy::Kind::kZoo, id));
      RETURN_IF_ERROR(deps_.engine->DeleteZoo(id));
      return TenancyOf(deps_).Forget(Tenancy::Kind::kZoo, id);
    }());
  }
  ServerUnaryReactor* ListModels(CallbackServerContext* ctx, const v1::ListModelsRequest* req,
                                 v1::ListModelsResponse* resp) override {
    absl::StatusOr<Identity> who = Authorize(deps_, ctx, *req);
    if (!who.ok()) return Reply(ctx, who.status());
    return Reply(ctx, DoListModels(*req, resp));
  }
  ServerUnaryReactor* GetModel(CallbackServerContext* ctx, const v1::GetModelRequest* req,
                               v1::GetModelResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      RETURN_IF_ERROR(Authorize(deps_, ctx, *req).status());
      ASSIGN_OR_RETURN(core::ModelRef ref, ParseModelName(req->name(), "name"));
      ASSIGN_OR_RETURN(auto found, deps_.engine->GetModel(ref));
      ModelToProto(ref.zoo_id, *found.second, /*include_weights=*/true, resp->mutable_model());
      return absl::OkStatus();
    }());
  }
  ServerUnaryReactor* ImportModel(CallbackServerContext* ctx, const v1::ImportModelRequest* req,
                                  v1::ImportModelResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Identity who, Authorize(deps_, ctx, *req));
      ASSIGN_OR_RETURN(std::string zoo_id, ParseZooName(req->parent(), "parent"));
      ASSIGN_OR_RETURN(core::ModelRecord model, ModelFromProto(req->model()));
      // Into an existing zoo: a change (owner or admin). Otherwise it creates one: a claim.
      Tenancy& tenancy = TenancyOf(deps_);
      const bool exists = deps_.engine->GetZoo(zoo_id).ok();
      const bool fresh = tenancy.enabled() && !exists && !tenancy.AclOf(Tenancy::Kind::kZoo, zoo_id);
      RETURN_IF_ERROR(CheckStoredBytesQuota(deps_, who, 0));
      if (exists) {
        RETURN_IF_ERROR(tenancy.CheckWrite(who, Tenancy::Kind::kZoo, zoo_id));
      } else {
        RETURN_IF_ERROR(tenancy.Claim(who, Tenancy::Kind::kZoo, zoo_id, false));
      }
      absl::StatusOr<std::pair<std::shared_ptr<const core::Zoo>, std::string>> imported =
          deps_.engine->ImportModel(zoo_id, std::move(model));
      if (!imported.ok()) {
        if (fresh) (void)tenancy.Forget(Tenancy::Kind::kZoo, zoo_id);
        return imported.status();
      }
      for (const core::ModelRecord& m : imported->first->models) {
        if (m.id == imported->second) ModelToProto(zoo_id, m, false, resp->mutable_model());
      }
      return absl::OkStatus();
    }());
  }
  grpc::ServerWriteReactor<v1::ExportZooResponse>* ExportZoo(
      CallbackServerContext* ctx, const v1::ExportZooRequest* req) override {
    absl::StatusOr<std::string> archive = [&]() -> absl::StatusOr<std::string> {
      RETURN_IF_ERROR(Authorize(deps_, ctx, *req).status());
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      return deps_.engine->ExportZoo(id);
    }();
    if (!archive.ok()) {
      return new FinishedWriter<v1::ExportZooResponse>(ToGrpcStatus(archive.status()));
    }
    return new ChunkWriter(*std::move(archive));
  }
  grpc::ServerReadReactor<v1::ImportZooRequest>* ImportZoo(CallbackServerContext* ctx,
                                                           v1::ImportZooResponse* resp) override {
    absl::StatusOr<Identity> who = IdentityOf(deps_.auth, ctx);
    if (!who.ok()) return new FinishedReader<v1::ImportZooRequest>(ToGrpcStatus(who.status()));
    return new ArchiveReader(deps_, *std::move(who), resp);
  }
  ServerUnaryReactor* ShareZoo(CallbackServerContext* ctx, const v1::ShareZooRequest* req,
                               v1::ShareZooResponse* resp) override {
    return Reply(ctx, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Identity who, Authorize(deps_, ctx, *req));
      ASSIGN_OR_RETURN(std::string id, ParseZooName(req->name(), "name"));
      std::vector<std::string> readers(req->readers().begin(), req->readers().end());
      if (readers.size() > 1000) {
        return absl::InvalidArgumentError("readers: at most 1000 users");
      }
      for (size_t i = 0; i < readers.size(); ++i) {
        RETURN_IF_ERROR(ValidateReader(readers[i], static_cast<int>(i)));
      }
      ASSIGN_OR_RETURN(auto zoo, deps_.engine->GetZoo(id));
      RETURN_IF_ERROR(TenancyOf(deps_).Share(who, id, std::move(readers)).status());
      ZooToProto(*zoo, resp->mutable_zoo());
      FillAcl(deps_, id, resp->mutable_zoo());
      return absl::OkStatus();
    }());
  }

 private:
  absl::Status DoListZoos(const Identity& who, const v1::ListZoosRequest& req,
                          v1::ListZoosResponse* resp) {
    ASSIGN_OR_RETURN(const int size, PageSize(req.page_size(), 50, 1000));
    ASSIGN_OR_RETURN(const int64_t offset, ParsePageToken(req.page_token()));
    std::vector<core::ZooEntry> all = deps_.engine->ListZoos();
    const Tenancy& tenancy = TenancyOf(deps_);
    all.erase(std::remove_if(all.begin(), all.end(),
                             [&](const core::ZooEntry& e) {
                               return !tenancy.CanRead(who, Tenancy::Kind::kZoo, e.id);
                             }),
              all.end());
    for (int64_t i = offset; i < static_cast<int64_t>(all.size()) && i < offset + size; ++i) {
      v1::Zoo* z = resp->add_zoos();
      if (all[i].zoo) {
        ZooToProto(*all[i].zoo, z);
      } else {
        z->set_name(ZooName(all[i].id));
        z->set_state(v1::ZOO_STATE_CORRUPT);
      }
      FillAcl(deps_, all[i].id, z);
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
