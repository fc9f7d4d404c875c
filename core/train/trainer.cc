#include "core/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/nn/mlp.h"
#include "core/train/fused_cpu.h"
#include "core/util/random.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

absl::Status ValidateTrainConfig(const TrainConfig& c) {
  if (c.steps < 1 || c.steps > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.steps must be in [1, 10000000], got ", c.steps));
  }
  if (c.batch_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.batch_size must be >= 0 (0 = full batch), got ", c.batch_size));
  }
  if (!(c.learning_rate > 0.0 && c.learning_rate <= 10.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.learning_rate must be in (0, 10], got ", c.learning_rate));
  }
  if (c.eval_every < 0) {
    return absl::InvalidArgumentError("training.eval_every must be >= 0");
  }
  if (c.early_stopping_patience < 0) {
    return absl::InvalidArgumentError("training.early_stopping_patience must be >= 0");
  }
  return absl::OkStatus();
}

namespace {

// Per-model MSE over points and outputs: pred, y [K, N, out] -> [K].
at::Tensor PerModelMse(const at::Tensor& pred, const at::Tensor& y) {
  return (pred - y).pow(2).mean({1, 2});
}

// Adam (PyTorch's, no weight decay) over one flat buffer holding every parameter of every
// model, so a step is ten whole-buffer ops whatever the depth: m = b1 m + (1-b1) g,
// v = b2 v + (1-b2) g^2, p -= step * mask * m / (sqrt(v / bc2) + eps), step = lr / bc1 with
// bc_i = 1 - b_i^t. `mask` (same shape, 0/1 per model) freezes early-stopped models.
struct FlatAdam {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  at::Tensor m, v, scratch;
  int64_t t = 0;

  FlatAdam(double lr_in, const at::Tensor& flat)
      : lr(lr_in), m(at::zeros_like(flat)), v(at::zeros_like(flat)), scratch(at::empty_like(flat)) {}
  void Step(at::Tensor& params, const at::Tensor& grads, const at::Tensor* mask, double lr_scale) {
    ++t;
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    m.mul_(beta1).add_(grads, 1.0 - beta1);
    v.mul_(beta2).addcmul_(grads, grads, 1.0 - beta2);
    at::div_out(scratch, v, bc2).sqrt_().add_(eps);  // denominator
    at::div_out(scratch, m, scratch);                // update
    if (mask != nullptr) scratch.mul_(*mask);
    params.sub_(scratch, lr * lr_scale / bc1);
  }
};

// Layer-major layout of a flat parameter buffer: W_1 [K, out, in], b_1 [K, 1, out], W_2, ...
// each a contiguous slice, so per-layer tensors are views into it.
struct FlatLayout {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets, numels;
  int64_t total = 0;

  explicit FlatLayout(const StackedMlp& mlp) {
    for (size_t l = 0; l < mlp.weight.size(); ++l) {
      for (const at::Tensor* t : {&mlp.weight[l], &mlp.bias[l]}) {
        shapes.push_back(t->sizes().vec());
        offsets.push_back(total);
        numels.push_back(t->numel());
        total += t->numel();
      }
    }
  }
  // {W_1, b_1, W_2, ...} as views of `flat`.
  std::vector<at::Tensor> Views(const at::Tensor& flat) const {
    std::vector<at::Tensor> v;
    for (size_t i = 0; i < shapes.size(); ++i) {
      v.push_back(flat.narrow(0, offsets[i], numels[i]).view(shapes[i]));
    }
    return v;
  }
  // Spreads a per-model [K] tensor over every parameter of each model, into `flat`.
  void Spread(const at::Tensor& per_model, const at::Tensor& flat) const {
    for (at::Tensor& view : Views(flat)) view.copy_(per_model.view({-1, 1, 1}).expand_as(view));
  }
};

// Learning-rate multiplier of step (1-based) of `steps` (TrainConfig::cosine_schedule).
double LrScale(const TrainConfig& c, int step, int steps) {
  return c.cosine_schedule
             ? 0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * (step - 1) / static_cast<double>(steps)))
             : 1.0;
}

