// kernels/unet.cu -- the non-GEMM tensor ops of learned models (`Ops` for the CUDA backend,
// src/backend/cuda/ops.rs; CPU twin src/backend/cpu_ops.rs).
//
// Layout: channels-last tensors, n rows x len positions x ch channels, row-major [n][len][ch] f32.
// Convolutions: im2col_f32 builds the GEMM's left matrix (rows n * lout, k * cin values each), cuBLAS
// multiplies it by the [k][cin][cout] weight, the bias is added by bias_act; a transposed convolution
// multiplies first (y = x . W, [n * len][k * cout]) and conv_transpose_scatter_f32 sums taps into the
// output. GroupNorm and Mish are one kernel.
//
// Arithmetic: elementwise expressions are spelled with __f*_rn (no FMA contraction), in the CPU's
// order; exponentials and sines are computed in f64 and rounded once, so they differ from the CPU's
// libm f32 functions by at most an ulp. GroupNorm statistics are f64, summed in a fixed tree.

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int THREADS = 256;
constexpr long long GRID_CAP = 1ll << 20;

// Mish v * tanh(softplus v) with one exponential, as the CPU's `cpu_ops::mish`: w = e^v (e^v + 2),
// tanh(ln(1 + e^v)) = w / (w + 2); v above 20 is returned as is.
__device__ __forceinline__ float mish(float v) {
    if (v > 20.0f) return v;
    const float e = (float)exp((double)v);
    const float w = __fmul_rn(e, __fadd_rn(e, 2.0f));
    return __fdiv_rn(__fmul_rn(v, w), __fadd_rn(w, 2.0f));
}

// im2col_f32: one thread per col element (grid-stride), index e = (rl * k + kk) * cin + c with
// rl = r * lout + l; reads input value (r, l * stride + kk - pad, c of the concatenation).
__global__ void __launch_bounds__(THREADS) im2col_f32(Im2colParams p) {
    const long long kc = (long long)p.k * p.cin, total = p.n * p.lout * kc;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long rl = e / kc;
        const int rem = (int)(e - rl * kc), kk = rem / p.cin;
        int c = rem - kk * p.cin;
        const long long r = rl / p.lout;
        const int l = (int)(rl - r * p.lout);
        const int pos = l * p.stride + kk - p.pad;
        float v = 0.0f;
        if (pos >= 0 && pos < p.len) {
            int i = 0;
            while (i + 1 < p.inputs && c >= p.ch[i]) c -= p.ch[i++];
            v = p.src[i][(r * p.len + pos) * p.ch[i] + c];
        }
        p.col[e] = v;
    }
}

// conv_transpose_scatter_f32: one thread per output element (r, o, c), grid-stride; starts from
// bias[c] and adds the taps kk = 0..k-1 in order (the CPU's order), so equal y give equal bits.
__global__ void __launch_bounds__(THREADS)
    conv_transpose_scatter_f32(const float* y, const float* bias, float* out, long long n, int len, int lout, int k,
                               int cout, int stride, int pad) {
    const long long total = n * lout * cout;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long ro = e / cout;
        const int c = (int)(e - ro * cout);
        const long long r = ro / lout;
        const int o = (int)(ro - r * lout);
        float acc = bias[c];
        for (int kk = 0; kk < k; ++kk) {
            const int num = o + pad - kk;
            if (num < 0 || num % stride != 0 || num / stride >= len) continue;
            const long long i = num / stride;
            acc = __fadd_rn(acc, y[((r * len + i) * k + kk) * cout + c]);
        }
        out[e] = acc;
    }
}

// group_norm_mish_f32: one block per (row r, group g) (blockIdx.x = r * groups + g, grid-stride);
// threads stride over the group's per * len values (value e at position e / per, channel
// g * per + e % per). Mean, then centred squares, each a block_reduce (f64, fixed tree); then each
// value becomes mish(((v - mean) * inv) * gamma + beta) with mean and inv rounded to f32, as the CPU.
__global__ void __launch_bounds__(THREADS)
    group_norm_mish_f32(float* x, const float* gamma, const float* beta, long long n, int len, int ch, int groups,
                        float eps) {
    __shared__ double smem[THREADS / WARP + 1];
    const int per = ch / groups;
    const long long count = (long long)per * len;
    for (long long bg = blockIdx.x; bg < n * groups; bg += gridDim.x) {
        const long long r = bg / groups;
        const int c0 = (int)(bg - r * groups) * per;
        float* row = x + r * len * ch + c0;
        double acc = 0.0;
        for (long long e = threadIdx.x; e < count; e += blockDim.x) acc = __dadd_rn(acc, (double)row[(e / per) * ch + e % per]);
        const double mean = block_reduce<false>(acc, smem) / (double)count;
        acc = 0.0;
        for (long long e = threadIdx.x; e < count; e += blockDim.x) {
            const double d = (double)row[(e / per) * ch + e % per] - mean;
            acc = __dadd_rn(acc, __dmul_rn(d, d));
        }
        const double var = block_reduce<false>(acc, smem) / (double)count;
        const float meanf = (float)mean, inv = (float)(1.0 / sqrt(var + (double)eps));
        for (long long e = threadIdx.x; e < count; e += blockDim.x) {
            float* v = row + (e / per) * ch + e % per;
            const int c = c0 + (int)(e % per);
            const float y = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(*v, meanf), inv), gamma[c]), beta[c]);
            *v = mish(y);
        }
        __syncthreads(); // the next group's first reduction reuses smem
    }
}

