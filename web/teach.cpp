// "Teach it your face": capture labelled samples of the user's face, show them, fine-tune the model on them in a
// worker (web/finetune-worker.mjs runs core/finetune.h in ferkit-engine.wasm, off the main thread), and keep
// samples and models in the browser's IndexedDB across reloads (through the shell). Nothing leaves the page.
#include <GLES3/gl3.h>
#include <emscripten.h>

#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "app.h"
#include "imgui.h"
#include "teach.h"
#include "teach_js.h"

namespace {

constexpr int kCells = 32;  // the atlas is kCells x kCells thumbnails
constexpr int kAtlasSide = kCells * ferkit::kSide;

double now_s() { return emscripten_get_now() / 1000.0; }

const char* state_name(Teach::State s) {
  switch (s) {
    case Teach::Running: return "running";
    case Teach::Done: return "done";
    case Teach::Failed: return "failed";
    case Teach::Cancelled: return "cancelled";
    default: return "idle";
  }
}

void samples_changed(Teach& t) {
  t.samples_changed = true;
  t.save_after = now_s() + 0.5;  // a burst saves once, after its last capture
  t.atlas_stale = true;
}

bool add_sample(Teach& t, const uint8_t* crop, int label) {
  if (t.count() >= Teach::kMaxSamples) {
    t.capture_message = "The gallery is full (" + std::to_string(Teach::kMaxSamples) + " samples): delete some first.";
    return false;
  }
  t.crops.insert(t.crops.end(), crop, crop + ferkit::kPixels);
  t.labels.push_back(static_cast<uint8_t>(label));
  samples_changed(t);
  return true;
}

void delete_sample(Teach& t, int i) {
  t.crops.erase(t.crops.begin() + static_cast<size_t>(i) * ferkit::kPixels,
                t.crops.begin() + static_cast<size_t>(i + 1) * ferkit::kPixels);
  t.labels.erase(t.labels.begin() + i);
  samples_changed(t);
}

void clear_samples(Teach& t, int label) {  // label < 0: all
  for (int i = t.count() - 1; i >= 0; --i)
    if (label < 0 || t.labels[i] == label) delete_sample(t, i);
}

void upload_atlas(Teach& t) {
  if (!t.atlas_stale || !t.atlas) return;
  glBindTexture(GL_TEXTURE_2D, t.atlas);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  for (int i = 0; i < t.count(); ++i)
    glTexSubImage2D(GL_TEXTURE_2D, 0, (i % kCells) * ferkit::kSide, (i / kCells) * ferkit::kSide, ferkit::kSide,
                    ferkit::kSide, GL_LUMINANCE, GL_UNSIGNED_BYTE, t.crops.data() + static_cast<size_t>(i) * ferkit::kPixels);
  glBindTexture(GL_TEXTURE_2D, 0);
  t.atlas_stale = false;
}

void start_finetune(App& app) {
  Teach& t = app.teach;
  if (t.state == Teach::Running) return;
  if (t.count() == 0) {
    t.state = Teach::Failed;
    t.message = "No samples yet: capture some faces first (keys 1-7 or the buttons above).";
    return;
  }
  t.cfg.lr = t.cfg.whole_network ? t.lr_whole : t.lr_head;
  const std::string settings = t.cfg.to_json().dump();
  t.state = Teach::Running;
  t.message = "fine-tuning...";
  t.losses.clear();
  t.held_acc.clear();
  t.step = t.steps = t.epoch = 0;
  t.epochs = t.cfg.epochs;
  t.held_before = t.held_after = t.replay_agreement = -1;
  t.replay_faces = 0;
  t.started = now_s();
  t.seconds = 0;
  ferkit_js_finetune_start(app.models.base.data(), static_cast<int>(app.models.base.size()), t.crops.data(),
                           t.labels.data(), t.count(), settings.c_str());
}

void read_progress(Teach& t, const nlohmann::json& p) {
  t.step = p.value("step", 0);
  t.steps = p.value("steps", 0);
  t.epoch = p.value("epoch", 0);
  t.epochs = p.value("epochs", t.epochs);
  t.held_before = p.value("held_before", -1.0);
  t.held_after = p.value("held_after", -1.0);
  t.replay_faces = p.value("replay_faces", 0);
  t.replay_agreement = p.value("replay_agreement", -1.0);
  if (p.contains("losses") && p["losses"].is_array()) t.losses = p["losses"].get<std::vector<float>>();
  t.held_acc.clear();
  if (p.contains("history") && p["history"].is_array())
    for (const auto& h : p["history"]) t.held_acc.push_back(h.value("held_acc", 0.0f));
  t.seconds = now_s() - t.started;
}

std::string percent(double v) {
  if (v < 0) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * v);
  return buf;
}

}  // namespace

