// PNG plotting: line charts and a confusion-matrix heatmap, drawn with a few explicit raster primitives and
// stb_easy_font's bitmap font (scaled up), encoded with stb_image_write.
#include "plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "files.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#include <stb_easy_font.h>

namespace ferkit {

namespace {

const Rgb kWhite{255, 255, 255};
const Rgb kText{30, 30, 30};
const Rgb kAxis{70, 70, 70};
const Rgb kGrid{228, 228, 228};
const int kBarGap = 26, kBarWidth = 18;  // confusion colour bar

// ---- font ----

struct Quad {
  int x0, y0, x1, y1;  // font units, [x0, x1) x [y0, y1)
};

std::string printable(const std::string& s) {
  std::string out = s;
  for (char& ch : out) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (u == '\n' || u == '\t' || u == '\r') ch = ' ';
    else if (u < 32 || u > 126) ch = '?';
  }
  return out;
}

std::vector<Quad> font_quads(const std::string& s) {
  std::string text = printable(s);
  if (text.empty()) return {};
  // stb_easy_font uses ~270 bytes per character on average; leave plenty of room.
  std::vector<char> buf(text.size() * 1024 + 1024);
  int n = stb_easy_font_print(0.f, 0.f, text.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
  std::vector<Quad> quads;
  quads.reserve(static_cast<size_t>(n));
  for (int q = 0; q < n; ++q) {
    const float* v0 = reinterpret_cast<const float*>(buf.data() + q * 64);       // vertex 0: top-left
    const float* v2 = reinterpret_cast<const float*>(buf.data() + q * 64 + 32);  // vertex 2: bottom-right
    quads.push_back({static_cast<int>(std::lround(v0[0])), static_cast<int>(std::lround(v0[1])),
                     static_cast<int>(std::lround(v2[0])), static_cast<int>(std::lround(v2[1]))});
  }
  return quads;
}

// Shortens s with ".." until it is at most max_width pixels wide at this scale.
std::string fit_text(const std::string& s, int scale, int max_width) {
  if (Canvas::text_width(s, scale) <= max_width) return s;
  std::string t = s;
  while (!t.empty() && Canvas::text_width(t + "..", scale) > max_width) t.pop_back();
  return t.empty() ? std::string() : t + "..";
}

// ---- numbers ----

std::string format_number(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.0" -> "0.0"
  return s;
}

// Digits after the point needed to print multiples of step exactly (0.25 -> 2, 5 -> 0).
int decimals_for(double step) {
  for (int d = 0; d <= 9; ++d) {
    double scaled = step * std::pow(10.0, d);
    if (std::fabs(scaled - std::round(scaled)) < 1e-6 * scaled) return d;
  }
  return 9;
}

// The smallest step of the form {1, 2, 2.5, 5} * 10^k giving at most max_ticks intervals over span.
double nice_step(double span, int max_ticks) {
  double raw = span / std::max(1, max_ticks);
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

// Integer step 1, 2, 5, 10, 20, 25, 50, 100, ... giving at most max_ticks intervals over span.
long nice_int_step(double span, int max_ticks) {
  for (long p = 1; p < 1000000000000000L; p *= 10)
    for (long m10 : {10L, 20L, 25L, 50L}) {
      if (m10 * p % 10 != 0) continue;  // 2.5 is not an integer step
      long step = m10 * p / 10;
      if (span / static_cast<double>(step) <= max_ticks) return step;
    }
  return 1000000000000000L;
}

// ---- colours ----

Rgb lerp(Rgb a, Rgb b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  auto mix = [t](uint8_t x, uint8_t y) { return static_cast<uint8_t>(std::lround(x + (y - x) * t)); };
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

// White to dark blue through the ColorBrewer "Blues" stops.
Rgb blues(double t) {
  static const Rgb stops[] = {{255, 255, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  int i = std::min(3, static_cast<int>(t));
  return lerp(stops[i], stops[i + 1], t - i);
}

bool is_dark(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 135; }

// Distance from (px, py) to the segment (x0, y0)-(x1, y1).
double segment_distance(double px, double py, double x0, double y0, double x1, double y1) {
  double dx = x1 - x0, dy = y1 - y0;
  double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? std::clamp(((px - x0) * dx + (py - y0) * dy) / len2, 0.0, 1.0) : 0.0;
  double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

// Coverage of a clipped region, filled by segments and dots and then composited once, so that the joints
// of a polyline are not blended twice.
struct CoverageMask {
  int x, y, w, h;
  std::vector<float> a;
  CoverageMask(int x_, int y_, int w_, int h_)
      : x(x_), y(y_), w(std::max(0, w_)), h(std::max(0, h_)), a(static_cast<size_t>(w) * h, 0.f) {}
  void segment(double x0, double y0, double x1, double y1, double thickness) {
    double r = thickness / 2;
    int bx0 = std::max(x, static_cast<int>(std::floor(std::min(x0, x1) - r - 1)));
    int bx1 = std::min(x + w - 1, static_cast<int>(std::ceil(std::max(x0, x1) + r + 1)));
    int by0 = std::max(y, static_cast<int>(std::floor(std::min(y0, y1) - r - 1)));
    int by1 = std::min(y + h - 1, static_cast<int>(std::ceil(std::max(y0, y1) + r + 1)));
    for (int py = by0; py <= by1; ++py)
      for (int px = bx0; px <= bx1; ++px) {
        double d = segment_distance(px + 0.5, py + 0.5, x0, y0, x1, y1);
        float cov = static_cast<float>(std::clamp(r + 0.5 - d, 0.0, 1.0));
        float& dst = a[static_cast<size_t>(py - y) * w + (px - x)];
        dst = std::max(dst, cov);
      }
  }
  void composite(Canvas& c, Rgb colour) const {
    for (int j = 0; j < h; ++j)
      for (int i = 0; i < w; ++i) {
        float cov = a[static_cast<size_t>(j) * w + i];
        if (cov > 0) c.blend_pixel(x + i, y + j, colour, cov);
      }
  }
};

// ---- line plots ----

struct Range {
  double lo, hi;
};

Range data_range(const LinePlot& p) {
  double mn = INFINITY, mx = -INFINITY;
  for (const Series& s : p.series)
    for (double v : s.y)
      if (std::isfinite(v)) {
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
  if (!(mn <= mx)) return {0.0, 1.0};  // nothing finite: empty axes
  double span = mx - mn;
  if (span <= 1e-12 * std::max(1.0, std::fabs(mx))) {
    double d = mx != 0 ? std::fabs(mx) * 0.05 : 0.5;
    return {mn - d, mx + d};
  }
  return {mn - 0.05 * span, mx + 0.05 * span};
}

std::vector<double> ticks_in(double lo, double hi, double step) {
  std::vector<double> t;
  for (double k = std::ceil(lo / step - 1e-9);; k += 1) {
    double v = k * step;
    if (v > hi + 1e-9 * step) break;
    if (std::fabs(v) < step * 1e-6) v = 0;
    t.push_back(v);
  }
  return t;
}

void draw_panel(Canvas& c, int ox, int oy, int W, int H, const LinePlot& p) {
  const int s = 2;              // text scale for labels
  const int th = Canvas::text_height(s);
  const int desc = 2 * s;       // descender depth
  const int tick = 5;

  // Title: 3x if it fits, else 2x, else shortened.
  int title_scale = H >= 300 && Canvas::text_width(p.title, 3) <= W - 24 ? 3 : 2;
  std::string title = fit_text(p.title, title_scale, W - 24);
  int top = title.empty() ? 16 : 12 + Canvas::text_height(title_scale) + 18;
  int bottom = tick + 7 + th + desc + 10 + (p.xlabel.empty() ? 0 : th + desc + 8);
  int right = 24;

  // Y axis: range and ticks first, since the label widths decide the left margin.
  Range yr = data_range(p);
  int plot_h_est = H - top - bottom;
  double ystep = nice_step(yr.hi - yr.lo, std::max(2, plot_h_est / 55));
  std::vector<double> yticks = ticks_in(yr.lo, yr.hi, ystep);
  int ydec = decimals_for(ystep);
  std::vector<std::string> ylabels;
  int ylabel_w = 0;
  for (double v : yticks) {
    ylabels.push_back(format_number(v, ydec));
    ylabel_w = std::max(ylabel_w, Canvas::text_width(ylabels.back(), s));
  }
  int left = 10 + (p.ylabel.empty() ? 0 : th + desc + 10) + ylabel_w + 6 + tick;

  int px = ox + left, py = oy + top, pw = W - left - right, ph = H - top - bottom;
  if (pw < 30 || ph < 30)
    throw std::invalid_argument("plot \"" + p.title + "\": panel " + std::to_string(W) + "x" + std::to_string(H) +
                                " is too small for its labels");

  // X axis: epochs 1..n.
  size_t n = 0;
  for (const Series& se : p.series) n = std::max(n, se.y.size());
  double xmin = 1, xmax = static_cast<double>(n);
  if (n <= 1) xmin = 0, xmax = 2;
  const int xpad = 10;  // keeps the first and last points (and their dots) clear of the frame
  auto X = [&](double x) { return px + xpad + (x - xmin) / (xmax - xmin) * (pw - 1 - 2 * xpad) + 0.5; };
  auto Y = [&](double y) { return py + (yr.hi - y) / (yr.hi - yr.lo) * (ph - 1) + 0.5; };
  int xlab_w = Canvas::text_width(std::to_string(static_cast<long>(xmax)), s);
  long xstep = nice_int_step(xmax - xmin, std::max(1, pw / (xlab_w + 36)));
  std::vector<double> xticks;
  for (long k = static_cast<long>(std::ceil(xmin / xstep)) * xstep; k <= xmax; k += xstep)
    if (k >= xmin) xticks.push_back(static_cast<double>(k));
  // Label epoch 1 too when it is clear of the first multiple of the step.
  if (xmin == 1 && (xticks.empty() || xticks[0] != 1) &&
      (xticks.empty() || X(xticks[0]) - X(1) >= xlab_w + 14))
    xticks.insert(xticks.begin(), 1.0);

  // Plot area: gridlines, frame, ticks and tick labels.
  c.fill_rect(px, py, pw, ph, kWhite);
  for (double v : yticks) {
    int yy = static_cast<int>(std::floor(Y(v)));
    c.fill_rect(px, yy, pw, 1, kGrid);
  }
  for (double v : xticks) {
    int xx = static_cast<int>(std::floor(X(v)));
    c.fill_rect(xx, py, 1, ph, kGrid);
  }
  c.outline_rect(px - 1, py - 1, pw + 2, ph + 2, kAxis);
  for (size_t i = 0; i < yticks.size(); ++i) {
    int yy = static_cast<int>(std::floor(Y(yticks[i])));
    c.fill_rect(px - 1 - tick, yy, tick, 1, kAxis);
    int tw = Canvas::text_width(ylabels[i], s);
    c.text(px - 1 - tick - 5 - tw, yy - th / 2, ylabels[i], s, kText);
  }
  for (double v : xticks) {
    int xx = static_cast<int>(std::floor(X(v)));
    c.fill_rect(xx, py + ph + 1, 1, tick, kAxis);
    std::string lab = std::to_string(static_cast<long>(v));
    c.text(xx - Canvas::text_width(lab, s) / 2, py + ph + 1 + tick + 6, lab, s, kText);
  }

  // Titles.
  if (!title.empty()) {
    int tw = Canvas::text_width(title, title_scale);
    int tx = std::clamp(px + pw / 2 - tw / 2, ox + 12, ox + W - 12 - tw);
    c.text(tx, oy + 12, title, title_scale, kText);
  }
  if (!p.xlabel.empty()) {
    std::string xl = fit_text(p.xlabel, s, pw);
    c.text(px + pw / 2 - Canvas::text_width(xl, s) / 2, py + ph + 1 + tick + 6 + th + desc + 8, xl, s, kText);
  }
  if (!p.ylabel.empty()) {
    std::string yl = fit_text(p.ylabel, s, ph);
    int tw = Canvas::text_width(yl, s);
    c.text_vertical(ox + 10, py + ph / 2 - tw / 2, yl, s, kText);
  }

  // Series: 2.5 px anti-aliased polylines; NaN / infinite values break the line; isolated points (and every
  // point of a short history) get a dot.
  bool markers = n <= 20;
  for (size_t si = 0; si < p.series.size(); ++si) {
    const std::vector<double>& y = p.series[si].y;
    CoverageMask mask(px, py, pw, ph);
    for (size_t i = 0; i < y.size(); ++i) {
      if (!std::isfinite(y[i])) continue;
      double x0 = X(static_cast<double>(i + 1)), y0 = Y(y[i]);
      bool prev = i > 0 && std::isfinite(y[i - 1]);
      bool next = i + 1 < y.size() && std::isfinite(y[i + 1]);
      if (next) mask.segment(x0, y0, X(static_cast<double>(i + 2)), Y(y[i + 1]), 2.5);
      if (markers || (!prev && !next)) mask.segment(x0, y0, x0, y0, 6.0);
    }
    mask.composite(c, series_colour(si));
  }

  // Legend: in whichever inner corner the curves cross least; 1x text when 2x would fill the plot.
  int ls = 2, row_h = 0, swatch = 0, pad = 0, lw = 0, lh = 0;
  std::vector<std::string> names;
  for (int scale : {2, 1}) {
    ls = scale;
    row_h = 13 * ls, swatch = 13 * ls, pad = 4 * ls;
    names.clear();
    int name_w = 0;
    for (size_t si = 0; si < p.series.size(); ++si) {
      std::string nm = p.series[si].name.empty() ? "series " + std::to_string(si + 1) : p.series[si].name;
      names.push_back(fit_text(nm, ls, std::max(40, pw / 2)));
      name_w = std::max(name_w, Canvas::text_width(names.back(), ls));
    }
    lw = 2 * pad + swatch + 4 * ls + name_w + 2;
    lh = 2 * pad + static_cast<int>(names.size()) * row_h - 3 * ls;
    if (lw <= pw * 0.5 && lh <= ph * 0.5) break;
  }
  const int inset = 10;
  struct Corner {
    int x, y;
  };
  Corner corners[4] = {{px + pw - inset - lw, py + inset},
                       {px + inset, py + inset},
                       {px + pw - inset - lw, py + ph - inset - lh},
                       {px + inset, py + ph - inset - lh}};
  int best = 0;
  long best_hits = -1;
  for (int k = 0; k < 4; ++k) {
    long hits = 0;
    for (const Series& se : p.series)
      for (size_t i = 0; i < se.y.size(); ++i) {
        if (!std::isfinite(se.y[i])) continue;
        bool next = i + 1 < se.y.size() && std::isfinite(se.y[i + 1]);
        double x0 = X(static_cast<double>(i + 1)), y0 = Y(se.y[i]);
        double x1 = next ? X(static_cast<double>(i + 2)) : x0, y1 = next ? Y(se.y[i + 1]) : y0;
        for (int t = 0; t <= 16; ++t) {
          double sx = x0 + (x1 - x0) * t / 16, sy = y0 + (y1 - y0) * t / 16;
          if (sx >= corners[k].x - 4 && sx <= corners[k].x + lw + 4 && sy >= corners[k].y - 4 &&
              sy <= corners[k].y + lh + 4)
            ++hits;
        }
      }
    if (best_hits < 0 || hits < best_hits) best_hits = hits, best = k;
  }
  int lx = corners[best].x, ly = corners[best].y;
  c.fill_rect(lx, ly, lw, lh, kWhite);
  c.outline_rect(lx, ly, lw, lh, {190, 190, 190});
  for (size_t si = 0; si < names.size(); ++si) {
    int ry = ly + pad + static_cast<int>(si) * row_h;
    double cy = ry + Canvas::text_height(ls) / 2.0;
    CoverageMask m(lx + 1, ly + 1, lw - 2, lh - 2);
    m.segment(lx + pad, cy, lx + pad + swatch, cy, ls == 2 ? 3.0 : 2.0);
    m.composite(c, series_colour(si));
    c.text(lx + pad + swatch + 4 * ls, ry, names[si], ls, kText);
  }
}

std::vector<uint8_t> encode_or_throw(const Canvas& c) {
  if (c.width <= 0 || c.height <= 0 || c.rgb.size() != static_cast<size_t>(c.width) * c.height * 3)
    throw std::runtime_error("cannot encode an empty or inconsistent canvas as PNG");
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    const uint8_t* p = static_cast<const uint8_t*>(data);
    v->insert(v->end(), p, p + size);
  };
  if (!stbi_write_png_to_func(sink, &out, c.width, c.height, 3, c.rgb.data(), c.width * 3))
    throw std::runtime_error("PNG encoding failed");
  return out;
}

}  // namespace

// ---- Canvas ----

Canvas::Canvas(int w, int h, Rgb background) : width(w), height(h) {
  if (w <= 0 || h <= 0) throw std::invalid_argument("canvas size must be positive");
  rgb.resize(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = background.r;
    rgb[i + 1] = background.g;
    rgb[i + 2] = background.b;
  }
}

Rgb Canvas::get_pixel(int x, int y) const {
  size_t i = (static_cast<size_t>(y) * width + x) * 3;
  return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

void Canvas::set_pixel(int x, int y, Rgb c) {
  if (!inside(x, y)) return;
  size_t i = (static_cast<size_t>(y) * width + x) * 3;
  rgb[i] = c.r;
  rgb[i + 1] = c.g;
  rgb[i + 2] = c.b;
}

void Canvas::blend_pixel(int x, int y, Rgb c, double alpha) {
  if (!inside(x, y) || alpha <= 0) return;
  if (alpha >= 1) return set_pixel(x, y, c);
  set_pixel(x, y, lerp(get_pixel(x, y), c, alpha));
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
  int x0 = std::max(0, x), y0 = std::max(0, y), x1 = std::min(width, x + w), y1 = std::min(height, y + h);
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) set_pixel(xx, yy, c);
}

void Canvas::outline_rect(int x, int y, int w, int h, Rgb c) {
  if (w <= 0 || h <= 0) return;
  fill_rect(x, y, w, 1, c);
  fill_rect(x, y + h - 1, w, 1, c);
  fill_rect(x, y, 1, h, c);
  fill_rect(x + w - 1, y, 1, h, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, double thickness, Rgb c) {
  double r = thickness / 2 + 1;
  int bx = static_cast<int>(std::floor(std::min(x0, x1) - r)), by = static_cast<int>(std::floor(std::min(y0, y1) - r));
  int bw = static_cast<int>(std::ceil(std::max(x0, x1) + r)) - bx + 1;
  int bh = static_cast<int>(std::ceil(std::max(y0, y1) + r)) - by + 1;
  int cx0 = std::max(0, bx), cy0 = std::max(0, by);
  int cx1 = std::min(width, bx + bw), cy1 = std::min(height, by + bh);
  if (cx1 <= cx0 || cy1 <= cy0) return;
  CoverageMask m(cx0, cy0, cx1 - cx0, cy1 - cy0);
  m.segment(x0, y0, x1, y1, thickness);
  m.composite(*this, c);
}

void Canvas::dot(double x, double y, double radius, Rgb c) { line(x, y, x, y, 2 * radius, c); }

void Canvas::text(int x, int y, const std::string& s, int scale, Rgb c) {
  for (const Quad& q : font_quads(s))
    fill_rect(x + q.x0 * scale, y + q.y0 * scale, (q.x1 - q.x0) * scale, (q.y1 - q.y0) * scale, c);
}

void Canvas::text_vertical(int x, int y, const std::string& s, int scale, Rgb c) {
  // Text-space point (u, v) goes to (x + v, y + W - u), W being the inked width.
  int W = text_width(s, scale);
  for (const Quad& q : font_quads(s))
    fill_rect(x + q.y0 * scale, y + W - q.x1 * scale, (q.y1 - q.y0) * scale, (q.x1 - q.x0) * scale, c);
}

int Canvas::text_width(const std::string& s, int scale) {
  std::string t = printable(s);
  if (t.empty()) return 0;
  // stb_easy_font_width includes the 2-unit gap after the last glyph.
  return std::max(0, stb_easy_font_width(t.data()) - 2) * scale;
}

// ---- palette ----

Rgb series_colour(size_t index) {
  static const Rgb palette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                                {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  return palette[index % (sizeof palette / sizeof palette[0])];
}

// ---- line plots ----

Canvas render_line_plots(const std::vector<LinePlot>& plots, int width_per_plot, int height) {
  if (plots.empty()) throw std::invalid_argument("render_line_plots: no plots given");
  if (width_per_plot < 200 || height < 150)
    throw std::invalid_argument("render_line_plots: panel size " + std::to_string(width_per_plot) + "x" +
                                std::to_string(height) + " is below the minimum 200x150");
  if (static_cast<double>(width_per_plot) * plots.size() * height > 1e8)
    throw std::invalid_argument("render_line_plots: image too large");
  bool any_point = false;
  for (size_t i = 0; i < plots.size(); ++i) {
    if (plots[i].series.empty())
      throw std::invalid_argument("render_line_plots: plot " + std::to_string(i + 1) + " (\"" + plots[i].title +
                                  "\") has no series");
    for (const Series& s : plots[i].series) any_point = any_point || !s.y.empty();
  }
  if (!any_point) throw std::invalid_argument("render_line_plots: no data points in any series");
  Canvas c(width_per_plot * static_cast<int>(plots.size()), height);
  for (size_t i = 0; i < plots.size(); ++i)
    draw_panel(c, static_cast<int>(i) * width_per_plot, 0, width_per_plot, height, plots[i]);
  return c;
}

// ---- confusion matrix ----

namespace {

struct ConfusionGeometry {
  ConfusionLayout layout;
  std::vector<std::string> col_names, row_names;  // shortened to fit
  std::string title;
  int title_scale = 3, title_w = 0;
};

ConfusionGeometry confusion_geometry(const std::string& title, const std::vector<std::vector<long>>& matrix,
                                     const std::vector<std::string>& class_names) {
  const size_t n = matrix.size();
  if (n == 0) throw std::invalid_argument("render_confusion: empty confusion matrix");
  for (size_t i = 0; i < n; ++i) {
    if (matrix[i].size() != n)
      throw std::invalid_argument("render_confusion: matrix is not square (row " + std::to_string(i) + " has " +
                                  std::to_string(matrix[i].size()) + " entries, expected " + std::to_string(n) +
                                  ")");
    for (long v : matrix[i])
      if (v < 0) throw std::invalid_argument("render_confusion: negative count in row " + std::to_string(i));
  }
  if (class_names.size() != n)
    throw std::invalid_argument("render_confusion: " + std::to_string(class_names.size()) +
                                " class names for a " + std::to_string(n) + "x" + std::to_string(n) + " matrix");

  ConfusionGeometry g;
  const int s = 2, th = Canvas::text_height(s), desc = 2 * s, margin = 16;
  // Cell size: wide enough for "100.0%" and for the column labels (within limits).
  int label_w = 0;
  for (const std::string& nm : class_names) label_w = std::max(label_w, Canvas::text_width(nm, s));
  int cell = std::max(84, std::min(label_w + 24, 180));
  if (static_cast<long>(cell) * static_cast<long>(n) > 3000) cell = std::max(12, static_cast<int>(3000 / n));
  int row_w = 0;
  for (const std::string& nm : class_names) {
    g.col_names.push_back(fit_text(nm, s, cell - 6));
    g.row_names.push_back(fit_text(nm, s, 220));
    row_w = std::max(row_w, Canvas::text_width(g.row_names.back(), s));
  }

  g.title = printable(title);
  int title_h = g.title.empty() ? 0 : Canvas::text_height(3) + 22;
  const int G = cell * static_cast<int>(n);
  int gx = margin + th + desc + 12 + row_w + 10;  // "true" (rotated), row labels
  int gy = margin + title_h;
  int W = gx + G + kBarGap + kBarWidth + 6 + 5 + Canvas::text_width("100%", s) + margin;
  int H = gy + G + 8 + th + desc + 12 + th + desc + margin;
  g.title_w = Canvas::text_width(g.title, g.title_scale);
  if (g.title_w + 2 * margin > W) {
    g.title_scale = 2;
    g.title = fit_text(g.title, g.title_scale, W - 2 * margin);
    g.title_w = Canvas::text_width(g.title, g.title_scale);
  }
  g.layout = {W, H, gx, gy, cell};
  return g;
}

}  // namespace

ConfusionLayout confusion_layout(const std::string& title, const std::vector<std::vector<long>>& matrix,
                                 const std::vector<std::string>& class_names) {
  return confusion_geometry(title, matrix, class_names).layout;
}

Canvas render_confusion(const std::string& title, const std::vector<std::vector<long>>& matrix,
                        const std::vector<std::string>& class_names) {
  const ConfusionGeometry geo = confusion_geometry(title, matrix, class_names);
  const size_t n = matrix.size();
  const int s = 2, th = Canvas::text_height(s), desc = 2 * s, margin = 16;
  const int W = geo.layout.width, H = geo.layout.height, gx = geo.layout.grid_x, gy = geo.layout.grid_y;
  const int cell = geo.layout.cell, G = cell * static_cast<int>(n);
  const std::vector<std::string>&col_names = geo.col_names, &row_names = geo.row_names;
  const int bar_gap = kBarGap, bar_w = kBarWidth;
  Canvas c(W, H);

  if (!geo.title.empty())
    c.text(std::clamp(gx + G / 2 - geo.title_w / 2, margin, W - margin - geo.title_w), margin, geo.title,
           geo.title_scale, kText);

  // Cells.
  for (size_t i = 0; i < n; ++i) {
    long total = 0;
    for (long v : matrix[i]) total += v;
    for (size_t j = 0; j < n; ++j) {
      double frac = total > 0 ? static_cast<double>(matrix[i][j]) / total : 0.0;
      Rgb bg = blues(frac);
      int cx = gx + static_cast<int>(j) * cell, cy = gy + static_cast<int>(i) * cell;
      c.fill_rect(cx, cy, cell, cell, bg);
      Rgb fg = is_dark(bg) ? kWhite : kText;
      std::string count = std::to_string(matrix[i][j]);
      char pct[32];
      if (total > 0) std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * frac);
      else std::snprintf(pct, sizeof pct, "-");
      for (int ts : {2, 1}) {
        int tth = Canvas::text_height(ts), gap = 3 * ts + 2;
        int w1 = Canvas::text_width(count, ts), w2 = Canvas::text_width(pct, ts);
        if (std::max(w1, w2) > cell - 6 || 2 * tth + gap > cell - 6) continue;
        int y0 = cy + (cell - (2 * tth + gap)) / 2;
        c.text(cx + (cell - w1) / 2, y0, count, ts, fg);
        c.text(cx + (cell - w2) / 2, y0 + tth + gap, pct, ts, fg);
        break;
      }
    }
  }
  // Thin separators between cells and a frame around the grid.
  for (size_t k = 1; k < n; ++k) {
    c.fill_rect(gx + static_cast<int>(k) * cell, gy, 1, G, {235, 235, 235});
    c.fill_rect(gx, gy + static_cast<int>(k) * cell, G, 1, {235, 235, 235});
  }
  c.outline_rect(gx - 1, gy - 1, G + 2, G + 2, kAxis);

  // Class names: rows right-aligned left of the grid, columns centred below it.
  for (size_t k = 0; k < n; ++k) {
    int cy = gy + static_cast<int>(k) * cell + cell / 2 - th / 2;
    c.text(gx - 10 - Canvas::text_width(row_names[k], s), cy, row_names[k], s, kText);
    int cx = gx + static_cast<int>(k) * cell + cell / 2 - Canvas::text_width(col_names[k], s) / 2;
    c.text(cx, gy + G + 8, col_names[k], s, kText);
  }
  // Axis titles.
  c.text(gx + G / 2 - Canvas::text_width("predicted", s) / 2, gy + G + 8 + th + desc + 12, "predicted", s, kText);
  c.text_vertical(margin, gy + G / 2 - Canvas::text_width("true", s) / 2, "true", s, kText);

  // Colour bar: 100% at the top, 0% at the bottom.
  int bx = gx + G + bar_gap;
  for (int yy = 0; yy < G; ++yy) c.fill_rect(bx, gy + yy, bar_w, 1, blues(1.0 - static_cast<double>(yy) / (G - 1)));
  c.outline_rect(bx - 1, gy - 1, bar_w + 2, G + 2, kAxis);
  for (int p = 0; p <= 100; p += 25) {
    int yy = gy + static_cast<int>(std::lround((100 - p) / 100.0 * (G - 1)));
    c.fill_rect(bx + bar_w + 1, yy, 5, 1, kAxis);
    std::string lab = std::to_string(p) + "%";
    c.text(bx + bar_w + 1 + 5 + 4, std::clamp(yy - th / 2, gy - th / 2, gy + G - th), lab, s, kText);
  }
  return c;
}

// ---- output ----

std::vector<uint8_t> encode_png(const Canvas& canvas) { return encode_or_throw(canvas); }

void write_png(const std::string& path, const Canvas& canvas) {
  try {
    std::vector<uint8_t> png = encode_or_throw(canvas);
    write_file_atomic(path, png.data(), png.size());
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write PNG " + path + ": " + e.what());
  }
}

void write_line_plots_png(const std::string& path, const std::vector<LinePlot>& plots, int width_per_plot,
                          int height) {
  Canvas c;
  try {
    c = render_line_plots(plots, width_per_plot, height);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write PNG " + path + ": " + e.what());
  }
  write_png(path, c);
}

void write_confusion_png(const std::string& path, const std::string& title,
                         const std::vector<std::vector<long>>& matrix, const std::vector<std::string>& class_names) {
  Canvas c;
  try {
    c = render_confusion(title, matrix, class_names);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write PNG " + path + ": " + e.what());
  }
  write_png(path, c);
}

// ---- reliability diagram ----

Canvas render_reliability(const std::string& title, const std::vector<ReliabilityBin>& bins) {
  if (bins.empty()) throw std::invalid_argument("render_reliability: no bins");
  long total = 0;
  for (const ReliabilityBin& b : bins) {
    if (b.count < 0) throw std::invalid_argument("render_reliability: a negative count");
    total += b.count;
  }
  if (total == 0) throw std::invalid_argument("render_reliability: no predictions in any bin");
  const int W = 640, H = 640, left = 70, right = 20, top = 50, plot_h = 400, gap = 30, hist_h = 90;
  const int plot_w = W - left - right, hist_y = top + plot_h + gap;
  const Rgb ink{40, 40, 40}, grid{225, 225, 225}, bar{70, 110, 190}, over{225, 80, 70}, diag{120, 120, 120};
  Canvas c(W, H);
  const auto px = [&](double v) { return left + v * plot_w; };         // confidence -> x
  const auto py = [&](double v) { return top + (1.0 - v) * plot_h; };  // accuracy -> y
  for (int t = 0; t <= 10; ++t) {
    const double v = t / 10.0;
    c.line(px(0), py(v), px(1), py(v), 1.0, grid);
    c.line(px(v), py(0), px(v), py(1), 1.0, grid);
  }
  const int n = static_cast<int>(bins.size());
  const double width = 1.0 / n;
  long most = 0;
  for (const ReliabilityBin& b : bins) most = std::max(most, b.count);
  for (int i = 0; i < n; ++i) {
    const ReliabilityBin& b = bins[i];
    const int x0 = static_cast<int>(px(i * width)) + 1, x1 = static_cast<int>(px((i + 1) * width)) - 1;
    if (b.count > 0) {
      const double acc = b.correct / b.count, conf = b.confidence / b.count;
      const int ya = static_cast<int>(py(acc)), yc = static_cast<int>(py(conf)), y0 = static_cast<int>(py(0));
      c.fill_rect(x0, ya, x1 - x0, y0 - ya, bar);
      // The gap between accuracy and confidence: red over the bar (over-confident) or above it (under-confident).
      const int g0 = std::min(ya, yc), g1 = std::max(ya, yc);
      for (int y = g0; y < g1; ++y)
        for (int x = x0; x < x1; ++x) c.blend_pixel(x, y, over, 0.55);
    }
    const int hh = static_cast<int>(std::lround(hist_h * static_cast<double>(b.count) / std::max(most, 1L)));
    c.fill_rect(x0, hist_y + hist_h - hh, x1 - x0, hh, diag);
  }
  c.line(px(0), py(0), px(1), py(1), 2.0, diag);
  c.outline_rect(left, top, plot_w + 1, plot_h + 1, ink);
  c.outline_rect(left, hist_y, plot_w + 1, hist_h + 1, ink);
  for (int t = 0; t <= 4; ++t) {
    char label[16];
    std::snprintf(label, sizeof label, "%.2g", t / 4.0);
    c.text(static_cast<int>(px(t / 4.0)) - Canvas::text_width(label, 2) / 2, top + plot_h + 6, label, 2, ink);
    c.text(left - 8 - Canvas::text_width(label, 2), static_cast<int>(py(t / 4.0)) - 7, label, 2, ink);
  }
  c.text_vertical(8, top + plot_h / 2 - Canvas::text_width("accuracy", 2) / 2, "accuracy", 2, ink);
  c.text(left, hist_y + hist_h + 8, "confidence; below: predictions a bin", 2, ink);
  c.text(left, 16, title, 2, ink);
  return c;
}

void write_reliability_png(const std::string& path, const std::string& title, const std::vector<ReliabilityBin>& bins) {
  Canvas c;
  try {
    c = render_reliability(title, bins);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write PNG " + path + ": " + e.what());
  }
  write_png(path, c);
}

}  // namespace ferkit
