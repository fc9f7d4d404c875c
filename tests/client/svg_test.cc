#include "client/cli/svg.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gradzoo::client::svg {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ----- Helpers ---------------------------------------------------------------------------------

// A tiny XML well-formedness check, enough for our generated SVG: tags nest and balance, there
// is exactly one root element and it is <svg>, quoted attribute values are skipped over, and
// every '&' starts a known entity. Returns "" when fine, else what is wrong.
std::string CheckTagBalance(const std::string& xml) {
  std::vector<std::string> stack;
  bool root_closed = false;
  bool seen_root = false;
  size_t i = 0;
  while (i < xml.size()) {
    const char c = xml[i];
    if (c == '&') {
      bool known = false;
      for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"}) {
        if (xml.compare(i, std::string(e).size(), e) == 0) known = true;
      }
      if (!known) return absl::StrCat("bare '&' at ", i);
      ++i;
      continue;
    }
    if (c == '>') return absl::StrCat("stray '>' at ", i);
    if (c != '<') {
      if (root_closed && !std::isspace(static_cast<unsigned char>(c))) {
        return absl::StrCat("text after the root element at ", i);
      }
      if (!seen_root && !std::isspace(static_cast<unsigned char>(c))) {
        return absl::StrCat("text before the root element at ", i);
      }
      ++i;
      continue;
    }
    if (xml.compare(i, 4, "<!--") == 0) {
      const size_t end = xml.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    const bool closing = i + 1 < xml.size() && xml[i + 1] == '/';
    size_t j = i + (closing ? 2 : 1);
    const size_t name_start = j;
    while (j < xml.size() && (std::isalnum(static_cast<unsigned char>(xml[j])) || xml[j] == '-' ||
                              xml[j] == ':' || xml[j] == '_')) {
      ++j;
    }
    const std::string name = xml.substr(name_start, j - name_start);
    if (name.empty()) return absl::StrCat("tag without a name at ", i);
    char quote = 0;
    while (j < xml.size() && (quote != 0 || xml[j] != '>')) {
      if (quote != 0) {
        if (xml[j] == quote) {
          quote = 0;
        } else if (xml[j] == '<') {
          return absl::StrCat("'<' inside an attribute at ", j);
        }
      } else if (xml[j] == '"' || xml[j] == '\'') {
        quote = xml[j];
      }
      ++j;
    }
    if (j >= xml.size()) return absl::StrCat("unterminated tag <", name, " at ", i);
    const bool self_closing = xml[j - 1] == '/';
    if (closing) {
      if (stack.empty() || stack.back() != name) {
        return absl::StrCat("</", name, "> does not match <",
                            stack.empty() ? "(nothing)" : stack.back(), "> at ", i);
      }
      stack.pop_back();
      if (stack.empty()) root_closed = true;
    } else {
      if (root_closed) return absl::StrCat("second root element <", name, "> at ", i);
      if (!seen_root && name != "svg") return absl::StrCat("root is <", name, ">, not <svg>");
      seen_root = true;
      if (!self_closing) stack.push_back(name);
      if (self_closing && stack.empty()) root_closed = true;
    }
    i = j + 1;
  }
  if (!stack.empty()) return absl::StrCat("<", stack.back(), "> is never closed");
  if (!seen_root) return "no root element";
  return "";
}

void ExpectWellFormed(const std::string& svg) {
  EXPECT_TRUE(absl::StartsWith(svg, "<svg")) << svg.substr(0, 80);
  EXPECT_TRUE(absl::EndsWith(svg, "</svg>\n"));
  EXPECT_EQ(CheckTagBalance(svg), "");
}

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

struct Arrow {
  double tail_x, tail_y, tip_x, tip_y;
  double cx() const { return (tail_x + tip_x) / 2; }
  double cy() const { return (tail_y + tip_y) / 2; }
  double length() const { return std::hypot(tip_x - tail_x, tip_y - tail_y); }
};

