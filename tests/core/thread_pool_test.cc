#include "core/util/thread_pool.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gradzoo::core {
namespace {

TEST(ThreadPoolTest, RunsWorkAndRefusesBeyondItsQueue) {
  ThreadPool pool("t", 1, 1);
  absl::Notification release, started;
  ASSERT_TRUE(pool.TrySchedule([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  started.WaitForNotification();
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool.TrySchedule([&] { ++ran; }));   // queued
  EXPECT_FALSE(pool.TrySchedule([&] { ++ran; }));  // queue full
  EXPECT_EQ(pool.QueueDepth(), 1u);
  release.Notify();
  pool.Join();
  EXPECT_EQ(ran.load(), 1);
}

// Join drains what is queued, and a closure running during Join may still call TrySchedule on
// the (still valid) pool, which refuses: what JobManager's shutdown relies on.
TEST(ThreadPoolTest, JoinDrainsQueueAndRefusesNewWorkFromClosures) {
  ThreadPool pool("t", 2, 0);
  std::atomic<int> ran{0}, refused{0};
  absl::Notification release;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(pool.TrySchedule([&] {
      release.WaitForNotification();
      ++ran;
      if (!pool.TrySchedule([&] { ++ran; })) ++refused;
    }));
  }
  std::thread joiner([&] { pool.Join(); });
  absl::SleepFor(absl::Milliseconds(20));  // let Join mark the pool stopping first
  release.Notify();
  joiner.join();
  EXPECT_EQ(ran.load(), 8);
  EXPECT_EQ(refused.load(), 8);
  EXPECT_FALSE(pool.TrySchedule([] {}));
  pool.Join();  // idempotent
}

}  // namespace
}  // namespace gradzoo::core
