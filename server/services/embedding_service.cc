#include "server/services/common.h"

#include "gradzoo/v1/embedding.grpc.pb.h"

namespace gradzoo::server {
namespace {

class EmbeddingServiceImpl final : public v1::EmbeddingService::CallbackService {
 public:
  GRADZOO_UNIMPLEMENTED_UNARY(GetEmbedder, "network embedders (seed 003)")
  GRADZOO_UNIMPLEMENTED_UNARY(ListEmbedders, "network embedders (seed 003)")
  GRADZOO_UNIMPLEMENTED_UNARY(DeleteEmbedder, "network embedders (seed 003)")
  GRADZOO_UNIMPLEMENTED_UNARY(EmbedModels, "embedding lookups")
  GRADZOO_UNIMPLEMENTED_UNARY(FindNeighbors, "embedding neighbours")
  GRADZOO_UNIMPLEMENTED_UNARY(RunProbe, "embedding probes")
};

}  // namespace

std::unique_ptr<grpc::Service> MakeEmbeddingService(const ServiceDeps& deps) { return std::make_unique<EmbeddingServiceImpl>(); }

}  // namespace gradzoo::server
