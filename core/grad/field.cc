#include "core/grad/field.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

namespace {
// Points per chunk: bounds the [K, chunk, out, width] intermediates of InputJacobian.
int64_t ChunkPoints(const MlpSpec& spec, int64_t k) {
  int64_t widest = std::max(spec.input_dim, spec.output_dim);
  for (int h : spec.hidden) widest = std::max<int64_t>(widest, h);
  const int64_t per_point = k * std::min(spec.input_dim, spec.output_dim) * widest * 4;
  constexpr int64_t kBudgetBytes = 64 << 20;
  return std::max<int64_t>(256, kBudgetBytes / std::max<int64_t>(1, per_point));
}
}  // namespace

absl::StatusOr<std::vector<ModelField>> ComputeInputGradients(
    const MlpSpec& spec, const std::vector<const std::vector<LayerWeights>*>& models,
    const std::vector<float>& points, int64_t n, const std::string& device,
    bool include_outputs, const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  if (points.size() != static_cast<size_t>(n) * spec.input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
  }
  return GuardTorch("gradient field", [&]() -> absl::StatusOr<std::vector<ModelField>> {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    const int64_t k = static_cast<int64_t>(models.size());
    const int in = spec.input_dim, out = spec.output_dim;
    StackedMlp mlp = Stack(spec, models, dev);
    std::vector<ModelField> fields(k);
    for (auto& f : fields) {
      f.n = n;
      f.input_dim = in;
      f.output_dim = out;
      f.gradients.resize(static_cast<size_t>(n) * out * in);
      if (include_outputs) f.outputs.resize(static_cast<size_t>(n) * out);
    }
    const int64_t chunk = ChunkPoints(spec, k);
    at::Tensor all = ViewFloats(points, {n, in});
    for (int64_t start = 0; start < n; start += chunk) {
      if (cancel && cancel()) return absl::CancelledError("gradient field cancelled");
      const int64_t m = std::min(chunk, n - start);
      at::Tensor x = all.narrow(0, start, m).to(dev).unsqueeze(0).expand({k, m, in});
      Capture cap;
      at::Tensor y = Forward(mlp, x, &cap);
      at::Tensor j = InputJacobian(mlp, cap).to(at::kCPU).contiguous();  // [K, m, out, in]
      at::Tensor yc = y.to(at::kCPU).contiguous();
      for (int64_t i = 0; i < k; ++i) {
        const float* src = j.data_ptr<float>() + i * m * out * in;
        std::copy(src, src + m * out * in, fields[i].gradients.data() + start * out * in);
        if (include_outputs) {
          const float* ys = yc.data_ptr<float>() + i * m * out;
          std::copy(ys, ys + m * out, fields[i].outputs.data() + start * out);
        }
      }
    }
    return fields;
  });
}

void CompareWithTheory(std::vector<float> theory, ModelField* f) {
  const int64_t n = f->n;
  const int out = f->output_dim, in = f->input_dim;
  f->theory = std::move(theory);
  f->has_theory = true;
  std::vector<double> tnorm(static_cast<size_t>(n) * out), dnorm(static_cast<size_t>(n) * out);
  double tmax = 0.0;
  for (int64_t r = 0; r < n * out; ++r) {
    double tt = 0.0, dd = 0.0;
    for (int i = 0; i < in; ++i) {
      const double t = f->theory[r * in + i];
      const double d = f->gradients[r * in + i] - t;
      tt += t * t;
      dd += d * d;
    }
    tnorm[r] = std::sqrt(tt);
    dnorm[r] = std::sqrt(dd);
    tmax = std::max(tmax, tnorm[r]);
  }
  const double eps = std::max(1e-3 * tmax, 1e-12);
  f->relative_errors.resize(static_cast<size_t>(n) * out);
  double sum_e = 0.0, sum_d = 0.0, sum_t = 0.0;
  std::vector<double> per_out(out, 0.0);
  for (int64_t r = 0; r < n * out; ++r) {
    const double e = dnorm[r] / std::max(tnorm[r], eps);
    f->relative_errors[r] = static_cast<float>(e);
    sum_e += e;
    per_out[r % out] += e;
    sum_d += dnorm[r];
    sum_t += tnorm[r];
  }
  GradientErrorSummary& s = f->summary;
  const double count = static_cast<double>(n) * out;
  s.mean_relative_error = count > 0 ? sum_e / count : 0.0;
  s.aggregate_relative_error = sum_t > 0 ? sum_d / sum_t : 0.0;
  s.per_output_mean_relative_error.assign(out, 0.0);
  for (int o = 0; o < out; ++o) s.per_output_mean_relative_error[o] = n > 0 ? per_out[o] / n : 0.0;
  std::vector<float> sorted = f->relative_errors;
  if (!sorted.empty()) {
    const size_t mid = sorted.size() / 2;
    std::nth_element(sorted.begin(), sorted.begin() + mid, sorted.end());
    double med = sorted[mid];
    if (sorted.size() % 2 == 0) {
      med = 0.5 * (med + *std::max_element(sorted.begin(), sorted.begin() + mid));
    }
    s.median_relative_error = med;
  }
}

}  // namespace gradzoo::core
