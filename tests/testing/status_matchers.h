// gtest helpers for absl::Status / StatusOr.
//
//   EXPECT_OK(status_or_statusor);
//   ASSERT_OK_AND_ASSIGN(auto v, MakeValue());
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, HasSubstr("zoo")));
#ifndef GRADZOO_TESTS_TESTING_STATUS_MATCHERS_H_
#define GRADZOO_TESTS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gradzoo::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = ::gradzoo::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

}  // namespace gradzoo::testing

#define EXPECT_OK(expr) EXPECT_TRUE(::gradzoo::testing::GetStatus(expr).ok()) \
    << ::gradzoo::testing::GetStatus(expr).ToString()
#define ASSERT_OK(expr) ASSERT_TRUE(::gradzoo::testing::GetStatus(expr).ok()) \
    << ::gradzoo::testing::GetStatus(expr).ToString()

#define GRADZOO_TEST_CONCAT_INNER_(a, b) a##b
#define GRADZOO_TEST_CONCAT_(a, b) GRADZOO_TEST_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                       \
  auto GRADZOO_TEST_CONCAT_(statusor_, __LINE__) = (rexpr);                     \
  ASSERT_TRUE(GRADZOO_TEST_CONCAT_(statusor_, __LINE__).ok())                   \
      << GRADZOO_TEST_CONCAT_(statusor_, __LINE__).status().ToString();        \
  lhs = std::move(GRADZOO_TEST_CONCAT_(statusor_, __LINE__)).value()

#endif  // GRADZOO_TESTS_TESTING_STATUS_MATCHERS_H_
