// Network embeddings (seed 003): a cloze-trained set encoder that maps a network to a vector
// describing the function it computes, and the registry that trains, stores and serves them.
//
// The encoder reads a set of points {(x_n, g_n * (1 - m_n), m_n)}: input x_n (scaled to [-1,1]
// per input from the zoo task's domain), the model's input Jacobian g_n = dy/dx at x_n (all
// outputs x inputs, divided by a fixed gradient scale), and a mask bit m_n. Per point an MLP phi
// (3 ReLU layers of width `hidden`) and `hidden` features linear in the gradient, U(x_n) V g_n
// (the gradient path: projections of the gradient field onto learned functions of x, what
// integrating it takes; embed_internal.h), a mean over the VISIBLE points (permutation
// invariant, any number of points), then rho (2 layers) gives the embedding e. A decoder MLP psi(x, e)
// predicts the gradient at any x. Masked points keep their x (psi is asked there) but their
// gradient reads 0 and they are left out of the mean, so a lookup (every point visible) feeds
// the encoder what training fed it: a set of visible points.
//
// Points: every sample of n points is a Latin hypercube on the domain (embed_internal.h's
// SampleStratified: each point uniform, each input's n values one per stratum of width 1/n),
// in training, validation and lookups alike. Against i.i.d. points it cut the lookup-to-lookup
// noise of the mean over points enough to matter for close families (core/embed/README.md).
//
// Cloze training: each step draws `points_per_sample` shared input points and `batch_models`
// training-split models, computes their gradients, groups each model's points by UNIQUE
// gradient (a linear region for ReLU: gradients equal up to a relative 1e-5 of the model's
// largest gradient entry, the smooth-activation rule of core/grad/regions.h), masks whole
// groups (at least one masked and one visible when a model has two or more), and minimises the
// MSE of psi on the masked points' (scaled) gradients with Adam. Which groups are masked
// (mask_shape): kGroups, each with probability `mask_rate`; kSpans (default), every group with
// a point in a random slab along a random direction of the scaled input space, the slab's
// width uniform in [0, min(2 mask_rate, 1)) of the points' extent (embed_internal.h's
// DrawSpanMask). In 1-D a span is a run of neighbouring linear pieces: the masked gradients
// cannot be read off the pieces next to them, only off the shape of the whole function, which
// is what the embedding should hold (independent single groups are filled in best from their
// neighbours, and the embedding then spends itself on each network's own kinks). Loss reported
// in original gradient units:
//   cloze MSE = sum_masked |g_hat - g|^2 / (masked points * outputs * inputs).
// Baselines on the same validation points and masks: the mean of the model's visible
// gradients; and linear interpolation between the nearest visible points (1-D inputs: the
// nearest visible point on each side, weights (b - x)/(b - a) and (x - a)/(b - a), the nearest
// one alone at the ends; more inputs: inverse-distance weights of the two nearest visible).
// Validation: every validation-split model of the zoos, 4 fixed point samples (seed-derived).
//
// Function distances (distance_weight w > 0): the step also computes the models' outputs z_to
// at the step's points, centres each output over the points, and adds
//   w mean_ij (E_ij / mean E - D_ij / mean D)^2,  E_ij = |e_i - e_j|^2,
//   D_ij = mean over points and outputs of the squared difference of the centred outputs
// (embed_internal.h's FunctionDistances / DistanceLoss), over the batch's B x B pairs. The
// cloze loss makes e predict gradients, and a ReLU network's gradient is its own kinks as much
// as its function; D is dominated by the function. The encoder still reads only gradients.
// On families within 5% of one polynomial it lifts the learned embedding's separation about
// 3-7 x over the untrained encoder's (core/embed/README.md).
//
// Sub-networks (seed 003: "apply the same method within the layers of a larger model"): with
// from_layer / to_layer the embedder reads the function from layer `from`'s activations h_from
// to layer `to`'s pre-activations z_to (layers: 0 = input, 1..H hidden, H+1 = output; to 0 =
// the output, so (0, 0) is the whole network; embed_internal.h has the formula). Its points are
// h_from at the sampled task inputs x (the distribution of activations on the task's inputs),
// scaled to [-1, 1] per unit by the range seen over (up to 512) training models at 256 points;
// its gradients are d z_to / d h_from. Hidden units are not aligned across models (any
// permutation of a layer computes the same network), so sub-network embeddings compare
// sub-networks whose units correspond (the same model, or models that share an ancestry).
//
// Embedding lookups: e(model) = mean over `samples` point samples s of Encode(points of s, all
// visible); sample s draws its points from Rng::ForStream(seed, 1000 + s), the same points for
// every model, so a model's embedding does not depend on the others in the call. Embeddings are
// cached per (embedder, zoo snapshot, model, samples, seed, from_layer, to_layer).
//
// Storage: DIR/embedders/<id>.gzemb (magic, fields, parameters, FNV-1a 64 checksum; files of
// earlier versions load as what they were: group masks, no gradient path), written
// to a temp file -> fsync -> rename -> fsync dir; loaded at Create. A file that fails its
// checksum is listed with DATA_LOSS.
//
// Lifecycle of an embedder id: (absent) --Train--> READY --Delete--> (absent);
// READY --(checksum fails at load)--> CORRUPT (Get answers DATA_LOSS).
//
// Thread-safe: every method may be called concurrently; training and lookups run on the
// caller's thread (the server puts them on its job and query pools). Torch-free header.
#ifndef GRADZOO_CORE_EMBED_EMBEDDER_H_
#define GRADZOO_CORE_EMBED_EMBEDDER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/engine.h"
#include "core/model.h"

