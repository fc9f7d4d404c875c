// JobManager: long-running jobs (zoo training, embedder training) as explicit state machines,
// run on their own worker pool so that queries stay fast while training runs (STYLE rules 5, 6).
//
//   QUEUED ──worker picks it──> RUNNING ──ok──> SUCCEEDED
//     │                           │ └──error──> FAILED
//     └──Cancel──> CANCELLING <───┘ Cancel
//                      └──worker notices (or it was still queued)──> CANCELLED
//
// SUCCEEDED, FAILED and CANCELLED are final. A job in CANCELLING whose work finished anyway
// still ends CANCELLED and publishes nothing (the work polls the cancel flag before it saves).
// The same states are JobState in proto/gradzoo/v1/job.proto.
//
// Persistence: with a data directory, every state change is written to a JobLog
// (core/store/job_log.h). On start-up, jobs that were QUEUED, RUNNING or CANCELLING when the
// previous server stopped are marked FAILED with the reason (their output was never published:
// work publishes atomically at its end), and every job stays listable.
//
// Submission is idempotent by request_id. The queue is bounded: a full queue answers
// RESOURCE_EXHAUSTED with retry advice.
//
// Owners and fairness: every job has an owner (the submitting user; "" without authentication).
// Queued jobs wait in one FIFO per owner and a free worker takes the next job round-robin over
// owners (the owner after the one it served last, in name order), so one user's 50 queued jobs
// delay another user's single job by at most one job per worker. Per-owner quotas
// (Options::max_running_per_user, max_queued_per_user; 0 = none) answer RESOURCE_EXHAUSTED
// naming the quota on submission (queued) or keep a user's further jobs waiting while others
// run (running). Each submission and each job end hands the pool one "run the next eligible
// job" task; a task that finds none returns, so no worker ever blocks waiting. Watchers register listeners that are called (outside
// the manager's lock) after every state or progress change.
//
// Thread-safe. The destructor cancels every job and joins the workers before returning.
#ifndef GRADZOO_SERVER_JOB_MANAGER_H_
#define GRADZOO_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/engine.h"
#include "core/store/job_log.h"
#include "core/util/thread_pool.h"

namespace gradzoo::server {

enum class JobState { kQueued = 1, kRunning, kSucceeded, kFailed, kCancelling, kCancelled };
enum class JobKind { kZooTraining = 1, kEmbedderTraining = 2 };

inline bool IsFinal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// A consistent copy of a job's state, safe to read without the manager's lock.
struct JobSnapshot {
  std::string id;
  JobKind kind = JobKind::kZooTraining;
  JobState state = JobState::kQueued;
  int64_t version = 0;  // increases on every change
  core::TrainProgress progress;
  double eta_seconds = 0.0;
  std::string error;
  std::string target;   // id of the resource it creates (zoo id, embedder id)
  std::string payload;  // the submitted work, serialized by the caller (a v1 proto)
  std::string request_id;
  std::string owner;  // submitting user; "" without authentication or from older logs
  absl::Time create_time;
  absl::Time start_time = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
};

class JobManager {
 public:
  struct Options {
    int workers = 1;             // jobs that run at once
    size_t max_queued = 16;      // jobs waiting; more -> RESOURCE_EXHAUSTED
    size_t max_retained = 1000;  // finished jobs kept for Get/List (oldest dropped first)
    std::string data_dir;        // where jobs.sqlite lives; empty = jobs are not persisted
    // Per-owner quotas (0 = none): jobs of one owner running at once, and waiting.
    int max_running_per_user = 0;
    size_t max_queued_per_user = 0;
  };
  using Listener = std::function<void(const JobSnapshot&)>;
  // The work of a job: runs on a job worker, reports progress, polls cancel, and publishes its
  // output only at its end (after a last cancel check).
  using RunFn = std::function<absl::Status(const core::ProgressFn&, const core::CancelFn&)>;

  // Loads the job log when options.data_dir is set (FAILED_PRECONDITION if it cannot).
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(core::Engine* engine,
                                                            Options options);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Validates (Engine::ValidateTraining) and queues a zoo-training job. `payload` is stored
  // with the job (the server passes the serialized v1.ZooTraining).
  absl::StatusOr<JobSnapshot> SubmitZooTraining(const std::string& zoo_id,
                                                const core::ZooSpec& spec,
                                                const std::string& payload,
                                                const std::string& request_id,
                                                const std::string& owner = "");
  // Queues any job. A non-empty request_id seen before returns that job instead;
  // ALREADY_EXISTS if another live job of the same kind targets `target`.
  absl::StatusOr<JobSnapshot> Submit(JobKind kind, const std::string& target,
                                     const std::string& payload, const std::string& request_id,
                                     const core::TrainProgress& initial, RunFn run,
                                     const std::string& owner = "");
  absl::StatusOr<JobSnapshot> Get(const std::string& id) const;
  // Newest first.
  std::vector<JobSnapshot> List() const;
  // Requests cancellation; returns the job after the request.
  absl::StatusOr<JobSnapshot> Cancel(const std::string& id);

  // Calls `listener` with the current snapshot at once, then after each change until the job
  // is final. Returns a handle for RemoveListener. NOT_FOUND for unknown jobs.
  absl::StatusOr<int64_t> AddListener(const std::string& id, Listener listener);
  void RemoveListener(const std::string& id, int64_t handle);

  // Cancels everything and stops accepting work (called by the server before shutdown).
  void Shutdown();
  size_t QueueDepth() const;

 private:
  struct Job {
    JobSnapshot snap;
    RunFn run;
    std::atomic<bool> cancel{false};
    std::map<int64_t, Listener> listeners;
  };
  JobManager(core::Engine* engine, Options options, std::unique_ptr<core::JobLog> log);
  absl::Status Recover();
  void Run(std::shared_ptr<Job> job);
  // A pool task: takes the next eligible queued job round-robin over owners and runs it.
  void RunNext();
  // Applies `mutate` under the lock, bumps the version, persists state changes, then notifies
  // listeners outside the lock.
  void Update(const std::shared_ptr<Job>& job, const std::function<void(JobSnapshot&)>& mutate);
  void Persist(const JobSnapshot& snap);
  void PruneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  core::Engine* const engine_;
  const Options options_;
  const std::unique_ptr<core::JobLog> log_;  // null without a data dir
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // submission order
  std::map<std::string, std::string> by_request_id_ ABSL_GUARDED_BY(mu_);
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_job_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Queued jobs by owner (FIFO each), jobs running by owner, and the owner served last.
  std::map<std::string, std::deque<std::shared_ptr<Job>>> pending_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_ ABSL_GUARDED_BY(mu_);
  std::string last_owner_ ABSL_GUARDED_BY(mu_);
  bool served_any_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<core::ThreadPool> pool_;  // last member: joined first on destruction
};

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_JOB_MANAGER_H_
