#include "core/tasks/task.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

std::shared_ptr<const Task> Make(const std::string& name, TaskConfig c = TaskConfig{}) {
  c.name = name;
  auto t = MakeTask(c);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : nullptr;
}

TEST(Mul2Test, KnownValues) {
  auto task = Make("mul2");
  const float x[4] = {0.5f, 0.4f, 0.2f, 0.3f};
  float y[2];
  task->Evaluate(0, x, 1, 0.0, y);
  EXPECT_FLOAT_EQ(y[0], 0.2f);
  EXPECT_FLOAT_EQ(y[1], 0.06f);
  task->Evaluate(0, x, 1, 0.5, y);  // both outputs the same function
  EXPECT_FLOAT_EQ(y[0], y[1]);
  EXPECT_FLOAT_EQ(y[0], 0.13f);
  task->Evaluate(0, x, 1, 0.1, y);
  EXPECT_NEAR(y[0], 0.9 * 0.2 + 0.1 * 0.06, 1e-6);
  EXPECT_NEAR(y[1], 0.9 * 0.06 + 0.1 * 0.2, 1e-6);
}

TEST(TaskTest, ClosedFormValues) {
  float y;
  const float m[2] = {0.3f, 0.5f};
  Make("mul")->Evaluate(0, m, 1, 0, &y);
  EXPECT_FLOAT_EQ(y, 0.15f);
  const float g1[3] = {0.5f, 0.4f, 1.0f}, g0[3] = {0.5f, 0.4f, 0.0f};
  Make("gate")->Evaluate(0, g1, 1, 0, &y);
  EXPECT_FLOAT_EQ(y, 0.2f);
  Make("gate")->Evaluate(0, g0, 1, 0, &y);
  EXPECT_FLOAT_EQ(y, 0.0f);
  const float s[3] = {0.9f, 0.3f, 1.2f};
  Make("subdiv")->Evaluate(0, s, 1, 0, &y);
  EXPECT_NEAR(y, 0.5f, 1e-6);
}

// Exact gradients agree with central finite differences of Evaluate (float evaluation, h = 1e-2:
// exact for the bilinear tasks up to rounding; O(h^2) for subdiv and the polynomials).
TEST(TaskTest, ExactGradientsMatchFiniteDifferences) {
  TaskConfig pc;
  pc.families = 4;
  for (const std::string name : {"mul2", "mul", "gate", "subdiv", "poly1d"}) {
    SCOPED_TRACE(name);
    auto task = Make(name, pc);
    ASSERT_TRUE(task->HasExactGradient());
    const int in = task->input_dim(), out = task->output_dim();
    const double lambda = name == "mul2" ? 0.3 : 0.0;
    for (int variant = 0; variant < task->variants(); ++variant) {
      ASSERT_OK_AND_ASSIGN(Dataset d, task->Data(DataSplit::kTrain, variant, lambda, 11, 40));
      std::vector<float> g(40 * out * in);
      task->ExactGradient(variant, d.x.data(), 40, lambda, g.data());
      const double h = 1e-2;
      for (int p = 0; p < 40; ++p) {
        for (int i = 0; i < in; ++i) {
          std::vector<float> xp(d.x.begin() + p * in, d.x.begin() + (p + 1) * in), xm = xp;
          xp[i] += h;
          xm[i] -= h;
          std::vector<float> yp(out), ym(out);
          task->Evaluate(variant, xp.data(), 1, lambda, yp.data());
          task->Evaluate(variant, xm.data(), 1, lambda, ym.data());
          for (int o = 0; o < out; ++o) {
            const double fd = (yp[o] - ym[o]) / (2 * h);
            EXPECT_NEAR(g[(p * out + o) * in + i], fd, 2e-3 + 2e-3 * std::abs(fd));
          }
        }
      }
    }
  }
}

