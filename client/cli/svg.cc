#include "client/cli/svg.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gradzoo::client::svg {
namespace {

constexpr int kMinSize = 200;
constexpr double kFontSize = 12;
constexpr double kTitleFontSize = 15;
// Rough average advance of a sans-serif glyph; only used to reserve margins for text.
constexpr double kCharWidth = 0.6 * kFontSize;
constexpr double kTickLength = 5;
constexpr char kAxisColor[] = "#333333";
constexpr char kGridColor[] = "#e6e6e6";

// matplotlib's viridis at t = 0, 1/8, ..., 1.
constexpr std::array<std::array<int, 3>, 9> kViridis = {{
    {0x44, 0x01, 0x54},
    {0x47, 0x2c, 0x7a},
    {0x3b, 0x52, 0x8b},
    {0x2c, 0x72, 0x8e},
    {0x21, 0x91, 0x8c},
    {0x28, 0xae, 0x80},
    {0x5e, 0xc9, 0x62},
    {0xad, 0xdc, 0x30},
    {0xfd, 0xe7, 0x25},
}};

// matplotlib's "tab10" categorical palette.
constexpr std::array<const char*, 10> kPalette = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

// Pixel coordinate text: two decimals at most, no trailing zeros, never "-0".
std::string Px(double v) {
  std::string s = absl::StrFormat("%.2f", v);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

double TextWidth(const std::string& text) { return kCharWidth * static_cast<double>(text.size()); }

struct Rect {
  double left = 0;
  double top = 0;
  double width = 0;
  double height = 0;
  double right() const { return left + width; }
  double bottom() const { return top + height; }
};

// An axis: data interval [lo, hi] (lo < hi), its ticks and its label.
struct Axis {
  double lo = 0;
  double hi = 1;
  std::vector<double> ticks;
  std::vector<std::string> tick_labels;
  std::string label;
};

// Labels ticks with just enough significant digits to tell neighbours apart.
void LabelTicks(Axis* axis) {
  axis->tick_labels.clear();
  if (axis->ticks.size() < 2) {
    for (double t : axis->ticks) axis->tick_labels.push_back(FormatNumber(t));
    return;
  }
  const double step = std::abs(axis->ticks[1] - axis->ticks[0]);
  const double largest = std::max(std::abs(axis->ticks.front()), std::abs(axis->ticks.back()));
  int digits = 1;
  if (step > 0 && largest > 0) {
    digits = static_cast<int>(std::floor(std::log10(largest)) - std::floor(std::log10(step))) + 1;
  }
  digits = std::clamp(digits, 1, 15);
  for (double t : axis->ticks) axis->tick_labels.push_back(FormatNumber(t, digits));
}

// Sets ticks for about one tick per `pixels_per_tick` of a `pixels`-long axis.
void MakeTicks(double pixels, double pixels_per_tick, Axis* axis) {
  const int target = std::clamp(static_cast<int>(std::lround(pixels / pixels_per_tick)), 3, 10);
  axis->ticks = NiceTicks(axis->lo, axis->hi, target);
  LabelTicks(axis);
}

double MaxLabelWidth(const Axis& axis) {
  double w = 0;
  for (const std::string& s : axis.tick_labels) w = std::max(w, TextWidth(s));
  return w;
}

// Affine map from data to pixels along one axis (p0 at d0, p1 at d1; d0 != d1).
struct Mapping {
  double d0, d1, p0, p1;
  double operator()(double v) const { return p0 + (v - d0) * (p1 - p0) / (d1 - d0); }
};

void OpenSvg(int width, int height, std::string* out) {
  absl::StrAppend(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"", width,
                  "\" height=\"", height, "\" viewBox=\"0 0 ", width, " ", height,
                  "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"",
                  Px(kFontSize), "\">\n");
  absl::StrAppend(out, "<rect x=\"0\" y=\"0\" width=\"", width, "\" height=\"", height,
                  "\" fill=\"white\"/>\n");
}

void CloseSvg(std::string* out) { absl::StrAppend(out, "</svg>\n"); }

void AppendText(double x, double y, const char* anchor, const std::string& text,
                const std::string& extra_attributes, std::string* out) {
  absl::StrAppend(out, "<text x=\"", Px(x), "\" y=\"", Px(y), "\" text-anchor=\"", anchor, "\"",
                  extra_attributes.empty() ? "" : " ", extra_attributes, ">", XmlEscape(text),
                  "</text>\n");
}

void AppendTitle(const std::string& title, double center_x, double baseline_y, std::string* out) {
  if (title.empty()) return;
  AppendText(
      center_x, baseline_y, "middle", title,
      absl::StrCat("class=\"title\" font-size=\"", Px(kTitleFontSize), "\" font-weight=\"bold\""),
      out);
}

// Frame, optional grid lines, ticks, tick labels and axis labels around plot area `f`.
// `ytick_width` is the space reserved for the y tick labels.
void AppendAxes(const Rect& f, const Axis& x, const Axis& y, double ytick_width, bool grid,
                std::string* out) {
  const Mapping mx{x.lo, x.hi, f.left, f.right()};
  const Mapping my{y.lo, y.hi, f.bottom(), f.top};
  if (grid) {
    std::string d;
    for (double t : x.ticks) {
      absl::StrAppend(&d, "M", Px(mx(t)), " ", Px(f.top), "V", Px(f.bottom()));
    }
    for (double t : y.ticks) {
      absl::StrAppend(&d, "M", Px(f.left), " ", Px(my(t)), "H", Px(f.right()));
    }
    if (!d.empty()) {
      absl::StrAppend(out, "<path class=\"grid\" d=\"", d, "\" stroke=\"", kGridColor,
                      "\" stroke-width=\"1\" fill=\"none\"/>\n");
    }
  }
  std::string ticks;
  for (double t : x.ticks) {
    absl::StrAppend(&ticks, "M", Px(mx(t)), " ", Px(f.bottom()), "v", Px(kTickLength));
  }
  for (double t : y.ticks) {
    absl::StrAppend(&ticks, "M", Px(f.left), " ", Px(my(t)), "h", Px(-kTickLength));
  }
  if (!ticks.empty()) {
    absl::StrAppend(out, "<path class=\"ticks\" d=\"", ticks, "\" stroke=\"", kAxisColor,
                    "\" stroke-width=\"1\" fill=\"none\"/>\n");
  }
  absl::StrAppend(out, "<rect class=\"frame\" x=\"", Px(f.left), "\" y=\"", Px(f.top),
                  "\" width=\"", Px(f.width), "\" height=\"", Px(f.height),
                  "\" fill=\"none\" stroke=\"", kAxisColor, "\" stroke-width=\"1\"/>\n");
  absl::StrAppend(out, "<g class=\"tick-labels\" fill=\"", kAxisColor, "\">\n");
  for (size_t k = 0; k < x.ticks.size(); ++k) {
    AppendText(mx(x.ticks[k]), f.bottom() + kTickLength + 3 + kFontSize, "middle", x.tick_labels[k],
               "", out);
  }
  for (size_t k = 0; k < y.ticks.size(); ++k) {
    AppendText(f.left - kTickLength - 3, my(y.ticks[k]), "end", y.tick_labels[k], "dy=\"0.35em\"",
               out);
  }
  absl::StrAppend(out, "</g>\n");
  if (!x.label.empty()) {
    AppendText(f.left + f.width / 2, f.bottom() + kTickLength + 3 + 2 * kFontSize + 8, "middle",
               x.label, "class=\"axis-label\"", out);
  }
  if (!y.label.empty()) {
    const double lx = f.left - kTickLength - 3 - ytick_width - 10;
    const double ly = f.top + f.height / 2;
    AppendText(
        lx, ly, "middle", y.label,
        absl::StrCat("class=\"axis-label\" transform=\"rotate(-90 ", Px(lx), " ", Px(ly), ")\""),
        out);
  }
}

// Space above the plot area: room for the title, or a small pad without one.
double TopMargin(const std::string& title) { return title.empty() ? 14 : 40; }

// Space below the plot area: tick labels and the x label.
double BottomMargin(const std::string& x_label) {
  return kTickLength + 3 + kFontSize + 8 + (x_label.empty() ? 0 : kFontSize + 10);
}

// Space left of the plot area: y tick labels and the rotated y label.
double LeftMargin(double ytick_width, const std::string& y_label) {
  return 12 + (y_label.empty() ? 0 : kFontSize + 8) + ytick_width + kTickLength + 3;
}

// ----- Quiver helpers --------------------------------------------------------------------------

// Indices 0, s, 2s, ... < n with s = ceil(n / cap), so at most `cap` of them.
std::vector<int> StrideIndices(int n, int cap) {
  const int stride = std::max(1, (n + cap - 1) / cap);
  std::vector<int> idx;
  for (int i = 0; i < n; i += stride) idx.push_back(i);
  return idx;
}

// Distinct finite values of `values` at `idx`, sorted.
std::vector<double> DistinctFinite(const std::vector<double>& values, const std::vector<int>& idx) {
  std::vector<double> out;
  for (int i : idx) {
    if (std::isfinite(values[i])) out.push_back(values[i]);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

double MinSpacing(const std::vector<double>& sorted_distinct) {
  double s = std::numeric_limits<double>::infinity();
  for (size_t k = 1; k < sorted_distinct.size(); ++k) {
    s = std::min(s, sorted_distinct[k] - sorted_distinct[k - 1]);
  }
  return s;
}

std::string ValidateQuiver(const QuiverData& d) {
  if (d.nx < 1 || d.ny < 1) {
    return absl::StrCat("grid must be at least 1 x 1, got nx = ", d.nx, ", ny = ", d.ny);
  }
  if (d.xs.size() != static_cast<size_t>(d.nx)) {
    return absl::StrCat("xs has ", d.xs.size(), " values, expected nx = ", d.nx);
  }
  if (d.ys.size() != static_cast<size_t>(d.ny)) {
    return absl::StrCat("ys has ", d.ys.size(), " values, expected ny = ", d.ny);
  }
  const size_t n = static_cast<size_t>(d.nx) * static_cast<size_t>(d.ny);
  if (d.u.size() != n || d.v.size() != n) {
    return absl::StrCat("u and v need nx * ny = ", n, " values, got ", d.u.size(), " and ",
                        d.v.size());
  }
  return "";
}

std::string QuiverError(const QuiverData& d, const QuiverOptions& o, const std::string& why) {
  const int width = std::max(o.width, kMinSize);
  const int height = std::max(o.height, kMinSize);
  std::string out;
  OpenSvg(width, height, &out);
  const double top = TopMargin(d.title);
  AppendTitle(d.title, width / 2.0, top - 14, &out);
  absl::StrAppend(&out, "<rect class=\"frame\" x=\"20\" y=\"", Px(top), "\" width=\"", width - 40,
                  "\" height=\"", Px(height - top - 20), "\" fill=\"none\" stroke=\"", kAxisColor,
                  "\"/>\n");
  AppendText(width / 2.0, top + (height - top - 20) / 2, "middle",
             absl::StrCat("invalid quiver data: ", why), "class=\"error\" fill=\"#b00020\"", &out);
  CloseSvg(&out);
  return out;
}

}  // namespace

// ----- Building blocks -------------------------------------------------------------------------

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) return {};
  if (lo == hi) return {lo};
  target = std::max(target, 2);
  const double raw = (hi - lo) / (target - 1);
  if (!(raw > 0) || !std::isfinite(raw)) return {lo};
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  const double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  const double step = nice * magnitude;
  if (!(step > 0) || !std::isfinite(step)) return {lo};
  const double first = std::ceil(lo / step - 1e-9);
  const double last = std::floor(hi / step + 1e-9);
  std::vector<double> ticks;
  for (double k = first; k <= last && ticks.size() < 1000; k += 1) {
    double t = k * step;
    if (std::abs(t) < 1e-9 * step) t = 0;
    ticks.push_back(t);
  }
  return ticks;
}

std::string FormatNumber(double value, int significant_digits) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  const int digits = std::clamp(significant_digits, 1, 17);
  std::string s = absl::StrFormat("%.*g", digits, value);
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e);
  std::string exponent = s.substr(e + 1);
  std::string sign;
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
    if (exponent[0] == '-') sign = "-";
    exponent.erase(0, 1);
  }
  const size_t nz = exponent.find_first_not_of('0');
  exponent = nz == std::string::npos ? "0" : exponent.substr(nz);
  return absl::StrCat(mantissa, "e", sign, exponent);
}

