// libgradzoo_client: a typed C++ API for gradzoo-server.
//
// Every call has a deadline (Options::timeout, or the call's own), returns absl::Status /
// StatusOr carrying the server's gRPC code and message, and hides wire details: list calls
// follow page tokens, streamed results are assembled, waiting for a job is one call.
//
//   ASSIGN_OR_RETURN(auto client, gradzoo::client::Client::Connect("127.0.0.1:50551"));
//   ASSIGN_OR_RETURN(v1::TrainingJob job, client->CreateZooTrainingJob("demo", spec));
//   ASSIGN_OR_RETURN(job, client->WaitForJob(job.name(), on_progress));
//   ASSIGN_OR_RETURN(auto fields, client->ComputeGradientField(request));
//
// client/examples/train_and_query.cc is a complete program (built with the project, run by a
// test). This header covers zoos, models, jobs and fields; the other services are reached
// through this client's channel, token and deadlines by gradient_analysis.h (functions taking
// a Client&: regions, partitions, layer Jacobians, graphs, path rarity), AnalysisClient (analysis_client.h: orthogonality, PCA, PLSR, CKA, scaffold gradients) and
// EmbeddingClient (embedding_client.h: embedders, embeddings, neighbours, probes).
//
// Names are the full resource names of the API: "zoos/{zoo}", "zoos/{zoo}/models/{model}",
// "trainingJobs/{job}" (ids match [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?). The exceptions
// are CreateZooTrainingJob's `zoo_id` and ImportZoo's `name`, which take the new zoo's id.
//
// Errors (absl::StatusCode = the gRPC code the server sent):
//   INVALID_ARGUMENT    malformed name or request; the message names the field
//   NOT_FOUND           unknown zoo, model, job or embedder (or one another user owns)
//   ALREADY_EXISTS      creating a zoo or embedder whose id is taken
//   FAILED_PRECONDITION e.g. deleting a zoo a running job writes
//   RESOURCE_EXHAUSTED  request over a server limit (points per query, message size, quota)
//                       or a full queue; the message says which and whether to retry
//   UNAUTHENTICATED     the server requires a token (Options::token) and got none or a bad one
//   DATA_LOSS           stored data failed its checksum, or a reply was malformed
//   UNAVAILABLE         server unreachable or shutting down: retry later
//   DEADLINE_EXCEEDED   the call's deadline passed (the server stops computing for it)
//   CANCELLED           the job was cancelled (WaitForJob does not return this: see there)
//
// Deadlines: unary calls use Options::timeout (30 s), streamed queries (fields)
// Options::stream_timeout (10 min), WaitForJob its own `timeout`. When a deadline passes the
// call fails DEADLINE_EXCEEDED and the server cancels its computation.
//
// Thread-safe: one Client may be shared by many threads (calls are independent; the channel
// multiplexes them).
#ifndef GRADZOO_CLIENT_GRADZOO_CLIENT_H_
#define GRADZOO_CLIENT_GRADZOO_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gradzoo/v1/gradient.pb.h"
#include "gradzoo/v1/info.pb.h"
#include "gradzoo/v1/job.pb.h"
#include "gradzoo/v1/zoo.pb.h"

namespace gradzoo::client {

namespace v1 = ::gradzoo::v1;

// A float32 array decoded from the wire.
struct FloatArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// One model's gradient field, assembled from its chunks. Arrays are row-major float32:
// point i, output o, input j is gradients[(i * output_dim + o) * input_dim + j] = d y_o / d x_j
// at points[i * input_dim + j]; for a grid query the points run with the first axis slowest.
// `summary` (compare_with_theory) holds the error statistics defined in gradient.proto.
struct GradientField {
  std::string model;
  int64_t n = 0;
  int input_dim = 0;
  int output_dim = 0;
  std::vector<float> points;           // [n, in]
  std::vector<float> gradients;        // [n, out, in]
  std::vector<float> outputs;          // [n, out] when asked for
  std::vector<float> theory;           // [n, out, in] when compare_with_theory
  std::vector<float> relative_errors;  // [n, out] when include_error_field
  bool has_summary = false;
  v1::GradientErrorSummary summary;
};

class Client {
 public:
  struct Options {
    // Deadline of each unary call.
    absl::Duration timeout = absl::Seconds(30);
    // Deadline of streamed queries (fields).
    absl::Duration stream_timeout = absl::Minutes(10);
    // Largest message accepted from the server.
    int max_receive_message_bytes = 64 << 20;
    // Sent as call metadata `authorization: Bearer <token>` on every call of this client and
    // of the area clients built on its channel() (servers started with --tokens-file). Empty:
    // no token. 1-1024 printable ASCII characters without blanks; never logged.
    std::string token;
    // TLS: PEM root certificates the server's certificate must chain to (the file's contents,
    // not its path). Empty with use_tls false: plaintext.
    std::string tls_root_certs;
    // TLS with the system's root certificates when tls_root_certs is empty.
    bool use_tls = false;
    // Mutual TLS: this client's PEM certificate chain and private key (contents).
    std::string tls_client_cert;
    std::string tls_client_key;
    // Name the server certificate is checked against, when it differs from the address's host.
    std::string tls_server_name;
  };

