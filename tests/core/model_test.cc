#include "core/model.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

TEST(MlpSpecTest, WidthsAndParamCount) {
  MlpSpec s{4, {32, 32}, 2, Activation::kRelu};
  EXPECT_EQ(s.Widths(), (std::vector<int>{4, 32, 32, 2}));
  EXPECT_EQ(s.NumLayers(), 3);
  EXPECT_EQ(s.ParamCount(), 32 * 5 + 32 * 33 + 2 * 33);
  EXPECT_OK(s.Validate());
}

TEST(MlpSpecTest, RejectsBadWidthsNamingTheField) {
  MlpSpec s{4, {32, 0}, 2, Activation::kRelu};
  EXPECT_THAT(s.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hidden_widths[1]")));
  s.hidden = std::vector<int>(17, 4);
  EXPECT_THAT(s.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16")));
  s = MlpSpec{0, {}, 1, Activation::kRelu};
  EXPECT_THAT(s.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("input_dim")));
}

TEST(ValidateWeightsTest, ChecksShapesAndFiniteness) {
  MlpSpec s{2, {3}, 1, Activation::kRelu};
  std::vector<LayerWeights> layers = {{3, 2, std::vector<float>(6, 0.1f), std::vector<float>(3)},
                                      {1, 3, std::vector<float>(3, 0.1f), std::vector<float>(1)}};
  EXPECT_OK(ValidateWeights(s, layers));
  layers[1].weight[2] = std::nanf("");
  EXPECT_THAT(ValidateWeights(s, layers),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layers[1].weight")));
  layers[1].weight.pop_back();
  EXPECT_THAT(ValidateWeights(s, layers), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layers[1]")));
  layers.pop_back();
  EXPECT_THAT(ValidateWeights(s, layers), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("implies 2")));
}

TEST(ResourceIdTest, AcceptsAndRejects) {
  EXPECT_OK(ValidateResourceId("mul2-demo", "id"));
  EXPECT_OK(ValidateResourceId("a", "id"));
  for (const char* bad : {"", "-a", "a-", "A", "a_b", "a/b", "zoos/x"}) {
    EXPECT_THAT(ValidateResourceId(bad, "zoo_id"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zoo_id")))
        << bad;
  }
  EXPECT_FALSE(ValidateResourceId(std::string(64, 'a'), "id").ok());
}

}  // namespace
}  // namespace gradzoo::core
