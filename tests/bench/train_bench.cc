// train_bench: times gradzoo's TrainEnsemble on a zoo of small MLPs (default: 500 models
// 2-32-32-1 ReLU on the `mul` task, y = x1 x2 on [0,1]^2) and the machine's float32 matmul
// rate, for tests/bench/run_train_bench.sh. See tests/bench/train_README.md.
//
//   train_bench --threads T [--models K] [--steps S] [--batch B] [--train-examples N]
//               [--validation-examples V] [--lr LR] [--repeats R] [--dump DIR] [--gemm]
//               [--reference]
//
// --repeats 0 only writes --dump (and measures --gemm).
//
// Each repeat is one full TrainEnsemble call (data sampling, initialisation, S steps and the
// final train/validation losses included), timed from outside: model-steps/s = K * S / time.
// Early stopping is off and the validation set is evaluated once, at the end, so the PyTorch
// side (tests/bench/train_bench_torch.py) does exactly the same work. The learning rate follows
// gradzoo's default cosine schedule, which the PyTorch side reproduces.
//
// --dump DIR writes what the PyTorch side needs to train the very same models from the very
// same start (raw little-endian files): x_train.f32 [K, N, 2], y_train.f32 [K, N, 1],
// x_val.f32 [K, V, 2], y_val.f32 [K, V, 1], init.f32 (per layer l: W_l [K, out, in] then
// b_l [K, out]), order.i64 [S, B] (the minibatch rows of every step: the trainer's shuffle,
// replayed here from the same Rng stream) and meta.json.
//
// --reference times the ATen reference path (TrainRequest::reference_kernels) instead of the
// default fused CPU kernels. --gemm adds the sgemm rate (at::mm of 2048^3,
// best of 3; wall and CPU time) to the JSON.
//
// FLOPs per step (forward + backward, multiply-adds counted as 2): per example,
// forward 2 sum_l in_l out_l, backward 2 sum_l in_l out_l for dW and 2 sum_{l>1} in_l out_l for
// the input gradient of every layer but the first: 2 (3 sum_l in_l out_l - in_1 out_1); times
// B K. Bias, activation, loss and Adam work is not counted (it is O(params), not O(B params)).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/model.h"
#include "core/nn/mlp.h"
#include "core/tasks/task.h"
#include "core/train/trainer.h"
#include "core/util/random.h"

namespace {

using gradzoo::core::Activation;
using gradzoo::core::MlpSpec;

template <typename T>
void Write(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  if (!f) {
    std::cerr << "cannot write " << path << "\n";
    std::exit(2);
  }
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of the whole process (every thread), in seconds.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Float32 GEMM rate of at::mm on [n, n] x [n, n], best of 3 (2 n^3 flops): GFLOP per second of
// wall time, and per second of process CPU time (every thread; what a loaded machine still
// measures fairly).
struct Gemm {
  double wall = 0, cpu = 0;
};
Gemm GemmRate(int64_t n) {
  at::Tensor a = at::rand({n, n}), b = at::rand({n, n}), c = at::empty({n, n});
  at::mm_out(c, a, b);  // warm up
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = CpuSeconds();
    at::mm_out(c, a, b);
    best = std::min(best, Seconds(t0));
    best_cpu = std::min(best_cpu, CpuSeconds() - c0);
  }
  const double flops = 2.0 * n * n * n;
  return {flops / best / 1e9, flops / best_cpu / 1e9};
}

// The GEMM fields of the JSON record.
std::string GemmJson() {
  const Gemm g = GemmRate(2048);
  return absl::StrFormat(", \"gemm_gflops_2048\": %.3f, \"gemm_gflops_per_cpu_s_2048\": %.3f", g.wall,
                         g.cpu);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, repeats = 1, models = 500, steps = 1000, batch = 64;
  int train_examples = 2048, validation_examples = 512;
  double lr = 1e-2;
  bool gemm = false, reference = false;
  std::string dump;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << k << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--threads") threads = std::atoi(next().c_str());
    else if (k == "--models") models = std::atoi(next().c_str());
    else if (k == "--steps") steps = std::atoi(next().c_str());
    else if (k == "--batch") batch = std::atoi(next().c_str());
    else if (k == "--train-examples") train_examples = std::atoi(next().c_str());
    else if (k == "--validation-examples") validation_examples = std::atoi(next().c_str());
    else if (k == "--lr") lr = std::atof(next().c_str());
    else if (k == "--repeats") repeats = std::atoi(next().c_str());
    else if (k == "--dump") dump = next();
    else if (k == "--gemm") gemm = true;
    else if (k == "--reference") reference = true;
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
  }
  if (threads < 1 || models < 1 || steps < 1 || batch < 1 || batch > train_examples ||
      repeats < 0) {
    std::cerr << "bad settings\n";
    return 2;
  }
  at::set_num_threads(threads);

  const MlpSpec spec{2, {32, 32}, 1, Activation::kRelu};
  auto task = gradzoo::core::MakeTask(gradzoo::core::TaskConfig{"mul"});
  if (!task.ok()) {
    std::cerr << task.status() << "\n";
    return 1;
  }
  gradzoo::core::TrainRequest req;
  req.spec = spec;
  req.task = task->get();
  for (int i = 0; i < models; ++i) req.models.push_back({0, 0.0, 1000 + i});
  req.train_examples = train_examples;
  req.validation_examples = validation_examples;
  req.config.steps = steps;
  req.config.batch_size = batch;
  req.config.learning_rate = lr;
  req.config.eval_every = steps;  // one validation pass, at the end
  req.config.early_stopping_patience = 0;
  req.config.cosine_schedule = true;
  req.reference_kernels = reference;

