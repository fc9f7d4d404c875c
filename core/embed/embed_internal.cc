#include "core/embed/embed_internal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "core/nn/mlp.h"

namespace gradzoo::core::embed_internal {
namespace {

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::matmul(x, w.t()) + b;
}

struct VecHash {
  size_t operator()(const std::vector<int64_t>& v) const {
    uint64_t h = 1469598103934665603ULL;
    for (int64_t x : v) {
      h ^= static_cast<uint64_t>(x);
      h *= 1099511628211ULL;
    }
    return static_cast<size_t>(h);
  }
};

}  // namespace

EncoderNet EncoderNet::Init(int in, int out, int embedding, int hidden, int64_t seed,
                            bool gradient_path) {
  EncoderNet net;
  net.in = in;
  net.out = out;
  net.embedding = embedding;
  net.hidden = hidden;
  net.gradient_path = gradient_path;
  const int d = net.FeatureDim(), h = hidden, e = embedding, g = net.GradDim();
  const int r = net.GradRank(), pooled = gradient_path ? 2 * h : h;
  // {out, in, has bias}
  std::vector<std::tuple<int, int, bool>> shapes = {
      {h, d, true},      {h, h, true}, {h, h, true},  // phi
      {h, pooled, true}, {e, h, true},                // rho
      {h, in + e, true}, {h, h, true}, {g, h, true}   // psi
  };
  if (gradient_path) {
    shapes.insert(shapes.end(), {{r, g, false}, {h, in, true}, {h * r, h, true}});  // V, U1, U2
  }
  Rng rng = Rng::ForStream(static_cast<uint64_t>(seed), 11);
  for (const auto& [o, i, bias] : shapes) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(i));
    std::vector<float> w(static_cast<size_t>(o) * i), b(o);
    for (float& v : w) v = static_cast<float>(rng.Uniform(-bound, bound));
    for (float& v : b) v = static_cast<float>(rng.Uniform(-bound, bound));
    if (!bias && o == i) {  // V with full rank (G <= 16) starts as the identity: q = U(x) g
      for (int r = 0; r < o; ++r) {
        for (int c = 0; c < i; ++c) w[static_cast<size_t>(r) * i + c] = r == c ? 1.0f : 0.0f;
      }
    }
    net.params.push_back(at::tensor(w).reshape({o, i}));
    if (bias) net.params.push_back(at::tensor(b));
  }
  return net;
}

int64_t EncoderNet::ParamCount() const {
  int64_t n = 0;
  for (const at::Tensor& p : params) n += p.numel();
  return n;
}

namespace {

// Per-point features [B, N, hidden] (gradient path: [B, N, 2 hidden]) of feat [B, N, F].
at::Tensor PointFeatures(const EncoderNet& net, const at::Tensor& feat) {
  const auto& p = net.params;
  at::Tensor h = at::relu(Linear(feat, p[0], p[1]));
  h = at::relu(Linear(h, p[2], p[3]));
  h = at::relu(Linear(h, p[4], p[5]));
  if (!net.gradient_path) return h;
  const int64_t b = feat.size(0), n = feat.size(1), r = net.GradRank();
  at::Tensor x = feat.narrow(2, 0, net.in);
  at::Tensor v = at::matmul(feat.narrow(2, net.in, net.GradDim()), p[16].t());  // [B, N, R]
  at::Tensor u = Linear(at::relu(Linear(x, p[17], p[18])), p[19], p[20]);        // [B, N, H R]
  at::Tensor q = at::matmul(u.view({b, n, net.hidden, r}), v.unsqueeze(3)).squeeze(3);
  return at::cat({h, q}, 2);
}

at::Tensor Embedding(const EncoderNet& net, const at::Tensor& pooled) {
  const auto& p = net.params;
  return Linear(at::relu(Linear(pooled, p[6], p[7])), p[8], p[9]);
}

}  // namespace

at::Tensor EncoderNet::Encode(const at::Tensor& feat) const {
  return Embedding(*this, PointFeatures(*this, feat).mean(1));
}

at::Tensor EncoderNet::Encode(const at::Tensor& feat, const at::Tensor& mask) const {
  at::Tensor visible = (1 - mask).unsqueeze(2);
  return Embedding(*this, (PointFeatures(*this, feat) * visible).sum(1) /
                              at::clamp_min(visible.sum(1), 1.0));
}


at::Tensor EncoderNet::Decode(const at::Tensor& x, const at::Tensor& e) const {
  const auto& p = params;
  at::Tensor xe = at::cat({x, e.unsqueeze(1).expand({e.size(0), x.size(1), e.size(1)})}, 2);
  at::Tensor h = at::relu(Linear(xe, p[10], p[11]));
  h = at::relu(Linear(h, p[12], p[13]));
  return Linear(h, p[14], p[15]);
}

