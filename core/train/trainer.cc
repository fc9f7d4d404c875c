#include "core/train/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

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
  if (req.spec.input_dim != req.task->input_dim() ||
      req.spec.output_dim != req.task->output_dim()) {
    return absl::InvalidArgumentError("network input/output dims do not match the task");
  }
  for (const ModelPlan& p : req.models) RETURN_IF_ERROR(req.task->ValidateLambda(p.lambda));

  return GuardTorch("training", [&]() -> absl::StatusOr<std::vector<TrainedModel>> {
    c10::InferenceMode no_autograd;  // gradients are computed by hand
    const at::Device device = ToAtDevice(req.device);
    const int64_t k = static_cast<int64_t>(req.models.size());
    const int in = req.spec.input_dim, out = req.spec.output_dim;  // NOLINT
    const int64_t n_train = req.train_examples, n_val = req.validation_examples;

    // Data: [K, N, dim], each model from its own seed and lambda.
    at::Tensor xt = at::empty({k, n_train, in}, at::kFloat);
    at::Tensor yt = at::empty({k, n_train, out}, at::kFloat);
    at::Tensor xv = at::empty({k, n_val, in}, at::kFloat);
    at::Tensor yv = at::empty({k, n_val, out}, at::kFloat);
    std::vector<int64_t> seeds;
    for (int64_t i = 0; i < k; ++i) {
      const ModelPlan& p = req.models[i];
      seeds.push_back(p.seed);
      Dataset tr = req.task->Sample(n_train, p.lambda, p.seed, kTrainDataStream);
      Dataset va = req.task->Sample(n_val, p.lambda, p.seed, kValidationDataStream);
      std::copy(tr.x.begin(), tr.x.end(), xt.data_ptr<float>() + i * n_train * in);
      std::copy(tr.y.begin(), tr.y.end(), yt.data_ptr<float>() + i * n_train * out);
      std::copy(va.x.begin(), va.x.end(), xv.data_ptr<float>() + i * n_val * in);
      std::copy(va.y.begin(), va.y.end(), yv.data_ptr<float>() + i * n_val * out);
    }
    xt = xt.to(device);
    yt = yt.to(device);
    xv = xv.to(device);
    yv = yv.to(device);

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
      at::Tensor val = PerModelMse(Forward(mlp, xv, nullptr), yv);
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
        at::Tensor tr = PerModelMse(Forward(mlp, xt, nullptr), yt).cpu();
        at::Tensor bv = best_val.cpu();
        TrainProgress p;
        p.step = step;
        p.total_steps = steps;
        p.models_total = static_cast<int>(k);
        p.models_done = static_cast<int>(k - active.sum().item<double>());
        p.mean_train_loss = tr.mean().item<double>();
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
      Capture cap;
      at::Tensor pred = Forward(mlp, xb, &cap);
      std::vector<at::Tensor> grads = MseBackward(mlp, xb, yb, cap, pred);
      const double lr_scale =
          req.config.cosine_schedule
              ? 0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * (step - 1) / static_cast<double>(steps)))
              : 1.0;
      adam.Step(params, grads, active, lr_scale);
      if (step % eval_every == 0 || step == steps) {
        evaluate(step);
        if (active.sum().item<double>() == 0) break;
      }
    }

    // Keep the best-validation weights and report final losses with them.
    for (size_t l = 0; l < layers; ++l) {
      mlp.weight[l] = best_w[l];
      mlp.bias[l] = best_b[l];
    }
    at::Tensor train_loss = PerModelMse(Forward(mlp, xt, nullptr), yt).cpu();
    at::Tensor val_loss = best_val.cpu();
    std::vector<TrainedModel> result(k);
    for (int64_t i = 0; i < k; ++i) {
      result[i].plan = req.models[i];
      result[i].train_loss = train_loss[i].item<double>();
      result[i].validation_loss = val_loss[i].item<double>();
      result[i].steps = stopped_at[i];
      result[i].layers = Unstack(mlp, i);
    }
    return result;
  });
}

}  // namespace gradzoo::core