void teach_init(Teach& t) {
  t.atlas = make_texture();
  glBindTexture(GL_TEXTURE_2D, t.atlas);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_LUMINANCE, kAtlasSide, kAtlasSide, 0, GL_LUMINANCE, GL_UNSIGNED_BYTE, nullptr);
  glBindTexture(GL_TEXTURE_2D, 0);
}

bool teach_capture(App& app, int label) {
  Teach& t = app.teach;
  if (label < 0 || label >= ferkit::kNumClasses || !app.pipe) return false;
  const auto& faces = app.pipe->faces();
  if (faces.empty()) {
    t.capture_message = "No face in view: nothing captured.";
    return false;
  }
  // The largest face (the pipeline keeps faces largest first).
  if (!add_sample(t, faces[0].crop, label)) return false;
  t.capture_message = "captured " + app.pipe->model().class_names[label] + " (" + std::to_string(t.count()) + " samples)";
  return true;
}

void teach_tick(App& app) {
  Teach& t = app.teach;
  const double now = now_s();
  if (t.burst_left > 0 && now >= t.burst_next) {
    if (teach_capture(app, t.burst_label)) {
      --t.burst_left;
      t.burst_next = now + t.burst_seconds / std::max(t.burst_n, 1);
    } else {
      t.burst_next = now + 0.1;  // no face right now: try again shortly
    }
    if (t.burst_left == 0) t.capture_message = "burst done (" + std::to_string(t.count()) + " samples)";
  }
  if (t.samples_changed && now >= t.save_after) {
    t.samples_changed = false;
    ferkit_js_store_samples(t.crops.data(), t.labels.data(), t.count());
  }
  if (t.state == Teach::Running) t.seconds = now - t.started;
}

void teach_save_models(const PageModels& m) {
  // Only what differs from the bundled default is stored; an empty value deletes the key.
  ferkit_js_store_model("base", m.base.data(), m.base_is_default ? 0 : static_cast<int>(m.base.size()));
  ferkit_js_store_model("model", m.current.data(), m.tuned ? static_cast<int>(m.current.size()) : 0);
}

void teach_download_model(const PageModels& m) {
  ferkit_js_download(m.current.data(), static_cast<int>(m.current.size()),
                     m.tuned ? "ferkit-finetuned.ferkit" : "ferkit-model.ferkit");
}

void teach_clear_samples(Teach& t) { clear_samples(t, -1); }

