#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/engine.h"
#include "core/util/runtime.h"
#include "core/util/status_macros.h"
#include "core/util/thread_pool.h"
#include "server/auth.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/tenancy.h"
#include "server/tls.h"
#include "core/store/acl_store.h"
#include "spdlog/spdlog.h"

namespace gradzoo::server {
namespace {

// One log line per RPC: method, status code, latency. Also the last guard that UNKNOWN never
// leaves the server (it becomes INTERNAL).
class RpcLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcLogInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method()), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNKNOWN) {
        status = grpc::Status(grpc::StatusCode::INTERNAL, status.error_message());
        methods->ModifySendStatus(status);
      }
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start_)
                            .count();
      if (status.ok()) {
        spdlog::info("rpc {} OK {:.1f}ms", method_, ms);
      } else {
        spdlog::warn("rpc {} code={} {:.1f}ms: {}", method_, static_cast<int>(status.error_code()),
                     ms, status.error_message());
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class RpcLogInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcLogInterceptor(info);
  }
};

// True for "127.0.0.1:P", "localhost:P", "[::1]:P".
bool IsLoopbackListen(const std::string& listen) {
  return absl::StartsWith(listen, "127.") || absl::StartsWith(listen, "localhost:") ||
         absl::StartsWith(listen, "[::1]:");
}

}  // namespace

struct Server::Impl {
  Options options;
  std::shared_ptr<const Authenticator> auth;  // null: authentication off
  std::unique_ptr<MetricsRegistry> metrics;   // always kept; served only with metrics_listen
  std::unique_ptr<MetricsHttpServer> metrics_http;
  std::unique_ptr<core::Engine> engine;
  std::unique_ptr<core::AclStore> acl;
  std::unique_ptr<Tenancy> tenancy;
  std::unique_ptr<core::ThreadPool> queries;
  std::unique_ptr<JobManager> jobs;
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<grpc::Server> grpc_server;
  int port = 0;
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;

  ~Impl() {
    // Order matters: stop scrapes (their callbacks read jobs and engine), then RPCs, then jobs
    // and queries, then the engine they use.
    metrics_http.reset();
    if (grpc_server) grpc_server->Shutdown(std::chrono::system_clock::now());
    if (jobs) jobs->Shutdown();
    grpc_server.reset();
    jobs.reset();
    queries.reset();
    services.clear();
    tenancy.reset();
    acl.reset();
    engine.reset();
  }
};

