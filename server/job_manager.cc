#include "server/job_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"
#include "spdlog/spdlog.h"

namespace gradzoo::server {

namespace {
int64_t ToMs(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }
absl::Time FromMs(int64_t ms) { return ms == 0 ? absl::InfinitePast() : absl::FromUnixMillis(ms); }
const char* StateWord(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kCancelling:
      return "CANCELLING";
    default:
      return "final";
  }
}
}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(core::Engine* engine,
                                                              Options options) {
  std::unique_ptr<core::JobLog> log;
  if (!options.data_dir.empty()) {
    ASSIGN_OR_RETURN(log, core::JobLog::Open(options.data_dir));
  }
  auto m = std::unique_ptr<JobManager>(new JobManager(engine, std::move(options), std::move(log)));
  RETURN_IF_ERROR(m->Recover());
  return m;
}

JobManager::JobManager(core::Engine* engine, Options options, std::unique_ptr<core::JobLog> log)
    : engine_(engine),
      options_(std::move(options)),
      log_(std::move(log)),
      pool_(std::make_unique<core::ThreadPool>("jobs", options_.workers, 0)) {}

absl::Status JobManager::Recover() {
  if (!log_) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<core::JobRecord> records, log_->LoadAll());
  int failed = 0;
  absl::MutexLock lock(&mu_);
  for (core::JobRecord& r : records) {
    auto job = std::make_shared<Job>();
    JobSnapshot& s = job->snap;
    s.id = r.id;
    s.kind = static_cast<JobKind>(r.kind);
    s.state = static_cast<JobState>(r.state);
    s.target = r.target;
    s.payload = std::move(r.payload);
    s.request_id = r.request_id;
    s.owner = r.owner;
    s.error = r.error;
    s.create_time = FromMs(r.create_ms);
    s.start_time = FromMs(r.start_ms);
    s.end_time = FromMs(r.end_ms);
    s.version = 1;
    if (!IsFinal(s.state)) {
      s.error = absl::StrCat("the server stopped while this job was ", StateWord(s.state),
                             "; nothing was published: submit it again");
      s.state = JobState::kFailed;
      if (s.end_time == absl::InfinitePast()) s.end_time = absl::Now();
      ++failed;
      Persist(s);
    }
    if (!s.request_id.empty()) by_request_id_[s.request_id] = s.id;
    order_.push_back(s.id);
    jobs_[s.id] = std::move(job);
  }
  PruneLocked();
  spdlog::info("job log: {} jobs loaded, {} interrupted jobs marked FAILED", records.size(), failed);
  return absl::OkStatus();
}

JobManager::~JobManager() {
  Shutdown();
  // Runs the queued closures (their jobs end CANCELLED at once) and joins. pool_ stays valid
  // meanwhile: a RunNext finishing on a worker may still call pool_->TrySchedule (refused).
  pool_->Join();
  // Jobs a per-user running quota held back have no closure left: cancelled, never started.
  std::vector<std::shared_ptr<Job>> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [owner, queue] : pending_) left.insert(left.end(), queue.begin(), queue.end());
    pending_.clear();
  }
  for (auto& job : left) {
    Update(job, [](JobSnapshot& s) {
      s.state = JobState::kCancelled;
      s.end_time = absl::Now();
    });
  }
}

void JobManager::Shutdown() {
  std::vector<std::shared_ptr<Job>> live;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [id, job] : jobs_) {
      if (!IsFinal(job->snap.state)) live.push_back(job);
    }
  }
  for (auto& job : live) {
    job->cancel = true;
    Update(job, [](JobSnapshot& s) {
      if (!IsFinal(s.state)) s.state = JobState::kCancelling;
    });
  }
}

absl::StatusOr<JobSnapshot> JobManager::SubmitZooTraining(const std::string& zoo_id,
                                                          const core::ZooSpec& spec,
                                                          const std::string& payload,
                                                          const std::string& request_id,
                                                          const std::string& owner) {
  {
    absl::MutexLock lock(&mu_);
    if (!request_id.empty()) {  // a retry: answer before validating again
      auto it = by_request_id_.find(request_id);
      if (it != by_request_id_.end()) return jobs_.at(it->second)->snap;
    }
  }
  RETURN_IF_ERROR(engine_->ValidateTraining(zoo_id, spec));
  core::TrainProgress initial;
  initial.models_total = static_cast<int>(spec.task.lambdas.size() * spec.seeds.size());
  initial.total_steps = spec.training.steps;
  core::Engine* engine = engine_;
  RunFn run = [engine, zoo_id, spec](const core::ProgressFn& progress,
                                     const core::CancelFn& cancel) {
    return engine->TrainZoo(zoo_id, spec, progress, cancel).status();
  };
  return Submit(JobKind::kZooTraining, zoo_id, payload, request_id, initial, std::move(run),
                owner);
}