// Parses every <path class="arrow" d="M tail L base M tip ..."> in document order.
std::vector<Arrow> ParseArrows(const std::string& svg) {
  std::vector<Arrow> arrows;
  const std::string key = "class=\"arrow\" d=\"";
  for (size_t pos = svg.find(key); pos != std::string::npos; pos = svg.find(key, pos + 1)) {
    Arrow a;
    double base_x, base_y;
    const int n = std::sscanf(svg.c_str() + pos + key.size(), "M%lf %lf L%lf %lf M%lf %lf",
                              &a.tail_x, &a.tail_y, &base_x, &base_y, &a.tip_x, &a.tip_y);
    if (n == 6) arrows.push_back(a);
  }
  return arrows;
}

// A grid on [0, 1]^2 (nx, ny >= 2) with (u, v) = f(x, y).
template <typename F>
QuiverData Field(int nx, int ny, F f) {
  QuiverData d;
  d.nx = nx;
  d.ny = ny;
  for (int i = 0; i < nx; ++i) d.xs.push_back(nx == 1 ? 0.5 : static_cast<double>(i) / (nx - 1));
  for (int j = 0; j < ny; ++j) d.ys.push_back(ny == 1 ? 0.5 : static_cast<double>(j) / (ny - 1));
  for (int j = 0; j < ny; ++j) {
    for (int i = 0; i < nx; ++i) {
      const auto [u, v] = f(d.xs[i], d.ys[j]);
      d.u.push_back(u);
      d.v.push_back(v);
    }
  }
  d.title = "field";
  d.x_label = "x";
  d.y_label = "y";
  return d;
}

std::pair<double, double> Shifted(double x, double y) { return {1 + x, 2 + y}; }

// ----- Quiver ----------------------------------------------------------------------------------

TEST(CheckTagBalanceTest, CatchesBrokenDocuments) {
  EXPECT_EQ(CheckTagBalance("<svg><g><rect/></g></svg>\n"), "");
  EXPECT_NE(CheckTagBalance("<svg><g></svg>"), "");
  EXPECT_NE(CheckTagBalance("<svg><g></svg></g>"), "");
  EXPECT_NE(CheckTagBalance("<svg>a & b</svg>"), "");
  EXPECT_NE(CheckTagBalance("<svg></svg><svg></svg>"), "");
  EXPECT_NE(CheckTagBalance("<svg><text>a<b</text></svg>"), "");
  EXPECT_EQ(CheckTagBalance("<svg><text a=\"x>y\">a &lt; b</text></svg>"), "");
}

TEST(QuiverPlotTest, IsWellFormedWithAxesTitleAndColorbar) {
  const std::string svg = QuiverPlot(Field(7, 5, Shifted), QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "width=\"640\" height=\"640\""));
  EXPECT_TRUE(absl::StrContains(svg, "class=\"title\""));
  EXPECT_TRUE(absl::StrContains(svg, ">field</text>"));
  EXPECT_TRUE(absl::StrContains(svg, "class=\"colorbar\""));
  EXPECT_TRUE(absl::StrContains(svg, "class=\"ticks\""));
  EXPECT_TRUE(absl::StrContains(svg, ">0.4</text>"));  // Nice ticks on [0, 1].
  EXPECT_TRUE(absl::StrContains(svg, ">1</text>"));
}

TEST(QuiverPlotTest, OneArrowPerGridPoint) {
  const std::string svg = QuiverPlot(Field(7, 5, Shifted), QuiverOptions());
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 7 * 5);
  EXPECT_EQ(Count(svg, "class=\"arrow-dot\""), 0);
  EXPECT_EQ(ParseArrows(svg).size(), 7u * 5u);
}

TEST(QuiverPlotTest, HonoursSize) {
  QuiverOptions o;
  o.width = 800;
  o.height = 500;
  const std::string svg = QuiverPlot(Field(3, 3, Shifted), o);
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "width=\"800\" height=\"500\""));
}

