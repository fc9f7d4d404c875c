#include "server/job_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace gradzoo::server {

JobManager::JobManager(core::Engine* engine, Options options)
    : engine_(engine),
      options_(options),
      pool_(std::make_unique<core::ThreadPool>("jobs", options.workers, 0)) {}

JobManager::~JobManager() {
  Shutdown();
  pool_.reset();  // runs queued closures (they end CANCELLED at once) and joins
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
                                                          const std::string& request_id) {
  if (request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id must be at most 128 characters");
  }
  {
    absl::MutexLock lock(&mu_);
    if (!request_id.empty()) {
      auto it = by_request_id_.find(request_id);
      if (it != by_request_id_.end()) return jobs_.at(it->second)->snap;
    }
  }
  if (absl::Status s = engine_->ValidateTraining(zoo_id, spec); !s.ok()) return s;

  auto job = std::make_shared<Job>();
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::UnavailableError("server is shutting down; retry on a new server");
    if (!request_id.empty()) {  // re-check: a concurrent retry may have won
      auto it = by_request_id_.find(request_id);
      if (it != by_request_id_.end()) return jobs_.at(it->second)->snap;
    }
    size_t queued = 0;
    for (const auto& [id, j] : jobs_) {
      if (j->snap.state == JobState::kQueued) ++queued;
      if (!IsFinal(j->snap.state) && j->snap.zoo_id == zoo_id) {
        return absl::AlreadyExistsError(
            absl::StrCat("job \"trainingJobs/", id, "\" is already creating zoos/", zoo_id));
      }
    }
    if (queued >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the training queue is full (", queued, " jobs waiting); retry in a minute or cancel "
          "a queued job"));
    }
    job->snap.id = absl::StrFormat("job-%d-%d", absl::ToUnixMillis(absl::Now()), next_job_++);
    job->snap.zoo_id = zoo_id;
    job->snap.spec = spec;
    job->snap.request_id = request_id;
    job->snap.create_time = absl::Now();
    job->snap.version = 1;
    job->snap.progress.models_total =
        static_cast<int>(spec.task.lambdas.size() * spec.seeds.size());
    job->snap.progress.total_steps = spec.training.steps;
    jobs_[job->snap.id] = job;
    order_.push_back(job->snap.id);
    if (!request_id.empty()) by_request_id_[request_id] = job->snap.id;
    PruneLocked();
  }
  if (!pool_->TrySchedule([this, job] { Run(job); })) {
    Update(job, [](JobSnapshot& s) {
      s.state = JobState::kFailed;
      s.error = "the server is shutting down";
    });
  }
  spdlog::info("job {} queued: train zoos/{}", job->snap.id, zoo_id);
  absl::MutexLock lock(&mu_);
  return job->snap;
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
  core::ZooSpec spec;
  std::string zoo_id;
  {
    absl::MutexLock lock(&mu_);
    spec = job->snap.spec;
    zoo_id = job->snap.zoo_id;
  }
  auto progress = [&](const core::TrainProgress& p) {
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    const double frac = p.total_steps > 0 ? static_cast<double>(p.step) / p.total_steps : 0.0;
    Update(job, [&](JobSnapshot& s) {
      s.progress = p;
      s.eta_seconds = frac > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
    });
  };
  auto cancel = [&job] { return job->cancel.load(); };
  absl::StatusOr<std::shared_ptr<const core::Zoo>> zoo =
      engine_->TrainZoo(zoo_id, spec, progress, cancel);
  Update(job, [&](JobSnapshot& s) {
    s.end_time = absl::Now();
    s.eta_seconds = 0;
    if (job->cancel) {
      s.state = JobState::kCancelled;
    } else if (zoo.ok()) {
      s.state = JobState::kSucceeded;
      s.progress.models_done = s.progress.models_total;
    } else {
      s.state = JobState::kFailed;
      s.error = zoo.status().ToString();
    }
  });
  spdlog::info("job {} ended: {}", job->snap.id,
               zoo.ok() ? "ok" : std::string(zoo.status().message()));
}

void JobManager::Update(const std::shared_ptr<Job>& job,
                        const std::function<void(JobSnapshot&)>& mutate) {
  JobSnapshot snap;
  std::vector<Listener> listeners;
  {
    absl::MutexLock lock(&mu_);
    mutate(job->snap);
    ++job->snap.version;
    snap = job->snap;
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

size_t JobManager::QueueDepth() const { return pool_->QueueDepth(); }

void JobManager::PruneLocked() {
  size_t finished = 0;
  for (const auto& id : order_) finished += IsFinal(jobs_.at(id)->snap.state) ? 1 : 0;
  for (auto it = order_.begin(); finished > options_.max_retained && it != order_.end();) {
    auto& job = jobs_.at(*it);
    if (IsFinal(job->snap.state)) {
      if (!job->snap.request_id.empty()) by_request_id_.erase(job->snap.request_id);
      jobs_.erase(*it);
      it = order_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

}  // namespace gradzoo::server
