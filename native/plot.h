// Small PNG plotting for the native trainer: line charts of a training history (loss / accuracy curves) and
// a labelled confusion-matrix heatmap. No dependencies beyond stb (stb_image_write for PNG, stb_easy_font for
// text). Rendering goes to an in-memory RGB Canvas; the write_* functions encode it to PNG and write the file
// atomically (temporary file + rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "metrics.h"  // ReliabilityBin

namespace ferkit {

struct Series {
  std::string name;
  std::vector<double> y;  // y[i] is the value at x = i+1 (epoch); NaN / infinite values are gaps
};

struct LinePlot {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
};

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Rgb& o) const { return !(*this == o); }
};

// An RGB raster (row-major, 3 bytes a pixel, top row first) with a few explicit drawing primitives. All
// drawing is clipped to the canvas.
struct Canvas {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3

  Canvas() = default;
  Canvas(int w, int h, Rgb background = {255, 255, 255});

  bool inside(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  Rgb get_pixel(int x, int y) const;  // requires inside(x, y)
  void set_pixel(int x, int y, Rgb c);
  // Mixes c over the pixel with weight alpha in [0, 1].
  void blend_pixel(int x, int y, Rgb c, double alpha);
  void fill_rect(int x, int y, int w, int h, Rgb c);
  void outline_rect(int x, int y, int w, int h, Rgb c);  // 1 px border, inside the rectangle
  // An anti-aliased line of the given thickness (pixel centres are at integer + 0.5).
  void line(double x0, double y0, double x1, double y1, double thickness, Rgb c);
  void dot(double x, double y, double radius, Rgb c);  // anti-aliased filled disc
  // Text in stb_easy_font's bitmap font magnified scale times; (x, y) is the top-left of the capitals, which
  // are text_height(scale) pixels tall (descenders reach 2 * scale below). Non-ASCII bytes print as '?'.
  void text(int x, int y, const std::string& s, int scale, Rgb c);
  // The same text rotated 90 degrees anticlockwise (reads bottom to top); (x, y) is the top-left of the
  // rotated box, which is text_height-with-descenders wide and text_width tall.
  void text_vertical(int x, int y, const std::string& s, int scale, Rgb c);
  static int text_width(const std::string& s, int scale);  // inked width in pixels
  static int text_height(int scale) { return 7 * scale; }  // capital height in pixels
};

// Renders one or more line charts side by side into one PNG (e.g. loss and accuracy curves of a training
// history: train vs validation), with axes, tick labels (nice round numbers), gridlines, a legend and titles.
// A series keeps its palette colour across panels (series i has colour i in every panel). NaN values are gaps.
// Writes atomically. Throws std::runtime_error naming the file on failure (including invalid input).
void write_line_plots_png(const std::string& path, const std::vector<LinePlot>& plots, int width_per_plot = 640,
                          int height = 480);

// A labelled confusion-matrix heatmap: rows = true class, cols = predicted, with class names on both axes,
// each cell's count and its row-normalised percentage printed in the cell, a colour scale from white to dark
// blue by row-normalised value (text switches to white on dark cells), axis titles "true" / "predicted", a
// colour bar and a title. Throws std::runtime_error naming the file on failure (including invalid input).
void write_confusion_png(const std::string& path, const std::string& title,
                         const std::vector<std::vector<long>>& matrix, const std::vector<std::string>& class_names);

// A reliability diagram (calibration): for each confidence bin of [0, 1], a bar up to the accuracy of the
// predictions in it, the gap to the bin's mean confidence shaded red, the diagonal of perfect calibration, and
// below, the share of predictions in each bin; the title carries the expected calibration error. Throws
// std::runtime_error naming the file on failure (no bins, or no predictions in any).
void write_reliability_png(const std::string& path, const std::string& title, const std::vector<ReliabilityBin>& bins);
Canvas render_reliability(const std::string& title, const std::vector<ReliabilityBin>& bins);

// The same rendering into memory, used by the above and by tests. Throw std::invalid_argument on bad input:
// no plots, a plot without series, no data points at all, a panel smaller than 200x150; an empty or
// non-square matrix, negative counts, or a class-name count that does not match the matrix.
Canvas render_line_plots(const std::vector<LinePlot>& plots, int width_per_plot = 640, int height = 480);
Canvas render_confusion(const std::string& title, const std::vector<std::vector<long>>& matrix,
                        const std::vector<std::string>& class_names);

// Where render_confusion puts things: image size, top-left of the cell grid and the cell size (cell (i, j)
// spans [grid_x + j*cell, grid_x + (j+1)*cell) x [grid_y + i*cell, ...)). Validates like render_confusion.
struct ConfusionLayout {
  int width = 0, height = 0, grid_x = 0, grid_y = 0, cell = 0;
};
ConfusionLayout confusion_layout(const std::string& title, const std::vector<std::vector<long>>& matrix,
                                 const std::vector<std::string>& class_names);

// Encodes a canvas as PNG bytes / writes it as a PNG file atomically (std::runtime_error naming the file).
std::vector<uint8_t> encode_png(const Canvas& canvas);
void write_png(const std::string& path, const Canvas& canvas);

// The fixed series palette (10 distinct colours, cycled).
Rgb series_colour(size_t index);

}  // namespace ferkit
