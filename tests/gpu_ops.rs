//! `Ops` on the CUDA backend against `Ops` on the CPU backend (the oracle, itself checked against
//! PyTorch's definitions in `tests/ops.rs`), each op on awkward shapes: odd lengths and channels,
//! one row, stride 2, up to four concatenated inputs, inputs and outputs at offsets, more than one
//! block per group, more than 2²⁰ values. Skips loudly without a device (`gpu_common`).
#![cfg(feature = "cuda")]

mod gpu_common;

use std::sync::Arc;

use gpu_common::*;
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::ops::{
    Conv, ConvShape, ConvTranspose, GroupNorm, HostTensor, Input, Linear, Ops, Output,
};
use picardiff::backend::Backend;
use picardiff::prelude::*;

/// GEMM outputs: f32 sums of up to a few thousand products in cuBLAS's order vs matrixmultiply's,
/// relative to max(1, |cpu|).
const GEMM_TOL: f32 = 1e-4;
/// Elementwise ops with an exponential or a sine (f64 rounded once on the GPU, f32 libm on the
/// CPU): a few ulp, and an f32 argument of up to 10³ for the sinusoid.
const LIBM_TOL: f32 = 1e-5;
const SIN_TOL: f32 = 2e-4;
/// Where inputs and outputs start inside their buffers (an offset that is not a multiple of 4).
const OFF: usize = 5;

type Buf = <CudaBackend as Backend>::Buf;

fn host(v: Vec<f32>) -> HostTensor {
    Arc::from(v)
}

fn down(be: &CudaBackend, buf: &Buf) -> Vec<f32> {
    let mut v = vec![0f32; buf.len()];
    be.download(buf, 0, &mut v).unwrap();
    v
}

/// `v` behind OFF leading values (so every op reads at an offset).
fn padded(v: &[f32]) -> Vec<f32> {
    let mut p = vec![7.0f32; OFF];
    p.extend_from_slice(v);
    p
}

fn check(what: &str, cpu: &[f32], gpu: &[f32], tol: f32) {
    let d = max_rel_diff(cpu, gpu);
    report(format!("{what}: max rel diff {d:e}"));
    assert!(d <= tol, "{what}: max rel diff {d:e} above {tol:e}");
}

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

#[test]
fn group_norm_mish_matches_the_cpu() {
    let Some(be) = device("group_norm_mish_matches_the_cpu") else {
        return;
    };
    // (rows, len, ch, groups): one value per group, 2400-value groups, 8192 blocks, 2²¹ values.
    for (n, len, ch, groups) in [
        (2, 1, 6, 6),
        (3, 16, 32, 8),
        (1, 300, 64, 8),
        (1024, 16, 64, 8),
        (256, 16, 512, 8),
    ] {
        let (g, b) = (rand_vec(ch, 51), rand_vec(ch, 52));
        let cg = GroupNorm {
            groups,
            ch,
            gamma: host(g.clone()),
            beta: host(b.clone()),
            eps: 1e-5,
        };
        let gg = GroupNorm {
            groups,
            ch,
            gamma: be.upload(&g).unwrap(),
            beta: be.upload(&b).unwrap(),
            eps: 1e-5,
        };
        let x: Vec<f32> = padded(
            &rand_vec(n * len * ch, 53)
                .iter()
                .map(|v| 3.0 * v + 0.7)
                .collect::<Vec<_>>(),
        );
        let mut cx = x.clone();
        CpuBackend
            .group_norm_mish(
                &cg,
                n,
                len,
                Output {
                    buf: &mut cx,
                    off: OFF,
                },
            )
            .unwrap();
        let mut gx = be.upload(&x).unwrap();
        be.group_norm_mish(
            &gg,
            n,
            len,
            Output {
                buf: &mut gx,
                off: OFF,
            },
        )
        .unwrap();
        let gx = down(&be, &gx);
        assert_bits_eq(
            &cx[..OFF],
            &gx[..OFF],
            "group_norm: values before the offset",
        );
        check(
            &format!("group_norm_mish {n}x{len}x{ch}/{groups}"),
            &cx,
            &gx,
            LIBM_TOL,
        );
    }
}

