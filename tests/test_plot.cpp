// Tests for native/plot: line charts and confusion-matrix heatmaps rendered to a canvas and written as PNG.
#include "plot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

namespace ferkit {
// Readable colours in gtest failure messages.
void PrintTo(const Rgb& c, std::ostream* os) { *os << "rgb(" << +c.r << ", " << +c.g << ", " << +c.b << ")"; }
}  // namespace ferkit

namespace fs = std::filesystem;
using namespace ferkit;

namespace {

const Rgb kWhite{255, 255, 255};

LinePlot two_series_plot() {
  LinePlot p{"loss", "epoch", "cross-entropy", {{"train", {}}, {"validation", {}}}};
  for (int e = 1; e <= 30; ++e) {
    p.series[0].y.push_back(2.0 * std::exp(-e / 8.0) + 0.3);
    p.series[1].y.push_back(1.8 * std::exp(-e / 7.0) + 0.7);
  }
  return p;
}

std::vector<std::vector<long>> diagonal_matrix() {
  return {{90, 4, 6}, {3, 80, 17}, {5, 10, 85}};
}

long count_colour(const Canvas& c, Rgb colour, int x0, int y0, int x1, int y1) {
  long n = 0;
  for (int y = std::max(0, y0); y < std::min(c.height, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(c.width, x1); ++x) n += c.get_pixel(x, y) == colour;
  return n;
}

long count_not(const Canvas& c, Rgb background, int x0, int y0, int x1, int y1) {
  return static_cast<long>(std::max(0, std::min(c.width, x1) - std::max(0, x0))) *
             std::max(0, std::min(c.height, y1) - std::max(0, y0)) -
         count_colour(c, background, x0, y0, x1, y1);
}

double luminance(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b; }

// Pixels darker than any cell background could be: text printed in a light colour-scale cell.
long count_dark(const Canvas& c, int x0, int y0, int x1, int y1) {
  long n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) n += luminance(c.get_pixel(x, y)) < 40;
  return n;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ferkit_test_plot_" + std::to_string(getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

template <class F>
std::string thrown_message(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<nothing thrown>";
}

}  // namespace

TEST(PlotCanvas, PrimitivesClipAndDraw) {
  Canvas c(50, 40);
  EXPECT_EQ(c.rgb.size(), 50u * 40u * 3u);
  EXPECT_EQ(c.get_pixel(10, 10), kWhite);
  c.fill_rect(-10, -10, 100, 15, {1, 2, 3});  // clipped to rows 0-4, no crash
  EXPECT_EQ(c.get_pixel(0, 0), (Rgb{1, 2, 3}));
  EXPECT_EQ(c.get_pixel(49, 4), (Rgb{1, 2, 3}));
  EXPECT_EQ(c.get_pixel(49, 5), kWhite);
  c.set_pixel(-1, 100, {9, 9, 9});  // ignored
  c.line(5, 20.5, 45, 20.5, 2.0, {200, 0, 0});
  EXPECT_EQ(c.get_pixel(25, 20), (Rgb{200, 0, 0}));
  EXPECT_EQ(c.get_pixel(25, 30), kWhite);
  c.line(-100, -100, 200, 300, 3.0, {0, 0, 200});  // mostly off-canvas
}

TEST(PlotCanvas, TextStaysInItsBox) {
  Canvas c(200, 60);
  const std::string s = "Epoch 12: 0.93%";
  const int scale = 2, x = 10, y = 20;
  c.text(x, y, s, scale, {0, 0, 0});
  int w = Canvas::text_width(s, scale);
  EXPECT_GT(w, 0);
  long inside = count_not(c, kWhite, x, y, x + w, y + Canvas::text_height(scale) + 2 * scale);
  long total = count_not(c, kWhite, 0, 0, c.width, c.height);
  EXPECT_GT(inside, 50);
  EXPECT_EQ(inside, total);
  // Non-ASCII bytes are drawn as '?' rather than read out of the font's tables.
  c.text(0, 0, "caf\xc3\xa9\n", 1, {0, 0, 0});
  Canvas v(40, 200);
  v.text_vertical(5, 10, s, scale, {0, 0, 0});
  EXPECT_EQ(count_not(v, kWhite, 5, 10, 5 + 9 * scale, 10 + w), count_not(v, kWhite, 0, 0, v.width, v.height));
  EXPECT_EQ(count_not(v, kWhite, 0, 0, v.width, v.height), total);  // rotation keeps every pixel
}

TEST(PlotLines, CanvasSize) {
  Canvas one = render_line_plots({two_series_plot()});
  EXPECT_EQ(one.width, 640);
  EXPECT_EQ(one.height, 480);
  EXPECT_EQ(one.rgb.size(), 640u * 480u * 3u);
  Canvas two = render_line_plots({two_series_plot(), two_series_plot()}, 500, 300);
  EXPECT_EQ(two.width, 1000);
  EXPECT_EQ(two.height, 300);
  EXPECT_EQ(two.rgb.size(), 1000u * 300u * 3u);
}

TEST(PlotLines, SeriesColoursAppearInPlotArea) {
  Canvas c = render_line_plots({two_series_plot()});
  Rgb c0 = series_colour(0), c1 = series_colour(1);
  EXPECT_NE(c0, c1);
  // Far more pixels than a legend swatch: the curves are drawn.
  EXPECT_GT(count_colour(c, c0, 0, 0, c.width, c.height), 500);
  EXPECT_GT(count_colour(c, c1, 0, 0, c.width, c.height), 500);
  // A vertical strip through the middle of the panel (clear of the legend in a corner) crosses both curves,
  // and nothing in the series colours lies in the title band or the axis-label band.
  EXPECT_GT(count_colour(c, c0, c.width / 2 - 3, 40, c.width / 2 + 3, c.height - 60), 0);
  EXPECT_GT(count_colour(c, c1, c.width / 2 - 3, 40, c.width / 2 + 3, c.height - 60), 0);
  EXPECT_EQ(count_colour(c, c0, 0, 0, c.width, 30), 0);
  EXPECT_EQ(count_colour(c, c1, 0, c.height - 30, c.width, c.height), 0);
}

TEST(PlotLines, SeriesKeepTheirColourAcrossPanels) {
  Canvas c = render_line_plots({two_series_plot(), two_series_plot()});
  for (int panel = 0; panel < 2; ++panel) {
    int mid = panel * 640 + 320;
    EXPECT_GT(count_colour(c, series_colour(0), mid - 3, 0, mid + 3, c.height), 0) << "panel " << panel;
    EXPECT_GT(count_colour(c, series_colour(1), mid - 3, 0, mid + 3, c.height), 0) << "panel " << panel;
  }
}

TEST(PlotLines, NanValuesAreGaps) {
  const double nan = std::nan("");
  // Points at epochs 1-2 and 9-10 only: the middle of the plot is a gap.
  LinePlot p{"gaps", "epoch", "value", {{"s", {0.0, 1.0, nan, nan, nan, nan, nan, nan, 0.0, 1.0}}}};
  Canvas c;
  ASSERT_NO_THROW(c = render_line_plots({p}));
  EXPECT_GT(count_colour(c, series_colour(0), 0, 0, c.width, c.height), 50);
  EXPECT_EQ(count_colour(c, series_colour(0), c.width / 2 - 20, 40, c.width / 2 + 20, c.height - 60), 0);

  // Leading / trailing NaN, infinities, isolated points, a series that is all NaN, and one value: no crash.
  LinePlot q{"odd", "epoch", "value",
             {{"lead", {nan, nan, 0.5, 0.6, nan}},
              {"inf", {INFINITY, 0.2, -INFINITY, 0.3}},
              {"isolated", {nan, 0.4, nan, 0.45, nan}},
              {"all nan", {nan, nan, nan}},
              {"", {0.1}}}};
  EXPECT_NO_THROW(render_line_plots({q}));
  LinePlot all_nan{"nothing finite", "epoch", "value", {{"a", {nan, nan}}}};
  EXPECT_NO_THROW(render_line_plots({all_nan}));
  LinePlot single{"one point", "", "", {{"a", {3.0}}}};
  EXPECT_NO_THROW(render_line_plots({single}, 200, 150));
}

TEST(PlotLines, TitleAndLabelsAreDrawn) {
  LinePlot p = two_series_plot();
  Canvas c = render_line_plots({p});
  // Title band, x-axis label band and y-axis label strip all contain ink.
  EXPECT_GT(count_not(c, kWhite, 0, 0, c.width, 36), 40);
  EXPECT_GT(count_not(c, kWhite, 0, c.height - 30, c.width, c.height), 40);
  EXPECT_GT(count_not(c, kWhite, 0, 60, 30, c.height - 60), 40);
  p.title.clear();
  Canvas untitled = render_line_plots({p});
  EXPECT_EQ(count_not(untitled, kWhite, 0, 0, untitled.width, 8), 0);
}

TEST(PlotConfusion, DiagonalIsDarker) {
  const std::vector<std::string> names{"angry", "happy", "neutral"};
  auto m = diagonal_matrix();
  Canvas c = render_confusion("confusion", m, names);
  ConfusionLayout l = confusion_layout("confusion", m, names);
  EXPECT_EQ(c.width, l.width);
  EXPECT_EQ(c.height, l.height);
  ASSERT_GT(l.cell, 20);
  // Sample each cell's background near its top-left corner, away from the printed numbers.
  auto bg = [&](int i, int j) { return c.get_pixel(l.grid_x + j * l.cell + 4, l.grid_y + i * l.cell + 4); };
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      if (i != j) {
        EXPECT_LT(luminance(bg(i, i)), luminance(bg(i, j))) << "row " << i << " col " << j;
        EXPECT_LT(luminance(bg(j, j)), luminance(bg(i, j))) << "row " << i << " col " << j;
      }
  // Dark cells get white text, light cells dark text.
  EXPECT_GT(count_colour(c, kWhite, l.grid_x + 1, l.grid_y + 1, l.grid_x + l.cell - 1, l.grid_y + l.cell - 1), 20);
  Rgb light = bg(0, 1);
  EXPECT_GT(luminance(light), 200);
  int lx = l.grid_x + l.cell + 1, ly = l.grid_y + 1;
  EXPECT_GT(count_dark(c, lx, ly, lx + l.cell - 2, ly + l.cell - 2), 20);
  EXPECT_EQ(count_dark(c, l.grid_x + 1, l.grid_y + 1, l.grid_x + l.cell - 1, l.grid_y + l.cell - 1), 0);
}

TEST(PlotConfusion, EmptyRowAndLabelsDrawn) {
  const std::vector<std::string> names{"a", "b"};
  std::vector<std::vector<long>> m{{5, 0}, {0, 0}};  // no samples of class b
  Canvas c;
  ASSERT_NO_THROW(c = render_confusion("", m, names));
  ConfusionLayout l = confusion_layout("", m, names);
  // Class names left of the grid and below it.
  EXPECT_GT(count_not(c, kWhite, 0, l.grid_y, l.grid_x - 2, l.grid_y + 2 * l.cell), 20);
  EXPECT_GT(count_not(c, kWhite, l.grid_x, l.grid_y + 2 * l.cell + 2, l.grid_x + 2 * l.cell, c.height), 20);
  Canvas titled = render_confusion("A title", m, names);
  ConfusionLayout lt = confusion_layout("A title", m, names);
  EXPECT_GT(lt.grid_y, l.grid_y);
  EXPECT_GT(count_not(titled, kWhite, 0, 0, titled.width, lt.grid_y - 2), 40);
}

TEST(PlotPng, WritesDecodablePngs) {
  TempDir dir;
  std::string lines = (dir.path / "history.png").string();
  std::string conf = (dir.path / "confusion.png").string();
  write_line_plots_png(lines, {two_series_plot(), two_series_plot()}, 400, 300);
  const std::vector<std::string> names{"angry", "happy", "neutral"};
  write_confusion_png(conf, "confusion", diagonal_matrix(), names);

  int w = 0, h = 0, ch = 0;
  unsigned char* px = stbi_load(lines.c_str(), &w, &h, &ch, 3);
  ASSERT_NE(px, nullptr) << stbi_failure_reason();
  EXPECT_EQ(w, 800);
  EXPECT_EQ(h, 300);
  EXPECT_EQ(ch, 3);
  Canvas expected = render_line_plots({two_series_plot(), two_series_plot()}, 400, 300);
  EXPECT_TRUE(std::equal(expected.rgb.begin(), expected.rgb.end(), px));  // lossless
  stbi_image_free(px);

  px = stbi_load(conf.c_str(), &w, &h, &ch, 3);
  ASSERT_NE(px, nullptr) << stbi_failure_reason();
  Canvas cm = render_confusion("confusion", diagonal_matrix(), names);
  EXPECT_EQ(w, cm.width);
  EXPECT_EQ(h, cm.height);
  EXPECT_TRUE(std::equal(cm.rgb.begin(), cm.rgb.end(), px));
  stbi_image_free(px);

  // No temporary files left behind.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2u);
}

TEST(PlotPng, UnwritablePathThrowsNamingIt) {
  const std::string path = "/nonexistent-ferkit-dir/sub/plot.png";
  EXPECT_THROW(write_line_plots_png(path, {two_series_plot()}), std::runtime_error);
  EXPECT_NE(thrown_message([&] { write_line_plots_png(path, {two_series_plot()}); }).find(path), std::string::npos);
  const std::vector<std::string> names{"angry", "happy", "neutral"};
  EXPECT_THROW(write_confusion_png(path, "t", diagonal_matrix(), names), std::runtime_error);
  EXPECT_NE(thrown_message([&] { write_confusion_png(path, "t", diagonal_matrix(), names); }).find(path),
            std::string::npos);
}

TEST(PlotErrors, EmptyInputsThrowClearly) {
  EXPECT_THROW(render_line_plots({}), std::invalid_argument);
  EXPECT_NE(thrown_message([] { render_line_plots({}); }).find("no plots"), std::string::npos);
  LinePlot no_series{"loss", "epoch", "value", {}};
  EXPECT_THROW(render_line_plots({no_series}), std::invalid_argument);
  EXPECT_NE(thrown_message([&] { render_line_plots({no_series}); }).find("no series"), std::string::npos);
  LinePlot empty_series{"loss", "epoch", "value", {{"train", {}}, {"val", {}}}};
  EXPECT_THROW(render_line_plots({empty_series}), std::invalid_argument);
  EXPECT_THROW(render_line_plots({two_series_plot()}, 10, 10), std::invalid_argument);

  EXPECT_THROW(render_confusion("t", {}, {}), std::invalid_argument);
  EXPECT_NE(thrown_message([] { render_confusion("t", {}, {}); }).find("empty"), std::string::npos);
  EXPECT_THROW(render_confusion("t", {{1, 2}, {3}}, {"a", "b"}), std::invalid_argument);
  EXPECT_THROW(render_confusion("t", {{1, 2}, {3, 4}}, {"a"}), std::invalid_argument);
  EXPECT_THROW(render_confusion("t", {{1, -2}, {3, 4}}, {"a", "b"}), std::invalid_argument);

  // The file writers report bad input as runtime_error naming the file, and write nothing.
  TempDir dir;
  std::string path = (dir.path / "empty.png").string();
  EXPECT_THROW(write_line_plots_png(path, {}), std::runtime_error);
  EXPECT_NE(thrown_message([&] { write_confusion_png(path, "t", {}, {}); }).find(path), std::string::npos);
  EXPECT_FALSE(fs::exists(path));
}

// The reliability diagram: a bar up to each bin's accuracy, red where it falls short of the bin's confidence.
TEST(PlotReliability, BarsReachEachBinsAccuracy) {
  std::vector<ferkit::ReliabilityBin> bins(10);
  bins[8] = {100, 85.0, 50.0};  // confidence 0.85, accuracy 0.5: over-confident
  ferkit::Canvas c = ferkit::render_reliability("test", bins);
  // Plot area: x from 70 to 620 (confidence 0-1), y from 50 (accuracy 1) to 450 (accuracy 0).
  const int x = 70 + static_cast<int>(0.85 * 550);
  const ferkit::Rgb low = c.get_pixel(x, 50 + static_cast<int>(0.8 * 400));   // accuracy 0.2: inside the bar
  const ferkit::Rgb gap = c.get_pixel(x, 50 + static_cast<int>(0.3 * 400));   // accuracy 0.7: the red gap
  const ferkit::Rgb above = c.get_pixel(x, 50 + static_cast<int>(0.05 * 400));  // accuracy 0.95: nothing
  EXPECT_GT(low.b, low.r) << "the bar is blue";
  EXPECT_GT(gap.r, gap.b) << "the gap is red";
  EXPECT_GT(above.r, 200);
  EXPECT_GT(above.b, 200);
  EXPECT_THROW(ferkit::render_reliability("empty", std::vector<ferkit::ReliabilityBin>(10)), std::invalid_argument);
  EXPECT_THROW(ferkit::render_reliability("none", {}), std::invalid_argument);
}
