// Point sets for queries: a regular grid (a slice when it varies only some inputs) or explicit
// points. Torch-free.
//
// Grid point order: the first axis is outermost (varies slowest). Axis a has `steps` values
// min + (max - min) * i / (steps - 1), i = 0..steps-1 (just `min` when steps == 1). Inputs that
// no axis varies take fixed_values[i] (0.5 when fixed_values is empty).
#ifndef GRADZOO_CORE_GRAD_POINTS_H_
#define GRADZOO_CORE_GRAD_POINTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace gradzoo::core {

struct GridAxis {
  int input_index = 0;
  double min = 0.0;
  double max = 1.0;
  int64_t steps = 1;
};

struct PointSpec {
  // Grid (used when explicit_n < 0).
  std::vector<GridAxis> axes;
  std::vector<double> fixed_values;
  // Explicit points, row-major [explicit_n, input_dim] (used when explicit_n >= 0).
  int64_t explicit_n = -1;
  std::vector<float> explicit_points;
};

// Number of points `spec` denotes for a model with `input_dim` inputs, checked arithmetically
// (no allocation): INVALID_ARGUMENT for malformed specs (bad axis index, repeated axis, NaN or
// inverted bounds, wrong explicit size, non-finite values), RESOURCE_EXHAUSTED when it exceeds
// `max_points`.
absl::StatusOr<int64_t> CountPoints(const PointSpec& spec, int input_dim, int64_t max_points);

// Materialises the points, row-major [n, input_dim]. Validates like CountPoints first.
absl::StatusOr<std::vector<float>> MakePoints(const PointSpec& spec, int input_dim,
                                              int64_t max_points);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_POINTS_H_
