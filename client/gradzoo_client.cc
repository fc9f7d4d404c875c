#include "client/gradzoo_client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/client_interceptor.h>

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gradzoo/v1/gradient.grpc.pb.h"
#include "gradzoo/v1/info.grpc.pb.h"
#include "gradzoo/v1/job.grpc.pb.h"
#include "gradzoo/v1/zoo.grpc.pb.h"

namespace gradzoo::client {

namespace {

std::string Sha256Hex(const std::string& bytes) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// Adds `authorization: Bearer <token>` to every call of a channel, so typed stubs (and the area
// clients sharing the channel) need no per-call code. Works on plaintext and TLS channels alike
// (gRPC call credentials would be dropped on plaintext ones).
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(const std::string& token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerInterceptor(&header_);
  }

 private:
  const std::string header_;  // lives as long as the channel (which owns the factory)
};

absl::Status CheckToken(const std::string& token) {
  if (token.size() > 1024) return absl::InvalidArgumentError("token longer than 1024 characters");
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "token has a blank or non-printable character (a stray newline from a token file?)");
    }
  }
  return absl::OkStatus();
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Generic health check messages (grpc.health.v1), encoded by hand so the client does not need
// the health proto: HealthCheckRequest{service=""} is empty; the response has field 1 (enum).
class HealthStub {
 public:
  explicit HealthStub(std::shared_ptr<grpc::Channel> ch) : channel_(std::move(ch)) {}
  absl::StatusOr<bool> Check(absl::Duration timeout) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    grpc::ByteBuffer req, resp;
    grpc::Slice empty("", 0);
    req = grpc::ByteBuffer(&empty, 1);
    grpc::Status s;
    grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                     grpc::internal::RpcMethod::NORMAL_RPC);
    s = grpc::internal::BlockingUnaryCall(channel_.get(), method, &ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    std::vector<grpc::Slice> slices;
    if (!resp.Dump(&slices).ok()) return absl::InternalError("bad health response");
    std::string bytes;
    for (auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    // Field 1, varint: 0x08 <status>. SERVING = 1. Absent field = UNKNOWN (0).
    return bytes.size() >= 2 && bytes[0] == 0x08 && bytes[1] == 0x01;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& s) { return FromGrpc(s); }

void EncodeTensor(const std::vector<int64_t>& shape, const float* data, v1::Tensor* out) {
  int64_t n = 1;
  out->clear_shape();
  for (int64_t d : shape) {
    out->add_shape(d);
    n *= d;
  }
  out->set_dtype(v1::D_TYPE_FLOAT32);
  out->set_data(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(float));
}

bool IsFinalState(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

struct Client::Impl {
  Options options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::ZooService::Stub> zoos;
  std::unique_ptr<v1::TrainingJobService::Stub> jobs;
  std::unique_ptr<v1::GradientService::Stub> gradients;
  std::unique_ptr<v1::InfoService::Stub> info;

  void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) const {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
  }
  // Runs a unary call with the default deadline.
  template <typename Req, typename Resp, typename Fn>
  absl::StatusOr<Resp> Unary(const Req& req, Fn fn) const {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, options.timeout);
    Resp resp;
    grpc::Status s = fn(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    return resp;
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
std::shared_ptr<grpc::Channel> Client::channel() const { return impl_->channel; }
const Client::Options& Client::options() const { return impl_->options; }
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& address,
                                                        const Options& options) {
  if (address.empty()) return absl::InvalidArgumentError("server address is empty");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  if (!options.token.empty()) {
    if (absl::Status s = CheckToken(options.token); !s.ok()) return s;
  }
  if (options.tls_client_cert.empty() != options.tls_client_key.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs both the client certificate and its key");
  }
  const bool tls = options.use_tls || !options.tls_root_certs.empty() ||
                   !options.tls_client_cert.empty();
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_cert_chain = options.tls_client_cert;
    ssl.pem_private_key = options.tls_client_key;
    creds = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.token.empty()) {
    impl->channel = grpc::CreateCustomChannel(address, creds, args);
  } else {
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<BearerInterceptorFactory>(options.token));
    impl->channel = grpc::experimental::CreateCustomChannelWithInterceptors(
        address, creds, args, std::move(creators));
  }
  impl->zoos = v1::ZooService::NewStub(impl->channel);
  impl->jobs = v1::TrainingJobService::NewStub(impl->channel);
  impl->gradients = v1::GradientService::NewStub(impl->channel);
  impl->info = v1::InfoService::NewStub(impl->channel);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

absl::StatusOr<v1::GetServerInfoResponse> Client::GetServerInfo() {
  return impl_->Unary<v1::GetServerInfoRequest, v1::GetServerInfoResponse>(
      v1::GetServerInfoRequest(), [&](auto* ctx, const auto& req, auto* resp) {
        return impl_->info->GetServerInfo(ctx, req, resp);
      });
}

absl::StatusOr<bool> Client::CheckHealth() {
  return HealthStub(impl_->channel).Check(impl_->options.timeout);
}

absl::StatusOr<std::vector<v1::Zoo>> Client::ListZoos() {
  std::vector<v1::Zoo> all;
  v1::ListZoosRequest req;
  req.set_page_size(1000);
  do {
    auto resp = impl_->Unary<v1::ListZoosRequest, v1::ListZoosResponse>(
        req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->ListZoos(ctx, r, out); });
    if (!resp.ok()) return resp.status();
    for (auto& z : *resp->mutable_zoos()) all.push_back(std::move(z));
    req.set_page_token(resp->next_page_token());
  } while (!req.page_token().empty());
  return all;
}

