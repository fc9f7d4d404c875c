// train_and_query: the gradzoo C++ client (client/gradzoo_client.h) in one page.
//
// Connects to a gradzoo-server, trains a small mul2 zoo (one model, lambda 0: y1 = x1 x2,
// y2 = x3 x4), waits for the job while printing its progress, then asks for the model's input
// gradients on a grid over (x1, x2), with the task's exact gradient for comparison, and prints
// the error summary and a few arrows next to the exact ones (d y1 / d(x1, x2) = (x2, x1)).
//
//   gradzoo-server --listen 127.0.0.1:50551 --data-dir /tmp/gz &
//   BUILD/client/examples/train_and_query [--server HOST:PORT] [--zoo ID] [--steps N]
//
// Running it twice reuses the zoo (GetZoo answers it, so nothing is retrained).
// Exit status: 0 ok, 1 a call failed (gRPC code and message on stderr), 2 bad command line.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "client/gradzoo_client.h"

namespace {

namespace v1 = gradzoo::client::v1;
using gradzoo::client::Client;

struct Flags {
  std::string server = "127.0.0.1:50551";
  std::string zoo = "example";
  int steps = 2000;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  if (const char* env = std::getenv("GRADZOO_SERVER"); env != nullptr && *env != '\0') {
    f->server = env;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    if (a == "--server") {
      f->server = argv[++i];
    } else if (a == "--zoo") {
      f->zoo = argv[++i];
    } else if (a == "--steps") {
      if (!absl::SimpleAtoi(argv[++i], &f->steps) || f->steps <= 0) return false;
    } else {
      return false;
    }
  }
  return true;
}

// Makes sure zoo `id` exists: trains it when GetZoo answers NOT_FOUND.
absl::Status EnsureZoo(Client& client, const Flags& flags) {
  absl::StatusOr<v1::Zoo> existing = client.GetZoo("zoos/" + flags.zoo);
  if (existing.ok()) {
    std::printf("zoo %s exists (%d models); reusing it\n", existing->name().c_str(),
                existing->model_count());
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();

  v1::ZooSpec spec;
  spec.mutable_task()->set_name("mul2");
  spec.mutable_task()->add_lambdas(0.0);
  spec.add_seeds(0);
  spec.mutable_architecture()->add_hidden_widths(32);
  spec.mutable_architecture()->add_hidden_widths(32);
  spec.mutable_training()->set_steps(flags.steps);
  spec.mutable_training()->set_batch_size(256);
  // The request id makes a retried submission return the same job instead of a second one.
  absl::StatusOr<v1::TrainingJob> job =
      client.CreateZooTrainingJob(flags.zoo, spec, "train_and_query-" + flags.zoo);
  if (!job.ok()) return job.status();
  std::printf("submitted %s\n", job->name().c_str());

  // WaitForJob follows the job's progress stream until a final state; the callback runs on
  // each update. The overall wait is bounded (here 10 minutes).
  job = client.WaitForJob(
      job->name(),
      [](const v1::TrainingJob& j) {
        std::printf("\r  %-10s step %d/%d  validation loss %.3g   ",
                    v1::JobState_Name(j.state()).substr(10).c_str(), j.progress().step(),
                    j.progress().total_steps(), j.progress().mean_validation_loss());
        std::fflush(stdout);
      },
      absl::Minutes(10));
  std::printf("\n");
  if (!job.ok()) return job.status();
  if (job->state() != v1::JOB_STATE_SUCCEEDED) {
    return absl::AbortedError("job ended " + v1::JobState_Name(job->state()) + ": " +
                              job->error());
  }
  return absl::OkStatus();
}

absl::Status Run(const Flags& flags) {
  // Connect() does not contact the server; every call carries Options::timeout as deadline.
  Client::Options options;
  options.timeout = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<Client>> connected = Client::Connect(flags.server, options);
  if (!connected.ok()) return connected.status();
  Client& client = **connected;

  absl::StatusOr<bool> serving = client.CheckHealth();
  if (!serving.ok()) return serving.status();
  if (!*serving) return absl::UnavailableError("the server is not SERVING");
  absl::StatusOr<v1::GetServerInfoResponse> info = client.GetServerInfo();
  if (!info.ok()) return info.status();
  std::printf("gradzoo-server %s on %s (%s)\n", info->version().c_str(), info->device().c_str(),
              info->blas().c_str());

  if (absl::Status s = EnsureZoo(client, flags); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::Model>> models = client.ListModels("zoos/" + flags.zoo, false);
  if (!models.ok()) return models.status();
  if (models->empty()) return absl::NotFoundError("the zoo has no models");
  const v1::Model& model = models->front();

  // An 11 x 11 grid over x1 (outer) and x2; x3 = x4 = 0.5. The field streams in chunks and
  // comes back assembled, one GradientField per model.
  v1::ComputeGradientFieldRequest request;
  request.mutable_selection()->add_models(model.name());
  v1::Grid* grid = request.mutable_points()->mutable_grid();
  for (int input : {0, 1}) {
    v1::GridAxis* axis = grid->add_axes();
    axis->set_input_index(input);
    axis->set_min(0.0);
    axis->set_max(1.0);
    axis->set_steps(11);
  }
  for (int i = 0; i < 4; ++i) grid->add_fixed_values(0.5);
  request.set_compare_with_theory(true);
  absl::StatusOr<std::vector<gradzoo::client::GradientField>> fields =
      client.ComputeGradientField(request);
  if (!fields.ok()) return fields.status();
  const gradzoo::client::GradientField& f = fields->front();

  std::printf("%s: %lld points, %d inputs -> %d outputs\n", f.model.c_str(),
              static_cast<long long>(f.n), f.input_dim, f.output_dim);
  std::printf("relative error vs the exact gradient: mean %.4f  median %.4f  aggregate %.4f\n",
              f.summary.mean_relative_error(), f.summary.median_relative_error(),
              f.summary.aggregate_relative_error());
  std::printf("%6s %6s   %-20s %-20s\n", "x1", "x2", "network dy1/d(x1,x2)", "exact");
  for (int64_t p = 0; p < f.n; p += 24) {  // a few points across the grid
    const float* x = &f.points[p * f.input_dim];
    const float* g = &f.gradients[p * f.output_dim * f.input_dim];  // output 0 = y1
    const float* t = &f.theory[p * f.output_dim * f.input_dim];
    std::printf("%6.2f %6.2f   (%7.3f, %7.3f)     (%7.3f, %7.3f)\n", x[0], x[1], g[0], g[1], t[0],
                t[1]);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    std::cerr << "usage: train_and_query [--server HOST:PORT] [--zoo ID] [--steps N]\n";
    return 2;
  }
  absl::Status s = Run(flags);
  if (!s.ok()) {
    std::cerr << "error: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
    return 1;
  }
  return 0;
}
