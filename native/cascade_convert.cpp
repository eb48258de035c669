// ferkit-cascade-convert: OpenCV Haar cascade XML -> ferkit's compact binary cascade (layout in core/detect.h).
//
//   ferkit-cascade-convert INPUT.xml OUTPUT.cascade [--license LICENSE.txt]
//
// Reads both XML layouts OpenCV ships: the OpenCV 2.4+/4 one (type_id "opencv-cascade-classifier": BOOST stages of
// HAAR features, stageThreshold, weakClassifiers with internalNodes "left right feature threshold" and
// leafValues, a shared features list of rects "x y w h weight" with a tilted flag) and the older
// "opencv-haar-classifier" one (trees of nodes with an inline feature, left_val/right_val or left_node/right_node,
// stage_threshold; only plain stage chains, no stage trees). --license writes the XML's leading comment (the
// cascade's licence, which must travel with the converted file) to a text file.
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "detect.h"
#include "files.h"

namespace {

using ferkit::Cascade;
using ferkit::HaarClassifier;
using ferkit::HaarFeature;
using ferkit::HaarNode;
using ferkit::HaarStage;

[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

// ---- a small XML reader: elements, attributes, text, comments, <?...?>; enough for OpenCV's FileStorage XML ----

struct Element {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attrs;
  std::string text;
  std::vector<Element> children;
  size_t line = 0;

  const Element* child(const std::string& n) const {
    for (const Element& c : children)
      if (c.name == n) return &c;
    return nullptr;
  }
  const Element& need(const std::string& n) const {
    const Element* c = child(n);
    if (!c) fail("line " + std::to_string(line) + ": <" + name + "> has no <" + n + ">");
    return *c;
  }
  std::string attr(const std::string& n) const {
    for (const auto& a : attrs)
      if (a.first == n) return a.second;
    return {};
  }
};

class XmlParser {
 public:
  explicit XmlParser(const std::string& s) : s_(s) {}

  Element parse_document(std::string* leading_comment) {
    skip_misc(leading_comment);
    if (!starts("<")) fail(here() + ": no root element");
    Element root = element(0);
    skip_misc(nullptr);
    if (i_ != s_.size()) fail(here() + ": content after the root element");
    return root;
  }

 private:
  const std::string& s_;
  size_t i_ = 0;
  size_t line_pos_ = 0, line_ = 1;  // line number of line_pos_, advanced as the parser moves on

  size_t line_at(size_t pos) {
    if (pos < line_pos_) line_pos_ = 0, line_ = 1;
    for (; line_pos_ < pos && line_pos_ < s_.size(); ++line_pos_) line_ += s_[line_pos_] == '\n';
    return line_;
  }
  std::string here() { return "XML line " + std::to_string(line_at(i_)); }
  bool starts(const char* t) const { return s_.compare(i_, std::char_traits<char>::length(t), t) == 0; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void skip_until(const char* end) {
    const size_t k = s_.find(end, i_);
    if (k == std::string::npos) fail(here() + ": unterminated markup (no " + end + ")");
    i_ = k + std::char_traits<char>::length(end);
  }
  // Whitespace, comments, <?...?> and <!DOCTYPE ...>; the first comment's text goes to *comment.
  void skip_misc(std::string* comment) {
    for (;;) {
      skip_ws();
      if (starts("<!--")) {
        const size_t b = i_ + 4;
        skip_until("-->");
        if (comment && comment->empty()) *comment = s_.substr(b, i_ - 3 - b);
      } else if (starts("<?") || starts("<!")) {
        skip_until(">");
      } else {
        return;
      }
    }
  }
  std::string name() {
    const size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-' ||
                              s_[i_] == ':' || s_[i_] == '.'))
      ++i_;
    if (i_ == b) fail(here() + ": expected a name");
    return s_.substr(b, i_ - b);
  }
  static std::string unescape(const std::string& t) {
    if (t.find('&') == std::string::npos) return t;
    std::string o;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] != '&') {
        o += t[k];
        continue;
      }
      static const std::pair<const char*, char> ents[] = {
          {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
      bool done = false;
      for (const auto& e : ents)
        if (t.compare(k, std::char_traits<char>::length(e.first), e.first) == 0) {
          o += e.second;
          k += std::char_traits<char>::length(e.first) - 1;
          done = true;
          break;
        }
      if (!done) o += '&';
    }
    return o;
  }
  Element element(int depth) {
    if (depth > 64) fail(here() + ": elements nested too deeply");
    Element e;
    e.line = line_at(i_);
    ++i_;  // '<'
    e.name = name();
    for (;;) {
      skip_ws();
      if (starts("/>")) {
        i_ += 2;
        return e;
      }
      if (starts(">")) {
        ++i_;
        break;
      }
      std::string an = name();
      skip_ws();
      if (!starts("=")) fail(here() + ": attribute without a value");
      ++i_;
      skip_ws();
      if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\'')) fail(here() + ": unquoted attribute");
      const char q = s_[i_++];
      const size_t k = s_.find(q, i_);
      if (k == std::string::npos) fail(here() + ": unterminated attribute");
      e.attrs.emplace_back(an, unescape(s_.substr(i_, k - i_)));
      i_ = k + 1;
    }
    for (;;) {
      if (i_ >= s_.size()) fail("XML: <" + e.name + "> (line " + std::to_string(e.line) + ") is not closed");
      if (starts("</")) {
        i_ += 2;
        const std::string closing = name();
        if (closing != e.name)
          fail(here() + ": </" + closing + "> closes <" + e.name + "> of line " + std::to_string(e.line));
        skip_ws();
        if (!starts(">")) fail(here() + ": bad closing tag");
        ++i_;
        e.text = unescape(e.text);
        return e;
      }
      if (starts("<!--")) {
        skip_until("-->");
      } else if (starts("<![CDATA[")) {
        const size_t b = i_ + 9;
        skip_until("]]>");
        e.text += s_.substr(b, i_ - 3 - b);
      } else if (starts("<?")) {
        skip_until("?>");
      } else if (starts("<")) {
        e.children.push_back(element(depth + 1));
      } else {
        const size_t k = s_.find('<', i_);
        const size_t stop = k == std::string::npos ? s_.size() : k;
        e.text.append(s_, i_, stop - i_);
        i_ = stop;
      }
    }
  }
};

