#include "core/analysis/orthogonality.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/analysis/layer_tensors.h"
#include "core/analysis/linalg.h"
#include "core/nn/mlp.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

const char* OrthogonalityMethodName(OrthogonalityMethod m) {
  switch (m) {
    case OrthogonalityMethod::kPca:
      return "pca";
    case OrthogonalityMethod::kCos:
      return "cos";
    case OrthogonalityMethod::kGram:
      return "gram";
    case OrthogonalityMethod::kFunctional:
      return "functional";
  }
  return "?";
}

absl::Status ValidateOrthogonality(const MlpSpec& spec, const std::vector<LayerRef>& layers,
                                   const OrthogonalityOptions& o) {
  RETURN_IF_ERROR(spec.Validate());
  if (o.output_a < 0 || o.output_a >= spec.output_dim || o.output_b < 0 ||
      o.output_b >= spec.output_dim) {
    return absl::InvalidArgumentError(absl::StrCat("output_a and output_b must be in [0, ",
                                                   spec.output_dim, "), got ", o.output_a,
                                                   " and ", o.output_b));
  }
  if (o.output_a == o.output_b) {
    return absl::InvalidArgumentError("output_a and output_b must differ");
  }
  if (!(o.variance_threshold > 0.0 && o.variance_threshold <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("variance_threshold must be in (0, 1], got ",
                                                   o.variance_threshold));
  }
  switch (o.method) {
    case OrthogonalityMethod::kPca:
    case OrthogonalityMethod::kCos:
    case OrthogonalityMethod::kGram:
    case OrthogonalityMethod::kFunctional:
      break;
    default:
      return absl::InvalidArgumentError("method is invalid");
  }
  if (layers.empty()) return absl::InvalidArgumentError("layers: name at least one layer");
  for (const LayerRef& l : layers) {
    RETURN_IF_ERROR(ValidateLayer(spec, l, /*allow_output=*/false, "layer"));
  }
  return absl::OkStatus();
}