namespace gradzoo::core {

// What one cloze example masks (header comment): whole unique-gradient groups drawn
// independently (seed 003 as written), or the groups met by one random slab along a random
// direction, a run of neighbouring linear pieces (the default: measured better embeddings,
// core/embed/README.md).
enum class MaskShape { kGroups = 1, kSpans = 2 };

struct EmbedderOptions {
  int points_per_sample = 64;  // [4, 4096]
  double mask_rate = 0.25;     // (0, 1)
  MaskShape mask_shape = MaskShape::kSpans;
  int embedding_size = 32;     // [1, 1024]
  int steps = 2000;            // [1, 1'000'000]
  // Initial weights, points and masks. Training again with the same seed, options and zoos on
  // the same set-up (device, threads) reproduces an embedder; where float sums run in another
  // order (another thread count) it can train a different one (core/embed/README.md).
  int64_t seed = 0;
  int batch_models = 32;          // models per step, [1, 4096]
  int hidden = 64;                // width of every encoder/decoder layer, [4, 1024]
  double learning_rate = 2e-3;    // Adam, cosine-decayed to 5% over the steps
  // The sub-network the embedder reads (header comment): 0 <= from_layer < to_layer <= H+1,
  // to_layer 0 = the output.
  int from_layer = 0;
  int to_layer = 0;
  // Members, [1, 8]: encoders trained one after another, member k as a single embedder with
  // seed + k would be (the gradient scale and validation samples come from `seed`); the
  // embedding is theirs side by side, members * embedding_size wide. It averages out one
  // embedder's seed noise, which on close families is as large as what training adds
  // (core/embed/README.md). Training and lookups cost `members` times more.
  int members = 1;
  // Weight of the function-distance term, [0, 100]; 0 = the cloze loss alone (seed 003 as
  // written). With w > 0 each step also asks that the batch's embeddings sit as far apart as
  // the networks' functions do: loss = cloze + w mean_ij (E_ij / mean E - D_ij / mean D)^2,
  // E_ij = |e_i - e_j|^2 and D_ij the mean squared difference of the two networks' centred
  // outputs (their (sub-)network outputs z_to at the step's input points, each output minus
  // its mean over the points). The encoder still reads only gradients; the outputs only
  // shape the training target. Where the families differ by a few percent, the cloze loss
  // alone spends the embedding on each network's own kinks (core/embed/README.md). Costs per
  // step a double copy of the outputs (batch_models x points x outputs) and a few
  // batch_models x batch_models matrices (under 1 MB at 32, about 1 GB at 4096). Progress and
  // the validation loss report the cloze loss alone.
  double distance_weight = 0.0;
};

// Width of the embeddings: members * embedding_size.
inline int EmbeddingDim(const EmbedderOptions& o) { return o.members * o.embedding_size; }

// INVALID_ARGUMENT naming the field.
absl::Status ValidateEmbedderOptions(const EmbedderOptions& o);

struct EmbedderInfo {
  std::string id;
  std::vector<std::string> zoos;
  EmbedderOptions options;
  int input_dim = 0;
  int output_dim = 0;
  // Per input of the (sub-)network: the range mapped to [-1, 1] (the task's domain when
  // from_layer is 0, else the activations' observed range).
  std::vector<std::pair<double, double>> domain;
  // Per input of the whole network: where the input points are drawn.
  std::vector<std::pair<double, double>> source_domain;
  double gradient_scale = 1.0;                    // RMS gradient entry of the training models
  int64_t train_models = 0;
  int64_t validation_models = 0;
  double validation_cloze_loss = 0.0;
  double mean_gradient_baseline_loss = 0.0;
  double interpolation_baseline_loss = 0.0;
  int64_t create_time_ms = 0;
  absl::Status status;  // DATA_LOSS for a corrupt file (then only `id` is meaningful)
};

struct EmbedQuery {
  std::vector<ModelRef> models;
  int samples = 4;   // [1, 64]
  int64_t seed = 0;
  // The sub-network of each model to embed; -1 = the embedder's own from_layer / to_layer. The
  // sub-network must have the embedder's input and output widths.
  int from_layer = -1;
  int to_layer = -1;
  // Embed with the embedder's initial weights instead: the untrained encoder that the probes
  // report as their "untrained_encoder" baseline (cached apart from the trained embeddings).
  // Core only, for comparisons such as the acceptance test's.
  bool untrained = false;
};

struct EmbedNeighbor {
  ModelRef model;
  double similarity = 0.0;
  std::string label;
};

struct NeighborQuery {
  ModelRef model;
  int k = 5;
  // Candidate zoos; empty = every loaded zoo whose models match the embedder's dims.
  std::vector<std::string> zoos;
};

struct ProbeQuery {
  std::vector<std::string> zoos;
  // "label" (ModelRecord::label), "task", "variant", "lambda".
  std::string target = "label";
  int k = 5;
};

struct ProbeScore {
  // "embedding", "gradient_profile", "weight_stats", "untrained_encoder".
  std::string representation;
  double linear_accuracy = 0.0;
  double knn_accuracy = 0.0;
  double separation = 0.0;  // core/embed/probe.h defines it
  // Whether this representation's accuracies differ from the learned embedding's by more than
  // chance: exact two-sided McNemar tests (probe.h's McNemarP) on the validation models that
  // the two classify differently. 1 for the embedding's own row.
  double linear_p_value = 1.0;
  double knn_p_value = 1.0;
  int64_t train_models = 0;
  int64_t validation_models = 0;
  int classes = 0;
};

class EmbedderRegistry {
 public:
  struct Options {
    std::string data_dir;  // "" = in memory only
    std::string device = "cpu";
    int64_t max_cached_embeddings = 1'000'000;
    int64_t max_models_per_call = 100'000;
  };
  static absl::StatusOr<std::shared_ptr<EmbedderRegistry>> Create(const Options& options);
  // One registry per data directory in this process, shared by every holder while any holds it
  // (the server's embedding and job services); a later call after all holders let go reloads
  // from disk.
  static absl::StatusOr<std::shared_ptr<EmbedderRegistry>> Shared(const Engine& engine);

