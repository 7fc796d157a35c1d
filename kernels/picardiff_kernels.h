/* kernels/picardiff_kernels.h -- the one C header of the CUDA kernels: parameter structs and launchers.
 *
 * Read by nvcc (the .cu files) and by bindgen (build.rs, plain C, no CUDA headers): every struct here
 * is plain C, mirrored in Rust as #[repr(C)]. Every launcher is `extern "C"`, enqueues its kernels on
 * `stream` and returns the launch status (cudaError_t; 0 = success). Launchers never synchronise.
 *
 * Layouts shared with src/backend/mod.rs: the Picard iterate X and the model outputs O are rings of
 * R = window + 1 slots, point m of the grid in slot m % R; a slot holds batch x dim f32, sample-major
 * ([b][d]). Model times are a ring of R x batch f32 (row slot*batch + b). Step tables are indexed by
 * step j = 0..steps-1 (var[j] is the error normaliser of point j + 1).
 */
#ifndef PICARDIFF_KERNELS_H
#define PICARDIFF_KERNELS_H

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
/* What bindgen sees: cudaError_t is a C enum (int-sized), cudaStream_t an opaque pointer (the same
 * handle as the driver's CUstream, which is what the Rust side passes). */
typedef int cudaError_t;
typedef struct CUstream_st* cudaStream_t;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Window modes and Picard forms (PicardParams.mode / .form). */
#define PICARDIFF_MODE_SLIDING 0
#define PICARDIFF_MODE_BLOCKS 1
#define PICARDIFF_FORM_SCAN 0
#define PICARDIFF_FORM_DRIFT 1

/* Sweep kernels (PicardParams.sweep_path). SERIAL: one thread per (sample, 4 elements) runs the whole
 * window serially, bit-identical to the CPU. SCAN: window-parallel chunked affine scan (reassociated
 * rounding, ~1e-6 relative), for small batch x dim. AUTO picks SCAN when batch * dim < 2^16,
 * window >= 16 and tol2 > 0, else SERIAL. Both write the same partial layout. A multistep table
 * (tab.history > 0) always runs its own serial kernel (kernels/multistep.cu), whatever the path. */
#define PICARDIFF_SWEEP_AUTO 0
#define PICARDIFF_SWEEP_SERIAL 1
#define PICARDIFF_SWEEP_SCAN 2

/* Activations of the MLP epilogue (launch_bias_act_f32). */
#define PICARDIFF_ACT_NONE 0
#define PICARDIFF_ACT_SILU 1
#define PICARDIFF_ACT_GELU_TANH 2

/* Schedules of the mixture score (GmmSchedule.kind), mirroring Schedule::alpha_sigma. */
#define PICARDIFF_SCHED_DISCRETE 0
#define PICARDIFF_SCHED_OU 1
#define PICARDIFF_SCHED_VP_LINEAR 2
#define PICARDIFF_SCHED_FLOW 3 /* rectified flow: sigma = t / n_train, alpha = 1 - sigma; velocity output */

/* The Picard window state in device memory: WindowState (src/backend/window.rs) plus
 * old_end (the end before the last advance; new slots are old_end+1..=end) and bad_point (0, or the
 * first grid point whose error was NaN/Inf; the window then stops moving and the host reports
 * Error::NonFinite naming step bad_point - 1, the step that produced it), then the block residuals. */
typedef struct PicardWindow {
    int start;
    int end;
    int iters;
    int nfe;
    int block;
    int block_iters;
    int old_end;
    int bad_point;
    /* Blocks mode (WindowState::worst_block_err / unconverged): the largest final error of any
     * ended block; 1 + the first block that ended after K iterations above tol2 (0: none), its end
     * point and its final error. */
    float worst_block_err;
    int unconverged_block;
    int unconverged_end;
    float unconverged_err;
    /* The final-sample stop (WindowState::final_sweeps / final_err / final_stopped): iterations
     * whose window held the last point, that point's error (max over samples) in the latest of
     * them, and 1 once the stop ended the run before the per-point test accepted every point. */
    int final_sweeps;
    float final_err;
    int final_stopped;
} PicardWindow;

/* The step table in device memory. `coef`: steps x 8 f32, row j = (a, b, c, p, q, u, v, f) of step j
 * (32-byte rows, so a kernel reads a step's coefficients with two 16-byte loads); `t`, `var`: steps f32.
 * clip_range > 0: the run clips x0-hat to [-clip_range, clip_range] (docs/algorithms.md section 7) and
 * u, v, f are point j's clip columns: every step and sweep replaces the model output o at point j by
 * o + f (clamp(u x + v o) - (u x + v o)) with x the point's (old) state. clip_range 0: no clipping,
 * u = v = f = 0 and unused. */
