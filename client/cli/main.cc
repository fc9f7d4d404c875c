// gradzoo: the command-line client of gradzoo-server. Run `gradzoo --help` for the tour.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/svg.h"
#include "client/gradzoo_client.h"
#include "google/protobuf/util/json_util.h"

namespace gradzoo::client {
namespace {

constexpr char kUsage[] = R"(gradzoo: look inside populations of small neural networks.

Usage: gradzoo [--server HOST:PORT] [--json] [--timeout SECONDS] COMMAND [ARGS]

Global flags
  --server HOST:PORT   server address (default $GRADZOO_SERVER or 127.0.0.1:50551)
  --json               machine-readable output (one JSON document on stdout)
  --timeout SECONDS    deadline of each call (default 30)

Commands
  info                         server version, device, BLAS, limits
  health                       standard gRPC health check (exit 0 when SERVING)
  zoos                         list zoos
  zoo get ZOO                  one zoo's spec and size          (ZOO: zoos/NAME or NAME)
  zoo delete ZOO               delete a zoo and its stored models
  models ZOO [--weights]       list a zoo's models (task, lambda, seed, split, losses)
  model MODEL                  one model with its weights       (MODEL: zoos/Z/models/M or Z/M)
  train ZOO_ID [options]       train a zoo as one batched job; waits with a progress bar
      --task NAME              task (default mul2: y1 = x1*x2, y2 = x3*x4 on [0,1]^4)
      --lambdas L,L,...        soft task mixing values (default 0)
      --seeds S,S,...          one model per (lambda, seed) (default 0)
      --validation-seeds S,..  seeds of the validation split
      --hidden W,W,...         hidden widths (default 32,32)
      --activation A           relu | gelu | tanh (default relu)
      --steps N --lr X --batch N --eval-every N --patience N
      --train-examples N --validation-examples N --device auto|cpu|cuda:N
      --request-id ID          idempotency key: a retried submit returns the same job
      --no-wait                print the job name and return at once
  jobs                         list training jobs
  job get|cancel|watch JOB     one job; cancel it; follow it until it ends (JOB: trainingJobs/ID)
  field (MODEL... | --zoo ZOO) [options]
                               input-gradients of every output at once
      --grid I:MIN:MAX:STEPS[,I:MIN:MAX:STEPS...]   grid over inputs I (default 0:0:1:21,1:0:1:21)
      --fixed V,V,...          values of the inputs no axis varies (default 0.5)
      --theory                 compare with the task's exact gradient (mean/median/aggregate)
      --fail-above X           exit 3 if any model's mean relative error exceeds X
      --svg FILE               quiver plot of a 2-D slice (first model; --output O picks the output)
      --csv FILE               write points, gradients (and theory) as CSV

Exit status: 0 ok, 1 the server answered an error (its code and message go to stderr),
2 bad command line, 3 a --fail-above check failed.
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // --name value, or "" for switches

