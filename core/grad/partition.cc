#include "core/grad/partition.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/grad/bit_keys.h"
#include "core/util/status_macros.h"

namespace gradzoo::core {

namespace {

constexpr int64_t kDefaultMaxRegions = 20000;
constexpr int64_t kMaxRegionsLimit = 200000;
constexpr double kSignTolerance = 1e-12;
constexpr double kMinPieceArea = 1e-14;  // relative to the slice area

struct Pt {
  double x, y;
};

double Area(const std::vector<Pt>& p) {
  double s = 0.0;
  for (size_t i = 0, n = p.size(); i < n; ++i) {
    const Pt& a = p[i];
    const Pt& b = p[(i + 1) % n];
    s += a.x * b.y - b.x * a.y;
  }
  return 0.5 * s;
}

// One cell: a convex polygon, its pattern so far, and the index of its current layer's affine
// pre-activation coefficients in the layer table.
struct Cell {
  std::vector<Pt> poly;
  std::vector<uint64_t> pattern;
  int64_t coef = 0;
};

// Splits `poly` by f = a x + b y + c = 0 into its f >= 0 and f <= 0 parts.
void SplitCell(const std::vector<Pt>& poly, const std::vector<double>& f, double tol,
           std::vector<Pt>* pos, std::vector<Pt>* neg) {
  pos->clear();
  neg->clear();
  const size_t n = poly.size();
  auto sign = [&](double v) { return v > tol ? 1 : (v < -tol ? -1 : 0); };
  for (size_t i = 0; i < n; ++i) {
    const size_t j = (i + 1) % n;
    const int si = sign(f[i]), sj = sign(f[j]);
    if (si >= 0) pos->push_back(poly[i]);
    if (si <= 0) neg->push_back(poly[i]);
    if (si * sj < 0) {
      const double t = f[i] / (f[i] - f[j]);
      const Pt p{poly[i].x + t * (poly[j].x - poly[i].x), poly[i].y + t * (poly[j].y - poly[i].y)};
      pos->push_back(p);
      neg->push_back(p);
    }
  }
}

absl::Status ValidateSlice(const MlpSpec& spec, const SliceSpec& s) {
  const int in = spec.input_dim;
  for (auto [v, name] : {std::pair{s.x_input, "x"}, {s.y_input, "y"}}) {
    if (v < 0 || v >= in) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice: the ", name, " axis input_index ", v, " is out of range [0, ", in, ")"));
    }
  }
  if (s.x_input == s.y_input) {
    return absl::InvalidArgumentError("slice: the two axes must vary different inputs");
  }
  for (double v : {s.x_min, s.x_max, s.y_min, s.y_max}) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("slice: bounds must be finite");
  }
  if (!(s.x_min < s.x_max) || !(s.y_min < s.y_max)) {
    return absl::InvalidArgumentError("slice: each axis needs min < max");
  }
  if (!s.fixed_values.empty() && s.fixed_values.size() != static_cast<size_t>(in)) {
    return absl::InvalidArgumentError(absl::StrCat("slice.fixed_values must have ", in,
                                                   " values (one per input), got ",
                                                   s.fixed_values.size()));
  }
  for (double v : s.fixed_values) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("slice.fixed_values has a NaN or infinite value");
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const PartitionOptions& o) {
  if (o.max_regions < 0 || o.max_regions > kMaxRegionsLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_regions must be in [0, ", kMaxRegionsLimit,
                                                   "], got ", o.max_regions));
  }
  return absl::OkStatus();
}

