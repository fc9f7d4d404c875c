#include "client/cli/svg_partition.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/svg.h"

namespace gradzoo::client::svg {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr char kAxisColor[] = "#333333";
// Width of the legend column right of the plot (pixels).
constexpr double kLegendColumn = 150;
constexpr std::array<const char*, 10> kPalette = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

std::string Px(double v) {
  std::string s = absl::StrFormat("%.2f", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

// HSV (h in degrees, s, v in [0, 1]) to "#rrggbb".
std::string Hsv(double h, double s, double v) {
  h = std::fmod(std::fmod(h, 360.0) + 360.0, 360.0);
  const double c = v * s;
  const double x = c * (1 - std::abs(std::fmod(h / 60.0, 2.0) - 1));
  const double m = v - c;
  double r = 0, g = 0, b = 0;
  if (h < 60) {
    r = c, g = x;
  } else if (h < 120) {
    r = x, g = c;
  } else if (h < 180) {
    g = c, b = x;
  } else if (h < 240) {
    g = x, b = c;
  } else if (h < 300) {
    r = x, b = c;
  } else {
    r = c, b = x;
  }
  auto byte = [&](double u) { return static_cast<int>(std::lround(255 * std::clamp(u + m, 0.0, 1.0))); };
  return absl::StrFormat("#%02x%02x%02x", byte(r), byte(g), byte(b));
}

// An axis name short enough to sit beside the colour wheel (longer ones are cut with "..").
std::string LegendLabel(const std::string& label) {
  if (label.size() <= 8) return label;
  size_t n = 6;
  while (n > 0 && (static_cast<unsigned char>(label[n]) & 0xC0) == 0x80) --n;  // UTF-8 boundary
  return label.substr(0, n) + "..";
}

std::string Frame(int width, int height, const std::string& title, const std::string& body) {
  return absl::StrCat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", width, "\" height=\"",
                      height, "\" viewBox=\"0 0 ", width, " ", height,
                      "\" font-family=\"sans-serif\" font-size=\"12\">\n",
                      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                      "<text x=\"", Px(width / 2.0), "\" y=\"22\" text-anchor=\"middle\" "
                      "font-size=\"15\">", XmlEscape(title), "</text>\n",
                      body, "</svg>\n");
}

}  // namespace

std::string DirectionColor(double gx, double gy, double max_magnitude) {
  const double mag = std::hypot(gx, gy);
  if (!(mag > 0) || !std::isfinite(mag)) return "#d9d9d9";
  const double t = max_magnitude > 0 ? std::min(1.0, mag / max_magnitude) : 1.0;
  return Hsv(std::atan2(gy, gx) * 180.0 / kPi, 0.85, 0.35 + 0.65 * t);
}

std::string PartitionPlot(const PartitionPlotData& d, const PartitionPlotOptions& o) {
  const int width = std::max(o.width, 200);
  const int height = std::max(o.height, 200);
  const bool ok_range = std::isfinite(d.x_min) && std::isfinite(d.x_max) &&
                        std::isfinite(d.y_min) && std::isfinite(d.y_max) &&
                        d.x_min < d.x_max && d.y_min < d.y_max;
  if (!ok_range) {
    return Frame(width, height, d.title,
                 absl::StrCat("<text x=\"", Px(width / 2.0), "\" y=\"", Px(height / 2.0),
                              "\" text-anchor=\"middle\">invalid slice range</text>\n"));
  }
  // Legends live in a column of their own right of the plot, sized for DejaVu Sans (the widest
  // common sans: ~0.62 em per character), so nothing reaches the right edge.
  const bool wheel = o.color == PartitionColor::kDirection;
  const bool colorbar = o.color == PartitionColor::kMagnitude;
  // Plot area: margins for tick labels, axis labels, the title and the legend.
  const double left = 70, top = 40, right = wheel || colorbar ? kLegendColumn : 20, bottom = 55;
  double pw = width - left - right, ph = height - top - bottom;
  double ox = left, oy = top;
  const double xr = d.x_max - d.x_min, yr = d.y_max - d.y_min;
  if (o.equal_aspect) {
    const double scale = std::min(pw / xr, ph / yr);
    ox += (pw - scale * xr) / 2;
    oy += (ph - scale * yr) / 2;
    pw = scale * xr;
    ph = scale * yr;
  }
  auto px = [&](double x) { return ox + (x - d.x_min) / xr * pw; };
  auto py = [&](double y) { return oy + ph - (y - d.y_min) / yr * ph; };

  double max_mag = 0;
  for (const auto& r : d.regions) {
    const double m = std::hypot(r.gx, r.gy);
    if (std::isfinite(m)) max_mag = std::max(max_mag, m);
  }
  std::string body;
  absl::StrAppend(&body, "<clipPath id=\"plot\"><rect x=\"", Px(ox), "\" y=\"", Px(oy),
                  "\" width=\"", Px(pw), "\" height=\"", Px(ph), "\"/></clipPath>\n",
                  "<g clip-path=\"url(#plot)\">\n");
  size_t index = 0;
  for (const auto& r : d.regions) {
    std::string points;
    int finite = 0;
    for (size_t i = 0; i + 1 < r.vertices.size(); i += 2) {
      const double x = r.vertices[i], y = r.vertices[i + 1];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      absl::StrAppend(&points, finite ? " " : "", Px(px(x)), ",", Px(py(y)));
      ++finite;
    }
    if (finite < 3) continue;
    std::string fill;
    switch (o.color) {
      case PartitionColor::kDirection:
        fill = DirectionColor(r.gx, r.gy, max_mag);
        break;
      case PartitionColor::kMagnitude: {
        const double m = std::hypot(r.gx, r.gy);
        fill = Viridis(max_mag > 0 && std::isfinite(m) ? m / max_mag : 0.0);
        break;
      }
      case PartitionColor::kRegion:
        fill = kPalette[index % kPalette.size()];
        break;
    }
    ++index;
    absl::StrAppend(&body, "<polygon class=\"region\" points=\"", points, "\" fill=\"", fill, "\"",
                    o.outlines ? " stroke=\"white\" stroke-width=\"0.4\"" : "", "/>\n");
  }
  body += "</g>\n";

  // Frame, ticks and labels.
  absl::StrAppend(&body, "<rect x=\"", Px(ox), "\" y=\"", Px(oy), "\" width=\"", Px(pw),
                  "\" height=\"", Px(ph), "\" fill=\"none\" stroke=\"", kAxisColor, "\"/>\n");
  for (double t : NiceTicks(d.x_min, d.x_max)) {
    const double x = px(t);
    absl::StrAppend(&body, "<line x1=\"", Px(x), "\" y1=\"", Px(oy + ph), "\" x2=\"", Px(x),
                    "\" y2=\"", Px(oy + ph + 5), "\" stroke=\"", kAxisColor, "\"/>",
                    "<text x=\"", Px(x), "\" y=\"", Px(oy + ph + 18),
                    "\" text-anchor=\"middle\">", FormatNumber(t), "</text>\n");
  }
  for (double t : NiceTicks(d.y_min, d.y_max)) {
    const double y = py(t);
    absl::StrAppend(&body, "<line x1=\"", Px(ox - 5), "\" y1=\"", Px(y), "\" x2=\"", Px(ox),
                    "\" y2=\"", Px(y), "\" stroke=\"", kAxisColor, "\"/>",
                    "<text x=\"", Px(ox - 8), "\" y=\"", Px(y + 4),
                    "\" text-anchor=\"end\">", FormatNumber(t), "</text>\n");
  }
  absl::StrAppend(&body, "<text x=\"", Px(ox + pw / 2), "\" y=\"", Px(oy + ph + 40),
                  "\" text-anchor=\"middle\">", XmlEscape(d.x_label), "</text>\n",
                  "<text x=\"", Px(ox - 50), "\" y=\"", Px(oy + ph / 2),
                  "\" text-anchor=\"middle\" transform=\"rotate(-90 ", Px(ox - 50), " ",
                  Px(oy + ph / 2), ")\">", XmlEscape(d.y_label), "</text>\n");
  // The legend column: [width - kLegendColumn + 10, width - 10].
  const double column_mid = width - kLegendColumn / 2;
  if (wheel) {
    // A colour wheel: 24 wedges, hue = gradient direction, at full magnitude; the data axes'
    // names mark the +x (right) and +y (up) directions.
    const double cx = column_mid, cy = top + 55, radius = 30;
    body += "<g class=\"legend\">\n";
    for (int i = 0; i < 24; ++i) {
      const double a0 = 2 * kPi * i / 24, a1 = 2 * kPi * (i + 1) / 24;
      const double mid = (a0 + a1) / 2;
      absl::StrAppend(&body, "<path d=\"M ", Px(cx), " ", Px(cy), " L ",
                      Px(cx + radius * std::cos(a0)), " ", Px(cy - radius * std::sin(a0)), " A ",
                      Px(radius), " ", Px(radius), " 0 0 0 ", Px(cx + radius * std::cos(a1)), " ",
                      Px(cy - radius * std::sin(a1)), " Z\" fill=\"",
                      DirectionColor(std::cos(mid), std::sin(mid), 1.0), "\"/>\n");
    }
    absl::StrAppend(&body, "<line x1=\"", Px(cx), "\" y1=\"", Px(cy), "\" x2=\"", Px(cx + radius + 6),
                    "\" y2=\"", Px(cy), "\" stroke=\"", kAxisColor, "\" stroke-width=\"0.8\"/>\n",
                    "<line x1=\"", Px(cx), "\" y1=\"", Px(cy), "\" x2=\"", Px(cx), "\" y2=\"",
                    Px(cy - radius - 6), "\" stroke=\"", kAxisColor, "\" stroke-width=\"0.8\"/>\n",
                    "<text x=\"", Px(cx + radius + 8), "\" y=\"", Px(cy + 4),
                    "\" font-size=\"10\">", XmlEscape(LegendLabel(d.x_label)), "</text>\n",
                    "<text x=\"", Px(cx), "\" y=\"", Px(cy - radius - 9),
                    "\" text-anchor=\"middle\" font-size=\"10\">", XmlEscape(LegendLabel(d.y_label)),
                    "</text>\n",
                    "<text x=\"", Px(cx), "\" y=\"", Px(cy + radius + 18),
                    "\" text-anchor=\"middle\" font-size=\"10\">gradient direction</text>\n",
                    "<text x=\"", Px(cx), "\" y=\"", Px(cy + radius + 31),
                    "\" text-anchor=\"middle\" font-size=\"10\">darker = smaller |g|</text>\n",
                    "</g>\n");
  }
  if (colorbar) {
    // A vertical viridis bar from |g| = 0 (bottom) to the largest |g| (top).
    const double bx = width - kLegendColumn + 30, bw = 16, by = top + 20;
    const double bh = std::clamp(ph - 40, 60.0, 240.0);
    body += "<g class=\"legend\">\n<defs><linearGradient id=\"magnitude\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
    for (int i = 0; i <= 10; ++i) {
      absl::StrAppend(&body, "<stop offset=\"", Px(i / 10.0), "\" stop-color=\"", Viridis(i / 10.0), "\"/>");
    }
    absl::StrAppend(&body, "</linearGradient></defs>\n",
                    "<text x=\"", Px(bx), "\" y=\"", Px(by - 8), "\" font-size=\"10\">|gradient|</text>\n",
                    "<rect x=\"", Px(bx), "\" y=\"", Px(by), "\" width=\"", Px(bw), "\" height=\"", Px(bh),
                    "\" fill=\"url(#magnitude)\" stroke=\"", kAxisColor, "\" stroke-width=\"0.5\"/>\n",
                    "<text x=\"", Px(bx + bw + 5), "\" y=\"", Px(by + 4), "\" font-size=\"10\">",
                    FormatNumber(max_mag, 4), "</text>\n",
                    "<text x=\"", Px(bx + bw + 5), "\" y=\"", Px(by + bh + 4), "\" font-size=\"10\">0</text>\n",
                    "</g>\n");
  }
  absl::StrAppend(&body, "<text x=\"", Px(ox + pw), "\" y=\"", Px(height - 6),
                  "\" text-anchor=\"end\" font-size=\"10\">", d.regions.size(),
                  " regions</text>\n");
  return Frame(width, height, d.title, body);
}

}  // namespace gradzoo::client::svg
