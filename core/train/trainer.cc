#include "core/train/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/nn/mlp.h"
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

struct Adam {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<at::Tensor> m, v;
  int64_t t = 0;

  explicit Adam(double lr_in, const std::vector<at::Tensor>& params) : lr(lr_in) {
    for (const auto& p : params) {
      m.push_back(at::zeros_like(p));
      v.push_back(at::zeros_like(p));
    }
  }
  // p -= lr * mhat / (sqrt(vhat) + eps), masked per model by `active` ([K] float 0/1).
  void Step(std::vector<at::Tensor*>& params, const std::vector<at::Tensor>& grads,
            const at::Tensor& active, double lr_scale) {
    ++t;
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    const double step = lr * lr_scale / bc1;
    for (size_t i = 0; i < params.size(); ++i) {
      m[i].mul_(beta1).add_(grads[i], 1.0 - beta1);
      v[i].mul_(beta2).addcmul_(grads[i], grads[i], 1.0 - beta2);
      at::Tensor denom = (v[i] / bc2).sqrt_().add_(eps);
      at::Tensor update = m[i] / denom;
      update.mul_(active.view({-1, 1, 1}));
      params[i]->sub_(update, step);
    }
  }
};

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
    std::vector<at::Tensor*> params;
    std::vector<at::Tensor> param_values;
    for (size_t l = 0; l < layers; ++l) {
      params.push_back(&mlp.weight[l]);
      params.push_back(&mlp.bias[l]);
      param_values.push_back(mlp.weight[l]);
      param_values.push_back(mlp.bias[l]);
    }
    Adam adam(req.config.learning_rate, param_values);

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

    std::vector<at::Tensor> best_w, best_b;
    for (size_t l = 0; l < layers; ++l) {
      best_w.push_back(mlp.weight[l].clone());
      best_b.push_back(mlp.bias[l].clone());
    }
    at::Tensor best_val = at::full({k}, INFINITY, at::TensorOptions().dtype(at::kFloat).device(device));
    at::Tensor bad_evals = at::zeros({k}, at::TensorOptions().dtype(at::kInt).device(device));
    at::Tensor active = at::ones({k}, at::TensorOptions().dtype(at::kFloat).device(device));
    std::vector<int> stopped_at(k, req.config.steps);

    const int steps = req.config.steps;
    const int eval_every =
        req.config.eval_every > 0 ? req.config.eval_every : std::max(1, steps / 20);
    const int64_t batch =
        req.config.batch_size > 0 ? std::min<int64_t>(req.config.batch_size, n_train) : n_train;
    Rng batch_rng = Rng::ForStream(static_cast<uint64_t>(seeds.front()), kBatchStream);
    std::vector<int64_t> perm(n_train);
    for (int64_t i = 0; i < n_train; ++i) perm[i] = i;
    int64_t cursor = n_train;  // forces a shuffle at the first minibatch

    auto evaluate = [&](int step) {
      at::Tensor val = full_loss(xv, yv);
      at::Tensor improved = (val < best_val) & (active > 0);
      best_val = at::where(improved, val, best_val);
      for (size_t l = 0; l < layers; ++l) {
        best_w[l] = at::where(improved.view({-1, 1, 1}), mlp.weight[l], best_w[l]);
        best_b[l] = at::where(improved.view({-1, 1, 1}), mlp.bias[l], best_b[l]);
      }
      if (req.config.early_stopping_patience > 0) {
        bad_evals = at::where(improved, at::zeros_like(bad_evals), bad_evals + (active > 0).to(at::kInt));
        at::Tensor still = (bad_evals < req.config.early_stopping_patience).to(at::kFloat) * active;
        at::Tensor newly = ((active > 0) & (still == 0)).cpu();
        for (int64_t i = 0; i < k; ++i) {
          if (newly[i].item<bool>()) stopped_at[i] = step;
        }
        active = still;
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
        if (cursor + batch > n_train) {
          for (int64_t i = n_train - 1; i > 0; --i) {
            std::swap(perm[i], perm[static_cast<int64_t>(batch_rng.Uniform() * (i + 1))]);
          }
          cursor = 0;
        }
        at::Tensor idx = at::from_blob(perm.data() + cursor, {batch}, at::kLong).to(device);
        cursor += batch;
        xb = xt.index_select(1, idx);
        yb = yt.index_select(1, idx);
      }
      xb = per_model(xb);
      yb = per_model(yb);
      Capture cap;
      at::Tensor pred = Forward(mlp, xb, &cap);
      std::vector<at::Tensor> grads = classify ? CrossEntropyBackward(mlp, xb, yb, cap, pred)
                                               : MseBackward(mlp, xb, yb, cap, pred);
      const double lr_scale =
          req.config.cosine_schedule
              ? 0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * (step - 1) / static_cast<double>(steps)))
              : 1.0;
      adam.Step(params, grads, active, lr_scale);
      if (step % eval_every == 0 || step == steps) {
        if (progress) last_batch_loss = loss_of(pred, yb).mean().item<double>();
        evaluate(step);
        if (active.sum().item<double>() == 0) break;
      }
    }

    // Keep the best-validation weights and report final losses with them.
    for (size_t l = 0; l < layers; ++l) {
      mlp.weight[l] = best_w[l];
      mlp.bias[l] = best_b[l];
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
