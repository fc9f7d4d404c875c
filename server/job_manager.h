// JobManager: training jobs as explicit state machines, run on their own worker pool so that
// queries stay fast while training runs (STYLE rules 5 and 6).
//
//   QUEUED ──worker picks it──> RUNNING ──ok──> SUCCEEDED
//     │                           │ └──error──> FAILED
//     └──Cancel──> CANCELLING <───┘ Cancel
//                      └──worker notices (or it was still queued)──> CANCELLED
//
// SUCCEEDED, FAILED and CANCELLED are final. A job in CANCELLING whose training finished
// anyway still ends CANCELLED and publishes nothing (Engine::TrainZoo checks the cancel flag
// before saving). The same states are JobState in proto/gradzoo/v1/job.proto.
//
// Submission is idempotent by request_id. The queue is bounded: a full queue answers
// RESOURCE_EXHAUSTED with retry advice. Watchers register listeners that are called (outside
// the manager's lock) after every state or progress change.
//
// Thread-safe. The destructor cancels every job and joins the workers before returning.
// Jobs live in memory: a restart forgets them (the zoos they published are stored).
#ifndef GRADZOO_SERVER_JOB_MANAGER_H_
#define GRADZOO_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
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
#include "core/util/thread_pool.h"

namespace gradzoo::server {

enum class JobState { kQueued = 1, kRunning, kSucceeded, kFailed, kCancelling, kCancelled };

inline bool IsFinal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// A consistent copy of a job's state, safe to read without the manager's lock.
struct JobSnapshot {
  std::string id;
  JobState state = JobState::kQueued;
  int64_t version = 0;  // increases on every change
  core::TrainProgress progress;
  double eta_seconds = 0.0;
  std::string error;
  std::string zoo_id;
  core::ZooSpec spec;
  std::string request_id;
  absl::Time create_time;
  absl::Time start_time = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
};

class JobManager {
 public:
  struct Options {
    int workers = 1;       // jobs that train at once
    size_t max_queued = 16;  // jobs waiting; more -> RESOURCE_EXHAUSTED
    size_t max_retained = 1000;  // finished jobs kept for Get/List (oldest dropped first)
  };
  using Listener = std::function<void(const JobSnapshot&)>;

  JobManager(core::Engine* engine, Options options);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Validates (Engine::ValidateTraining) and queues a zoo-training job. A non-empty request_id
  // seen before returns that job instead. ALREADY_EXISTS if another live job targets zoo_id.
  absl::StatusOr<JobSnapshot> SubmitZooTraining(const std::string& zoo_id,
                                                const core::ZooSpec& spec,
                                                const std::string& request_id);
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
    std::atomic<bool> cancel{false};
    std::map<int64_t, Listener> listeners;
  };
  void Run(std::shared_ptr<Job> job);
  // Applies `mutate` under the lock, bumps the version, then notifies listeners outside it.
  void Update(const std::shared_ptr<Job>& job, const std::function<void(JobSnapshot&)>& mutate);
  void PruneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  core::Engine* const engine_;
  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // submission order
  std::map<std::string, std::string> by_request_id_ ABSL_GUARDED_BY(mu_);
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_job_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<core::ThreadPool> pool_;  // last member: joined first on destruction
};

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_JOB_MANAGER_H_
