// kernels/gmm.cu -- the non-GEMM parts of the exact Gaussian-mixture score (docs/algorithms.md §6).
//
// Per batch of rows (each row a state x of dim D at its own model time t):
//   1. cuBLAS:  dots = X · Mᵀ                         (rows x K)
//   2. gmm_coef: per row α, σ (Schedule::alpha_sigma), v_k = α² s_k² + σ², logits
//      l_k = ln w_k − ½ D ln v_k − max(|x|² − 2α x·μ_k + α²|μ_k|², 0) / (2 v_k), softmax r_k,
//      coef_k = r_k / v_k (in place over dots), scale = {Σ_k coef_k, σ, α}
//   3. cuBLAS:  G = coef · M                          (rows x D)
//   4. gmm_finish: out = σ (x Σcoef − α G)
// On the flow schedule (docs/algorithms.md §8) the output is the velocity E[ε − x0 | x]: gmm_coef writes
// coef_k = r_k + α c_k, c_k = r_k (σ − α s_k²)/v_k, scale = {Σ_k c_k, 1, 1}, and gmm_finish unchanged
// gives x Σc − G exactly.
// Twin of GmmModel::eval_chunk (src/model/gmm.rs): the same f64 logits and the same f32 roundings.

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int COEF_THREADS = 128;
constexpr int FINISH_THREADS = 256;

// (α, σ) at model time t, mirroring Schedule::alpha_sigma (f64).
__device__ void alpha_sigma(const GmmSchedule& s, double t, double* alpha, double* sigma) {
    double log_alpha;
    if (s.kind == PICARDIFF_SCHED_FLOW) {
        // Rust: (t / n).clamp(0.0, 1.0), NaN stays NaN; α = 1 − σ.
        double sg = __ddiv_rn(t, (double)s.n_train);
        if (sg < 0.0) sg = 0.0;
        else if (sg > 1.0) sg = 1.0;
        *alpha = __dsub_rn(1.0, sg), *sigma = sg;
        return;
    }
    if (s.kind == PICARDIFF_SCHED_DISCRETE) {
        if (t < -0.5) {
            *alpha = 1.0, *sigma = 0.0;
            return;
        }
        // Rust: (t.round() as usize).min(n - 1); `as usize` saturates (NaN -> 0).
        const double r = round(t);
        long long i = isnan(r) || r < 0.0 ? 0 : (r >= (double)s.n_train ? s.n_train - 1 : (long long)r);
        const double ab = s.alphas_cumprod[i];
        *alpha = sqrt(ab);
        *sigma = sqrt(__dsub_rn(1.0, ab));
        return;
    } else if (s.kind == PICARDIFF_SCHED_OU) {
        log_alpha = __dmul_rn(-0.5, t);
    } else {
        // -0.25 t² (β_max − β_min) − 0.5 t β_min, left to right as in Rust.
        const double a = __dmul_rn(__dmul_rn(__dmul_rn(-0.25, t), t), __dsub_rn(s.beta_max, s.beta_min));
        log_alpha = __dsub_rn(a, __dmul_rn(__dmul_rn(0.5, t), s.beta_min));
    }
    *alpha = exp(log_alpha);
    *sigma = sqrt(fmax(-expm1(__dmul_rn(2.0, log_alpha)), 0.0));
}