absl::StatusOr<JobSnapshot> JobManager::Submit(JobKind kind, const std::string& target,
                                               const std::string& payload,
                                               const std::string& request_id,
                                               const core::TrainProgress& initial, RunFn run,
                                               const std::string& owner) {
  if (request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id must be at most 128 characters");
  }
  auto job = std::make_shared<Job>();
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      return absl::UnavailableError("the server is shutting down; retry on a new server");
    }
    if (!request_id.empty()) {
      auto it = by_request_id_.find(request_id);
      if (it != by_request_id_.end()) return jobs_.at(it->second)->snap;
    }
    size_t queued = 0, queued_by_owner = 0;
    for (const auto& [id, j] : jobs_) {
      if (j->snap.state == JobState::kQueued) {
        ++queued;
        if (j->snap.owner == owner) ++queued_by_owner;
      }
      if (!IsFinal(j->snap.state) && j->snap.kind == kind && j->snap.target == target) {
        return absl::AlreadyExistsError(
            absl::StrCat("job \"trainingJobs/", id, "\" is already creating ", target));
      }
    }
    if (queued >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the job queue is full (", queued, " jobs waiting); retry in a minute or cancel a "
          "queued job"));
    }
    if (options_.max_queued_per_user > 0 && queued_by_owner >= options_.max_queued_per_user) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "quota max_queued_jobs_per_user reached: ", owner.empty() ? "you" : owner, " already ",
          queued_by_owner == 1 ? "has 1 job" : absl::StrCat("has ", queued_by_owner, " jobs"),
          " waiting (limit ", options_.max_queued_per_user,
          "); wait for one to start or cancel one, then retry"));
    }
    job->snap.id = absl::StrFormat("job-%d-%d", absl::ToUnixMillis(absl::Now()), next_job_++);
    job->snap.kind = kind;
    job->snap.target = target;
    job->snap.payload = payload;
    job->snap.request_id = request_id;
    job->snap.owner = owner;
    job->snap.create_time = absl::Now();
    job->snap.version = 1;
    job->snap.progress = initial;
    job->run = std::move(run);
    jobs_[job->snap.id] = job;
    order_.push_back(job->snap.id);
    if (!request_id.empty()) by_request_id_[request_id] = job->snap.id;
    pending_[owner].push_back(job);
    Persist(job->snap);
    PruneLocked();
  }
  if (!pool_->TrySchedule([this] { RunNext(); })) {
    {
      absl::MutexLock lock(&mu_);
      auto q = pending_.find(owner);
      if (q != pending_.end()) {
        q->second.erase(std::remove(q->second.begin(), q->second.end(), job), q->second.end());
        if (q->second.empty()) pending_.erase(q);
      }
    }
    Update(job, [](JobSnapshot& s) {
      s.state = JobState::kFailed;
      s.error = "the server is shutting down";
    });
  }
  spdlog::info("job {} queued: creates {}", job->snap.id, target);
  absl::MutexLock lock(&mu_);
  return job->snap;
}

void JobManager::RunNext() {
  std::shared_ptr<Job> job;
  {
    absl::MutexLock lock(&mu_);
    if (pending_.empty()) return;
    // Round-robin: owners after the last one served (name order), then from the start.
    auto eligible = [&](const std::string& owner) {
      const auto& q = pending_.at(owner);
      // A job cancelled while queued ends at once: take it whatever the quota says.
      if (q.front()->cancel) return true;
      return options_.max_running_per_user <= 0 || running_[owner] < options_.max_running_per_user;
    };
    auto start = served_any_ ? pending_.upper_bound(last_owner_) : pending_.begin();
    auto pick = pending_.end();
    for (auto it = start; it != pending_.end() && pick == pending_.end(); ++it) {
      if (eligible(it->first)) pick = it;
    }
    for (auto it = pending_.begin(); it != start && pick == pending_.end(); ++it) {
      if (eligible(it->first)) pick = it;
    }
    if (pick == pending_.end()) return;  // every waiting owner is at its running quota
    job = pick->second.front();
    pick->second.pop_front();
    last_owner_ = pick->first;
    served_any_ = true;
    if (pick->second.empty()) pending_.erase(pick);
    ++running_[job->snap.owner];
  }
  Run(job);
  bool more;
  {
    absl::MutexLock lock(&mu_);
    if (--running_[job->snap.owner] <= 0) running_.erase(job->snap.owner);
    more = !pending_.empty();
  }
  // A job of this owner may have waited for its running quota: look again.
  if (more) (void)pool_->TrySchedule([this] { RunNext(); });
}