TEST(QuiverPlotTest, SubsamplesLargeGridsToAtMost40x40) {
  const std::string svg = QuiverPlot(Field(100, 90, Shifted), QuiverOptions());
  ExpectWellFormed(svg);
  // Strides ceil(100 / 40) = 3 and ceil(90 / 40) = 3 keep 34 x 30 points.
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 34 * 30);
  EXPECT_LE(Count(svg, "class=\"arrow\""), 40 * 40);

  const std::string exact = QuiverPlot(Field(40, 40, Shifted), QuiverOptions());
  EXPECT_EQ(Count(exact, "class=\"arrow\""), 40 * 40);

  QuiverOptions o;
  o.max_arrows_per_axis = 10;
  EXPECT_EQ(Count(QuiverPlot(Field(41, 10, Shifted), o), "class=\"arrow\""), 9 * 10);
}

TEST(QuiverPlotTest, ArrowPointsAlongUVWithSvgYDown) {
  for (const auto& [u, v] : std::vector<std::pair<double, double>>{
           {1, 2}, {-1, 2}, {3, -0.5}, {-2, -2}, {0, 1}, {1, 0}}) {
    SCOPED_TRACE(absl::StrCat("u = ", u, ", v = ", v));
    const std::string svg = QuiverPlot(
        Field(3, 3, [&](double, double) { return std::make_pair(u, v); }), QuiverOptions());
    const std::vector<Arrow> arrows = ParseArrows(svg);
    ASSERT_EQ(arrows.size(), 9u);
    const Arrow& a = arrows[0];
    const double dx = a.tip_x - a.tail_x, dy = a.tip_y - a.tail_y;
    // Data +v is pixel -y.
    if (u != 0) {
      EXPECT_EQ((dx > 0), (u > 0));
    }
    if (v != 0) {
      EXPECT_EQ((dy < 0), (v > 0));
    }
    // Same direction, not just same quadrant: (dx, dy) is parallel to (u, -v).
    EXPECT_NEAR(dx * (-v) - dy * u, 0, 1e-2 * a.length() * std::hypot(u, v));
  }
}

TEST(QuiverPlotTest, ArrowsAreCentredOnTheGridAndLongestIsNineTenthsOfACell) {
  // Magnitude grows with x; the right-most column holds the longest arrows.
  const std::string svg = QuiverPlot(
      Field(5, 5, [](double x, double) { return std::make_pair(0.0, 1 + x); }), QuiverOptions());
  const std::vector<Arrow> arrows = ParseArrows(svg);
  ASSERT_EQ(arrows.size(), 25u);
  // Row-major with y outer: arrows[0] and arrows[1] are neighbours along x.
  const double cell = arrows[1].cx() - arrows[0].cx();
  EXPECT_GT(cell, 20);
  EXPECT_NEAR(arrows[5].cy() - arrows[0].cy(), -cell, 0.05);  // Equal aspect, y up.
  double longest = 0;
  for (const Arrow& a : arrows) longest = std::max(longest, a.length());
  EXPECT_NEAR(longest, 0.9 * cell, 0.05);
  EXPECT_NEAR(arrows[0].length(), 0.9 * cell / 2, 0.05);  // |(0, 1)| / |(0, 2)|.
}

TEST(QuiverPlotTest, ColoursByMagnitudeAndLabelsTheColorbar) {
  const std::string svg =
      QuiverPlot(Field(5, 2, [](double x, double) { return std::make_pair(1 + 4 * x, 0.0); }),
                 QuiverOptions());
  EXPECT_TRUE(absl::StrContains(svg, "class=\"colorbar-max\">5</text>"));
  EXPECT_TRUE(absl::StrContains(svg, "class=\"colorbar-min\">1</text>"));
  EXPECT_TRUE(absl::StrContains(svg, absl::StrCat("stroke=\"", Viridis(0), "\"")));
  EXPECT_TRUE(absl::StrContains(svg, absl::StrCat("stroke=\"", Viridis(1), "\"")));
  EXPECT_TRUE(absl::StrContains(svg, absl::StrCat("stroke=\"", Viridis(0.5), "\"")));
}

