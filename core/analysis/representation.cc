#include "core/analysis/representation.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "core/analysis/layer_tensors.h"
#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

namespace {

constexpr int64_t kChunkBudgetBytes = int64_t{64} << 20;

absl::Status CheckInput(const ModelInput& in) {
  if (in.spec == nullptr || in.weights == nullptr || in.points == nullptr) {
    return absl::InvalidArgumentError("model input is incomplete");
  }
  RETURN_IF_ERROR(in.spec->Validate());
  RETURN_IF_ERROR(ValidateWeights(*in.spec, *in.weights));
  if (in.n <= 0 || in.points->size() != static_cast<size_t>(in.n) * in.spec->input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim] with n >= 1");
  }
  return absl::OkStatus();
}

int64_t ChunkFor(const MlpSpec& spec, int64_t extra_per_point) {
  const int64_t per = CaptureBytesPerPoint(spec) + extra_per_point;
  return std::max<int64_t>(64, kChunkBudgetBytes / std::max<int64_t>(1, per));
}

// Runs the model over its points chunk by chunk, calling fn(x, capture, start, m).
template <typename Fn>
absl::Status ForEachChunk(const ModelInput& in, const StackedMlp& mlp, const at::Device& dev,
                          int64_t chunk, const CancelFn& cancel, Fn&& fn) {
  for (int64_t start = 0; start < in.n; start += chunk) {
    if (cancel && cancel()) return absl::CancelledError("analysis cancelled");
    const int64_t m = std::min(chunk, in.n - start);
    at::Tensor x = ChunkInputs({in.points}, 1, start, m, in.spec->input_dim, dev);
    Capture cap;
    Forward(mlp, x, &cap);
    RETURN_IF_ERROR(fn(x, cap, start, m));
  }
  return absl::OkStatus();
}

// [m, w] float64 contiguous CPU rows of an activation [1, m, w].
at::Tensor Rows(const at::Tensor& a) { return a.select(0, 0).to(at::kCPU).contiguous(); }

// Block (r0, c0, rows, cols) of a row-major [d, d] matrix.
std::vector<double> Block(const std::vector<double>& m, int d, int r0, int c0, int rows, int cols) {
  std::vector<double> out(static_cast<size_t>(rows) * cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) out[i * cols + j] = m[(r0 + i) * static_cast<int64_t>(d) + c0 + j];
  }
  return out;
}

// U_a C U_b^T for row-major U_a [ka, da], C [da, db], U_b [kb, db].
std::vector<double> Sandwich(const std::vector<double>& ua, int ka, int da,
                             const std::vector<double>& c, const std::vector<double>& ub, int kb,
                             int db) {
  std::vector<double> tmp(static_cast<size_t>(ka) * db, 0.0), out(static_cast<size_t>(ka) * kb, 0.0);
  for (int i = 0; i < ka; ++i) {
    for (int t = 0; t < da; ++t) {
      const double v = ua[i * da + t];
      if (v == 0.0) continue;
      for (int j = 0; j < db; ++j) tmp[i * db + j] += v * c[t * db + j];
    }
  }
  for (int i = 0; i < ka; ++i) {
    for (int j = 0; j < kb; ++j) {
      double s = 0.0;
      for (int t = 0; t < db; ++t) s += tmp[i * db + t] * ub[j * db + t];
      out[i * kb + j] = s;
    }
  }
  return out;
}

