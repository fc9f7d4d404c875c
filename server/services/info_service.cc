#include "server/services/common.h"

#include "gradzoo/v1/info.grpc.pb.h"

namespace gradzoo::server {
namespace {

class InfoServiceImpl final : public v1::InfoService::CallbackService {
 public:
  explicit InfoServiceImpl(const ServiceDeps& deps) : deps_(deps) {}
  ServerUnaryReactor* GetServerInfo(CallbackServerContext* ctx, const v1::GetServerInfoRequest*,
                                    v1::GetServerInfoResponse* resp) override {
    const core::EngineFacts f = deps_.engine->Facts();
    resp->set_version(f.version);
    resp->set_device(f.device);
    resp->set_blas(f.blas);
    resp->set_torch_threads(f.torch_threads);
    resp->set_torch_version(f.torch_version);
    resp->set_max_points_per_query(f.max_points_per_query);
    resp->set_max_receive_message_bytes(deps_.max_receive_message_bytes);
    resp->set_data_dir(f.data_dir);
    resp->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - deps_.start_time));
    return Reply(ctx, absl::OkStatus());
  }

 private:
  const ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeInfoService(const ServiceDeps& deps) { return std::make_unique<InfoServiceImpl>(deps); }

}  // namespace gradzoo::server