// ---- values ----

std::vector<double> numbers(const Element& e) {
  std::vector<double> v;
  const char* p = e.text.c_str();
  for (;;) {
    while (*p && std::isspace(static_cast<unsigned char>(*p))) ++p;
    if (!*p) break;
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(p, &end);
    if (end == p || errno == ERANGE || !std::isfinite(d))
      fail("line " + std::to_string(e.line) + ": <" + e.name + "> holds a bad number near \"" +
           std::string(p).substr(0, 20) + "\"");
    v.push_back(d);
    p = end;
  }
  return v;
}
double number(const Element& e) {
  const std::vector<double> v = numbers(e);
  if (v.size() != 1) fail("line " + std::to_string(e.line) + ": <" + e.name + "> should hold one number");
  return v[0];
}
int integer(double d, const Element& e, const char* what, int lo, int hi) {
  if (d != std::floor(d) || d < lo || d > hi)
    fail("line " + std::to_string(e.line) + ": " + what + " " + std::to_string(d) + " is not an integer in " +
         std::to_string(lo) + ".." + std::to_string(hi) + " (not representable in the ferkit cascade format)");
  return static_cast<int>(d);
}
std::string trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

HaarFeature read_feature(const Element& f) {
  HaarFeature out;
  const Element& rects = f.need("rects");
  if (rects.children.empty() || rects.children.size() > static_cast<size_t>(ferkit::kMaxFeatureRects))
    fail("line " + std::to_string(rects.line) + ": a feature needs 1..3 rectangles, has " +
         std::to_string(rects.children.size()));
  for (const Element& r : rects.children) {
    const std::vector<double> v = numbers(r);
    if (v.size() != 5) fail("line " + std::to_string(r.line) + ": a rectangle is \"x y w h weight\"");
    ferkit::HaarRect& q = out.rects[out.num_rects++];
    q.x = integer(v[0], r, "rectangle x", 0, 255);
    q.y = integer(v[1], r, "rectangle y", 0, 255);
    q.w = integer(v[2], r, "rectangle width", 1, 255);
    q.h = integer(v[3], r, "rectangle height", 1, 255);
    q.weight = integer(v[4], r, "rectangle weight", -128, 127);
  }
  if (const Element* t = f.child("tilted")) out.tilted = number(*t) != 0;
  return out;
}