// Joint moments of the activations at `refs` (concatenated in order) over every point.
absl::StatusOr<MomentAccumulator> JointMoments(const ModelInput& in, const std::vector<LayerRef>& refs,
                                               const std::string& device, const CancelFn& cancel) {
  int total = 0;
  for (const LayerRef& r : refs) total += LayerWidth(*in.spec, r);
  MomentAccumulator acc(total, /*centered=*/true);
  RETURN_IF_ERROR(GuardTorch("layer moments", [&]() -> absl::Status {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    StackedMlp mlp = StackDouble(*in.spec, {in.weights}, dev);
    return ForEachChunk(in, mlp, dev, ChunkFor(*in.spec, 16 * int64_t{total}), cancel,
                        [&](const at::Tensor& x, const Capture& cap, int64_t, int64_t) {
                          std::vector<at::Tensor> parts;
                          for (const LayerRef& r : refs) parts.push_back(ActivationAt(mlp, x, cap, r));
                          at::Tensor rows = Rows(at::cat(parts, 2));
                          acc.AddRows(rows.data_ptr<double>(), rows.size(0));
                          return absl::OkStatus();
                        });
  }));
  return acc;
}

}  // namespace

absl::StatusOr<LayerPcaResult> ActivationPca(const ModelInput& in, const LayerRef& layer,
                                        const LayerRef* second, const std::string& device,
                                        const CancelFn& cancel) {
  RETURN_IF_ERROR(CheckInput(in));
  RETURN_IF_ERROR(ValidateLayer(*in.spec, layer, /*allow_output=*/true, "layer"));
  if (second != nullptr) {
    RETURN_IF_ERROR(ValidateLayer(*in.spec, *second, /*allow_output=*/true, "second_layer"));
  }
  std::vector<LayerRef> refs = {layer};
  if (second != nullptr) refs.push_back(*second);
  ASSIGN_OR_RETURN(MomentAccumulator acc, JointMoments(in, refs, device, cancel));
  const int da = LayerWidth(*in.spec, layer);
  const int d = acc.dim();
  const std::vector<double> cov = acc.Covariance(1);
  const std::vector<double> mean = acc.Mean();
  LayerPcaResult r;
  r.layer = layer;
  r.points_used = acc.count();
  ASSIGN_OR_RETURN(r.pca, PcaFromMoments(Block(cov, d, 0, 0, da, da), da,
                                         std::vector<double>(mean.begin(), mean.begin() + da),
                                         acc.count()));
  if (second != nullptr) {
    const int db = d - da;
    r.has_second = true;
    r.second_layer = *second;
    ASSIGN_OR_RETURN(r.second, PcaFromMoments(Block(cov, d, da, da, db, db), db,
                                              std::vector<double>(mean.begin() + da, mean.end()),
                                              acc.count()));
    r.pc_covariance =
        Sandwich(r.pca.components, da, da, Block(cov, d, 0, da, da, db), r.second.components, db, db);
    r.pc_correlation.assign(r.pc_covariance.size(), 0.0);
    for (int i = 0; i < da; ++i) {
      for (int j = 0; j < db; ++j) {
        const double s = r.pca.explained_variance[i] * r.second.explained_variance[j];
        if (s > 0) {
          r.pc_correlation[i * db + j] = std::clamp(r.pc_covariance[i * db + j] / std::sqrt(s), -1.0, 1.0);
        }
      }
    }
  }
  return r;
}