  bool Has(const std::string& k) const { return flags.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = flags.find(k);
    return it == flags.end() ? def : it->second;
  }
};

const std::vector<std::string> kSwitches = {"json", "no-wait", "theory", "weights", "help"};

struct UsageError {
  std::string message;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "-h") s = "--help";
    if (s.rfind("--", 0) == 0 && s.size() > 2) {
      std::string key = s.substr(2), value;
      if (auto eq = key.find('='); eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (std::find(kSwitches.begin(), kSwitches.end(), key) == kSwitches.end()) {
        if (i + 1 >= argc) throw UsageError{absl::StrCat("--", key, " needs a value")};
        value = argv[++i];
      }
      a.flags[key] = value;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

template <typename T>
std::vector<T> ParseList(const std::string& flag, const std::string& text) {
  std::vector<T> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    T v;
    bool ok;
    if constexpr (std::is_same_v<T, double>) {
      ok = absl::SimpleAtod(part, &v);
    } else {
      ok = absl::SimpleAtoi(part, &v);
    }
    if (!ok) throw UsageError{absl::StrCat("--", flag, ": \"", part, "\" is not a number")};
    out.push_back(v);
  }
  return out;
}

template <typename T>
T ParseOne(const std::string& flag, const std::string& text) {
  auto v = ParseList<T>(flag, text);
  if (v.size() != 1) throw UsageError{absl::StrCat("--", flag, " takes one number")};
  return v[0];
}

std::string ZooNameOf(const std::string& s) { return s.rfind("zoos/", 0) == 0 ? s : "zoos/" + s; }
std::string ModelNameOf(const std::string& s) {
  if (s.rfind("zoos/", 0) == 0) return s;
  auto slash = s.find('/');
  if (slash == std::string::npos) return s;  // let the server explain
  return absl::StrCat("zoos/", s.substr(0, slash), "/models/", s.substr(slash + 1));
}
std::string JobNameOf(const std::string& s) {
  return s.rfind("trainingJobs/", 0) == 0 ? s : "trainingJobs/" + s;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

const char* StateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED:
      return "QUEUED";
    case v1::JOB_STATE_RUNNING:
      return "RUNNING";
    case v1::JOB_STATE_SUCCEEDED:
      return "SUCCEEDED";
    case v1::JOB_STATE_FAILED:
      return "FAILED";
    case v1::JOB_STATE_CANCELLING:
      return "CANCELLING";
    case v1::JOB_STATE_CANCELLED:
      return "CANCELLED";
    default:
      return "UNSPECIFIED";
  }
}

const char* CodeName(absl::StatusCode c) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

class Cli {
 public:
  Cli(Args args, std::unique_ptr<Client> client)
      : args_(std::move(args)), client_(std::move(client)), json_(args_.Has("json")) {}

  int Run() {
    const auto& p = args_.positional;
    const std::string cmd = p.empty() ? "" : p[0];
    absl::Status s;
    if (cmd == "info") {
      s = Info();
    } else if (cmd == "health") {
      s = Health();
    } else if (cmd == "zoos") {
      s = Zoos();
    } else if (cmd == "zoo" && p.size() == 3 && p[1] == "get") {
      s = ZooGet(p[2]);
    } else if (cmd == "zoo" && p.size() == 3 && p[1] == "delete") {
      s = Check(client_->DeleteZoo(ZooNameOf(p[2])));
      if (s.ok()) Say(absl::StrCat("deleted ", ZooNameOf(p[2])), "{\"deleted\": \"" + ZooNameOf(p[2]) + "\"}");
    } else if (cmd == "models" && p.size() == 2) {
      s = Models(p[1]);
    } else if (cmd == "model" && p.size() == 2) {
      s = Model(p[1]);
    } else if (cmd == "train" && p.size() == 2) {
      s = Train(p[1]);
    } else if (cmd == "jobs") {
      s = Jobs();
    } else if (cmd == "job" && p.size() == 3) {
      s = Job(p[1], p[2]);
    } else if (cmd == "field") {
      s = Field();
    } else {
      throw UsageError{cmd.empty() ? "no command given"
                                   : absl::StrCat("unknown command or wrong arguments: ",
                                                  absl::StrJoin(p, " "))};
    }
    if (!s.ok()) {
      if (s.code() == absl::StatusCode::kAborted && s.message() == "fail-above") return 3;
      std::cerr << "error: " << CodeName(s.code()) << ": " << s.message() << "\n";
      return 1;
    }
    return 0;
  }

 private:
  static absl::Status Check(const absl::Status& s) { return s; }
  void Say(const std::string& human, const std::string& json) {
    std::cout << (json_ ? json : human) << "\n";
  }