namespace {

constexpr double kVanishingNorm = 1e-200;
constexpr double kUnreachableFraction = 1e-9;
constexpr double kEigenRelativeFloor = 1e-10;
constexpr int64_t kChunkBudgetBytes = int64_t{64} << 20;

// For kGram / kPca at an even position (x or h_l), whether to sum the gradients one step up, at
// z_{l+1}, and map the moments down with W_{l+1} (exact: g = W_{l+1}^T v). It saves the per-point
// product with W_{l+1}, and for the last hidden layer v = w_o * act'(z) needs no product at
// all; worth it unless z_{l+1} is much wider than the layer.
bool AccumulateAbove(const MlpSpec& spec, int position) {
  if (position % 2 != 0 || position >= 2 * spec.NumLayers() - 1) return false;
  const std::vector<int> widths = spec.Widths();
  const int l = position / 2;
  return widths[l + 1] <= 2 * widths[l];
}

// Per (layer) running sums over chunks, batched over K models.
struct LayerSums {
  int position = 0;
  int width = 0;
  // Where the gradients are taken: `position`, or for kGram / kPca at an x or h_l position the
  // next pre-activation z_{l+1} (see AccumulateAbove).
  int grad_position = 0;
  int grad_width = 0;
  at::Tensor abs_cos_sum;  // [K] double
  at::Tensor valid;        // [K] points used
  at::Tensor nonzero_a;    // [K] points where |g_a| > 0
  at::Tensor nonzero_b;
  at::Tensor alive;        // [K] bool: some unit active somewhere (hidden layers)
  // kGram / kPca: per model, moments of the float32 gradients of each output.
  std::vector<MomentAccumulator> acc_a, acc_b;
};

// Coordinates of the projections of g ([K, m, 2, w]) onto col(A) (A [K, m, w, in]) in an
// orthonormal basis of it: [K, m, 2, r] with r = min(w, in) (zeros beyond the rank).
at::Tensor ProjectedCoordinates(const at::Tensor& a, const at::Tensor& g) {
  const int64_t w = a.size(2), in = a.size(3);
  if (in <= w) {
    at::Tensor at_ = a.transpose(-1, -2);             // [K, m, in, w]
    at::Tensor gram = at::matmul(at_, a);             // [K, m, in, in]
    at::Tensor c = at::matmul(at_, g.transpose(-1, -2));  // [K, m, in, 2]
    auto [l, v] = at::linalg_eigh(gram);
    at::Tensor lmax = std::get<0>(l.max(-1, /*keepdim=*/true));
    at::Tensor keep = l > lmax * kEigenRelativeFloor;
    at::Tensor inv_sqrt = at::where(keep, at::rsqrt(at::clamp_min(l, 1e-300)), at::zeros_like(l));
    at::Tensor y = at::matmul(v.transpose(-1, -2), c) * inv_sqrt.unsqueeze(-1);  // [K, m, in, 2]
    return y.transpose(-1, -2);                                                  // [K, m, 2, in]
  }
  at::Tensor gram = at::matmul(a, a.transpose(-1, -2));  // [K, m, w, w]
  auto [l, u] = at::linalg_eigh(gram);
  at::Tensor lmax = std::get<0>(l.max(-1, /*keepdim=*/true));
  at::Tensor keep = (l > lmax * kEigenRelativeFloor).to(at::kDouble);
  at::Tensor y = at::matmul(u.transpose(-1, -2), g.transpose(-1, -2)) * keep.unsqueeze(-1);
  return y.transpose(-1, -2);  // [K, m, 2, w]
}

// Adds |cos| of the pairs (rows 0 and 1 of y, [K, m, 2, r]) where both are usable. `gnorm`
// ([K, m, 2]) are the unprojected norms (for the unreachable test; pass the same as y's for kCos).
void AccumulateCos(const at::Tensor& y, const at::Tensor& gnorm, bool projected, LayerSums* s) {
  at::Tensor norms = y.norm(2, -1);  // [K, m, 2]
  at::Tensor usable = gnorm > kVanishingNorm;
  if (projected) usable = usable & (norms > gnorm * kUnreachableFraction);
  at::Tensor both = usable.select(2, 0) & usable.select(2, 1);  // [K, m]
  at::Tensor dot = (y.select(2, 0) * y.select(2, 1)).sum(-1);
  at::Tensor denom = at::clamp_min(norms.select(2, 0) * norms.select(2, 1), 1e-300);
  at::Tensor c = at::clamp(dot.abs() / denom, 0.0, 1.0);
  c = at::where(both, c, at::zeros_like(c));
  s->abs_cos_sum += c.sum(1);
  s->valid += both.to(at::kDouble).sum(1);
  s->nonzero_a += (gnorm.select(2, 0) > kVanishingNorm).to(at::kDouble).sum(1);
  s->nonzero_b += (gnorm.select(2, 1) > kVanishingNorm).to(at::kDouble).sum(1);
}

std::vector<double> ToDoubles(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// W^T M W for M [out, out] and W = layer.weight [out, in]: the moment of g = W^T v from v's.
std::vector<double> Sandwich(const std::vector<double>& m, const LayerWeights& layer) {
  const int out = layer.out, in = layer.in;
  std::vector<double> mw(static_cast<size_t>(out) * in, 0.0), r(static_cast<size_t>(in) * in, 0.0);
  for (int i = 0; i < out; ++i) {
    for (int t = 0; t < out; ++t) {
      const double v = m[i * out + t];
      if (v == 0.0) continue;
      const float* wt = layer.weight.data() + static_cast<int64_t>(t) * in;
      for (int j = 0; j < in; ++j) mw[i * in + j] += v * wt[j];
    }
  }
  for (int i = 0; i < out; ++i) {
    const float* wi = layer.weight.data() + static_cast<int64_t>(i) * in;
    for (int a = 0; a < in; ++a) {
      const double w = wi[a];
      if (w == 0.0) continue;
      for (int b = 0; b < in; ++b) r[a * in + b] += w * mw[i * in + b];
    }
  }
  return r;
}

// kGram / kPca from the accumulated gradients of one model: M_o = sum g g^T / N, or the
// (ddof = 0) covariance when centring. With `above`, the sums are of v = d y / d z_{l+1} and
// g = W_{l+1}^T v, so M_o(g) = W^T M_o(v) W.
OrthogonalityScore FinishMoments(const MomentAccumulator& acc_a, const MomentAccumulator& acc_b,
                                 const LayerWeights* above, int w, int64_t n,
                                 const OrthogonalityOptions& o) {
  OrthogonalityScore r;
  r.points_used = n;
  std::vector<double> a = o.center ? acc_a.Covariance(0) : acc_a.SecondMoment();
  std::vector<double> b = o.center ? acc_b.Covariance(0) : acc_b.SecondMoment();
  if (above != nullptr) {
    a = Sandwich(a, *above);
    b = Sandwich(b, *above);
  }
  double na = 0, nb = 0, ab = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    na += a[i] * a[i];
    nb += b[i] * b[i];
    ab += a[i] * b[i];
  }
  if (!(na > 0) || !(nb > 0)) {
    r.degeneracy.degenerate = true;
    r.degeneracy.zero_variance = true;
    r.degeneracy.detail = absl::StrCat("the gradients of output ", !(na > 0) ? "a" : "b",
                                       o.center ? " have zero variance" : " vanish",
                                       " on every point");
    return r;
  }
  if (o.method == OrthogonalityMethod::kGram) {
    r.score = std::clamp(1.0 - ab / std::sqrt(na * nb), 0.0, 1.0);
    return r;
  }
  absl::StatusOr<SymmetricEigen> ea = EigenSymmetric(a, w);
  absl::StatusOr<SymmetricEigen> eb = EigenSymmetric(b, w);
  if (!ea.ok() || !eb.ok()) {
    r.degeneracy.degenerate = true;
    r.degeneracy.detail = "eigensolver failed: " + (ea.ok() ? eb.status() : ea.status()).ToString();
    return r;
  }
  const int ka = ComponentsForVariance(ea->values, o.variance_threshold);
  const int kb = ComponentsForVariance(eb->values, o.variance_threshold);
  r.components_a = ka;
  r.components_b = kb;
  if (ka == 0 || kb == 0) {
    r.degeneracy.degenerate = true;
    r.degeneracy.zero_variance = true;
    r.degeneracy.detail = "a task's gradient PCA has no variance";
    return r;
  }
  PrincipalAngles pa = ComputePrincipalAngles(ea->vectors, ka, eb->vectors, kb, w);
  r.principal_angles = pa.angles;
  r.score = std::clamp(1.0 - pa.overlap / std::min(ka, kb), 0.0, 1.0);
  return r;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<OrthogonalityScore>>> ScoreOrthogonality(
    const MlpSpec& spec, const std::vector<const std::vector<LayerWeights>*>& models,
    const std::vector<const std::vector<float>*>& points, int64_t n,
    const std::vector<LayerRef>& layers, const OrthogonalityOptions& o, const std::string& device,
    const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateOrthogonality(spec, layers, o));
  const int64_t k = static_cast<int64_t>(models.size());
  if (k == 0) return absl::InvalidArgumentError("no models to score");
  if (points.size() != 1 && points.size() != models.size()) {
    return absl::InvalidArgumentError("points: one shared set or one per model");
  }
  for (const std::vector<float>* p : points) {
    if (p == nullptr || p->size() != static_cast<size_t>(n) * spec.input_dim) {
      return absl::InvalidArgumentError("points do not have shape [n, input_dim]");
    }
  }
  if (n <= 0) return absl::InvalidArgumentError("points: need at least one point");
  for (const auto* m : models) RETURN_IF_ERROR(ValidateWeights(spec, *m));

  return GuardTorch("orthogonality", [&]() -> absl::StatusOr<std::vector<std::vector<OrthogonalityScore>>> {
    c10::InferenceMode guard;
    const at::Device dev = ToAtDevice(device);
    const at::TensorOptions opts = at::TensorOptions().dtype(at::kDouble).device(dev);
    const bool functional = o.method == OrthogonalityMethod::kFunctional;
    const bool moments = o.method == OrthogonalityMethod::kGram || o.method == OrthogonalityMethod::kPca;
    // The moment methods run in float32, the models' own precision, so the SIMD accumulator can
    // sum the gradients as they are made; the per-point methods run in float64.
    const at::ScalarType dtype = moments ? at::kFloat : at::kDouble;
    StackedMlp mlp = moments ? Stack(spec, models, dev) : StackDouble(spec, models, dev);

    std::set<int> pos_set;
    std::vector<LayerSums> sums(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerSums& s = sums[i];
      s.position = LayerPosition(spec, layers[i]);
      s.width = LayerWidth(spec, layers[i]);
      s.grad_position = s.position;
      s.grad_width = s.width;
      if (moments && AccumulateAbove(spec, s.position)) {
        s.grad_position = s.position + 1;
        s.grad_width = spec.Widths()[s.position / 2 + 1];
      }
      pos_set.insert(s.grad_position);
      s.abs_cos_sum = at::zeros({k}, opts);
      s.valid = at::zeros({k}, opts);
      s.nonzero_a = at::zeros({k}, opts);
      s.nonzero_b = at::zeros({k}, opts);
      s.alive = at::zeros({k}, opts.dtype(at::kBool));
      if (moments) {
        s.acc_a.assign(k, MomentAccumulator(s.grad_width, o.center));
        s.acc_b.assign(k, MomentAccumulator(s.grad_width, o.center));
      }
    }
    const std::vector<int> asc(pos_set.begin(), pos_set.end());
    const std::vector<int> desc(asc.rbegin(), asc.rend());

    // Chunk size from a memory budget: capture + gradients + (functional) Jacobians and Grams.
    const std::vector<int> widths = spec.Widths();
    int64_t per_point = CaptureBytesPerPoint(spec);
    for (int p = 0; p <= asc.back(); ++p) {
      const int64_t w = widths[(p + 1) / 2];
      per_point += 8 * 4 * w;  // two rows of gradient + temporaries
      if (functional) {
        const int64_t r = std::min<int64_t>(w, spec.input_dim);
        per_point += 8 * (3 * w * spec.input_dim + 3 * r * r);
      }
    }
    const int64_t chunk =
        std::clamp<int64_t>(kChunkBudgetBytes / std::max<int64_t>(1, k * per_point), 16, n);

    const std::vector<int64_t> outs = {o.output_a, o.output_b};
    for (int64_t start = 0; start < n; start += chunk) {
      if (cancel && cancel()) return absl::CancelledError("orthogonality scoring cancelled");
      const int64_t m = std::min(chunk, n - start);
      at::Tensor x = ChunkInputs(points, k, start, m, spec.input_dim, dev, dtype);
      Capture cap;
      Forward(mlp, x, &cap);
      std::vector<at::Tensor> grads = OutputGradientsAt(mlp, cap, outs, desc);
      std::vector<at::Tensor> jacs;
      if (functional) jacs = InputJacobiansAt(mlp, cap, asc);
      for (size_t i = 0; i < layers.size(); ++i) {
        LayerSums& s = sums[i];
        const size_t di = std::find(desc.begin(), desc.end(), s.grad_position) - desc.begin();
        const at::Tensor& g = grads[di];  // [K, m, 2, w]
        if (IsHidden(spec, layers[i])) {
          at::Tensor d = ActivationDerivative(cap.pre[layers[i].index - 1], spec.activation);
          s.alive = s.alive | (d != 0).flatten(1).any(1);
        }
        if (moments) {
          at::Tensor rows = g.to(at::kCPU).permute({0, 2, 1, 3}).contiguous();  // [K, 2, m, w]
          const float* p = rows.data_ptr<float>();
          for (int64_t j = 0; j < k; ++j) {
            s.acc_a[j].AddRows(p + (2 * j) * m * s.grad_width, m);
            s.acc_b[j].AddRows(p + (2 * j + 1) * m * s.grad_width, m);
          }
          continue;
        }
        at::Tensor gnorm = g.norm(2, -1);  // [K, m, 2]
        if (functional && s.position > 0) {
          const size_t ai = std::find(asc.begin(), asc.end(), s.position) - asc.begin();
          AccumulateCos(ProjectedCoordinates(jacs[ai], g), gnorm, /*projected=*/true, &s);
        } else {
          AccumulateCos(g, gnorm, /*projected=*/false, &s);
        }
      }
    }

    std::vector<std::vector<OrthogonalityScore>> out(k, std::vector<OrthogonalityScore>(layers.size()));
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerSums& s = sums[i];
      const std::vector<double> cos_sum = ToDoubles(s.abs_cos_sum), valid = ToDoubles(s.valid),
                                nz_a = ToDoubles(s.nonzero_a), nz_b = ToDoubles(s.nonzero_b);
      const at::Tensor alive = s.alive.to(at::kCPU);
      const std::string label = LayerLabel(spec, layers[i]);
      for (int64_t j = 0; j < k; ++j) {
        OrthogonalityScore& r = out[j][i];
        if (IsHidden(spec, layers[i]) && !alive[j].item<bool>()) {
          r.degeneracy.degenerate = true;
          r.degeneracy.dead_layer = true;
          r.degeneracy.zero_variance = true;
          r.degeneracy.points_excluded = n;
          r.degeneracy.detail = absl::StrFormat(
              "layer %d (%s) is dead: no unit is active on any of the %d points", layers[i].index,
              label, n);
          continue;
        }
        if (moments) {
          const LayerWeights* above =
              s.grad_position != s.position ? &(*models[j])[s.position / 2] : nullptr;
          r = FinishMoments(s.acc_a[j], s.acc_b[j], above, s.width, n, o);
          continue;
        }
        const int64_t used = static_cast<int64_t>(std::llround(valid[j]));
        r.points_used = used;
        r.degeneracy.points_excluded = n - used;
        if (used == 0) {
          r.degeneracy.degenerate = true;
          const bool zero_a = nz_a[j] == 0, zero_b = nz_b[j] == 0;
          r.degeneracy.zero_variance = zero_a || zero_b;
          if (zero_a || zero_b) {
            r.degeneracy.detail = absl::StrCat("the gradient of output ",
                                               zero_a ? o.output_a : o.output_b, " w.r.t. ",
                                               label, " vanishes at every point");
          } else {
            r.degeneracy.detail = absl::StrCat(
                "at no point do both gradients w.r.t. ", label,
                functional ? " have a component the input can reach" : " stay non-zero");
          }
          continue;
        }
        r.score = std::clamp(1.0 - cos_sum[j] / valid[j], 0.0, 1.0);
        if (used < n) {
          r.degeneracy.detail = absl::StrCat(n - used, " of ", n,
                                             " points left out (a gradient or its reachable "
                                             "part vanishes there)");
        }
      }
    }
    return out;
  });
}

}  // namespace gradzoo::core
