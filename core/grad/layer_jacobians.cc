#include "core/grad/layer_jacobians.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/grad/bit_keys.h"
#include "core/grad/grad_internal.h"
#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

namespace {

constexpr double kDefaultTolerance = 1e-3;

absl::Status ValidateOptions(const MlpSpec& spec, const LayerJacobianOptions& o, int64_t n) {
  const std::vector<int> widths = spec.Widths();
  const int hidden = static_cast<int>(spec.hidden.size());
  if (o.layer < 0 || o.layer > hidden) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer must be in [0, ", hidden, "] for this model (0 = the input; the Jacobian is of "
        "layer + 1 w.r.t. layer), got ", o.layer));
  }
  const int target = widths[o.layer + 1];
  if (o.num_components < 0 || o.num_components > target) {
    return absl::InvalidArgumentError(absl::StrCat("num_components must be in [0, ", target,
                                                   "] (the width of layer ", o.layer + 1,
                                                   "), got ", o.num_components));
  }
  if (!std::isfinite(o.tolerance) || o.tolerance < 0 || o.tolerance >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tolerance must be in [0, 1) (0 = 1e-3), got ", o.tolerance));
  }
  if (o.use_principal_components && n < 2) {
    return absl::InvalidArgumentError("principal components need at least 2 points");
  }
  const int rows = o.use_principal_components && o.num_components > 0 ? o.num_components : target;
  if (o.include_jacobians &&
      n > kMaxLayerJacobianFloats / (static_cast<int64_t>(rows) * widths[o.layer])) {
    return absl::ResourceExhaustedError(absl::StrCat(
        n, " points x ", rows, " x ", widths[o.layer], " Jacobian entries exceed the limit of ",
        kMaxLayerJacobianFloats, ": use fewer points or summary_only"));
  }
  return absl::OkStatus();
}

int64_t ChunkForLayers(const MlpSpec& spec, int64_t extra) {
  int64_t sum = spec.input_dim + spec.output_dim;
  for (int h : spec.hidden) sum += 2 * h;
  return grad_internal::ChunkFor(sum + extra);
}

// Covariance accumulation (shifted by the first chunk's mean for stability) and eigensolve.
class CovarianceAccumulator {
 public:
  void Add(const at::Tensor& a) {  // [m, w]
    at::Tensor d = a.to(at::kCPU, at::kDouble);
    if (!shift_.defined()) {
      shift_ = d.mean(0);
      sum_ = at::zeros_like(shift_);
      sumsq_ = at::zeros({d.size(1), d.size(1)}, at::kDouble);
    }
    d = d - shift_;
    sum_ += d.sum(0);
    sumsq_ += d.t().mm(d);
    n_ += d.size(0);
  }
  LayerPca Finish(int components) const {
    LayerPca p;
    const int64_t w = shift_.size(0);
    p.width = static_cast<int>(w);
    at::Tensor mu = sum_ / static_cast<double>(n_);
    at::Tensor cov = ((sumsq_ - static_cast<double>(n_) * at::outer(mu, mu)) /
                      static_cast<double>(n_ - 1)).contiguous();
    Eigen::Map<const Eigen::MatrixXd> c(cov.data_ptr<double>(), w, w);  // symmetric
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(c);
    const int k = components > 0 ? components : static_cast<int>(w);
    p.components = k;
    at::Tensor mean = (mu + shift_).contiguous();
    p.mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + w);
    p.total_variance = c.trace();
    for (int i = 0; i < k; ++i) {
      const int64_t col = w - 1 - i;  // eigenvalues ascend
      Eigen::VectorXd v = es.eigenvectors().col(col);
      Eigen::Index arg = 0;
      v.cwiseAbs().maxCoeff(&arg);
      if (v(arg) < 0) v = -v;
      p.explained_variance.push_back(std::max(0.0, es.eigenvalues()(col)));
      for (int64_t j = 0; j < w; ++j) p.vectors.push_back(v(j));
    }
    return p;
  }

 private:
  at::Tensor shift_, sum_, sumsq_;
  int64_t n_ = 0;
};