void JobManager::Run(std::shared_ptr<Job> job) {
  bool cancelled_while_queued = false;
  Update(job, [&](JobSnapshot& s) {
    if (s.state == JobState::kCancelling || job->cancel) {
      s.state = JobState::kCancelled;
      s.end_time = absl::Now();
      cancelled_while_queued = true;
    } else {
      s.state = JobState::kRunning;
      s.start_time = absl::Now();
    }
  });
  if (cancelled_while_queued) return;
  const absl::Time start = absl::Now();
  auto progress = [&](const core::TrainProgress& p) {
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    const double frac = p.total_steps > 0 ? static_cast<double>(p.step) / p.total_steps : 0.0;
    Update(job, [&](JobSnapshot& s) {
      s.progress = p;
      s.eta_seconds = frac > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
    });
  };
  auto cancel = [&job] { return job->cancel.load(); };
  const absl::Status status = job->run(progress, cancel);
  job->run = nullptr;  // release what the work captured
  Update(job, [&](JobSnapshot& s) {
    s.end_time = absl::Now();
    s.eta_seconds = 0;
    if (job->cancel) {
      s.state = JobState::kCancelled;
    } else if (status.ok()) {
      s.state = JobState::kSucceeded;
      s.progress.models_done = s.progress.models_total;
    } else {
      s.state = JobState::kFailed;
      s.error = status.ToString();
    }
  });
  spdlog::info("job {} ended: {}", job->snap.id, status.ok() ? "ok" : std::string(status.message()));
}

void JobManager::Persist(const JobSnapshot& s) {
  if (!log_) return;
  core::JobRecord r;
  r.id = s.id;
  r.kind = static_cast<int>(s.kind);
  r.state = static_cast<int>(s.state);
  r.target = s.target;
  r.request_id = s.request_id;
  r.owner = s.owner;
  r.error = s.error;
  r.payload = s.payload;
  r.create_ms = ToMs(s.create_time);
  r.start_ms = ToMs(s.start_time);
  r.end_ms = ToMs(s.end_time);
  if (absl::Status st = log_->Put(r); !st.ok()) {
    spdlog::error("job {}: could not persist its state: {}", s.id, st.ToString());
  }
}

void JobManager::Update(const std::shared_ptr<Job>& job,
                        const std::function<void(JobSnapshot&)>& mutate) {
  JobSnapshot snap;
  std::vector<Listener> listeners;
  {
    absl::MutexLock lock(&mu_);
    const JobState before = job->snap.state;
    mutate(job->snap);
    ++job->snap.version;
    snap = job->snap;
    if (snap.state != before) Persist(snap);
    for (auto& [h, l] : job->listeners) listeners.push_back(l);
    if (IsFinal(job->snap.state)) job->listeners.clear();
  }
  for (auto& l : listeners) l(snap);
}

absl::StatusOr<JobSnapshot> JobManager::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("job \"trainingJobs/", id.substr(0, 80), "\" not found"));
  }
  return it->second->snap;
}

std::vector<JobSnapshot> JobManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<JobSnapshot> out;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) out.push_back(jobs_.at(*it)->snap);
  return out;
}

absl::StatusOr<JobSnapshot> JobManager::Cancel(const std::string& id) {
  std::shared_ptr<Job> job;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(absl::StrCat("job \"trainingJobs/", id.substr(0, 80), "\" not found"));
    }
    job = it->second;
    if (IsFinal(job->snap.state)) return job->snap;
  }
  job->cancel = true;
  Update(job, [](JobSnapshot& s) {
    if (!IsFinal(s.state)) s.state = JobState::kCancelling;
  });
  absl::MutexLock lock(&mu_);
  return job->snap;
}

absl::StatusOr<int64_t> JobManager::AddListener(const std::string& id, Listener listener) {
  JobSnapshot snap;
  int64_t handle;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(absl::StrCat("job \"trainingJobs/", id.substr(0, 80), "\" not found"));
    }
    handle = next_listener_++;
    snap = it->second->snap;
    if (!IsFinal(snap.state)) it->second->listeners[handle] = listener;
  }
  listener(snap);
  return handle;
}

void JobManager::RemoveListener(const std::string& id, int64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it != jobs_.end()) it->second->listeners.erase(handle);
}

size_t JobManager::QueueDepth() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [owner, q] : pending_) n += q.size();
  return n;
}

void JobManager::PruneLocked() {
  size_t finished = 0;
  for (const auto& id : order_) finished += IsFinal(jobs_.at(id)->snap.state) ? 1 : 0;
  std::vector<std::string> removed;
  for (auto it = order_.begin(); finished > options_.max_retained && it != order_.end();) {
    auto& job = jobs_.at(*it);
    if (IsFinal(job->snap.state)) {
      if (!job->snap.request_id.empty()) by_request_id_.erase(job->snap.request_id);
      removed.push_back(*it);
      jobs_.erase(*it);
      it = order_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
  if (log_ && !removed.empty()) (void)log_->Remove(removed);
}

}  // namespace gradzoo::server