absl::StatusOr<v1::Zoo> Client::GetZoo(const std::string& name) {
  v1::GetZooRequest req;
  req.set_name(name);
  auto resp = impl_->Unary<v1::GetZooRequest, v1::GetZooResponse>(
      req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->GetZoo(ctx, r, out); });
  if (!resp.ok()) return resp.status();
  return resp->zoo();
}

absl::Status Client::DeleteZoo(const std::string& name) {
  v1::DeleteZooRequest req;
  req.set_name(name);
  return impl_
      ->Unary<v1::DeleteZooRequest, v1::DeleteZooResponse>(
          req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->DeleteZoo(ctx, r, out); })
      .status();
}

absl::StatusOr<v1::Zoo> Client::ShareZoo(const std::string& name,
                                         const std::vector<std::string>& readers) {
  v1::ShareZooRequest req;
  req.set_name(name);
  for (const std::string& r : readers) req.add_readers(r);
  absl::StatusOr<v1::ShareZooResponse> resp =
      impl_->Unary<v1::ShareZooRequest, v1::ShareZooResponse>(
          req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->ShareZoo(ctx, r, out); });
  if (!resp.ok()) return resp.status();
  return resp->zoo();
}

absl::StatusOr<std::vector<v1::Model>> Client::ListModels(const std::string& zoo_name,
                                                          bool include_weights) {
  std::vector<v1::Model> all;
  v1::ListModelsRequest req;
  req.set_parent(zoo_name);
  req.set_page_size(1000);
  req.set_include_weights(include_weights);
  do {
    auto resp = impl_->Unary<v1::ListModelsRequest, v1::ListModelsResponse>(
        req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->ListModels(ctx, r, out); });
    if (!resp.ok()) return resp.status();
    for (auto& m : *resp->mutable_models()) all.push_back(std::move(m));
    req.set_page_token(resp->next_page_token());
  } while (!req.page_token().empty());
  return all;
}

absl::StatusOr<v1::Model> Client::GetModel(const std::string& name) {
  v1::GetModelRequest req;
  req.set_name(name);
  auto resp = impl_->Unary<v1::GetModelRequest, v1::GetModelResponse>(
      req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->GetModel(ctx, r, out); });
  if (!resp.ok()) return resp.status();
  return resp->model();
}

