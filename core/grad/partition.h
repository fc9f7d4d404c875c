// Exact partition of a 2-D slice of input space into the linear (activation) regions of a ReLU
// network, as convex polygons.
//
// The slice varies inputs x_input and y_input over [x_min, x_max] x [y_min, y_max]; every other
// input i stays at fixed_values[i] (0.5 when empty). Algorithm, in double precision: start from
// the slice rectangle; for hidden layer l = 0, 1, ... every current cell C carries the affine map
// of layer l's pre-activations on C, z_l(x, y) = a x + b y + c (one row per unit: layer 0's map is
// the same on every cell; layer l+1's is W_{l+1} (D_l z_l) + b_{l+1} with C's mask D_l). For
// each unit in turn, the line z = 0 splits every cell it crosses (Sutherland-Hodgman against
// one half-plane, so cells stay convex and counter-clockwise); a cell the line misses takes the
// unit's sign. After the last hidden layer each cell carries the output map y = G (x, y) + c:
// its gradient G [out, 2] and offset c [out].
//
// Exactness: vertex signs within tol = 1e-12 * (|a| X + |b| Y + |c|) of zero (X, Y = the
// largest |coordinate| of the slice) count as on the line, and a split whose smaller piece has
// area below 1e-14 of the slice's is not made (the cell keeps the sign of its larger part), so
// only slivers far below float32 resolution are merged. Areas sum to the slice area within
// 1e-9 relative. Every region's pattern is its units' signs (bit_keys.h layout, unit active
// when z > 0 on the region's interior), so a point sampled strictly inside a region has that
// pattern; dense sampling can only miss regions, never add one (tests check both, and that a
// single hidden layer of n lines in general position gives 1 + n + n(n-1)/2 regions).
//
// Unique gradients per output (w.r.t. the two slice inputs) are counted with live-set keys
// (bit_keys.h) with the two slice inputs as the sources.
//
// Torch-free header and implementation; thread-compatible.
#ifndef GRADZOO_CORE_GRAD_PARTITION_H_
#define GRADZOO_CORE_GRAD_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/grad/field.h"
#include "core/model.h"

namespace gradzoo::core {

struct SliceSpec {
  int x_input = 0;
  int y_input = 1;
  double x_min = 0.0, x_max = 1.0;
  double y_min = 0.0, y_max = 1.0;
  std::vector<double> fixed_values;  // input_dim values, or empty = all 0.5
};

struct PartitionOptions {
  // Refuse (RESOURCE_EXHAUSTED) when the slice has more regions; 0 = 20000. At most 200000.
  int64_t max_regions = 0;
};

struct PartitionRegion {
  std::vector<double> vertices;   // [V, 2], counter-clockwise, slice coordinates
  double area = 0.0;
  std::vector<double> gradient;   // [out, 2]: d y_o / d (x, y) on the region
  std::vector<double> offset;     // [out]: y = gradient . (x, y) + offset on the region
  std::vector<uint64_t> pattern;  // activation pattern, bit_keys.h layout
};

struct Partition {
  double slice_area = 0.0;
  std::vector<PartitionRegion> regions;
  std::vector<int64_t> unique_gradients_per_output;
  int64_t unique_gradient_combinations = 0;
};

// FAILED_PRECONDITION for non-ReLU models (their regions are not polygons); INVALID_ARGUMENT for
// a bad slice; RESOURCE_EXHAUSTED past max_regions; CANCELLED when `cancel` says so (polled
// per unit).
absl::StatusOr<Partition> ComputePartition(const MlpSpec& spec,
                                           const std::vector<LayerWeights>& layers,
                                           const SliceSpec& slice,
                                           const PartitionOptions& options,
                                           const CancelFn& cancel);

// ComputeRegionPartition through the engine.
struct PartitionQuery {
  ModelRef model;
  SliceSpec slice;
  PartitionOptions options;
};
// Cheap checks: the model exists and is ReLU, the slice and options are valid.
absl::Status ValidatePartitionQuery(const Engine& engine, const PartitionQuery& query);
absl::StatusOr<Partition> ComputeRegionPartition(const Engine& engine,
                                                 const PartitionQuery& query,
                                                 const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_PARTITION_H_