// OpenCV 2.4+/4: <cascade type_id="opencv-cascade-classifier">.
Cascade read_new(const Element& c) {
  const std::string stage_type = trimmed(c.need("stageType").text);
  const std::string feature_type = trimmed(c.need("featureType").text);
  if (stage_type != "BOOST") fail("stageType " + stage_type + " is not supported (BOOST only)");
  if (feature_type != "HAAR") fail("featureType " + feature_type + " is not supported (HAAR only, not LBP/HOG)");
  if (const Element* fp = c.child("featureParams"))
    if (const Element* mc = fp->child("maxCatCount"))
      if (number(*mc) != 0) fail("categorical features (maxCatCount > 0) are not supported");
  Cascade out;
  out.window_width = integer(number(c.need("width")), c, "window width", 4, 255);
  out.window_height = integer(number(c.need("height")), c, "window height", 4, 255);
  const Element& stages = c.need("stages");
  for (const Element& s : stages.children) {
    HaarStage st;
    st.threshold = static_cast<float>(number(s.need("stageThreshold")));
    for (const Element& w : s.need("weakClassifiers").children) {
      const std::vector<double> in = numbers(w.need("internalNodes"));
      const std::vector<double> lv = numbers(w.need("leafValues"));
      if (in.empty() || in.size() % 4 != 0)
        fail("line " + std::to_string(w.line) + ": internalNodes must be groups of \"left right feature threshold\"");
      HaarClassifier cl;
      const int n = static_cast<int>(in.size() / 4);
      if (n > ferkit::kMaxClassifierNodes) fail("line " + std::to_string(w.line) + ": tree too large");
      for (int i = 0; i < n; ++i) {
        HaarNode nd;
        nd.left = integer(in[4 * i], w, "left child", -n, n);
        nd.right = integer(in[4 * i + 1], w, "right child", -n, n);
        nd.feature = integer(in[4 * i + 2], w, "feature index", 0, 65534);
        nd.threshold = static_cast<float>(in[4 * i + 3]);
        cl.nodes.push_back(nd);
      }
      for (double v : lv) cl.leaves.push_back(static_cast<float>(v));
      st.classifiers.push_back(std::move(cl));
    }
    out.stages.push_back(std::move(st));
  }
  if (const Element* sn = c.child("stageNum"))
    if (number(*sn) != static_cast<double>(out.stages.size()))
      fail("stageNum says " + trimmed(sn->text) + " but there are " + std::to_string(out.stages.size()) + " stages");
  for (const Element& f : c.need("features").children) out.features.push_back(read_feature(f));
  return out;
}

