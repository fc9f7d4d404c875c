// Input-gradient fields: d y_o / d x_i of every output at once, for many models of one
// architecture on the same points, and their comparison with a task's exact gradient.
//
// Gradients are analytic (core/nn InputJacobian: J = W_L D_{L-1} ... D_1 W_1 from one forward
// pass), computed in point chunks so memory stays bounded, and checked in tests against
// LibTorch autograd and central finite differences.
//
// Torch-free header; functions are thread-compatible.
#ifndef GRADZOO_CORE_GRAD_FIELD_H_
#define GRADZOO_CORE_GRAD_FIELD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model.h"

namespace gradzoo::core {

// How close a field is to the exact gradient. Per point p and output o, with gradient rows
// g = J[p,o,:] and t = T[p,o,:] (Euclidean norms over inputs):
//   e[p,o] = |g - t| / max(|t|, eps),  eps = 1e-3 * max_{p,o} |t| (guards t ~ 0)
//   mean   = mean_{p,o} e,  median = median_{p,o} e,
//   aggregate = sum_{p,o} |g - t| / sum_{p,o} |t|.
struct GradientErrorSummary {
  double mean_relative_error = 0.0;
  double median_relative_error = 0.0;
  double aggregate_relative_error = 0.0;
  std::vector<double> per_output_mean_relative_error;
};

// One model's field on n points.
struct ModelField {
  int64_t n = 0;
  int input_dim = 0;
  int output_dim = 0;
  std::vector<float> outputs;    // [n, out] (when asked for)
  std::vector<float> gradients;  // [n, out, in]
  bool has_theory = false;
  std::vector<float> theory;           // [n, out, in] exact gradients
  std::vector<float> relative_errors;  // [n, out] e[p,o] above
  GradientErrorSummary summary;
};

using CancelFn = std::function<bool()>;

// Gradients (and outputs if `include_outputs`) of each model in `models` (all of `spec`) at
// `points` ([n, spec.input_dim]). Polls `cancel` between chunks (CANCELLED).
absl::StatusOr<std::vector<ModelField>> ComputeInputGradients(
    const MlpSpec& spec, const std::vector<const std::vector<LayerWeights>*>& models,
    const std::vector<float>& points, int64_t n, const std::string& device,
    bool include_outputs, const CancelFn& cancel);

// Fills theory-derived fields of `field` from exact gradients `theory` ([n, out, in]).
void CompareWithTheory(std::vector<float> theory, ModelField* field);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_FIELD_H_
