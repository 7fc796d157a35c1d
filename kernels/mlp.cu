// kernels/mlp.cu -- bias + activation epilogue for MLP score networks (f32), run after a cuBLAS GEMM.
//
// Activations (PICARDIFF_ACT_*): none, SiLU x·sigmoid(x) = x / (1 + e^-x), and GELU with the tanh
// approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (PyTorch's gelu(approximate="tanh")).

#include <string.h>

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int THREADS = 256;

template <int ACT>
__device__ __forceinline__ float activate(float v) {
    if (ACT == PICARDIFF_ACT_SILU) return v / (1.0f + expf(-v));
    if (ACT == PICARDIFF_ACT_GELU_TANH) {
        const float k = 0.7978845608028654f; // sqrt(2 / pi)
        return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
    return v;
}

// bias_act_f32
// Memory: y rows x cols f32 row-major (in place), bias[cols] or NULL.
// Mapping: 2-D grid: blockIdx.y strides over rows, x-threads grid-stride over the row's columns
// (coalesced; the bias index is the column, no division per element).
template <int ACT>
__global__ void __launch_bounds__(THREADS) bias_act_f32(float* y, const float* bias, long long rows, long long cols) {
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        float* yr = y + r * cols;
        for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (long long)gridDim.x * blockDim.x) {
            const float v = bias == nullptr ? yr[c] : yr[c] + __ldg(bias + c);
            yr[c] = activate<ACT>(v);
        }
    }
}

} // namespace

extern "C" cudaError_t launch_bias_act_f32(float* y, const float* bias, long long rows, long long cols, int act,
                                           cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    const dim3 grid(grid_for(cols, THREADS, 1024), (unsigned)(rows < 65535 ? rows : 65535));
    switch (act) {
    case PICARDIFF_ACT_NONE: bias_act_f32<PICARDIFF_ACT_NONE><<<grid, THREADS, 0, stream>>>(y, bias, rows, cols); break;
    case PICARDIFF_ACT_SILU: bias_act_f32<PICARDIFF_ACT_SILU><<<grid, THREADS, 0, stream>>>(y, bias, rows, cols); break;
    case PICARDIFF_ACT_GELU_TANH:
        bias_act_f32<PICARDIFF_ACT_GELU_TANH><<<grid, THREADS, 0, stream>>>(y, bias, rows, cols);
        break;
    default: return cudaErrorInvalidValue;
    }
    return launch_status();
}

// ---------------------------------------------------------------------------------------------------
// The MLP forward's other kernels (src/model/mlp/cuda.rs): the epilogue with an optional 16-bit copy,
// the time path (input bias + a row of the tau(t) table found by binary search on the device), the
// row-wise LayerNorm, and an f32 -> 16-bit conversion. The 16-bit copies (`half_kind`
// PICARDIFF_HALF_BF16 / _F16, raw bits in unsigned short) feed the next cuBLAS GemmEx when the weights
// are bf16/f16; PICARDIFF_HALF_NONE writes none (the pointer may then be NULL). Conversions round to
// nearest even, bit-identical to the `half` crate's from_f32 (integer arithmetic, no cuda_fp16.h).

namespace {

__host__ __device__ __forceinline__ unsigned short f32_to_bf16_bits(float v) {
    unsigned int u;
    memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x0040u); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__host__ __device__ __forceinline__ unsigned short f32_to_f16_bits(float v) {
    unsigned int x;
    memcpy(&x, &v, 4);
    const unsigned int sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return (unsigned short)(sign | 0x7c00u | (x > 0x7f800000u ? 0x0200u : 0u));
    if (x >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); // >= 65520 rounds to infinity
    if (x < 0x38800000u) {                                         // below 2^-14: subnormal or zero
        if (x <= 0x33000000u) return (unsigned short)sign;         // <= 2^-25 rounds to (even) zero
        const unsigned int e = x >> 23, m = (x & 0x7fffffu) | 0x800000u, s = 126u - e;
        unsigned int r = m >> s;
        const unsigned int rem = m & ((1u << s) - 1u), halfway = 1u << (s - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
        return (unsigned short)(sign | r);
    }
    unsigned int r = x - 0x38000000u; // rebias the exponent 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);
    return (unsigned short)(sign | (r >> 13));
}

template <int HALF>
__device__ __forceinline__ void store_half(unsigned short* dst, long long i, float v) {
    if (HALF == PICARDIFF_HALF_BF16) dst[i] = f32_to_bf16_bits(v);
    if (HALF == PICARDIFF_HALF_F16) dst[i] = f32_to_f16_bits(v);
}

// mlp_epilogue_f32
// Memory: y rows x cols f32 row-major (in place), bias[cols] or NULL, y16 rows x cols 16-bit (HALF).
// Mapping: as bias_act_f32: blockIdx.y strides over rows, x-threads grid-stride over the columns.
template <int ACT, int HALF>
__global__ void __launch_bounds__(THREADS)
    mlp_epilogue_f32(float* y, const float* bias, long long rows, long long cols, unsigned short* y16) {
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < cols;
             c += (long long)gridDim.x * blockDim.x) {
            const long long i = r * cols + c;
            const float v = activate<ACT>(bias == nullptr ? y[i] : y[i] + __ldg(bias + c));
            y[i] = v;
            store_half<HALF>(y16, i, v);
        }
    }
}

