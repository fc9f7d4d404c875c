// gradzoo's data model: network specs, weights, zoo specs and zoos, as plain C++ values.
//
// This header is torch-free on purpose: the server, the store and the client-facing converters
// include it without pulling LibTorch into their compile. Tensor code (core/nn, core/train,
// core/grad) maps these vectors with from_blob when it needs them.
//
// Value types, not thread-safe on their own; a published Zoo is shared as shared_ptr<const Zoo>
// and never mutated (STYLE rule 7).
#ifndef GRADZOO_CORE_MODEL_H_
#define GRADZOO_CORE_MODEL_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace gradzoo::core {

// Nonlinearity after every hidden layer (never after the output layer).
enum class Activation { kRelu = 1, kGelu = 2, kTanh = 3 };

const char* ActivationName(Activation a);

// Shape of an MLP: input_dim -> hidden[0] -> ... -> hidden[L-2] -> output_dim.
struct MlpSpec {
  int input_dim = 0;
  std::vector<int> hidden;
  int output_dim = 0;
  Activation activation = Activation::kRelu;

  // Limits that keep one model's parameters and captures small enough to serve.
  static constexpr int kMaxLayers = 16;
  static constexpr int kMaxWidth = 4096;

  // INVALID_ARGUMENT naming the offending field when a dimension is out of range.
  absl::Status Validate() const;
  // Every layer width, input first: {input_dim, hidden..., output_dim}.
  std::vector<int> Widths() const;
  // Number of dense layers (hidden.size() + 1).
  int NumLayers() const { return static_cast<int>(hidden.size()) + 1; }
  // Total weights and biases.
  int64_t ParamCount() const;
  bool operator==(const MlpSpec& o) const {
    return input_dim == o.input_dim && hidden == o.hidden && output_dim == o.output_dim &&
           activation == o.activation;
  }
};

// One dense layer y = W x + b; weight is row-major [out, in].
struct LayerWeights {
  int out = 0;
  int in = 0;
  std::vector<float> weight;
  std::vector<float> bias;
};

// Checks that `layers` have the shapes `spec` implies (and finite values).
absl::Status ValidateWeights(const MlpSpec& spec, const std::vector<LayerWeights>& layers);

// Which task and data a zoo trains on. Only the fields of the named task are used; formulas
// and domains are documented in core/tasks/task.h.
struct TaskConfig {
  std::string name = "mul2";
  std::vector<double> lambdas = {0.0};
  int train_examples = 2048;
  int validation_examples = 512;
  // poly1d: number of distinct polynomials (the task's variants); 0 = 10.
  int families = 0;
  // poly1d: 0 = independent members; towards 1 every member is drawn near one shared polynomial.
  double similarity = 0.0;
  // poly1d: seed of the family draw (the same seed gives the same polynomials).
  int64_t family_seed = 0;
  // fashion-mnist: directory holding the IDX files (gzip or plain); "" = the Debian package's.
  std::string data_path;
  // custom: the uploaded dataset, row-major x [n, custom_input_dim], y [n, custom_output_dim].
  int custom_input_dim = 0;
  int custom_output_dim = 0;
  std::vector<float> custom_x;
  std::vector<float> custom_y;
};

// Optimiser settings shared by every model of a zoo (full-batch or minibatch Adam on MSE).
struct TrainConfig {
  int steps = 2000;
  int batch_size = 0;  // 0 = full batch
  double learning_rate = 1e-2;
  int eval_every = 0;  // 0 = max(1, steps / 20)
  int early_stopping_patience = 0;  // evaluations without improvement; 0 = never stop early
  std::string device = "";  // "", "auto", "cpu", "cuda:N"; "" = the engine's default
  // Learning rate at step t of T: lr * (0.05 + 0.95 * (1 + cos(pi t / T)) / 2) when cosine,
  // else constant. Decaying the rate lets the nets settle on the fine kinks that make their
  // input gradients close to the exact ones.
  bool cosine_schedule = true;
};

// Everything needed to (re)create a zoo: one model per (lambda, seed).
struct ZooSpec {
  TaskConfig task;
  std::vector<int> hidden = {32, 32};
  Activation activation = Activation::kRelu;
  std::vector<int64_t> seeds = {0};
  std::vector<int64_t> validation_seeds;  // subset of the validation split, by seed
  TrainConfig training;
};

enum class Split { kTrain = 1, kValidation = 2 };

// One stored network and what is known of how it was made.
struct ModelRecord {
  std::string id;  // unique within its zoo: [a-z0-9-]{1,63}
  std::string task;
  int variant = 0;  // which of the task's variants (poly1d family); 0 for single-variant tasks
  double lambda = 0.0;
  int64_t seed = 0;
  Split split = Split::kTrain;
  double train_loss = 0.0;
  double validation_loss = 0.0;
  int steps = 0;
  std::string label;
  // Held-out test set metrics for tasks that have one (fashion-mnist); NaN otherwise.
  double test_loss = std::nan("");
  double test_accuracy = std::nan("");
  MlpSpec spec;
  std::vector<LayerWeights> layers;
};

// A published zoo: an immutable snapshot of models.
struct Zoo {
  std::string id;  // [a-z0-9-]{1,63}; the resource is "zoos/{id}"
  bool has_spec = false;  // false for zoos built by ImportModel
  ZooSpec spec;
  std::vector<ModelRecord> models;
  int64_t create_time_ms = 0;  // Unix epoch milliseconds
  int64_t stored_bytes = 0;
  std::string owner;
};

// INVALID_ARGUMENT unless `id` matches [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?.
absl::Status ValidateResourceId(const std::string& id, const char* field);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_MODEL_H_