at::Tensor Features(const at::Tensor& x, const at::Tensor& g, const at::Tensor& mask) {
  at::Tensor xb = x.dim() == 2 ? x.unsqueeze(0).expand({g.size(0), x.size(0), x.size(1)}) : x;
  at::Tensor m = mask.unsqueeze(2);
  return at::cat({xb, g * (1 - m), m}, 2);
}

int LayerWidth(const MlpSpec& spec, int layer) {
  if (layer <= 0) return spec.input_dim;
  if (layer > static_cast<int>(spec.hidden.size())) return spec.output_dim;
  return spec.hidden[layer - 1];
}

absl::StatusOr<std::pair<int, int>> ResolveLayers(const MlpSpec& spec, int from, int to,
                                                  const char* from_field,
                                                  const char* to_field) {
  const int last = spec.NumLayers();  // H + 1
  if (to == 0) to = last;
  if (from < 0 || from >= last) {
    return absl::InvalidArgumentError(absl::StrCat(from_field, " must be in [0, ", last - 1,
                                                   "] for this ", last - 1,
                                                   "-hidden-layer network, got ", from));
  }
  if (to <= from || to > last) {
    return absl::InvalidArgumentError(absl::StrCat(
        to_field, " must be in [", from + 1, ", ", last, "] (0 = the output, layer ", last,
        ") when ", from_field, " is ", from, ", got ", to));
  }
  return std::make_pair(from, to);
}

ModelRecord SubModel(const ModelRecord& m, int from, int to) {
  ModelRecord s;
  s.id = m.id;
  s.task = m.task;
  s.variant = m.variant;
  s.split = m.split;
  s.label = m.label;
  s.spec.activation = m.spec.activation;
  s.spec.input_dim = LayerWidth(m.spec, from);
  s.spec.output_dim = LayerWidth(m.spec, to);
  for (int l = from + 1; l < to; ++l) s.spec.hidden.push_back(LayerWidth(m.spec, l));
  s.layers.assign(m.layers.begin() + from, m.layers.begin() + to);
  return s;
}

std::pair<at::Tensor, at::Tensor> SubnetGradients(const std::vector<const ModelRecord*>& models,
                                                  int from, int to, const at::Tensor& x,
                                                  const at::Device& device, at::Tensor* outputs) {
  const int64_t m = static_cast<int64_t>(models.size()), n = x.size(0);
  const MlpSpec& first = models.front()->spec;
  const int first_to = to == 0 ? first.NumLayers() : to;
  const int in = LayerWidth(first, from), out = LayerWidth(first, first_to);
  at::Tensor points = at::empty({m, n, in}, at::kFloat);
  at::Tensor grads = at::empty({m, n, int64_t{out} * in}, at::kFloat);
  if (outputs != nullptr) *outputs = at::empty({m, n, out}, at::kFloat);
  std::vector<bool> done(models.size(), false);
  at::Tensor xd = x.to(device, at::kFloat);
  for (size_t i = 0; i < models.size(); ++i) {
    if (done[i]) continue;
    const MlpSpec& spec = models[i]->spec;
    const int last = to == 0 ? spec.NumLayers() : to;
    std::vector<int64_t> idx;
    std::vector<const std::vector<LayerWeights>*> ptrs;
    for (size_t j = i; j < models.size(); ++j) {
      if (!done[j] && models[j]->spec == spec) {
        done[j] = true;
        idx.push_back(static_cast<int64_t>(j));
        ptrs.push_back(&models[j]->layers);
      }
    }
    StackedMlp mlp = Stack(spec, ptrs, device);
    at::Tensor h = xd.unsqueeze(0).expand({mlp.k, n, spec.input_dim}).contiguous();
    if (from > 0) {
      StackedMlp head = mlp;  // layers 1..from; its output z_from is activated below
      head.weight.resize(from);
      head.bias.resize(from);
      head.spec.hidden.resize(from - 1);
      head.spec.output_dim = LayerWidth(spec, from);
      h = Activate(Forward(head, h, nullptr), spec.activation).contiguous();
    }
    StackedMlp sub = mlp;
    sub.weight.assign(mlp.weight.begin() + from, mlp.weight.begin() + last);
    sub.bias.assign(mlp.bias.begin() + from, mlp.bias.begin() + last);
    sub.spec.input_dim = in;
    sub.spec.output_dim = out;
    sub.spec.hidden.clear();
    for (int l = from + 1; l < last; ++l) sub.spec.hidden.push_back(LayerWidth(spec, l));
    Capture cap;
    at::Tensor y = Forward(sub, h, &cap);
    at::Tensor j = InputJacobian(sub, cap).reshape({mlp.k, n, int64_t{out} * in});
    const at::Tensor index = at::tensor(idx, at::kLong);
    if (outputs != nullptr) outputs->index_copy_(0, index, y.to(at::kCPU, at::kFloat));
    grads.index_copy_(0, index, j.to(at::kCPU, at::kFloat));
    points.index_copy_(0, index, h.to(at::kCPU, at::kFloat));
  }
  return {points, grads};
}

