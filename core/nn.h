// Layers as plain forward and backward functions over flat float buffers (llm.c style).
// Activations are NHWC: image i, row y, column x, channel c lives at ((i*H + y)*W + x)*C + c.
// Backward functions *accumulate* parameter gradients (dw += ...) and *write* input gradients (dx = ...).
// None of them allocates: callers pass every buffer (see model.h's Workspace).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ferkit {

class Collective;  // collective.h: the processes of a data-parallel run

// Geometry of a 2-D convolution (also used for pooling windows).
struct ConvGeom {
  int hi = 0, wi = 0, cin = 0;  // input
  int ho = 0, wo = 0, cout = 0; // output
  int k = 1, stride = 1;
  int pad_top = 0, pad_left = 0;
  int patch() const { return k * k * cin; }  // im2col row length
  bool direct() const { return k == 1 && stride == 1 && pad_top == 0 && pad_left == 0; }  // im2col is the identity
  // 'same': out = ceil(in / stride), padding split as TensorFlow does (extra on the bottom/right).
  static ConvGeom make(int hi, int wi, int cin, int cout, int k, int stride, bool same);
};

// im2col: col[(i*ho + oy)*wo + ox][(ky*k + kx)*cin + c]; zero outside the image.
void im2col(const float* x, int n, const ConvGeom& g, float* col);
// Adds each column gradient back into dx (dx must be zeroed by the caller).
void col2im_add(const float* dcol, int n, const ConvGeom& g, float* dx);

// Training: y = im2col(x) * w + b, with w[patch][cout], b[cout]; col (conv2d_scratch_floats(g, n) floats) holds
// im2col(x) afterwards, which conv2d_backward reads (1x1 stride-1 convolutions need no im2col: col is unused), unless
// a platform kernel runs the layer (kernels.h: oneDNN natively), which reads x instead.
void conv2d_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* col, float* y);
// Inference: the same y, by whichever kernel is fastest for the layer (the WebAssembly build runs 3x3 'same' layers
// as Winograd F(2x2, 3x3) or straight from a padded copy; see kernels.h), then y = max(0, y) if relu, in the
// kernels' output stores where they can. winograd_u: the layer's weights as an InferencePlan prepared them, or
// nullptr. scratch: conv2d_scratch_floats(g, n) floats, its contents not kept.
void conv2d_forward_infer(const float* x, int n, const ConvGeom& g, const float* w, const float* winograd_u,
                          const float* b, float* scratch, float* y, bool relu = false);
// Scratch floats either forward needs for n images: at least the im2col size, n*ho*wo*patch.
size_t conv2d_scratch_floats(const ConvGeom& g, int n);
// dw += col^T dy, db += sum(dy); dx = col2im(dy w^T) if dx != nullptr (dcol: scratch like col). x: the layer's
// input (col is im2col(x)). dw == nullptr: the input gradient only (db, x and col unused), as explain.h
// back-propagates through an inference pass.
void conv2d_backward(const float* dy, const float* x, int n, const ConvGeom& g, const float* w, const float* col,
                     float* dw, float* db, float* dcol, float* dx);

// Native builds with oneDNN (kernels.h): from now on, in this process, train k x k convolutions with bf16 dot
// products (on), or as FERKIT_DNNL in the environment says (off: oneDNN in float32 unless it is 0). Weights,
// gradients and outputs stay float32. Returns false where the build has no oneDNN (nothing changes). A CPU without
// bf16 instructions that oneDNN can use trains those layers in float32.
bool train_convolutions_in_bf16(bool on);

// Depthwise k x k convolution: each channel has its own filter (g.cin == g.cout channels), w[(ky*k + kx)*c + ch],
// b[c]; 'same' padding as ConvGeom::make (TensorFlow's: the extra row and column at stride 2 go bottom and right).
// relu: y = max(0, ...).
void depthwise_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, float* y,
                       bool relu = false);
// dw += ..., db += ... (dw == nullptr: neither); dx = the input gradient if dx != nullptr.
void depthwise_backward(const float* dy, const float* x, int n, const ConvGeom& g, const float* w, float* dw,
                        float* db, float* dx);