#[test]
fn elementwise_ops_match_the_cpu() {
    let Some(be) = device("elementwise_ops_match_the_cpu") else {
        return;
    };
    let (n, len, ch) = (3usize, 5usize, 7usize);
    for scale in [true, false] {
        let stride = 2 * ch + 3;
        let film = padded(&rand_vec((n - 1) * stride + 2 * ch, 61));
        let x = rand_vec(n * len * ch, 62);
        let gfilm = be.upload(&film).unwrap();
        let mut cx = x.clone();
        CpuBackend
            .film(
                n,
                len,
                ch,
                scale,
                Input {
                    buf: &film,
                    off: OFF,
                    ch,
                },
                stride,
                Output {
                    buf: &mut cx,
                    off: 0,
                },
            )
            .unwrap();
        let mut gx = be.upload(&x).unwrap();
        be.film(
            n,
            len,
            ch,
            scale,
            Input {
                buf: &gfilm,
                off: OFF,
                ch,
            },
            stride,
            Output {
                buf: &mut gx,
                off: 0,
            },
        )
        .unwrap();
        assert_bits_eq(&cx, &down(&be, &gx), &format!("film scale={scale}"));
    }
    let big = (1 << 20) + 3;
    let v: Vec<f32> = rand_vec(big, 63).iter().map(|v| 30.0 * v).collect();
    let mut cv = v.clone();
    CpuBackend
        .mish(
            big,
            Output {
                buf: &mut cv,
                off: 0,
            },
        )
        .unwrap();
    let mut gv = be.upload(&v).unwrap();
    be.mish(
        big,
        Output {
            buf: &mut gv,
            off: 0,
        },
    )
    .unwrap();
    check("mish 2^20 + 3", &cv, &down(&be, &gv), LIBM_TOL);
    let add = padded(&rand_vec(big, 64));
    let gadd = be.upload(&add).unwrap();
    let mut cv2 = v.clone();
    CpuBackend
        .add(
            big,
            Input {
                buf: &add,
                off: OFF,
                ch: 1,
            },
            Output {
                buf: &mut cv2,
                off: 0,
            },
        )
        .unwrap();
    let mut gv2 = be.upload(&v).unwrap();
    be.add(
        big,
        Input {
            buf: &gadd,
            off: OFF,
            ch: 1,
        },
        Output {
            buf: &mut gv2,
            off: 0,
        },
    )
    .unwrap();
    assert_bits_eq(&cv2, &down(&be, &gv2), "add");
    for dim in [4usize, 10, 128] {
        let times = padded(&[0.0, 1.0, 17.0, 999.0, 500.5, 3.0, 64.0]);
        let rows = times.len() - OFF;
        let gtimes = be.upload(&times).unwrap();
        let mut co = vec![0f32; rows * dim];
        CpuBackend
            .sinusoidal(
                dim,
                rows,
                Input {
                    buf: &times,
                    off: OFF,
                    ch: 1,
                },
                Output {
                    buf: &mut co,
                    off: 0,
                },
            )
            .unwrap();
        let mut go = be.alloc(rows * dim).unwrap();
        be.sinusoidal(
            dim,
            rows,
            Input {
                buf: &gtimes,
                off: OFF,
                ch: 1,
            },
            Output {
                buf: &mut go,
                off: 0,
            },
        )
        .unwrap();
        check(&format!("sinusoidal {dim}"), &co, &down(&be, &go), SIN_TOL);
    }
    let (n, a, b, batch, row0) = (7usize, 3usize, 5usize, 3usize, 4usize);
    let (first, second) = (padded(&rand_vec(n * a, 65)), rand_vec(batch * b, 66));
    let (gf, gs) = (be.upload(&first).unwrap(), be.upload(&second).unwrap());
    let mut co = vec![0f32; n * (a + b)];
    let (fi, si) = (
        Input {
            buf: &first,
            off: OFF,
            ch: a,
        },
        Input {
            buf: &second,
            off: 0,
            ch: b,
        },
    );
    CpuBackend
        .concat_cond(
            n,
            a,
            fi,
            b,
            si,
            row0,
            batch,
            Output {
                buf: &mut co,
                off: 0,
            },
        )
        .unwrap();
    let mut go = be.alloc(n * (a + b)).unwrap();
    let (fi, si) = (
        Input {
            buf: &gf,
            off: OFF,
            ch: a,
        },
        Input {
            buf: &gs,
            off: 0,
            ch: b,
        },
    );
    be.concat_cond(
        n,
        a,
        fi,
        b,
        si,
        row0,
        batch,
        Output {
            buf: &mut go,
            off: 0,
        },
    )
    .unwrap();
    assert_bits_eq(&co, &down(&be, &go), "concat_cond");
}

/// Short buffers, mismatched weights and bad group counts are `Error::Shape`, before any launch.
#[test]
fn bad_shapes_are_errors() {
    let Some(be) = device("bad_shapes_are_errors") else {
        return;
    };
    let shape = ConvShape {
        cin: 4,
        cout: 3,
        k: 3,
        stride: 1,
        pad: 1,
    };
    let conv = Conv {
        shape,
        weight: be.upload(&rand_vec(36, 1)).unwrap(),
        bias: be.upload(&[0.0; 3]).unwrap(),
    };
    let x = be.upload(&rand_vec(2 * 8 * 4, 2)).unwrap();
    let mut col = be.alloc(2 * 8 * 12).unwrap();
    let mut short = be.alloc(2 * 8 * 3 - 1).unwrap();
    let inputs = [Input {
        buf: &x,
        off: 0,
        ch: 4,
    }];
    let e = be
        .conv1d(
            &conv,
            2,
            8,
            &inputs,
            &mut col,
            Output {
                buf: &mut short,
                off: 0,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let mut out = be.alloc(2 * 8 * 3).unwrap();
    let mut short_col = be.alloc(2 * 8 * 12 - 1).unwrap();
    let e = be
        .conv1d(
            &conv,
            2,
            8,
            &inputs,
            &mut short_col,
            Output {
                buf: &mut out,
                off: 0,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = be
        .conv1d(
            &conv,
            3,
            8,
            &inputs,
            &mut col,
            Output {
                buf: &mut out,
                off: 0,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "short input: {e}");
    let gn = GroupNorm {
        groups: 3,
        ch: 4,
        gamma: be.upload(&[1.0; 4]).unwrap(),
        beta: be.upload(&[0.0; 4]).unwrap(),
        eps: 1e-5,
    };
    let mut x2 = be.upload(&rand_vec(32, 3)).unwrap();
    let e = be
        .group_norm_mish(
            &gn,
            1,
            8,
            Output {
                buf: &mut x2,
                off: 0,
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("groups"), "{e}");
}
