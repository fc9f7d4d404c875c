#include "core/tasks/task.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

std::shared_ptr<const Task> Mul2() {
  auto t = MakeTask(TaskConfig{});
  EXPECT_TRUE(t.ok());
  return *t;
}

TEST(Mul2Test, KnownValues) {
  auto task = Mul2();
  const float x[4] = {0.5f, 0.4f, 0.2f, 0.3f};
  float y[2];
  task->Evaluate(x, 1, 0.0, y);
  EXPECT_FLOAT_EQ(y[0], 0.2f);
  EXPECT_FLOAT_EQ(y[1], 0.06f);
  task->Evaluate(x, 1, 0.5, y);  // both outputs the same function
  EXPECT_FLOAT_EQ(y[0], y[1]);
  EXPECT_FLOAT_EQ(y[0], 0.13f);
  task->Evaluate(x, 1, 0.1, y);
  EXPECT_NEAR(y[0], 0.9 * 0.2 + 0.1 * 0.06, 1e-6);
  EXPECT_NEAR(y[1], 0.9 * 0.06 + 0.1 * 0.2, 1e-6);
}

// The exact gradient agrees with central finite differences of Evaluate. mul2 is bilinear, so
// the central difference is exact up to float rounding; tolerance 1e-4.
TEST(Mul2Test, ExactGradientMatchesFiniteDifferences) {
  auto task = Mul2();
  Dataset d = task->Sample(50, 0.3, 11, 0);
  std::vector<float> g(50 * 8);
  task->ExactGradient(d.x.data(), 50, 0.3, g.data());
  const double h = 1e-2;
  for (int p = 0; p < 50; ++p) {
    for (int i = 0; i < 4; ++i) {
      float xp[4], xm[4], yp[2], ym[2];
      std::copy(&d.x[p * 4], &d.x[p * 4] + 4, xp);
      std::copy(&d.x[p * 4], &d.x[p * 4] + 4, xm);
      xp[i] += h;
      xm[i] -= h;
      task->Evaluate(xp, 1, 0.3, yp);
      task->Evaluate(xm, 1, 0.3, ym);
      for (int o = 0; o < 2; ++o) {
        EXPECT_NEAR(g[p * 8 + o * 4 + i], (yp[o] - ym[o]) / (2 * h), 1e-4);
      }
    }
  }
}

TEST(Mul2Test, SamplingIsDeterministicAndInDomain) {
  auto task = Mul2();
  Dataset a = task->Sample(100, 0.2, 5, 1);
  Dataset b = task->Sample(100, 0.2, 5, 1);
  Dataset c = task->Sample(100, 0.2, 6, 1);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.y, b.y);
  EXPECT_NE(a.x, c.x);
  for (float v : a.x) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
  }
}

TEST(TaskRegistryTest, UnknownTaskListsKnownOnes) {
  TaskConfig c;
  c.name = "nope";
  EXPECT_THAT(MakeTask(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mul2")));
  EXPECT_THAT(Mul2()->ValidateLambda(1.5), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lambda")));
  EXPECT_FALSE(Mul2()->ValidateLambda(std::nan("")).ok());
}

}  // namespace
}  // namespace gradzoo::core
