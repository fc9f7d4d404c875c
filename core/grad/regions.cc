#include "core/grad/regions.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/grad/bit_keys.h"
#include "core/grad/grad_internal.h"
#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

namespace {

using grad_internal::CellOf;

constexpr double kDefaultTolerance = 1e-3;
constexpr int64_t kDefaultRegionSizes = 1000;
constexpr int64_t kMaxRegionSizes = 100000;

absl::Status ValidateOptions(const RegionOptions& o) {
  if (!std::isfinite(o.tolerance) || o.tolerance < 0 || o.tolerance >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tolerance must be in [0, 1) (0 = 1e-3), got ", o.tolerance));
  }
  if (o.max_region_sizes < 0 || o.max_region_sizes > kMaxRegionSizes) {
    return absl::InvalidArgumentError(absl::StrCat("max_region_sizes must be in [0, ",
                                                   kMaxRegionSizes, "], got ",
                                                   o.max_region_sizes));
  }
  return absl::OkStatus();
}

int64_t SumHidden(const MlpSpec& spec) {
  int64_t s = 0;
  for (int h : spec.hidden) s += h;
  return s;
}

// Region sizes, singletons, saturation and coincidence from per-region point counts.
void Finish(std::vector<int64_t> counts, const RegionOptions& options, RegionCounts* r) {
  r->regions = static_cast<int64_t>(counts.size());
  r->singleton_regions = std::count(counts.begin(), counts.end(), int64_t{1});
  r->saturated = r->points > 0 && 2 * r->singleton_regions > r->points;
  const int64_t keep = options.max_region_sizes > 0 ? options.max_region_sizes : kDefaultRegionSizes;
  std::sort(counts.begin(), counts.end(), std::greater<int64_t>());
  r->region_sizes_truncated = static_cast<int64_t>(counts.size()) > keep;
  if (r->region_sizes_truncated) counts.resize(keep);
  r->region_sizes = std::move(counts);
  r->outputs_coincide = true;
  for (int64_t u : r->unique_gradients_per_output) {
    r->outputs_coincide &= u == r->unique_gradient_combinations;
  }
}

// Runs `fn(start, m, mlp, capture)` over point chunks of `points` after a forward pass.
template <typename Fn>
absl::Status ForEachChunk(const StackedMlp& mlp, const at::Tensor& all, int64_t chunk,
                          const at::Device& dev, const CancelFn& cancel, Fn&& fn) {
  const int64_t n = all.size(0);
  for (int64_t start = 0; start < n; start += chunk) {
    if (cancel && cancel()) return absl::CancelledError("region count cancelled");
    const int64_t m = std::min(chunk, n - start);
    at::Tensor x = all.narrow(0, start, m).to(dev).unsqueeze(0);
    Capture cap;
    Forward(mlp, x, &cap);
    fn(start, m, cap);
  }
  return absl::OkStatus();
}

absl::StatusOr<RegionCounts> CountRelu(const MlpSpec& spec, const std::vector<LayerWeights>& layers,
                                       const at::Tensor& all, const at::Device& dev,
                                       const RegionOptions& options, const CancelFn& cancel) {
  RegionCounts r;
  r.points = all.size(0);
  const StackedMlp mlp = Stack(spec, {&layers}, dev);
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  const int words = offsets.back();
  // Small chunks keep each layer's pre-activations in cache while their bits are packed.
  const int64_t chunk = std::min<int64_t>(8192, grad_internal::ChunkFor(2 * SumHidden(spec)));
  BitKeySet patterns(words);
  std::vector<int64_t> counts;
  std::vector<uint64_t> bits(static_cast<size_t>(chunk) * std::max(words, 1));
  const int64_t n = all.size(0);
  // Second-layer maps per first-layer pattern, kept for the whole call (grad_internal.h).
  std::unique_ptr<grad_internal::SecondLayerMaps> maps;
  if (dev.is_cpu() && spec.hidden.size() >= 2 && spec.input_dim <= grad_internal::kSmallInputs) {
    maps = std::make_unique<grad_internal::SecondLayerMaps>(mlp);
  }
  for (int64_t start = 0; start < n; start += chunk) {
    if (cancel && cancel()) return absl::CancelledError("region count cancelled");
    const int64_t m = std::min(chunk, n - start);
    grad_internal::ChunkPatterns(mlp, all.narrow(0, start, m).to(dev), bits.data(), maps.get());
    for (int64_t p = 0; p < m; ++p) {
      const int64_t id = patterns.Insert(bits.data() + p * words);
      if (id == static_cast<int64_t>(counts.size())) counts.push_back(0);
      ++counts[id];
    }
  }

  // Unique gradients: live-set keys per region (bit_keys.h).
  const LiveSets live(spec, layers);
  const int out = spec.output_dim;
  std::vector<BitKeySet> per_output(out, BitKeySet(words));
  BitKeySet combos(out * words);
  std::vector<uint64_t> key(static_cast<size_t>(out) * words + 1);
  const int hidden = static_cast<int>(spec.hidden.size());
  std::vector<std::vector<BitKeySet>> pre(hidden), post(hidden);
  if (options.per_layer) {
    for (int l = 0; l < hidden; ++l) {
      pre[l].assign(out, BitKeySet(live.PreKeyWords(l)));
      post[l].assign(out, BitKeySet(live.PostKeyWords(l)));
    }
  }
  std::vector<uint64_t> layer_key(words + 1);
  for (int64_t id = 0; id < patterns.size(); ++id) {
    if ((id & 4095) == 0 && cancel && cancel()) return absl::CancelledError("region count cancelled");
    const uint64_t* pattern = patterns.key(id);
    for (int o = 0; o < out; ++o) {
      live.InputKey(pattern, o, {}, key.data() + o * words);
      per_output[o].Insert(key.data() + o * words);
    }
    combos.Insert(key.data());
    for (int l = 0; options.per_layer && l < hidden; ++l) {
      for (int o = 0; o < out; ++o) {
        live.PreKey(pattern, l, o, layer_key.data());
        pre[l][o].Insert(layer_key.data());
        live.PostKey(pattern, l, o, layer_key.data());
        post[l][o].Insert(layer_key.data());
      }
    }
  }
  for (int o = 0; o < out; ++o) r.unique_gradients_per_output.push_back(per_output[o].size());
  r.unique_gradient_combinations = combos.size();
  for (int l = 0; options.per_layer && l < hidden; ++l) {
    LayerSplintering s;
    s.layer = l;
    for (int o = 0; o < out; ++o) {
      s.unique_pre.push_back(pre[l][o].size());
      s.unique_post.push_back(post[l][o].size());
    }
    r.layers.push_back(std::move(s));
  }
  Finish(std::move(counts), options, &r);
  return r;
}

// Grid clustering of smooth-activation gradients (two passes: scales, then cells).
absl::StatusOr<RegionCounts> CountSmooth(const MlpSpec& spec,
                                         const std::vector<LayerWeights>& layers,
                                         const at::Tensor& all, const at::Device& dev,
                                         const RegionOptions& options, const CancelFn& cancel) {
  RegionCounts r;
  r.points = all.size(0);
  r.clustered = true;
  r.tolerance = options.tolerance > 0 ? options.tolerance : kDefaultTolerance;
  const StackedMlp mlp = Stack(spec, {&layers}, dev);
  const int in = spec.input_dim, out = spec.output_dim;
  const int hidden = static_cast<int>(spec.hidden.size());
  const bool per_layer = options.per_layer && hidden > 0;
  const int64_t chunk = grad_internal::ChunkFor(
      2 * SumHidden(spec) + in + out * in + (per_layer ? 2 * out * SumHidden(spec) : 0));

  // Pass 1: s = max |g_i| per quantity and output.
  at::Tensor input_scale = at::zeros({out}, at::kDouble);
  std::vector<at::Tensor> pre_scale(hidden, at::zeros({out}, at::kDouble));
  std::vector<at::Tensor> post_scale(hidden, at::zeros({out}, at::kDouble));
  auto amax = [](const at::Tensor& g) {  // [m, out, d] -> [out]
    return g.abs().amax({0, 2}).to(at::kCPU, at::kDouble);
  };
  RETURN_IF_ERROR(ForEachChunk(mlp, all, chunk, dev, cancel, [&](int64_t, int64_t, const Capture& cap) {
    input_scale = at::maximum(input_scale, amax(InputJacobian(mlp, cap)[0]));
    if (!per_layer) return;
    grad_internal::LayerGradients g = grad_internal::OutputLayerGradients(mlp, cap);
    for (int l = 0; l < hidden; ++l) {
      pre_scale[l] = at::maximum(pre_scale[l], amax(g.pre[l]));
      post_scale[l] = at::maximum(post_scale[l], amax(g.post[l]));
    }
  }));
  auto eps_of = [&](const at::Tensor& scale) {
    std::vector<double> eps(out);
    for (int o = 0; o < out; ++o) {
      const double s = scale[o].item<double>();
      eps[o] = s > 0 ? r.tolerance * s : 1.0;
    }
    return eps;
  };
  const std::vector<double> input_eps = eps_of(input_scale);

  // Pass 2: cells.
  std::vector<BitKeySet> per_output(out, BitKeySet(in));
  BitKeySet combos(out * in);
  std::vector<int64_t> counts;
  std::vector<std::vector<BitKeySet>> pre(hidden), post(hidden);
  std::vector<std::vector<double>> pre_eps(hidden), post_eps(hidden);
  for (int l = 0; per_layer && l < hidden; ++l) {
    pre[l].assign(out, BitKeySet(spec.hidden[l]));
    post[l].assign(out, BitKeySet(spec.hidden[l]));
    pre_eps[l] = eps_of(pre_scale[l]);
    post_eps[l] = eps_of(post_scale[l]);
  }
  std::vector<uint64_t> key(static_cast<size_t>(out) * std::max(in, 1));
  std::vector<uint64_t> layer_key;
  auto insert_cells = [&](const float* g, int d, double eps, BitKeySet* set) {
    layer_key.resize(d);
    for (int i = 0; i < d; ++i) layer_key[i] = CellOf(g[i], eps);
    set->Insert(layer_key.data());
  };
  RETURN_IF_ERROR(ForEachChunk(mlp, all, chunk, dev, cancel, [&](int64_t, int64_t m, const Capture& cap) {
    at::Tensor j = InputJacobian(mlp, cap)[0].to(at::kCPU).contiguous();  // [m, out, in]
    const float* jp = j.data_ptr<float>();
    for (int64_t p = 0; p < m; ++p) {
      for (int o = 0; o < out; ++o) {
        const float* g = jp + (p * out + o) * in;
        for (int i = 0; i < in; ++i) key[o * in + i] = CellOf(g[i], input_eps[o]);
        per_output[o].Insert(key.data() + o * in);
      }
      const int64_t id = combos.Insert(key.data());
      if (id == static_cast<int64_t>(counts.size())) counts.push_back(0);
      ++counts[id];
    }
    if (!per_layer) return;
    grad_internal::LayerGradients g = grad_internal::OutputLayerGradients(mlp, cap);
    for (int l = 0; l < hidden; ++l) {
      const int w = spec.hidden[l];
      at::Tensor gpre = g.pre[l].to(at::kCPU).contiguous();
      at::Tensor gpost = g.post[l].to(at::kCPU).contiguous();
      for (int64_t p = 0; p < m; ++p) {
        for (int o = 0; o < out; ++o) {
          insert_cells(gpre.data_ptr<float>() + (p * out + o) * w, w, pre_eps[l][o], &pre[l][o]);
          insert_cells(gpost.data_ptr<float>() + (p * out + o) * w, w, post_eps[l][o], &post[l][o]);
        }
      }
    }
  }));
  for (int o = 0; o < out; ++o) r.unique_gradients_per_output.push_back(per_output[o].size());
  r.unique_gradient_combinations = combos.size();
  for (int l = 0; per_layer && l < hidden; ++l) {
    LayerSplintering s;
    s.layer = l;
    for (int o = 0; o < out; ++o) {
      s.unique_pre.push_back(pre[l][o].size());
      s.unique_post.push_back(post[l][o].size());
    }
    r.layers.push_back(std::move(s));
  }
  Finish(std::move(counts), options, &r);
  return r;
}

}  // namespace

