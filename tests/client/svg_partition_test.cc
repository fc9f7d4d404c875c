// client/cli/svg_partition: one <polygon class="region"> per drawable region, placed in the
// plot frame, coloured by gradient direction / magnitude / region, well-formed on bad input.
#include "client/cli/svg_partition.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/svg.h"

namespace gradzoo::client::svg {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::smatch> Regions(const std::string& svg) {
  static const std::regex re("<polygon class=\"region\" points=\"([^\"]*)\" fill=\"(#[0-9a-f]{6})\"");
  std::vector<std::smatch> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back(*it);
  }
  return out;
}

TEST(SvgPartitionTest, OnePolygonPerRegionInsideTheFrame) {
  PartitionPlotData d;
  d.x_min = 0, d.x_max = 2, d.y_min = 0, d.y_max = 1;
  d.title = "a < b & c";
  // The whole slice as one region, then two halves with other gradients, then bad regions.
  d.regions.push_back({{0, 0, 2, 0, 2, 1, 0, 1}, 1, 0});
  d.regions.push_back({{0, 0, 1, 0, 1, 1, 0, 1}, 1, 0});
  d.regions.push_back({{1, 0, 2, 0, 2, 1, 1, 1}, 0, 0.5});
  d.regions.push_back({{0, 0, 1, 1}, 1, 1});                      // two vertices: skipped
  d.regions.push_back({{0, 0, NAN, 1, 1, 1, 0, 1}, 1, 1});        // three finite: drawn
  const std::string svg = PartitionPlot(d);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("a &lt; b &amp; c"));
  const auto regions = Regions(svg);
  ASSERT_EQ(regions.size(), 4u);
  // The first region's corners are the frame's corners.
  std::smatch frame;
  ASSERT_TRUE(std::regex_search(svg, frame, std::regex("<rect x=\"([^\"]+)\" y=\"([^\"]+)\" width=\"([^\"]+)\" height=\"([^\"]+)\" fill=\"none\"")));
  const double x = std::stod(frame[1]), y = std::stod(frame[2]), w = std::stod(frame[3]), h = std::stod(frame[4]);
  EXPECT_NEAR(w, 2 * h, 0.02);  // equal aspect: 2 x 1 data units
  std::istringstream pts(regions[0][1].str());
  std::vector<std::pair<double, double>> corners;
  std::string pair;
  while (pts >> pair) {
    const size_t comma = pair.find(',');
    corners.push_back({std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1))});
  }
  ASSERT_EQ(corners.size(), 4u);
  EXPECT_NEAR(corners[0].first, x, 0.01);        // (0, 0) is bottom-left
  EXPECT_NEAR(corners[0].second, y + h, 0.01);
  EXPECT_NEAR(corners[2].first, x + w, 0.01);    // (2, 1) is top-right
  EXPECT_NEAR(corners[2].second, y, 0.01);
  // Same gradient, same colour; direction colouring has a legend.
  EXPECT_EQ(regions[0][2].str(), regions[1][2].str());
  EXPECT_NE(regions[0][2].str(), regions[2][2].str());
  EXPECT_THAT(svg, HasSubstr("<g class=\"legend\">"));
  EXPECT_THAT(svg, HasSubstr("5 regions"));
}

TEST(SvgPartitionTest, Colours) {
  // Hue = direction (0 deg red, 90 deg yellow-green, 180 deg cyan), value 0.35 + 0.65 |g| / max.
  EXPECT_EQ(DirectionColor(1, 0, 1), "#ff2626");
  EXPECT_EQ(DirectionColor(-1, 0, 1), "#26ffff");
  EXPECT_EQ(DirectionColor(0, 1, 1), "#93ff26");
  EXPECT_EQ(DirectionColor(0.5, 0, 1), "#ac1a1a");  // value 0.675
  EXPECT_EQ(DirectionColor(0, 0, 1), "#d9d9d9");
  EXPECT_EQ(DirectionColor(NAN, 0, 1), "#d9d9d9");

  PartitionPlotData d;
  d.regions.push_back({{0, 0, 1, 0, 0, 1}, 0, 0});
  d.regions.push_back({{1, 0, 1, 1, 0, 1}, 0, 2});
  PartitionPlotOptions o;
  o.color = PartitionColor::kMagnitude;
  auto regions = Regions(PartitionPlot(d, o));
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0][2].str(), Viridis(0.0));
  EXPECT_EQ(regions[1][2].str(), Viridis(1.0));
  // The magnitude legend: a viridis bar labelled 0 .. max |g| = 2.
  EXPECT_THAT(PartitionPlot(d, o), HasSubstr("<g class=\"legend\">"));
  EXPECT_THAT(PartitionPlot(d, o), HasSubstr("fill=\"url(#magnitude)\""));
  EXPECT_THAT(PartitionPlot(d, o), HasSubstr(">2</text>"));
  o.color = PartitionColor::kRegion;
  regions = Regions(PartitionPlot(d, o));
  EXPECT_EQ(regions[0][2].str(), "#1f77b4");
  EXPECT_EQ(regions[1][2].str(), "#ff7f0e");
}

// Every text's estimated extent (DejaVu Sans, the widest common sans: 0.62 em per character)
// lies inside the canvas, for every colouring and canvas width: the legend is never clipped.
TEST(SvgPartitionTest, TextStaysInsideTheCanvas) {
  PartitionPlotData d;
  d.title = "regions";
  d.x_label = "x1";
  d.y_label = "a very long axis name";
  d.regions.push_back({{0, 0, 1, 0, 0, 1}, 0.3, 0.1});
  d.regions.push_back({{1, 0, 1, 1, 0, 1}, -1, 2});
  static const std::regex text_re(
      "<text x=\"([-0-9.]+)\" y=\"[-0-9.]+\"( text-anchor=\"(start|middle|end)\")?"
      "( font-size=\"([0-9]+)\")?[^>]*>([^<]*)</text>");
  for (int width : {300, 720, 1200}) {
    for (auto color : {PartitionColor::kDirection, PartitionColor::kMagnitude, PartitionColor::kRegion}) {
      PartitionPlotOptions o;
      o.width = width;
      o.color = color;
      const std::string svg = PartitionPlot(d, o);
      int texts = 0;
      for (auto it = std::sregex_iterator(svg.begin(), svg.end(), text_re); it != std::sregex_iterator(); ++it) {
        const std::smatch& m = *it;
        if (m[0].str().find("rotate(") != std::string::npos) continue;  // the vertical y label
        const double x = std::stod(m[1].str());
        const double size = m[5].matched ? std::stod(m[5].str()) : 12.0;
        const double extent = 0.62 * size * static_cast<double>(m[6].str().size());
        const std::string anchor = m[3].matched ? m[3].str() : "start";
        const double lo = anchor == "start" ? x : anchor == "middle" ? x - extent / 2 : x - extent;
        EXPECT_GE(lo, 0) << width << " " << m[0].str();
        EXPECT_LE(lo + extent, width) << width << " " << m[0].str();
        ++texts;
      }
      EXPECT_GT(texts, 8);
    }
  }
}

TEST(SvgPartitionTest, BadRangeIsAWellFormedFrame) {
  PartitionPlotData d;
  d.x_min = 1, d.x_max = 1;
  d.regions.push_back({{0, 0, 1, 0, 0, 1}, 1, 0});
  const std::string svg = PartitionPlot(d);
  EXPECT_THAT(svg, HasSubstr("invalid slice range"));
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_TRUE(Regions(svg).empty());
}

}  // namespace
}  // namespace gradzoo::client::svg