// gmm_coef_f32
// Memory: x rows x D f32; times[rows]; coef rows x K f32 (dots in, coefficients out); scale rows x 3.
// Mapping: one block per row (grid-stride over rows), of min(128, max(D, K) rounded up to a warp)
// threads. |x|² is a block sum over D in f64;
// the K logits are strided over the threads (three passes: max, exp-sum, coefficients, each a
// deterministic block reduction), so any K works with O(1) shared memory.
__global__ void __launch_bounds__(COEF_THREADS) gmm_coef_f32(GmmParams P) {
    __shared__ double red[COEF_THREADS / WARP + 1];
    const int K = P.components;
    for (int r = blockIdx.x; r < P.rows; r += gridDim.x) {
        double alpha, sigma;
        alpha_sigma(P.sched, (double)P.times[r], &alpha, &sigma);
        const float* xr = P.x + (long long)r * P.dim;
        double x2 = 0.0;
        for (long long d = threadIdx.x; d < P.dim; d += blockDim.x) {
            const double v = (double)xr[d];
            x2 = __dadd_rn(x2, __dmul_rn(v, v));
        }
        x2 = block_reduce<false>(x2, red);
        float* row = P.coef + (long long)r * K;
        const double a2 = __dmul_rn(alpha, alpha), s2 = __dmul_rn(sigma, sigma), two_a = __dmul_rn(2.0, alpha);
        const double half_d = __dmul_rn(0.5, (double)P.dim);
        auto var = [&](int j) { return __dadd_rn(__dmul_rn(a2, P.std2[j]), s2); };
        auto logit = [&](int j, float dot) {
            const double v = var(j);
            double d2 = __dadd_rn(__dsub_rn(x2, __dmul_rn(two_a, (double)dot)), __dmul_rn(a2, (double)P.mean_norm2[j]));
            d2 = fmax(d2, 0.0);
            return __dsub_rn(__dsub_rn(P.log_w[j], __dmul_rn(half_d, log(v))), __ddiv_rn(d2, __dmul_rn(2.0, v)));
        };
        double mx = -INFINITY;
        for (int j = threadIdx.x; j < K; j += blockDim.x) mx = fmax(mx, logit(j, row[j]));
        mx = block_reduce<true>(mx, red);
        double z = 0.0;
        for (int j = threadIdx.x; j < K; j += blockDim.x) {
            const double ej = exp(__dsub_rn(logit(j, row[j]), mx));
            row[j] = (float)ej;
            z = __dadd_rn(z, ej);
        }
        z = block_reduce<false>(z, red);
        double sc = 0.0;
        const bool flow = P.sched.kind == PICARDIFF_SCHED_FLOW;
        for (int j = threadIdx.x; j < K; j += blockDim.x) {
            if (flow) {
                // Rust: resp * (σ − α·s²) / v, then resp + α·c (GmmModel::eval_chunk).
                const double resp = __ddiv_rn((double)row[j], z);
                const double c = __ddiv_rn(__dmul_rn(resp, __dsub_rn(sigma, __dmul_rn(alpha, P.std2[j]))), var(j));
                row[j] = (float)__dadd_rn(resp, __dmul_rn(alpha, c));
                sc = __dadd_rn(sc, c);
            } else {
                const double c = __ddiv_rn(__ddiv_rn((double)row[j], z), var(j));
                row[j] = (float)c;
                sc = __dadd_rn(sc, c);
            }
        }
        sc = block_reduce<false>(sc, red);
        if (threadIdx.x == 0) {
            P.scale[3ll * r] = (float)sc;
            P.scale[3ll * r + 1] = flow ? 1.0f : (float)sigma;
            P.scale[3ll * r + 2] = flow ? 1.0f : (float)alpha;
        }
        __syncthreads(); // `red` and `row` are reused by the next row
    }
}

// gmm_finish_f32
// Memory: x, out rows x D f32 (out holds G = coef · M on entry); scale rows x 3.
// Mapping: 2-D grid: blockIdx.y strides over rows, x-threads grid-stride over the row's elements;
// out = σ (x · Σcoef − α G) with the CPU's f32 roundings.
__global__ void __launch_bounds__(FINISH_THREADS) gmm_finish_f32(const float* x, const float* scale, float* out,
                                                                  int rows, long long dim) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const float sc = scale[3ll * r], sigma = scale[3ll * r + 1], alpha = scale[3ll * r + 2];
        const float* xr = x + (long long)r * dim;
        float* o = out + (long long)r * dim;
        for (long long d = (long long)blockIdx.x * blockDim.x + threadIdx.x; d < dim; d += (long long)gridDim.x * blockDim.x)
            o[d] = __fmul_rn(sigma, __fsub_rn(__fmul_rn(xr[d], sc), __fmul_rn(alpha, o[d])));
    }
}

} // namespace

extern "C" cudaError_t launch_gmm_coef_f32(GmmParams p, cudaStream_t stream) {
    if (p.rows <= 0) return cudaSuccess;
    if (p.dim <= 0 || p.components <= 0) return cudaErrorInvalidValue;
    if (p.sched.kind == PICARDIFF_SCHED_DISCRETE && (p.sched.n_train <= 0 || p.sched.alphas_cumprod == nullptr))
        return cudaErrorInvalidValue;
    if (p.sched.kind == PICARDIFF_SCHED_FLOW && p.sched.n_train <= 0) return cudaErrorInvalidValue;
    // Threads per row: enough for max(D, K) up to COEF_THREADS, a whole number of warps.
    const long long widest = p.dim > p.components ? p.dim : p.components;
    const int threads = widest >= COEF_THREADS ? COEF_THREADS : (int)((widest + WARP - 1) / WARP * WARP);
    gmm_coef_f32<<<grid_for(p.rows, 1, 1 << 20), threads, 0, stream>>>(p);
    return launch_status();
}

extern "C" cudaError_t launch_gmm_finish_f32(const float* x, const float* scale, float* out, int rows,
                                             long long dim, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (dim <= 0) return cudaErrorInvalidValue;
    const int threads = dim >= FINISH_THREADS ? FINISH_THREADS : (int)((dim + WARP - 1) / WARP * WARP);
    const dim3 grid(grid_for(dim, threads, 1024), (unsigned)min(rows, 65535));
    gmm_finish_f32<<<grid, threads, 0, stream>>>(x, scale, out, rows, dim);
    return launch_status();
}
