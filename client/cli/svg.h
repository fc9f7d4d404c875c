// Dependency-free SVG plotting for the gradzoo CLI: a quiver (vector-field) plot for gradient
// fields over a 2-D input grid, and a line plot for scalar sweeps (e.g. orthogonality score vs
// lambda). Standard library + absl only: no gRPC, no torch, no rendering library.
//
// Every plot function is pure: it takes plain data and returns a complete, standalone SVG 1.1
// document as a string (no XML declaration; it starts with "<svg" and ends with "</svg>\n"). Write
// it with WriteFile() or embed it in HTML. All functions are thread-safe (no shared state).
//
// Coordinate conventions (both plots):
//   * Data space is the usual mathematical one: x grows to the right, y grows upward.
//   * SVG pixel space has its origin at the top-left and y grows DOWNWARD, so a data point
//     (x, y) is drawn at pixel (left + (x - x_min) * sx, bottom - (y - y_min) * sy).
//   * Text passed in (titles, labels, series names) is plain text; it is XML-escaped here.
//   * Non-finite values (NaN, +-inf) are skipped, never drawn and never used to set a range.
//
// Stable hooks for tests and post-processing (CSS, scripts): every quiver arrow is one element
// with class="arrow", every zero-length vector one element with class="arrow-dot"; every
// line-plot series is one <polyline class="series">, every legend entry one
// <g class="legend-entry">.

#ifndef GRADZOO_CLIENT_CLI_SVG_H_
#define GRADZOO_CLIENT_CLI_SVG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace gradzoo::client::svg {

// ---------------------------------------------------------------------------------------------
// Quiver plot
// ---------------------------------------------------------------------------------------------

// A vector field sampled on a rectilinear grid.
//
// Preconditions: nx >= 1, ny >= 1, xs.size() == nx, ys.size() == ny,
// u.size() == v.size() == nx * ny. The vector at grid point (xs[i], ys[j]) is
// (u[j * nx + i], v[j * nx + i]): row-major with y outer, i.e. each row of nx values shares one
// y. xs and ys need not be sorted or uniform, but arrows are sized from the smallest grid
// spacing, so a very uneven grid gives short arrows. If the preconditions do not hold,
// QuiverPlot still returns a well-formed SVG: an empty frame with the title and a message saying
// what is wrong (the CLI should validate first; this keeps a bad response from crashing it).
struct QuiverData {
  int nx = 0;
  int ny = 0;
  std::vector<double> xs;  // nx grid x coordinates.
  std::vector<double> ys;  // ny grid y coordinates.
  std::vector<double> u;   // ny * nx x-components, index j * nx + i.
  std::vector<double> v;   // ny * nx y-components, index j * nx + i.
  std::string title;
  std::string x_label;
  std::string y_label;
};

struct QuiverOptions {
  // Size of the whole SVG in pixels (plot, axes, title and colour bar included). Values below
  // 200 are raised to 200.
  int width = 640;
  int height = 640;
  // At most this many arrows along each axis. A larger grid is subsampled with a uniform stride
  // s = ceil(n / max_arrows_per_axis), keeping indices 0, s, 2s, ...; so by default no more
  // than 40 x 40 arrows are drawn. Values below 1 are treated as 1.
  int max_arrows_per_axis = 40;
  // Length of the longest drawn arrow as a fraction of the (drawn) grid cell, i.e. of the
  // smallest pixel spacing between neighbouring drawn grid points in x or y. Arrow length is
  // proportional to |(u, v)|, so arrows do not overlap their neighbours when this is <= 1.
  double longest_arrow_fraction = 0.9;
  // If true, one data unit spans the same number of pixels in x and y (the plot area is
  // shrunk along one axis and centred), so arrow angles are true angles in data space. If
  // false the plot fills the available area and angles are screen angles: an arrow always
  // points along pixel direction (u, -v) whatever the axis scales ("uv" angles).
  bool equal_aspect = true;
  // Text next to the colour bar.
  std::string colorbar_label = "|(u, v)|";
};