absl::StatusOr<v1::Model> Client::ImportModel(const std::string& zoo_name,
                                              const v1::Model& model) {
  v1::ImportModelRequest req;
  req.set_parent(zoo_name);
  *req.mutable_model() = model;
  auto resp = impl_->Unary<v1::ImportModelRequest, v1::ImportModelResponse>(
      req, [&](auto* ctx, const auto& r, auto* out) { return impl_->zoos->ImportModel(ctx, r, out); });
  if (!resp.ok()) return resp.status();
  return resp->model();
}

absl::StatusOr<std::string> Client::ExportZoo(const std::string& name) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx, impl_->options.stream_timeout);
  v1::ExportZooRequest req;
  req.set_name(name);
  auto reader = impl_->zoos->ExportZoo(&ctx, req);
  v1::ExportZooResponse msg;
  std::string archive, sha;
  while (reader->Read(&msg)) {
    archive.append(msg.chunk());
    if (!msg.sha256().empty()) sha = msg.sha256();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  if (sha.empty() || sha != Sha256Hex(archive)) {
    return absl::DataLossError("the exported archive does not match the server's SHA-256");
  }
  return archive;
}

absl::StatusOr<v1::Zoo> Client::ImportZoo(const std::string& name, const std::string& archive) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx, impl_->options.stream_timeout);
  v1::ImportZooResponse resp;
  auto writer = impl_->zoos->ImportZoo(&ctx, &resp);
  constexpr size_t kChunk = 1 << 20;
  size_t offset = 0;
  do {
    v1::ImportZooRequest msg;
    if (offset == 0) msg.set_name(name);
    const size_t n = std::min(kChunk, archive.size() - offset);
    msg.set_chunk(archive.data() + offset, n);
    offset += n;
    if (!writer->Write(msg)) break;  // the server ended the call; Finish says why
  } while (offset < archive.size());
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s);
  return resp.zoo();
}

absl::StatusOr<v1::TrainingJob> Client::CreateZooTrainingJob(const std::string& zoo_id,
                                                             const v1::ZooSpec& spec,
                                                             const std::string& request_id) {
  v1::CreateTrainingJobRequest req;
  req.mutable_job()->mutable_zoo_training()->set_zoo_id(zoo_id);
  *req.mutable_job()->mutable_zoo_training()->mutable_spec() = spec;
  req.set_request_id(request_id);
  auto resp = impl_->Unary<v1::CreateTrainingJobRequest, v1::CreateTrainingJobResponse>(
      req, [&](auto* ctx, const auto& r, auto* out) {
        return impl_->jobs->CreateTrainingJob(ctx, r, out);
      });
  if (!resp.ok()) return resp.status();
  return resp->job();
}

absl::StatusOr<v1::TrainingJob> Client::GetJob(const std::string& name) {
  v1::GetTrainingJobRequest req;
  req.set_name(name);
  auto resp = impl_->Unary<v1::GetTrainingJobRequest, v1::GetTrainingJobResponse>(
      req, [&](auto* ctx, const auto& r, auto* out) { return impl_->jobs->GetTrainingJob(ctx, r, out); });
  if (!resp.ok()) return resp.status();
  return resp->job();
}

absl::StatusOr<std::vector<v1::TrainingJob>> Client::ListJobs() {
  std::vector<v1::TrainingJob> all;
  v1::ListTrainingJobsRequest req;
  req.set_page_size(1000);
  do {
    auto resp = impl_->Unary<v1::ListTrainingJobsRequest, v1::ListTrainingJobsResponse>(
        req, [&](auto* ctx, const auto& r, auto* out) {
          return impl_->jobs->ListTrainingJobs(ctx, r, out);
        });
    if (!resp.ok()) return resp.status();
    for (auto& j : *resp->mutable_jobs()) all.push_back(std::move(j));
    req.set_page_token(resp->next_page_token());
  } while (!req.page_token().empty());
  return all;
}

absl::StatusOr<v1::TrainingJob> Client::CancelJob(const std::string& name) {
  v1::CancelTrainingJobRequest req;
  req.set_name(name);
  auto resp = impl_->Unary<v1::CancelTrainingJobRequest, v1::CancelTrainingJobResponse>(
      req, [&](auto* ctx, const auto& r, auto* out) {
        return impl_->jobs->CancelTrainingJob(ctx, r, out);
      });
  if (!resp.ok()) return resp.status();
  return resp->job();
}

