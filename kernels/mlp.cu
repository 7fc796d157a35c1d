// kernels/mlp.cu -- bias + activation epilogue for MLP score networks (f32), run after a cuBLAS GEMM.
//
// Activations (PICARDIFF_ACT_*): none, SiLU x·sigmoid(x) = x / (1 + e^-x), and GELU with the tanh
// approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (PyTorch's gelu(approximate="tanh")).

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
