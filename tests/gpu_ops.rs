//! `Ops` on the CUDA backend against `Ops` on the CPU backend (the oracle, itself checked against
//! PyTorch's definitions in `tests/ops.rs`): the GEMM ops (conv1d, conv-transpose1d, linear) on
//! awkward shapes: odd lengths and channels, one row, stride 2, up to four concatenated inputs,
//! inputs and outputs at offsets, more than 2²⁰ values. The other ops: `tests/gpu_ops_pointwise.rs`.
//! Skips loudly without a device (`gpu_common`).
#![cfg(feature = "cuda")]

mod gpu_common;

use gpu_common::ops::*;
use gpu_common::*;
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::ops::{Conv, ConvShape, ConvTranspose, Input, Linear, Ops, Output};
use picardiff::backend::Backend;
use picardiff::prelude::*;

/// GEMM outputs: f32 sums of up to a few thousand products in cuBLAS's order vs matrixmultiply's,
/// relative to max(1, |cpu|).
const GEMM_TOL: f32 = 1e-4;

#[allow(clippy::too_many_arguments)]
fn conv_case(
    be: &CudaBackend,
    n: usize,
    len: usize,
    chs: &[usize],
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) {
    let cin: usize = chs.iter().sum();
    let shape = ConvShape {
        cin,
        cout,
        k,
        stride,
        pad,
    };
    let lout = shape.conv_len(len).unwrap();
    let (w, b) = (rand_vec(k * cin * cout, 11), rand_vec(cout, 12));
    let cconv = Conv {
        shape,
        weight: host(w.clone()),
        bias: host(b.clone()),
    };
    let gconv = Conv {
        shape,
        weight: be.upload(&w).unwrap(),
        bias: be.upload(&b).unwrap(),
    };
    let xs: Vec<Vec<f32>> = chs
        .iter()
        .enumerate()
        .map(|(i, &c)| padded(&rand_vec(n * len * c, 20 + i as u64)))
        .collect();
    let gxs: Vec<Buf> = xs.iter().map(|x| be.upload(x).unwrap()).collect();
    let cin_: Vec<Input<'_, Vec<f32>>> = xs
        .iter()
        .zip(chs)
        .map(|(x, &ch)| Input {
            buf: x,
            off: OFF,
            ch,
        })
        .collect();
    let gin: Vec<Input<'_, Buf>> = gxs
        .iter()
        .zip(chs)
        .map(|(x, &ch)| Input {
            buf: x,
            off: OFF,
            ch,
        })
        .collect();
    let scratch = <CudaBackend as Ops>::conv1d_scratch(shape, n, len).unwrap();
    let out_len = OFF + n * lout * cout;
    let (mut ccol, mut cout_) = (vec![0f32; scratch], vec![0f32; out_len]);
    CpuBackend
        .conv1d(
            &cconv,
            n,
            len,
            &cin_,
            &mut ccol,
            Output {
                buf: &mut cout_,
                off: OFF,
            },
        )
        .unwrap();
    let (mut gcol, mut gout) = (
        be.alloc(scratch.max(1)).unwrap(),
        be.alloc(out_len).unwrap(),
    );
    be.conv1d(
        &gconv,
        n,
        len,
        &gin,
        &mut gcol,
        Output {
            buf: &mut gout,
            off: OFF,
        },
    )
    .unwrap();
    check(
        &format!("conv1d {chs:?}->{cout} k={k} s={stride} p={pad} {n}x{len}"),
        &cout_[OFF..],
        &down(be, &gout)[OFF..],
        GEMM_TOL,
    );
}

#[test]
fn conv1d_matches_the_cpu() {
    let Some(be) = device("conv1d_matches_the_cpu") else {
        return;
    };
    conv_case(&be, 3, 16, &[5, 3], 7, 5, 1, 2); // the decoder's skip concat
    conv_case(&be, 2, 9, &[2, 3, 1, 4], 3, 7, 1, 3); // four inputs
    conv_case(&be, 2, 8, &[4], 6, 3, 2, 1); // Downsample1d
    conv_case(&be, 1, 1, &[3], 2, 3, 1, 1); // one position, taps in the padding
    conv_case(&be, 4, 33, &[6], 5, 1, 1, 0); // 1×1 over one input: the direct GEMM
    conv_case(&be, 2, 12, &[3, 5], 4, 1, 1, 0); // 1×1 over two inputs: im2col
    conv_case(&be, 1024, 16, &[64], 32, 5, 1, 2); // 2.6 M im2col values (> 2²⁰)
}