typedef struct PicardTables {
    const float* coef;
    const float* t;
    const float* var;
    float clip_range;
    /* Multistep rules (DPM-Solver++, kernels/multistep.cu): [steps][2] = (b1, b2), the coefficients
     * of the directions of points j - 1 and j - 2 in step j; NULL with history 0 (a one-step rule). */
    const float* hist_coef;
    int history;          /* earlier points a step reads: 0, 1 (2M) or 2 (3M) */
} PicardTables;

/* Step noise: Philox (table == NULL) keyed by seed, counter (element / 4, step, sample0 + b, tag 0),
 * or a caller table [steps][batch][dim]. */
typedef struct PicardNoise {
    unsigned long long seed;
    unsigned int sample0;
    const float* table;
} PicardNoise;

/* Everything the fused Picard kernels need; one struct for the sweep, the advance and the new slots.
 * `partial` holds window x batch x U f32 (U = picardiff_sweep_blocks_per_sample(dim), one unit per
 * 128 elements), index (k * batch + b) * U + u for window point k = m - start. */
typedef struct PicardParams {
    float* x;             /* ring R x batch x dim */
    const float* out;     /* model outputs, same ring */
    float* times;         /* model times ring R x batch */
    float* partial;       /* squared-error partial sums, see above */
    PicardWindow* win;    /* device window state */
    const int* block_ends;/* blocks mode: end point of each block */
    PicardTables tab;
    PicardNoise noise;
    long long dim;
    int batch;
    int steps;
    int window;           /* p; ring R = p + 1 */
    int mode;             /* PICARDIFF_MODE_* */
    int form;             /* PICARDIFF_FORM_* */
    int num_blocks;
    int block_iters;      /* K of blocks mode */
    float tol2;           /* tau^2 */
    float final_tol2;     /* final-sample stop: bound on the last point's error (FinalStop::tol2); < 0: off */
    int sweep_path;       /* PICARDIFF_SWEEP_*: which sweep kernel (AUTO: see launch_picard_sweep_f32) */
    int noisy;            /* 0: every c_m is 0 (a deterministic rule), the sweep skips the noise path */
    float* hist;          /* multistep rules: direction ring, hist_slots x batch x dim, point m in slot
                           * m % hist_slots (hist_slots >= window + history); NULL otherwise */
    int hist_slots;
} PicardParams;

/* One sequential step in place on batch x dim values: x = a_j x + b_j (p_j x + q_j o) + c_j z_j.
 * A non-finite result lowers *status to j (atomicMin; the host initialises it to INT_MAX).
 * j: the field j when step_counter is NULL; else read on the device, *step_counter - 1 (the step that
 * launch_seq_begin_f32 began), so that one recorded CUDA graph serves every step; a j outside
 * 0..steps-1 does nothing. A noise table holds j + 1 slots (with a step counter: steps).
 * A multistep table (tab.history = H > 0, no noise, no clipping): x holds 1 + H slots of batch x dim,
 * the state and then the directions of points j - 1, j - 2 (zeros before the first step); the step is
 * x = a_j x + b_j d_j + b1_j d_{j-1} + b2_j d_{j-2} with d_j = p_j x + q_j o, and d_j moves into the
 * first direction slot (kernels/multistep.cu). */
typedef struct PicardStepParams {
    float* x;
    int* status;
    const float* out;
    const int* step_counter;
    PicardTables tab;
    PicardNoise noise;
    long long dim;
    int batch;
    int j;
    int steps;
} PicardStepParams;

/* One Picard sweep of the Langevin corrector (CpuBackend::langevin_sweep, backend::LangevinSweep):
 * x ring of steps + 1 slots and out of steps slots, slot = batch x dim f32 sample-major. */
typedef struct LangevinParams {
    float* x;
    const float* out;
    long long dim;
    int batch;
    int steps;               /* M */
    float h, decay, force, kick, p, q;
    unsigned long long seed; /* Philox, tag PICARDIFF_TAG_CORRECTOR */
    unsigned int sample0;
    unsigned int step0;
} LangevinParams;

/* The schedule of the mixture score: alphas_cumprod table (discrete) or a formula. */
typedef struct GmmSchedule {
    int kind;                       /* PICARDIFF_SCHED_* */
    int n_train;                    /* entries of alphas_cumprod (discrete); num_train_timesteps (flow) */
    const double* alphas_cumprod;   /* discrete only */
    double beta_min;                /* vp-linear only */
    double beta_max;
} GmmSchedule;