template <typename Fn>
absl::Status ForEachChunk(const StackedMlp& mlp, const at::Tensor& all, int64_t chunk,
                          const at::Device& dev, const CancelFn& cancel, Fn&& fn) {
  const int64_t n = all.size(0);
  for (int64_t start = 0; start < n; start += chunk) {
    if (cancel && cancel()) return absl::CancelledError("layer Jacobians cancelled");
    const int64_t m = std::min(chunk, n - start);
    at::Tensor x = all.narrow(0, start, m).to(dev).unsqueeze(0);
    Capture cap;
    Forward(mlp, x, &cap);
    fn(start, m, x, cap);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LayerPca> ComputeLayerActivationPca(const MlpSpec& spec,
                                                   const std::vector<LayerWeights>& layers,
                                                   const std::vector<float>& points, int64_t n,
                                                   const std::string& device, int layer,
                                                   int components, const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(spec, layers));
  const std::vector<int> widths = spec.Widths();
  if (layer < 0 || layer >= static_cast<int>(widths.size())) {
    return absl::InvalidArgumentError(absl::StrCat("PCA layer ", layer, " is out of range"));
  }
  if (components < 0 || components > widths[layer]) {
    return absl::InvalidArgumentError(absl::StrCat("num_components must be in [0, ",
                                                   widths[layer], "], got ", components));
  }
  if (n < 2) return absl::InvalidArgumentError("principal components need at least 2 points");
  if (points.size() != static_cast<size_t>(n) * spec.input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
  }
  return GuardTorch("layer PCA", [&]() -> absl::StatusOr<LayerPca> {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    const StackedMlp mlp = Stack(spec, {&layers}, dev);
    at::Tensor all = ViewFloats(points, {n, spec.input_dim});
    CovarianceAccumulator acc;
    RETURN_IF_ERROR(ForEachChunk(mlp, all, ChunkForLayers(spec, 0), dev, cancel,
                                 [&](int64_t, int64_t, const at::Tensor& x, const Capture& cap) {
                                   acc.Add(grad_internal::LayerActivation(x, cap, layer));
                                 }));
    return acc.Finish(components);
  });
}

absl::StatusOr<LayerJacobians> ComputeAdjacentJacobians(const MlpSpec& spec,
                                                        const std::vector<LayerWeights>& layers,
                                                        const std::vector<float>& points,
                                                        int64_t n, const std::string& device,
                                                        const LayerJacobianOptions& options,
                                                        const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(spec, layers));
  RETURN_IF_ERROR(ValidateOptions(spec, options, n));
  if (n < 0 || points.size() != static_cast<size_t>(n) * spec.input_dim) {
    return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
  }
  const int l = options.layer;
  const std::vector<int> widths = spec.Widths();
  const int hidden = static_cast<int>(spec.hidden.size());
  LayerJacobians r;
  r.n = n;
  r.cols = widths[l];
  r.rows = widths[l + 1];
  if (options.use_principal_components) {
    ASSIGN_OR_RETURN(r.pca, ComputeLayerActivationPca(spec, layers, points, n, device, l + 1,
                                                      options.num_components, cancel));
    r.has_pca = true;
    r.rows = r.pca.components;
  }
  const bool relu = spec.activation == Activation::kRelu;
  r.clustered = !relu && l < hidden;
  r.tolerance = r.clustered ? (options.tolerance > 0 ? options.tolerance : kDefaultTolerance) : 0.0;
  return GuardTorch("layer Jacobians", [&]() -> absl::StatusOr<LayerJacobians> {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    const StackedMlp mlp = Stack(spec, {&layers}, dev);
    at::Tensor all = ViewFloats(points, {n, spec.input_dim});
    at::Tensor basis;  // [rows, width(l+1)]
    if (r.has_pca) {
      basis = at::from_blob(r.pca.vectors.data(), {r.rows, widths[l + 1]}, at::kDouble)
                  .to(dev, at::kFloat);
    }
    const int64_t per_point = static_cast<int64_t>(widths[l + 1]) * widths[l] * 3 +
                              static_cast<int64_t>(r.rows) * (r.rows + widths[l]);
    const int64_t chunk = ChunkForLayers(spec, per_point);
    if (options.include_jacobians) r.jacobians.resize(static_cast<size_t>(n) * r.rows * r.cols);
    at::Tensor dots = at::zeros({r.rows, r.rows}, at::kDouble);
    double max_abs = 0.0;
    // ReLU keys: active units of layer l+1 whose weight row is nonzero.
    std::vector<uint64_t> nonzero_rows;
    const int target_words = (widths[l + 1] + 63) / 64;
    if (relu && l < hidden) {
      nonzero_rows.assign(target_words, 0);
      const LayerWeights& lw = layers[l];
      for (int v = 0; v < lw.out; ++v) {
        for (int u = 0; u < lw.in; ++u) {
          if (lw.weight[static_cast<size_t>(v) * lw.in + u] != 0.0f) {
            nonzero_rows[v / 64] |= uint64_t{1} << (v % 64);
            break;
          }
        }
      }
    }
    BitKeySet keys(relu ? (l < hidden ? target_words : 0) : r.rows * r.cols);
    std::vector<uint64_t> key(std::max(target_words, r.rows * r.cols) + 1);
    auto rows_of = [&](const Capture& cap) {
      at::Tensor j = grad_internal::AdjacentJacobian(mlp, cap, l);  // [m, w1, w0]
      if (r.has_pca) j = at::matmul(basis, j);                      // [m, k, w0]
      if (options.normalize) {
        at::Tensor norm = j.norm(2, {2}, /*keepdim=*/true);
        j = j / at::where(norm > 0, norm, at::ones_like(norm));
      }
      return j.to(at::kCPU).contiguous();
    };
    RETURN_IF_ERROR(ForEachChunk(mlp, all, chunk, dev, cancel,
                                 [&](int64_t start, int64_t m, const at::Tensor&, const Capture& cap) {
      at::Tensor j = rows_of(cap);
      at::Tensor jd = j.to(at::kDouble);
      dots += at::bmm(jd, jd.transpose(1, 2)).sum(0);
      if (options.include_jacobians) {
        std::copy(j.data_ptr<float>(), j.data_ptr<float>() + j.numel(),
                  r.jacobians.data() + start * r.rows * r.cols);
      }
      if (!relu) {
        if (j.numel() > 0) max_abs = std::max(max_abs, j.abs().max().item<double>());
        return;
      }
      if (l == hidden) {
        keys.Insert(key.data());
        return;
      }
      at::Tensor z = cap.pre[l][0].to(at::kCPU).contiguous();  // [m, w1]
      const float* zp = z.data_ptr<float>();
      const int w1 = widths[l + 1];
      for (int64_t p = 0; p < m; ++p) {
        std::fill(key.begin(), key.begin() + target_words, 0);
        for (int v = 0; v < w1; ++v) {
          if (zp[p * w1 + v] > 0.0f) key[v / 64] |= uint64_t{1} << (v % 64);
        }
        for (int i = 0; i < target_words; ++i) key[i] &= nonzero_rows[i];
        keys.Insert(key.data());
      }
    }));
    if (n > 0) dots /= static_cast<double>(n);
    at::Tensor dc = dots.contiguous();
    r.intra_layer_dots.assign(dc.data_ptr<double>(), dc.data_ptr<double>() + dc.numel());
    if (!relu) {
      const double eps = max_abs > 0 ? r.tolerance * max_abs : 1.0;
      const int64_t d = static_cast<int64_t>(r.rows) * r.cols;
      auto insert_all = [&](const float* j, int64_t m) {
        for (int64_t p = 0; p < m; ++p) {
          for (int64_t i = 0; i < d; ++i) key[i] = grad_internal::CellOf(j[p * d + i], eps);
          keys.Insert(key.data());
        }
      };
      if (options.include_jacobians) {
        insert_all(r.jacobians.data(), n);
      } else {
        RETURN_IF_ERROR(ForEachChunk(mlp, all, chunk, dev, cancel,
                                     [&](int64_t, int64_t m, const at::Tensor&, const Capture& cap) {
                                       at::Tensor j = rows_of(cap);
                                       insert_all(j.data_ptr<float>(), m);
                                     }));
      }
    }
    r.unique_jacobians = keys.size();
    return r;
  });
}

absl::StatusOr<int64_t> ValidateLayerJacobianQuery(const Engine& engine,
                                                   const LayerJacobianQuery& query) {
  ASSIGN_OR_RETURN(grad_internal::ResolvedModel r,
                   grad_internal::ResolveModel(engine, query.model, query.points));
  RETURN_IF_ERROR(ValidateOptions(r.model->spec, query.options, r.n));
  return r.n;
}

absl::StatusOr<LayerJacobians> ComputeLayerJacobians(const Engine& engine,
                                                     const LayerJacobianQuery& query,
                                                     const CancelFn& cancel) {
  ASSIGN_OR_RETURN(grad_internal::ResolvedModel r,
                   grad_internal::ResolveModel(engine, query.model, query.points));
  const MlpSpec& spec = r.model->spec;
  RETURN_IF_ERROR(ValidateOptions(spec, query.options, r.n));
  ASSIGN_OR_RETURN(std::vector<float> points,
                   MakePoints(query.points, spec.input_dim, engine.options().max_points_per_query));
  return ComputeAdjacentJacobians(spec, r.model->layers, points, r.n, engine.device(),
                                  query.options, cancel);
}

}  // namespace gradzoo::core
