#include "core/train/trainer.h"

#include <gtest/gtest.h>

#include <atomic>

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