void teach_panel(App& app) {
  Teach& t = app.teach;
  const auto& names = app.pipe->model().class_names;
  ImGui::Separator();
  if (!ImGui::CollapsingHeader("Teach it your face", ImGuiTreeNodeFlags_DefaultOpen)) return;

  // Capture.
  ImGui::TextWrapped("Make an expression, then press its key (1-7) or button: the largest face is stored as a "
                     "48x48 sample.");
  for (int c = 0; c < ferkit::kNumClasses; ++c) {
    char label[48];
    std::snprintf(label, sizeof label, "%d %s", c + 1, names[c].c_str());
    if (c % 4) ImGui::SameLine();
    if (ImGui::Button(label)) {
      if (t.burst) {
        t.burst_label = c;
        t.burst_left = t.burst_n;
        t.burst_next = 0;
      } else {
        teach_capture(app, c);
      }
    }
  }
  ImGui::Checkbox("burst", &t.burst);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(70);
  ImGui::SliderInt("##n", &t.burst_n, 2, 50, "%d crops");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(70);
  ImGui::SliderFloat("##s", &t.burst_seconds, 1, 10, "in %.0f s");
  if (t.burst_left > 0) ImGui::Text("burst: %d to go", t.burst_left);
  ImGui::SetNextItemWidth(110);
  if (ImGui::BeginCombo("##import", names[t.import_label].c_str())) {
    for (int c = 0; c < ferkit::kNumClasses; ++c)
      if (ImGui::Selectable(names[c].c_str(), c == t.import_label)) t.import_label = c;
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  if (ImGui::Button("Import images...")) ferkit_js_import_images(t.import_label);
  if (!t.capture_message.empty()) ImGui::TextWrapped("%s", t.capture_message.c_str());

  // Gallery: click a thumbnail to delete it.
  upload_atlas(t);
  ImGui::Text("%d samples", t.count());
  ImGui::SameLine();
  if (t.count() && ImGui::SmallButton("Clear all")) clear_samples(t, -1);
  const float thumb = 32, avail = ImGui::GetContentRegionAvail().x;
  for (int c = 0; c < ferkit::kNumClasses; ++c) {
    const int n = static_cast<int>(std::count(t.labels.begin(), t.labels.end(), c));
    if (!n) continue;
    ImGui::PushID(c);
    ImGui::Text("%s: %d", names[c].c_str(), n);
    ImGui::SameLine();
    if (ImGui::SmallButton("Clear")) clear_samples(t, c);
    float x = 0;
    for (int i = 0; i < t.count(); ++i) {
      if (t.labels[i] != c) continue;
      if (x > 0 && x + thumb <= avail) ImGui::SameLine();
      else x = 0;
      x += thumb + ImGui::GetStyle().ItemSpacing.x + 2 * ImGui::GetStyle().FramePadding.x;
      const float u = static_cast<float>(i % kCells) / kCells, v = static_cast<float>(i / kCells) / kCells;
      ImGui::PushID(i);
      if (ImGui::ImageButton(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(t.atlas)), ImVec2(thumb, thumb),
                             ImVec2(u, v), ImVec2(u + 1.0f / kCells, v + 1.0f / kCells), 1)) {
        delete_sample(t, i);
        ImGui::PopID();
        break;  // indices moved
      }
      if (ImGui::IsItemHovered()) ImGui::SetTooltip("click to delete");
      ImGui::PopID();
    }
    ImGui::PopID();
  }

  // Fine-tune: the button, and its settings folded away.
  ImGui::Separator();
  ImGui::TextWrapped("Fine-tune the model on these samples (in this tab; the model in use stays until it is done).");
  if (ImGui::TreeNode("Fine-tuning settings")) {
    int mode = t.cfg.whole_network ? 1 : 0;
    ImGui::RadioButton("Last layers only (fast)", &mode, 0);
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("The last two dense layers train; the features below them stay frozen and are computed once\n"
                        "per sample and 3 augmented copies of it, so training is fast.");
    ImGui::SameLine();
    ImGui::RadioButton("Whole network", &mode, 1);
    t.cfg.whole_network = mode == 1;
    ImGui::SliderInt("epochs", &t.cfg.epochs, 1, 100);
    ImGui::SliderFloat("learning rate", t.cfg.whole_network ? &t.lr_whole : &t.lr_head, 1e-5f, 1e-1f, "%.5f",
                       ImGuiSliderFlags_Logarithmic);
    ImGui::SliderFloat("pull to base", &t.cfg.anchor, 0.0f, 1.0f, "%.3f", ImGuiSliderFlags_Logarithmic);
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("L2-SP: how strongly the weights are held near the base model's (guards against forgetting)");
    ImGui::SliderFloat("keep of the training", &t.cfg.blend, 0.0f, 1.0f, "%.2f");
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("After training, the weights go back toward the base model's (weight-space ensembling):\n"
                        "1 keeps the trained weights; 0.4 with learning rate 0.004 keeps the expressions you did\n"
                        "not show closer to before, and learns your samples less");
    ImGui::BeginDisabled(t.cfg.whole_network);
    ImGui::SliderFloat("reach beyond your samples", &t.cfg.gate, 0.0f, 2.0f, t.cfg.gate > 0 ? "%.2f" : "everywhere");
    ImGui::EndDisabled();
    if (ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled))
      ImGui::SetTooltip("Teach gate (last layers only): what teaching changed applies in full to faces like your\n"
                        "samples and fades on faces unlike them, so the expressions you did not show read as before.\n"
                        "0.4 keeps every other expression within 2 points; larger reaches further and forgets more;\n"
                        "0 applies the change to every face");
    ImGui::Checkbox("Vary the samples (flip, shift, rotate, brightness)", &t.cfg.augment);
    ImGui::Checkbox("Keep how often each expression is given", &t.cfg.keep_priors);
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("Prior correction: after training, the output biases shift so that on the model's reference\n"
                        "faces each expression comes up as often as before (samples of one expression would\n"
                        "otherwise make it likelier everywhere)");
    ImGui::TreePop();
  }
  if (t.state == Teach::Running) {
    if (ImGui::Button("Cancel")) {
      ferkit_js_finetune_cancel();
      t.state = Teach::Cancelled;
      t.message = "cancelled: the model in use is unchanged";
    }
    ImGui::SameLine();
    char overlay[64];
    std::snprintf(overlay, sizeof overlay, "epoch %d/%d  %.1f s", t.epoch, t.epochs, t.seconds);
    ImGui::ProgressBar(t.steps ? static_cast<float>(t.step) / t.steps : 0.0f, ImVec2(-1, 0), overlay);
  } else if (ImGui::Button("Fine-tune")) {
    start_finetune(app);
  }
  // A hint when the samples are few or of one expression: what fine-tuning will and will not do with them.
  {
    int shown = 0, few = -1;
    for (int c = 0; c < ferkit::kNumClasses; ++c) {
      const long n = std::count(t.labels.begin(), t.labels.end(), c);
      shown += n > 0;
      if (n > 0 && n < 5 && few < 0) few = c;
    }
    const auto& names = app.pipe->model().class_names;
    if (few >= 0)
      ImGui::TextWrapped("Only a few samples of %s: 5 or more per expression teach it better (a fifth is held back "
                         "to check).", names[few].c_str());
    else if (shown == 1 && app.models.replay_faces > 0)
      ImGui::TextWrapped("One expression only: it learns how you show it, and the other expressions are held "
                         "where they were by replaying %d reference faces stored with the model%s.",
                         app.models.replay_faces,
                         !t.cfg.whole_network && t.cfg.gate > 0 ? " and by the teach gate (the change applies to "
                                                                  "faces like your samples)" : "");
    else if (shown == 1)
      ImGui::TextWrapped("One expression only, and this model has no reference faces to replay: the others may "
                         "drift toward it. Show two or more expressions.");
  }
  if (!t.losses.empty())
    ImGui::PlotLines("loss", t.losses.data(), static_cast<int>(t.losses.size()), 0, nullptr, 0.0f, FLT_MAX,
                     ImVec2(0, 50));
  if (!t.held_acc.empty())
    ImGui::PlotLines("held acc", t.held_acc.data(), static_cast<int>(t.held_acc.size()), 0, nullptr, 0.0f, 1.0f,
                     ImVec2(0, 50));
  if (t.held_before >= 0 || t.held_after >= 0)
    ImGui::Text("held-back accuracy: before %s, after %s", percent(t.held_before).c_str(), percent(t.held_after).c_str());
  if (t.replay_agreement >= 0)
    ImGui::TextWrapped("the expressions you did not show: %s of %d reference faces keep the base model's answer",
                       percent(t.replay_agreement).c_str(), t.replay_faces);
  if (!t.message.empty()) ImGui::TextWrapped("%s", t.message.c_str());
  if (app.models.changed() && ImGui::Button("Reset to default model")) {
    app.models.reset(*app.pipe);
    teach_save_models(app.models);
    t.message = "back to the default model";
  }
  if (!t.storage_ok) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1, 0.45f, 0.45f, 1));
    ImGui::TextWrapped("%s", t.storage_message.c_str());
    ImGui::PopStyleColor();
  }
}

