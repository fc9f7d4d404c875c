#include "core/grad/field.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/grad/bit_keys.h"
#include "core/grad/grad_internal.h"
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

// ReLU networks on the CPU: the input Jacobian is constant on each activation region, so one
// model's field is
//   1. a lean forward pass in cache-sized chunks: each hidden layer's pre-activations z_l are
//      packed into pattern bits (z > 0, bit_keys.h) while hot in cache, then rectified in place
//      (no captured activations, no per-point Jacobian intermediates);
//   2. one exact hash of every point's pattern for the whole field (BitKeySet: equal keys are
//      confirmed word by word, so no float rounding decides anything);
//   3. J = W_L D_H W_H ... D_1 W_1 (D_l = diag of layer l's bits) formed once per distinct
//      pattern, batched over the patterns first seen in each chunk;
//   4. a gather of the pattern's J rows to the points.
// The result equals the direct product at every point (same masks, same weights); the tests
// check it against LibTorch autograd.
absl::Status ReluFieldByPattern(const MlpSpec& spec, const std::vector<LayerWeights>& layers,
                                const at::Tensor& all, bool include_outputs,
                                const CancelFn& cancel, ModelField* f) {
  const int64_t n = all.size(0);
  const int in = spec.input_dim, out = spec.output_dim;
  const int hidden = static_cast<int>(spec.hidden.size());
  const int64_t jac = int64_t{out} * in;  // floats per pattern
  const StackedMlp mlp = Stack(spec, {&layers}, at::Device(at::kCPU));
  std::vector<at::Tensor> wt, b;  // W_l^T [in_l, out_l] (contiguous) and b_l [out_l]
  for (size_t l = 0; l < mlp.weight.size(); ++l) {
    wt.push_back(mlp.weight[l][0].t().contiguous());
    b.push_back(mlp.bias[l][0][0]);
  }
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  const int words = offsets.back();
  int widest = 0;
  for (int h : spec.hidden) widest = std::max(widest, h);
  // ~2 MiB of pre-activations per chunk: stays in cache while packed.
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 19) / std::max(widest, 1), 256, 16384);
  BitKeySet patterns(words);
  std::vector<float> table;  // [patterns, out, in]
  std::vector<uint64_t> bits(static_cast<size_t>(chunk) * words);
  std::vector<int64_t> ids(chunk);
  std::vector<int64_t> fresh;  // chunk rows whose pattern is new
  // Second-layer maps per first-layer pattern, kept for the whole field (grad_internal.h).
  std::unique_ptr<grad_internal::SecondLayerMaps> maps;
  if (hidden >= 2 && in <= grad_internal::kSmallInputs) {
    maps = std::make_unique<grad_internal::SecondLayerMaps>(mlp);
  }
  for (int64_t start = 0; start < n; start += chunk) {
    if (cancel && cancel()) return absl::CancelledError("gradient field cancelled");
    const int64_t m = std::min(chunk, n - start);
    at::Tensor h = all.narrow(0, start, m);
    for (int l = 0; l < hidden; ++l) {
      at::Tensor z;
      if (l == 0 && in <= grad_internal::kSmallInputs) {
        z = grad_internal::SmallInputLayer(h, wt[0], b[0]);
      } else if (l == 1 && in <= grad_internal::kSmallInputs) {  // layer 0's bits are packed
        z = grad_internal::CollapsedSecondLayer(mlp, all.narrow(0, start, m), bits.data(), words,
                                                maps.get());
      }
      if (!z.defined()) z = at::addmm(b[l], h, wt[l]);  // [m, w_l], contiguous
      const float* zp = z.data_ptr<float>();
      const int w = spec.hidden[l];
      uint64_t* dst = bits.data() + offsets[l];
      at::parallel_for(0, m, 1024, [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) PackPositive(zp + p * w, w, dst + p * words);
      });
      h = z.clamp_min_(0);
    }
    if (include_outputs) {
      at::Tensor y = at::addmm(b[hidden], h, wt[hidden]);
      std::copy(y.data_ptr<float>(), y.data_ptr<float>() + m * out, f->outputs.data() + start * out);
    }
    fresh.clear();
    for (int64_t p = 0; p < m; ++p) {
      ids[p] = patterns.Insert(bits.data() + p * words);
      if (ids[p] == static_cast<int64_t>(table.size() / jac) + static_cast<int64_t>(fresh.size())) {
        fresh.push_back(p);
      }
    }
    if (!fresh.empty()) {
      // Masks of the new patterns, then G = W_L D_H, G = G W_H D_{H-1}, ..., J = G W_1.
      const int64_t r = static_cast<int64_t>(fresh.size());
      std::vector<at::Tensor> masks(hidden);
      for (int l = 0; l < hidden; ++l) {
        const int w = spec.hidden[l];
        masks[l] = at::empty({r, 1, w}, at::kFloat);
        float* mp = masks[l].data_ptr<float>();
        for (int64_t i = 0; i < r; ++i) {
          const uint64_t* src = bits.data() + fresh[i] * words + offsets[l];
          for (int u = 0; u < w; ++u) mp[i * w + u] = static_cast<float>((src[u / 64] >> (u % 64)) & 1);
        }
      }
      at::Tensor g = mlp.weight[hidden][0].unsqueeze(0) * masks[hidden - 1];  // [r, out, w_H]
      for (int l = hidden - 1; l >= 0; --l) {
        g = at::matmul(g, mlp.weight[l][0]);  // [r, out, width below]
        if (l > 0) g.mul_(masks[l - 1]);
      }
      g = g.contiguous();
      table.insert(table.end(), g.data_ptr<float>(), g.data_ptr<float>() + r * jac);
    }
    float* dst = f->gradients.data() + start * jac;
    const float* tp = table.data();
    at::parallel_for(0, m, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) std::copy(tp + ids[p] * jac, tp + (ids[p] + 1) * jac, dst + p * jac);
    });
  }
  return absl::OkStatus();
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
    at::Tensor all = ViewFloats(points, {n, in});
    if (dev.is_cpu() && spec.activation == Activation::kRelu && !spec.hidden.empty()) {
      for (int64_t i = 0; i < k; ++i) {
        RETURN_IF_ERROR(ReluFieldByPattern(spec, *models[i], all, include_outputs, cancel, &fields[i]));
      }
      return fields;
    }
    const int64_t chunk = ChunkPoints(spec, k);
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
