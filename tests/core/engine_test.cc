#include "core/engine.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("engine_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    auto e = Engine::Create({dir_.string(), "cpu"});
    ASSERT_OK(e);
    engine_ = std::move(*e);
  }
  void TearDown() override {
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  static ZooSpec SmallSpec() {
    ZooSpec s;
    s.task.lambdas = {0.0, 0.5};
    s.task.train_examples = 512;
    s.task.validation_examples = 128;
    s.hidden = {16, 16};
    s.seeds = {1, 2};
    s.validation_seeds = {2};
    s.training.steps = 400;
    return s;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, TrainQueryReload) {
  int progress_calls = 0;
  ASSERT_OK_AND_ASSIGN(auto zoo, engine_->TrainZoo("demo", SmallSpec(),
                                                   [&](const TrainProgress&) { ++progress_calls; }, {}));
  EXPECT_GT(progress_calls, 0);
  ASSERT_EQ(zoo->models.size(), 4u);
  EXPECT_EQ(zoo->models[0].id, "m0000");
  EXPECT_EQ(zoo->models[3].lambda, 0.5);
  EXPECT_EQ(zoo->models[3].seed, 2);
  EXPECT_EQ(zoo->models[3].split, Split::kValidation);
  EXPECT_EQ(zoo->models[0].split, Split::kTrain);
  EXPECT_GT(zoo->stored_bytes, 0);

  FieldRequest fr;
  fr.zoo_id = "demo";
  fr.points.axes = {{0, 0, 1, 11}, {1, 0, 1, 11}};
  fr.compare_with_theory = true;
  ASSERT_OK_AND_ASSIGN(auto fields, engine_->ComputeGradientField(fr, {}));
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[0].points.size(), 121u * 4);
  for (const auto& f : fields) {
    EXPECT_EQ(f.field.n, 121);
    EXPECT_TRUE(f.field.has_theory);
    EXPECT_LT(f.field.summary.aggregate_relative_error, 0.5) << f.model.model_id;
  }

  // A new engine on the same directory serves the same zoo.
  engine_.reset();
  ASSERT_OK_AND_ASSIGN(engine_, Engine::Create({dir_.string(), "cpu"}));
  ASSERT_OK_AND_ASSIGN(auto again, engine_->GetZoo("demo"));
  ASSERT_EQ(again->models.size(), 4u);
  EXPECT_EQ(again->models[2].layers[1].weight, zoo->models[2].layers[1].weight);
  ASSERT_OK_AND_ASSIGN(auto fields2, engine_->ComputeGradientField(fr, {}));
  EXPECT_EQ(fields2[1].field.gradients, fields[1].field.gradients);
}

TEST_F(EngineTest, ErrorsAreSpecific) {
  EXPECT_THAT(engine_->GetZoo("nope"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("zoos/nope")));
  EXPECT_THAT(engine_->GetZoo("Bad_Id"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(engine_->DeleteZoo("nope"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  ZooSpec s = SmallSpec();
  s.task.name = "bogus";
  EXPECT_THAT(engine_->ValidateTraining("x", s), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bogus")));
  s = SmallSpec();
  s.validation_seeds = {99};
  EXPECT_THAT(engine_->ValidateTraining("x", s), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("99")));
  s = SmallSpec();
  s.seeds.resize(20000);
  for (size_t i = 0; i < s.seeds.size(); ++i) s.seeds[i] = static_cast<int64_t>(i);
  s.validation_seeds.clear();
  EXPECT_THAT(engine_->ValidateTraining("x", s), StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  s = SmallSpec();
  s.hidden = {4096, 4096, 4096};
  s.task.train_examples = 1000000;
  EXPECT_THAT(engine_->ValidateTraining("x", s), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("GiB")));

  FieldRequest fr;
  fr.models = {{"nope", "m0000"}};
  fr.points.axes = {{0, 0, 1, 2}};
  EXPECT_THAT(engine_->ComputeGradientField(fr, {}), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(EngineTest, DuplicateAndDelete) {
  ZooSpec s = SmallSpec();
  s.training.steps = 5;
  ASSERT_OK(engine_->TrainZoo("z", s, {}, {}));
  EXPECT_THAT(engine_->ValidateTraining("z", s), StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  FieldRequest fr;
  fr.zoo_id = "z";
  fr.points.axes = {{0, 0, 1, 1500}, {1, 0, 1, 1500}};  // 2.25M points x 4 models
  EXPECT_THAT(engine_->ValidateField(fr), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("models")));
  ASSERT_OK(engine_->DeleteZoo("z"));
  EXPECT_THAT(engine_->GetZoo("z"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  engine_.reset();
  ASSERT_OK_AND_ASSIGN(engine_, Engine::Create({dir_.string(), "cpu"}));
  EXPECT_TRUE(engine_->ListZoos().empty());
}

}  // namespace
}  // namespace gradzoo::core
