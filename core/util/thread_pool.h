// A fixed-size pool of worker threads running closures in FIFO order.
//
// Thread-safe. The destructor stops accepting work, runs what is already queued, and joins.
// TrySchedule refuses work beyond `max_queue` so callers can answer RESOURCE_EXHAUSTED instead
// of queueing without bound.
#ifndef GRADZOO_CORE_UTIL_THREAD_POOL_H_
#define GRADZOO_CORE_UTIL_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace gradzoo::core {

class ThreadPool {
 public:
  // `threads` >= 1 workers; at most `max_queue` closures waiting (0 = unbounded).
  ThreadPool(std::string name, int threads, size_t max_queue);
  // Join().
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Stops taking work, runs the closures already queued, and joins the workers. Idempotent.
  // While it runs the pool stays a valid object, so a closure may still call TrySchedule (which
  // then refuses).
  void Join();
  // Queues `fn`; false (and `fn` dropped) when the queue is full or the pool is stopping.
  bool TrySchedule(std::function<void()> fn);
  // Closures waiting (not running).
  size_t QueueDepth() const;
  const std::string& name() const { return name_; }

 private:
  void WorkerLoop();

  const std::string name_;
  const size_t max_queue_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_UTIL_THREAD_POOL_H_
