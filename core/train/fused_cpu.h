// Fused CPU kernels for ensemble training: one model's whole minibatch step (gather, forward,
// loss, backward, Adam) in one call that keeps its activations and gradients in cache.
//
// Why: a zoo holds hundreds of tiny networks (2-32-32-1). Batched ATen ops over [K, B, width]
// tensors spend their time in per-matrix dispatch inside bmm and in whole-tensor memory passes
// (about 1 GFLOP/s on such zoos); this code runs each model's step from L1/L2 with
// register-blocked SIMD loops instead, and the trainer runs the models on the ATen thread pool.
// tests/bench/train_README.md has the figures.
//
// Internal to core/train; torch-free. Math (per model, B rows of a minibatch, layers l = 1..L,
// h_0 = x, z_l = W_l h_{l-1} + b_l, h_l = act(z_l) for l < L, prediction z_L):
//   MSE           L = mean_{n,o} (z_L - y)^2,             dz_L = 2 (z_L - y) / (B out)
//   cross-entropy L = mean_n -sum_o y_o log softmax(z_L)_o, dz_L = (softmax(z_L) - y) / B
//   dW_l = sum_n dz_l h_{l-1}^T,  db_l = sum_n dz_l,  dz_{l-1} = (W_l^T dz_l) * act'(z_{l-1})
//   Adam (PyTorch's, no weight decay): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
//   p -= step * m / (sqrt(v / bc2) + eps) with step = lr / bc1, bc_i = 1 - b_i^t.
// (PyTorch divides sqrt(v) by sqrt(bc2); the two agree to float rounding.)
// The same formulas as core/nn/mlp.h's MseBackward / CrossEntropyBackward and the trainer's
// ATen path; tests/core/fused_cpu_test.cc checks losses (relative 1e-5) and gradients (2e-5 of
// the largest entry) against LibTorch autograd and three whole steps against autograd plus
// torch::optim::Adam, for every instruction set the CPU runs; tests/core/trainer_test.cc checks
// whole trainings against the ATen path.
//
// Parameters of one model are one flat float block, nn.Linear order: W_1 [out, in] row-major,
// b_1 [out], W_2, b_2, ..., zero-padded to `stride` floats; Adam moments use the same layout.
//
// Results depend only on the model's own data, rows and parameters (never on other models or
// on the thread that runs them), and are bitwise reproducible for a given instruction set.
// Thread-compatible: a Workspace belongs to one thread at a time; everything else is const.
#ifndef GRADZOO_CORE_TRAIN_FUSED_CPU_H_
#define GRADZOO_CORE_TRAIN_FUSED_CPU_H_

#include <cstdint>
#include <vector>

#include "core/model.h"
#include "core/tasks/task.h"

namespace gradzoo::core::fused {

// The SIMD code path; kAuto picks the widest this CPU runs.
enum class Isa { kAuto, kSse2, kAvx2, kAvx512 };

// The widest instruction set of this CPU that the kernels support.
Isa BestIsa();

// True when the kernels should train `spec` on CPU: every layer has in * out <= 65536 (the
// zoo-sized networks they are made for; bigger layers go to BLAS through ATen).
bool Suits(const MlpSpec& spec);

// Layout of one model's flat parameter block and the kernel variant to run.
struct Net {
  std::vector<int> widths;  // input, hidden..., output
  Activation activation = Activation::kRelu;
  LossKind loss = LossKind::kMse;
  Isa isa = Isa::kSse2;  // resolved, never kAuto
  std::vector<int64_t> w_offset, b_offset;  // per layer, into the block
  int64_t params = 0;  // weights and biases
  int64_t stride = 0;  // params rounded up to 16 floats (64 bytes)

  static Net Make(const MlpSpec& spec, LossKind loss, Isa isa = Isa::kAuto);
  int layers() const { return static_cast<int>(widths.size()) - 1; }
};

// Per-thread scratch for one chunk of at most kChunk rows (larger batches accumulate their
// gradients chunk by chunk). Activations are feature-major, one row of kChunk floats per unit,
// so the SIMD lanes run over examples.
class Workspace {
 public:
  static constexpr int kChunk = 256;
  explicit Workspace(const Net& net);

  std::vector<float*> h;  // h[l], l < L: layer l's input (h[0] the gathered x)
  std::vector<float*> z;  // z[l], 1 <= l <= L: pre-activations (z[L] the prediction)
  float* y = nullptr;     // gathered targets
  float* d[2] = {nullptr, nullptr};  // back-propagated dz, ping-pong
  float* grad = nullptr;  // one parameter block

 private:
  std::vector<float> storage_;
};

// Adam constants of one step (see the formula above).
// (Doubles, rounded to float inside the kernel as ATen rounds its scalars.)
struct AdamStep {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double step = 0.0;  // lr * schedule / (1 - beta1^t)
  double bc2 = 1.0;   // 1 - beta2^t
};

// One training step of one model on rows rows[0..b) of its data x [N, in], y [N, out]
// (row-major): gradient of the mean loss over those rows, then Adam on `params` with moments
// `m`, `v`. Returns the minibatch loss before the update.
double TrainStep(const Net& net, float* params, float* m, float* v, const float* x,
                 const float* y, const int64_t* rows, int64_t b, const AdamStep& adam,
                 Workspace& ws);

// Gradient of the mean loss over rows[0..b) (or rows 0..b-1 when `rows` is null) into
// grad[0..stride), in the parameter layout. Returns the loss.
double Gradient(const Net& net, const float* params, const float* x, const float* y,
                const int64_t* rows, int64_t b, float* grad, Workspace& ws);

struct LossSum {
  double loss = 0.0;    // summed over rows: sum_{n,o} (z - y)^2 / out (MSE) or the CE sum
  int64_t correct = 0;  // rows whose argmax prediction equals argmax y
};
// Forward pass over rows[0..n) (rows 0..n-1 when `rows` is null); the mean loss is
// loss / n.
LossSum Evaluate(const Net& net, const float* params, const float* x, const float* y,
                 const int64_t* rows, int64_t n, Workspace& ws);

}  // namespace gradzoo::core::fused

#endif  // GRADZOO_CORE_TRAIN_FUSED_CPU_H_