// film_f32: one thread per element (r, pos, c) of n x len x ch, grid-stride.
__global__ void __launch_bounds__(THREADS)
    film_f32(float* x, const float* film, long long n, int len, int ch, long long film_stride, int scale) {
    const long long per_row = (long long)len * ch, total = n * per_row;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long r = e / per_row;
        const int c = (int)(e % ch);
        const float* f = film + r * film_stride;
        x[e] = scale ? __fadd_rn(__fmul_rn(f[c], x[e]), f[ch + c]) : __fadd_rn(x[e], f[c]);
    }
}

// mish_f32 / add_f32: one thread per value, grid-stride.
__global__ void __launch_bounds__(THREADS) mish_f32(float* x, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = mish(x[i]);
}

__global__ void __launch_bounds__(THREADS) add_f32(float* out, const float* x, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = __fadd_rn(out[i], x[i]);
}

// sinusoidal_f32: one thread per (row r, frequency i < half), grid-stride; writes out[r][i] (sin)
// and out[r][half + i] (cos). f_i = exp(i * step) and t * f_i are f32 roundings, as the CPU.
__global__ void __launch_bounds__(THREADS)
    sinusoidal_f32(const float* times, float* out, long long n, int half, float step) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n * half;
         e += (long long)gridDim.x * blockDim.x) {
        const long long r = e / half;
        const int i = (int)(e - r * half);
        const float f = (float)exp((double)__fmul_rn((float)i, step));
        const double arg = (double)__fmul_rn(times[r], f);
        out[r * 2 * half + i] = (float)sin(arg);
        out[r * 2 * half + half + i] = (float)cos(arg);
    }
}

// concat_cond_f32: one thread per output value (r, j < a + b), grid-stride.
__global__ void __launch_bounds__(THREADS)
    concat_cond_f32(const float* first, int a, const float* second, int b, long long n, long long row0, int batch,
                    float* out) {
    const long long w = (long long)a + b;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n * w;
         e += (long long)gridDim.x * blockDim.x) {
        const long long r = e / w;
        const int j = (int)(e - r * w);
        out[e] = j < a ? first[r * a + j] : second[((row0 + r) % batch) * b + (j - a)];
    }
}

} // namespace

extern "C" cudaError_t launch_im2col_f32(Im2colParams p, cudaStream_t stream) {
    if (p.inputs < 1 || p.inputs > PICARDIFF_CONV_MAX_INPUTS || p.k < 1 || p.cin < 1 || p.stride < 1 || p.len < 1)
        return cudaErrorInvalidValue;
    const long long total = p.n * p.lout * (long long)p.k * p.cin;
    if (total <= 0) return cudaSuccess;
    im2col_f32<<<grid_for(total, THREADS, GRID_CAP), THREADS, 0, stream>>>(p);
    return launch_status();
}

extern "C" cudaError_t launch_conv_transpose_scatter_f32(const float* y, const float* bias, float* out, long long n,
                                                         int len, int lout, int k, int cout, int stride, int pad,
                                                         cudaStream_t stream) {
    if (k < 1 || stride < 1 || len < 1 || cout < 1) return cudaErrorInvalidValue;
    const long long total = n * lout * (long long)cout;
    if (total <= 0) return cudaSuccess;
    conv_transpose_scatter_f32<<<grid_for(total, THREADS, GRID_CAP), THREADS, 0, stream>>>(y, bias, out, n, len, lout,
                                                                                         k, cout, stride, pad);
    return launch_status();
}

extern "C" cudaError_t launch_group_norm_mish_f32(float* x, const float* gamma, const float* beta, long long n, int len,
                                                  int ch, int groups, float eps, cudaStream_t stream) {
    if (groups < 1 || ch % groups != 0) return cudaErrorInvalidValue;
    if (n <= 0 || len <= 0 || ch <= 0) return cudaSuccess;
    const long long blocks = n * groups;
    const unsigned grid = (unsigned)(blocks < GRID_CAP ? blocks : GRID_CAP);
    group_norm_mish_f32<<<grid, THREADS, 0, stream>>>(x, gamma, beta, n, len, ch, groups, eps);
    return launch_status();
}

extern "C" cudaError_t launch_film_f32(float* x, const float* film, long long n, int len, int ch, long long film_stride,
                                       int scale, cudaStream_t stream) {
    const long long total = n * len * (long long)ch;
    if (total <= 0) return cudaSuccess;
    film_f32<<<grid_for(total, THREADS, GRID_CAP), THREADS, 0, stream>>>(x, film, n, len, ch, film_stride, scale);
    return launch_status();
}

extern "C" cudaError_t launch_mish_f32(float* x, long long n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    mish_f32<<<grid_for(n, THREADS, GRID_CAP), THREADS, 0, stream>>>(x, n);
    return launch_status();
}

extern "C" cudaError_t launch_add_f32(float* out, const float* x, long long n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    add_f32<<<grid_for(n, THREADS, GRID_CAP), THREADS, 0, stream>>>(out, x, n);
    return launch_status();
}

extern "C" cudaError_t launch_sinusoidal_f32(const float* times, float* out, long long n, int dim, float step,
                                             cudaStream_t stream) {
    if (dim < 4 || dim % 2 != 0) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const int half = dim / 2;
    sinusoidal_f32<<<grid_for(n * half, THREADS, GRID_CAP), THREADS, 0, stream>>>(times, out, n, half, step);
    return launch_status();
}

extern "C" cudaError_t launch_concat_cond_f32(const float* first, int a, const float* second, int b, long long n,
                                              long long row0, int batch, float* out, cudaStream_t stream) {
    if (batch < 1 || a < 0 || b < 0) return cudaErrorInvalidValue;
    const long long total = n * ((long long)a + b);
    if (total <= 0) return cudaSuccess;
    concat_cond_f32<<<grid_for(total, THREADS, GRID_CAP), THREADS, 0, stream>>>(first, a, second, b, n, row0, batch,
                                                                               out);
    return launch_status();
}
