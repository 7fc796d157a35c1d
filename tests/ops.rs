//! The CPU backend's model ops (`picardiff::backend::ops`) against naive f64 references written
//! from PyTorch's definitions, on awkward shapes (odd lengths and channels, stride 2, two
//! concatenated inputs, one row).

use std::sync::Arc;

use picardiff::backend::ops::{
    Conv, ConvShape, ConvTranspose, GroupNorm, HostTensor, Input, Linear, Ops, Output,
};
use picardiff::prelude::*;

/// Deterministic pseudo-random values in [−1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// PyTorch conv1d on channels-last input `[n][len][cin]`, weight `[cout][cin][k]`.
#[allow(clippy::too_many_arguments)]
fn conv_ref(x: &[f32], n: usize, len: usize, w: &[f32], b: &[f32], s: ConvShape) -> Vec<f64> {
    let lout = (len + 2 * s.pad - s.k) / s.stride + 1;
    let mut out = vec![0f64; n * lout * s.cout];
    for r in 0..n {
        for l in 0..lout {
            for co in 0..s.cout {
                let mut acc = b[co] as f64;
                for ci in 0..s.cin {
                    for kk in 0..s.k {
                        let p = (l * s.stride + kk) as isize - s.pad as isize;
                        if p >= 0 && (p as usize) < len {
                            acc += w[(co * s.cin + ci) * s.k + kk] as f64
                                * x[(r * len + p as usize) * s.cin + ci] as f64;
                        }
                    }
                }
                out[(r * lout + l) * s.cout + co] = acc;
            }
        }
    }
    out
}

/// `[cout][cin][k]` → the canonical `[k][cin][cout]`.
fn permute_conv(w: &[f32], s: ConvShape) -> HostTensor {
    let mut p = vec![0f32; w.len()];
    for co in 0..s.cout {
        for ci in 0..s.cin {
            for kk in 0..s.k {
                p[(kk * s.cin + ci) * s.cout + co] = w[(co * s.cin + ci) * s.k + kk];
            }
        }
    }
    Arc::from(p)
}

#[test]
fn conv1d_matches_pytorch_definition() {
    let be = CpuBackend;
    for (n, len, cin, cout, k, stride, pad) in [
        (1, 1, 1, 1, 1, 1, 0),
        (3, 7, 5, 6, 5, 1, 2),
        (2, 16, 3, 9, 3, 2, 1),
        (4, 9, 12, 7, 7, 1, 3),
        (5, 4, 17, 3, 1, 1, 0),
    ] {
        let s = ConvShape {
            cin,
            cout,
            k,
            stride,
            pad,
        };
        let x = values(n * len * cin, 1);
        let w = values(cout * cin * k, 2);
        let b = values(cout, 3);
        let conv = Conv {
            shape: s,
            weight: permute_conv(&w, s),
            bias: Arc::from(b.clone()),
        };
        let lout = s.conv_len(len).unwrap();
        let mut col = vec![0f32; CpuBackend::conv1d_scratch(s, n, len).unwrap()];
        let mut out = vec![0f32; n * lout * cout + 3];
        let inputs = [Input {
            buf: &x,
            off: 0,
            ch: cin,
        }];
        be.conv1d(
            &conv,
            n,
            len,
            &inputs,
            &mut col,
            Output {
                buf: &mut out,
                off: 3,
            },
        )
        .unwrap();
        let want = conv_ref(&x, n, len, &w, &b, s);
        assert_close(
            &out[3..],
            &want,
            1e-5,
            &format!("conv1d {s:?} n {n} len {len}"),
        );
    }
}