// The key of f32 bits under Rust's f32::total_cmp (the order the host sorts the table's times in).
__device__ __forceinline__ int total_key(float v) {
    int b;
    memcpy(&b, &v, 4);
    return b ^ (int)((unsigned int)(b >> 31) >> 1);
}

// mlp_time_add_f32: h[r][c] = (h[r][c] + bias[c]) + table[k][c] with table_times[k] == times[r]
// (bitwise), the CPU's operation order. A time missing from the table (a caller bug: prepare_times
// tabulates every time a run uses) sets *status = 1 and writes NaN into the row, so the sampler's
// non-finite checks stop the run even if nobody reads the flag.
// Memory: h rows x hidden f32 row-major, bias[hidden], table n_times x hidden, table_times[n_times]
// sorted by total_cmp, times[rows], h16 rows x hidden 16-bit (HALF).
// Mapping: one block per row (grid-stride over rows); every thread of the block runs the same binary
// search (log2(n_times) cached loads, uniform control flow), then the threads stride over the columns.
template <int HALF>
__global__ void __launch_bounds__(THREADS)
    mlp_time_add_f32(float* h, const float* bias, const float* table, const float* table_times, int n_times,
                     const float* times, long long rows, long long hidden, int* status, unsigned short* h16) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const int key = total_key(__ldg(times + r));
        int lo = 0, hi = n_times; // first index with key(table_times) >= key
        while (lo < hi) {
            const int mid = lo + (hi - lo) / 2;
            if (total_key(__ldg(table_times + mid)) < key) lo = mid + 1;
            else hi = mid;
        }
        const bool found = lo < n_times && total_key(__ldg(table_times + lo)) == key;
        if (!found && threadIdx.x == 0) *status = 1;
        const float* tab = table + (long long)(found ? lo : 0) * hidden;
        for (long long c = threadIdx.x; c < hidden; c += blockDim.x) {
            const long long i = r * hidden + c;
            const float v = found ? __fadd_rn(__fadd_rn(h[i], __ldg(bias + c)), __ldg(tab + c)) : __int_as_float(0x7fc00000);
            h[i] = v;
            store_half<HALF>(h16, i, v);
        }
    }
}

constexpr int LN_WARPS = THREADS / WARP;

// mlp_layernorm_f32: dst[r] = ((src[r] - mean) / sqrt(var + eps)) * gamma + beta, the biased variance,
// statistics in f64 (two passes: mean, then the centred squares), as the CPU does.
// Memory: src, dst rows x cols f32 row-major (distinct buffers), gamma/beta[cols], dst16 (HALF).
// Mapping: one warp per row (8 rows per block, grid-stride over row groups); lanes stride over the
// columns, warp_sum (fixed shuffle tree) reduces, lane 0's total is broadcast by __shfl_sync.
template <int HALF>
__global__ void __launch_bounds__(THREADS)
    mlp_layernorm_f32(const float* src, float* dst, const float* gamma, const float* beta, long long rows,
                      long long cols, double eps, unsigned short* dst16) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    for (long long r = (long long)blockIdx.x * LN_WARPS + warp; r < rows; r += (long long)gridDim.x * LN_WARPS) {
        const float* s = src + r * cols;
        double acc = 0.0;
        for (long long c = lane; c < cols; c += WARP) acc = __dadd_rn(acc, (double)s[c]);
        const double mean = __shfl_sync(FULL_MASK, warp_sum(acc), 0) / (double)cols;
        acc = 0.0;
        for (long long c = lane; c < cols; c += WARP) {
            const double d = (double)s[c] - mean;
            acc = __dadd_rn(acc, __dmul_rn(d, d));
        }
        const double var = __shfl_sync(FULL_MASK, warp_sum(acc), 0) / (double)cols;
        const double inv = 1.0 / sqrt(var + eps);
        for (long long c = lane; c < cols; c += WARP) {
            const long long i = r * cols + c;
            const float nv = (float)__dmul_rn((double)s[c] - mean, inv);
            const float v = __fadd_rn(__fmul_rn(nv, __ldg(gamma + c)), __ldg(beta + c));
            dst[i] = v;
            store_half<HALF>(dst16, i, v);
        }
    }
}

// mlp_to_half: dst[i] = round(src[i]) to 16 bits (HALF), n values; grid-stride, one element a thread.
template <int HALF>
__global__ void __launch_bounds__(THREADS) mlp_to_half(const float* src, unsigned short* dst, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        store_half<HALF>(dst, i, src[i]);
}

