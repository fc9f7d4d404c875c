// AclStore: who owns each zoo and embedder, and whom the owner shares it with (read-only), in
// DIR/acl.sqlite:
//
//   table acl(kind TEXT, id TEXT, owner TEXT, readers TEXT, PRIMARY KEY (kind, id))
//
// `kind` is the resource collection ("zoos", "embedders"); `readers` the user names joined by
// ','. The store only records; the policy (who may read or change what) is the server's
// (server/tenancy.h). A resource without a row predates tenancy (or was created with
// authentication off); the server treats it as owned by the administrators and readable by all.
//
// Every write is durable (synchronous=FULL) before it returns, and mirrored in memory so that
// lookups do not touch the disk. Thread-safe.
#ifndef GRADZOO_CORE_STORE_ACL_STORE_H_
#define GRADZOO_CORE_STORE_ACL_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;

namespace gradzoo::core {

struct Acl {
  std::string owner;
  std::vector<std::string> readers;  // sorted, distinct, without the owner
};

class AclStore {
 public:
  // Opens or creates DIR/acl.sqlite (DIR is created if missing); empty `data_dir` keeps the
  // table in memory only. FAILED_PRECONDITION when the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<AclStore>> Open(const std::string& data_dir);
  ~AclStore();
  AclStore(const AclStore&) = delete;
  AclStore& operator=(const AclStore&) = delete;

  std::optional<Acl> Get(const std::string& kind, const std::string& id) const;
  // Inserts or replaces the row (readers are sorted and de-duplicated, the owner dropped).
  absl::Status Put(const std::string& kind, const std::string& id, Acl acl);
  // Removes the row if any.
  absl::Status Erase(const std::string& kind, const std::string& id);

 private:
  explicit AclStore(sqlite3* db) : db_(db) {}
  absl::Status LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);  // null: memory only
  std::map<std::pair<std::string, std::string>, Acl> rows_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_STORE_ACL_STORE_H_
