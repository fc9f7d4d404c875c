#include "server/convert.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ConvertTest, Names) {
  ASSERT_OK_AND_ASSIGN(auto id, ParseZooName("zoos/abc-1", "name"));
  EXPECT_EQ(id, "abc-1");
  ASSERT_OK_AND_ASSIGN(auto ref, ParseModelName("zoos/a/models/m0001", "name"));
  EXPECT_EQ(ref.zoo_id, "a");
  EXPECT_EQ(ref.model_id, "m0001");
  EXPECT_THAT(ParseZooName("abc", "name"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zoos/{zoo}")));
  EXPECT_FALSE(ParseModelName("zoos/a/models/", "name").ok());
  EXPECT_FALSE(ParseModelName("zoos/a", "name").ok());
  EXPECT_EQ(ModelName("a", "b"), "zoos/a/models/b");
}

TEST(ConvertTest, TensorsRoundTripAndAreChecked) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  v1::Tensor t;
  FloatTensorToProto({2, 3}, v.data(), &t);
  std::vector<int64_t> shape;
  ASSERT_OK_AND_ASSIGN(auto back, FloatTensorFromProto(t, "t", 100, &shape));
  EXPECT_EQ(back, v);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
  EXPECT_THAT(FloatTensorFromProto(t, "t", 5, &shape), StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  t.set_data("short");
  EXPECT_THAT(FloatTensorFromProto(t, "t", 100, &shape), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
  t.set_dtype(v1::D_TYPE_INT64);
  EXPECT_THAT(FloatTensorFromProto(t, "t", 100, &shape), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype")));
  // Overflowing shapes are refused arithmetically.
  v1::Tensor big;
  big.set_dtype(v1::D_TYPE_FLOAT32);
  for (int i = 0; i < 4; ++i) big.add_shape(int64_t{1} << 40);
  EXPECT_THAT(FloatTensorFromProto(big, "t", int64_t{1} << 30, &shape), StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  // float64 is accepted and narrowed.
  v1::Tensor d;
  d.set_dtype(v1::D_TYPE_FLOAT64);
  d.add_shape(1);
  double x = 0.25;
  d.set_data(std::string(reinterpret_cast<const char*>(&x), 8));
  ASSERT_OK_AND_ASSIGN(auto f, FloatTensorFromProto(d, "d", 10, &shape));
  EXPECT_EQ(f, std::vector<float>{0.25f});
}

TEST(ConvertTest, PageTokens) {
  ASSERT_OK_AND_ASSIGN(auto zero, ParsePageToken(""));
  EXPECT_EQ(zero, 0);
  ASSERT_OK_AND_ASSIGN(auto off, ParsePageToken(MakePageToken(42)));
  EXPECT_EQ(off, 42);
  EXPECT_FALSE(ParsePageToken("42").ok());
  EXPECT_FALSE(ParsePageToken("42.1").ok());
  EXPECT_FALSE(ParsePageToken("-1.0").ok());
  EXPECT_THAT(PageSize(-1, 50, 1000), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(*PageSize(0, 50, 1000), 50);
  EXPECT_EQ(*PageSize(5000, 50, 1000), 1000);
}

TEST(ConvertTest, SpecDefaultsAndEnums) {
  v1::ZooSpec p;
  ASSERT_OK_AND_ASSIGN(auto s, ZooSpecFromProto(p));
  EXPECT_EQ(s.task.name, "mul2");
  EXPECT_EQ(s.hidden, (std::vector<int>{32, 32}));
  EXPECT_EQ(s.activation, core::Activation::kRelu);
  EXPECT_EQ(s.training.steps, 2000);
  p.mutable_architecture()->set_activation(static_cast<v1::Activation>(99));
  EXPECT_THAT(ZooSpecFromProto(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("activation")));
  p.mutable_architecture()->set_activation(v1::ACTIVATION_TANH);
  p.mutable_task()->set_train_examples(-1);
  EXPECT_FALSE(ZooSpecFromProto(p).ok());
}

}  // namespace
}  // namespace gradzoo::server
