// JobManager fairness and per-owner quotas (server/job_manager.h): round-robin over owners,
// so one user's 50 queued jobs do not starve another's one; running and queued quotas per
// owner. Jobs here are closures that record their order (no training), gated so the test
// decides when they may finish.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/job_manager.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

// Jobs that log "owner/index" when they start and wait for the gate while it is closed.
class Recorder {
 public:
  JobManager::RunFn Job(const std::string& tag) {
    return [this, tag](const core::ProgressFn&, const core::CancelFn& cancel) {
      absl::MutexLock lock(&mu_);
      started_.push_back(tag);
      max_running_[tag.substr(0, tag.find('/'))] =
          std::max(max_running_[tag.substr(0, tag.find('/'))], ++running_by_[tag.substr(0, tag.find('/'))]);
      auto open = [this, &cancel] { return open_ || cancel(); };
      mu_.Await(absl::Condition(&open));
      --running_by_[tag.substr(0, tag.find('/'))];
      return absl::OkStatus();
    };
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // Waits (up to 10 s) until `n` jobs have started.
  bool WaitStarted(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n] { return started_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }
  std::vector<std::string> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  int max_running(const std::string& owner) {
    absl::MutexLock lock(&mu_);
    return max_running_[owner];
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, int> running_by_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> max_running_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> started_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<JobSnapshot> Submit(JobManager& m, Recorder& r, const std::string& owner, int i) {
  const std::string tag = owner + "/" + std::to_string(i);
  return m.Submit(JobKind::kZooTraining, tag, "", "", core::TrainProgress(), r.Job(tag), owner);
}

// Waits until every job is final.
void WaitAllFinal(JobManager& m) {
  const absl::Time end = absl::Now() + absl::Seconds(20);
  for (;;) {
    bool all = true;
    for (const JobSnapshot& s : m.List()) all = all && IsFinal(s.state);
    if (all || absl::Now() > end) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
}

TEST(JobFairnessTest, OneUsersFiftyJobsDoNotStarveAnothersOne) {
  JobManager::Options o;
  o.workers = 1;
  o.max_queued = 100;
  ASSERT_OK_AND_ASSIGN(auto m, JobManager::Create(nullptr, o));
  Recorder r;
  for (int i = 0; i < 50; ++i) ASSERT_OK(Submit(*m, r, "alice", i).status());
  ASSERT_TRUE(r.WaitStarted(1));  // alice/0 holds the only worker
  ASSERT_OK(Submit(*m, r, "bob", 0).status());
  EXPECT_EQ(m->QueueDepth(), 50u);  // 49 of alice's and bob's one
  r.Open();
  ASSERT_TRUE(r.WaitStarted(51));
  WaitAllFinal(*m);
  const std::vector<std::string> order = r.started();
  ASSERT_EQ(order.size(), 51u);
  EXPECT_EQ(order[0], "alice/0");
  EXPECT_EQ(order[1], "bob/0");  // next, not 51st
  // Alice's jobs keep their own FIFO order.
  for (int i = 1; i < 50; ++i) EXPECT_EQ(order[i + 1], "alice/" + std::to_string(i));
}

TEST(JobFairnessTest, RoundRobinAcrossThreeOwners) {
  JobManager::Options o;
  o.workers = 1;
  ASSERT_OK_AND_ASSIGN(auto m, JobManager::Create(nullptr, o));
  Recorder r;
  ASSERT_OK(Submit(*m, r, "gate", 0).status());
  ASSERT_TRUE(r.WaitStarted(1));
  for (int i = 0; i < 3; ++i) ASSERT_OK(Submit(*m, r, "a", i).status());
  for (int i = 0; i < 2; ++i) ASSERT_OK(Submit(*m, r, "b", i).status());
  ASSERT_OK(Submit(*m, r, "c", 0).status());
  r.Open();
  ASSERT_TRUE(r.WaitStarted(7));
  WaitAllFinal(*m);
  // After "gate", owners in name order from the one after the last served, wrapping.
  EXPECT_EQ(r.started(),
            (std::vector<std::string>{"gate/0", "a/0", "b/0", "c/0", "a/1", "b/1", "a/2"}));
}

TEST(JobFairnessTest, RunningQuotaLetsOthersUseTheFreeWorkers) {
  JobManager::Options o;
  o.workers = 2;
  o.max_running_per_user = 1;
  ASSERT_OK_AND_ASSIGN(auto m, JobManager::Create(nullptr, o));
  Recorder r;
  for (int i = 0; i < 3; ++i) ASSERT_OK(Submit(*m, r, "alice", i).status());
  ASSERT_TRUE(r.WaitStarted(1));
  ASSERT_OK(Submit(*m, r, "bob", 0).status());
  // Bob's job takes the second worker although alice's two jobs were queued first.
  ASSERT_TRUE(r.WaitStarted(2));
  EXPECT_EQ(r.started()[1], "bob/0");
  r.Open();
  ASSERT_TRUE(r.WaitStarted(4));
  WaitAllFinal(*m);
  EXPECT_EQ(r.max_running("alice"), 1);
  for (const JobSnapshot& s : m->List()) EXPECT_EQ(s.state, JobState::kSucceeded) << s.id;
}

TEST(JobFairnessTest, QueuedQuotaPerOwnerNamesTheQuota) {
  JobManager::Options o;
  o.workers = 1;
  o.max_queued_per_user = 2;
  ASSERT_OK_AND_ASSIGN(auto m, JobManager::Create(nullptr, o));
  Recorder r;
  ASSERT_OK(Submit(*m, r, "alice", 0).status());
  ASSERT_TRUE(r.WaitStarted(1));
  ASSERT_OK(Submit(*m, r, "alice", 1).status());
  ASSERT_OK(Submit(*m, r, "alice", 2).status());
  EXPECT_THAT(Submit(*m, r, "alice", 3),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("quota max_queued_jobs_per_user reached: alice")));
  EXPECT_OK(Submit(*m, r, "bob", 0).status());
  r.Open();
  WaitAllFinal(*m);
}

TEST(JobFairnessTest, CancelledQueuedJobsEndAndShutdownDrains) {
  JobManager::Options o;
  o.workers = 1;
  o.max_running_per_user = 1;
  ASSERT_OK_AND_ASSIGN(auto m, JobManager::Create(nullptr, o));
  Recorder r;
  ASSERT_OK(Submit(*m, r, "alice", 0).status());
  ASSERT_TRUE(r.WaitStarted(1));
  ASSERT_OK_AND_ASSIGN(JobSnapshot queued, Submit(*m, r, "alice", 1));
  ASSERT_OK(m->Cancel(queued.id).status());
  r.Open();
  WaitAllFinal(*m);
  ASSERT_OK_AND_ASSIGN(JobSnapshot s, m->Get(queued.id));
  EXPECT_EQ(s.state, JobState::kCancelled);
  EXPECT_EQ(r.started().size(), 1u);
  EXPECT_EQ(m->QueueDepth(), 0u);
}

}  // namespace
}  // namespace gradzoo::server
