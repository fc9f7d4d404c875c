// Seed 001's result, end to end through the Engine: a mul2 zoo with soft mixing lambda in
// {0, 0.1, ..., 0.5} x 5 seeds (4-32-32-2 ReLU, trained to validation MSE < 3e-4) scored with
// the default `functional` method on each model's validation inputs. Every hidden layer's mean
// score is >= 0.6 at lambda = 0 and <= 0.1 at lambda = 0.5, and the Spearman correlation of
// score with lambda is <= -0.85. Also: the engine-level queries (points, sizes, errors).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "core/analysis/analysis.h"
#include "core/engine.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

// The seed 001 zoo: settings found to train all 30 models below 3e-4 validation MSE (worst
// ~1.6e-4) in ~16 s on 2 shared cores (one stacked program).
ZooSpec Seed001Spec() {
  ZooSpec s;
  s.task.name = "mul2";
  s.task.lambdas = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5};
  s.task.train_examples = 4096;
  s.task.validation_examples = 512;
  s.hidden = {32, 32};
  s.activation = Activation::kRelu;
  s.seeds = {1, 2, 3, 4, 5};
  s.training.steps = 1000;
  s.training.batch_size = 256;
  s.training.learning_rate = 4e-3;
  s.training.cosine_schedule = true;
  return s;
}

class AnalysisZooTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                     ("analysis_zoo_" + std::to_string(::getpid())));
    std::filesystem::remove_all(*dir_);
    auto e = Engine::Create({dir_->string(), "cpu"});
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = e->release();
    const auto t0 = std::chrono::steady_clock::now();
    auto zoo = engine_->TrainZoo("seed001", Seed001Spec(), {}, {});
    ASSERT_TRUE(zoo.ok()) << zoo.status();
    train_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static Engine* engine_;
  static std::filesystem::path* dir_;
  static double train_seconds_;
};
Engine* AnalysisZooTest::engine_ = nullptr;
std::filesystem::path* AnalysisZooTest::dir_ = nullptr;
double AnalysisZooTest::train_seconds_ = 0.0;

TEST_F(AnalysisZooTest, Seed001LambdaSweep) {
  ASSERT_NE(engine_, nullptr);
  ASSERT_OK_AND_ASSIGN(auto zoo, engine_->GetZoo("seed001"));
  ASSERT_EQ(zoo->models.size(), 30u);
  double worst = 0.0;
  for (const ModelRecord& m : zoo->models) worst = std::max(worst, m.validation_loss);
  std::printf("trained 30 models in %.1f s; worst validation MSE %.2e\n", train_seconds_, worst);
  EXPECT_LT(worst, 3e-4);

  ZooOrthogonalityQuery q;
  q.zoo_id = "seed001";  // default: every hidden layer (post), functional, validation inputs
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(ZooOrthogonalityResult r, ScoreZooOrthogonality(*engine_, q, {}));
  const double score_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.layers.size(), 2u);
  ASSERT_EQ(r.settings.size(), 12u);
  EXPECT_EQ(r.models_scored, 30);
  std::printf("scored in %.2f s\n%-6s %-7s %s\n", score_seconds, "layer", "lambda", "mean  stddev  scores");
  for (size_t li = 0; li < r.layers.size(); ++li) {
    for (const SettingDistribution& d : r.settings) {
      if (!(d.layer == r.layers[li])) continue;
      std::string scores;
      for (double s : d.scores) scores += absl::StrFormat(" %.3f", s);
      std::printf("h%-5d %-7.1f %.3f %.3f %s\n", d.layer.index, d.lambda, d.mean, d.stddev, scores.c_str());
      EXPECT_EQ(d.degenerate_count, 0);
      EXPECT_EQ(d.models.size(), 5u);
      if (d.lambda == 0.0) {
        EXPECT_GE(d.mean, 0.6) << "layer " << d.layer.index;
      }
      if (d.lambda == 0.5) {
        EXPECT_LE(d.mean, 0.1) << "layer " << d.layer.index;
      }
    }
    std::printf("h%zu spearman(score, lambda) = %.3f over models, %.3f over means\n",
                li + 1, r.spearman_with_lambda[li], r.spearman_of_means[li]);
    EXPECT_LE(r.spearman_with_lambda[li], -0.85);
    EXPECT_LE(r.spearman_of_means[li], -0.85);
  }
}

TEST_F(AnalysisZooTest, SingleModelQueriesAgreeWithTheZooCall) {
  ASSERT_NE(engine_, nullptr);
  ZooOrthogonalityQuery zq;
  zq.zoo_id = "seed001";
  zq.layers = {{1, LayerSide::kPre}};
  zq.options.method = OrthogonalityMethod::kCos;
  ASSERT_OK_AND_ASSIGN(ZooOrthogonalityResult zr, ScoreZooOrthogonality(*engine_, zq, {}));
  const SettingDistribution& first = zr.settings.front();  // lambda 0
  ModelOrthogonalityQuery q;
  q.model = {"seed001", first.models[2].model_id};
  q.layer = {1, LayerSide::kPre};
  q.options.method = OrthogonalityMethod::kCos;
  ASSERT_OK_AND_ASSIGN(OrthogonalityScore s, ScoreModelOrthogonality(*engine_, q, {}));
  EXPECT_DOUBLE_EQ(s.score, first.models[2].score.score);
  EXPECT_EQ(s.points_used + s.degeneracy.points_excluded, 512);

  // Explicit shared points.
  q.points.validation = false;
  q.points.spec.axes = {{0, 0, 1, 11}, {2, 0, 1, 11}};
  ASSERT_OK_AND_ASSIGN(OrthogonalityScore g, ScoreModelOrthogonality(*engine_, q, {}));
  EXPECT_EQ(g.points_used + g.degeneracy.points_excluded, 121);

  // Errors: unknown model, output layer, oversize grids, cancellation.
  q.model.model_id = "m9999";
  EXPECT_THAT(ScoreModelOrthogonality(*engine_, q, {}), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  q.model.model_id = first.models[0].model_id;
  q.layer = {3, LayerSide::kPost};
  EXPECT_THAT(ScoreModelOrthogonality(*engine_, q, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer.index")));
  q.layer = {1, LayerSide::kPost};
  q.points.spec.axes = {{0, 0, 1, 3000}, {1, 0, 1, 3000}};
  EXPECT_THAT(ValidateModelOrthogonality(*engine_, q),
              StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  zq.points.validation = false;
  zq.points.spec.axes = {{0, 0, 1, 400}, {1, 0, 1, 400}};  // 160k points x 30 models
  EXPECT_THAT(ValidateZooOrthogonality(*engine_, zq),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("models")));
  zq.points.validation = true;
  EXPECT_THAT(ScoreZooOrthogonality(*engine_, zq, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

}  // namespace
}  // namespace gradzoo::core