  absl::Status Info() {
    auto info = client_->GetServerInfo();
    if (!info.ok()) return info.status();
    if (json_) {
      std::cout << ToJson(*info);
      return absl::OkStatus();
    }
    std::cout << absl::StrFormat(
        "gradzoo-server %s\n  device         %s\n  BLAS           %s%s\n  torch          %s, %d "
        "threads\n  data dir       %s\n  max points     %d per query\n  max message    %d bytes\n"
        "  uptime         %.0f s\n",
        info->version(), info->device(), info->blas(),
        info->blas() == "reference" ? "  (WARNING: ~30x slower; install libopenblas0-pthread)" : "",
        info->torch_version(), info->torch_threads(), info->data_dir(),
        info->max_points_per_query(), info->max_receive_message_bytes(), info->uptime_seconds());
    return absl::OkStatus();
  }

  absl::Status Health() {
    auto h = client_->CheckHealth();
    if (!h.ok()) return h.status();
    Say(*h ? "SERVING" : "NOT_SERVING", *h ? "{\"status\": \"SERVING\"}" : "{\"status\": \"NOT_SERVING\"}");
    return *h ? absl::OkStatus() : absl::UnavailableError("server is not serving");
  }

  absl::Status Zoos() {
    auto zoos = client_->ListZoos();
    if (!zoos.ok()) return zoos.status();
    if (json_) {
      v1::ListZoosResponse r;
      for (auto& z : *zoos) *r.add_zoos() = z;
      std::cout << ToJson(r);
      return absl::OkStatus();
    }
    std::cout << absl::StrFormat("%-28s %-8s %7s %-10s %-16s %10s\n", "ZOO", "STATE", "MODELS",
                                 "TASK", "ARCH", "BYTES");
    for (const auto& z : *zoos) {
      std::cout << absl::StrFormat("%-28s %-8s %7d %-10s %-16s %10d\n", z.name(),
                                   z.state() == v1::ZOO_STATE_CORRUPT ? "CORRUPT" : "READY",
                                   z.model_count(), z.spec().task().name(), Arch(z), z.stored_bytes());
    }
    if (zoos->empty()) std::cout << "(no zoos yet: gradzoo train NAME --lambdas 0,0.5 --seeds 0,1)\n";
    return absl::OkStatus();
  }

  static std::string Arch(const v1::Zoo& z) {
    std::vector<int> w = {z.input_dim()};
    for (int h : z.spec().architecture().hidden_widths()) w.push_back(h);
    w.push_back(z.output_dim());
    return absl::StrJoin(w, "-");
  }

  absl::Status ZooGet(const std::string& name) {
    auto z = client_->GetZoo(ZooNameOf(name));
    if (!z.ok()) return z.status();
    if (json_) {
      std::cout << ToJson(*z);
      return absl::OkStatus();
    }
    const auto& sp = z->spec();
    std::cout << absl::StrFormat(
        "%s\n  models       %d (%d-> ... ->%d: %s, %s)\n  task         %s, lambdas [%s]\n"
        "  seeds        [%s], validation [%s]\n  training     %d steps, lr %g, batch %d\n"
        "  stored       %d bytes\n",
        z->name(), z->model_count(), z->input_dim(), z->output_dim(), Arch(*z),
        v1::Activation_Name(sp.architecture().activation()), sp.task().name(),
        absl::StrJoin(sp.task().lambdas(), ", "), absl::StrJoin(sp.seeds(), ", "),
        absl::StrJoin(sp.validation_seeds(), ", "), sp.training().steps(),
        sp.training().learning_rate(), sp.training().batch_size(), z->stored_bytes());
    return absl::OkStatus();
  }

  absl::Status Models(const std::string& zoo) {
    auto models = client_->ListModels(ZooNameOf(zoo), args_.Has("weights"));
    if (!models.ok()) return models.status();
    if (json_) {
      v1::ListModelsResponse r;
      for (auto& m : *models) *r.add_models() = m;
      std::cout << ToJson(r);
      return absl::OkStatus();
    }
    std::cout << absl::StrFormat("%-30s %-6s %7s %6s %-5s %11s %11s %7s\n", "MODEL", "TASK",
                                 "LAMBDA", "SEED", "SPLIT", "TRAIN MSE", "VAL MSE", "STEPS");
    for (const auto& m : *models) {
      std::cout << absl::StrFormat("%-30s %-6s %7.3f %6d %-5s %11.3e %11.3e %7d\n", m.name(),
                                   m.task(), m.lambda(), m.seed(),
                                   m.split() == v1::SPLIT_VALIDATION ? "val" : "train",
                                   m.train_loss(), m.validation_loss(), m.steps());
    }
    return absl::OkStatus();
  }