// Gauges and counters read at scrape time (server/metrics.h lists them).
static absl::Status AddServerGauges(MetricsRegistry* m, JobManager* jobs, core::Engine* engine,
                                    core::ThreadPool* queries, const Authenticator* auth) {
  RETURN_IF_ERROR(m->AddGauge("gradzoo_job_queue_depth", "Jobs waiting for a job worker.",
                              [jobs] { return static_cast<double>(jobs->QueueDepth()); }));
  RETURN_IF_ERROR(m->AddGauge("gradzoo_query_queue_depth",
                              "Queries waiting for a query worker.",
                              [queries] { return static_cast<double>(queries->QueueDepth()); }));
  RETURN_IF_ERROR(m->AddGauge("gradzoo_stored_bytes",
                              "Bytes of the stored zoo archives (sum over loaded zoos).", [engine] {
                                double sum = 0;
                                for (const core::ZooEntry& e : engine->ListZoos()) {
                                  if (e.zoo) sum += static_cast<double>(e.zoo->stored_bytes);
                                }
                                return sum;
                              }));
  RETURN_IF_ERROR(m->AddGauge("gradzoo_zoos", "Zoos in the store (corrupt ones included).",
                              [engine] { return static_cast<double>(engine->ListZoos().size()); }));
  if (auth != nullptr) {
    RETURN_IF_ERROR(m->AddCounter("gradzoo_auth_rejected_calls_total",
                                  "Calls refused UNAUTHENTICATED before reaching a service.",
                                  [auth] { return static_cast<double>(auth->rejected_calls()); }));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  const core::BlasInfo blas = core::DetectBlas();
  if (blas.is_reference()) {
    spdlog::warn("LibTorch runs on the reference BLAS ({}), ~30x slower: install "
                 "libopenblas0-pthread",
                 blas.library_path);
  } else {
    spdlog::info("BLAS: {} ({}), torch threads: {}", blas.name, blas.library_path,
                 core::TorchThreads());
  }
  // Security first: a bad tokens file or certificate refuses the start before anything is
  // loaded or bound (fail closed).
  if (!options.tokens_file.empty()) {
    AuthOptions ao;
    ao.tokens_file = options.tokens_file;
    ASSIGN_OR_RETURN(impl->auth, Authenticator::Load(ao));
  }
  TlsOptions tls;
  tls.cert_file = options.tls_cert;
  tls.key_file = options.tls_key;
  tls.client_ca_file = options.tls_client_ca;
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   MakeServerCredentials(tls, impl->auth));
  if (impl->auth == nullptr && !tls.enabled() && !IsLoopbackListen(options.listen)) {
    spdlog::warn("listening on {} without --tokens-file: anyone who can reach it may read and "
                 "delete every zoo",
                 options.listen);
  }
  impl->metrics = std::make_unique<MetricsRegistry>();

  core::Engine::Options eo;
  eo.data_dir = options.data_dir;
  eo.device = options.device;
  eo.max_points_per_query = options.max_points_per_query;
  ASSIGN_OR_RETURN(impl->engine, core::Engine::Create(eo));
  impl->queries =
      std::make_unique<core::ThreadPool>("queries", options.query_threads, options.max_queued_queries);
  JobManager::Options jo;
  jo.workers = options.job_workers;
  jo.max_queued = options.max_queued_jobs;
  jo.data_dir = options.data_dir;
  jo.max_running_per_user = options.max_running_jobs_per_user;
  jo.max_queued_per_user = options.max_queued_jobs_per_user;
  ASSIGN_OR_RETURN(impl->jobs, JobManager::Create(impl->engine.get(), jo));
  ASSIGN_OR_RETURN(impl->acl, core::AclStore::Open(options.data_dir));
  impl->tenancy = std::make_unique<Tenancy>(impl->acl.get(), impl->auth != nullptr);

  ServiceDeps deps;
  deps.engine = impl->engine.get();
  deps.jobs = impl->jobs.get();
  deps.queries = impl->queries.get();
  deps.start_time = absl::Now();
  deps.max_receive_message_bytes = options.max_receive_message_bytes;
  deps.auth = impl->auth.get();
  deps.tenancy = impl->tenancy.get();
  deps.max_stored_bytes_per_user = options.max_stored_bytes_per_user;
  deps.default_deadline = options.default_deadline;
  impl->services = MakeServices(deps);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC enables SO_REUSEPORT by default, which would let a second server share a taken port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, creds, &impl->port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options.max_send_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcLogInterceptorFactory>());
  interceptors.push_back(MakeMetricsInterceptorFactory(impl->metrics.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  for (auto& s : impl->services) builder.RegisterService(s.get());
  impl->grpc_server = builder.BuildAndStart();
  if (!impl->grpc_server || impl->port == 0) {
    impl->grpc_server.reset();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        ": the address is invalid or the port is taken (is another gradzoo-server running?)"));
  }
  RETURN_IF_ERROR(AddServerGauges(impl->metrics.get(), impl->jobs.get(), impl->engine.get(),
                                  impl->queries.get(), impl->auth.get()));
  if (!options.metrics_listen.empty()) {
    MetricsHttpServer::Options mo;
    mo.listen = options.metrics_listen;
    auto http = MetricsHttpServer::Start(impl->metrics.get(), mo);
    if (!http.ok()) {
      return absl::Status(http.status().code(),
                          absl::StrCat("metrics endpoint: ", http.status().message()));
    }
    impl->metrics_http = *std::move(http);
  }
  grpc::HealthCheckServiceInterface* health = impl->grpc_server->GetHealthCheckService();
  health->SetServingStatus(false);
  // Ready: store loaded, workers up.
  health->SetServingStatus(true);
  spdlog::info("gradzoo-server listening on port {} (data dir {}, device {}, {}, {})", impl->port,
               options.data_dir, impl->engine->Facts().device,
               tls.enabled() ? (tls.client_ca_file.empty() ? "TLS" : "mutual TLS") : "plaintext",
               impl->auth ? "tokens required" : "no authentication");
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Shutdown(absl::Seconds(0)); }

int Server::port() const { return impl_->port; }
int Server::metrics_port() const { return impl_->metrics_http ? impl_->metrics_http->port() : 0; }

void Server::Shutdown(absl::Duration deadline) {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  spdlog::info("shutting down: health NOT_SERVING, cancelling jobs");
  if (impl_->grpc_server) impl_->grpc_server->GetHealthCheckService()->SetServingStatus(false);
  if (impl_->jobs) impl_->jobs->Shutdown();
  if (impl_->grpc_server) impl_->grpc_server->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
}

void Server::Wait() {
  if (impl_->grpc_server) impl_->grpc_server->Wait();
}

}  // namespace gradzoo::server