absl::StatusOr<LayerPlsrResult> LayerPlsr(const ModelInput& in, const LayerRef& source,
                                          const LayerRef& target, int target_components,
                                          const PlsrOptions& options, const std::string& device,
                                          const CancelFn& cancel) {
  RETURN_IF_ERROR(CheckInput(in));
  RETURN_IF_ERROR(ValidateLayer(*in.spec, source, /*allow_output=*/true, "layer"));
  RETURN_IF_ERROR(ValidateLayer(*in.spec, target, /*allow_output=*/true, "target_layer"));
  const int ds = LayerWidth(*in.spec, source), dt = LayerWidth(*in.spec, target);
  if (target_components < 0 || target_components > dt) {
    return absl::InvalidArgumentError(absl::StrCat("target_components must be in [0, ", dt,
                                                   "], got ", target_components));
  }
  if (options.components < 1 || options.components > ds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "components must be in [1, ", ds, "] (the source layer's width), got ", options.components));
  }
  ASSIGN_OR_RETURN(MomentAccumulator acc, JointMoments(in, {source, target}, device, cancel));
  if (acc.count() < 2) return absl::InvalidArgumentError("PLSR needs at least 2 points");
  const int d = ds + dt;
  const std::vector<double> cov = acc.Covariance(1);
  const std::vector<double> mean = acc.Mean();
  LayerPlsrResult r;
  r.points_used = acc.count();
  ASSIGN_OR_RETURN(r.source_pca, PcaFromMoments(Block(cov, d, 0, 0, ds, ds), ds,
                                                std::vector<double>(mean.begin(), mean.begin() + ds),
                                                acc.count()));
  ASSIGN_OR_RETURN(r.target_pca, PcaFromMoments(Block(cov, d, ds, ds, dt, dt), dt,
                                                std::vector<double>(mean.begin() + ds, mean.end()),
                                                acc.count()));
  int q = target_components;
  if (q == 0) q = ComponentsForVariance(r.target_pca.explained_variance, 0.99);
  if (q == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target layer ", LayerLabel(*in.spec, target), " has no variance on these points"));
  }
  r.targets = q;
  // Moments of [X, Y] with Y = U_q (a_t - mean_t): cov(X, Y) = C_st U_q^T, cov(Y) = U_q C_tt U_q^T.
  const std::vector<double> uq(r.target_pca.components.begin(),
                               r.target_pca.components.begin() + static_cast<int64_t>(q) * dt);
  const std::vector<double> css = Block(cov, d, 0, 0, ds, ds);
  const std::vector<double> cst = Block(cov, d, 0, ds, ds, dt);
  std::vector<double> identity(static_cast<size_t>(ds) * ds, 0.0);
  for (int i = 0; i < ds; ++i) identity[i * ds + i] = 1.0;
  const std::vector<double> cxy = Sandwich(identity, ds, ds, cst, uq, q, dt);     // [ds, q]
  const std::vector<double> cyy = Sandwich(uq, q, dt, Block(cov, d, ds, ds, dt, dt), uq, q, dt);
  const int pq = ds + q;
  std::vector<double> joint(static_cast<size_t>(pq) * pq, 0.0);
  for (int i = 0; i < ds; ++i) {
    for (int j = 0; j < ds; ++j) joint[i * pq + j] = css[i * ds + j];
    for (int j = 0; j < q; ++j) {
      joint[i * pq + ds + j] = cxy[i * q + j];
      joint[(ds + j) * pq + i] = cxy[i * q + j];
    }
  }
  for (int i = 0; i < q; ++i) {
    for (int j = 0; j < q; ++j) joint[(ds + i) * pq + ds + j] = cyy[i * q + j];
  }
  std::vector<double> jmean(mean.begin(), mean.begin() + ds);
  jmean.resize(pq, 0.0);  // PC activations are centred
  ASSIGN_OR_RETURN(r.plsr, PlsrFromMoments(joint, jmean, ds, q, acc.count(), options));
  // Overlap |cos| of each x weight (unit columns) with each source PC (unit rows).
  const int c = r.plsr.components;
  r.pc_overlap.assign(static_cast<size_t>(c) * ds, 0.0);
  for (int k = 0; k < c; ++k) {
    double norm = 0.0;
    for (int i = 0; i < ds; ++i) norm += r.plsr.x_weights[i * c + k] * r.plsr.x_weights[i * c + k];
    norm = std::sqrt(norm);
    for (int j = 0; j < ds; ++j) {
      double dot = 0.0;
      for (int i = 0; i < ds; ++i) dot += r.plsr.x_weights[i * c + k] * r.source_pca.components[j * ds + i];
      r.pc_overlap[k * ds + j] = norm > 0 ? std::min(1.0, std::abs(dot) / norm) : 0.0;
    }
  }
  return r;
}