/// Two inputs are read as their channel-wise concatenation.
#[test]
fn conv1d_over_two_inputs_is_the_concatenation() {
    let be = CpuBackend;
    let (n, len, c1, c2, cout) = (3, 6, 4, 5, 7);
    for k in [1, 3, 5] {
        let s = ConvShape {
            cin: c1 + c2,
            cout,
            k,
            stride: 1,
            pad: k / 2,
        };
        let a = values(n * len * c1, 4);
        let b = values(n * len * c2, 5);
        let mut cat = Vec::new();
        for p in 0..n * len {
            cat.extend_from_slice(&a[p * c1..(p + 1) * c1]);
            cat.extend_from_slice(&b[p * c2..(p + 1) * c2]);
        }
        let w = values(cout * (c1 + c2) * k, 6);
        let bias = values(cout, 7);
        let conv = Conv {
            shape: s,
            weight: permute_conv(&w, s),
            bias: Arc::from(bias.clone()),
        };
        let mut col = vec![0f32; CpuBackend::conv1d_scratch(s, n, len).unwrap()];
        let mut out = vec![0f32; n * len * cout];
        let inputs = [
            Input {
                buf: &a,
                off: 0,
                ch: c1,
            },
            Input {
                buf: &b,
                off: 0,
                ch: c2,
            },
        ];
        be.conv1d(
            &conv,
            n,
            len,
            &inputs,
            &mut col,
            Output {
                buf: &mut out,
                off: 0,
            },
        )
        .unwrap();
        assert_close(
            &out,
            &conv_ref(&cat, n, len, &w, &bias, s),
            1e-5,
            "two-input conv1d",
        );
    }
}

#[test]
fn conv_transpose1d_matches_pytorch_definition() {
    let be = CpuBackend;
    for (n, len, cin, cout, k, stride, pad) in [
        (1, 1, 2, 3, 4, 2, 1),
        (3, 5, 4, 6, 4, 2, 1),
        (2, 8, 7, 5, 3, 1, 1),
    ] {
        let s = ConvShape {
            cin,
            cout,
            k,
            stride,
            pad,
        };
        let x = values(n * len * cin, 8);
        let w = values(cin * cout * k, 9); // PyTorch [cin][cout][k]
        let b = values(cout, 10);
        let lout = s.transpose_len(len).unwrap();
        let mut want = vec![0f64; n * lout * cout];
        for r in 0..n {
            for o in 0..lout {
                for co in 0..cout {
                    let mut acc = b[co] as f64;
                    for i in 0..len {
                        for kk in 0..k {
                            if i * stride + kk == o + pad {
                                for ci in 0..cin {
                                    acc += x[(r * len + i) * cin + ci] as f64
                                        * w[(ci * cout + co) * k + kk] as f64;
                                }
                            }
                        }
                    }
                    want[(r * lout + o) * cout + co] = acc;
                }
            }
        }
        let mut p = vec![0f32; w.len()];
        for ci in 0..cin {
            for co in 0..cout {
                for kk in 0..k {
                    p[(ci * k + kk) * cout + co] = w[(ci * cout + co) * k + kk];
                }
            }
        }
        let conv = ConvTranspose {
            shape: s,
            weight: Arc::from(p),
            bias: Arc::from(b),
        };
        let mut tmp = vec![0f32; CpuBackend::conv_transpose1d_scratch(s, n, len)];
        let mut out = vec![0f32; n * lout * cout];
        be.conv_transpose1d(
            &conv,
            n,
            len,
            Input {
                buf: &x,
                off: 0,
                ch: cin,
            },
            &mut tmp,
            Output {
                buf: &mut out,
                off: 0,
            },
        )
        .unwrap();
        assert_close(&out, &want, 1e-5, &format!("conv_transpose1d {s:?}"));
    }
}