std::string Viridis(double t) {
  if (std::isnan(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0);
  const double pos = t * (kViridis.size() - 1);
  const size_t k = std::min(static_cast<size_t>(pos), kViridis.size() - 2);
  const double w = pos - static_cast<double>(k);
  int rgb[3];
  for (int c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround((1 - w) * kViridis[k][c] + w * kViridis[k + 1][c]));
  }
  return absl::StrFormat("#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

std::string XmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default: {
        const auto uc = static_cast<unsigned char>(ch);
        if (uc < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
          out += '?';
        } else {
          out += ch;
        }
      }
    }
  }
  return out;
}

// ----- Quiver plot -----------------------------------------------------------------------------

std::string QuiverPlot(const QuiverData& d, const QuiverOptions& o) {
  if (std::string why = ValidateQuiver(d); !why.empty()) return QuiverError(d, o, why);
  const int width = std::max(o.width, kMinSize);
  const int height = std::max(o.height, kMinSize);
  const int cap = std::max(o.max_arrows_per_axis, 1);
  const double fraction = std::isfinite(o.longest_arrow_fraction) && o.longest_arrow_fraction > 0
                              ? o.longest_arrow_fraction
                              : 0.9;

  const std::vector<int> is = StrideIndices(d.nx, cap);
  const std::vector<int> js = StrideIndices(d.ny, cap);
  const std::vector<double> dx = DistinctFinite(d.xs, is);
  const std::vector<double> dy = DistinctFinite(d.ys, js);

  // Data ranges: the drawn coordinates padded by half the tightest grid spacing, so arrows
  // centred on edge points stay inside the frame. A single coordinate borrows the other
  // axis's width.
  Axis x_axis, y_axis;
  x_axis.label = d.x_label;
  y_axis.label = d.y_label;
  const bool x_multi = dx.size() >= 2;
  const bool y_multi = dy.size() >= 2;
  if (x_multi) {
    const double pad = MinSpacing(dx) / 2;
    x_axis.lo = dx.front() - pad;
    x_axis.hi = dx.back() + pad;
  }
  if (y_multi) {
    const double pad = MinSpacing(dy) / 2;
    y_axis.lo = dy.front() - pad;
    y_axis.hi = dy.back() + pad;
  }
  auto single = [](const std::vector<double>& values, double other_range, Axis* axis) {
    const double c = values.empty() ? 0.5 : values.front();
    const double half = other_range > 0 ? other_range / 2 : 0.5;
    axis->lo = c - half;
    axis->hi = c + half;
  };
  if (!x_multi) single(dx, y_multi ? y_axis.hi - y_axis.lo : 0, &x_axis);
  if (!y_multi) single(dy, x_multi ? x_axis.hi - x_axis.lo : 0, &y_axis);

  // The drawn vectors and their magnitude range.
  struct Vec {
    double x, y, u, v, mag;
  };
  std::vector<Vec> vecs;
  double mag_min = std::numeric_limits<double>::infinity();
  double mag_max = 0;
  for (int j : js) {
    for (int i : is) {
      const size_t k = static_cast<size_t>(j) * d.nx + i;
      const double x = d.xs[i], y = d.ys[j], u = d.u[k], v = d.v[k];
      if (!std::isfinite(x) || !std::isfinite(y) || !std::isfinite(u) || !std::isfinite(v)) {
        continue;
      }
      const double mag = std::hypot(u, v);
      if (!std::isfinite(mag)) continue;
      vecs.push_back({x, y, u, v, mag});
      mag_min = std::min(mag_min, mag);
      mag_max = std::max(mag_max, mag);
    }
  }
  if (vecs.empty()) mag_min = 0;
  const double c_lo = mag_min < mag_max ? mag_min : 0;
  const double c_hi = mag_max;
  const std::string c_lo_text = FormatNumber(c_lo, 4);
  const std::string c_hi_text = FormatNumber(c_hi, 4);

  // Layout. Ticks depend on the available length, the left margin on the tick labels.
  const double top = TopMargin(d.title);
  const double bottom = BottomMargin(d.x_label);
  const double colorbar_gap = 18, colorbar_width = 14;
  const double right = colorbar_gap + colorbar_width + 6 +
                       std::max(TextWidth(c_lo_text), TextWidth(c_hi_text)) +
                       (o.colorbar_label.empty() ? 0 : kFontSize + 10) + 10;
  const double avail_h = std::max(50.0, height - top - bottom);
  MakeTicks(avail_h, 80, &y_axis);
  double ytick_width = MaxLabelWidth(y_axis);
  const double left = LeftMargin(ytick_width, d.y_label);
  const double avail_w = std::max(50.0, width - left - right);
  Rect f{left, top, avail_w, avail_h};
  if (o.equal_aspect) {
    const double scale =
        std::min(avail_w / (x_axis.hi - x_axis.lo), avail_h / (y_axis.hi - y_axis.lo));
    f.width = scale * (x_axis.hi - x_axis.lo);
    f.height = scale * (y_axis.hi - y_axis.lo);
    f.left = left + (avail_w - f.width) / 2;
    f.top = top + (avail_h - f.height) / 2;
    MakeTicks(f.height, 80, &y_axis);
    ytick_width = std::max(ytick_width, MaxLabelWidth(y_axis));
  }
  MakeTicks(f.width, 80, &x_axis);
  const Mapping mx{x_axis.lo, x_axis.hi, f.left, f.right()};
  const Mapping my{y_axis.lo, y_axis.hi, f.bottom(), f.top};

  // Grid cell in pixels: the tightest drawn spacing along either axis.
  const double px_per_x = f.width / (x_axis.hi - x_axis.lo);
  const double px_per_y = f.height / (y_axis.hi - y_axis.lo);
  double cell = std::numeric_limits<double>::infinity();
  if (x_multi) cell = std::min(cell, MinSpacing(dx) * px_per_x);
  if (y_multi) cell = std::min(cell, MinSpacing(dy) * px_per_y);
  if (!std::isfinite(cell)) cell = std::min(f.width, f.height) / 2;

  std::string out;
  OpenSvg(width, height, &out);
  absl::StrAppend(&out,
                  "<defs><linearGradient id=\"gz-viridis\" x1=\"0\" y1=\"1\" x2=\"0\" "
                  "y2=\"0\">");
  for (size_t k = 0; k < kViridis.size(); ++k) {
    const double t = static_cast<double>(k) / (kViridis.size() - 1);
    absl::StrAppend(&out, "<stop offset=\"", FormatNumber(t, 4), "\" stop-color=\"", Viridis(t),
                    "\"/>");
  }
  absl::StrAppend(&out, "</linearGradient></defs>\n");
  AppendTitle(d.title, f.left + f.width / 2, f.top - 14, &out);
  AppendAxes(f, x_axis, y_axis, ytick_width, /*grid=*/false, &out);

  // Arrows. Heads and strokes scale with the cell so dense grids stay legible.
  const double stroke = std::clamp(cell * 0.06, 0.8, 1.6);
  const double dot_r = std::clamp(cell * 0.08, 1.0, 2.5);
  const double max_head = std::clamp(cell * 0.28, 2.0, 9.0);
  absl::StrAppend(&out, "<g class=\"arrows\" stroke-width=\"", Px(stroke),
                  "\" stroke-linecap=\"round\" stroke-linejoin=\"round\">\n");
  for (const Vec& a : vecs) {
    const double t = c_hi > c_lo ? (a.mag - c_lo) / (c_hi - c_lo) : 0;
    const std::string color = Viridis(t);
    const double cx = mx(a.x), cy = my(a.y);
    const double length = c_hi > 0 ? a.mag / c_hi * fraction * cell : 0;
    if (!(length >= 1.0)) {
      absl::StrAppend(&out, "<circle class=\"arrow-dot\" cx=\"", Px(cx), "\" cy=\"", Px(cy),
                      "\" r=\"", Px(dot_r), "\" fill=\"", color, "\"/>\n");
      continue;
    }
    // Unit direction in pixels: SVG y grows downward, so data +v is pixel -y.
    const double ux = a.u / a.mag, uy = -a.v / a.mag;
    const double tail_x = cx - ux * length / 2, tail_y = cy - uy * length / 2;
    const double tip_x = cx + ux * length / 2, tip_y = cy + uy * length / 2;
    const double head = std::min(length * 0.4, max_head);
    const double half_width = head * 0.55;
    const double base_x = tip_x - ux * head, base_y = tip_y - uy * head;
    const double px = -uy, py = ux;  // Perpendicular.
    absl::StrAppend(&out, "<path class=\"arrow\" d=\"M", Px(tail_x), " ", Px(tail_y), " L",
                    Px(base_x), " ", Px(base_y), " M", Px(tip_x), " ", Px(tip_y), " L",
                    Px(base_x + px * half_width), " ", Px(base_y + py * half_width), " L",
                    Px(base_x - px * half_width), " ", Px(base_y - py * half_width),
                    " Z\" stroke=\"", color, "\" fill=\"", color, "\"/>\n");
  }
  absl::StrAppend(&out, "</g>\n");

  // Colour bar: min at the bottom, max at the top.
  const double bar_x = f.right() + colorbar_gap;
  absl::StrAppend(&out, "<g class=\"colorbar\">\n<rect x=\"", Px(bar_x), "\" y=\"", Px(f.top),
                  "\" width=\"", Px(colorbar_width), "\" height=\"", Px(f.height),
                  "\" fill=\"url(#gz-viridis)\" stroke=\"", kAxisColor,
                  "\" stroke-width=\"0.8\"/>\n");
  const double label_x = bar_x + colorbar_width + 5;
  AppendText(label_x, f.top, "start", c_hi_text, "dy=\"0.8em\" class=\"colorbar-max\"", &out);
  AppendText(label_x, f.bottom(), "start", c_lo_text, "class=\"colorbar-min\"", &out);
  if (!o.colorbar_label.empty()) {
    const double lx = label_x + std::max(TextWidth(c_lo_text), TextWidth(c_hi_text)) + 14;
    const double ly = f.top + f.height / 2;
    AppendText(lx, ly, "middle", o.colorbar_label,
               absl::StrCat("transform=\"rotate(-90 ", Px(lx), " ", Px(ly), ")\""), &out);
  }
  absl::StrAppend(&out, "</g>\n");
  CloseSvg(&out);
  return out;
}