nlohmann::json teach_json(const App& app) {
  const Teach& t = app.teach;
  nlohmann::json counts = nlohmann::json::array();
  for (int c = 0; c < ferkit::kNumClasses; ++c) counts.push_back(std::count(t.labels.begin(), t.labels.end(), c));
  return nlohmann::json{{"samples", counts},
                        {"total", t.count()},
                        {"state", state_name(t.state)},
                        {"message", t.message},
                        {"step", t.step},
                        {"steps", t.steps},
                        {"epoch", t.epoch},
                        {"epochs", t.epochs},
                        {"held_before", t.held_before},
                        {"held_after", t.held_after},
                        {"replay_faces", t.replay_faces},
                        {"replay_agreement", t.replay_agreement},
                        {"seconds", t.seconds},
                        {"finetuned", app.models.tuned},
                        {"storage", t.storage_ok ? "ok" : t.storage_message}};
}

bool teach_finetune(App& app, const char* settings_json) {
  Teach& t = app.teach;
  try {
    nlohmann::json j = t.cfg.to_json();
    j["lr"] = t.cfg.whole_network ? t.lr_whole : t.lr_head;
    const nlohmann::json over = nlohmann::json::parse(settings_json && *settings_json ? settings_json : "{}");
    if (!over.is_object()) throw std::invalid_argument("fine-tune settings: expected a JSON object");
    for (auto it = over.begin(); it != over.end(); ++it) j[it.key()] = it.value();
    t.cfg = ferkit::FinetuneConfig::from_json(j);
    (t.cfg.whole_network ? t.lr_whole : t.lr_head) = t.cfg.effective_lr();
  } catch (const std::exception& e) {
    t.state = Teach::Failed;
    t.message = e.what();
    return false;
  }
  start_finetune(app);
  return t.state == Teach::Running;
}