absl::Status RequireRelu(const MlpSpec& spec) {
  if (spec.activation != Activation::kRelu) {
    return absl::FailedPreconditionError(absl::StrCat(
        "exact partitions need a ReLU model; this one uses ", ActivationName(spec.activation),
        ", whose regions are not polygons (use CountLinearRegions, which clusters)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Partition> ComputePartition(const MlpSpec& spec,
                                           const std::vector<LayerWeights>& layers,
                                           const SliceSpec& slice,
                                           const PartitionOptions& options,
                                           const CancelFn& cancel) {
  RETURN_IF_ERROR(spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(spec, layers));
  RETURN_IF_ERROR(RequireRelu(spec));
  RETURN_IF_ERROR(ValidateSlice(spec, slice));
  RETURN_IF_ERROR(ValidateOptions(options));
  const int64_t max_regions = options.max_regions > 0 ? options.max_regions : kDefaultMaxRegions;
  const int in = spec.input_dim, out = spec.output_dim;
  const int hidden = static_cast<int>(spec.hidden.size());
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  const int words = offsets.back();

  std::vector<double> base(in, 0.5);
  for (size_t i = 0; i < slice.fixed_values.size(); ++i) base[i] = slice.fixed_values[i];
  const double slice_area = (slice.x_max - slice.x_min) * (slice.y_max - slice.y_min);
  const double min_area = kMinPieceArea * slice_area;
  const double xs = std::max(std::abs(slice.x_min), std::abs(slice.x_max));
  const double ys = std::max(std::abs(slice.y_min), std::abs(slice.y_max));

  // Affine coefficients of layer 0 on the slice: a = W[u, x], b = W[u, y],
  // c = bias[u] + sum over fixed inputs W[u, i] base[i].
  auto first_layer = [&](const LayerWeights& lw) {
    std::vector<double> coef(static_cast<size_t>(lw.out) * 3);
    for (int u = 0; u < lw.out; ++u) {
      const float* row = lw.weight.data() + static_cast<size_t>(u) * lw.in;
      double c = lw.bias[u];
      for (int i = 0; i < lw.in; ++i) {
        if (i != slice.x_input && i != slice.y_input) c += static_cast<double>(row[i]) * base[i];
      }
      coef[u * 3 + 0] = row[slice.x_input];
      coef[u * 3 + 1] = row[slice.y_input];
      coef[u * 3 + 2] = c;
    }
    return coef;
  };
  // Coefficients of the next layer on a cell: W (D z) + b.
  auto next_layer = [&](const LayerWeights& lw, const std::vector<double>& prev,
                        const uint64_t* mask) {
    std::vector<double> coef(static_cast<size_t>(lw.out) * 3, 0.0);
    for (int v = 0; v < lw.out; ++v) {
      const float* row = lw.weight.data() + static_cast<size_t>(v) * lw.in;
      double a = 0, b = 0, c = lw.bias[v];
      for (int u = 0; u < lw.in; ++u) {
        if (mask != nullptr && !((mask[u / 64] >> (u % 64)) & 1)) continue;
        const double w = row[u];
        a += w * prev[u * 3 + 0];
        b += w * prev[u * 3 + 1];
        c += w * prev[u * 3 + 2];
      }
      coef[v * 3 + 0] = a;
      coef[v * 3 + 1] = b;
      coef[v * 3 + 2] = c;
    }
    return coef;
  };

  std::vector<Cell> cells(1);
  cells[0].poly = {{slice.x_min, slice.y_min},
                   {slice.x_max, slice.y_min},
                   {slice.x_max, slice.y_max},
                   {slice.x_min, slice.y_max}};
  cells[0].pattern.assign(words, 0);
  std::vector<std::vector<double>> table = {first_layer(layers[0])};

  std::vector<double> f;
  std::vector<Pt> pos, neg;
  for (int l = 0; l < hidden; ++l) {
    if (l > 0) {
      // New coefficient table: one entry per cell (their patterns now differ).
      std::vector<std::vector<double>> next(cells.size());
      for (size_t c = 0; c < cells.size(); ++c) {
        next[c] = next_layer(layers[l], table[cells[c].coef], cells[c].pattern.data() + offsets[l - 1]);
        cells[c].coef = static_cast<int64_t>(c);
      }
      table = std::move(next);
    }
    for (int u = 0; u < spec.hidden[l]; ++u) {
      if (cancel && cancel()) return absl::CancelledError("partition cancelled");
      const uint64_t bit = uint64_t{1} << (u % 64);
      const int word = offsets[l] + u / 64;
      std::vector<Cell> result;
      result.reserve(cells.size() + 16);
      for (Cell& cell : cells) {
        const double* k = table[cell.coef].data() + u * 3;
        const double tol = kSignTolerance * (std::abs(k[0]) * xs + std::abs(k[1]) * ys + std::abs(k[2]));
        f.resize(cell.poly.size());
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < cell.poly.size(); ++i) {
          f[i] = k[0] * cell.poly[i].x + k[1] * cell.poly[i].y + k[2];
          lo = std::min(lo, f[i]);
          hi = std::max(hi, f[i]);
        }
        if (hi <= tol) {  // inactive on the whole cell
          result.push_back(std::move(cell));
          continue;
        }
        if (lo >= -tol) {  // active on the whole cell
          cell.pattern[word] |= bit;
          result.push_back(std::move(cell));
          continue;
        }
        SplitCell(cell.poly, f, tol, &pos, &neg);
        const double apos = Area(pos), aneg = Area(neg);
        if (apos < min_area || aneg < min_area) {  // a sliver: keep the cell whole
          if (apos >= aneg) cell.pattern[word] |= bit;
          result.push_back(std::move(cell));
          continue;
        }
        Cell active;
        active.poly = pos;
        active.pattern = cell.pattern;
        active.pattern[word] |= bit;
        active.coef = cell.coef;
        cell.poly = neg;
        result.push_back(std::move(active));
        result.push_back(std::move(cell));
      }
      cells = std::move(result);
      if (static_cast<int64_t>(cells.size()) > max_regions) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the slice has more than ", max_regions,
            " linear regions: narrow the slice or raise max_regions (at most ", kMaxRegionsLimit,
            ")"));
      }
    }
  }

  Partition p;
  p.slice_area = slice_area;
  p.regions.reserve(cells.size());
  const LayerWeights& last = layers[hidden];
  std::vector<double> out_coef;
  for (size_t c = 0; c < cells.size(); ++c) {
    Cell& cell = cells[c];
    out_coef = hidden == 0 ? first_layer(last)
                           : next_layer(last, table[cell.coef], cell.pattern.data() + offsets[hidden - 1]);
    PartitionRegion r;
    r.area = Area(cell.poly);
    r.vertices.reserve(cell.poly.size() * 2);
    for (const Pt& v : cell.poly) {
      r.vertices.push_back(v.x);
      r.vertices.push_back(v.y);
    }
    for (int o = 0; o < out; ++o) {
      r.gradient.push_back(out_coef[o * 3 + 0]);
      r.gradient.push_back(out_coef[o * 3 + 1]);
      r.offset.push_back(out_coef[o * 3 + 2]);
    }
    r.pattern = std::move(cell.pattern);
    p.regions.push_back(std::move(r));
  }

  // Unique gradients w.r.t. the two slice inputs: live sets from those inputs.
  const LiveSets live(spec, layers);
  std::vector<uint64_t> inputs((in + 63) / 64, 0);
  inputs[slice.x_input / 64] |= uint64_t{1} << (slice.x_input % 64);
  inputs[slice.y_input / 64] |= uint64_t{1} << (slice.y_input % 64);
  std::vector<BitKeySet> per_output(out, BitKeySet(words));
  BitKeySet combos(out * words);
  std::vector<uint64_t> key(static_cast<size_t>(out) * words + 1);
  for (const PartitionRegion& r : p.regions) {
    for (int o = 0; o < out; ++o) {
      live.InputKey(r.pattern.data(), o, inputs, key.data() + o * words);
      per_output[o].Insert(key.data() + o * words);
    }
    combos.Insert(key.data());
  }
  for (int o = 0; o < out; ++o) p.unique_gradients_per_output.push_back(per_output[o].size());
  p.unique_gradient_combinations = combos.size();
  return p;
}

absl::Status ValidatePartitionQuery(const Engine& engine, const PartitionQuery& query) {
  RETURN_IF_ERROR(ValidateOptions(query.options));
  ASSIGN_OR_RETURN(auto found, engine.GetModel(query.model));
  RETURN_IF_ERROR(RequireRelu(found.second->spec));
  return ValidateSlice(found.second->spec, query.slice);
}

absl::StatusOr<Partition> ComputeRegionPartition(const Engine& engine,
                                                 const PartitionQuery& query,
                                                 const CancelFn& cancel) {
  ASSIGN_OR_RETURN(auto found, engine.GetModel(query.model));
  return ComputePartition(found.second->spec, found.second->layers, query.slice, query.options,
                          cancel);
}

}  // namespace gradzoo::core