#[test]
fn group_norm_mish_film_linear_match_their_definitions() {
    let be = CpuBackend;
    let (n, len, ch, groups) = (3, 5, 12, 4);
    let x = values(n * len * ch, 11)
        .iter()
        .map(|v| 3.0 * v + 0.5)
        .collect::<Vec<_>>();
    let gamma = values(ch, 12);
    let beta = values(ch, 13);
    let gn = GroupNorm {
        groups,
        ch,
        gamma: Arc::from(gamma.clone()),
        beta: Arc::from(beta.clone()),
        eps: 1e-5,
    };
    let mut y = x.clone();
    be.group_norm_mish(
        &gn,
        n,
        len,
        Output {
            buf: &mut y,
            off: 0,
        },
    )
    .unwrap();
    let per = ch / groups;
    let mut want = vec![0f64; x.len()];
    for r in 0..n {
        for g in 0..groups {
            let idx: Vec<usize> = (0..len)
                .flat_map(|l| (0..per).map(move |c| (r * len + l) * ch + g * per + c))
                .collect();
            let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / idx.len() as f64;
            let var = idx
                .iter()
                .map(|&i| (x[i] as f64 - mean).powi(2))
                .sum::<f64>()
                / idx.len() as f64;
            for &i in &idx {
                let c = i % ch;
                let v =
                    (x[i] as f64 - mean) / (var + 1e-5).sqrt() * gamma[c] as f64 + beta[c] as f64;
                want[i] = v * (v.exp().ln_1p()).tanh();
            }
        }
    }
    assert_close(&y, &want, 2e-6, "group_norm_mish");

    // FiLM with and without scale, rows of the FiLM input `stride` apart.
    for scale in [true, false] {
        let width = if scale { 2 * ch } else { ch };
        let stride = width + 3;
        let film = values(n * stride, 14);
        let mut z = x.clone();
        be.film(
            n,
            len,
            ch,
            scale,
            Input {
                buf: &film,
                off: 0,
                ch: width,
            },
            stride,
            Output {
                buf: &mut z,
                off: 0,
            },
        )
        .unwrap();
        let want: Vec<f64> = (0..x.len())
            .map(|i| {
                let (r, c) = (i / (len * ch), i % ch);
                let f = &film[r * stride..];
                if scale {
                    f[c] as f64 * x[i] as f64 + f[ch + c] as f64
                } else {
                    x[i] as f64 + f[c] as f64
                }
            })
            .collect();
        assert_close(&z, &want, 1e-6, "film");
    }

    let (k, m) = (13, 9);
    let w = values(m * k, 15);
    let b = values(m, 16);
    let lin = Linear {
        in_dim: k,
        out_dim: m,
        weight: Arc::from(w.clone()),
        bias: Arc::from(b.clone()),
    };
    let xin = values(n * k, 17);
    let mut out = vec![0f32; n * m];
    be.linear(
        &lin,
        n,
        Input {
            buf: &xin,
            off: 0,
            ch: k,
        },
        Output {
            buf: &mut out,
            off: 0,
        },
    )
    .unwrap();
    let want: Vec<f64> = (0..n * m)
        .map(|i| {
            let (r, o) = (i / m, i % m);
            b[o] as f64
                + (0..k)
                    .map(|j| w[o * k + j] as f64 * xin[r * k + j] as f64)
                    .sum::<f64>()
        })
        .collect();
    assert_close(&out, &want, 1e-5, "linear");
}

/// Short buffers are errors, never panics.
#[test]
fn short_buffers_are_errors() {
    let be = CpuBackend;
    let s = ConvShape {
        cin: 2,
        cout: 2,
        k: 3,
        stride: 1,
        pad: 1,
    };
    let conv = Conv {
        shape: s,
        weight: Arc::from(vec![0f32; 12]),
        bias: Arc::from(vec![0f32; 2]),
    };
    let x = vec![0f32; 10];
    let mut col = vec![0f32; 4];
    let mut out = vec![0f32; 100];
    let inputs = [Input {
        buf: &x,
        off: 0,
        ch: 2,
    }];
    assert!(be
        .conv1d(
            &conv,
            2,
            5,
            &inputs,
            &mut col,
            Output {
                buf: &mut out,
                off: 0
            }
        )
        .is_err());
    let mut small = vec![0f32; 3];
    assert!(be
        .mish(
            4,
            Output {
                buf: &mut small,
                off: 0
            }
        )
        .is_err());
    assert!(be
        .mish(
            1,
            Output {
                buf: &mut small,
                off: usize::MAX
            }
        )
        .is_err());
}
