#include "server/tenancy.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gradzoo::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const std::set<std::string>& NameFields() {
  static const auto* kFields = new std::set<std::string>{
      "name", "parent", "zoo", "zoos", "model", "models", "model_a", "model_b", "embedder"};
  return *kFields;
}

// The id after `prefix` up to the next '/', or "" when `value` does not start with `prefix`.
std::string IdAfter(const std::string& value, absl::string_view prefix) {
  if (!absl::StartsWith(value, prefix)) return "";
  const size_t end = value.find('/', prefix.size());
  return value.substr(prefix.size(),
                      end == std::string::npos ? std::string::npos : end - prefix.size());
}

}  // namespace

const char* Tenancy::Collection(Kind kind) { return kind == Kind::kZoo ? "zoos" : "embedders"; }

absl::Status Tenancy::NotFound(Kind kind, const std::string& id) {
  // The same words as core's own NOT_FOUND for a missing resource.
  if (kind == Kind::kZoo) return absl::NotFoundError(absl::StrCat("zoo \"zoos/", id, "\" not found"));
  return absl::NotFoundError(absl::StrCat("embedder \"", id, "\" not found"));
}

std::optional<core::Acl> Tenancy::AclOf(Kind kind, const std::string& id) const {
  return acl_->Get(Collection(kind), id);
}

bool Tenancy::CanRead(const Identity& who, Kind kind, const std::string& id) const {
  if (!enabled_ || who.is_admin()) return true;
  const std::optional<core::Acl> acl = AclOf(kind, id);
  if (!acl) return true;  // ownerless: readable by all
  return acl->owner == who.user ||
         std::binary_search(acl->readers.begin(), acl->readers.end(), who.user);
}

absl::Status Tenancy::CheckRead(const Identity& who, Kind kind, const std::string& id) const {
  return CanRead(who, kind, id) ? absl::OkStatus() : NotFound(kind, id);
}

absl::Status Tenancy::CheckWrite(const Identity& who, Kind kind, const std::string& id) const {
  if (!enabled_ || who.is_admin()) return absl::OkStatus();
  const std::optional<core::Acl> acl = AclOf(kind, id);
  if (!acl) {
    return absl::PermissionDeniedError(absl::StrCat(
        Collection(kind), "/", id,
        " has no owner (created before authentication was on): only an admin may change it"));
  }
  if (acl->owner == who.user) return absl::OkStatus();
  if (std::binary_search(acl->readers.begin(), acl->readers.end(), who.user)) {
    return absl::PermissionDeniedError(absl::StrCat(Collection(kind), "/", id, " is shared with ",
                                                    who.user, " read-only (owner: ", acl->owner,
                                                    ")"));
  }
  return NotFound(kind, id);
}

absl::Status Tenancy::Claim(const Identity& who, Kind kind, const std::string& id, bool exists) {
  if (!enabled_) return absl::OkStatus();
  const std::optional<core::Acl> acl = AclOf(kind, id);
  if (acl) {
    if (acl->owner == who.user) return absl::OkStatus();
    if (!who.is_admin()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "the name ", Collection(kind), "/", id,
          " is taken by another user (names are shared by all users); choose another"));
    }
    // An admin creating under a name a user holds acts for that user: the owner stays (so a
    // refused or failed creation changes nothing).
    return absl::OkStatus();
  } else if (exists && !who.is_admin()) {
    return absl::PermissionDeniedError(absl::StrCat(
        Collection(kind), "/", id,
        " has no owner (created before authentication was on): only an admin may replace it"));
  }
  core::Acl mine;
  mine.owner = who.user;
  return acl_->Put(Collection(kind), id, std::move(mine));
}

absl::Status Tenancy::Forget(Kind kind, const std::string& id) {
  if (!enabled_) return absl::OkStatus();
  return acl_->Erase(Collection(kind), id);
}

absl::StatusOr<core::Acl> Tenancy::Share(const Identity& who, const std::string& id,
                                         std::vector<std::string> readers) {
  if (!enabled_) {
    return absl::FailedPreconditionError(
        "sharing needs authentication: start the server with --tokens-file (without it every "
        "caller already sees every zoo)");
  }
  if (absl::Status s = CheckWrite(who, Kind::kZoo, id); !s.ok()) return s;
  std::optional<core::Acl> acl = AclOf(Kind::kZoo, id);
  core::Acl next;
  // An admin sharing an ownerless zoo becomes its owner (there must be one to share from).
  next.owner = acl ? acl->owner : who.user;
  next.readers = std::move(readers);
  if (absl::Status s = acl_->Put(Collection(Kind::kZoo), id, next); !s.ok()) return s;
  return *AclOf(Kind::kZoo, id);
}

bool Tenancy::CanSeeJob(const Identity& who, const std::string& owner) const {
  return !enabled_ || who.is_admin() || owner.empty() || owner == who.user;
}

absl::Status Tenancy::CheckRequest(const Identity& who, const Message& request) const {
  if (!enabled_ || who.is_admin()) return absl::OkStatus();
  const google::protobuf::Reflection* r = request.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(request, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(request, f); ++i) {
          if (absl::Status s = CheckRequest(who, r->GetRepeatedMessage(request, f, i)); !s.ok()) {
            return s;
          }
        }
      } else if (absl::Status s = CheckRequest(who, r->GetMessage(request, f)); !s.ok()) {
        return s;
      }
      continue;
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_STRING ||
        f->type() == FieldDescriptor::TYPE_BYTES || NameFields().count(f->name()) == 0) {
      continue;
    }
    const int n = f->is_repeated() ? r->FieldSize(request, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string value =
          f->is_repeated() ? r->GetRepeatedString(request, f, i) : r->GetString(request, f);
      if (std::string zoo = IdAfter(value, "zoos/"); !zoo.empty()) {
        if (absl::Status s = CheckRead(who, Kind::kZoo, zoo); !s.ok()) return s;
      }
      if (std::string emb = IdAfter(value, "embedders/"); !emb.empty()) {
        if (absl::Status s = CheckRead(who, Kind::kEmbedder, emb); !s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace gradzoo::server
