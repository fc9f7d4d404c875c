#include "core/train/trainer.h"

#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;

TrainRequest SmallMul2(const Task* task, std::vector<ModelPlan> models, int steps) {
  TrainRequest r;
  r.spec = MlpSpec{4, {16, 16}, 2, Activation::kRelu};
  r.task = task;
  r.models = std::move(models);
  r.train_examples = 512;
  r.validation_examples = 128;
  r.config.steps = steps;
  r.config.learning_rate = 1e-2;
  r.device = "cpu";
  return r;
}

std::shared_ptr<const Task> Mul2() { return *MakeTask(TaskConfig{}); }

TEST(TrainerTest, LearnsMul2) {
  auto task = Mul2();
  std::vector<TrainProgress> seen;
  ASSERT_OK_AND_ASSIGN(auto models,
                       TrainEnsemble(SmallMul2(task.get(), {{0, 0.0, 1}, {0, 0.3, 2}}, 600),
                                     [&](const TrainProgress& p) { seen.push_back(p); }, {}));
  ASSERT_EQ(models.size(), 2u);
  // Predicting the mean gives MSE ~ Var(x1 x2) = 7/144 - 1/16 ~ 0.0486; a trained net is far
  // below that.
  for (const auto& m : models) {
    EXPECT_LT(m.validation_loss, 2e-3);
    EXPECT_LT(m.train_loss, 2e-3);
    EXPECT_EQ(m.layers.size(), 3u);
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().step, 600);
  EXPECT_LT(seen.back().mean_validation_loss, seen.front().mean_validation_loss);
}

TEST(TrainerTest, DeterministicAndIndependentOfEnsembleMates) {
  auto task = Mul2();
  ASSERT_OK_AND_ASSIGN(auto a, TrainEnsemble(SmallMul2(task.get(), {{0, 0.1, 7}, {0, 0.2, 8}}, 50), {}, {}));
  ASSERT_OK_AND_ASSIGN(auto b, TrainEnsemble(SmallMul2(task.get(), {{0, 0.1, 7}, {0, 0.2, 8}}, 50), {}, {}));
  ASSERT_OK_AND_ASSIGN(auto alone, TrainEnsemble(SmallMul2(task.get(), {{0, 0.2, 8}}, 50), {}, {}));
  for (size_t l = 0; l < a[0].layers.size(); ++l) {
    EXPECT_EQ(a[0].layers[l].weight, b[0].layers[l].weight);
    EXPECT_EQ(a[1].layers[l].bias, b[1].layers[l].bias);
    for (size_t i = 0; i < a[1].layers[l].weight.size(); ++i) {
      EXPECT_NEAR(a[1].layers[l].weight[i], alone[0].layers[l].weight[i], 1e-5);
    }
  }
  EXPECT_NEAR(a[1].validation_loss, alone[0].validation_loss, 1e-6);
}

TEST(TrainerTest, MinibatchAndEarlyStopping) {
  auto task = Mul2();
  TrainRequest r = SmallMul2(task.get(), {{0, 0.0, 1}}, 4000);
  r.config.batch_size = 64;
  r.config.eval_every = 10;
  r.config.early_stopping_patience = 3;
  r.config.learning_rate = 0.2;  // unstable on purpose: validation stops improving quickly
  ASSERT_OK_AND_ASSIGN(auto models, TrainEnsemble(r, {}, {}));
  EXPECT_LT(models[0].steps, 4000);
  EXPECT_TRUE(std::isfinite(models[0].validation_loss));
}

TEST(TrainerTest, CancelStopsTraining) {
  auto task = Mul2();
  std::atomic<int> polls{0};
  auto result = TrainEnsemble(SmallMul2(task.get(), {{0, 0.0, 1}}, 100000), {},
                              [&] { return ++polls > 5; });
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_EQ(polls.load(), 6);
}

