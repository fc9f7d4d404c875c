#include "core/tasks/task.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"

namespace gradzoo::core {

absl::Status Task::ValidateLambda(double lambda) const {
  if (lambda != 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task ", name(), " has no soft mixing: task.lambdas must be [0], got ", lambda));
  }
  return absl::OkStatus();
}

void Task::SamplePoint(Rng& rng, float* x) const {
  const auto domain = Domain();
  for (size_t i = 0; i < domain.size(); ++i) {
    x[i] = static_cast<float>(rng.Uniform(domain[i].first, domain[i].second));
  }
}

absl::StatusOr<Dataset> Task::Data(DataSplit split, int variant, double lambda, uint64_t seed,
                                   int64_t n) const {
  if (split == DataSplit::kTest) {
    return absl::NotFoundError(absl::StrCat("task ", name(), " has no test set"));
  }
  Dataset d;
  d.n = n;
  d.input_dim = input_dim();
  d.output_dim = output_dim();
  d.x.resize(static_cast<size_t>(n) * d.input_dim);
  d.y.resize(static_cast<size_t>(n) * d.output_dim);
  Rng rng = Rng::ForStream(seed, split == DataSplit::kTrain ? kTrainDataStream
                                                             : kValidationDataStream);
  for (int64_t p = 0; p < n; ++p) SamplePoint(rng, d.x.data() + p * d.input_dim);
  Evaluate(variant, d.x.data(), n, lambda, d.y.data());
  return d;
}

namespace {

// ---------------------------------------------------------------------------------------------
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
  void Evaluate(int, const float* x, int64_t n, double l, float* y) const override {
    for (int64_t p = 0; p < n; ++p) {
      const float* v = x + p * 4;
      const double a = double{v[0]} * v[1];
      const double b = double{v[2]} * v[3];
      y[p * 2 + 0] = static_cast<float>((1 - l) * a + l * b);
      y[p * 2 + 1] = static_cast<float>((1 - l) * b + l * a);
    }
  }
  bool HasExactGradient() const override { return true; }
  void ExactGradient(int, const float* x, int64_t n, double lambda, float* grad) const override {
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

// ---------------------------------------------------------------------------------------------
class MulTask final : public Task {
 public:
  const std::string& name() const override { return name_; }
  int input_dim() const override { return 2; }
  int output_dim() const override { return 1; }
  std::vector<std::pair<double, double>> Domain() const override {
    return {{0.0, 1.0}, {0.0, 1.0}};
  }
  void Evaluate(int, const float* x, int64_t n, double, float* y) const override {
    for (int64_t p = 0; p < n; ++p) y[p] = x[2 * p] * x[2 * p + 1];
  }
  bool HasExactGradient() const override { return true; }
  void ExactGradient(int, const float* x, int64_t n, double, float* g) const override {
    for (int64_t p = 0; p < n; ++p) {
      g[2 * p] = x[2 * p + 1];
      g[2 * p + 1] = x[2 * p];
    }
  }

 private:
  const std::string name_ = "mul";
};

// ---------------------------------------------------------------------------------------------
class GateTask final : public Task {
 public:
  const std::string& name() const override { return name_; }
  int input_dim() const override { return 3; }
  int output_dim() const override { return 1; }
  std::vector<std::pair<double, double>> Domain() const override {
    return {{0.0, 1.0}, {0.0, 1.0}, {0.0, 1.0}};
  }
  void SamplePoint(Rng& rng, float* x) const override {
    x[0] = static_cast<float>(rng.Uniform());
    x[1] = static_cast<float>(rng.Uniform());
    x[2] = rng.Uniform() < 0.5 ? 0.0f : 1.0f;
  }
  void Evaluate(int, const float* x, int64_t n, double, float* y) const override {
    for (int64_t p = 0; p < n; ++p) y[p] = x[3 * p + 2] * x[3 * p] * x[3 * p + 1];
  }
  bool HasExactGradient() const override { return true; }
  void ExactGradient(int, const float* x, int64_t n, double, float* g) const override {
    for (int64_t p = 0; p < n; ++p) {
      const float* v = x + 3 * p;
      g[3 * p] = v[2] * v[1];
      g[3 * p + 1] = v[2] * v[0];
      g[3 * p + 2] = v[0] * v[1];
    }
  }

 private:
  const std::string name_ = "gate";
};

// ---------------------------------------------------------------------------------------------
class SubdivTask final : public Task {
 public:
  const std::string& name() const override { return name_; }
  int input_dim() const override { return 3; }
  int output_dim() const override { return 1; }
  std::vector<std::pair<double, double>> Domain() const override {
    return {{0.0, 1.0}, {0.0, 1.0}, {0.5, 1.5}};
  }
  void Evaluate(int, const float* x, int64_t n, double, float* y) const override {
    for (int64_t p = 0; p < n; ++p) {
      const float* v = x + 3 * p;
      y[p] = (v[0] - v[1]) / v[2];
    }
  }
  bool HasExactGradient() const override { return true; }
  void ExactGradient(int, const float* x, int64_t n, double, float* g) const override {
    for (int64_t p = 0; p < n; ++p) {
      const float* v = x + 3 * p;
      g[3 * p] = 1.0f / v[2];
      g[3 * p + 1] = -1.0f / v[2];
      g[3 * p + 2] = -(v[0] - v[1]) / (v[2] * v[2]);
    }
  }

 private:
  const std::string name_ = "subdiv";
};

// ---------------------------------------------------------------------------------------------
// Monomial coefficients c[0] + c[1] x + ... (degree <= 4).
using Poly = std::vector<double>;

double PolyEval(const Poly& c, double x) {
  double v = 0.0;
  for (size_t i = c.size(); i-- > 0;) v = v * x + c[i];
  return v;
}
double PolyDeriv(const Poly& c, double x) {
  double v = 0.0;
  for (size_t i = c.size(); i-- > 1;) v = v * x + static_cast<double>(i) * c[i];
  return v;
}

// The polynomial of degree d through values v at the d+1 Chebyshev nodes (Gaussian elimination
// on the Vandermonde system; well conditioned at these nodes for d <= 4).
Poly Interpolate(const std::vector<double>& v) {
  const int m = static_cast<int>(v.size());
  std::vector<std::vector<double>> a(m, std::vector<double>(m + 1));
  for (int i = 0; i < m; ++i) {
    const double node = std::cos(M_PI * (2.0 * i + 1) / (2.0 * m));
    double pw = 1.0;
    for (int j = 0; j < m; ++j, pw *= node) a[i][j] = pw;
    a[i][m] = v[i];
  }
  for (int c = 0; c < m; ++c) {
    int piv = c;
    for (int r = c + 1; r < m; ++r) {
      if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
    }
    std::swap(a[c], a[piv]);
    for (int r = 0; r < m; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (int k = c; k <= m; ++k) a[r][k] -= f * a[c][k];
    }
  }
  Poly p(m);
  for (int i = 0; i < m; ++i) p[i] = a[i][m] / a[i][i];
  return p;
}

Poly Normalise(Poly p) {
  double mx = 0.0;
  for (int i = 0; i <= 1000; ++i) mx = std::max(mx, std::abs(PolyEval(p, -1.0 + i / 500.0)));
  if (mx > 0) {
    for (double& c : p) c /= mx;
  }
  return p;
}

double RmsDistance(const Poly& a, const Poly& b) {
  double s = 0.0;
  for (int i = 0; i <= 200; ++i) {
    const double x = -1.0 + i / 100.0;
    const double d = PolyEval(a, x) - PolyEval(b, x);
    s += d * d;
  }
  return std::sqrt(s / 201.0);
}

class Poly1dTask final : public Task {
 public:
  Poly1dTask(int families, double similarity, int64_t family_seed) {
    Rng rng = Rng::ForStream(static_cast<uint64_t>(family_seed), 99);
    auto draw = [&rng](int degree) {
      std::vector<double> v(degree + 1);
      for (double& x : v) x = rng.Uniform(-1.0, 1.0);
      return Normalise(Interpolate(v));
    };
    const Poly shared = draw(4);
    const double min_distance = 0.35 * (1.0 - similarity);
    for (int k = 0; k < families; ++k) {
      Poly best;
      double best_distance = -1.0;
      for (int attempt = 0; attempt < 200; ++attempt) {
        Poly r = draw(k % 2 == 0 ? 3 : 4);
        r.resize(5, 0.0);
        Poly mixed(5);
        for (int i = 0; i < 5; ++i) mixed[i] = (1.0 - similarity) * r[i] + similarity * shared[i];
        mixed = Normalise(mixed);
        double nearest = 1e9;
        for (const Poly& q : polys_) nearest = std::min(nearest, RmsDistance(mixed, q));
        if (nearest > best_distance) {
          best_distance = nearest;
          best = mixed;
        }
        if (nearest >= min_distance) break;
      }
      polys_.push_back(best);
    }
  }
  const std::string& name() const override { return name_; }
  int input_dim() const override { return 1; }
  int output_dim() const override { return 1; }
  int variants() const override { return static_cast<int>(polys_.size()); }
  std::string VariantLabel(int v) const override { return absl::StrCat("poly1d-", v); }
  std::vector<std::pair<double, double>> Domain() const override { return {{-1.0, 1.0}}; }
  void Evaluate(int variant, const float* x, int64_t n, double, float* y) const override {
    const Poly& p = polys_[variant];
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(PolyEval(p, x[i]));
  }
  bool HasExactGradient() const override { return true; }
  void ExactGradient(int variant, const float* x, int64_t n, double, float* g) const override {
    const Poly& p = polys_[variant];
    for (int64_t i = 0; i < n; ++i) g[i] = static_cast<float>(PolyDeriv(p, x[i]));
  }

 private:
  const std::string name_ = "poly1d";
  std::vector<Poly> polys_;
};

// ---------------------------------------------------------------------------------------------
// A fixed dataset shared by every model: fashion-mnist and custom.
class DatasetTask : public Task {
 public:
  DatasetTask(std::string name, LossKind loss, Dataset train, Dataset validation,
              std::optional<Dataset> test, int in, int out)
      : name_(std::move(name)),
        loss_(loss),
        train_(std::move(train)),
        validation_(std::move(validation)),
        test_(std::move(test)),
        in_(in),
        out_(out) {}
  const std::string& name() const override { return name_; }
  int input_dim() const override { return in_; }
  int output_dim() const override { return out_; }
  LossKind loss() const override { return loss_; }
  bool SharedData() const override { return true; }
  absl::StatusOr<Dataset> Data(DataSplit split, int, double, uint64_t, int64_t) const override {
    switch (split) {
      case DataSplit::kTrain:
        return train_;
      case DataSplit::kValidation:
        return validation_;
      case DataSplit::kTest:
        if (test_) return *test_;
        return absl::NotFoundError(absl::StrCat("task ", name_, " has no test set"));
    }
    return absl::InternalError("bad split");
  }

 private:
  const std::string name_;
  const LossKind loss_;
  const Dataset train_, validation_;
  const std::optional<Dataset> test_;
  const int in_, out_;
};

constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Finds `stem` or `stem.gz` in dir.
absl::StatusOr<std::string> FindIdx(const std::string& dir, const std::string& stem) {
  for (const std::string& p : {dir + "/" + stem + ".gz", dir + "/" + stem}) {
    if (std::filesystem::exists(p)) return p;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "dataset file ", stem, "[.gz] not found in ", dir,
      dir == kFashionMnistDir ? " (install the Debian package dataset-fashion-mnist)"
                              : " (set task.data_path to a directory with the IDX files)"));
}

absl::StatusOr<Dataset> LoadImages(const std::string& images, const std::string& labels,
                                   int64_t begin, int64_t end) {
  ASSIGN_OR_RETURN(IdxArray x, ReadIdx(images, int64_t{200'000'000}));
  ASSIGN_OR_RETURN(IdxArray y, ReadIdx(labels, int64_t{10'000'000}));
  if (x.dims.size() != 3 || y.dims.size() != 1 || x.dims[0] != y.dims[0]) {
    return absl::DataLossError(absl::StrCat(images, " and ", labels, " do not pair up"));
  }
  const int64_t n_all = x.dims[0];
  const int64_t dim = x.dims[1] * x.dims[2];
  end = std::min(end, n_all);
  Dataset d;
  d.n = std::max<int64_t>(0, end - begin);
  d.input_dim = static_cast<int>(dim);
  d.output_dim = 10;
  d.x.resize(static_cast<size_t>(d.n) * dim);
  d.y.assign(static_cast<size_t>(d.n) * 10, 0.0f);
  for (int64_t i = 0; i < d.n; ++i) {
    for (int64_t j = 0; j < dim; ++j) d.x[i * dim + j] = x.data[(begin + i) * dim + j] / 255.0f;
    const int label = y.data[begin + i];
    if (label > 9) return absl::DataLossError(absl::StrCat(labels, ": label ", label, " > 9"));
    d.y[i * 10 + label] = 1.0f;
  }
  return d;
}

absl::StatusOr<std::shared_ptr<const Task>> MakeFashionMnist(const TaskConfig& c, bool load) {
  const std::string dir = c.data_path.empty() ? kFashionMnistDir : c.data_path;
  ASSIGN_OR_RETURN(std::string train_images, FindIdx(dir, "train-images-idx3-ubyte"));
  ASSIGN_OR_RETURN(std::string train_labels, FindIdx(dir, "train-labels-idx1-ubyte"));
  ASSIGN_OR_RETURN(std::string test_images, FindIdx(dir, "t10k-images-idx3-ubyte"));
  ASSIGN_OR_RETURN(std::string test_labels, FindIdx(dir, "t10k-labels-idx1-ubyte"));
  if (!load) {
    return std::make_shared<const DatasetTask>("fashion-mnist", LossKind::kCrossEntropy,
                                               Dataset{}, Dataset{}, std::nullopt, 784, 10);
  }
  constexpr int64_t kValidation = 5000;
  ASSIGN_OR_RETURN(Dataset all, LoadImages(train_images, train_labels, 0, INT64_MAX));
  if (all.n <= kValidation) return absl::DataLossError("training set too small");
  ASSIGN_OR_RETURN(Dataset test, LoadImages(test_images, test_labels, 0, INT64_MAX));
  const int64_t n_train = all.n - kValidation;
  Dataset train, val;
  for (Dataset* d : {&train, &val}) {
    d->input_dim = all.input_dim;
    d->output_dim = 10;
  }
  train.n = n_train;
  val.n = kValidation;
  const size_t split_x = static_cast<size_t>(n_train) * all.input_dim;
  train.x.assign(all.x.begin(), all.x.begin() + split_x);
  val.x.assign(all.x.begin() + split_x, all.x.end());
  train.y.assign(all.y.begin(), all.y.begin() + n_train * 10);
  val.y.assign(all.y.begin() + n_train * 10, all.y.end());
  return std::make_shared<const DatasetTask>("fashion-mnist", LossKind::kCrossEntropy,
                                             std::move(train), std::move(val), std::move(test),
                                             all.input_dim, 10);
}

absl::StatusOr<std::shared_ptr<const Task>> MakeCustom(const TaskConfig& c) {
  const int in = c.custom_input_dim, out = c.custom_output_dim;
  if (in < 1 || out < 1 || in > MlpSpec::kMaxWidth || out > MlpSpec::kMaxWidth) {
    return absl::InvalidArgumentError(
        "task.custom_inputs and task.custom_targets must have shapes [N, in] and [N, out]");
  }
  const int64_t n = static_cast<int64_t>(c.custom_x.size()) / in;
  if (n < 2 || c.custom_x.size() != static_cast<size_t>(n) * in ||
      c.custom_y.size() != static_cast<size_t>(n) * out) {
    return absl::InvalidArgumentError(
        "task.custom_inputs and task.custom_targets must have the same number of rows (>= 2)");
  }
  for (float v : c.custom_x) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("task.custom_inputs has NaN or Inf");
  }
  for (float v : c.custom_y) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("task.custom_targets has NaN or Inf");
  }
  const int64_t n_val = std::max<int64_t>(1, n / 5);
  const int64_t n_train = n - n_val;
  Dataset train{n_train, in, out, {}, {}}, val{n_val, in, out, {}, {}};
  train.x.assign(c.custom_x.begin(), c.custom_x.begin() + n_train * in);
  val.x.assign(c.custom_x.begin() + n_train * in, c.custom_x.end());
  train.y.assign(c.custom_y.begin(), c.custom_y.begin() + n_train * out);
  val.y.assign(c.custom_y.begin() + n_train * out, c.custom_y.end());
  return std::make_shared<const DatasetTask>("custom", LossKind::kMse, std::move(train),
                                             std::move(val), std::nullopt, in, out);
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int64_t max_elements) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files transparently too
  if (f == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", path));
  }
  auto read_exact = [&](void* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      const int r = gzread(f, static_cast<char*>(buf) + got,
                           static_cast<unsigned>(std::min<size_t>(n - got, 1 << 30)));
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  };
  IdxArray a;
  unsigned char magic[4];
  absl::Status status;
  if (!read_exact(magic, 4) || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 ||
      magic[3] < 1 || magic[3] > 4) {
    status = absl::InvalidArgumentError(
        absl::StrCat(path, " is not an IDX file of unsigned bytes (magic 0x0000080N)"));
  } else {
    int64_t total = 1;
    for (int i = 0; i < magic[3] && status.ok(); ++i) {
      unsigned char b[4];
      if (!read_exact(b, 4)) {
        status = absl::DataLossError(absl::StrCat(path, ": truncated header"));
        break;
      }
      const int64_t d = (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
      if (d <= 0 || d > max_elements || total > max_elements / d) {
        status = absl::InvalidArgumentError(
            absl::StrCat(path, ": dimensions exceed ", max_elements, " elements"));
        break;
      }
      total *= d;
      a.dims.push_back(d);
    }
    if (status.ok()) {
      a.data.resize(static_cast<size_t>(total));
      if (!read_exact(a.data.data(), a.data.size())) {
        status = absl::DataLossError(absl::StrCat(path, ": truncated data"));
      }
    }
  }
  gzclose(f);
  if (!status.ok()) return status;
  return a;
}

