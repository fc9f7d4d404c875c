#include "core/util/runtime.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;

// LibTorch on Debian resolves sgemm_ through libblas.so.3; with libopenblas0-pthread installed
// the alternative points at OpenBLAS. The reference BLAS is ~30x slower: fail loudly.
TEST(RuntimeTest, LibTorchRunsOnOpenBlasNotTheReferenceBlas) {
  BlasInfo blas = DetectBlas();
  EXPECT_FALSE(blas.is_reference())
      << "LibTorch uses the reference BLAS at " << blas.library_path
      << "; install libopenblas0-pthread (scripts/setup.sh does)";
  EXPECT_NE(blas.name.find("openblas"), std::string::npos) << blas.name << " " << blas.library_path;
}

TEST(RuntimeTest, ResolveDevice) {
  ASSERT_OK_AND_ASSIGN(auto cpu, ResolveDevice("cpu"));
  EXPECT_EQ(cpu, "cpu");
  ASSERT_OK_AND_ASSIGN(auto a, ResolveDevice("auto"));
  EXPECT_TRUE(a == "cpu" || a == "cuda:0");
  EXPECT_THAT(ResolveDevice("tpu"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ResolveDevice("cuda:x"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  if (a == "cpu") {
    EXPECT_THAT(ResolveDevice("cuda:0"), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  }
}

}  // namespace
}  // namespace gradzoo::core
