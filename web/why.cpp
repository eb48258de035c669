// The page's saliency maps (why.h): made with core/explain.h's Explainer on the faces' crops, uploaded as small
// RGBA textures and drawn by ImGui.
#include "why.h"

#include <emscripten.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "app.h"

namespace {

constexpr const char* kMethods[] = {"Grad-CAM (coarse, fast)", "gradient x input", "SmoothGrad (16 runs)"};
constexpr double kClassMapsEvery = 0.5;  // seconds between the panel's per-expression maps

ferkit::Explainer& explainer(App& app) {
  Why& w = app.why;
  if (!w.explainer || w.generation != app.models.generation) {
    w.explainer.reset();  // first, so that the new one reuses its memory instead of growing the heap
    w.explainer = std::make_unique<ferkit::Explainer>(app.pipe->model(), /*planned=*/true);
    w.generation = app.models.generation;
  }
  return *w.explainer;
}

ferkit::ExplainOptions options(int method, int cls) {
  ferkit::ExplainOptions o;
  o.method = static_cast<ferkit::SaliencyMethod>(std::clamp(method, 0, 2));
  o.cls = cls;
  return o;
}

// A 48x48 RGBA texture of a map: the heat colour, alpha 0.6 x the value (over the video), or blended over the
// grey crop and opaque (the panel's thumbnails, as `fer-train explain` writes them).
void upload(Why& w, GLuint& tex, const float* map, const uint8_t* crop) {
  if (!tex) {
    tex = make_texture();
    glBindTexture(GL_TEXTURE_2D, tex);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, ferkit::kSide, ferkit::kSide, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
  }
  w.rgba.resize(ferkit::kPixels * 4);
  for (int i = 0; i < ferkit::kPixels; ++i) {
    uint8_t heat[3];
    ferkit::saliency_colour(map[i], heat);
    const float a = 0.6f * map[i];
    uint8_t* p = w.rgba.data() + 4 * i;
    for (int k = 0; k < 3; ++k)
      p[k] = crop ? static_cast<uint8_t>((1 - a) * crop[i] + a * heat[k] + 0.5f) : heat[k];
    p[3] = crop ? 255 : static_cast<uint8_t>(255 * a + 0.5f);
  }
  glBindTexture(GL_TEXTURE_2D, tex);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, ferkit::kSide, ferkit::kSide, GL_RGBA, GL_UNSIGNED_BYTE, w.rgba.data());
  glBindTexture(GL_TEXTURE_2D, 0);
}

ImTextureID id(GLuint tex) { return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(tex)); }

}  // namespace

void why_update(App& app) {
  Why& w = app.why;
  const auto& faces = app.pipe->faces();
  const int n = std::min(static_cast<int>(faces.size()), Why::kMaxFaces);
  w.explained.assign(n, -1);
  if (!w.overlay) return;
  const auto t0 = std::chrono::steady_clock::now();
  ferkit::Explainer& e = explainer(app);
  w.maps.resize(static_cast<size_t>(n) * ferkit::kPixels);
  for (int i = 0; i < n; ++i) {
    float* map = w.maps.data() + static_cast<size_t>(i) * ferkit::kPixels;
    w.explained[i] = e.explain(faces[i].crop, options(w.method, faces[i].label), map);
    upload(w, w.face_tex[i], map, nullptr);
  }
  w.explain_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // The panel's maps of the selected face, one per expression, refreshed now and then.
  const double now = emscripten_get_now() / 1000.0;
  if (n && (w.class_maps_at < 0 || now - w.class_maps_at >= kClassMapsEvery)) {
    w.class_maps_at = now;
    const ferkit::FaceResult& f = faces[std::clamp(w.selected, 0, n - 1)];
    w.class_maps.resize(static_cast<size_t>(ferkit::kNumClasses) * ferkit::kPixels);
    for (int c = 0; c < ferkit::kNumClasses; ++c) {
      float* map = w.class_maps.data() + static_cast<size_t>(c) * ferkit::kPixels;
      e.explain(f.crop, options(w.method, c), map);
      upload(w, w.class_tex[c], map, f.crop);
    }
  }
}

void why_draw_overlay(App& app, ImDrawList* dl, ImVec2 p0, float scale, bool mirror) {
  const Why& w = app.why;
  if (!w.overlay) return;
  const auto& faces = app.pipe->faces();
  for (size_t i = 0; i < w.explained.size() && i < faces.size(); ++i) {
    if (w.explained[i] < 0) continue;
    // The map covers the crop, which came from this square of the frame, turned by its angle: its corners.
    const ferkit::Roi& r = faces[i].crop_region;
    const float c = std::cos(r.angle) * 0.5f * r.side, s = std::sin(r.angle) * 0.5f * r.side;
    const auto corner = [&](float u, float v) {  // u, v in {-1, 1}: the crop's left/right, top/bottom
      const float x = r.cx + c * u - s * v, y = r.cy + s * u + c * v;
      return ImVec2(p0.x + (mirror ? app.frame_w - x : x) * scale, p0.y + y * scale);
    };
    dl->AddImageQuad(id(w.face_tex[i]), corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1));
  }
}

void why_panel(App& app) {
  Why& w = app.why;
  if (w.overlay && !w.shown_open) ImGui::SetNextItemOpen(true);  // turned on from JavaScript: show what is on
  w.shown_open = w.shown_open || w.overlay;
  if (!ImGui::CollapsingHeader("Why? (saliency maps)")) return;
  ImGui::Checkbox("show what each label rests on", &w.overlay);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Warm colours mark the pixels the shown label depends on most. A map shows where the\n"
                      "network looked, not why a face is that expression, and it can be noisy.");
  ImGui::SetNextItemWidth(200);
  ImGui::Combo("method", &w.method, kMethods, IM_ARRAYSIZE(kMethods));
  if (!w.overlay) return;
  const auto& faces = app.pipe->faces();
  if (faces.empty() || w.class_maps.empty()) {
    ImGui::TextDisabled("no face in view");
    return;
  }
  const int n = std::min(static_cast<int>(faces.size()), Why::kMaxFaces);
  if (n > 1) ImGui::SliderInt("face", &w.selected, 0, n - 1);
  ImGui::Text("overlay: %.1f ms a frame", w.explain_ms);
  ImGui::Text("face %d, per expression:", faces[std::clamp(w.selected, 0, n - 1)].track);
  const auto& names = app.pipe->model().class_names;
  const float side = 44;
  for (int c = 0; c < ferkit::kNumClasses; ++c) {
    if (c % 4) ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::Image(id(w.class_tex[c]), ImVec2(side, side));
    ImGui::TextUnformatted(names[c].c_str());
    ImGui::EndGroup();
  }
}

nlohmann::json why_json(const App& app) {
  const Why& w = app.why;
  return {{"overlay", w.overlay},
          {"method", ferkit::saliency_method_name(static_cast<ferkit::SaliencyMethod>(w.method))},
          {"explain_ms", w.overlay ? w.explain_ms : 0.0}};
}

int why_explain(App& app, int face, int method, int cls, float* out) {
  const auto& faces = app.pipe->faces();
  if (!out || face < 0 || face >= static_cast<int>(faces.size()) || method < 0 || method > 2 || cls < -1 ||
      cls >= ferkit::kNumClasses)
    return -1;
  return explainer(app).explain(faces[face].crop, options(method, cls < 0 ? faces[face].label : cls), out);
}