TEST(TaskTest, SamplingIsDeterministicAndInDomain) {
  auto task = Make("subdiv");
  ASSERT_OK_AND_ASSIGN(Dataset a, task->Data(DataSplit::kTrain, 0, 0, 5, 200));
  ASSERT_OK_AND_ASSIGN(Dataset b, task->Data(DataSplit::kTrain, 0, 0, 5, 200));
  ASSERT_OK_AND_ASSIGN(Dataset c, task->Data(DataSplit::kValidation, 0, 0, 5, 200));
  EXPECT_EQ(a.x, b.x);
  EXPECT_NE(a.x, c.x);
  for (int p = 0; p < 200; ++p) {
    EXPECT_GE(a.x[3 * p + 2], 0.5f);  // x3 kept away from 0
    EXPECT_LE(a.x[3 * p + 2], 1.5f);
  }
  ASSERT_OK_AND_ASSIGN(Dataset g, Make("gate")->Data(DataSplit::kTrain, 0, 0, 1, 400));
  int ones = 0;
  for (int p = 0; p < 400; ++p) {
    EXPECT_TRUE(g.x[3 * p + 2] == 0.0f || g.x[3 * p + 2] == 1.0f);
    ones += g.x[3 * p + 2] == 1.0f;
  }
  EXPECT_GT(ones, 150);
  EXPECT_LT(ones, 250);
}

double Rms(const Task& t, int a, int b) {
  double s = 0;
  for (int i = 0; i <= 200; ++i) {
    const float x = -1.0f + i / 100.0f;
    float ya, yb;
    t.Evaluate(a, &x, 1, 0, &ya);
    t.Evaluate(b, &x, 1, 0, &yb);
    s += (ya - yb) * (ya - yb);
  }
  return std::sqrt(s / 201);
}

TEST(Poly1dTest, FamiliesAreNormalisedDistinctAndReproducible) {
  TaskConfig c;
  c.families = 10;
  c.family_seed = 3;
  auto t = Make("poly1d", c);
  ASSERT_EQ(t->variants(), 10);
  EXPECT_EQ(t->VariantLabel(4), "poly1d-4");
  double min_d = 1e9, mean_d = 0;
  int pairs = 0;
  for (int a = 0; a < 10; ++a) {
    double mx = 0;
    for (int i = 0; i <= 2000; ++i) {
      const float x = -1.0f + i / 1000.0f;
      float y;
      t->Evaluate(a, &x, 1, 0, &y);
      mx = std::max(mx, std::abs(double{y}));
    }
    EXPECT_NEAR(mx, 1.0, 0.01);  // normalised to max |p| = 1 on [-1, 1]
    for (int b = a + 1; b < 10; ++b) {
      const double d = Rms(*t, a, b);
      min_d = std::min(min_d, d);
      mean_d += d;
      ++pairs;
    }
  }
  EXPECT_GE(min_d, 0.35);  // members really differ
  mean_d /= pairs;
  auto again = Make("poly1d", c);
  float x = 0.3f, y1, y2;
  t->Evaluate(7, &x, 1, 0, &y1);
  again->Evaluate(7, &x, 1, 0, &y2);
  EXPECT_EQ(y1, y2);
  // The similarity knob draws members towards one shared polynomial.
  c.similarity = 0.9;
  auto similar = Make("poly1d", c);
  double mean_s = 0;
  for (int a = 0; a < 10; ++a) {
    for (int b = a + 1; b < 10; ++b) mean_s += Rms(*similar, a, b);
  }
  EXPECT_LT(mean_s / pairs, 0.5 * mean_d);
  c.similarity = 1.0;
  c.name = "poly1d";
  EXPECT_THAT(MakeTask(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("similarity")));
}

void WriteIdx(const std::string& path, const std::vector<uint32_t>& dims,
              const std::vector<uint8_t>& data, bool gz) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<char>((d >> s) & 0xFF));
  }
  bytes.append(data.begin(), data.end());
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