std::vector<std::string> TaskNames() {
  return {"mul2", "mul", "gate", "subdiv", "poly1d", "fashion-mnist", "custom"};
}

absl::StatusOr<std::shared_ptr<const Task>> MakeTask(const TaskConfig& config, bool load_data) {
  const std::string& n = config.name;
  if (n == "mul2") return std::make_shared<const Mul2Task>();
  if (n == "mul") return std::make_shared<const MulTask>();
  if (n == "gate") return std::make_shared<const GateTask>();
  if (n == "subdiv") return std::make_shared<const SubdivTask>();
  if (n == "poly1d") {
    const int families = config.families == 0 ? 10 : config.families;
    if (families < 1 || families > 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat("task.families must be in [1, 1000], got ", config.families));
    }
    if (!(config.similarity >= 0.0 && config.similarity < 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("task.similarity must be in [0, 1), got ", config.similarity));
    }
    return std::make_shared<const Poly1dTask>(families, config.similarity, config.family_seed);
  }
  if (n == "fashion-mnist") return MakeFashionMnist(config, load_data);
  if (n == "custom") return MakeCustom(config);
  return absl::InvalidArgumentError(absl::StrCat("task.name \"", n.substr(0, 64),
                                                 "\" is unknown; known tasks: ",
                                                 absl::StrJoin(TaskNames(), ", ")));
}

}  // namespace gradzoo::core