namespace {

// |a_i - a_j|^2 of the rows of a [B, K] from their Gram matrix: O(B^2 K) time, O(B^2) memory
// (B and K can each be thousands). Values within round-off of |a_i|^2 + |a_j|^2 are 0, so that
// equal rows are exactly 0 apart (a batch may draw a network twice).
at::Tensor SquaredDistances(const at::Tensor& rows) {
  // Centred first: distances do not change, and the Gram form then loses no precision to an
  // offset that every row shares (an output layer's bias, a shared polynomial).
  const at::Tensor a = rows - rows.mean(0, true);
  const at::Tensor sq = a.pow(2).sum(1);
  const at::Tensor scale = sq.unsqueeze(1) + sq.unsqueeze(0);
  const at::Tensor d = scale - 2 * at::mm(a, a.t());
  const double tol = a.scalar_type() == at::kDouble ? 1e-12 : 1e-5;
  return at::where(d > tol * scale, d, at::zeros_like(d));
}

}  // namespace

at::Tensor FunctionDistances(const at::Tensor& y) {
  // Centred per output, in double: the functions differ by a few percent of their size.
  const at::Tensor yd = y.to(at::kDouble);
  const at::Tensor c = (yd - yd.mean(1, true)).flatten(1);
  const at::Tensor d = SquaredDistances(c) / static_cast<double>(std::max<int64_t>(c.size(1), 1));
  return (d / at::clamp_min(d.mean(), 1e-300)).to(at::kFloat);
}

at::Tensor DistanceLoss(const at::Tensor& e, const at::Tensor& target) {
  // In double: close pairs (the same family) differ by well under 1% of an embedding's norm.
  const at::Tensor d = SquaredDistances(e.to(at::kDouble));
  const at::Tensor loss = (d / at::clamp_min(d.mean(), 1e-300) - target.to(at::kDouble)).pow(2);
  return loss.mean().to(e.scalar_type());
}

std::vector<int> UniqueGradientGroups(const float* g, int64_t n, int dim, int* groups,
                                      double rel_tol) {
  double scale = 0.0;
  for (int64_t i = 0; i < n * dim; ++i) scale = std::max(scale, std::fabs(double{g[i]}));
  const double eps = std::max(scale * rel_tol, std::numeric_limits<double>::min());
  std::unordered_map<std::vector<int64_t>, int, VecHash> ids;
  std::vector<int> out(n);
  std::vector<int64_t> key(dim);
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < dim; ++d) key[d] = std::llround(g[i * dim + d] / eps);
    auto [it, inserted] = ids.emplace(key, static_cast<int>(ids.size()));
    out[i] = it->second;
  }
  *groups = static_cast<int>(ids.size());
  return out;
}

std::vector<float> DrawMask(const std::vector<int>& group, int groups, double rate, Rng& rng) {
  std::vector<float> mask(group.size(), 0.0f);
  if (groups < 2) return mask;
  std::vector<char> masked(groups);
  int count = 0;
  for (int c = 0; c < groups; ++c) count += (masked[c] = rng.Uniform() < rate ? 1 : 0);
  if (count == 0) masked[rng.NextU64() % groups] = 1;
  if (count == groups) masked[rng.NextU64() % groups] = 0;
  for (size_t i = 0; i < group.size(); ++i) mask[i] = masked[group[i]] ? 1.0f : 0.0f;
  return mask;
}

std::vector<float> DrawSpanMask(const std::vector<int>& group, int groups, const float* x,
                                int in, double rate, Rng& rng) {
  const int64_t n = static_cast<int64_t>(group.size());
  std::vector<float> mask(n, 0.0f);
  if (groups < 2) return mask;
  std::vector<double> u(in);
  double norm = 0.0;
  for (double& v : u) {
    v = rng.Normal();
    norm += v * v;
  }
  norm = std::max(std::sqrt(norm), 1e-12);
  std::vector<double> t(n);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int k = 0; k < in; ++k) s += u[k] / norm * x[i * in + k];
    t[i] = s;
    lo = std::min(lo, s);
    hi = std::max(hi, s);
  }
  const double width = rng.Uniform(0.0, std::min(2.0 * rate, 1.0)) * (hi - lo);
  const double start = lo + rng.Uniform() * (hi - lo - width);
  std::vector<char> masked(groups, 0);
  int count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] >= start && t[i] <= start + width && !masked[group[i]]) {
      masked[group[i]] = 1;
      ++count;
    }
  }
  if (count == 0) masked[group[rng.NextU64() % static_cast<uint64_t>(n)]] = 1;
  if (count == groups) masked[group[rng.NextU64() % static_cast<uint64_t>(n)]] = 0;
  for (int64_t i = 0; i < n; ++i) mask[i] = masked[group[i]] ? 1.0f : 0.0f;
  return mask;
}