TEST(TrainerTest, SharedDatasetRegression) {
  // custom task: y = 2 x1 - x2 (one shared dataset, broadcast to every model).
  TaskConfig c{"custom"};
  c.custom_input_dim = 2;
  c.custom_output_dim = 1;
  for (int i = 0; i < 500; ++i) {
    const float a = (i % 25) / 25.0f, b = (i / 25) / 20.0f;
    c.custom_x.insert(c.custom_x.end(), {a, b});
    c.custom_y.push_back(2 * a - b);
  }
  ASSERT_OK_AND_ASSIGN(auto task, MakeTask(c));
  TrainRequest r;
  r.spec = MlpSpec{2, {8}, 1, Activation::kTanh};
  r.task = task.get();
  r.models = {{0, 0.0, 1}, {0, 0.0, 2}, {0, 0.0, 3}};
  r.config.steps = 400;
  r.config.batch_size = 64;
  ASSERT_OK_AND_ASSIGN(auto models, TrainEnsemble(r, {}, {}));
  for (const auto& m : models) EXPECT_LT(m.validation_loss, 1e-3);
  EXPECT_NE(models[0].layers[0].weight, models[1].layers[0].weight);  // seeds differ
  EXPECT_TRUE(std::isnan(models[0].test_accuracy));
}

// Largest |a - b| over every weight and bias of every model.
double MaxWeightDiff(const std::vector<TrainedModel>& a, const std::vector<TrainedModel>& b) {
  double d = 0;
  for (size_t m = 0; m < a.size(); ++m) {
    for (size_t l = 0; l < a[m].layers.size(); ++l) {
      for (size_t i = 0; i < a[m].layers[l].weight.size(); ++i) {
        d = std::max(d, std::abs(double{a[m].layers[l].weight[i]} - b[m].layers[l].weight[i]));
      }
      for (size_t i = 0; i < a[m].layers[l].bias.size(); ++i) {
        d = std::max(d, std::abs(double{a[m].layers[l].bias[i]} - b[m].layers[l].bias[i]));
      }
    }
  }
  return d;
}

// The fused CPU kernels (default on CPU) and the ATen batched path (what CUDA runs) train the
// same models: same data, start, minibatches and Adam, differing only in float rounding
// (measured: weights and losses agree to about 5e-7 after these runs; tolerances 1e-4).
void ExpectSameTraining(TrainRequest r, const char* what) {
  std::vector<TrainProgress> fused_progress, ref_progress;
  r.reference_kernels = false;
  ASSERT_OK_AND_ASSIGN(auto fused, TrainEnsemble(r, [&](const TrainProgress& p) { fused_progress.push_back(p); }, {}));
  r.reference_kernels = true;
  ASSERT_OK_AND_ASSIGN(auto ref, TrainEnsemble(r, [&](const TrainProgress& p) { ref_progress.push_back(p); }, {}));
  ASSERT_EQ(fused.size(), ref.size());
  for (size_t m = 0; m < fused.size(); ++m) {
    EXPECT_NEAR(fused[m].train_loss, ref[m].train_loss, 1e-4 * ref[m].train_loss) << what << " model " << m;
    EXPECT_NEAR(fused[m].validation_loss, ref[m].validation_loss, 1e-4 * ref[m].validation_loss)
        << what << " model " << m;
    EXPECT_EQ(fused[m].steps, ref[m].steps) << what << " model " << m;
    if (std::isnan(ref[m].test_accuracy)) {
      EXPECT_TRUE(std::isnan(fused[m].test_accuracy)) << what;
    } else {
      EXPECT_NEAR(fused[m].test_accuracy, ref[m].test_accuracy, 3e-4) << what;  // 3 of 10000
      EXPECT_NEAR(fused[m].test_loss, ref[m].test_loss, 1e-4 * ref[m].test_loss) << what;
    }
  }
  EXPECT_LT(MaxWeightDiff(fused, ref), 1e-4) << what;
  ASSERT_EQ(fused_progress.size(), ref_progress.size()) << what;
  for (size_t i = 0; i < ref_progress.size(); ++i) {
    EXPECT_EQ(fused_progress[i].step, ref_progress[i].step) << what;
    EXPECT_EQ(fused_progress[i].models_done, ref_progress[i].models_done) << what;
    EXPECT_NEAR(fused_progress[i].mean_train_loss, ref_progress[i].mean_train_loss,
                1e-4 * ref_progress[i].mean_train_loss) << what;
    EXPECT_NEAR(fused_progress[i].mean_validation_loss, ref_progress[i].mean_validation_loss,
                1e-4 * ref_progress[i].mean_validation_loss) << what;
  }
}

