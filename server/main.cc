// gradzoo-server: serves model zoos over gRPC.
//
//   gradzoo-server --listen 127.0.0.1:50551 --data-dir DIR --device auto|cpu|cuda:N
//                  [--tokens-file FILE] [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
//                  [--metrics-port N]
//
// A bad tokens file or TLS file is a start-up error naming the file (exit status 1).
//
// SIGINT/SIGTERM shut it down gracefully: health turns NOT_SERVING, jobs are cancelled, calls in
// flight get --shutdown-grace seconds, then the process exits 0.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "core/util/runtime.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50551", "host:port to listen on (port 0 = any free port)");
ABSL_FLAG(std::string, data_dir, "gradzoo-data", "directory of the embedded zoo store");
ABSL_FLAG(std::string, device, "auto", "default tensor device: auto | cpu | cuda:N");
ABSL_FLAG(int, torch_threads, 0, "LibTorch intra-op threads (0 = one per core)");
ABSL_FLAG(int, query_threads, 2, "threads answering gradient queries");
ABSL_FLAG(int, job_workers, 1, "training jobs running at once");
ABSL_FLAG(int, max_queued_jobs, 16, "training jobs that may wait; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_points_per_query, 4000000, "points x models allowed in one query");
ABSL_FLAG(double, shutdown_grace, 5.0, "seconds calls in flight get on shutdown");
ABSL_FLAG(std::string, tokens_file, "",
          "tokens file ('user token role' per line, see README); every RPC but health then "
          "needs 'authorization: Bearer <token>'");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve TLS (needs --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: mutual TLS, clients must present a certificate it signed");
ABSL_FLAG(int, metrics_port, -1,
          "serve Prometheus metrics on http://127.0.0.1:PORT/metrics (-1 = off, 0 = any free "
          "port, logged)");
ABSL_FLAG(int, max_running_jobs_per_user, 0,
          "quota: jobs one user may have running at once (0 = no quota; others keep waiting)");
ABSL_FLAG(int, max_queued_jobs_per_user, 0,
          "quota: jobs one user may have waiting (0 = no quota; more get RESOURCE_EXHAUSTED)");
ABSL_FLAG(int64_t, max_stored_bytes_per_user, 0,
          "quota: bytes of stored zoos one user may own before new ones are refused (0 = none)");
ABSL_FLAG(double, default_deadline, 300.0,
          "seconds a query may compute when its client sets no deadline (0 = unbounded); a "
          "client's own deadline always applies");
ABSL_FLAG(std::string, port_file, "", "if set, write the bound port here once serving");

namespace {
int g_signal_pipe[2] = {-1, -1};
void OnSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!write(g_signal_pipe[1], &b, 1);  // async-signal-safe
}
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "gradzoo-server: keeps model zoos in memory and on disk and answers gradzoo.v1 RPCs.\n"
      "Usage: gradzoo-server [--listen HOST:PORT] [--data-dir DIR] [--device auto|cpu|cuda:N]");
  // Accept --data-dir as well as --data_dir: absl flag names cannot contain '-'.
  std::vector<std::string> normalised(argv, argv + argc);
  std::vector<char*> args;
  for (std::string& a : normalised) {
    if (a.rfind("--", 0) == 0) {
      const size_t end = std::min(a.find('='), a.size());
      std::replace(a.begin() + 2, a.begin() + end, '-', '_');
    }
    args.push_back(a.data());
  }
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());

  // Threads started before main (by libraries) may receive the signal, so use a process-wide
  // handler that only writes the signal number to a pipe; a watcher thread does the shutdown.
  if (pipe(g_signal_pipe) != 0) {
    spdlog::critical("pipe() failed");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  gradzoo::core::ConfigureTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  gradzoo::server::Server::Options o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  o.device = absl::GetFlag(FLAGS_device);
  o.query_threads = absl::GetFlag(FLAGS_query_threads);
  o.job_workers = absl::GetFlag(FLAGS_job_workers);
  o.max_queued_jobs = static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_jobs));
  o.max_points_per_query = absl::GetFlag(FLAGS_max_points_per_query);
  o.tokens_file = absl::GetFlag(FLAGS_tokens_file);
  o.default_deadline = absl::Seconds(std::max(0.0, absl::GetFlag(FLAGS_default_deadline)));
  o.max_running_jobs_per_user = std::max(0, absl::GetFlag(FLAGS_max_running_jobs_per_user));
  o.max_queued_jobs_per_user =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_queued_jobs_per_user)));
  o.max_stored_bytes_per_user = std::max<int64_t>(0, absl::GetFlag(FLAGS_max_stored_bytes_per_user));
  o.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key = absl::GetFlag(FLAGS_tls_key);
  o.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (metrics_port > 65535 || metrics_port < -1) {
    spdlog::critical("--metrics-port must be -1 (off) or 0..65535, not {}", metrics_port);
    return 1;
  }
  if (metrics_port >= 0) o.metrics_listen = "127.0.0.1:" + std::to_string(metrics_port);
  auto server = gradzoo::server::Server::Start(o);
  if (!server.ok()) {
    spdlog::critical("gradzoo-server failed to start: {}", server.status().ToString());
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    if (FILE* f = std::fopen(port_file.c_str(), "w")) {
      std::fprintf(f, "%d\n", (*server)->port());
      std::fclose(f);
    }
  }
  std::thread watcher([&] {
    unsigned char sig = 0;
    while (read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    spdlog::info("received signal {}", static_cast<int>(sig));
    (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace)));
  });
  (*server)->Wait();
  watcher.join();
  server->reset();
  spdlog::info("gradzoo-server stopped");
  return 0;
}