absl::StatusOr<RegionCounts> CountRegions(const MlpSpec& spec,
                                          const std::vector<LayerWeights>& layers,
                                          const std::vector<float>& points, int64_t n,
                                          const std::string& device,
                                          const RegionOptions& options, const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(spec, layers));
  RETURN_IF_ERROR(ValidateOptions(options));
  if (n < 0 || points.size() != static_cast<size_t>(n) * spec.input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
  }
  return GuardTorch("region count", [&]() -> absl::StatusOr<RegionCounts> {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    at::Tensor all = ViewFloats(points, {n, spec.input_dim});
    if (spec.activation == Activation::kRelu) {
      return CountRelu(spec, layers, all, dev, options, cancel);
    }
    return CountSmooth(spec, layers, all, dev, options, cancel);
  });
}

absl::StatusOr<std::vector<uint64_t>> ActivationPatterns(const MlpSpec& spec,
                                                         const std::vector<LayerWeights>& layers,
                                                         const std::vector<float>& points,
                                                         int64_t n, const std::string& device,
                                                         const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(spec, layers));
  if (n < 0 || points.size() != static_cast<size_t>(n) * spec.input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
  }
  return GuardTorch("activation patterns", [&]() -> absl::StatusOr<std::vector<uint64_t>> {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    const int words = PatternWordOffsets(spec.hidden).back();
    std::vector<uint64_t> out(static_cast<size_t>(n) * words);
    const StackedMlp mlp = Stack(spec, {&layers}, dev);
    at::Tensor all = ViewFloats(points, {n, spec.input_dim});
    const int64_t chunk = std::min<int64_t>(8192, grad_internal::ChunkFor(2 * SumHidden(spec)));
    std::unique_ptr<grad_internal::SecondLayerMaps> maps;
    if (dev.is_cpu() && spec.activation == Activation::kRelu && spec.hidden.size() >= 2 &&
        spec.input_dim <= grad_internal::kSmallInputs) {
      maps = std::make_unique<grad_internal::SecondLayerMaps>(mlp);
    }
    for (int64_t start = 0; start < n; start += chunk) {
      if (cancel && cancel()) return absl::CancelledError("activation patterns cancelled");
      const int64_t m = std::min(chunk, n - start);
      grad_internal::ChunkPatterns(mlp, all.narrow(0, start, m).to(dev), out.data() + start * words,
                                   maps.get());
    }
    return out;
  });
}

absl::StatusOr<int64_t> ValidateRegionQuery(const Engine& engine, const RegionQuery& query) {
  RETURN_IF_ERROR(ValidateOptions(query.options));
  ASSIGN_OR_RETURN(grad_internal::ResolvedModel r,
                   grad_internal::ResolveModel(engine, query.model, query.points));
  return r.n;
}

absl::StatusOr<RegionCounts> CountLinearRegions(const Engine& engine, const RegionQuery& query,
                                                const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateOptions(query.options));
  ASSIGN_OR_RETURN(grad_internal::ResolvedModel r,
                   grad_internal::ResolveModel(engine, query.model, query.points));
  const MlpSpec& spec = r.model->spec;
  ASSIGN_OR_RETURN(std::vector<float> points,
                   MakePoints(query.points, spec.input_dim, engine.options().max_points_per_query));
  return CountRegions(spec, r.model->layers, points, r.n, engine.device(), query.options, cancel);
}

}  // namespace gradzoo::core