TEST(IdxTest, ReadsPlainAndGzipAndRejectsMalformed) {
  const std::string dir = ::testing::TempDir() + "/idx_test";
  std::filesystem::create_directories(dir);
  WriteIdx(dir + "/a", {2, 3}, {1, 2, 3, 4, 5, 6}, false);
  WriteIdx(dir + "/b.gz", {2, 3}, {1, 2, 3, 4, 5, 6}, true);
  for (const char* f : {"/a", "/b.gz"}) {
    ASSERT_OK_AND_ASSIGN(IdxArray a, ReadIdx(dir + f, 1000));
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.data, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  }
  WriteIdx(dir + "/short", {2, 3}, {1, 2}, false);
  EXPECT_THAT(ReadIdx(dir + "/short", 1000), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
  WriteIdx(dir + "/huge", {100000, 100000, 100000}, {}, false);
  EXPECT_THAT(ReadIdx(dir + "/huge", 1000000), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceed")));
  EXPECT_THAT(ReadIdx(dir + "/missing", 10), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  std::filesystem::remove_all(dir);
}

TEST(DatasetTaskTest, FashionMnistFromTheDebianPackage) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTask(TaskConfig{"fashion-mnist"}));
  EXPECT_EQ(t->input_dim(), 784);
  EXPECT_EQ(t->output_dim(), 10);
  EXPECT_EQ(t->loss(), LossKind::kCrossEntropy);
  ASSERT_OK_AND_ASSIGN(Dataset tr, t->Data(DataSplit::kTrain, 0, 0, 0, 0));
  ASSERT_OK_AND_ASSIGN(Dataset va, t->Data(DataSplit::kValidation, 0, 0, 0, 0));
  ASSERT_OK_AND_ASSIGN(Dataset te, t->Data(DataSplit::kTest, 0, 0, 0, 0));
  EXPECT_EQ(tr.n, 55000);
  EXPECT_EQ(va.n, 5000);
  EXPECT_EQ(te.n, 10000);
  float row_sum = 0;
  for (int o = 0; o < 10; ++o) row_sum += te.y[o];
  EXPECT_EQ(row_sum, 1.0f);  // one-hot
  // Pixels / 255: in [0, 1] with the training set's known mean 0.2860.
  double sum = 0;
  for (float v : tr.x) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
    sum += v;
  }
  EXPECT_NEAR(sum / tr.x.size(), 0.2860, 0.002);
  TaskConfig missing{"fashion-mnist"};
  missing.data_path = "/nonexistent";
  EXPECT_THAT(MakeTask(missing, false), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("data_path")));
}

TEST(DatasetTaskTest, CustomSplitsAndValidates) {
  TaskConfig c{"custom"};
  c.custom_input_dim = 2;
  c.custom_output_dim = 1;
  for (int i = 0; i < 10; ++i) {
    c.custom_x.push_back(i);
    c.custom_x.push_back(-i);
    c.custom_y.push_back(2 * i);
  }
  ASSERT_OK_AND_ASSIGN(auto t, MakeTask(c));
  ASSERT_OK_AND_ASSIGN(Dataset tr, t->Data(DataSplit::kTrain, 0, 0, 0, 0));
  ASSERT_OK_AND_ASSIGN(Dataset va, t->Data(DataSplit::kValidation, 0, 0, 0, 0));
  EXPECT_EQ(tr.n, 8);
  EXPECT_EQ(va.n, 2);
  EXPECT_EQ(va.y, (std::vector<float>{16, 18}));
  EXPECT_FALSE(t->HasExactGradient());
  c.custom_y.pop_back();
  EXPECT_THAT(MakeTask(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows")));
}

TEST(TaskRegistryTest, UnknownTaskListsKnownOnes) {
  TaskConfig c;
  c.name = "nope";
  EXPECT_THAT(MakeTask(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("poly1d")));
  EXPECT_THAT(Make("mul2")->ValidateLambda(1.5), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lambda")));
  EXPECT_FALSE(Make("mul2")->ValidateLambda(std::nan("")).ok());
  EXPECT_THAT(Make("gate")->ValidateLambda(0.2), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no soft mixing")));
}

}  // namespace
}  // namespace gradzoo::core
