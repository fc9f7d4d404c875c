// SVG drawing of an exact 2-D linear-region partition (gradzoo partition --svg): one filled
// polygon per region, coloured by its gradient, on framed axes. Standard library + absl only,
// like svg.h (whose conventions it follows: data y grows upward, text is XML-escaped,
// non-finite values are skipped, the result is a standalone SVG document string).
//
// Colouring (PartitionColor):
//   * kDirection (default): hue = the direction of the region's 2-D gradient (atan2(gy, gx):
//     0 deg = +x is red, 120 deg green, 240 deg blue), value = 0.35 + 0.65 * |g| / max |g|,
//     so regions sharing a gradient share a colour; a zero gradient is light grey.
//   * kMagnitude: viridis of |g| / max |g|.
//   * kRegion: a 10-colour categorical palette cycling over the regions (shows the cells).
// Legends sit in a 150-px column right of the plot: a colour wheel for kDirection (the data
// axes' names mark +x and +y), a viridis bar from 0 to max |g| for kMagnitude, none for kRegion.
//
// Stable hooks: every region is one <polygon class="region"> whose "points" are pixel
// coordinates "x,y x,y ..." in the input order; the legend is <g class="legend">.
// Thread-safe (pure functions).
#ifndef GRADZOO_CLIENT_CLI_SVG_PARTITION_H_
#define GRADZOO_CLIENT_CLI_SVG_PARTITION_H_

#include <string>
#include <vector>

namespace gradzoo::client::svg {

struct PartitionRegionData {
  std::vector<double> vertices;  // [V, 2] data coordinates, V >= 3
  double gx = 0.0;               // the gradient used for colouring
  double gy = 0.0;
};

struct PartitionPlotData {
  std::vector<PartitionRegionData> regions;
  // The slice: the plotted data range.
  double x_min = 0.0, x_max = 1.0;
  double y_min = 0.0, y_max = 1.0;
  std::string title;
  std::string x_label;
  std::string y_label;
};

enum class PartitionColor { kDirection, kMagnitude, kRegion };

struct PartitionPlotOptions {
  // Whole SVG size in pixels; values below 200 are raised to 200.
  int width = 720;
  int height = 640;
  PartitionColor color = PartitionColor::kDirection;
  // Thin white region borders (off for very fine partitions).
  bool outlines = true;
  // One data unit spans the same pixels in x and y.
  bool equal_aspect = true;
};

// Renders the partition. An empty or invalid slice range (non-finite, or min >= max) gives a
// well-formed SVG frame saying so; regions with fewer than 3 finite vertices are skipped.
std::string PartitionPlot(const PartitionPlotData& d,
                          const PartitionPlotOptions& o = PartitionPlotOptions());

// The kDirection colour of gradient (gx, gy) when the largest magnitude is `max_magnitude`
// ("#rrggbb").
std::string DirectionColor(double gx, double gy, double max_magnitude);

}  // namespace gradzoo::client::svg

#endif  // GRADZOO_CLIENT_CLI_SVG_PARTITION_H_
