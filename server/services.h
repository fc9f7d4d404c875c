// The gradzoo.v1 gRPC services: thin handlers that validate and convert the request, call one
// core (or JobManager) function, convert the result and map the status (STYLE rule 2).
//
// Quick lookups answer inline (they only read immutable snapshots); gradient fields run on the
// query pool and stream their chunks; training runs as jobs. RPCs whose implementation lands in
// a later release answer UNIMPLEMENTED naming what is missing.
#ifndef GRADZOO_SERVER_SERVICES_H_
#define GRADZOO_SERVER_SERVICES_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "core/engine.h"
#include "core/util/thread_pool.h"
#include "server/auth.h"
#include "server/job_manager.h"
#include "server/tenancy.h"

namespace gradzoo::server {

// Borrowed pointers; they must outlive the services (the Server owns them all).
struct ServiceDeps {
  core::Engine* engine = nullptr;
  JobManager* jobs = nullptr;
  core::ThreadPool* queries = nullptr;
  absl::Time start_time;
  int64_t max_receive_message_bytes = 0;
  // Authentication (null: off, every caller is the local admin) and tenancy (null: off).
  const Authenticator* auth = nullptr;
  Tenancy* tenancy = nullptr;
  // Quota on the bytes of stored zoos one user owns (0 = none); see StoredBytesQuota.
  int64_t max_stored_bytes_per_user = 0;
  // Computation budget of a query whose client set no deadline (zero or less = unbounded);
  // see CallBudget in server/services/common.h.
  absl::Duration default_deadline = absl::ZeroDuration();
};

// Every gradzoo.v1 service, ready to register with a ServerBuilder.
std::vector<std::unique_ptr<grpc::Service>> MakeServices(const ServiceDeps& deps);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_SERVICES_H_