absl::StatusOr<v1::TrainingJob> Client::WaitForJob(
    const std::string& name, const std::function<void(const v1::TrainingJob&)>& on_update,
    absl::Duration timeout) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx, timeout);
  v1::WatchTrainingJobRequest req;
  req.set_name(name);
  std::unique_ptr<grpc::ClientReader<v1::WatchTrainingJobResponse>> reader =
      impl_->jobs->WatchTrainingJob(&ctx, req);
  v1::WatchTrainingJobResponse msg;
  v1::TrainingJob last;
  bool any = false;
  while (reader->Read(&msg)) {
    last = msg.job();
    any = true;
    if (on_update) on_update(last);
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  if (!any || !IsFinalState(last.state())) {
    return absl::UnavailableError("the watch stream ended before the job finished; call again");
  }
  return last;
}

absl::StatusOr<FloatArray> Client::DecodeTensor(const v1::Tensor& t) {
  FloatArray a;
  int64_t n = 1;
  for (int64_t d : t.shape()) {
    if (d < 0) return absl::DataLossError("tensor with a negative extent");
    n *= d;
    a.shape.push_back(d);
  }
  const size_t elem = t.dtype() == v1::D_TYPE_FLOAT64 ? 8 : t.dtype() == v1::D_TYPE_FLOAT32 ? 4 : 0;
  if (elem == 0) return absl::DataLossError("tensor dtype is not float32 or float64");
  if (t.data().size() != static_cast<size_t>(n) * elem) {
    return absl::DataLossError("tensor byte count does not match its shape");
  }
  a.data.resize(n);
  if (n == 0) return a;
  if (elem == 4) {
    std::memcpy(a.data.data(), t.data().data(), t.data().size());
  } else {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, t.data().data() + 8 * i, 8);
      a.data[i] = static_cast<float>(v);
    }
  }
  return a;
}

absl::StatusOr<std::vector<GradientField>> Client::ComputeGradientField(
    const v1::ComputeGradientFieldRequest& request) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx, impl_->options.stream_timeout);
  auto reader = impl_->gradients->ComputeGradientField(&ctx, request);
  std::vector<GradientField> fields;
  v1::ComputeGradientFieldResponse msg;
  auto append = [](const v1::Tensor& t, std::vector<float>* out) -> absl::Status {
    if (t.shape_size() == 0 && t.data().empty()) return absl::OkStatus();
    auto a = DecodeTensor(t);
    if (!a.ok()) return a.status();
    out->insert(out->end(), a->data.begin(), a->data.end());
    return absl::OkStatus();
  };
  while (reader->Read(&msg)) {
    if (fields.empty() || fields.back().model != msg.model() || msg.offset() == 0) {
      GradientField f;
      f.model = msg.model();
      f.n = msg.total_points();
      if (msg.gradients().shape_size() == 3) {
        f.output_dim = static_cast<int>(msg.gradients().shape(1));
        f.input_dim = static_cast<int>(msg.gradients().shape(2));
      }
      fields.push_back(std::move(f));
    }
    GradientField& f = fields.back();
    for (auto [t, out] : {std::pair{&msg.points(), &f.points}, {&msg.gradients(), &f.gradients},
                          {&msg.outputs(), &f.outputs}, {&msg.theory_gradients(), &f.theory},
                          {&msg.relative_errors(), &f.relative_errors}}) {
      if (absl::Status s = append(*t, out); !s.ok()) {
        ctx.TryCancel();
        return s;
      }
    }
    if (msg.has_summary()) {
      f.has_summary = true;
      f.summary = msg.summary();
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  for (const GradientField& f : fields) {
    if (static_cast<int64_t>(f.gradients.size()) != f.n * f.output_dim * f.input_dim) {
      return absl::DataLossError(absl::StrCat("field of ", f.model, " arrived incomplete"));
    }
  }
  return fields;
}

}  // namespace gradzoo::client
