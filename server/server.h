// Server: assembles gradzoo-server from its parts and owns them.
//
//   Start():    Engine (opens the store, loads zoos) -> pools -> JobManager -> gRPC services,
//               health (NOT_SERVING until ready, then SERVING), reflection, one log line per RPC
//   Shutdown(): health NOT_SERVING -> jobs cancelled -> gRPC shutdown within the deadline ->
//               pools drained -> engine closed (destructor order)
//
// Thread-safe: Shutdown may be called from any thread (e.g. a signal watcher), once or more.
#ifndef GRADZOO_SERVER_SERVER_H_
#define GRADZOO_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gradzoo::server {

class Server {
 public:
  struct Options {
    // host:port to listen on; port 0 picks a free port (see port()). Loopback by default.
    std::string listen = "127.0.0.1:50551";
    // Embedded store directory.
    std::string data_dir = "gradzoo-data";
    // Default tensor device: auto | cpu | cuda:N.
    std::string device = "auto";
    // Workers answering gradient queries, and how many may wait.
    int query_threads = 2;
    size_t max_queued_queries = 64;
    // Training jobs that run at once, and how many may wait.
    int job_workers = 1;
    size_t max_queued_jobs = 16;
    // Largest request message accepted (bytes), and largest response sent.
    int max_receive_message_bytes = 32 << 20;
    int max_send_message_bytes = 8 << 20;
    // Upper bound on points x models per query.
    int64_t max_points_per_query = 4'000'000;
  };

  // Builds everything and starts listening. FAILED_PRECONDITION / UNAVAILABLE with a clear
  // message when the store cannot be opened or the address cannot be bound (port taken).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Options& options);
  ~Server();

  // The bound port (useful with port 0).
  int port() const;
  // Graceful shutdown: calls in flight get until `deadline` to finish, then are cancelled.
  void Shutdown(absl::Duration deadline);
  // Blocks until the gRPC server has shut down.
  void Wait();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_SERVER_H_
