// JobLog: durable records of jobs (training, embedder training) in DIR/jobs.sqlite, so that a
// restarted server still lists them and can mark the ones it interrupted as FAILED.
//
// A record is written on every state change (not on progress updates). Payloads are opaque
// bytes owned by the caller (the server stores the job's request there). Thread-safe.
//
// `owner` (the submitting user, for tenancy) was added later: a log written before it is
// upgraded in place on Open (ALTER TABLE ... ADD COLUMN), its jobs reading back with an empty
// owner (which the server treats as owned by the administrators and visible to all).
#ifndef GRADZOO_CORE_STORE_JOB_LOG_H_
#define GRADZOO_CORE_STORE_JOB_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;

namespace gradzoo::core {

struct JobRecord {
  std::string id;
  int kind = 0;   // caller-defined
  int state = 0;  // caller-defined
  std::string target;
  std::string request_id;
  std::string error;
  std::string payload;
  int64_t create_ms = 0;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  std::string owner;  // "" = none (jobs from before tenancy, or authentication off)
};

class JobLog {
 public:
  // Opens or creates DIR/jobs.sqlite (DIR must exist). FAILED_PRECONDITION on failure.
  static absl::StatusOr<std::unique_ptr<JobLog>> Open(const std::string& data_dir);
  ~JobLog();
  JobLog(const JobLog&) = delete;
  JobLog& operator=(const JobLog&) = delete;

  // Inserts or replaces the record with this id (durably: synchronous=FULL).
  absl::Status Put(const JobRecord& record);
  // Every record, oldest first.
  absl::StatusOr<std::vector<JobRecord>> LoadAll();
  // Removes records whose id is in `ids`.
  absl::Status Remove(const std::vector<std::string>& ids);

 private:
  explicit JobLog(sqlite3* db) : db_(db) {}
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_STORE_JOB_LOG_H_