  if (!dump.empty()) {
    std::vector<float> xt, yt, xv, yv, init;
    std::vector<int64_t> seeds;
    for (const auto& p : req.models) {
      seeds.push_back(p.seed);
      auto tr = (*task)->Data(gradzoo::core::DataSplit::kTrain, 0, 0.0, p.seed, train_examples);
      auto va = (*task)->Data(gradzoo::core::DataSplit::kValidation, 0, 0.0, p.seed,
                              validation_examples);
      if (!tr.ok() || !va.ok()) return 1;
      xt.insert(xt.end(), tr->x.begin(), tr->x.end());
      yt.insert(yt.end(), tr->y.begin(), tr->y.end());
      xv.insert(xv.end(), va->x.begin(), va->x.end());
      yv.insert(yv.end(), va->y.begin(), va->y.end());
    }
    gradzoo::core::StackedMlp mlp = gradzoo::core::InitStacked(spec, seeds, at::kCPU);
    for (size_t l = 0; l < mlp.weight.size(); ++l) {
      for (const at::Tensor& t : {mlp.weight[l], mlp.bias[l]}) {
        at::Tensor c = t.contiguous();
        init.insert(init.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
      }
    }
    // The trainer's minibatch order: a Fisher-Yates shuffle of the rows from
    // Rng::ForStream(first seed, kBatchStream) whenever the epoch runs out.
    std::vector<int64_t> order, perm(train_examples);
    std::iota(perm.begin(), perm.end(), 0);
    auto rng = gradzoo::core::Rng::ForStream(static_cast<uint64_t>(seeds.front()),
                                             gradzoo::core::kBatchStream);
    int64_t cursor = train_examples;
    for (int s = 0; s < steps; ++s) {
      if (cursor + batch > train_examples) {
        for (int64_t i = train_examples - 1; i > 0; --i) {
          std::swap(perm[i], perm[static_cast<int64_t>(rng.Uniform() * (i + 1))]);
        }
        cursor = 0;
      }
      order.insert(order.end(), perm.begin() + cursor, perm.begin() + cursor + batch);
      cursor += batch;
    }
    Write(dump + "/x_train.f32", xt);
    Write(dump + "/y_train.f32", yt);
    Write(dump + "/x_val.f32", xv);
    Write(dump + "/y_val.f32", yv);
    Write(dump + "/init.f32", init);
    Write(dump + "/order.i64", order);
    std::ofstream meta(dump + "/meta.json");
    meta << absl::StrFormat(
        "{\"models\": %d, \"widths\": [%s], \"steps\": %d, \"batch\": %d, \"train_examples\": %d, "
        "\"validation_examples\": %d, \"lr\": %.9g, \"cosine\": true, \"seeds\": [%s]}\n",
        models, absl::StrJoin(spec.Widths(), ", "), steps, batch, train_examples,
        validation_examples, lr, absl::StrJoin(seeds, ", "));
  }

  const std::vector<int> w = spec.Widths();
  double macs = 0;
  for (size_t l = 0; l + 1 < w.size(); ++l) macs += double{1} * w[l] * w[l + 1];
  const double flops_per_step =
      2.0 * (3.0 * macs - double{1} * w[0] * w[1]) * batch * static_cast<double>(models);

  if (repeats == 0) {  // --dump (and --gemm) only
    std::string json = absl::StrFormat("{\"impl\": \"gemm\", \"threads\": %d", threads);
    if (gemm) json += GemmJson();
    std::cout << json << "}\n";
    return 0;
  }
  std::vector<double> times, cpu_times;
  double train_loss = 0, val_loss = 0;
  std::vector<double> per_model_val;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = CpuSeconds();
    auto result = gradzoo::core::TrainEnsemble(req, {}, {});
    times.push_back(Seconds(t0));
    cpu_times.push_back(CpuSeconds() - c0);
    if (!result.ok()) {
      std::cerr << result.status() << "\n";
      return 1;
    }
    train_loss = val_loss = 0;
    per_model_val.clear();
    for (const auto& m : *result) {
      train_loss += m.train_loss / models;
      val_loss += m.validation_loss / models;
      per_model_val.push_back(m.validation_loss);
    }
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  std::sort(cpu_times.begin(), cpu_times.end());
  const double cpu_median = cpu_times[cpu_times.size() / 2];
  std::string json = absl::StrFormat(
      "{\"impl\": \"%s\", \"threads\": %d, \"models\": %d, \"steps\": %d, \"batch\": %d, "
      "\"times_s\": [%s], \"median_s\": %.6f, \"model_steps_per_s\": %.1f, "
      "\"cpu_s\": %.6f, \"model_steps_per_cpu_s\": %.1f, "
      "\"flops_per_step\": %.6g, \"gflops\": %.3f, \"gflops_per_cpu_s\": %.3f, "
      "\"mean_train_mse\": %.9g, "
      "\"mean_val_mse\": %.9g, \"val_mse\": [%s]",
      reference ? "gradzoo-reference" : "gradzoo", threads, models, steps, batch,
      absl::StrJoin(times, ", ", [](std::string* o, double t) { absl::StrAppendFormat(o, "%.6f", t); }),
      median, static_cast<double>(models) * steps / median, cpu_median,
      static_cast<double>(models) * steps / cpu_median, flops_per_step,
      flops_per_step * steps / median / 1e9, flops_per_step * steps / cpu_median / 1e9, train_loss,
      val_loss,
      absl::StrJoin(per_model_val, ", ",
                    [](std::string* o, double v) { absl::StrAppendFormat(o, "%.7g", v); }));
  if (gemm) json += GemmJson();
  std::cout << json << "}\n";
  return 0;
}
