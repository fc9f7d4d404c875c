#include "core/grad/points.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace gradzoo::core {

absl::StatusOr<int64_t> CountPoints(const PointSpec& spec, int input_dim, int64_t max_points) {
  if (spec.explicit_n >= 0) {
    if (spec.explicit_points.size() != static_cast<size_t>(spec.explicit_n) * input_dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "points.explicit_points must have shape [N, ", input_dim, "] for this model; got ",
          spec.explicit_points.size(), " values for N = ", spec.explicit_n));
    }
    if (spec.explicit_n > max_points) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "points.explicit_points has ", spec.explicit_n, " points; at most ", max_points,
          " per query: split the request"));
    }
    for (size_t i = 0; i < spec.explicit_points.size(); ++i) {
      if (!std::isfinite(spec.explicit_points[i])) {
        return absl::InvalidArgumentError(absl::StrCat("points.explicit_points[", i / input_dim,
                                                       "] has a NaN or infinite value"));
      }
    }
    return spec.explicit_n;
  }
  if (spec.axes.empty()) {
    return absl::InvalidArgumentError("points: give a grid with at least one axis or explicit points");
  }
  if (!spec.fixed_values.empty() && spec.fixed_values.size() != static_cast<size_t>(input_dim)) {
    return absl::InvalidArgumentError(absl::StrCat("points.grid.fixed_values must have ",
                                                   input_dim, " values (one per input), got ",
                                                   spec.fixed_values.size()));
  }
  for (double v : spec.fixed_values) {
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError("points.grid.fixed_values has a NaN or infinite value");
    }
  }
  std::vector<bool> used(input_dim, false);
  int64_t total = 1;
  for (size_t a = 0; a < spec.axes.size(); ++a) {
    const GridAxis& ax = spec.axes[a];
    const std::string field = absl::StrCat("points.grid.axes[", a, "]");
    if (ax.input_index < 0 || ax.input_index >= input_dim) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".input_index ", ax.input_index,
                                                     " is out of range [0, ", input_dim, ")"));
    }
    if (used[ax.input_index]) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".input_index ", ax.input_index, " is used by two axes"));
    }
    used[ax.input_index] = true;
    if (!std::isfinite(ax.min) || !std::isfinite(ax.max) || ax.max < ax.min) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": min and max must be finite with min <= max, got [", ax.min, ", ",
                       ax.max, "]"));
    }
    if (ax.steps < 1) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".steps must be >= 1, got ", ax.steps));
    }
    // total * steps > max_points, without overflow.
    if (ax.steps > max_points / total) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "points.grid asks for more than ", max_points,
          " points (the per-query limit): lower the steps or split the request"));
    }
    total *= ax.steps;
  }
  return total;
}

absl::StatusOr<std::vector<float>> MakePoints(const PointSpec& spec, int input_dim,
                                              int64_t max_points) {
  ASSIGN_OR_RETURN(const int64_t n, CountPoints(spec, input_dim, max_points));
  if (spec.explicit_n >= 0) return spec.explicit_points;
  std::vector<float> pts(static_cast<size_t>(n) * input_dim);
  std::vector<float> base(input_dim, 0.5f);
  for (size_t i = 0; i < spec.fixed_values.size(); ++i) base[i] = static_cast<float>(spec.fixed_values[i]);
  const size_t axes = spec.axes.size();
  std::vector<int64_t> idx(axes, 0);
  for (int64_t p = 0; p < n; ++p) {
    float* row = pts.data() + p * input_dim;
    std::copy(base.begin(), base.end(), row);
    for (size_t a = 0; a < axes; ++a) {
      const GridAxis& ax = spec.axes[a];
      const double t = ax.steps == 1 ? 0.0 : static_cast<double>(idx[a]) / (ax.steps - 1);
      row[ax.input_index] = static_cast<float>(ax.min + (ax.max - ax.min) * t);
    }
    for (int64_t a = static_cast<int64_t>(axes) - 1; a >= 0; --a) {  // last axis fastest
      if (++idx[a] < spec.axes[a].steps) break;
      idx[a] = 0;
    }
  }
  return pts;
}

}  // namespace gradzoo::core