// ----- Line plot -------------------------------------------------------------------------------

std::string LinePlot(const LinePlotData& d, const LinePlotOptions& o) {
  const int width = std::max(o.width, kMinSize);
  const int height = std::max(o.height, kMinSize);

  struct Point {
    double x, y, err;  // err < 0: no error bar.
  };
  std::vector<std::vector<Point>> points(d.series.size());
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  bool any_named = false;
  for (size_t s = 0; s < d.series.size(); ++s) {
    const LineSeries& series = d.series[s];
    any_named = any_named || !series.name.empty();
    size_t n = std::min(series.x.size(), series.y.size());
    if (!series.yerr.empty()) n = std::min(n, series.yerr.size());
    for (size_t k = 0; k < n; ++k) {
      const double x = series.x[k], y = series.y[k];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      double err = series.yerr.empty() ? -1 : series.yerr[k];
      if (!std::isfinite(err) || !std::isfinite(y - err) || !std::isfinite(y + err)) err = -1;
      points[s].push_back({x, y, err});
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, err >= 0 ? y - err : y);
      y_hi = std::max(y_hi, err >= 0 ? y + err : y);
    }
  }
  const bool no_data = !(x_lo <= x_hi);
  auto widen = [](double lo, double hi, Axis* axis) {
    if (lo == hi) {
      const double half = lo == 0 ? 0.5 : std::abs(lo) * 0.1;
      axis->lo = lo - half;
      axis->hi = hi + half;
    } else {
      const double margin = 0.05 * (hi - lo);
      axis->lo = lo - margin;
      axis->hi = hi + margin;
    }
  };
  Axis x_axis, y_axis;
  x_axis.label = d.x_label;
  y_axis.label = d.y_label;
  if (!no_data) {
    widen(x_lo, x_hi, &x_axis);
    widen(y_lo, y_hi, &y_axis);
  }

  // Layout.
  const bool legend = o.legend && any_named;
  double legend_text = 0;
  for (const LineSeries& series : d.series) {
    legend_text = std::max(legend_text, TextWidth(series.name));
  }
  const double legend_width = legend ? std::min(16 + 28 + legend_text + 10, width * 0.4) : 0;
  const double top = TopMargin(d.title);
  const double bottom = BottomMargin(d.x_label);
  const double avail_h = std::max(50.0, height - top - bottom);
  MakeTicks(avail_h, 60, &y_axis);
  const double ytick_width = MaxLabelWidth(y_axis);
  const double left = LeftMargin(ytick_width, d.y_label);
  const double right = legend ? legend_width : 20;
  const Rect f{left, top, std::max(50.0, width - left - right), avail_h};
  MakeTicks(f.width, 90, &x_axis);
  const Mapping mx{x_axis.lo, x_axis.hi, f.left, f.right()};
  const Mapping my{y_axis.lo, y_axis.hi, f.bottom(), f.top};

  std::string out;
  OpenSvg(width, height, &out);
  AppendTitle(d.title, f.left + f.width / 2, f.top - 14, &out);
  AppendAxes(f, x_axis, y_axis, ytick_width, /*grid=*/true, &out);
  if (no_data) {
    AppendText(f.left + f.width / 2, f.top + f.height / 2, "middle", "no data",
               "class=\"no-data\" fill=\"#888888\"", &out);
  }

  const double marker_r = 3.5;
  for (size_t s = 0; s < d.series.size(); ++s) {
    if (points[s].empty()) continue;
    const char* color = kPalette[s % kPalette.size()];
    absl::StrAppend(&out, "<g class=\"series-group\" stroke=\"", color, "\" fill=\"", color,
                    "\">\n");
    std::string coords;
    std::string bars;
    const double cap = 3.5;
    for (const Point& p : points[s]) {
      absl::StrAppend(&coords, coords.empty() ? "" : " ", Px(mx(p.x)), ",", Px(my(p.y)));
      if (p.err >= 0) {
        const double px = mx(p.x), y0 = my(p.y - p.err), y1 = my(p.y + p.err);
        absl::StrAppend(&bars, "M", Px(px), " ", Px(y0), "V", Px(y1), "M", Px(px - cap), " ",
                        Px(y0), "h", Px(2 * cap), "M", Px(px - cap), " ", Px(y1), "h", Px(2 * cap));
      }
    }
    absl::StrAppend(&out, "<polyline class=\"series\" points=\"", coords,
                    "\" fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\"/>\n");
    if (!bars.empty()) {
      absl::StrAppend(&out, "<path class=\"errorbars\" d=\"", bars,
                      "\" fill=\"none\" stroke-width=\"1.2\"/>\n");
    }
    if (o.markers) {
      for (const Point& p : points[s]) {
        absl::StrAppend(&out, "<circle class=\"marker\" cx=\"", Px(mx(p.x)), "\" cy=\"",
                        Px(my(p.y)), "\" r=\"", Px(marker_r),
                        "\" stroke=\"white\" stroke-width=\"0.8\"/>\n");
      }
    }
    absl::StrAppend(&out, "</g>\n");
  }

  if (legend) {
    absl::StrAppend(&out, "<g class=\"legend\">\n");
    const double lx = f.right() + 16;
    double ly = f.top + 10;
    for (size_t s = 0; s < d.series.size(); ++s) {
      const LineSeries& series = d.series[s];
      if (series.name.empty()) continue;
      const char* color = kPalette[s % kPalette.size()];
      absl::StrAppend(&out, "<g class=\"legend-entry\">", "<line x1=\"", Px(lx), "\" y1=\"", Px(ly),
                      "\" x2=\"", Px(lx + 22), "\" y2=\"", Px(ly), "\" stroke=\"", color,
                      "\" stroke-width=\"1.8\"/>");
      if (o.markers) {
        absl::StrAppend(&out, "<circle cx=\"", Px(lx + 11), "\" cy=\"", Px(ly), "\" r=\"",
                        Px(marker_r), "\" fill=\"", color,
                        "\" stroke=\"white\" stroke-width=\"0.8\"/>");
      }
      absl::StrAppend(&out, "<text x=\"", Px(lx + 28), "\" y=\"", Px(ly),
                      "\" dy=\"0.35em\" text-anchor=\"start\">", XmlEscape(series.name),
                      "</text></g>\n");
      ly += 18;
    }
    absl::StrAppend(&out, "</g>\n");
  }
  CloseSvg(&out);
  return out;
}

// ----- Output ----------------------------------------------------------------------------------

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  if (path.empty()) return absl::InvalidArgumentError("WriteFile: empty path");
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("WriteFile('", path, "'): cannot create temporary file '", temp, "'"));
  }
  auto fail = [&](const char* step, int error, bool close_fd) {
    if (close_fd) close(fd);
    unlink(temp.c_str());
    return absl::ErrnoToStatus(error,
                               absl::StrCat("WriteFile('", path, "'): ", step, " '", temp, "'"));
  };
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    const ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno, true);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (fchmod(fd, 0644) != 0) return fail("cannot chmod", errno, true);
  if (fsync(fd) != 0) return fail("cannot fsync", errno, true);
  if (close(fd) != 0) return fail("cannot close", errno, false);
  if (rename(temp.c_str(), path.c_str()) != 0) {
    return fail("cannot rename into place the temporary file", errno, false);
  }
  return absl::OkStatus();
}

}  // namespace gradzoo::client::svg
