#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cli/cli.h"

namespace gradzoo::client::cli {
namespace {

// One job per line, within 100 columns for ids and outputs of usual length: the job id
// (`job get` takes it with or without "trainingJobs/"), state, models (or embedder steps) done,
// optimiser steps, mean validation loss, and what it makes (or why it failed).
void PrintJobLine(const v1::TrainingJob& j) {
  const auto& p = j.progress();
  const std::string id(absl::StripPrefix(j.name(), "trainingJobs/"));
  std::cout << absl::StrFormat("%-24s %-10s %9s %13s  %9.3e  %s\n", id, StateName(j.state()),
                               absl::StrCat(p.done(), "/", p.total()),
                               absl::StrCat(p.step(), "/", p.total_steps()), p.mean_validation_loss(),
                               j.error().empty() ? j.output() : j.error());
}

void PrintJobHeader() {
  std::cout << absl::StrFormat("%-24s %-10s %9s %13s  %9s  %s\n", "JOB", "STATE", "MODELS", "STEPS",
                               "VAL LOSS", "OUTPUT");
}

void ShowProgress(const v1::TrainingJob& j, bool tty) {
  const auto& p = j.progress();
  const double frac = p.total_steps() > 0 ? static_cast<double>(p.step()) / p.total_steps() : 0;
  if (tty) {
    const int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::cerr << absl::StrFormat("\r%-10s [%s%s] %3.0f%%  step %d/%d  val loss %.2e  ETA %.0fs   ",
                                 StateName(j.state()), std::string(filled, '#'),
                                 std::string(width - filled, '.'), 100 * frac, p.step(),
                                 p.total_steps(), p.mean_validation_loss(), p.eta_seconds());
    if (IsFinalState(j.state())) std::cerr << "\n";
  } else {
    std::cerr << absl::StrFormat("%s step %d/%d val_loss %.3e eta %.0fs\n", StateName(j.state()),
                                 p.step(), p.total_steps(), p.mean_validation_loss(),
                                 p.eta_seconds());
  }
}

absl::Status FollowJob(Context& c, const std::string& name) {
  const bool tty = isatty(STDERR_FILENO) && !c.json;
  int64_t last_step = -1;
  auto done = c.client->WaitForJob(name, [&](const v1::TrainingJob& j) {
    if (c.json) return;
    if (tty || j.progress().step() != last_step || IsFinalState(j.state())) ShowProgress(j, tty);
    last_step = j.progress().step();
  });
  if (!done.ok()) return done.status();
  if (c.json) {
    std::cout << ToJson(*done);
  } else {
    PrintJobLine(*done);
  }
  if (done->state() == v1::JOB_STATE_FAILED) return absl::InternalError(absl::StrCat("job failed: ", done->error()));
  if (done->state() == v1::JOB_STATE_CANCELLED) return absl::CancelledError("job was cancelled");
  return absl::OkStatus();
}

// --custom-data FILE.csv --inputs N: one example per line, N input columns then the targets,
// comma- or blank-separated; blank lines and lines starting with '#' are skipped.
void ReadCustomData(const std::string& path, int inputs, v1::TaskSpec* task) {
  std::ifstream in(path);
  if (!in) throw UsageError{absl::StrCat("--custom-data: cannot read ", path)};
  if (inputs <= 0) throw UsageError{"--custom-data needs --inputs N (input columns, >= 1)"};
  std::vector<float> x, y;
  int64_t rows = 0, cols = -1;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    std::vector<float> row;
    for (absl::string_view f : absl::StrSplit(text, absl::ByAnyChar(", \t"), absl::SkipEmpty())) {
      float v;
      if (!absl::SimpleAtof(f, &v) || !std::isfinite(v)) {
        throw UsageError{absl::StrCat(path, ":", line_no, ": \"", f, "\" is not a finite number")};
      }
      row.push_back(v);
    }
    if (cols < 0) cols = static_cast<int64_t>(row.size());
    if (static_cast<int64_t>(row.size()) != cols) {
      throw UsageError{absl::StrCat(path, ":", line_no, ": ", row.size(), " columns, the first row has ", cols)};
    }
    if (cols <= inputs) {
      throw UsageError{absl::StrCat(path, ": ", cols, " columns leave no target after ", inputs, " inputs")};
    }
    x.insert(x.end(), row.begin(), row.begin() + inputs);
    y.insert(y.end(), row.begin() + inputs, row.end());
    ++rows;
  }
  if (rows == 0) throw UsageError{absl::StrCat("--custom-data: ", path, " has no rows")};
  EncodeTensor({rows, inputs}, x.data(), task->mutable_custom_inputs());
  EncodeTensor({rows, cols - inputs}, y.data(), task->mutable_custom_targets());
}

absl::Status Train(Context& c, const std::string& zoo_id) {
  v1::ZooSpec spec;
  spec.mutable_task()->set_name(c.args.Get("task", "mul2"));
  for (double l : ParseList<double>("lambdas", c.args.Get("lambdas", "0"))) spec.mutable_task()->add_lambdas(l);
  for (int64_t s : ParseList<int64_t>("seeds", c.args.Get("seeds", "0"))) spec.add_seeds(s);
  for (int64_t s : ParseList<int64_t>("validation-seeds", c.args.Get("validation-seeds", ""))) spec.add_validation_seeds(s);
  for (int h : ParseList<int>("hidden", c.args.Get("hidden", "32,32"))) spec.mutable_architecture()->add_hidden_widths(h);
  const std::string act = c.args.Get("activation", "relu");
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
  if (c.args.Has("steps")) t->set_steps(ParseOne<int>("steps", c.args.Get("steps")));
  if (c.args.Has("lr")) t->set_learning_rate(ParseOne<double>("lr", c.args.Get("lr")));
  if (c.args.Has("batch")) t->set_batch_size(ParseOne<int>("batch", c.args.Get("batch")));
  if (c.args.Has("eval-every")) t->set_eval_every(ParseOne<int>("eval-every", c.args.Get("eval-every")));
  if (c.args.Has("patience")) t->set_early_stopping_patience(ParseOne<int>("patience", c.args.Get("patience")));
  if (c.args.Has("device")) t->set_device(c.args.Get("device"));
  if (c.args.Has("schedule")) {
    const std::string sch = c.args.Get("schedule");
    if (sch == "cosine") {
      t->set_schedule(v1::LEARNING_RATE_SCHEDULE_COSINE);
    } else if (sch == "constant") {
      t->set_schedule(v1::LEARNING_RATE_SCHEDULE_CONSTANT);
    } else {
      throw UsageError{"--schedule must be cosine or constant"};
    }
  }
  if (c.args.Has("train-examples")) {
    spec.mutable_task()->set_train_examples(ParseOne<int>("train-examples", c.args.Get("train-examples")));
  }
  if (c.args.Has("validation-examples")) {
    spec.mutable_task()->set_validation_examples(
        ParseOne<int>("validation-examples", c.args.Get("validation-examples")));
  }
  if (c.args.Has("families")) spec.mutable_task()->set_families(ParseOne<int>("families", c.args.Get("families")));
  if (c.args.Has("similarity")) {
    spec.mutable_task()->set_similarity(ParseOne<double>("similarity", c.args.Get("similarity")));
  }
  if (c.args.Has("family-seed")) {
    spec.mutable_task()->set_family_seed(ParseOne<int64_t>("family-seed", c.args.Get("family-seed")));
  }
  if (c.args.Has("data-path")) spec.mutable_task()->set_data_path(c.args.Get("data-path"));
  if (c.args.Has("custom-data")) {
    ReadCustomData(c.args.Get("custom-data"), ParseOne<int>("inputs", c.args.Get("inputs", "0")),
                   spec.mutable_task());
  }
  auto job = c.client->CreateZooTrainingJob(zoo_id, spec, c.args.Get("request-id"));
  if (!job.ok()) return job.status();
  if (c.args.Has("no-wait")) {
    c.Say(job->name(), ToJson(*job));
    return absl::OkStatus();
  }
  return FollowJob(c, job->name());
}

absl::Status Jobs(Context& c) {
  auto jobs = c.client->ListJobs();
  if (!jobs.ok()) return jobs.status();
  if (c.json) {
    v1::ListTrainingJobsResponse r;
    for (auto& j : *jobs) *r.add_jobs() = j;
    std::cout << ToJson(r);
    return absl::OkStatus();
  }
  if (!jobs->empty()) PrintJobHeader();
  for (const auto& j : *jobs) PrintJobLine(j);
  if (jobs->empty()) std::cout << "(no jobs)\n";
  return absl::OkStatus();
}

absl::Status Job(Context& c, const std::string& verb, const std::string& name) {
  if (verb == "watch") return FollowJob(c, JobNameOf(name));
  absl::StatusOr<v1::TrainingJob> j;
  if (verb == "get") {
    j = c.client->GetJob(JobNameOf(name));
  } else if (verb == "cancel") {
    j = c.client->CancelJob(JobNameOf(name));
  } else {
    throw UsageError{"job takes get, cancel or watch"};
  }
  if (!j.ok()) return j.status();
  if (c.json) {
    std::cout << ToJson(*j);
  } else {
    PrintJobLine(*j);
  }
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("no-wait") &&
    RegisterCommand({"train", 30,
                     "  train ZOO_ID [options]       train a zoo as one batched job; waits with a progress bar\n"
                     "      --task NAME              mul2 (default: y1 = x1*x2, y2 = x3*x4 on [0,1]^4), mul, gate,\n"
                     "                               subdiv, poly1d, fashion-mnist, custom (formulas: core/tasks/task.h)\n"
                     "      --families N --similarity S --family-seed N   poly1d: families, closeness, draw\n"
                     "      --data-path P            fashion-mnist: IDX directory or prefix (default: Debian's)\n"
                     "      --custom-data F.csv --inputs N   custom: N input columns, then the targets\n"
                     "      --lambdas L,L,...        soft task mixing values (default 0)\n"
                     "      --seeds S,S,...          one model per (lambda, seed) (default 0)\n"
                     "      --validation-seeds S,..  seeds of the validation split\n"
                     "      --hidden W,W,...         hidden widths (default 32,32)\n"
                     "      --activation A           relu | gelu | tanh (default relu)\n"
                     "      --steps N --lr X --batch N --eval-every N --patience N --schedule cosine|constant\n"
                     "      --train-examples N --validation-examples N --device auto|cpu|cuda:N\n"
                     "      --request-id ID          idempotency key: a retried submit returns the same job\n"
                     "      --no-wait                print the job name and return at once\n",
                     [](Context& c) {
                       if (c.args.positional.size() != 2) throw UsageError{"usage: gradzoo train ZOO_ID [options]"};
                       return Train(c, c.args.positional[1]);
                     }}) &&
    RegisterCommand({"jobs", 40, "  jobs                         list training jobs\n",
                     [](Context& c) { return Jobs(c); }}) &&
    RegisterCommand({"job", 41,
                     "  job get|cancel|watch JOB     one job; cancel it; follow it until it ends (JOB: trainingJobs/ID)\n",
                     [](Context& c) {
                       if (c.args.positional.size() != 3) throw UsageError{"usage: gradzoo job get|cancel|watch JOB"};
                       return Job(c, c.args.positional[1], c.args.positional[2]);
                     }});

}  // namespace

absl::Status WatchJob(Context& c, const std::string& name) { return FollowJob(c, name); }

}  // namespace gradzoo::client::cli