// A residual connection: y = x + shortcut(s), where s (the activation saved at the block's start, hs x ws x cs) is
// max-pooled over 2x2 windows with stride 2 when the block halved the size (ho = ceil(hs/2); a window past the
// edge takes what is inside) and zero-padded from cs to c channels when the block added channels (BlazeFace's and
// MobileNet's shortcuts).
struct AddGeom {
  int hs = 0, ws = 0, cs = 0;  // the saved activation
  int ho = 0, wo = 0, c = 0;   // x and y
  bool pooled() const { return ho != hs || wo != ws; }
  // Whether s can be added to x: the same size or halved (rounded up), and no more channels.
  bool valid() const {
    return cs <= c && ((ho == hs && wo == ws) || (ho == (hs + 1) / 2 && wo == (ws + 1) / 2 && hs > 1 && ws > 1));
  }
};
// relu: y = max(0, ...), a following ReLU in the same pass (inference).
void add_forward(const float* x, const float* s, int n, const AddGeom& g, float* y, bool relu = false);
// dx = dy (if dx != nullptr and not dy itself); ds += the shortcut's gradient (if ds != nullptr; s is read again
// to find each pooled window's maximum).
void add_backward(const float* dy, const float* s, int n, const AddGeom& g, float* dx, float* ds);
// Inference: a 1x1 convolution (g.direct(); w, b as conv2d_forward) and the residual add after it (a), then max(0,
// .) if relu, into y, and into y2 too unless it is null (a save starting the next block): in one pass where the
// platform has a kernel for it, else the convolution, then the add in place.
void conv1x1_add_forward(const float* x, int n, const ConvGeom& g, const float* w, const float* b, const float* s,
                         const AddGeom& a, float* y, float* y2, bool relu);

// y[n][out] = x[n][in] * w[in][out] + b[out].
void dense_forward(const float* x, int n, int in, int out, const float* w, const float* b, float* y);
// dw == nullptr: dx only (x and db unused).
void dense_backward(const float* dy, const float* x, int n, int in, int out, const float* w, float* dw, float* db,
                    float* dx);

void relu_forward(const float* x, size_t count, float* y);
void relu_backward(const float* dy, const float* y, size_t count, float* dx);

// Max pooling (k x k window, stride, no padding). argmax: index into the image's input of each output's maximum
// (nullptr: not recorded, for inference).
void maxpool_forward(const float* x, int n, const ConvGeom& g, float* y, int32_t* argmax);
void maxpool_backward(const float* dy, int n, const ConvGeom& g, const int32_t* argmax, float* dx);

// Inverted dropout. The mask (0 or 1/(1-rate)) is a pure function of (seed, index), so it is the same
// on every platform and for any thread count. offset: the index of x[0] in the mask stream (a data-parallel rank's
// shard starts where its first image lies in the whole batch).
void dropout_forward(const float* x, size_t count, float rate, uint64_t seed, float* mask, float* y,
                     size_t offset = 0);
void dropout_backward(const float* dy, const float* mask, size_t count, float* dx);

// Batch normalization over the last axis: x is rows x channels (rows = n*h*w for images).
// Training mode uses batch statistics (biased variance), saves xhat and invstd for backward, and updates the
// running statistics with `momentum` (running = (1-momentum)*running + momentum*batch; unbiased variance).
// across (training, forward and backward): the rows are this process's part of a batch spread over the processes
// of a data-parallel run, and the statistics are the whole batch's (synchronized batch norm: per-channel sums in
// double, summed across; backward's dgamma and dbeta stay this process's part, summed later with the gradients).
struct BatchNormParams {
  const float* gamma;
  const float* beta;
  float* running_mean;
  float* running_var;
  float momentum = 0.1f;
  float eps = 1e-5f;
};
void batchnorm_forward_train(const float* x, size_t rows, int channels, const BatchNormParams& p, float* xhat,
                             float* invstd, float* y, Collective* across = nullptr);
// scratch: 2 * channels floats (each channel's scale and shift, computed once per call). relu: y = max(0, bn(x)),
// a following ReLU in the same pass.
void batchnorm_forward_infer(const float* x, size_t rows, int channels, const BatchNormParams& p, float* scratch,
                             float* y, bool relu = false);
void batchnorm_backward(const float* dy, const float* xhat, const float* invstd, size_t rows, int channels,
                        const float* gamma, float* dgamma, float* dbeta, float* dx, Collective* across = nullptr);
// The input gradient of batchnorm_forward_infer (running statistics: a per-channel affine map), for
// back-propagating through an inference pass: dx = dy * gamma / sqrt(running_var + eps).
void batchnorm_backward_infer(const float* dy, size_t rows, int channels, const float* gamma, const float* running_var,
                              float eps, float* dx);

// Global average pooling: [n][hw][c] -> [n][c].
void gap_forward(const float* x, int n, int hw, int c, float* y);
void gap_backward(const float* dy, int n, int hw, int c, float* dx);

// Softmax cross-entropy over n rows of `classes` logits. The target of row i is soft[i] if soft is given,
// else one-hot(labels[i]); label smoothing mixes it with the uniform distribution. Each row is weighted by
// class_weights (the target-weighted mean of the per-class weights; 1 if null). Returns the weighted mean loss
// (sum w_i * ce_i / sum w_i) and writes probs and dlogits = w_i (p_i - t_i) / sum w_i; weight_sum (if given)
// receives sum w_i.
float softmax_xent(const float* logits, const uint8_t* labels, const float* soft, const float* class_weights, int n,
                   int classes, float label_smoothing, float* probs, float* dlogits, double* weight_sum = nullptr);
// probs = softmax(logits / temperature) (temperature scaling, a model's calibration: Model::temperature).
void softmax(const float* logits, int n, int classes, float* probs, float temperature = 1.0f);

}  // namespace ferkit