std::pair<double, double> BaselineSse(const float* x, const float* g, const float* mask,
                                      int64_t n, int in, int dim) {
  std::vector<int64_t> visible;
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i] == 0.0f) visible.push_back(i);
  }
  double sse_mean = 0.0, sse_interp = 0.0;
  if (visible.empty()) return {0.0, 0.0};
  std::vector<double> mean(dim, 0.0);
  for (int64_t v : visible) {
    for (int d = 0; d < dim; ++d) mean[d] += g[v * dim + d];
  }
  for (double& m : mean) m /= static_cast<double>(visible.size());
  std::vector<double> pred(dim);
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i] == 0.0f) continue;
    for (int d = 0; d < dim; ++d) {
      const double e = mean[d] - g[i * dim + d];
      sse_mean += e * e;
    }
    if (in == 1) {
      int64_t left = -1, right = -1;
      for (int64_t v : visible) {
        if (x[v] <= x[i] && (left < 0 || x[v] > x[left])) left = v;
        if (x[v] >= x[i] && (right < 0 || x[v] < x[right])) right = v;
      }
      for (int d = 0; d < dim; ++d) {
        if (left >= 0 && right >= 0 && x[right] > x[left]) {
          const double t = (double{x[i]} - x[left]) / (double{x[right]} - x[left]);
          pred[d] = (1 - t) * g[left * dim + d] + t * g[right * dim + d];
        } else {
          pred[d] = g[(left >= 0 ? left : right) * dim + d];
        }
      }
    } else {
      double d1 = std::numeric_limits<double>::infinity(), d2 = d1;
      int64_t a = -1, b = -1;
      for (int64_t v : visible) {
        double s = 0.0;
        for (int k = 0; k < in; ++k) {
          const double t = double{x[v * in + k]} - x[i * in + k];
          s += t * t;
        }
        const double dist = std::sqrt(s);
        if (dist < d1) {
          d2 = d1;
          b = a;
          d1 = dist;
          a = v;
        } else if (dist < d2) {
          d2 = dist;
          b = v;
        }
      }
      for (int d = 0; d < dim; ++d) {
        if (b < 0 || d1 == 0.0) {
          pred[d] = g[a * dim + d];
        } else {
          const double wa = 1.0 / d1, wb = 1.0 / d2;
          pred[d] = (wa * g[a * dim + d] + wb * g[b * dim + d]) / (wa + wb);
        }
      }
    }
    for (int d = 0; d < dim; ++d) {
      const double e = pred[d] - g[i * dim + d];
      sse_interp += e * e;
    }
  }
  return {sse_mean, sse_interp};
}

std::vector<float> SamplePoints(const std::vector<std::pair<double, double>>& domain, int64_t n,
                                Rng& rng) {
  const int in = static_cast<int>(domain.size());
  std::vector<float> x(static_cast<size_t>(n) * in);
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < in; ++k) {
      x[i * in + k] = static_cast<float>(rng.Uniform(domain[k].first, domain[k].second));
    }
  }
  return x;
}

std::vector<float> SampleStratified(const std::vector<std::pair<double, double>>& domain,
                                    int64_t n, Rng& rng) {
  const int in = static_cast<int>(domain.size());
  std::vector<float> x(static_cast<size_t>(n) * in);
  std::vector<int64_t> perm(n);
  for (int k = 0; k < in; ++k) {
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
    for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
      std::swap(perm[i], perm[rng.NextU64() % static_cast<uint64_t>(i + 1)]);
    }
    const double lo = domain[k].first, width = domain[k].second - domain[k].first;
    for (int64_t i = 0; i < n; ++i) {
      x[i * in + k] = static_cast<float>(lo + width * (perm[i] + rng.Uniform()) / n);
    }
  }
  return x;
}

at::Tensor ScaleInputs(const at::Tensor& x, const std::vector<std::pair<double, double>>& domain) {
  std::vector<float> mid, inv;
  for (const auto& [lo, hi] : domain) {
    mid.push_back(static_cast<float>((lo + hi) / 2));
    inv.push_back(static_cast<float>(hi > lo ? 2.0 / (hi - lo) : 1.0));
  }
  return (x - at::tensor(mid).to(x.device())) * at::tensor(inv).to(x.device());
}

}  // namespace gradzoo::core::embed_internal