void teach_finetune_progress(Teach& t, const char* json) {
  if (t.state != Teach::Running) return;
  const nlohmann::json p = nlohmann::json::parse(json ? json : "{}", nullptr, false);
  if (p.is_object()) read_progress(t, p);
  char buf[96];
  std::snprintf(buf, sizeof buf, "fine-tuning: step %d of %d", t.step, t.steps);
  t.message = buf;
}

void teach_finetune_done(App& app, const uint8_t* model, int size, const char* json) {
  Teach& t = app.teach;
  if (t.state != Teach::Running) return;  // cancelled meanwhile
  const nlohmann::json p = nlohmann::json::parse(json ? json : "{}", nullptr, false);
  if (p.is_object()) read_progress(t, p);
  if (!app.models.use(*app.pipe, model, static_cast<size_t>(std::max(size, 0)), "fine-tuned model",
                      PageModels::Kind::Tuned)) {
    t.state = Teach::Failed;
    t.message = "the fine-tuned model could not be used: " + app.models.error;
    return;
  }
  t.state = Teach::Done;
  char buf[160];
  std::snprintf(buf, sizeof buf, "done in %.1f s: the page now uses the fine-tuned model (saved in this browser)",
                t.seconds);
  t.message = buf;
  teach_save_models(app.models);
}

void teach_finetune_failed(Teach& t, const char* message) {
  t.state = Teach::Failed;
  t.message = std::string(message ? message : "fine-tuning failed") + " (the model in use is unchanged)";
}

void teach_storage_result(Teach& t, bool ok, const char* message) {
  t.storage_ok = ok;
  t.storage_message = message ? message : "";
}

void teach_restore_samples(Teach& t, const uint8_t* crops, const uint8_t* labels, int n) {
  t.crops.clear();
  t.labels.clear();
  for (int i = 0; i < n && i < Teach::kMaxSamples; ++i)
    if (labels[i] < ferkit::kNumClasses) {
      t.crops.insert(t.crops.end(), crops + static_cast<size_t>(i) * ferkit::kPixels,
                     crops + static_cast<size_t>(i + 1) * ferkit::kPixels);
      t.labels.push_back(labels[i]);
    }
  t.atlas_stale = true;
}

bool teach_import_image(App& app, const uint8_t* data, int size, int label, const std::string& file) {
  Teach& t = app.teach;
  try {
    if (label < 0 || label >= ferkit::kNumClasses) throw std::invalid_argument("no such expression");
    ferkit::GrayImage img = ferkit::decode_image(data, static_cast<size_t>(std::max(size, 0)));
    uint8_t crop[ferkit::kPixels];
    if (img.width == ferkit::kSide && img.height == ferkit::kSide) {
      std::memcpy(crop, img.pixels.data(), ferkit::kPixels);
    } else if (!app.pipe->largest_face_crop(img.pixels.data(), img.width, img.height, live_options(), crop)) {
      ferkit::to_face_pixels(img, crop);
    }
    if (!add_sample(t, crop, label)) return false;
    t.capture_message = "imported " + file + " as " + app.pipe->model().class_names[label];
    return true;
  } catch (const std::exception& e) {
    t.capture_message = file + ": " + e.what() + " (not imported)";
    return false;
  }
}