TEST(QuiverPlotTest, ZeroVectorsAreDots) {
  // (u, v) = (y, x) vanishes at the origin only.
  const std::string svg = QuiverPlot(
      Field(4, 4, [](double x, double y) { return std::make_pair(y, x); }), QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 15);
  EXPECT_EQ(Count(svg, "class=\"arrow-dot\""), 1);
}

TEST(QuiverPlotTest, AllZeroFieldIsAGridOfDots) {
  const std::string svg = QuiverPlot(
      Field(6, 3, [](double, double) { return std::make_pair(0.0, 0.0); }), QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 0);
  EXPECT_EQ(Count(svg, "class=\"arrow-dot\""), 18);
  EXPECT_FALSE(absl::StrContains(svg, "nan"));
}

TEST(QuiverPlotTest, SkipsNonFiniteValues) {
  QuiverData d = Field(5, 4, Shifted);
  d.u[0] = kNaN;
  d.v[7] = kNaN;
  d.u[12] = kInf;
  std::string svg = QuiverPlot(d, QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 20 - 3);
  EXPECT_FALSE(absl::StrContains(svg, "nan"));
  EXPECT_FALSE(absl::StrContains(svg, "inf"));

  d.xs[2] = kNaN;  // Drops column 2 (indices 2, 7, 12, 17; 7 and 12 were already skipped).
  svg = QuiverPlot(d, QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 20 - 4 - 1);
  EXPECT_FALSE(absl::StrContains(svg, "nan"));

  // Nothing finite at all still gives a plot.
  for (double& u : d.u) u = kNaN;
  svg = QuiverPlot(d, QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 0);
}

TEST(QuiverPlotTest, HandlesSingleRowColumnAndPoint) {
  for (const auto& [nx, ny] : std::vector<std::pair<int, int>>{{1, 6}, {6, 1}, {1, 1}}) {
    SCOPED_TRACE(absl::StrCat(nx, " x ", ny));
    const std::string svg = QuiverPlot(Field(nx, ny, Shifted), QuiverOptions());
    ExpectWellFormed(svg);
    const std::vector<Arrow> arrows = ParseArrows(svg);
    ASSERT_EQ(static_cast<int>(arrows.size()), nx * ny);
    for (const Arrow& a : arrows) {
      EXPECT_TRUE(std::isfinite(a.tail_x) && std::isfinite(a.tip_y));
      EXPECT_GT(a.length(), 1);
    }
    EXPECT_FALSE(absl::StrContains(svg, "nan"));
  }
}

TEST(QuiverPlotTest, EscapesText) {
  QuiverData d = Field(3, 3, Shifted);
  d.title = "grad <of> \"loss\" & 'more'";
  d.x_label = "x<0>";
  d.y_label = "a&b";
  QuiverOptions o;
  o.colorbar_label = "|<g>|";
  const std::string svg = QuiverPlot(d, o);
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "grad &lt;of&gt; &quot;loss&quot; &amp; &apos;more&apos;"));
  EXPECT_FALSE(absl::StrContains(svg, "<of>"));
  EXPECT_TRUE(absl::StrContains(svg, "x&lt;0&gt;"));
  EXPECT_TRUE(absl::StrContains(svg, "a&amp;b"));
  EXPECT_TRUE(absl::StrContains(svg, "|&lt;g&gt;|"));
}

TEST(QuiverPlotTest, InconsistentDataGivesAnErrorPlotNotACrash) {
  QuiverData d = Field(3, 3, Shifted);
  d.u.pop_back();
  std::string svg = QuiverPlot(d, QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "invalid quiver data"));
  EXPECT_EQ(Count(svg, "class=\"arrow\""), 0);

  d = Field(3, 3, Shifted);
  d.nx = 4;
  svg = QuiverPlot(d, QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "xs has 3 values, expected nx = 4"));

  d = QuiverData();
  svg = QuiverPlot(d, QuiverOptions());
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "invalid quiver data"));
}

// ----- Line plot -------------------------------------------------------------------------------