/* Softmax coefficients of the mixture score for `rows` rows. On entry coef holds the dots x . mu_k
 * (rows x K, from cuBLAS); on exit coef[r][k] = r_k / v_k and scale[r] = {sum_k coef, sigma, alpha}
 * (flow: coef[r][k] = r_k + alpha c_k with c_k = r_k (sigma - alpha s_k^2) / v_k, scale[r] = {sum_k c_k, 1, 1}). */
typedef struct GmmParams {
    const float* x;          /* rows x dim */
    const float* times;      /* rows */
    float* coef;             /* rows x K, in/out */
    float* scale;            /* rows x 3 */
    const double* log_w;     /* K: ln w_k */
    const double* std2;      /* K: s_k^2 */
    const float* mean_norm2; /* K: |mu_k|^2 */
    GmmSchedule sched;
    long long dim;
    int components;
    int rows;
} GmmParams;

/* Error partial units per sample of the Picard sweep for `dim`: one per 128 elements (a warp of the
 * serial sweep); the partial buffer holds window x batch x this. */
int picardiff_sweep_blocks_per_sample(long long dim);
/* cudaGetErrorString of the static runtime. */
const char* picardiff_cuda_error_string(cudaError_t err);

/* picard.cu */
cudaError_t launch_picard_sweep_f32(PicardParams p, cudaStream_t stream);
cudaError_t launch_picard_advance_f32(PicardParams p, cudaStream_t stream);
cudaError_t launch_picard_new_slots_f32(PicardParams p, cudaStream_t stream);

/* elementwise.cu */
cudaError_t launch_picard_step_f32(PicardStepParams p, cudaStream_t stream);
/* Begins sequential step j = *counter (device memory): times[0..batch) = t[j], then *counter = j + 1.
 * At j == steps it only sets *counter = steps + 1 (the next step kernel then does nothing); beyond,
 * nothing. One block. */
cudaError_t launch_seq_begin_f32(int* counter, const float* t, float* times, int batch, int steps,
                                 cudaStream_t stream);
cudaError_t launch_normal_fill_f32(float* buf, int batch, long long dim, unsigned long long seed,
                                   unsigned int sample0, unsigned int step, unsigned int tag,
                                   cudaStream_t stream);
cudaError_t launch_fill_f32(float* buf, long long len, float value, cudaStream_t stream);

/* langevin.cu */
cudaError_t launch_langevin_sweep_f32(LangevinParams p, cudaStream_t stream);

/* gmm.cu */
cudaError_t launch_gmm_coef_f32(GmmParams p, cudaStream_t stream);
cudaError_t launch_gmm_finish_f32(const float* x, const float* scale, float* out, int rows,
                                  long long dim, cudaStream_t stream);