TEST(TrainerTest, FusedKernelsMatchReferencePath) {
  auto task = Mul2();
  TrainRequest r = SmallMul2(task.get(), {{0, 0.0, 1}, {0, 0.3, 2}, {0, 0.5, 3}}, 200);
  r.config.batch_size = 48;  // not a multiple of the SIMD width
  r.config.eval_every = 40;
  ExpectSameTraining(r, "mul2 relu minibatch cosine");

  r = SmallMul2(task.get(), {{0, 0.2, 4}, {0, 0.7, 5}}, 100);  // full batch: 512 rows, 2 chunks
  r.spec.activation = Activation::kGelu;
  r.spec.hidden = {7, 5};
  r.config.cosine_schedule = false;
  ExpectSameTraining(r, "mul2 gelu full batch");

  ASSERT_OK_AND_ASSIGN(auto subdiv, MakeTask(TaskConfig{"subdiv"}));
  TrainRequest s;
  s.spec = MlpSpec{3, {12}, 1, Activation::kTanh};
  s.task = subdiv.get();
  s.models = {{0, 0.0, 8}, {0, 0.0, 9}};
  s.train_examples = 300;
  s.validation_examples = 100;
  s.config.steps = 400;
  s.config.batch_size = 100;
  s.config.eval_every = 10;
  s.config.early_stopping_patience = 2;
  s.config.learning_rate = 0.1;
  ExpectSameTraining(s, "subdiv tanh early stopping");
}

TEST(TrainerTest, FusedKernelsMatchReferencePathOnFashionMnist) {
  // Shared dataset, cross-entropy, a test set with accuracy.
  ASSERT_OK_AND_ASSIGN(auto task, MakeTask(TaskConfig{"fashion-mnist"}));
  TrainRequest r;
  r.spec = MlpSpec{784, {16}, 10, Activation::kRelu};
  r.task = task.get();
  r.models = {{0, 0.0, 1}, {0, 0.0, 2}};
  r.config.steps = 60;
  r.config.batch_size = 64;
  r.config.eval_every = 60;
  ExpectSameTraining(r, "fashion-mnist");
}

TEST(TrainerTest, FusedResultsIgnoreThreadCountAndEnsembleMates) {
  auto task = Mul2();
  TrainRequest r = SmallMul2(task.get(), {{0, 0.1, 7}, {0, 0.2, 8}, {0, 0.4, 9}}, 80);
  r.config.batch_size = 32;
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto one = TrainEnsemble(r, {}, {});
  at::set_num_threads(2);
  auto two = TrainEnsemble(r, {}, {});
  at::set_num_threads(threads);
  ASSERT_OK(one.status());
  ASSERT_OK(two.status());
  r.models = {{0, 0.1, 7}, {0, 0.4, 9}};  // same first seed: same minibatch order
  ASSERT_OK_AND_ASSIGN(auto pair, TrainEnsemble(r, {}, {}));
  for (size_t l = 0; l < (*one)[0].layers.size(); ++l) {
    for (int m = 0; m < 3; ++m) {
      EXPECT_EQ((*one)[m].layers[l].weight, (*two)[m].layers[l].weight);
      EXPECT_EQ((*one)[m].layers[l].bias, (*two)[m].layers[l].bias);
    }
    EXPECT_EQ((*one)[0].layers[l].weight, pair[0].layers[l].weight);
    EXPECT_EQ((*one)[2].layers[l].weight, pair[1].layers[l].weight);
  }
  EXPECT_EQ((*one)[1].validation_loss, (*two)[1].validation_loss);
  EXPECT_EQ((*one)[2].train_loss, pair[1].train_loss);
}

TEST(TrainerTest, RejectsBadSettings) {
  auto task = Mul2();
  TrainRequest r = SmallMul2(task.get(), {{0, 0.0, 1}}, 10);
  r.config.learning_rate = -1;
  EXPECT_THAT(TrainEnsemble(r, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("learning_rate")));
  r = SmallMul2(task.get(), {{0, 2.0, 1}}, 10);
  EXPECT_THAT(TrainEnsemble(r, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("lambda")));
  r = SmallMul2(task.get(), {}, 10);
  EXPECT_FALSE(TrainEnsemble(r, {}, {}).ok());
}

}  // namespace
}  // namespace gradzoo::core
