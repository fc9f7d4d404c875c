// Tasks: the functions the zoo's networks learn, with their input domains, data and exact
// gradients. Every synthetic task exposes its exact gradient so fields can be compared with
// theory.
//
//   mul2     x in [0,1]^4, y1 = (1-l) x1 x2 + l x3 x4, y2 = (1-l) x3 x4 + l x1 x2, lambda l in
//            [0,1] (seed 001's soft mixing: 0 = independent tasks, 0.5 = both outputs equal).
//            dy1/dx = ((1-l) x2, (1-l) x1, l x4, l x3), dy2/dx = (l x2, l x1, (1-l) x4, (1-l) x3).
//   mul      x in [0,1]^2, y = x1 x2 (seed 001's unit-square vector field). dy/dx = (x2, x1).
//   gate     x1, x2 in [0,1], gate g in {0,1} (Bernoulli 1/2), y = g x1 x2 (seed 001's task
//            mixing). Exact gradient of the multilinear extension: (g x2, g x1, x1 x2).
//   subdiv   x1, x2 in [0,1], x3 in [0.5, 1.5] (kept away from 0), y = (x1 - x2) / x3.
//            dy/dx = (1/x3, -1/x3, -(x1 - x2)/x3^2).
//   poly1d   x in [-1,1], y = p_k(x) for family member k = variant (seed 003). Each p_k has
//            degree 3 or 4 (alternating), is drawn by interpolating uniform random values at
//            Chebyshev nodes (so shapes vary, unlike naive coefficient sampling), normalised to
//            max |p_k| = 1 on [-1,1], and rejected if its RMS distance to an earlier member is
//            below 0.35 (members really differ). similarity s in [0,1) mixes every member with
//            one shared polynomial q: p_k = normalise((1-s) r_k + s q), for harder zoos.
//            dy/dx = p_k'(x).
//   fashion-mnist  784 -> 10 classification (pixels / 255), IDX files (gzip or plain) from
//            TaskConfig::data_path or the Debian package dataset-fashion-mnist; the same reader
//            takes MNIST. Train = the first 55000 training images, validation = the last 5000,
//            test = t10k. Cross-entropy loss; no exact gradient.
//   custom   the client's (X, Y); the last fifth of the rows (at least one) validate. MSE; no
//            exact gradient.
//
// Tasks are immutable and thread-safe. Synthetic sampling is deterministic for a seed on every
// platform (core/util/random.h).
#ifndef GRADZOO_CORE_TASKS_TASK_H_
#define GRADZOO_CORE_TASKS_TASK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model.h"
#include "core/util/random.h"

namespace gradzoo::core {

// N examples, row-major: x is [n, input_dim], y is [n, output_dim] (one-hot for classification).
struct Dataset {
  int64_t n = 0;
  int input_dim = 0;
  int output_dim = 0;
  std::vector<float> x;
  std::vector<float> y;
};

enum class LossKind { kMse, kCrossEntropy };
enum class DataSplit { kTrain, kValidation, kTest };

class Task {
 public:
  virtual ~Task() = default;

  virtual const std::string& name() const = 0;
  virtual int input_dim() const = 0;
  virtual int output_dim() const = 0;
  // Number of distinct functions (poly1d families); a zoo trains each of them.
  virtual int variants() const { return 1; }
  virtual std::string VariantLabel(int variant) const { return name(); }
  virtual LossKind loss() const { return LossKind::kMse; }
  // INVALID_ARGUMENT when the task does not accept this lambda (tasks without mixing take 0).
  virtual absl::Status ValidateLambda(double lambda) const;

  // True when every model trains on the same fixed dataset (fashion-mnist, custom); false when
  // each model draws fresh data from its seed (synthetic tasks).
  virtual bool SharedData() const { return false; }
  // Data of one split. Synthetic tasks draw `n` points uniformly on the domain from
  // Rng::ForStream(seed, stream of the split); shared-data tasks ignore seed and n.
  // FAILED_PRECONDITION when a dataset file is missing; NOT_FOUND for kTest on tasks without one.
  virtual absl::StatusOr<Dataset> Data(DataSplit split, int variant, double lambda,
                                       uint64_t seed, int64_t n) const;

  // y = f(x) for n points: x [n, input_dim] -> y [n, output_dim]. Synthetic tasks only.
  virtual void Evaluate(int variant, const float* x, int64_t n, double lambda, float* y) const {}
  virtual bool HasExactGradient() const { return false; }
  // d y_o / d x_i for n points into grad [n, output_dim, input_dim]. Precondition:
  // HasExactGradient().
  virtual void ExactGradient(int variant, const float* x, int64_t n, double lambda,
                             float* grad) const {}
  // Sampling domain of each input (synthetic tasks).
  virtual std::vector<std::pair<double, double>> Domain() const { return {}; }
  // Draws one input point (default: uniform on Domain()).
  virtual void SamplePoint(Rng& rng, float* x) const;
};

// Streams of Rng::ForStream for a model's data.
inline constexpr uint64_t kTrainDataStream = 1;
inline constexpr uint64_t kValidationDataStream = 2;
inline constexpr uint64_t kTestDataStream = 4;

// Names of the tasks this build provides.
std::vector<std::string> TaskNames();

// The task `config` names. With load_data, dataset tasks read their files (slow: do it on a
// worker); without it they only check the files exist (cheap validation before queueing).
// INVALID_ARGUMENT for unknown names and bad task fields; FAILED_PRECONDITION when a dataset
// cannot be read.
absl::StatusOr<std::shared_ptr<const Task>> MakeTask(const TaskConfig& config,
                                                     bool load_data = true);

// Reads an IDX file (gzip or plain): magic, dims, then uint8 data. INVALID_ARGUMENT /
// DATA_LOSS for malformed files (sizes checked against the file before allocating),
// FAILED_PRECONDITION when it cannot be opened.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int64_t max_elements);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_TASKS_TASK_H_
