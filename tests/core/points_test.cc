#include "core/grad/points.h"

#include <gtest/gtest.h>

#include <chrono>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

TEST(PointsTest, GridOrderFirstAxisOutermost) {
  PointSpec s;
  s.axes = {{0, 0.0, 1.0, 3}, {2, -1.0, 1.0, 2}};
  s.fixed_values = {9, 8, 7};
  ASSERT_OK_AND_ASSIGN(auto pts, MakePoints(s, 3, 100));
  ASSERT_EQ(pts.size(), 6u * 3);
  const std::vector<float> expect = {0, 8, -1, 0, 8, 1, 0.5, 8, -1, 0.5, 8, 1, 1, 8, -1, 1, 8, 1};
  EXPECT_EQ(pts, expect);
}

TEST(PointsTest, DefaultsFixedInputsToHalfAndSingleStep) {
  PointSpec s;
  s.axes = {{1, 0.25, 0.75, 1}};
  ASSERT_OK_AND_ASSIGN(auto pts, MakePoints(s, 2, 10));
  EXPECT_EQ(pts, (std::vector<float>{0.5f, 0.25f}));
}

TEST(PointsTest, ExplicitPointsValidated) {
  PointSpec s;
  s.explicit_n = 2;
  s.explicit_points = {1, 2, 3, 4};
  ASSERT_OK_AND_ASSIGN(auto n, CountPoints(s, 2, 10));
  EXPECT_EQ(n, 2);
  EXPECT_THAT(CountPoints(s, 3, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[N, 3]")));
  s.explicit_points[1] = std::nanf("");
  EXPECT_THAT(CountPoints(s, 2, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
}

TEST(PointsTest, MalformedGridsRejectedNamingTheField) {
  PointSpec s;
  EXPECT_FALSE(CountPoints(s, 2, 10).ok());
  s.axes = {{5, 0, 1, 2}};
  EXPECT_THAT(CountPoints(s, 2, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("axes[0].input_index")));
  s.axes = {{0, 0, 1, 2}, {0, 0, 1, 2}};
  EXPECT_THAT(CountPoints(s, 2, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("two axes")));
  s.axes = {{0, 1, 0, 2}};
  EXPECT_THAT(CountPoints(s, 2, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min <= max")));
  s.axes = {{0, 0, 1, 0}};
  EXPECT_THAT(CountPoints(s, 2, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("steps")));
}

TEST(PointsTest, HugeGridRefusedArithmeticallyAndFast) {
  PointSpec s;
  s.axes = {{0, 0, 1, 1'000'000'000}, {1, 0, 1, 1'000'000'000}, {2, 0, 1, 1'000'000'000}};
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(MakePoints(s, 3, 4'000'000), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("limit")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace gradzoo::core
