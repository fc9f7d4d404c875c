#include "core/analysis/cluster.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

namespace {

double Dot(const double* a, const double* b, int d) {
  double s = 0.0;
  for (int j = 0; j < d; ++j) s += a[j] * b[j];
  return s;
}

// Directions = normalised member means; clusters without members keep their direction.
void Recompute(const std::vector<double>& u, const std::vector<int32_t>& assign, int d,
               std::vector<double>* dirs) {
  const size_t c = dirs->size() / d;
  std::vector<double> sum(dirs->size(), 0.0);
  for (size_t i = 0; i < assign.size(); ++i) {
    for (int j = 0; j < d; ++j) sum[assign[i] * d + j] += u[i * d + j];
  }
  for (size_t k = 0; k < c; ++k) {
    const double norm = std::sqrt(Dot(&sum[k * d], &sum[k * d], d));
    if (norm > 0) {
      for (int j = 0; j < d; ++j) (*dirs)[k * d + j] = sum[k * d + j] / norm;
    }
  }
}

// Moves every row to its most similar direction (founding clusters below tau), drops empty
// clusters; returns whether any assignment changed.
bool Reassign(const std::vector<double>& u, int d, double tau, std::vector<double>* dirs,
              std::vector<int32_t>* assign) {
  bool changed = false;
  const size_t n = assign->size();
  for (size_t i = 0; i < n; ++i) {
    const double* ui = &u[i * d];
    const size_t c = dirs->size() / d;
    int32_t best = -1;
    double best_cos = -2.0;
    for (size_t k = 0; k < c; ++k) {
      const double cs = Dot(ui, &(*dirs)[k * d], d);
      if (cs > best_cos) {
        best_cos = cs;
        best = static_cast<int32_t>(k);
      }
    }
    if (best_cos < tau) {
      dirs->insert(dirs->end(), ui, ui + d);
      best = static_cast<int32_t>(c);
    }
    if (best != (*assign)[i]) {
      (*assign)[i] = best;
      changed = true;
    }
  }
  // Drop empty clusters.
  const size_t c = dirs->size() / d;
  std::vector<int64_t> count(c, 0);
  for (int32_t a : *assign) ++count[a];
  std::vector<int32_t> remap(c, -1);
  std::vector<double> kept;
  int32_t next = 0;
  for (size_t k = 0; k < c; ++k) {
    if (count[k] == 0) continue;
    remap[k] = next++;
    kept.insert(kept.end(), dirs->begin() + k * d, dirs->begin() + (k + 1) * d);
  }
  for (int32_t& a : *assign) a = remap[a];
  *dirs = std::move(kept);
  return changed;
}

}  // namespace

absl::StatusOr<DirectionClusters> ClusterDirections(const float* g, int64_t n, int d,
                                                    double tau) {
  if (!(tau > 0.0 && tau <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("cluster_cosine must be in (0, 1], got ", tau));
  }
  if (d <= 0 || n < 0) return absl::InvalidArgumentError("ClusterDirections: bad shape");
  DirectionClusters out;
  out.d = d;
  out.assignment.assign(n, -1);
  std::vector<int64_t> rows;
  std::vector<double> u, norms;
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int j = 0; j < d; ++j) s += double{g[i * d + j]} * g[i * d + j];
    if (!(s > 0)) continue;
    const double norm = std::sqrt(s);
    rows.push_back(i);
    norms.push_back(norm);
    for (int j = 0; j < d; ++j) u.push_back(g[i * d + j] / norm);
  }
  const size_t m = rows.size();
  if (m == 0) return out;

  // 1. Leader pass.
  std::vector<double> dirs;
  std::vector<int32_t> assign(m, -1);
  for (size_t i = 0; i < m; ++i) {
    const size_t c = dirs.size() / d;
    for (size_t k = 0; k < c && assign[i] < 0; ++k) {
      if (Dot(&u[i * d], &dirs[k * d], d) >= tau) assign[i] = static_cast<int32_t>(k);
    }
    if (assign[i] < 0) {
      assign[i] = static_cast<int32_t>(c);
      dirs.insert(dirs.end(), u.begin() + i * d, u.begin() + (i + 1) * d);
    }
  }
  // 2. Refine.
  for (int round = 0; round < 10; ++round) {
    Recompute(u, assign, d, &dirs);
    if (!Reassign(u, d, tau, &dirs, &assign)) break;
  }
  // 3. Merge near-duplicate directions (greedy: each cluster joins the first earlier kept one).
  {
    const size_t c = dirs.size() / d;
    std::vector<int32_t> target(c);
    std::iota(target.begin(), target.end(), 0);
    for (size_t k = 1; k < c; ++k) {
      for (size_t j = 0; j < k; ++j) {
        if (target[j] == static_cast<int32_t>(j) && Dot(&dirs[k * d], &dirs[j * d], d) >= tau) {
          target[k] = static_cast<int32_t>(j);
          break;
        }
      }
    }
    bool merged = false;
    for (size_t k = 0; k < c; ++k) merged |= target[k] != static_cast<int32_t>(k);
    if (merged) {
      for (int32_t& a : assign) a = target[a];
      Recompute(u, assign, d, &dirs);
      Reassign(u, d, tau, &dirs, &assign);
      Recompute(u, assign, d, &dirs);
    }
  }
  // Statistics, sorted by size.
  const size_t c = dirs.size() / d;
  std::vector<int64_t> size(c, 0), first(c, -1);
  std::vector<double> min_cos(c, 1.0), norm_sum(c, 0.0);
  for (size_t i = 0; i < m; ++i) {
    const int32_t k = assign[i];
    ++size[k];
    if (first[k] < 0) first[k] = static_cast<int64_t>(i);
    min_cos[k] = std::min(min_cos[k], Dot(&u[i * d], &dirs[k * d], d));
    norm_sum[k] += norms[i];
  }
  std::vector<int32_t> order;
  for (size_t k = 0; k < c; ++k) {
    if (size[k] > 0) order.push_back(static_cast<int32_t>(k));
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    if (size[a] != size[b]) return size[a] > size[b];
    return first[a] < first[b];
  });
  std::vector<int32_t> rank(c, -1);
  for (size_t r = 0; r < order.size(); ++r) {
    const int32_t k = order[r];
    rank[k] = static_cast<int32_t>(r);
    out.sizes.push_back(size[k]);
    out.directions.insert(out.directions.end(), dirs.begin() + k * d, dirs.begin() + (k + 1) * d);
    out.min_cosine.push_back(std::clamp(min_cos[k], -1.0, 1.0));
    out.mean_norm.push_back(norm_sum[k] / static_cast<double>(size[k]));
  }
  out.found = static_cast<int>(order.size());
  for (size_t i = 0; i < m; ++i) out.assignment[rows[i]] = rank[assign[i]];
  return out;
}

}  // namespace gradzoo::core