  absl::Status Model(const std::string& name) {
    auto m = client_->GetModel(ModelNameOf(name));
    if (!m.ok()) return m.status();
    if (json_) {
      std::cout << ToJson(*m);
      return absl::OkStatus();
    }
    std::cout << absl::StrFormat("%s\n  task %s, lambda %g, seed %d, val MSE %.3e\n", m->name(),
                                 m->task(), m->lambda(), m->seed(), m->validation_loss());
    for (int l = 0; l < m->layers_size(); ++l) {
      auto w = Client::DecodeTensor(m->layers(l).weight());
      if (!w.ok()) return w.status();
      double norm = 0;
      for (float v : w->data) norm += double{v} * v;
      std::cout << absl::StrFormat("  layer %d: weight [%s], |W|_F = %.4f\n", l,
                                   absl::StrJoin(w->shape, ", "), std::sqrt(norm));
    }
    return absl::OkStatus();
  }

  void PrintJobLine(const v1::TrainingJob& j) {
    const auto& p = j.progress();
    std::cout << absl::StrFormat("%-34s %-10s %4d/%-4d step %6d/%-6d val MSE %.3e  %s\n", j.name(),
                                 StateName(j.state()), p.done(), p.total(), p.step(),
                                 p.total_steps(), p.mean_validation_loss(),
                                 j.error().empty() ? j.output() : j.error());
  }

  void ShowProgress(const v1::TrainingJob& j, bool tty) {
    const auto& p = j.progress();
    const double frac = p.total_steps() > 0 ? static_cast<double>(p.step()) / p.total_steps() : 0;
    if (tty) {
      const int width = 30;
      const int filled = static_cast<int>(frac * width);
      std::cerr << absl::StrFormat("\r%-10s [%s%s] %3.0f%%  step %d/%d  val MSE %.2e  ETA %.0fs   ",
                                   StateName(j.state()), std::string(filled, '#'),
                                   std::string(width - filled, '.'), 100 * frac, p.step(),
                                   p.total_steps(), p.mean_validation_loss(), p.eta_seconds());
      if (IsFinalState(j.state())) std::cerr << "\n";
    } else {
      std::cerr << absl::StrFormat("%s step %d/%d val_mse %.3e eta %.0fs\n", StateName(j.state()),
                                   p.step(), p.total_steps(), p.mean_validation_loss(),
                                   p.eta_seconds());
    }
  }

