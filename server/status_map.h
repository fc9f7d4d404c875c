// The one mapping from core's absl::Status to gRPC status (STYLE rule 4).
//
// Codes carry over one to one (absl and gRPC share the numbering); UNKNOWN never leaves the
// server: it becomes INTERNAL. The message is kept, so a client sees what to fix.
#ifndef GRADZOO_SERVER_STATUS_MAP_H_
#define GRADZOO_SERVER_STATUS_MAP_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace gradzoo::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_STATUS_MAP_H_