  // Cheap checks before queueing a training job: id, options, zoos exist and are ready, share
  // input/output dims, and hold training and validation models. ALREADY_EXISTS for a taken id.
  absl::Status ValidateTraining(const Engine& engine, const std::string& id,
                                const std::vector<std::string>& zoos,
                                const EmbedderOptions& options) const;
  // Trains, saves and publishes. Progress after every evaluation; cancel polled every step
  // and once more before saving (CANCELLED).
  absl::StatusOr<EmbedderInfo> Train(const Engine& engine, const std::string& id,
                                     const std::vector<std::string>& zoos,
                                     const EmbedderOptions& options, const ProgressFn& progress,
                                     const CancelFn& cancel);

  absl::StatusOr<EmbedderInfo> Get(const std::string& id) const;
  std::vector<EmbedderInfo> List() const;  // by id
  absl::Status Delete(const std::string& id);

  // Checks and sizes a lookup (models x samples x points <= engine max_points_per_query).
  absl::Status ValidateEmbed(const Engine& engine, const std::string& id,
                             const EmbedQuery& query) const;
  // [models, embedding_size] row-major.
  absl::StatusOr<std::vector<float>> Embed(const Engine& engine, const std::string& id,
                                           const EmbedQuery& query, const CancelFn& cancel);
  // The k most cosine-similar models (default lookup: 4 samples, seed 0), the query excluded.
  absl::StatusOr<std::vector<EmbedNeighbor>> FindNeighbors(const Engine& engine,
                                                           const std::string& id,
                                                           const NeighborQuery& query,
                                                           const CancelFn& cancel);
  // Probes of `target`: the learned embedding first, then gradient_profile (the (sub-)network's
  // Jacobian at P = clamp(4096 / (inputs x outputs), 4, 64) fixed points: a linspace for 1-D
  // network inputs, Rng(0) points otherwise), weight_stats (per layer
  // mean, std, mean |w|, max |w| of weights and mean, std of biases, over the sub-network's
  // layers) and untrained_encoder (the
  // same architecture at its seed's initial weights). Train split fits, validation split scores.
  absl::StatusOr<std::vector<ProbeScore>> Probe(const Engine& engine, const std::string& id,
                                                const ProbeQuery& query,
                                                const CancelFn& cancel);

  int64_t CachedEmbeddings() const;
  ~EmbedderRegistry();

  // A loaded embedder (opaque; defined in embedder.cc).
  struct Loaded;

 private:
  // (embedder#serial, zoo, zoo create time, model, samples, seed, from_layer, to_layer)
  using CacheKey =
      std::tuple<std::string, std::string, int64_t, std::string, int, int64_t, int, int>;
  explicit EmbedderRegistry(Options options);
  absl::StatusOr<std::shared_ptr<const Loaded>> Find(const std::string& id) const;
  absl::StatusOr<std::vector<float>> EmbedWith(const Engine& engine, const Loaded& e,
                                               bool untrained, const EmbedQuery& query,
                                               const CancelFn& cancel);

  const Options options_;
  absl::Mutex write_mu_;  // serialises Train's publish and Delete
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const Loaded>> embedders_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> broken_ ABSL_GUARDED_BY(mu_);
  std::map<CacheKey, std::vector<float>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_EMBED_EMBEDDER_H_