  absl::Status Train(const std::string& zoo_id) {
    v1::ZooSpec spec;
    spec.mutable_task()->set_name(args_.Get("task", "mul2"));
    for (double l : ParseList<double>("lambdas", args_.Get("lambdas", "0"))) spec.mutable_task()->add_lambdas(l);
    for (int64_t s : ParseList<int64_t>("seeds", args_.Get("seeds", "0"))) spec.add_seeds(s);
    for (int64_t s : ParseList<int64_t>("validation-seeds", args_.Get("validation-seeds", ""))) spec.add_validation_seeds(s);
    for (int h : ParseList<int>("hidden", args_.Get("hidden", "32,32"))) spec.mutable_architecture()->add_hidden_widths(h);
    const std::string act = args_.Get("activation", "relu");
    if (act == "relu") {
      spec.mutable_architecture()->set_activation(v1::ACTIVATION_RELU);
    } else if (act == "gelu") {
      spec.mutable_architecture()->set_activation(v1::ACTIVATION_GELU);
    } else if (act == "tanh") {
      spec.mutable_architecture()->set_activation(v1::ACTIVATION_TANH);
    } else {
      throw UsageError{"--activation must be relu, gelu or tanh"};
    }
    auto* t = spec.mutable_training();
    if (args_.Has("steps")) t->set_steps(ParseOne<int>("steps", args_.Get("steps")));
    if (args_.Has("lr")) t->set_learning_rate(ParseOne<double>("lr", args_.Get("lr")));
    if (args_.Has("batch")) t->set_batch_size(ParseOne<int>("batch", args_.Get("batch")));
    if (args_.Has("eval-every")) t->set_eval_every(ParseOne<int>("eval-every", args_.Get("eval-every")));
    if (args_.Has("patience")) t->set_early_stopping_patience(ParseOne<int>("patience", args_.Get("patience")));
    if (args_.Has("device")) t->set_device(args_.Get("device"));
    if (args_.Has("train-examples")) {
      spec.mutable_task()->set_train_examples(ParseOne<int>("train-examples", args_.Get("train-examples")));
    }
    if (args_.Has("validation-examples")) {
      spec.mutable_task()->set_validation_examples(
          ParseOne<int>("validation-examples", args_.Get("validation-examples")));
    }
    auto job = client_->CreateZooTrainingJob(zoo_id, spec, args_.Get("request-id"));
    if (!job.ok()) return job.status();
    if (args_.Has("no-wait")) {
      Say(job->name(), ToJson(*job));
      return absl::OkStatus();
    }
    return WatchJob(job->name());
  }

  absl::Status WatchJob(const std::string& name) {
    const bool tty = isatty(STDERR_FILENO) && !json_;
    int64_t last_step = -1;
    auto done = client_->WaitForJob(name, [&](const v1::TrainingJob& j) {
      if (json_) return;
      if (tty || j.progress().step() != last_step || IsFinalState(j.state())) ShowProgress(j, tty);
      last_step = j.progress().step();
    });
    if (!done.ok()) return done.status();
    if (json_) {
      std::cout << ToJson(*done);
    } else {
      PrintJobLine(*done);
    }
    if (done->state() == v1::JOB_STATE_FAILED) return absl::InternalError(absl::StrCat("job failed: ", done->error()));
    if (done->state() == v1::JOB_STATE_CANCELLED) return absl::CancelledError("job was cancelled");
    return absl::OkStatus();
  }

  absl::Status Jobs() {
    auto jobs = client_->ListJobs();
    if (!jobs.ok()) return jobs.status();
    if (json_) {
      v1::ListTrainingJobsResponse r;
      for (auto& j : *jobs) *r.add_jobs() = j;
      std::cout << ToJson(r);
      return absl::OkStatus();
    }
    for (const auto& j : *jobs) PrintJobLine(j);
    if (jobs->empty()) std::cout << "(no jobs)\n";
    return absl::OkStatus();
  }

  absl::Status Job(const std::string& verb, const std::string& name) {
    if (verb == "watch") return WatchJob(JobNameOf(name));
    absl::StatusOr<v1::TrainingJob> j;
    if (verb == "get") {
      j = client_->GetJob(JobNameOf(name));
    } else if (verb == "cancel") {
      j = client_->CancelJob(JobNameOf(name));
    } else {
      throw UsageError{"job takes get, cancel or watch"};
    }
    if (!j.ok()) return j.status();
    if (json_) {
      std::cout << ToJson(*j);
    } else {
      PrintJobLine(*j);
    }
    return absl::OkStatus();
  }