// Minibatch order: one permutation of the training rows for all models, reshuffled with
// Rng::ForStream(first seed, kBatchStream) whenever the epoch runs out.
class BatchOrder {
 public:
  BatchOrder(int64_t seed, int64_t n, int64_t batch)
      : rng_(Rng::ForStream(static_cast<uint64_t>(seed), kBatchStream)), perm_(n), batch_(batch),
        cursor_(n) {
    for (int64_t i = 0; i < n; ++i) perm_[i] = i;
  }
  // The rows of the next minibatch (batch_ of them); valid until the next call.
  const int64_t* Next() {
    const int64_t n = static_cast<int64_t>(perm_.size());
    if (cursor_ + batch_ > n) {
      for (int64_t i = n - 1; i > 0; --i) {
        std::swap(perm_[i], perm_[static_cast<int64_t>(rng_.Uniform() * (i + 1))]);
      }
      cursor_ = 0;
    }
    const int64_t* rows = perm_.data() + cursor_;
    cursor_ += batch_;
    return rows;
  }

 private:
  Rng rng_;
  std::vector<int64_t> perm_;
  int64_t batch_;
  int64_t cursor_;
};

// The CPU path for zoo-sized networks (fused::Suits): every model's step is one fused kernel
// call (core/train/fused_cpu.h) on its own parameter block, and the models of a step are shared
// out over the ATen thread pool. A model's arithmetic never depends on which thread runs it or
// on the other models, so results are bitwise reproducible for any thread count. Frozen
// (early-stopped) models are skipped rather than masked.
absl::StatusOr<std::vector<TrainedModel>> TrainFused(const TrainRequest& req,
                                                     const std::vector<Dataset>& train_sets,
                                                     const std::vector<Dataset>& val_sets,
                                                     const std::optional<Dataset>& test_set,
                                                     const ProgressFn& progress,
                                                     const CancelFn& cancel) {
  const int64_t k = static_cast<int64_t>(req.models.size());
  const bool shared = req.task->SharedData();
  const bool classify = req.task->loss() == LossKind::kCrossEntropy;
  const fused::Net net = fused::Net::Make(req.spec, req.task->loss());
  const int64_t stride = net.stride;
  const int64_t n_train = train_sets.front().n, n_val = val_sets.front().n;

  // Parameters, Adam moments and the best weights: one block of `stride` floats per model.
  std::vector<int64_t> seeds;
  for (const ModelPlan& p : req.models) seeds.push_back(p.seed);
  std::vector<float> params(static_cast<size_t>(k * stride), 0.0f);
  {
    const StackedMlp init = InitStacked(req.spec, seeds, at::kCPU);
    for (int l = 0; l < net.layers(); ++l) {
      const at::Tensor w = init.weight[l].contiguous(), b = init.bias[l].contiguous();
      const int64_t wn = w.size(1) * w.size(2), bn = b.size(2);
      for (int64_t i = 0; i < k; ++i) {
        std::memcpy(&params[i * stride + net.w_offset[l]], w.data_ptr<float>() + i * wn, wn * sizeof(float));
        std::memcpy(&params[i * stride + net.b_offset[l]], b.data_ptr<float>() + i * bn, bn * sizeof(float));
      }
    }
  }
  std::vector<float> adam_m(params.size(), 0.0f), adam_v(params.size(), 0.0f), best = params;
  std::vector<double> best_val(k, std::numeric_limits<double>::infinity());
  std::vector<int> bad_evals(k, 0), stopped_at(k, req.config.steps);
  std::vector<int64_t> active(k);
  for (int64_t i = 0; i < k; ++i) active[i] = i;

  // One workspace per pool thread, made on first use by that thread.
  const int threads = std::max(1, at::get_num_threads());
  std::vector<std::unique_ptr<fused::Workspace>> workspaces(threads);
  // Runs fn(model, workspace) for every model in `which`, models handed out one at a time.
  auto for_models = [&](const std::vector<int64_t>& which, const auto& fn) {
    if (which.empty()) return;
    std::atomic<size_t> next{0};
    const int64_t tasks = std::min<int64_t>(threads, static_cast<int64_t>(which.size()));
    at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
      const int t = at::get_thread_num();
      if (t < 0 || t >= threads) throw std::logic_error("unexpected pool thread index");
      std::unique_ptr<fused::Workspace>& ws = workspaces[t];
      if (ws == nullptr) ws = std::make_unique<fused::Workspace>(net);
      for (size_t j = next.fetch_add(1); j < which.size(); j = next.fetch_add(1)) fn(which[j], *ws);
    });
  };
  // Model i's data: its own set, or the one shared set.
  auto x_of = [&](const std::vector<Dataset>& sets, int64_t i) {
    return sets[shared ? 0 : static_cast<size_t>(i)].x.data();
  };
  auto y_of = [&](const std::vector<Dataset>& sets, int64_t i) {
    return sets[shared ? 0 : static_cast<size_t>(i)].y.data();
  };

  const int steps = req.config.steps;
  const int eval_every = req.config.eval_every > 0 ? req.config.eval_every : std::max(1, steps / 20);
  const int64_t batch =
      req.config.batch_size > 0 ? std::min<int64_t>(req.config.batch_size, n_train) : n_train;
  BatchOrder order(seeds.front(), n_train, batch);
  std::vector<double> batch_loss(k, 0.0), val(k, 0.0);
  std::vector<int64_t> all(k);
  for (int64_t i = 0; i < k; ++i) all[i] = i;

  for (int step = 1; step <= steps; ++step) {
    if (cancel && cancel()) return absl::CancelledError("training cancelled");
    const int64_t* rows = batch < n_train ? order.Next() : nullptr;  // null: every row, in order
    fused::AdamStep adam;
    const double bc1 = 1.0 - std::pow(adam.beta1, static_cast<double>(step));
    adam.bc2 = 1.0 - std::pow(adam.beta2, static_cast<double>(step));
    adam.step = req.config.learning_rate * LrScale(req.config, step, steps) / bc1;
    for_models(active, [&](int64_t i, fused::Workspace& ws) {
      const int64_t o = i * stride;
      batch_loss[i] = fused::TrainStep(net, &params[o], &adam_m[o], &adam_v[o], x_of(train_sets, i),
                                       y_of(train_sets, i), rows, batch, adam, ws);
    });
    if (step % eval_every != 0 && step != steps) continue;

    double last_batch_loss = 0.0;
    if (progress) {
      // Frozen models did not step: their minibatch loss is that of their frozen weights.
      std::vector<int64_t> frozen;
      for (int64_t i = 0, j = 0; i < k; ++i) {
        if (j < static_cast<int64_t>(active.size()) && active[j] == i) ++j;
        else frozen.push_back(i);
      }
      for_models(frozen, [&](int64_t i, fused::Workspace& ws) {
        batch_loss[i] = fused::Evaluate(net, &params[i * stride], x_of(train_sets, i), y_of(train_sets, i),
                                        rows, batch, ws).loss / static_cast<double>(batch);
      });
      for (double l : batch_loss) last_batch_loss += l / static_cast<double>(k);
    }
    // Validation of the active models; keep the best weights of those that improved.
    std::vector<char> improved(k, 0);
    for_models(active, [&](int64_t i, fused::Workspace& ws) {
      // Rounded to float as the ATen path's losses are.
      val[i] = static_cast<float>(fused::Evaluate(net, &params[i * stride], x_of(val_sets, i), y_of(val_sets, i),
                                                  nullptr, n_val, ws).loss / static_cast<double>(n_val));
      if (val[i] < best_val[i]) {
        best_val[i] = val[i];
        std::memcpy(&best[i * stride], &params[i * stride], stride * sizeof(float));
        improved[i] = 1;
      }
    });
    if (req.config.early_stopping_patience > 0) {
      std::vector<int64_t> still;
      for (int64_t i : active) {
        bad_evals[i] = improved[i] ? 0 : bad_evals[i] + 1;
        if (bad_evals[i] < req.config.early_stopping_patience) {
          still.push_back(i);
        } else {
          stopped_at[i] = step;
        }
      }
      active = std::move(still);
    }
    if (progress) {
      TrainProgress p;
      p.step = step;
      p.total_steps = steps;
      p.models_total = static_cast<int>(k);
      p.models_done = static_cast<int>(k - static_cast<int64_t>(active.size()));
      p.mean_train_loss = last_batch_loss;
      p.mean_validation_loss = 0.0;
      p.max_validation_loss = -std::numeric_limits<double>::infinity();
      for (double v : best_val) {
        p.mean_validation_loss += v / static_cast<double>(k);
        p.max_validation_loss = std::max(p.max_validation_loss, v);
      }
      progress(p);
    }
    if (active.empty()) break;
  }

  // Final losses with the kept (best-validation) weights.
  std::vector<double> train_loss(k), test_loss(k), test_acc(k);
  for_models(all, [&](int64_t i, fused::Workspace& ws) {
    const float* w = &best[i * stride];
    train_loss[i] = static_cast<float>(fused::Evaluate(net, w, x_of(train_sets, i), y_of(train_sets, i), nullptr,
                                                       n_train, ws).loss / static_cast<double>(n_train));
    if (test_set) {
      const fused::LossSum s = fused::Evaluate(net, w, test_set->x.data(), test_set->y.data(), nullptr,
                                               test_set->n, ws);
      test_loss[i] = static_cast<float>(s.loss / static_cast<double>(test_set->n));
      test_acc[i] = static_cast<float>(static_cast<double>(s.correct) / static_cast<double>(test_set->n));
    }
  });
  std::vector<TrainedModel> result(k);
  for (int64_t i = 0; i < k; ++i) {
    result[i].plan = req.models[i];
    result[i].train_loss = train_loss[i];
    result[i].validation_loss = best_val[i];
    result[i].steps = stopped_at[i];
    if (test_set) {
      result[i].test_loss = test_loss[i];
      if (classify) result[i].test_accuracy = test_acc[i];
    }
    for (int l = 0; l < net.layers(); ++l) {
      LayerWeights lw;
      lw.in = net.widths[l];
      lw.out = net.widths[l + 1];
      const float* w = &best[i * stride + net.w_offset[l]];
      const float* b = &best[i * stride + net.b_offset[l]];
      lw.weight.assign(w, w + int64_t{lw.out} * lw.in);
      lw.bias.assign(b, b + lw.out);
      result[i].layers.push_back(std::move(lw));
    }
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<TrainedModel>> TrainEnsemble(const TrainRequest& req,
                                                        const ProgressFn& progress,
                                                        const CancelFn& cancel) {
  RETURN_IF_ERROR(req.spec.Validate());
  RETURN_IF_ERROR(ValidateTrainConfig(req.config));
  if (req.task == nullptr) return absl::InvalidArgumentError("no task given");
  if (req.models.empty()) return absl::InvalidArgumentError("no models to train");
  if (req.train_examples < 1 || req.validation_examples < 1) {
    return absl::InvalidArgumentError("train_examples and validation_examples must be >= 1");
  }
  double last_batch_loss = 0.0;
  if (req.spec.input_dim != req.task->input_dim() ||
      req.spec.output_dim != req.task->output_dim()) {
    return absl::InvalidArgumentError("network input/output dims do not match the task");
  }
  for (const ModelPlan& p : req.models) RETURN_IF_ERROR(req.task->ValidateLambda(p.lambda));

  std::vector<Dataset> train_sets, val_sets;  // per model, or one shared
  std::optional<Dataset> test_set;
  if (req.task->SharedData()) {
    ASSIGN_OR_RETURN(Dataset tr, req.task->Data(DataSplit::kTrain, 0, 0.0, 0, 0));
    ASSIGN_OR_RETURN(Dataset va, req.task->Data(DataSplit::kValidation, 0, 0.0, 0, 0));
    train_sets.push_back(std::move(tr));
    val_sets.push_back(std::move(va));
    absl::StatusOr<Dataset> te = req.task->Data(DataSplit::kTest, 0, 0.0, 0, 0);
    if (te.ok()) test_set = *std::move(te);
  } else {
    for (const ModelPlan& p : req.models) {
      if (p.variant < 0 || p.variant >= req.task->variants()) {
        return absl::InvalidArgumentError(absl::StrCat("variant ", p.variant, " out of range"));
      }
      ASSIGN_OR_RETURN(Dataset tr, req.task->Data(DataSplit::kTrain, p.variant, p.lambda,
                                                  static_cast<uint64_t>(p.seed), req.train_examples));
      ASSIGN_OR_RETURN(Dataset va, req.task->Data(DataSplit::kValidation, p.variant, p.lambda,
                                                  static_cast<uint64_t>(p.seed),
                                                  req.validation_examples));
      train_sets.push_back(std::move(tr));
      val_sets.push_back(std::move(va));
    }
  }
  if (train_sets.front().n < 1 || val_sets.front().n < 1) {
    return absl::InvalidArgumentError("the task's training or validation set is empty");
  }

  return GuardTorch("training", [&]() -> absl::StatusOr<std::vector<TrainedModel>> {
    c10::InferenceMode no_autograd;  // gradients are computed by hand
    const at::Device device = ToAtDevice(req.device);
    if (device.is_cpu() && !req.reference_kernels && fused::Suits(req.spec)) {
      return TrainFused(req, train_sets, val_sets, test_set, progress, cancel);
    }
    const int64_t k = static_cast<int64_t>(req.models.size());
    const bool shared = req.task->SharedData();
    const bool classify = req.task->loss() == LossKind::kCrossEntropy;

    // Stacks datasets into [K or 1, N, dim] tensors on the device.
    auto stack = [&](const std::vector<Dataset>& sets, bool targets) {
      const Dataset& first = sets.front();
      const int64_t n = first.n;
      const int64_t dim = targets ? first.output_dim : first.input_dim;
      at::Tensor t = at::empty({static_cast<int64_t>(sets.size()), n, dim}, at::kFloat);
      for (size_t i = 0; i < sets.size(); ++i) {
        const std::vector<float>& v = targets ? sets[i].y : sets[i].x;
        std::copy(v.begin(), v.end(), t.data_ptr<float>() + i * n * dim);
      }
      return t.to(device);
    };
    at::Tensor xt = stack(train_sets, false), yt = stack(train_sets, true);
    at::Tensor xv = stack(val_sets, false), yv = stack(val_sets, true);
    train_sets.clear();
    val_sets.clear();
    const int64_t n_train = xt.size(1);
    // Shared data: a [1, N, dim] tensor seen by every model through a broadcast view.
    auto per_model = [&](const at::Tensor& t) { return shared ? t.expand({k, -1, -1}) : t; };

    std::vector<int64_t> seeds;
    for (const ModelPlan& p : req.models) seeds.push_back(p.seed);
    StackedMlp mlp = InitStacked(req.spec, seeds, device);
    const size_t layers = mlp.weight.size();
    // Parameters, gradients, Adam moments and the best weights each live in one flat buffer;
    // the network's per-layer tensors are views into `flat`, the backward pass writes straight
    // into views of `flat_grad`, and Adam and the best-weights copy are whole-buffer ops.
    const FlatLayout layout(mlp);
    const at::TensorOptions float_opts = at::TensorOptions().dtype(at::kFloat).device(device);
    at::Tensor flat = at::empty({layout.total}, float_opts);
    at::Tensor flat_grad = at::empty({layout.total}, float_opts);
    at::Tensor flat_mask = at::ones({layout.total}, float_opts);  // 0 for frozen models
    bool all_active = true;
    std::vector<at::Tensor> grads = layout.Views(flat_grad);
    {
      std::vector<at::Tensor> views = layout.Views(flat);
      for (size_t l = 0; l < layers; ++l) {
        views[2 * l].copy_(mlp.weight[l]);
        views[2 * l + 1].copy_(mlp.bias[l]);
        mlp.weight[l] = views[2 * l];
        mlp.bias[l] = views[2 * l + 1];
      }
    }
    FlatAdam adam(req.config.learning_rate, flat);

    // Per-model loss [K] of predictions against targets.
    auto loss_of = [&](const at::Tensor& pred, const at::Tensor& y) {
      if (classify) return -(y * at::log_softmax(pred, 2)).sum(2).mean(1);
      return PerModelMse(pred, y);
    };
    // Full-set loss in chunks of points, so large shared sets do not materialise K copies.
    auto full_loss = [&](const at::Tensor& x, const at::Tensor& y) {
      const int64_t n = x.size(1);
      const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, k * x.size(2)));
      at::Tensor total = at::zeros({k}, at::TensorOptions().dtype(at::kFloat).device(device));
      for (int64_t s = 0; s < n; s += chunk) {
        const int64_t m = std::min(chunk, n - s);
        at::Tensor xs = per_model(x.narrow(1, s, m));
        at::Tensor ys = per_model(y.narrow(1, s, m));
        total += loss_of(Forward(mlp, xs, nullptr), ys) * static_cast<double>(m);
      }
      return total / static_cast<double>(n);
    };

    at::Tensor best = flat.clone();
    at::Tensor best_val = at::full({k}, INFINITY, at::TensorOptions().dtype(at::kFloat).device(device));
    at::Tensor bad_evals = at::zeros({k}, at::TensorOptions().dtype(at::kInt).device(device));
    at::Tensor active = at::ones({k}, at::TensorOptions().dtype(at::kFloat).device(device));
    std::vector<int> stopped_at(k, req.config.steps);

    const int steps = req.config.steps;
    const int eval_every =
        req.config.eval_every > 0 ? req.config.eval_every : std::max(1, steps / 20);
    const int64_t batch =
        req.config.batch_size > 0 ? std::min<int64_t>(req.config.batch_size, n_train) : n_train;
    BatchOrder order(seeds.front(), n_train, batch);

    auto evaluate = [&](int step) {
      at::Tensor val = full_loss(xv, yv);
      at::Tensor improved = (val < best_val) & (active > 0);
      best_val = at::where(improved, val, best_val);
      layout.Spread(improved.to(at::kFloat), adam.scratch);  // scratch is free between steps
      best = at::where(adam.scratch > 0, flat, best);
      if (req.config.early_stopping_patience > 0) {
        bad_evals = at::where(improved, at::zeros_like(bad_evals), bad_evals + (active > 0).to(at::kInt));
        at::Tensor still = (bad_evals < req.config.early_stopping_patience).to(at::kFloat) * active;
        at::Tensor newly = ((active > 0) & (still == 0)).cpu();
        for (int64_t i = 0; i < k; ++i) {
          if (newly[i].item<bool>()) stopped_at[i] = step;
        }
        active = still;
        all_active = active.min().item<float>() > 0;
        if (!all_active) layout.Spread(active, flat_mask);
      }
      if (progress) {
        at::Tensor bv = best_val.cpu();
        TrainProgress p;
        p.step = step;
        p.total_steps = steps;
        p.models_total = static_cast<int>(k);
        p.models_done = static_cast<int>(k - active.sum().item<double>());
        p.mean_train_loss = last_batch_loss;
        p.mean_validation_loss = bv.mean().item<double>();
        p.max_validation_loss = bv.max().item<double>();
        progress(p);
      }
    };

    for (int step = 1; step <= steps; ++step) {
      if (cancel && cancel()) return absl::CancelledError("training cancelled");
      at::Tensor xb = xt, yb = yt;
      if (batch < n_train) {
        at::Tensor idx = at::from_blob(const_cast<int64_t*>(order.Next()), {batch}, at::kLong).to(device);
        xb = xt.index_select(1, idx);
        yb = yt.index_select(1, idx);
      }
      xb = per_model(xb);
      yb = per_model(yb);
      Capture cap;
      at::Tensor pred = Forward(mlp, xb, &cap);
      at::Tensor dz = classify ? (at::softmax(pred, 2) - yb).mul_(1.0 / static_cast<double>(batch))
                               : (pred - yb).mul_(2.0 / static_cast<double>(batch * pred.size(2)));
      BackwardFromOutputInto(mlp, xb, cap, dz, grads);
      adam.Step(flat, flat_grad, all_active ? nullptr : &flat_mask, LrScale(req.config, step, steps));
      if (step % eval_every == 0 || step == steps) {
        if (progress) last_batch_loss = loss_of(pred, yb).mean().item<double>();
        evaluate(step);
        if (active.sum().item<double>() == 0) break;
      }
    }

    // Keep the best-validation weights and report final losses with them.
    {
      std::vector<at::Tensor> views = layout.Views(best);
      for (size_t l = 0; l < layers; ++l) {
        mlp.weight[l] = views[2 * l];
        mlp.bias[l] = views[2 * l + 1];
      }
    }
    at::Tensor train_loss = full_loss(xt, yt).cpu();
    at::Tensor val_loss = best_val.cpu();
    at::Tensor test_loss, test_acc;
    if (test_set) {
      at::Tensor xs = stack({*test_set}, false), ys = stack({*test_set}, true);
      test_loss = full_loss(xs, ys).cpu();
      at::Tensor pred = Forward(mlp, per_model(xs), nullptr);
      test_acc = (pred.argmax(2) == per_model(ys).argmax(2)).to(at::kFloat).mean(1).cpu();
    }
    std::vector<TrainedModel> result(k);
    for (int64_t i = 0; i < k; ++i) {
      result[i].plan = req.models[i];
      result[i].train_loss = train_loss[i].item<double>();
      result[i].validation_loss = val_loss[i].item<double>();
      result[i].steps = stopped_at[i];
      if (test_set) {
        result[i].test_loss = test_loss[i].item<double>();
        if (classify) result[i].test_accuracy = test_acc[i].item<double>();
      }
      result[i].layers = Unstack(mlp, i);
    }
    return result;
  });
}

}  // namespace gradzoo::core