absl::StatusOr<CkaResult> LayerCka(const ModelInput& a, const LayerRef& layer_a,
                                   const ModelInput& b, const LayerRef& layer_b, bool all_layers,
                                   const std::string& device, const CancelFn& cancel) {
  RETURN_IF_ERROR(CheckInput(a));
  RETURN_IF_ERROR(CheckInput(b));
  if (a.spec->input_dim != b.spec->input_dim || a.n != b.n || *a.points != *b.points) {
    return absl::InvalidArgumentError("CKA compares two models on the same points");
  }
  RETURN_IF_ERROR(ValidateLayer(*a.spec, layer_a, /*allow_output=*/true, "layer_a"));
  RETURN_IF_ERROR(ValidateLayer(*b.spec, layer_b, /*allow_output=*/true, "layer_b"));
  CkaResult r;
  std::vector<LayerRef> refs_a = {layer_a}, refs_b = {layer_b};
  if (all_layers) {
    r.has_matrix = true;
    for (const ModelInput* m : {&a, &b}) {
      std::vector<LayerRef>& dst = m == &a ? r.layers_a : r.layers_b;
      for (int l = 0; l <= m->spec->NumLayers(); ++l) dst.push_back({l, LayerSide::kPost});
      std::vector<LayerRef>& refs = m == &a ? refs_a : refs_b;
      refs.insert(refs.end(), dst.begin(), dst.end());
    }
  }
  std::vector<int> widths;
  for (const LayerRef& l : refs_a) widths.push_back(LayerWidth(*a.spec, l));
  for (const LayerRef& l : refs_b) widths.push_back(LayerWidth(*b.spec, l));
  int64_t total = 0;
  for (int w : widths) total += w;
  CkaAccumulator acc(widths);
  RETURN_IF_ERROR(GuardTorch("cka", [&]() -> absl::Status {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    StackedMlp ma = StackDouble(*a.spec, {a.weights}, dev);
    StackedMlp mb = StackDouble(*b.spec, {b.weights}, dev);
    const int64_t chunk = std::max<int64_t>(
        64, kChunkBudgetBytes / (CaptureBytesPerPoint(*a.spec) + CaptureBytesPerPoint(*b.spec) + 16 * total));
    for (int64_t start = 0; start < a.n; start += chunk) {
      if (cancel && cancel()) return absl::CancelledError("CKA cancelled");
      const int64_t m = std::min(chunk, a.n - start);
      at::Tensor x = ChunkInputs({a.points}, 1, start, m, a.spec->input_dim, dev);
      Capture ca, cb;
      Forward(ma, x, &ca);
      Forward(mb, x, &cb);
      std::vector<at::Tensor> parts;
      for (const LayerRef& l : refs_a) parts.push_back(ActivationAt(ma, x, ca, l));
      for (const LayerRef& l : refs_b) parts.push_back(ActivationAt(mb, x, cb, l));
      at::Tensor rows = Rows(at::cat(parts, 2));
      acc.AddRows(rows.data_ptr<double>(), m);
    }
    return absl::OkStatus();
  }));
  const int na = static_cast<int>(refs_a.size());
  r.value = acc.Cka(0, na);
  r.points_used = acc.count();
  if (all_layers) {
    const int la = static_cast<int>(r.layers_a.size()), lb = static_cast<int>(r.layers_b.size());
    for (int i = 0; i < la; ++i) {
      for (int j = 0; j < lb; ++j) r.matrix.push_back(acc.Cka(1 + i, na + 1 + j).cka);
    }
  }
  return r;
}

