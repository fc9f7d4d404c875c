// Clustering gradient directions (seed 002 saw 18 neat clusters of scaffold gradients): for a
// ReLU network the gradients between two layers are piecewise constant, so their directions
// fall into a finite set; this finds that set and how many there are. Torch-free.
//
// Algorithm (deterministic, O(n * clusters * d)): with u_i = g_i / |g_i| for the rows with
// |g_i| > 0 (zero rows get assignment -1),
//   1. leader pass in row order: u_i joins the first cluster whose direction c has
//      cos(u_i, c) >= tau, else founds a cluster with c = u_i;
//   2. refine (at most 10 rounds, until no assignment changes): every direction becomes the
//      normalised mean of its members; every u_i moves to the direction with the largest
//      cosine, founding a new cluster when even that is < tau;
//   3. clusters whose directions have cos >= tau are merged (then refined once more), empty
//      ones dropped, the rest sorted by size (descending; ties by first member).
// Each cluster reports its size, unit direction, the smallest member cosine to it, and the mean
// |g| of its members. `found` is the number of clusters. With tau close to 1 this counts
// directions that differ by more than acos(tau) (tau = 0.99: ~8 degrees).
#ifndef GRADZOO_CORE_ANALYSIS_CLUSTER_H_
#define GRADZOO_CORE_ANALYSIS_CLUSTER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace gradzoo::core {

struct DirectionClusters {
  int found = 0;
  int d = 0;
  std::vector<int64_t> sizes;        // [found], descending
  std::vector<double> directions;    // [found, d], unit rows
  std::vector<double> min_cosine;    // [found]
  std::vector<double> mean_norm;     // [found]
  std::vector<int32_t> assignment;   // [n], index into the clusters, -1 for zero rows
};

// Rows g [n, d] (row-major, float32). INVALID_ARGUMENT unless tau in (0, 1].
absl::StatusOr<DirectionClusters> ClusterDirections(const float* g, int64_t n, int d,
                                                    double tau);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_CLUSTER_H_
