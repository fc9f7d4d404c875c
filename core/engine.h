// Engine: the one object through which the server reaches core (cf. TF Serving's ServerCore).
//
// It owns the zoo store and the in-memory catalog of published zoos. A published zoo is an
// immutable snapshot (shared_ptr<const Zoo>): a training job builds a private Zoo, saves it,
// and only then swaps it into the catalog, so no query ever sees a half-trained zoo.
//
// Lifecycle of a zoo id:   (absent) --TrainZoo/ImportModel--> READY --DeleteZoo--> (absent)
//                          READY --(checksum fails at load)--> CORRUPT (queries: DATA_LOSS)
//
// Thread-safe: every method may be called concurrently. Heavy methods (TrainZoo,
// ComputeGradientField) run on the caller's thread; callers put them on worker pools.
// Torch-free header.
#ifndef GRADZOO_CORE_ENGINE_H_
#define GRADZOO_CORE_ENGINE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/grad/field.h"
#include "core/grad/points.h"
#include "core/model.h"
#include "core/store/zoo_store.h"
#include "core/tasks/task.h"
#include "core/train/trainer.h"

namespace gradzoo::core {

// A model of a zoo, by ids.
struct ModelRef {
  std::string zoo_id;
  std::string model_id;
};

// What ComputeGradientField evaluates.
struct FieldRequest {
  std::vector<ModelRef> models;  // explicit models
  std::string zoo_id;            // and/or every model of this zoo
  PointSpec points;
  bool compare_with_theory = false;
  bool include_outputs = false;
};

// One model's field, with the model it belongs to.
struct NamedField {
  ModelRef model;
  ModelField field;
  std::vector<float> points;  // [n, in]: the query points, set on the first result only
};

// A zoo in the catalog: its snapshot, or the error that keeps it from loading.
struct ZooEntry {
  std::string id;
  std::shared_ptr<const Zoo> zoo;  // null when `status` is not ok
  absl::Status status;
};

// Facts for GetServerInfo.
struct EngineFacts {
  std::string version;
  std::string device;
  std::string blas;
  std::string blas_path;
  int torch_threads = 0;
  std::string torch_version;
  int64_t max_points_per_query = 0;
  std::string data_dir;
};

class Engine {
 public:
  struct Options {
    // Directory of the embedded store (created if missing).
    std::string data_dir;
    // Default device for tensor work: "auto" (CUDA when present), "cpu", "cuda:N".
    std::string device = "auto";
    // Upper bound on points x models in one query; larger requests get RESOURCE_EXHAUSTED
    // before anything is allocated.
    int64_t max_points_per_query = 4'000'000;
    // Upper bound on models in one zoo.
    int64_t max_models_per_zoo = 10'000;
    // Upper bound on training examples per model.
    int64_t max_examples_per_model = 1'000'000;
  };

  // Opens the store and loads every zoo (a zoo that fails its checksum is listed as DATA_LOSS;
  // the others load). FAILED_PRECONDITION if the store cannot be opened; INVALID_ARGUMENT /
  // FAILED_PRECONDITION for a bad device.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const Options& options);

  // Every zoo, newest first (ties by id).
  std::vector<ZooEntry> ListZoos() const;
  // NOT_FOUND if absent, DATA_LOSS if its stored data is corrupt.
  absl::StatusOr<std::shared_ptr<const Zoo>> GetZoo(const std::string& id) const;
  // Removes the zoo from the catalog and the store. NOT_FOUND if absent.
  absl::Status DeleteZoo(const std::string& id);
  // The model `ref` and the zoo that holds it (keeps the snapshot alive).
  absl::StatusOr<std::pair<std::shared_ptr<const Zoo>, const ModelRecord*>> GetModel(
      const ModelRef& ref) const;

  // Cheap validation of a training request (ids, spec, sizes) so a job can be refused before
  // it is queued. ALREADY_EXISTS if the zoo id is taken.
  absl::Status ValidateTraining(const std::string& zoo_id, const ZooSpec& spec) const;
  // Trains the zoo (one stacked program), saves it, then publishes it. Calls `progress` after
  // each evaluation; polls `cancel` every step. ALREADY_EXISTS if the id was taken meanwhile.
  absl::StatusOr<std::shared_ptr<const Zoo>> TrainZoo(const std::string& zoo_id,
                                                      const ZooSpec& spec,
                                                      const ProgressFn& progress,
                                                      const CancelFn& cancel);

  // Adds a network trained elsewhere (weights as data) to zoo `zoo_id`, creating the zoo if it
  // does not exist; the zoo is saved, then the new snapshot published. An empty model id gets
  // the next free "m%04d". INVALID_ARGUMENT for bad weights (NaN, shapes), ALREADY_EXISTS for a
  // taken model id, FAILED_PRECONDITION when its input/output dims differ from the zoo's.
  absl::StatusOr<std::pair<std::shared_ptr<const Zoo>, std::string>> ImportModel(
      const std::string& zoo_id, ModelRecord model);
  // The zoo as a data-only archive (core/store/zoo_codec.h).
  absl::StatusOr<std::string> ExportZoo(const std::string& zoo_id) const;
  // Creates zoo `zoo_id` from an archive written by ExportZoo (on any server). INVALID_ARGUMENT
  // for corrupt or foreign bytes (TorchScript zips and pickles are refused by name),
  // ALREADY_EXISTS when the id is taken.
  absl::StatusOr<std::shared_ptr<const Zoo>> ImportZoo(const std::string& zoo_id,
                                                       const std::string& archive);

  // Cheap validation and size check of a field request: returns points x models.
  absl::StatusOr<int64_t> ValidateField(const FieldRequest& request) const;
  // Input-gradient fields of every selected model (models of different architectures are
  // grouped and stacked per architecture).
  absl::StatusOr<std::vector<NamedField>> ComputeGradientField(const FieldRequest& request,
                                                               const CancelFn& cancel) const;

  EngineFacts Facts() const;
  const Options& options() const { return options_; }
  // The resolved default device ("cpu", "cuda:0") for tensor work.
  const std::string& device() const { return device_; }

 private:
  Engine(Options options, std::string device, std::unique_ptr<ZooStore> store);
  // Resolves the selection to (zoo snapshot, model) pairs, in request order.
  absl::StatusOr<std::vector<std::pair<std::shared_ptr<const Zoo>, const ModelRecord*>>>
  ResolveSelection(const FieldRequest& request) const;

  const Options options_;
  const std::string device_;
  // Saves `zoo` and publishes it under its id (replacing any snapshot).
  absl::StatusOr<std::shared_ptr<const Zoo>> SaveAndPublish(std::shared_ptr<Zoo> zoo);

  const std::unique_ptr<ZooStore> store_;
  // Serialises read-modify-write of zoos (imports), so two imports never lose each other.
  absl::Mutex write_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, ZooEntry> zoos_ ABSL_GUARDED_BY(mu_);
};

// "m0000".."m9999": ids of a trained zoo's models, in (variant, lambda, seed) order.
std::string ModelIdForIndex(size_t index);

// The task whose exact gradient applies to model `m` of `zoo` (the zoo's own task config, so
// poly1d families match). FAILED_PRECONDITION when it has none.
absl::StatusOr<std::shared_ptr<const Task>> TheoryTask(const Zoo& zoo,
                                                             const ModelRecord& m);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ENGINE_H_