/* mlp.cu: y[r][c] = act(y[r][c] + bias[c]) in place, rows x cols row-major; bias may be NULL. */
cudaError_t launch_bias_act_f32(float* y, const float* bias, long long rows, long long cols, int act,
                                cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* PICARDIFF_KERNELS_H */

/* ---- MLP score network (mlp.cu; src/backend/cuda/dense.rs, src/model/mlp/cuda.rs) ----
 * Appended after the main guard so that it stays a separate section; it uses cudaError_t and
 * cudaStream_t from above. Activations are row-major rows x cols f32. A launcher given half_kind
 * PICARDIFF_HALF_BF16 or _F16 also writes a 16-bit copy (raw bits, round to nearest even) of what it
 * writes into the given rows x cols buffer, the input of the next bf16/f16 GemmEx; with
 * PICARDIFF_HALF_NONE that pointer may be NULL. */
#ifndef PICARDIFF_KERNELS_MLP_H
#define PICARDIFF_KERNELS_MLP_H

#ifdef __cplusplus
extern "C" {
#endif

#define PICARDIFF_HALF_NONE 0
#define PICARDIFF_HALF_BF16 1
#define PICARDIFF_HALF_F16 2

/* y[r][c] = act(y[r][c] + bias[c]) in place (bias may be NULL), plus the 16-bit copy y16. */
cudaError_t launch_mlp_epilogue_f32(float* y, const float* bias, long long rows, long long cols, int act,
                                    unsigned short* y16, int half_kind, cudaStream_t stream);
/* h[r][c] = (h[r][c] + bias[c]) + table[k][c] where table_times[k] == times[r] bitwise (table_times
 * sorted by Rust's f32::total_cmp, n_times entries; table n_times x hidden). A time not in the table
 * sets *status = 1 and fills the row with NaN. Plus the 16-bit copy h16. */
cudaError_t launch_mlp_time_add_f32(float* h, const float* bias, const float* table, const float* table_times,
                                    int n_times, const float* times, long long rows, long long hidden, int* status,
                                    unsigned short* h16, int half_kind, cudaStream_t stream);
/* dst = LayerNorm(src) * gamma + beta per row (biased variance, f64 statistics, eps), src != dst, plus
 * the 16-bit copy dst16. */
cudaError_t launch_mlp_layernorm_f32(const float* src, float* dst, const float* gamma, const float* beta,
                                     long long rows, long long cols, double eps, unsigned short* dst16,
                                     int half_kind, cudaStream_t stream);
/* dst[i] = src[i] rounded to bf16/f16 (half_kind must be _BF16 or _F16), n values. */
cudaError_t launch_mlp_to_half(const float* src, unsigned short* dst, long long n, int half_kind,
                               cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* PICARDIFF_KERNELS_MLP_H */

/* ---- Tensor ops of learned models (unet.cu; src/backend/cuda/ops.rs, ops_kernels.rs) ----
 * `Ops` for the CUDA backend (src/backend/ops.rs). Tensors are channels-last: n rows x len positions
 * x ch channels, row-major [n][len][ch] f32. Convolutions are im2col (or a scatter after the GEMM,
 * for the transposed one) around cuBLAS GEMMs made by the Rust side. */
#ifndef PICARDIFF_KERNELS_UNET_H
#define PICARDIFF_KERNELS_UNET_H

#ifdef __cplusplus
extern "C" {
#endif

/* Inputs one convolution may read concatenated along channels. */
#define PICARDIFF_CONV_MAX_INPUTS 4

/* im2col of a 1-D convolution over the channel-wise concatenation of `inputs` inputs (src[i]:
 * n x len x ch[i]; the ch[i] sum to cin): col[(r * lout + l)][kk * cin + c] = input value at position
 * l * stride + kk - pad of row r, channel c of the concatenation (0 outside [0, len)). */
typedef struct Im2colParams {
    const float* src[PICARDIFF_CONV_MAX_INPUTS];
    int ch[PICARDIFF_CONV_MAX_INPUTS];
    int inputs;
    float* col;        /* n * lout x k * cin */
    long long n;
    int len;
    int lout;
    int k;
    int cin;
    int stride;
    int pad;
} Im2colParams;

cudaError_t launch_im2col_f32(Im2colParams p, cudaStream_t stream);
/* The scatter of a transposed convolution after its GEMM y[n * len][k * cout] = x . W:
 * out[r][o][c] = bias[c] + sum over kk = 0..k-1 (in that order) of y[r * len + i][kk][c] where
 * o + pad = i * stride + kk and 0 <= i < len. out: n x lout x cout. */
cudaError_t launch_conv_transpose_scatter_f32(const float* y, const float* bias, float* out, long long n, int len,
                                              int lout, int k, int cout, int stride, int pad, cudaStream_t stream);
/* In place GroupNorm (groups of ch / groups channels x len positions per row, biased variance, f64
 * statistics, eps) with affine gamma/beta, then Mish, over n x len x ch. */
cudaError_t launch_group_norm_mish_f32(float* x, const float* gamma, const float* beta, long long n, int len, int ch,
                                       int groups, float eps, cudaStream_t stream);
/* In place FiLM over n x len x ch: x = s * x + t with (s, t) = (film[r][c], film[r][ch + c]) when
 * scale, else x + film[r][c]; rows of film are film_stride apart. */
cudaError_t launch_film_f32(float* x, const float* film, long long n, int len, int ch, long long film_stride,
                            int scale, cudaStream_t stream);
/* In place Mish over n values. */
cudaError_t launch_mish_f32(float* x, long long n, cudaStream_t stream);
/* out[i] += x[i] over n values. */
cudaError_t launch_add_f32(float* out, const float* x, long long n, cudaStream_t stream);
/* out[r] = [sin(t_r f_i) | cos(t_r f_i)], f_i = exp(i * step) (f32), dim = 2 * half, n rows. */
cudaError_t launch_sinusoidal_f32(const float* times, float* out, long long n, int dim, float step,
                                  cudaStream_t stream);
/* out[r] = [first[r] (a values) | second[(row0 + r) % batch] (b values)], n rows. */
cudaError_t launch_concat_cond_f32(const float* first, int a, const float* second, int b, long long n, long long row0,
                                   int batch, float* out, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* PICARDIFF_KERNELS_UNET_H */