LinePlotData Sweep() {
  LinePlotData d;
  d.title = "orthogonality vs lambda";
  d.x_label = "lambda";
  d.y_label = "score";
  d.series.push_back({"layer 0", {0, 0.25, 0.5, 0.75, 1}, {0.9, 0.7, 0.5, 0.35, 0.2}, {}});
  d.series.push_back({"layer 1 <b>", {0, 0.5, 1}, {0.8, 0.6, 0.1}, {0.05, 0.1, 0.02}});
  d.series.push_back({"", {0, 1}, {0.3, 0.4}, {}});  // Unnamed: no legend entry.
  return d;
}

TEST(LinePlotTest, OnePolylinePerSeriesAndLegendEntries) {
  const std::string svg = LinePlot(Sweep(), LinePlotOptions());
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "width=\"640\" height=\"480\""));
  EXPECT_EQ(Count(svg, "<polyline class=\"series\""), 3);
  EXPECT_EQ(Count(svg, "class=\"legend-entry\""), 2);
  EXPECT_TRUE(absl::StrContains(svg, ">layer 0</text>"));
  EXPECT_TRUE(absl::StrContains(svg, ">layer 1 &lt;b&gt;</text>"));
  EXPECT_TRUE(absl::StrContains(svg, ">orthogonality vs lambda</text>"));
  EXPECT_TRUE(absl::StrContains(svg, ">lambda</text>"));
  EXPECT_TRUE(absl::StrContains(svg, ">score</text>"));
  EXPECT_EQ(Count(svg, "class=\"marker\""), 5 + 3 + 2);
  EXPECT_EQ(Count(svg, "class=\"errorbars\""), 1);
  EXPECT_TRUE(absl::StrContains(svg, "class=\"ticks\""));
}

TEST(LinePlotTest, OptionsTurnOffMarkersAndLegend) {
  LinePlotOptions o;
  o.markers = false;
  o.legend = false;
  const std::string svg = LinePlot(Sweep(), o);
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"marker\""), 0);
  EXPECT_EQ(Count(svg, "class=\"legend-entry\""), 0);
  EXPECT_EQ(Count(svg, "<polyline class=\"series\""), 3);
}

TEST(LinePlotTest, DropsNonFinitePointsButKeepsOnePolyline) {
  LinePlotData d;
  d.series.push_back({"s", {0, 1, 2, 3}, {1, kNaN, 3, 4}, {}});
  d.series.push_back({"t", {0, kInf, 2}, {1, 2, 3}, {0.1, 0.1, kNaN}});
  const std::string svg = LinePlot(d, LinePlotOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "<polyline class=\"series\""), 2);
  EXPECT_EQ(Count(svg, "class=\"marker\""), 3 + 2);
  EXPECT_FALSE(absl::StrContains(svg, "nan"));
  EXPECT_FALSE(absl::StrContains(svg, "inf"));
  // The first polyline has 3 points ("x,y x,y x,y").
  const size_t start = svg.find("points=\"") + 8;
  const std::string points = svg.substr(start, svg.find('"', start) - start);
  EXPECT_EQ(Count(points, ","), 3);
}

TEST(LinePlotTest, NoDataIsStillAPlot) {
  LinePlotData d;
  d.title = "empty";
  std::string svg = LinePlot(d, LinePlotOptions());
  ExpectWellFormed(svg);
  EXPECT_TRUE(absl::StrContains(svg, "no data"));
  EXPECT_EQ(Count(svg, "<polyline"), 0);

  d.series.push_back({"only nan", {kNaN}, {1}, {}});
  svg = LinePlot(d, LinePlotOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"legend-entry\""), 1);
}

TEST(LinePlotTest, SinglePointSeries) {
  LinePlotData d;
  d.series.push_back({"one", {2}, {5}, {}});
  const std::string svg = LinePlot(d, LinePlotOptions());
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "<polyline class=\"series\""), 1);
  EXPECT_FALSE(absl::StrContains(svg, "nan"));
}

// ----- Building blocks -------------------------------------------------------------------------

