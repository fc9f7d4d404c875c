#include "core/model.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return "relu";
    case Activation::kGelu:
      return "gelu";
    case Activation::kTanh:
      return "tanh";
  }
  return "unknown";
}

absl::Status MlpSpec::Validate() const {
  auto check_width = [](int w, const std::string& field) -> absl::Status {
    if (w < 1 || w > kMaxWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must be in [1, ", kMaxWidth, "], got ", w));
    }
    return absl::OkStatus();
  };
  if (auto s = check_width(input_dim, "input_dim"); !s.ok()) return s;
  if (auto s = check_width(output_dim, "output_dim"); !s.ok()) return s;
  if (static_cast<int>(hidden.size()) > kMaxLayers) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.hidden_widths has ", hidden.size(),
                                                   " layers; at most ", kMaxLayers));
  }
  for (size_t i = 0; i < hidden.size(); ++i) {
    if (auto s = check_width(hidden[i], absl::StrCat("architecture.hidden_widths[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  if (activation != Activation::kRelu && activation != Activation::kGelu &&
      activation != Activation::kTanh) {
    return absl::InvalidArgumentError("architecture.activation is not relu, gelu or tanh");
  }
  return absl::OkStatus();
}

std::vector<int> MlpSpec::Widths() const {
  std::vector<int> w;
  w.reserve(hidden.size() + 2);
  w.push_back(input_dim);
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(output_dim);
  return w;
}

int64_t MlpSpec::ParamCount() const {
  const std::vector<int> w = Widths();
  int64_t n = 0;
  for (size_t i = 0; i + 1 < w.size(); ++i) n += int64_t{w[i + 1]} * (w[i] + 1);
  return n;
}

absl::Status ValidateWeights(const MlpSpec& spec, const std::vector<LayerWeights>& layers) {
  const std::vector<int> w = spec.Widths();
  if (layers.size() + 1 != w.size()) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", layers.size(),
                                                   " layers; the architecture implies ",
                                                   w.size() - 1));
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& lw = layers[l];
    if (lw.in != w[l] || lw.out != w[l + 1] ||
        lw.weight.size() != static_cast<size_t>(lw.out) * lw.in ||
        lw.bias.size() != static_cast<size_t>(lw.out)) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers[", l, "]: expected weight [", w[l + 1], ", ", w[l], "] and bias [",
                       w[l + 1], "], got weight [", lw.out, ", ", lw.in, "] with ",
                       lw.weight.size(), " values and bias with ", lw.bias.size()));
    }
    for (float v : lw.weight) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat("layers[", l, "].weight has NaN or Inf"));
      }
    }
    for (float v : lw.bias) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat("layers[", l, "].bias has NaN or Inf"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateResourceId(const std::string& id, const char* field) {
  bool ok = !id.empty() && id.size() <= 63 && id.front() != '-' && id.back() != '-';
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " \"", id.substr(0, 80),
        "\" is not a valid id: use 1-63 lowercase letters, digits and '-', not at either end"));
  }
  return absl::OkStatus();
}

}  // namespace gradzoo::core
