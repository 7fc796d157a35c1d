// kernels/langevin.cu -- one Picard sweep of PIADM's Langevin corrector (underdamped Langevin
// dynamics at a block's end time, solved by Picard iterations over its M steps).
//
// Twin of CpuBackend::langevin_sweep (src/backend/cpu.rs): the same roundings (__fmul_rn /
// __fadd_rn, no contraction) and the same noise, so the results are identical bit for bit.

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int THREADS = 256;

// langevin_sweep_f32
// Memory: x ring of M + 1 slots and out of M slots, slot = batch x dim f32 sample-major (slot i of x
// holds the iterate of corrector step i; out[i] the model output at x[i]).
// Mapping: grid-stride over (sample b, element group g) pairs, idx = b * groups + g; one thread runs
// elements 4g .. min(4g + 4, dim) - 1 of sample b through all M steps with y, the old iterate and the
// velocity v in registers:
//   y = x_old = X[0]; v = z(step0);
//   for i < M: eps = p x_old + q O[i]; v = decay v + force eps + kick z(step0 + 1 + i);
//              y = y + h v; x_old = X[i+1]; X[i+1] = y.
// z(step) is Philox noise (seed, group g, step, sample0 + b, tag CORRECTOR), the CPU's numbers.
// No reduction: the corrector runs a fixed number of iterations.
__global__ void __launch_bounds__(THREADS) langevin_sweep_f32(LangevinParams P) {
    const long long groups = (P.dim + 3) / 4, total = groups * P.batch;
    const long long slot = (long long)P.batch * P.dim;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const auto [b, g, n] = sample_group(idx, groups, P.dim);
        const long long row = (long long)b * P.dim + 4 * g;
        const unsigned sample = P.sample0 + (unsigned)b;
        float y[4], xo[4], v[4];
        load4<false>(P.x + row, n, y);
#pragma unroll
        for (int i = 0; i < 4; ++i) xo[i] = y[i];
        philox_normal4(P.seed, (unsigned)g, P.step0, sample, PICARDIFF_TAG_CORRECTOR, v);
        for (int m = 0; m < P.steps; ++m) {
            float z[4], o[4], xn[4];
            philox_normal4(P.seed, (unsigned)g, P.step0 + 1u + (unsigned)m, sample, PICARDIFF_TAG_CORRECTOR, z);
            load4<false>(P.out + m * slot + row, n, o);
            float* next = P.x + (m + 1) * slot + row;
            load4<false>(next, n, xn);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float eps = __fadd_rn(__fmul_rn(P.p, xo[i]), __fmul_rn(P.q, o[i]));
                v[i] = __fadd_rn(__fadd_rn(__fmul_rn(P.decay, v[i]), __fmul_rn(P.force, eps)),
                                 __fmul_rn(P.kick, z[i]));
                y[i] = __fadd_rn(y[i], __fmul_rn(P.h, v[i]));
                xo[i] = xn[i];
            }
            store4<false>(next, n, y);
        }
    }
}

} // namespace

extern "C" cudaError_t launch_langevin_sweep_f32(LangevinParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.steps <= 0) return cudaErrorInvalidValue;
    const long long total = (p.dim + 3) / 4 * p.batch;
    langevin_sweep_f32<<<grid_for(total, THREADS), THREADS, 0, stream>>>(p);
    return launch_status();
}