  absl::Status Field() {
    v1::ComputeGradientFieldRequest req;
    for (size_t i = 1; i < args_.positional.size(); ++i) {
      req.mutable_selection()->add_models(ModelNameOf(args_.positional[i]));
    }
    if (args_.Has("zoo")) req.mutable_selection()->set_zoo(ZooNameOf(args_.Get("zoo")));
    v1::Grid* grid = req.mutable_points()->mutable_grid();
    for (absl::string_view axis : absl::StrSplit(args_.Get("grid", "0:0:1:21,1:0:1:21"), ',', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(axis, ':');
      v1::GridAxis* a = grid->add_axes();
      int idx = 0;
      double lo = 0, hi = 0;
      int steps = 0;
      if (f.size() != 4 || !absl::SimpleAtoi(f[0], &idx) || !absl::SimpleAtod(f[1], &lo) ||
          !absl::SimpleAtod(f[2], &hi) || !absl::SimpleAtoi(f[3], &steps)) {
        throw UsageError{absl::StrCat("--grid axis \"", axis, "\" is not INPUT:MIN:MAX:STEPS")};
      }
      a->set_input_index(idx);
      a->set_min(lo);
      a->set_max(hi);
      a->set_steps(steps);
    }
    for (double v : ParseList<double>("fixed", args_.Get("fixed", ""))) grid->add_fixed_values(v);
    req.set_compare_with_theory(args_.Has("theory") || args_.Has("fail-above"));
    req.set_include_outputs(args_.Has("csv"));
    auto fields = client_->ComputeGradientField(req);
    if (!fields.ok()) return fields.status();

    double worst = 0;
    if (json_) {
      std::cout << "{\"fields\": [";
      for (size_t i = 0; i < fields->size(); ++i) {
        const auto& f = (*fields)[i];
        std::cout << (i ? ", " : "") << "{\"model\": \"" << f.model << "\", \"points\": " << f.n
                  << ", \"inputs\": " << f.input_dim << ", \"outputs\": " << f.output_dim;
        if (f.has_summary) std::cout << ", \"summary\": " << ToJson(f.summary);
        std::cout << "}";
      }
      std::cout << "]}\n";
    } else {
      std::cout << absl::StrFormat("%-30s %9s %8s %12s %12s %12s\n", "MODEL", "POINTS", "IN->OUT",
                                   "MEAN RELERR", "MEDIAN", "AGGREGATE");
    }
    for (const auto& f : *fields) {
      if (f.has_summary) worst = std::max(worst, f.summary.mean_relative_error());
      if (json_) continue;
      if (f.has_summary) {
        std::cout << absl::StrFormat("%-30s %9d %5d->%-2d %12.4f %12.4f %12.4f\n", f.model, f.n,
                                     f.input_dim, f.output_dim, f.summary.mean_relative_error(),
                                     f.summary.median_relative_error(),
                                     f.summary.aggregate_relative_error());
      } else {
        std::cout << absl::StrFormat("%-30s %9d %5d->%-2d %12s %12s %12s\n", f.model, f.n,
                                     f.input_dim, f.output_dim, "-", "-", "-");
      }
    }
    if (args_.Has("svg")) {
      absl::Status s = WriteQuiver(req, fields->front());
      if (!s.ok()) return s;
    }
    if (args_.Has("csv")) {
      absl::Status s = WriteCsv(fields->front());
      if (!s.ok()) return s;
    }
    if (args_.Has("fail-above")) {
      const double limit = ParseOne<double>("fail-above", args_.Get("fail-above"));
      if (worst > limit) {
        std::cerr << absl::StrFormat("FAIL: mean relative error %.4f exceeds %.4f\n", worst, limit);
        return absl::AbortedError("fail-above");
      }
      if (!json_) std::cout << absl::StrFormat("OK: every mean relative error <= %.4f\n", limit);
    }
    return absl::OkStatus();
  }

  absl::Status WriteQuiver(const v1::ComputeGradientFieldRequest& req, const GradientField& f) {
    const auto& axes = req.points().grid().axes();
    if (axes.size() != 2) throw UsageError{"--svg needs a --grid with exactly two axes"};
    const int o = args_.Has("output") ? ParseOne<int>("output", args_.Get("output")) : 0;
    if (o < 0 || o >= f.output_dim) throw UsageError{"--output is out of range"};
    svg::QuiverData q;
    q.nx = axes[0].steps();
    q.ny = axes[1].steps();
    for (int i = 0; i < q.nx; ++i) q.xs.push_back(f.points[static_cast<int64_t>(i) * q.ny * f.input_dim + axes[0].input_index()]);
    for (int j = 0; j < q.ny; ++j) q.ys.push_back(f.points[static_cast<int64_t>(j) * f.input_dim + axes[1].input_index()]);
    q.u.resize(static_cast<size_t>(q.nx) * q.ny);
    q.v.resize(q.u.size());
    for (int i = 0; i < q.nx; ++i) {
      for (int j = 0; j < q.ny; ++j) {
        const int64_t p = static_cast<int64_t>(i) * q.ny + j;  // first axis outermost
        const float* g = f.gradients.data() + (p * f.output_dim + o) * f.input_dim;
        q.u[static_cast<size_t>(j) * q.nx + i] = g[axes[0].input_index()];
        q.v[static_cast<size_t>(j) * q.nx + i] = g[axes[1].input_index()];
      }
    }
    q.title = absl::StrCat("d y", o + 1, " / d x  —  ", f.model);
    q.x_label = absl::StrCat("x", axes[0].input_index() + 1);
    q.y_label = absl::StrCat("x", axes[1].input_index() + 1);
    absl::Status s = svg::WriteFile(args_.Get("svg"), svg::QuiverPlot(q));
    if (s.ok() && !json_) std::cout << "wrote " << args_.Get("svg") << "\n";
    return s;
  }

  absl::Status WriteCsv(const GradientField& f) {
    std::string out;
    for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, i ? "," : "", "x", i + 1);
    for (int o = 0; o < f.output_dim; ++o) absl::StrAppend(&out, ",y", o + 1);
    for (int o = 0; o < f.output_dim; ++o) {
      for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, ",dy", o + 1, "_dx", i + 1);
    }
    if (!f.theory.empty()) {
      for (int o = 0; o < f.output_dim; ++o) {
        for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, ",exact_dy", o + 1, "_dx", i + 1);
      }
    }
    out += "\n";
    const int64_t g = int64_t{f.output_dim} * f.input_dim;
    for (int64_t p = 0; p < f.n; ++p) {
      for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, i ? "," : "", f.points[p * f.input_dim + i]);
      for (int o = 0; o < f.output_dim && !f.outputs.empty(); ++o) absl::StrAppend(&out, ",", f.outputs[p * f.output_dim + o]);
      for (int64_t k = 0; k < g; ++k) absl::StrAppend(&out, ",", f.gradients[p * g + k]);
      for (int64_t k = 0; k < g && !f.theory.empty(); ++k) absl::StrAppend(&out, ",", f.theory[p * g + k]);
      out += "\n";
    }
    absl::Status s = svg::WriteFile(args_.Get("csv"), out);
    if (s.ok() && !json_) std::cout << "wrote " << args_.Get("csv") << "\n";
    return s;
  }

  Args args_;
  std::unique_ptr<Client> client_;
  const bool json_;
};

}  // namespace
}  // namespace gradzoo::client

int main(int argc, char** argv) {
  using namespace gradzoo::client;  // NOLINT
  try {
    Args args = Parse(argc, argv);
    if (args.Has("help") || args.positional.empty() || args.positional[0] == "help") {
      std::cout << kUsage;
      return args.positional.empty() && !args.Has("help") ? 2 : 0;
    }
    const char* env = std::getenv("GRADZOO_SERVER");
    const std::string server = args.Get("server", env && *env ? env : "127.0.0.1:50551");
    Client::Options o;
    if (args.Has("timeout")) o.timeout = absl::Seconds(ParseOne<double>("timeout", args.Get("timeout")));
    auto client = Client::Connect(server, o);
    if (!client.ok()) {
      std::cerr << "error: " << client.status().message() << "\n";
      return 2;
    }
    return Cli(std::move(args), std::move(*client)).Run();
  } catch (const UsageError& e) {
    std::cerr << "gradzoo: " << e.message << "\n(see gradzoo --help)\n";
    return 2;
  }
}