absl::StatusOr<ScaffoldResult> ScaffoldGradients(const ModelInput& in, const LayerRef& source,
                                                 const LayerRef& target,
                                                 const ScaffoldOptions& options,
                                                 const std::string& device,
                                                 const CancelFn& cancel) {
  RETURN_IF_ERROR(CheckInput(in));
  RETURN_IF_ERROR(ValidateLayer(*in.spec, source, /*allow_output=*/true, "layer"));
  RETURN_IF_ERROR(ValidateLayer(*in.spec, target, /*allow_output=*/true, "target_layer"));
  const MlpSpec& spec = *in.spec;
  const int ps = LayerPosition(spec, source), pt = LayerPosition(spec, target);
  if (ps >= pt) {
    return absl::InvalidArgumentError(absl::StrCat("target_layer (", LayerLabel(spec, target),
                                                   ") must come after layer (",
                                                   LayerLabel(spec, source), ")"));
  }
  const int ds = LayerWidth(spec, source), dt = LayerWidth(spec, target);
  if (options.component < 0 || options.component >= dt) {
    return absl::InvalidArgumentError(
        absl::StrCat("component must be in [0, ", dt, "), got ", options.component));
  }
  // Pass 1: the target layer's PCA.
  ASSIGN_OR_RETURN(MomentAccumulator tacc, JointMoments(in, {target}, device, cancel));
  ASSIGN_OR_RETURN(Pca tpca, PcaOf(tacc));
  ScaffoldResult r;
  r.points_used = in.n;
  r.target_direction.assign(tpca.components.begin() + static_cast<int64_t>(options.component) * dt,
                            tpca.components.begin() + static_cast<int64_t>(options.component + 1) * dt);
  r.target_variance = tpca.explained_variance[options.component];
  // Pass 2: gradients of u_c . a_t w.r.t. a_s, kept per point (clustering needs them all).
  std::vector<float> grads(static_cast<size_t>(in.n) * ds);
  MomentAccumulator gacc(ds, /*centered=*/true);
  RETURN_IF_ERROR(GuardTorch("scaffold", [&]() -> absl::Status {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    StackedMlp mlp = StackDouble(spec, {in.weights}, dev);
    at::Tensor u = at::from_blob(r.target_direction.data(), {dt}, at::TensorOptions().dtype(at::kDouble))
                       .to(dev);
    return ForEachChunk(in, mlp, dev, ChunkFor(spec, 16 * int64_t{ds + dt} * (pt - ps + 1)), cancel,
                        [&](const at::Tensor&, const Capture& cap, int64_t start, int64_t m) {
                          at::Tensor seed = u.view({1, 1, 1, dt}).expand({1, m, 1, dt});
                          at::Tensor g = Backprop(mlp, cap, seed, pt, ps);  // [1, m, 1, ds]
                          at::Tensor rows = g.view({m, ds}).to(at::kCPU).contiguous();
                          gacc.AddRows(rows.data_ptr<double>(), m);
                          at::Tensor f = rows.to(at::kFloat).contiguous();
                          std::memcpy(grads.data() + start * ds, f.data_ptr<float>(),
                                      sizeof(float) * m * ds);
                          return absl::OkStatus();
                        });
  }));
  ASSIGN_OR_RETURN(r.gradient_pca, PcaOf(gacc));
  if (cancel && cancel()) return absl::CancelledError("scaffold cancelled");
  ASSIGN_OR_RETURN(r.clusters, ClusterDirections(grads.data(), in.n, ds, options.cluster_cosine));
  std::unordered_set<std::string> distinct;
  for (int64_t i = 0; i < in.n; ++i) {
    const float* row = grads.data() + i * ds;
    bool zero = true;
    for (int j = 0; j < ds && zero; ++j) zero = row[j] == 0.0f;
    if (zero) {
      ++r.zero_gradients;
      continue;
    }
    std::string key(reinterpret_cast<const char*>(row), sizeof(float) * ds);
    for (int j = 0; j < ds; ++j) {
      if (row[j] == 0.0f) std::memset(&key[sizeof(float) * j], 0, sizeof(float));  // -0 == +0
    }
    distinct.insert(std::move(key));
  }
  r.distinct_gradients = static_cast<int64_t>(distinct.size());
  if (options.keep_gradients) r.gradients = std::move(grads);
  return r;
}

}  // namespace gradzoo::core