TEST(NiceTicksTest, UsesOneTwoFiveSteps) {
  std::vector<double> t = NiceTicks(0, 1, 6);
  ASSERT_EQ(t.size(), 6u);
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(t[k], 0.2 * k, 1e-12);

  t = NiceTicks(-0.026, 1.026, 6);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_EQ(t.front(), 0);
  EXPECT_NEAR(t.back(), 1, 1e-12);

  t = NiceTicks(-3.7, 12.2, 5);
  ASSERT_FALSE(t.empty());
  for (size_t k = 1; k < t.size(); ++k) EXPECT_NEAR(t[k] - t[k - 1], 5, 1e-9);
  EXPECT_EQ(t.front(), 0);

  t = NiceTicks(-1, 1, 5);
  EXPECT_EQ(t, (std::vector<double>{-1, -0.5, 0, 0.5, 1}));

  t = NiceTicks(1000, 1700, 4);
  for (double v : t) EXPECT_EQ(std::fmod(v, 200), 0);

  EXPECT_EQ(NiceTicks(3, 3), std::vector<double>{3});
  EXPECT_TRUE(NiceTicks(2, 1).empty());
  EXPECT_TRUE(NiceTicks(kNaN, 1).empty());
}

TEST(FormatNumberTest, IsCompact) {
  EXPECT_EQ(FormatNumber(0), "0");
  EXPECT_EQ(FormatNumber(-0.0), "0");
  EXPECT_EQ(FormatNumber(0.5), "0.5");
  EXPECT_EQ(FormatNumber(0.1 + 0.2), "0.3");
  EXPECT_EQ(FormatNumber(1200), "1200");
  EXPECT_EQ(FormatNumber(-3), "-3");
  EXPECT_EQ(FormatNumber(2.5e-5), "2.5e-5");
  EXPECT_EQ(FormatNumber(1e6), "1e6");
  EXPECT_EQ(FormatNumber(1.23456789, 3), "1.23");
  EXPECT_EQ(FormatNumber(kNaN), "nan");
  EXPECT_EQ(FormatNumber(-kInf), "-inf");
}

TEST(ViridisTest, EndpointsMidpointAndClamping) {
  EXPECT_EQ(Viridis(0), "#440154");
  EXPECT_EQ(Viridis(1), "#fde725");
  EXPECT_EQ(Viridis(0.5), "#21918c");
  EXPECT_EQ(Viridis(-3), "#440154");
  EXPECT_EQ(Viridis(7), "#fde725");
  EXPECT_EQ(Viridis(kNaN), "#440154");
  EXPECT_NE(Viridis(0.3), Viridis(0.31));
}

TEST(XmlEscapeTest, EscapesMarkupAndControlCharacters) {
  EXPECT_EQ(XmlEscape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
  EXPECT_EQ(XmlEscape(std::string("x\x01y\tz", 5)), "x?y\tz");
  EXPECT_EQ(XmlEscape("λ ∇"), "λ ∇");  // UTF-8 passes through.
}

// ----- WriteFile -------------------------------------------------------------------------------

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(WriteFileTest, WritesAndReplacesAtomically) {
  const std::string path = testing::TempDir() + "/svg_test_write.svg";
  std::remove(path.c_str());
  ASSERT_TRUE(WriteFile(path, "<svg>first</svg>\n").ok());
  EXPECT_EQ(ReadAll(path), "<svg>first</svg>\n");
  ASSERT_TRUE(WriteFile(path, "second").ok());
  EXPECT_EQ(ReadAll(path), "second");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  std::remove(path.c_str());
}

TEST(WriteFileTest, ReportsErrorsClearly) {
  const std::string path = testing::TempDir() + "/no/such/dir/plot.svg";
  const absl::Status s = WriteFile(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(s.message(), path)) << s;

  EXPECT_EQ(WriteFile("", "x").code(), absl::StatusCode::kInvalidArgument);

  // Renaming over a directory fails, and leaves no temporary file behind.
  const std::string dir = testing::TempDir() + "/svg_test_dir";
  mkdir(dir.c_str(), 0755);
  const absl::Status r = WriteFile(dir, "x");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.message(), "rename")) << r;
  struct stat st;
  EXPECT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace gradzoo::client::svg
