// Batched ensemble training: one program trains every model of a zoo at once.
//
// Loss: MSE for regression tasks, softmax cross-entropy for classification (Task::loss()).
// Synthetic tasks give each model its own data from its seed ([K, N, in] tensors); dataset
// tasks (fashion-mnist, custom) share one copy that every model reads ([N, in], broadcast).
//
// Backpropagation is written out by hand (no autograd graph): for MSE loss
// L_k = mean_{n,o} (z_L - y)^2 of model k,
//   dz_L = 2 (z_L - y) / (B * out),  dW_l = dz_l^T h_{l-1},  db_l = sum_n dz_l,
//   dz_{l-1} = (dz_l W_l) * act'(z_{l-1}),
// then Adam (PyTorch's). Two implementations of the same updates:
//  - CPU, zoo-sized networks (every layer in * out <= 65536): fused per-model kernels
//    (core/train/fused_cpu.h) run each model's whole step in cache, the models of a step
//    spread over the ATen thread pool. Bitwise reproducible for any thread count.
//  - otherwise (CUDA, big layers, or TrainRequest::reference_kernels): weights stacked as
//    [K, out, in] in one flat buffer, batched matmuls, one whole-buffer Adam step for all K.
// Both are tested against LibTorch autograd and against each other (tests/core/
// fused_cpu_test.cc, tests/core/trainer_test.cc); tests/bench/train_README.md has the speed.
//
// Every model has its own data (drawn from its seed) and its own initial weights (from its
// seed), so a model's result does not depend on which other models share the program.
// Early stopping is per model: every `eval_every` steps the validation loss is measured, the
// best weights are kept, and a model without improvement for `early_stopping_patience`
// evaluations is frozen (its updates are masked to zero, or skipped). Deterministic on CPU for a
// given thread count (and instruction set: the fused kernels pick AVX-512, AVX2 or SSE2).
//
// Torch-free header; thread-compatible (no shared state).
#ifndef GRADZOO_CORE_TRAIN_TRAINER_H_
#define GRADZOO_CORE_TRAIN_TRAINER_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model.h"
#include "core/tasks/task.h"

namespace gradzoo::core {

// One model to train.
struct ModelPlan {
  int variant = 0;  // the task's variant (poly1d family)
  double lambda = 0.0;
  int64_t seed = 0;
  Split split = Split::kTrain;
};

struct TrainedModel {
  ModelPlan plan;
  double train_loss = 0.0;       // full training-set loss with the kept weights
  double validation_loss = 0.0;  // best validation loss (the kept weights)
  int steps = 0;                 // steps taken before it stopped
  double test_loss = std::nan("");      // on the task's test set, when it has one
  double test_accuracy = std::nan("");  // classification tasks with a test set
  std::vector<LayerWeights> layers;
};

// Reported after every evaluation.
struct TrainProgress {
  int step = 0;
  int total_steps = 0;
  int models_done = 0;  // models stopped early (all, at the end)
  int models_total = 0;
  double mean_train_loss = 0.0;
  double mean_validation_loss = 0.0;
  double max_validation_loss = 0.0;
};

using ProgressFn = std::function<void(const TrainProgress&)>;
// Polled every step; returning true stops training with CANCELLED.
using CancelFn = std::function<bool()>;

// Where the data dimensions come from: `task` gives input/output dims and samples data.
struct TrainRequest {
  MlpSpec spec;
  const Task* task = nullptr;
  std::vector<ModelPlan> models;
  int train_examples = 2048;
  int validation_examples = 512;
  TrainConfig config;
  std::string device = "cpu";  // resolved device ("cpu", "cuda:0")
  // On CPU, train with the ATen batched-matmul path (the one CUDA uses) instead of the fused
  // per-model CPU kernels. Both compute the same updates up to float rounding; tests and
  // benchmarks use this to compare them.
  bool reference_kernels = false;
};

// Stream of Rng::ForStream for minibatch order (data streams are in core/tasks/task.h, the
// weights' in core/nn/mlp.h).
inline constexpr uint64_t kBatchStream = 3;

// Trains every model; INVALID_ARGUMENT for bad settings, CANCELLED when `cancel` says so,
// INTERNAL / RESOURCE_EXHAUSTED for LibTorch failures. `progress` and `cancel` may be empty.
absl::StatusOr<std::vector<TrainedModel>> TrainEnsemble(const TrainRequest& request,
                                                        const ProgressFn& progress,
                                                        const CancelFn& cancel);

// INVALID_ARGUMENT naming the field when a TrainConfig value is out of range.
absl::Status ValidateTrainConfig(const TrainConfig& config);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_TRAIN_TRAINER_H_
