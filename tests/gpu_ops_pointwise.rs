//! `Ops` on the CUDA backend against the CPU backend, the ops without a GEMM: fused GroupNorm +
//! Mish (one value per group, groups larger than a block, thousands of blocks, 2²¹ values), FiLM,
//! Mish, add, sinusoidal, concat_cond (at offsets, more than 2²⁰ values), and bad shapes as errors.
//! The GEMM ops: `tests/gpu_ops.rs`. Skips loudly without a device (`gpu_common`).
#![cfg(feature = "cuda")]

mod gpu_common;

use gpu_common::ops::*;
use gpu_common::*;
use picardiff::backend::ops::{Conv, ConvShape, GroupNorm, Input, Ops, Output};
use picardiff::backend::Backend;
use picardiff::prelude::*;

/// Ops with an exponential or a sine (f64 rounded once on the GPU, f32 libm on the CPU): a few
/// ulp, and an f32 argument of up to 10³ for the sinusoid.
const LIBM_TOL: f32 = 1e-5;
const SIN_TOL: f32 = 2e-4;

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
