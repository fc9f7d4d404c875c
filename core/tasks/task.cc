#include "core/tasks/task.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/random.h"

namespace gradzoo::core {

Dataset Task::Sample(int64_t n, double lambda, uint64_t seed, uint64_t stream) const {
  Dataset d;
  d.n = n;
  d.input_dim = input_dim();
  d.output_dim = output_dim();
  d.x.resize(static_cast<size_t>(n) * d.input_dim);
  d.y.resize(static_cast<size_t>(n) * d.output_dim);
  const auto domain = Domain();
  Rng rng = Rng::ForStream(seed, stream);
  for (int64_t p = 0; p < n; ++p) {
    for (int i = 0; i < d.input_dim; ++i) {
      d.x[p * d.input_dim + i] = static_cast<float>(rng.Uniform(domain[i].first, domain[i].second));
    }
  }
  Evaluate(d.x.data(), n, lambda, d.y.data());
  return d;
}

namespace {

// y1 = (1-l) x1 x2 + l x3 x4,  y2 = (1-l) x3 x4 + l x1 x2 on [0,1]^4 (see task.h).
class Mul2Task final : public Task {
 public:
  const std::string& name() const override { return name_; }
  int input_dim() const override { return 4; }
  int output_dim() const override { return 2; }
  std::vector<std::pair<double, double>> Domain() const override {
    return std::vector<std::pair<double, double>>(4, {0.0, 1.0});
  }
  absl::Status ValidateLambda(double lambda) const override {
    if (!(lambda >= 0.0 && lambda <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mul2 lambda must be in [0, 1] (0 = independent tasks, 0.5 = equal "
                       "outputs), got ",
                       lambda));
    }
    return absl::OkStatus();
  }
  void Evaluate(const float* x, int64_t n, double lambda, float* y) const override {
    const double l = lambda;
    for (int64_t p = 0; p < n; ++p) {
      const float* v = x + p * 4;
      const double a = double{v[0]} * v[1];
      const double b = double{v[2]} * v[3];
      y[p * 2 + 0] = static_cast<float>((1 - l) * a + l * b);
      y[p * 2 + 1] = static_cast<float>((1 - l) * b + l * a);
    }
  }
  bool HasExactGradient() const override { return true; }
  void ExactGradient(const float* x, int64_t n, double lambda, float* grad) const override {
    const float l = static_cast<float>(lambda);
    const float m = 1.0f - l;
    for (int64_t p = 0; p < n; ++p) {
      const float* v = x + p * 4;
      float* g = grad + p * 8;
      g[0] = m * v[1];
      g[1] = m * v[0];
      g[2] = l * v[3];
      g[3] = l * v[2];
      g[4] = l * v[1];
      g[5] = l * v[0];
      g[6] = m * v[3];
      g[7] = m * v[2];
    }
  }

 private:
  const std::string name_ = "mul2";
};

}  // namespace

std::vector<std::string> TaskNames() { return {"mul2"}; }

absl::StatusOr<std::shared_ptr<const Task>> MakeTask(const TaskConfig& config) {
  if (config.name == "mul2") return std::make_shared<const Mul2Task>();
  return absl::InvalidArgumentError(absl::StrCat("task.name \"", config.name.substr(0, 64),
                                                 "\" is unknown; known tasks: ",
                                                 absl::StrJoin(TaskNames(), ", ")));
}

}  // namespace gradzoo::core