  // Creates a client for `address` (host:port). Does not contact the server: a wrong address
  // shows up as UNAVAILABLE on the first call (CheckHealth is a cheap first call). INVALID_ARGUMENT
  // for an empty address, a token with characters metadata cannot carry, or half a client
  // certificate (cert without key).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& address,
                                                         const Options& options);
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& address) {
    return Connect(address, Options());
  }
  ~Client();

  // Server facts: version, device, BLAS, limits.
  absl::StatusOr<v1::GetServerInfoResponse> GetServerInfo();
  // Standard gRPC health check of the whole server: true when SERVING.
  absl::StatusOr<bool> CheckHealth();

  // Zoos and models. List calls return every page.
  absl::StatusOr<std::vector<v1::Zoo>> ListZoos();
  absl::StatusOr<v1::Zoo> GetZoo(const std::string& name);
  absl::Status DeleteZoo(const std::string& name);
  // Sets the users zoo `name` is shared with, read-only (replacing the list; empty = private).
  // Owner or admin only; returns the zoo with its readers.
  absl::StatusOr<v1::Zoo> ShareZoo(const std::string& name,
                                   const std::vector<std::string>& readers);
  absl::StatusOr<std::vector<v1::Model>> ListModels(const std::string& zoo_name,
                                                    bool include_weights);
  absl::StatusOr<v1::Model> GetModel(const std::string& name);
  // Adds a network trained elsewhere to zoo `zoo_name` (created if missing): `model` carries
  // its layers as float tensors (weight [out, in], bias [out]) and optional metadata. Returns
  // the stored model (without weights).
  absl::StatusOr<v1::Model> ImportModel(const std::string& zoo_name, const v1::Model& model);
  // The zoo as a data-only archive (format: core/store/zoo_codec.h), checked against the
  // SHA-256 the server sends (DATA_LOSS on mismatch).
  absl::StatusOr<std::string> ExportZoo(const std::string& name);
  // Creates zoo `name` from an archive written by ExportZoo (on any server).
  absl::StatusOr<v1::Zoo> ImportZoo(const std::string& name, const std::string& archive);

  // Training jobs.
  absl::StatusOr<v1::TrainingJob> CreateZooTrainingJob(const std::string& zoo_id,
                                                       const v1::ZooSpec& spec,
                                                       const std::string& request_id = "");
  absl::StatusOr<v1::TrainingJob> GetJob(const std::string& name);
  absl::StatusOr<std::vector<v1::TrainingJob>> ListJobs();
  absl::StatusOr<v1::TrainingJob> CancelJob(const std::string& name);
  // Watches the job (WatchTrainingJob stream) until it reaches a final state, calling
  // `on_update` on the calling thread for each snapshot (the first immediately); returns the
  // final job. A FAILED or CANCELLED job is returned, not an error: check state() and
  // error(). Errors: NOT_FOUND (unknown job), DEADLINE_EXCEEDED when `timeout` passes (the job
  // keeps running), UNAVAILABLE when the stream breaks before the end (call again: watching
  // is idempotent).
  absl::StatusOr<v1::TrainingJob> WaitForJob(
      const std::string& name, const std::function<void(const v1::TrainingJob&)>& on_update,
      absl::Duration timeout = absl::Hours(24));

  // Streams a gradient field and assembles one GradientField per model, in server order
  // (request.selection: models as listed, then a zoo's models in zoo order). DATA_LOSS when
  // chunks are missing or out of order.
  absl::StatusOr<std::vector<GradientField>> ComputeGradientField(
      const v1::ComputeGradientFieldRequest& request);

  // Decodes a wire tensor (float32 or float64) into floats, checking its byte count.
  static absl::StatusOr<FloatArray> DecodeTensor(const v1::Tensor& t);

  // For the area clients in client/*.h (analysis, embeddings, ...): the shared channel and the
  // default deadlines.
  std::shared_ptr<grpc::Channel> channel() const;
  const Options& options() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// gRPC status -> absl::Status with the same code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);
// A float32 wire tensor of `shape` holding `data` (little-endian, row-major).
void EncodeTensor(const std::vector<int64_t>& shape, const float* data, v1::Tensor* out);

// True for the job states after which nothing changes.
bool IsFinalState(v1::JobState state);

}  // namespace gradzoo::client

#endif  // GRADZOO_CLIENT_GRADZOO_CLIENT_H_