// Renders `d` as a standalone SVG document. What it draws:
//   * a framed plot area with "nice" ticks (1, 2, 5 x 10^k) and tick labels on the bottom and
//     left, axis labels, and the title centred on top;
//   * one arrow per drawn grid point with finite coordinates and finite (u, v): a shaft plus a
//     filled triangular head, as a single <path class="arrow">. The arrow is centred on its grid
//     point (pivot "mid"), points along (u, v) in data space (i.e. along (u, -v) in pixels), has
//     length |(u, v)| / max|(u, v)| * longest_arrow_fraction * cell, and is coloured by
//     |(u, v)| on a viridis colour map normalised to [min, max] of the drawn magnitudes
//     (to [0, max] when all drawn magnitudes are equal). Its path data is exactly
//     "M tail_x tail_y L base_x base_y M tip_x tip_y L ... Z" (tail first, then the tip of the
//     head), so it can be parsed;
//   * a zero vector, or one whose arrow would be shorter than one pixel, is drawn as a small
//     <circle class="arrow-dot"> at its grid point instead (so an all-zero field is a grid of
//     dots);
//   * grid points with a non-finite coordinate or component are skipped;
//   * a vertical colour bar to the right of the plot, labelled with the min (bottom) and max
//     (top) magnitude and with o.colorbar_label.
// An axis with a single distinct coordinate (nx == 1, ny == 1, or all-equal values) is drawn
// with a range centred on that coordinate and as wide as the other axis's range (width 1 when
// both axes are single), so a single row or column of arrows stays readable.
std::string QuiverPlot(const QuiverData& d, const QuiverOptions& o = QuiverOptions());

// ---------------------------------------------------------------------------------------------
// Line plot
// ---------------------------------------------------------------------------------------------

// One named series of points. x.size() must equal y.size(); yerr is either empty (no error
// bars) or the same size, holding the half-height of a symmetric error bar at each point
// (negative or non-finite entries draw no bar). Extra elements beyond the shortest of x and y
// (and yerr, when non-empty) are ignored. Points are connected in the given order.
struct LineSeries {
  std::string name;  // Legend text; an empty name leaves the series out of the legend.
  std::vector<double> x;
  std::vector<double> y;
  std::vector<double> yerr;
};

struct LinePlotData {
  std::vector<LineSeries> series;
  std::string title;
  std::string x_label;
  std::string y_label;
};

struct LinePlotOptions {
  // Size of the whole SVG in pixels. Values below 200 are raised to 200.
  int width = 640;
  int height = 480;
  // Draw a circle marker at every point.
  bool markers = true;
  // Draw the legend (to the right of the plot area) when at least one series has a name.
  bool legend = true;
};

// Renders `d` as a standalone SVG document: framed plot area with nice ticks, tick labels, axis
// labels and title; per series (colours from a 10-colour categorical palette, cycling) exactly
// one <polyline class="series"> through its finite points in order (a point with non-finite x
// or y is dropped and its neighbours are joined), optional markers and vertical error bars
// (y - yerr to y + yerr, with caps); and a legend with one <g class="legend-entry"> per named
// series. The axis ranges cover every finite point and error bar with a 5% margin. A series
// with no finite point draws nothing but keeps its colour and legend entry. With no finite
// point at all the axes span [0, 1] and say "no data".
std::string LinePlot(const LinePlotData& d, const LinePlotOptions& o = LinePlotOptions());

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

// Writes `contents` to `path` atomically: it writes a temporary file in the same directory,
// fsyncs it, and renames it over `path`, so a reader sees either the old file or the complete
// new one, never a partial one. The new file has mode 0644. On failure the temporary file is
// removed, `path` is untouched, and the status (code from errno, e.g. NOT_FOUND for a missing
// directory, PERMISSION_DENIED) names the path and the step that failed. An empty path is
// INVALID_ARGUMENT.
absl::Status WriteFile(const std::string& path, const std::string& contents);

// ---------------------------------------------------------------------------------------------
// Building blocks, exposed for tests and for other plots.
// ---------------------------------------------------------------------------------------------

// "Nice" tick values covering [lo, hi]: every multiple of step that lies in [lo, hi] (with a
// tolerance of 1e-9 step), where step is 1, 2 or 5 x 10^k chosen so that about `target`
// (>= 2) ticks result. Values within 1e-9 step of zero are exactly 0. Returns {lo} when
// lo == hi, and an empty vector for a non-finite or reversed range.
std::vector<double> NiceTicks(double lo, double hi, int target = 6);

// Compact number text: up to `significant_digits` significant digits, no trailing zeros, no
// "+" or leading zeros in exponents, e.g. 0 -> "0", 0.5 -> "0.5", 1200 -> "1200",
// 2.5e-5 -> "2.5e-5", 1e6 -> "1e6", NaN -> "nan", -inf -> "-inf".
std::string FormatNumber(double value, int significant_digits = 6);

// Viridis colour map approximated by linear interpolation between 9 anchors of matplotlib's
// viridis (t = 0, 1/8, ..., 1). `t` is clamped to [0, 1]; NaN maps to 0. Returns "#rrggbb".
std::string Viridis(double t);

// Escapes text for use in XML character data and attribute values (&, <, >, ", '). Control
// characters that XML 1.0 forbids (all below 0x20 except tab, newline, CR) become '?'.
std::string XmlEscape(const std::string& text);

}  // namespace gradzoo::client::svg

#endif  // GRADZOO_CLIENT_CLI_SVG_H_