// Older layout: <name type_id="opencv-haar-classifier"> with <size> and stages of trees.
Cascade read_old(const Element& c) {
  Cascade out;
  const std::vector<double> size = numbers(c.need("size"));
  if (size.size() != 2) fail("<size> should be \"width height\"");
  out.window_width = integer(size[0], c, "window width", 4, 255);
  out.window_height = integer(size[1], c, "window height", 4, 255);
  int index = 0;
  for (const Element& s : c.need("stages").children) {
    if (const Element* p = s.child("parent"))
      if (number(*p) != index - 1)
        fail("stage " + std::to_string(index) + ": tree-structured cascades are not supported");
    if (const Element* nx = s.child("next"))
      if (number(*nx) != -1) fail("stage " + std::to_string(index) + ": tree-structured cascades are not supported");
    HaarStage st;
    st.threshold = static_cast<float>(number(s.need("stage_threshold")));
    for (const Element& tree : s.need("trees").children) {
      HaarClassifier cl;
      const int n = static_cast<int>(tree.children.size());
      if (n < 1 || n > ferkit::kMaxClassifierNodes) fail("line " + std::to_string(tree.line) + ": bad tree size");
      for (const Element& node : tree.children) {
        HaarNode nd;
        nd.feature = static_cast<int>(out.features.size());
        out.features.push_back(read_feature(node.need("feature")));
        nd.threshold = static_cast<float>(number(node.need("threshold")));
        auto child = [&](const char* val, const char* idx) {
          if (const Element* v = node.child(val)) {
            cl.leaves.push_back(static_cast<float>(number(*v)));
            return -static_cast<int>(cl.leaves.size() - 1);
          }
          if (const Element* k = node.child(idx)) return integer(number(*k), *k, "child node", 1, n - 1);
          fail("line " + std::to_string(node.line) + ": node has neither <" + val + "> nor <" + idx + ">");
        };
        nd.left = child("left_val", "left_node");
        nd.right = child("right_val", "right_node");
        cl.nodes.push_back(nd);
      }
      st.classifiers.push_back(std::move(cl));
    }
    out.stages.push_back(std::move(st));
    ++index;
  }
  return out;
}

Cascade read_cascade_xml(const std::string& xml, std::string* licence) {
  XmlParser parser(xml);
  const Element root = parser.parse_document(licence);
  if (root.name != "opencv_storage") fail("root element is <" + root.name + ">, expected <opencv_storage>");
  for (const Element& c : root.children) {
    const std::string type = c.attr("type_id");
    if (type == "opencv-cascade-classifier" || (type.empty() && c.child("stageType"))) return read_new(c);
    if (type == "opencv-haar-classifier" || (type.empty() && c.child("size") && c.child("stages"))) return read_old(c);
  }
  fail("no Haar cascade in the file (expected type_id opencv-cascade-classifier or opencv-haar-classifier)");
}

}  // namespace

int main(int argc, char** argv) {
  std::string in, out, licence_out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--license" && i + 1 < argc) {
      licence_out = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s INPUT.xml OUTPUT.cascade [--license LICENSE.txt]\n", argv[0]);
      return 0;
    } else if (in.empty()) {
      in = a;
    } else if (out.empty()) {
      out = a;
    } else {
      std::fprintf(stderr, "unexpected argument %s\n", a.c_str());
      return 2;
    }
  }
  if (in.empty() || out.empty()) {
    std::fprintf(stderr, "usage: %s INPUT.xml OUTPUT.cascade [--license LICENSE.txt]\n", argv[0]);
    return 2;
  }
  try {
    std::string licence;
    const Cascade cascade = read_cascade_xml(ferkit::read_text_file(in), &licence);
    const std::vector<uint8_t> bytes = ferkit::save_cascade(cascade);
    ferkit::load_cascade(bytes.data(), bytes.size());  // round trip: the asset reads back
    ferkit::write_file_atomic(out, bytes.data(), bytes.size());
    if (!licence_out.empty()) {
      if (trimmed(licence).empty()) fail(in + " has no leading licence comment");
      ferkit::write_file_atomic(licence_out, trimmed(licence) + "\n");
    }
    size_t rects = 0;
    for (const HaarFeature& f : cascade.features) rects += static_cast<size_t>(f.num_rects);
    std::printf("%s: %dx%d window, %zu stages, %zu classifiers, %zu features (%zu rectangles%s) -> %s, %zu bytes\n",
                in.c_str(), cascade.window_width, cascade.window_height, cascade.stages.size(),
                cascade.num_classifiers(), cascade.features.size(), rects, cascade.has_tilted() ? ", tilted" : "",
                out.c_str(), bytes.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferkit-cascade-convert: %s: %s\n", in.c_str(), e.what());
    return 1;
  }
  return 0;
}