template <int ACT>
cudaError_t epilogue_act(dim3 grid, cudaStream_t stream, float* y, const float* bias, long long rows, long long cols,
                         unsigned short* y16, int half_kind) {
    switch (half_kind) {
    case PICARDIFF_HALF_NONE: mlp_epilogue_f32<ACT, PICARDIFF_HALF_NONE><<<grid, THREADS, 0, stream>>>(y, bias, rows, cols, y16); break;
    case PICARDIFF_HALF_BF16: mlp_epilogue_f32<ACT, PICARDIFF_HALF_BF16><<<grid, THREADS, 0, stream>>>(y, bias, rows, cols, y16); break;
    case PICARDIFF_HALF_F16: mlp_epilogue_f32<ACT, PICARDIFF_HALF_F16><<<grid, THREADS, 0, stream>>>(y, bias, rows, cols, y16); break;
    default: return cudaErrorInvalidValue;
    }
    return launch_status();
}

bool half_ok(int half_kind, const void* p) {
    return half_kind == PICARDIFF_HALF_NONE ||
           ((half_kind == PICARDIFF_HALF_BF16 || half_kind == PICARDIFF_HALF_F16) && p != nullptr);
}

} // namespace

extern "C" cudaError_t launch_mlp_epilogue_f32(float* y, const float* bias, long long rows, long long cols, int act,
                                               unsigned short* y16, int half_kind, cudaStream_t stream) {
    if (!half_ok(half_kind, y16)) return cudaErrorInvalidValue;
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    const dim3 grid(grid_for(cols, THREADS, 1024), (unsigned)(rows < 65535 ? rows : 65535));
    switch (act) {
    case PICARDIFF_ACT_NONE: return epilogue_act<PICARDIFF_ACT_NONE>(grid, stream, y, bias, rows, cols, y16, half_kind);
    case PICARDIFF_ACT_SILU: return epilogue_act<PICARDIFF_ACT_SILU>(grid, stream, y, bias, rows, cols, y16, half_kind);
    case PICARDIFF_ACT_GELU_TANH:
        return epilogue_act<PICARDIFF_ACT_GELU_TANH>(grid, stream, y, bias, rows, cols, y16, half_kind);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t launch_mlp_time_add_f32(float* h, const float* bias, const float* table,
                                               const float* table_times, int n_times, const float* times,
                                               long long rows, long long hidden, int* status, unsigned short* h16,
                                               int half_kind, cudaStream_t stream) {
    if (!half_ok(half_kind, h16) || n_times < 0) return cudaErrorInvalidValue;
    if (rows <= 0 || hidden <= 0) return cudaSuccess;
    const unsigned grid = (unsigned)(rows < 65535 ? rows : 65535);
    switch (half_kind) {
    case PICARDIFF_HALF_NONE:
        mlp_time_add_f32<PICARDIFF_HALF_NONE><<<grid, THREADS, 0, stream>>>(h, bias, table, table_times, n_times, times,
                                                                             rows, hidden, status, h16);
        break;
    case PICARDIFF_HALF_BF16:
        mlp_time_add_f32<PICARDIFF_HALF_BF16><<<grid, THREADS, 0, stream>>>(h, bias, table, table_times, n_times, times,
                                                                             rows, hidden, status, h16);
        break;
    default:
        mlp_time_add_f32<PICARDIFF_HALF_F16><<<grid, THREADS, 0, stream>>>(h, bias, table, table_times, n_times, times,
                                                                            rows, hidden, status, h16);
        break;
    }
    return launch_status();
}

extern "C" cudaError_t launch_mlp_layernorm_f32(const float* src, float* dst, const float* gamma, const float* beta,
                                                long long rows, long long cols, double eps, unsigned short* dst16,
                                                int half_kind, cudaStream_t stream) {
    if (!half_ok(half_kind, dst16)) return cudaErrorInvalidValue;
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    const unsigned grid = grid_for(rows, LN_WARPS, 65535);
    switch (half_kind) {
    case PICARDIFF_HALF_NONE:
        mlp_layernorm_f32<PICARDIFF_HALF_NONE><<<grid, THREADS, 0, stream>>>(src, dst, gamma, beta, rows, cols, eps, dst16);
        break;
    case PICARDIFF_HALF_BF16:
        mlp_layernorm_f32<PICARDIFF_HALF_BF16><<<grid, THREADS, 0, stream>>>(src, dst, gamma, beta, rows, cols, eps, dst16);
        break;
    default:
        mlp_layernorm_f32<PICARDIFF_HALF_F16><<<grid, THREADS, 0, stream>>>(src, dst, gamma, beta, rows, cols, eps, dst16);
        break;
    }
    return launch_status();
}

extern "C" cudaError_t launch_mlp_to_half(const float* src, unsigned short* dst, long long n, int half_kind,
                                          cudaStream_t stream) {
    if (half_kind != PICARDIFF_HALF_BF16 && half_kind != PICARDIFF_HALF_F16) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const unsigned grid = grid_for(n, THREADS);
    if (half_kind == PICARDIFF_HALF_BF16) mlp_to_half<PICARDIFF_HALF_BF16><<<grid, THREADS, 0, stream>>>(src, dst, n);
    else mlp_to_half<PICARDIFF_HALF_F16><<<grid, THREADS, 0, stream>>>(src, dst, n);
    return launch_status();
}
