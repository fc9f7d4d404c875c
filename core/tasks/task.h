// Tasks: the functions the zoo's networks learn, with their input domains and exact gradients.
//
// mul2 (seed 001, "soft mixing"): inputs x in [0,1]^4, outputs
//     y1 = (1 - lambda) x1 x2 + lambda x3 x4
//     y2 = (1 - lambda) x3 x4 + lambda x1 x2
//   lambda in [0, 1]: 0 = two independent tasks, 0.5 = both outputs the same function.
//   Exact gradient: dy1/dx = ((1-l) x2, (1-l) x1, l x4, l x3),
//                   dy2/dx = (l x2, l x1, (1-l) x4, (1-l) x3).
//
// Tasks are immutable and thread-safe. Sampling is deterministic for a seed on every platform
// (core/util/random.h).
#ifndef GRADZOO_CORE_TASKS_TASK_H_
#define GRADZOO_CORE_TASKS_TASK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model.h"

namespace gradzoo::core {

// N examples, row-major: x is [n, input_dim], y is [n, output_dim].
struct Dataset {
  int64_t n = 0;
  int input_dim = 0;
  int output_dim = 0;
  std::vector<float> x;
  std::vector<float> y;
};

class Task {
 public:
  virtual ~Task() = default;

  virtual const std::string& name() const = 0;
  virtual int input_dim() const = 0;
  virtual int output_dim() const = 0;
  // Per-input [lo, hi] of the sampling domain.
  virtual std::vector<std::pair<double, double>> Domain() const = 0;
  // INVALID_ARGUMENT when the task does not accept this lambda.
  virtual absl::Status ValidateLambda(double lambda) const = 0;
  // y = f(x) for n points: x [n, input_dim] -> y [n, output_dim].
  virtual void Evaluate(const float* x, int64_t n, double lambda, float* y) const = 0;
  // Whether ExactGradient is available.
  virtual bool HasExactGradient() const = 0;
  // d y_o / d x_i for n points into grad [n, output_dim, input_dim]. Precondition:
  // HasExactGradient().
  virtual void ExactGradient(const float* x, int64_t n, double lambda, float* grad) const = 0;

  // n points uniform on Domain() from Rng::ForStream(seed, stream), with their targets.
  Dataset Sample(int64_t n, double lambda, uint64_t seed, uint64_t stream) const;
};

// Names of the tasks this build provides.
std::vector<std::string> TaskNames();

// The task named `config.name`; INVALID_ARGUMENT listing the known names otherwise.
absl::StatusOr<std::shared_ptr<const Task>> MakeTask(const TaskConfig& config);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_TASKS_TASK_H_
