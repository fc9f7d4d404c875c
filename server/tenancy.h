// Tenancy: who may see and change which zoos, embedders and jobs (issue 8, "Access").
//
//   - A zoo or embedder belongs to the user whose call created it (training job, ImportZoo,
//     ImportModel into a new zoo; embedder-training job); a job to the user who submitted it.
//     Zoo and embedder owners live in DIR/acl.sqlite (core/store/acl_store.h), job owners in
//     the job log (core/store/job_log.h).
//   - The owner may share a zoo read-only with named users (ZooService.ShareZoo; the list is
//     replaced each time, empty = private again). Readers may query it (fields, analyses,
//     export, embeddings) but not delete, import into, re-share or retrain it.
//   - Users without access get NOT_FOUND with the same message as for a missing resource, so
//     names do not leak through errors; list calls return only what the caller may read.
//     Exception: names are one namespace, so creating a resource whose name another user holds
//     answers ALREADY_EXISTS ("name taken").
//   - An admin (tokens file role `admin`) reads and changes everything.
//   - Resources without an owner (created before tenancy, or while authentication was off)
//     are owned by the administrators and readable by every user.
//   - With authentication off (no --tokens-file) nothing is checked or recorded: every caller
//     is the local admin, as before tenancy.
//
// Thread-safe: the AclStore is; this class holds no other state.
#ifndef GRADZOO_SERVER_TENANCY_H_
#define GRADZOO_SERVER_TENANCY_H_

#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/store/acl_store.h"
#include "server/auth.h"

namespace gradzoo::server {

class Tenancy {
 public:
  enum class Kind { kZoo, kEmbedder };
  // `acl` must outlive this object. `enabled` is false when authentication is off.
  Tenancy(core::AclStore* acl, bool enabled) : acl_(acl), enabled_(enabled) {}
  bool enabled() const { return enabled_; }

  bool CanRead(const Identity& who, Kind kind, const std::string& id) const;
  // NOT_FOUND (the message of a missing resource) unless `who` may read it.
  absl::Status CheckRead(const Identity& who, Kind kind, const std::string& id) const;
  // Changing a resource (delete, import into, share): its owner or an admin. NOT_FOUND for
  // users who cannot read it; PERMISSION_DENIED for readers and for ownerless resources.
  absl::Status CheckWrite(const Identity& who, Kind kind, const std::string& id) const;
  // Records `who` as the owner of a resource it is creating (before the creation starts, so
  // that the name is reserved). Keeps an existing row of the same owner (its readers too); an
  // admin creating under a name a user holds leaves that user the owner.
  // ALREADY_EXISTS when another user owns the name; PERMISSION_DENIED when `exists` and the
  // resource has no owner (only an admin may replace those).
  absl::Status Claim(const Identity& who, Kind kind, const std::string& id, bool exists);
  // Drops the ownership row of a deleted resource.
  absl::Status Forget(Kind kind, const std::string& id);
  // Replaces the readers of zoo `id` (CheckWrite first). Returns the new ACL.
  absl::StatusOr<core::Acl> Share(const Identity& who, const std::string& id,
                                  std::vector<std::string> readers);
  // The stored owner and readers, if any.
  std::optional<core::Acl> AclOf(Kind kind, const std::string& id) const;

  // Jobs: visible to their owner and admins; ownerless jobs to all.
  bool CanSeeJob(const Identity& who, const std::string& owner) const;

  // CheckRead for every zoo, model and embedder name the request mentions: string fields (at
  // any depth, repeated included) named name, parent, zoo, zoos, model, models, model_a,
  // model_b or embedder whose value is "zoos/{id}[/...]" or "embedders/{id}".
  absl::Status CheckRequest(const Identity& who, const google::protobuf::Message& request) const;

 private:
  static const char* Collection(Kind kind);
  static absl::Status NotFound(Kind kind, const std::string& id);
  core::AclStore* const acl_;
  const bool enabled_;
};

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_TENANCY_H_
