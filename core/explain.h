// Saliency maps: which pixels of a face crop a prediction rests on. For a crop and a class, a map over the model's
// input (h x w, the channels summed), by one of three methods:
//  - Grad-CAM (Selvaraju et al. 2017): the last convolution block's output A (after its batch norm and ReLU, where
//    they follow) weighted per channel by the spatial mean of d logit / d A, summed over channels, ReLU, then
//    bilinearly upsampled to the input. Coarse (the block's resolution) but cheap: gradients go back only through
//    the layers after that block, so its cost is about one forward pass.
//  - gradient x input (Shrikumar et al. 2016): |d logit / d x * x| per pixel, the baseline being the all-zero
//    model input (the pixel value Preprocess::mean / scale: black with the default preprocessing).
//  - SmoothGrad (Smilkov et al. 2017): the mean of |d logit / d x| over copies of the input with Gaussian noise.
// The logit is the class's pre-softmax output. Everything runs on the core's own forward and backward kernels, in
// inference mode (batch norm with its running statistics, dropout off, no Winograd or folded InferencePlan) and
// taking input gradients only: the model's weights, batch-norm statistics and gradients are never written.
// A taught model with a teach gate (TeachGate, model.h): the probabilities are the gated ones, and the gradients go
// back through the taught head alone (the map of what the taught model reads in the face; the gate's mix of it
// with the base's head is not differentiated).
// An Explainer holds its own workspace and gradient buffers, sized once for its model, so explaining a face per
// frame allocates nothing after construction.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model.h"

namespace ferkit {

enum class SaliencyMethod { GradCam, GradientTimesInput, SmoothGrad };
// "gradcam", "gradient-x-input", "smoothgrad": the names the CLI and the page's API use.
const char* saliency_method_name(SaliencyMethod m);
// The method of one of those names; throws std::invalid_argument listing them for any other.
SaliencyMethod saliency_method_from_name(const std::string& name);

// The colour a map value v in [0, 1] is drawn in (the CLI's PNGs and the page's overlay): a heat ramp from dark
// blue through red to yellow, so that more weight reads as warmer. rgb: 3 bytes.
void saliency_colour(float v, uint8_t* rgb);

constexpr int kMaxSmoothSamples = 1024;

struct ExplainOptions {
  SaliencyMethod method = SaliencyMethod::GradCam;
  int cls = -1;               // the class to explain; -1: the predicted one
  int smooth_samples = 16;    // SmoothGrad: noisy copies, 1 to kMaxSmoothSamples
  float smooth_noise = 0.1f;  // SmoothGrad: the noise's standard deviation, as a fraction of the input's range
  uint64_t seed = 1;          // SmoothGrad: the noise (the same seed, the same noise on every platform)
};

class Explainer {
 public:
  // Keeps a pointer to the model (which must outlive the explainer and keep its architecture; its weights may
  // change between calls) and never writes it. Throws std::invalid_argument for a model without weights.
  // planned: Grad-CAM runs the layers before its block with an InferencePlan made here (batch norm folded, and
  // Winograd in WebAssembly), as the pipeline classifies: about the cost of one classification instead of a plain
  // forward pass, and the same map up to float rounding. The weights must then stay as they are (make a new
  // explainer after they change). Only the layers no gradient goes through run with the plan.
  explicit Explainer(const Model& model, bool planned = false);
  explicit Explainer(Model&&) = delete;  // a temporary would not outlive it

  // Writes the saliency map of crop (the model's input: h x w x c bytes, as load_input reads them) to map, h x w
  // floats in [0, 1], row-major, scaled so that the largest is 1 (all zeros where the gradient is zero), and the
  // crop's class probabilities to probs (num_classes floats) if given. Returns the class explained. Throws
  // std::invalid_argument for a null crop or map, a class out of range, bad SmoothGrad settings, or Grad-CAM on a
  // model without a convolution.
  int explain(const uint8_t* crop, const ExplainOptions& o, float* map, float* probs = nullptr);

  // The gradient of class cls's logit with respect to the input of layer `layer` (0: the model input itself) at
  // model input x (h x w x c floats, as load_input makes them), or with respect to the logits for layer ==
  // the number of layers. Valid until the next call.
  const float* gradient(const float* x, int cls, int layer = 0);

  // The layer whose input Grad-CAM weighs: the one after the last convolution and the batch norms and ReLUs that
  // directly follow it. -1: the model has no convolution.
  int cam_layer() const { return cam_layer_; }
  int map_height() const { return model_->input_shape().h; }
  int map_width() const { return model_->input_shape().w; }

 private:
  const Model* model_;
  Workspace ws_;              // an inference pass of one image (with max-pool argmax)
  std::vector<Floats> grad_;  // grad_[i]: the gradient with respect to ws_.act[i]
  std::vector<Floats> side_;  // side_[i]: a save layer's shortcut gradient (residual blocks)
  Floats dcol_;               // convolution input gradients' scratch
  Floats input_;              // the crop as model input (SmoothGrad adds noise to copies of it)
  Floats weights_;            // Grad-CAM: each channel's weight
  Floats cam_;                // Grad-CAM: the map at the block's resolution
  int cam_layer_ = -1;
  bool planned_ = false;
  InferencePlan plan_;        // planned: the weights prepared for the layers before cam_layer_

  void check(const uint8_t* crop, const ExplainOptions& o, const float* map) const;
  const float* run_forward(const float* x);
  const float* run_forward_planned();  // the input already in ws_
  void backward_to(int layer, int cls);
  void grad_cam(int cls, float* map);
  void input_gradient_map(int cls, bool times_input, float* map);
  void smooth_grad(const ExplainOptions& o, int cls, float* map);
};

}  // namespace ferkit
