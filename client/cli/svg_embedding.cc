#include "client/cli/svg_embedding.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_format.h"
#include "client/cli/svg.h"

namespace gradzoo::client::svg {

std::vector<double> PrincipalAxes2(const std::vector<float>& x, int n, int dim) {
  std::vector<double> mean(dim, 0.0);
  for (int i = 0; i < n; ++i) for (int j = 0; j < dim; ++j) mean[j] += x[i * dim + j] / n;
  std::vector<double> c(static_cast<size_t>(dim) * dim, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int a = 0; a < dim; ++a) {
      const double xa = x[i * dim + a] - mean[a];
      for (int b = 0; b < dim; ++b) c[a * dim + b] += xa * (x[i * dim + b] - mean[b]) / n;
    }
  }
  std::vector<double> axes;
  for (int k = 0; k < 2; ++k) {
    std::vector<double> v(dim), w(dim);
    for (int j = 0; j < dim; ++j) v[j] = 1.0 + 0.01 * j;
    double lambda = 0.0;
    for (int it = 0; it < 300; ++it) {
      for (int a = 0; a < dim; ++a) {
        w[a] = 0;
        for (int b = 0; b < dim; ++b) w[a] += c[a * dim + b] * v[b];
      }
      double norm = 0;
      for (double t : w) norm += t * t;
      norm = std::sqrt(norm);
      if (norm < 1e-300) break;
      lambda = norm;
      for (int j = 0; j < dim; ++j) v[j] = w[j] / norm;
    }
    for (int a = 0; a < dim; ++a) {
      for (int b = 0; b < dim; ++b) c[a * dim + b] -= lambda * v[a] * v[b];
    }
    axes.insert(axes.end(), v.begin(), v.end());
  }
  return axes;
}

std::string EmbeddingMap(const std::vector<float>& x, int n, int dim,
                         const std::vector<std::string>& labels, const std::string& title) {
  const std::vector<double> axes = PrincipalAxes2(x, n, dim);
  std::vector<double> px(n), py(n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < dim; ++j) {
      px[i] += x[i * dim + j] * axes[j];
      py[i] += x[i * dim + j] * axes[dim + j];
    }
  }
  std::map<std::string, int> ids;
  for (const std::string& l : labels) ids.emplace(l, 0);
  int next = 0;
  for (auto& [l, id] : ids) id = next++;
  const int w = 720, h = 560, left = 60, right = 180, top = 40, bottom = 50;
  auto range = [](const std::vector<double>& v) {
    double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
    if (hi - lo < 1e-12) {
      lo -= 1;
      hi += 1;
    }
    const double pad = 0.05 * (hi - lo);
    return std::make_pair(lo - pad, hi + pad);
  };
  const auto [x0, x1] = range(px);
  const auto [y0, y1] = range(py);
  auto sx = [&, x0 = x0, x1 = x1](double v) { return left + (v - x0) / (x1 - x0) * (w - left - right); };
  auto sy = [&, y0 = y0, y1 = y1](double v) { return h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom); };
  // Up to ten labels: matplotlib's categorical tab10 (neighbouring labels stay distinct);
  // more: Viridis over the sorted labels.
  static constexpr const char* kTab10[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  auto colour = [&](const std::string& l) -> std::string {
    if (next <= 10) return kTab10[ids[l]];
    return Viridis(ids[l] / static_cast<double>(next - 1));
  };
  std::string s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%d\" y=\"24\" font-family=\"sans-serif\" font-size=\"15\">%s</text>\n"
      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n"
      "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"12\">PC 1</text>\n"
      "<text x=\"14\" y=\"%d\" font-family=\"sans-serif\" font-size=\"12\">PC 2</text>\n",
      w, h, w, h, left, XmlEscape(title), left, top, w - left - right, h - top - bottom,
      (w - right + left) / 2, h - 15, (h - bottom + top) / 2);
  for (int i = 0; i < n; ++i) {
    absl::StrAppendFormat(&s,
                          "<circle class=\"point\" cx=\"%.2f\" cy=\"%.2f\" r=\"4\" fill=\"%s\" "
                          "fill-opacity=\"0.8\"><title>%s</title></circle>\n",
                          sx(px[i]), sy(py[i]), colour(labels[i]), XmlEscape(labels[i]));
  }
  int row = 0;
  for (const auto& [l, id] : ids) {
    const int ly = top + 10 + 18 * row++;
    absl::StrAppendFormat(&s,
                          "<g class=\"legend-entry\"><circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/>"
                          "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"12\">%s</text></g>\n",
                          w - right + 20, ly, colour(l), w - right + 32, ly + 4, XmlEscape(l));
  }
  s += "</svg>\n";
  return s;
}

}  // namespace gradzoo::client::svg