#[test]
fn conv_transpose1d_matches_the_cpu() {
    let Some(be) = device("conv_transpose1d_matches_the_cpu") else {
        return;
    };
    for (n, len, cin, cout, k, stride, pad) in [
        (3, 4, 6, 5, 4, 2, 1),
        (2, 5, 3, 2, 3, 1, 0),
        (1, 1, 2, 3, 4, 2, 1),
        (300, 8, 32, 16, 4, 2, 1),
    ] {
        let shape = ConvShape {
            cin,
            cout,
            k,
            stride,
            pad,
        };
        let lout = shape.transpose_len(len).unwrap();
        let (w, b) = (rand_vec(cin * k * cout, 31), rand_vec(cout, 32));
        let cc = ConvTranspose {
            shape,
            weight: host(w.clone()),
            bias: host(b.clone()),
        };
        let gc = ConvTranspose {
            shape,
            weight: be.upload(&w).unwrap(),
            bias: be.upload(&b).unwrap(),
        };
        let x = padded(&rand_vec(n * len * cin, 33));
        let gx = be.upload(&x).unwrap();
        let tmp = <CudaBackend as Ops>::conv_transpose1d_scratch(shape, n, len);
        let out_len = OFF + n * lout * cout;
        let (mut ct, mut co) = (vec![0f32; tmp], vec![0f32; out_len]);
        let xin = Input {
            buf: &x,
            off: OFF,
            ch: cin,
        };
        CpuBackend
            .conv_transpose1d(
                &cc,
                n,
                len,
                xin,
                &mut ct,
                Output {
                    buf: &mut co,
                    off: OFF,
                },
            )
            .unwrap();
        let (mut gt, mut go) = (be.alloc(tmp).unwrap(), be.alloc(out_len).unwrap());
        let gin = Input {
            buf: &gx,
            off: OFF,
            ch: cin,
        };
        be.conv_transpose1d(
            &gc,
            n,
            len,
            gin,
            &mut gt,
            Output {
                buf: &mut go,
                off: OFF,
            },
        )
        .unwrap();
        let what = format!("conv_transpose1d {cin}->{cout} k={k} s={stride} p={pad} {n}x{len}");
        check(&what, &co[OFF..], &down(&be, &go)[OFF..], GEMM_TOL);
    }
}

#[test]
fn linear_matches_the_cpu() {
    let Some(be) = device("linear_matches_the_cpu") else {
        return;
    };
    for (n, i, o) in [(1, 1, 1), (3, 7, 5), (257, 64, 256), (5, 1024, 3)] {
        let (w, b) = (rand_vec(o * i, 41), rand_vec(o, 42));
        let cl = Linear {
            in_dim: i,
            out_dim: o,
            weight: host(w.clone()),
            bias: host(b.clone()),
        };
        let gl = Linear {
            in_dim: i,
            out_dim: o,
            weight: be.upload(&w).unwrap(),
            bias: be.upload(&b).unwrap(),
        };
        let x = padded(&rand_vec(n * i, 43));
        let gx = be.upload(&x).unwrap();
        let mut co = vec![0f32; OFF + n * o];
        CpuBackend
            .linear(
                &cl,
                n,
                Input {
                    buf: &x,
                    off: OFF,
                    ch: i,
                },
                Output {
                    buf: &mut co,
                    off: OFF,
                },
            )
            .unwrap();
        let mut go = be.alloc(OFF + n * o).unwrap();
        be.linear(
            &gl,
            n,
            Input {
                buf: &gx,
                off: OFF,
                ch: i,
            },
            Output {
                buf: &mut go,
                off: OFF,
            },
        )
        .unwrap();
        check(
            &format!("linear {i}->{o} x{n}"),
            &co[OFF..],
            &down(&be, &go)[OFF..],
            GEMM_TOL,
        );
    }
}
