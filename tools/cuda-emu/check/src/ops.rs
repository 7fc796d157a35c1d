//! The tensor-op kernels of `kernels/unet.cu` (the U-Net's `Ops` on CUDA) against `Ops` for the CPU
//! backend: im2col and the transposed convolution's scatter around naive GEMMs (cuBLAS's part),
//! fused GroupNorm + Mish, FiLM, Mish, add, sinusoidal, concat_cond, on awkward shapes.

use std::sync::Arc;

use picardiff::backend::cpu::CpuBackend;
use picardiff::backend::ops::{
    Conv, ConvShape, ConvTranspose, GroupNorm, HostTensor, Input, Ops, Output,
};

use super::{ffi, null, rand_vec};

/// Relative tolerance of a value computed through a GEMM (naive f32 sums vs matrixmultiply).
const GEMM_TOL: f32 = 1e-5;
/// Tolerance of values through f64 `exp`/`sin` rounded once vs the CPU's f32 libm (≤ 2 ulp of the
/// exponential, times an argument up to 10³ for the sinusoid).
const LIBM_TOL: f32 = 1e-5;
const SIN_TOL: f32 = 2e-4;

fn t(v: Vec<f32>) -> HostTensor {
    Arc::from(v)
}

fn assert_close(what: &str, cpu: &[f32], emu: &[f32], tol: f32) -> f32 {
    assert_eq!(cpu.len(), emu.len(), "{what}: lengths");
    let mut worst = 0f32;
    for (i, (a, b)) in cpu.iter().zip(emu).enumerate() {
        let rel = (a - b).abs() / a.abs().max(1.0);
        assert!(rel <= tol, "{what}: value {i}: cpu {a} emu {b}");
        worst = worst.max(rel);
    }
    worst
}

fn assert_bits(what: &str, cpu: &[f32], emu: &[f32]) {
    assert_eq!(cpu.len(), emu.len(), "{what}: lengths");
    if let Some(i) = (0..cpu.len()).find(|&i| cpu[i].to_bits() != emu[i].to_bits()) {
        panic!("{what}: value {i}: cpu {} emu {}", cpu[i], emu[i]);
    }
}

/// `c[m×n] = a[m×k] · b[k×n]` (row-major), summed in order in f32 (cuBLAS's part of the op).
fn naive_gemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
        }
    }
    c
}

/// A convolution over `chs` concatenated inputs: im2col (emulated) + naive GEMM + bias vs the CPU.
fn conv_case(n: usize, len: usize, chs: &[usize], cout: usize, k: usize, stride: usize, pad: usize) {
    let cin: usize = chs.iter().sum();
    let shape = ConvShape { cin, cout, k, stride, pad };
    let lout = shape.conv_len(len).unwrap();
    let conv = Conv { shape, weight: t(rand_vec(k * cin * cout, 11)), bias: t(rand_vec(cout, 12)) };
    let ins: Vec<Vec<f32>> = chs.iter().enumerate().map(|(i, &c)| rand_vec(n * len * c, 20 + i as u64)).collect();
    let inputs: Vec<Input<'_, Vec<f32>>> = ins.iter().zip(chs).map(|(b, &ch)| Input { buf: b, off: 0, ch }).collect();
    let mut col = vec![0f32; <CpuBackend as Ops>::conv1d_scratch(shape, n, len).unwrap()];
    let mut cpu = vec![0f32; n * lout * cout];
    CpuBackend.conv1d(&conv, n, len, &inputs, &mut col, Output { buf: &mut cpu, off: 0 }).unwrap();

    let mut p = ffi::Im2colParams {
        src: [std::ptr::null(); 4],
        ch: [0; 4],
        inputs: chs.len() as i32,
        col: std::ptr::null_mut(),
        n: n as i64,
        len: len as i32,
        lout: lout as i32,
        k: k as i32,
        cin: cin as i32,
        stride: stride as i32,
        pad: pad as i32,
    };
    for (i, (b, &c)) in ins.iter().zip(chs).enumerate() {
        p.src[i] = b.as_ptr();
        p.ch[i] = c as i32;
    }
    let mut ecol = vec![f32::NAN; n * lout * k * cin];
    p.col = ecol.as_mut_ptr();
    assert_eq!(unsafe { ffi::launch_im2col_f32(p, null()) }, 0);
    let mut emu = naive_gemm(n * lout, cout, k * cin, &ecol, &conv.weight);
    let rows = (n * lout) as i64;
    let code = unsafe { ffi::launch_bias_act_f32(emu.as_mut_ptr(), conv.bias.as_ptr(), rows, cout as i64, 0, null()) };
    assert_eq!(code, 0);
    let w = assert_close(&format!("conv1d {chs:?} k={k} s={stride} p={pad} n={n} len={len}"), &cpu, &emu, GEMM_TOL);
    println!("ops conv1d inputs {chs:?} -> {cout}, k={k} stride={stride} pad={pad}, {n}x{len}: max rel diff {w:e}");
}

/// A transposed convolution: naive GEMM + the scatter kernel vs the CPU.
fn conv_transpose_case(n: usize, len: usize, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) {
    let shape = ConvShape { cin, cout, k, stride, pad };
    let lout = shape.transpose_len(len).unwrap();
    let conv = ConvTranspose { shape, weight: t(rand_vec(cin * k * cout, 31)), bias: t(rand_vec(cout, 32)) };
    let x = rand_vec(n * len * cin, 33);
    let mut tmp = vec![0f32; <CpuBackend as Ops>::conv_transpose1d_scratch(shape, n, len)];
    let mut cpu = vec![0f32; n * lout * cout];
    let xin = Input { buf: &x, off: 0, ch: cin };
    CpuBackend.conv_transpose1d(&conv, n, len, xin, &mut tmp, Output { buf: &mut cpu, off: 0 }).unwrap();
    let y = naive_gemm(n * len, k * cout, cin, &x, &conv.weight);
    let mut emu = vec![f32::NAN; n * lout * cout];
    let code = unsafe {
        ffi::launch_conv_transpose_scatter_f32(
            y.as_ptr(),
            conv.bias.as_ptr(),
            emu.as_mut_ptr(),
            n as i64,
            len as i32,
            lout as i32,
            k as i32,
            cout as i32,
            stride as i32,
            pad as i32,
            null(),
        )
    };
    assert_eq!(code, 0);
    let w = assert_close(&format!("conv_transpose1d k={k} s={stride} p={pad}"), &cpu, &emu, GEMM_TOL);
    println!("ops conv_transpose1d {cin} -> {cout}, k={k} stride={stride} pad={pad}, {n}x{len}: max rel diff {w:e}");
}

fn group_norm_case(n: usize, len: usize, ch: usize, groups: usize) {
    let gn = GroupNorm { groups, ch, gamma: t(rand_vec(ch, 41)), beta: t(rand_vec(ch, 42)), eps: 1e-5 };
    // An offset mean and a wide spread, so that the statistics matter.
    let x0: Vec<f32> = rand_vec(n * len * ch, 43).iter().map(|v| 3.0 * v + 0.7).collect();
    let mut cpu = x0.clone();
    CpuBackend.group_norm_mish(&gn, n, len, Output { buf: &mut cpu, off: 0 }).unwrap();
    let mut emu = x0;
    let code = unsafe {
        ffi::launch_group_norm_mish_f32(
            emu.as_mut_ptr(),
            gn.gamma.as_ptr(),
            gn.beta.as_ptr(),
            n as i64,
            len as i32,
            ch as i32,
            groups as i32,
            gn.eps,
            null(),
        )
    };
    assert_eq!(code, 0);
    let w = assert_close(&format!("group_norm_mish {n}x{len}x{ch}/{groups}"), &cpu, &emu, LIBM_TOL);
    println!("ops group_norm_mish {n}x{len}x{ch}, {groups} groups: max rel diff {w:e}");
}

fn elementwise_cases() {
    let (n, len, ch) = (3usize, 5usize, 7usize);
    for scale in [true, false] {
        let stride = 2 * ch + 3;
        let film = rand_vec((n - 1) * stride + 2 * ch, 51);
        let x0 = rand_vec(n * len * ch, 52);
        let mut cpu = x0.clone();
        let f = Input { buf: &film, off: 0, ch: stride };
        CpuBackend.film(n, len, ch, scale, f, stride, Output { buf: &mut cpu, off: 0 }).unwrap();
        let mut emu = x0;
        let code = unsafe {
            ffi::launch_film_f32(emu.as_mut_ptr(), film.as_ptr(), n as i64, len as i32, ch as i32, stride as i64, i32::from(scale), null())
        };
        assert_eq!(code, 0);
        assert_bits(&format!("film scale={scale}"), &cpu, &emu);
    }
    let v0: Vec<f32> = rand_vec(1037, 53).iter().map(|v| 30.0 * v).chain([20.0, 20.5, -90.0, f32::NAN]).collect();
    let last = v0.len() - 1;
    let mut cpu = v0.clone();
    CpuBackend.mish(v0.len(), Output { buf: &mut cpu, off: 0 }).unwrap();
    let mut emu = v0.clone();
    assert_eq!(unsafe { ffi::launch_mish_f32(emu.as_mut_ptr(), emu.len() as i64, null()) }, 0);
    assert!(cpu[last].is_nan() && emu[last].is_nan(), "mish(NaN)");
    let w = assert_close("mish", &cpu[..last], &emu[..last], LIBM_TOL);
    let add = rand_vec(v0.len(), 54);
    let mut cpu = v0.clone();
    CpuBackend.add(v0.len(), Input { buf: &add, off: 0, ch: 1 }, Output { buf: &mut cpu, off: 0 }).unwrap();
    let mut emu = v0.clone();
    assert_eq!(unsafe { ffi::launch_add_f32(emu.as_mut_ptr(), add.as_ptr(), emu.len() as i64, null()) }, 0);
    assert_bits("add", &cpu, &emu);
    println!("ops film (scale, bias), add: bit-identical; mish: max rel diff {w:e}");

    for dim in [4usize, 10, 128] {
        let times = vec![0.0f32, 1.0, 17.0, 999.0, 500.5];
        let mut cpu = vec![0f32; times.len() * dim];
        CpuBackend.sinusoidal(dim, times.len(), Input { buf: &times, off: 0, ch: 1 }, Output { buf: &mut cpu, off: 0 }).unwrap();
        let mut emu = vec![f32::NAN; cpu.len()];
        let half = dim / 2;
        let step = -(10000f64.ln() / (half - 1) as f64) as f32;
        let code = unsafe { ffi::launch_sinusoidal_f32(times.as_ptr(), emu.as_mut_ptr(), times.len() as i64, dim as i32, step, null()) };
        assert_eq!(code, 0);
        let w = assert_close(&format!("sinusoidal {dim}"), &cpu, &emu, SIN_TOL);
        println!("ops sinusoidal dim {dim}: max abs diff {w:e}");
    }

    let (n, a, b, batch, row0) = (7usize, 3usize, 5usize, 3usize, 4usize);
    let first = rand_vec(n * a, 61);
    let second = rand_vec(batch * b, 62);
    let mut cpu = vec![0f32; n * (a + b)];
    let (fi, si) = (Input { buf: &first, off: 0, ch: a }, Input { buf: &second, off: 0, ch: b });
    CpuBackend.concat_cond(n, a, fi, b, si, row0, batch, Output { buf: &mut cpu, off: 0 }).unwrap();
    let mut emu = vec![f32::NAN; cpu.len()];
    let code = unsafe {
        ffi::launch_concat_cond_f32(first.as_ptr(), a as i32, second.as_ptr(), b as i32, n as i64, row0 as i64, batch as i32, emu.as_mut_ptr(), null())
    };
    assert_eq!(code, 0);
    assert_bits("concat_cond", &cpu, &emu);
    println!("ops concat_cond: bit-identical");
}

/// Every tensor-op kernel; `quick` keeps one case per convolution path.
pub fn check_ops(quick: bool) {
    conv_case(3, 16, &[5, 3], 7, 5, 1, 2); // the decoder's skip concat, k = 5
    conv_case(2, 8, &[4], 6, 3, 2, 1); // Downsample1d
    conv_case(1, 1, &[3], 2, 3, 1, 1); // one position, taps in the padding
    conv_transpose_case(3, 4, 6, 5, 4, 2, 1); // Upsample1d
    if !quick {
        conv_case(2, 9, &[2, 3, 1, 4], 3, 7, 1, 3);
        conv_case(4, 33, &[1], 1, 1, 1, 0);
        conv_transpose_case(2, 5, 3, 2, 3, 1, 0);
        conv_transpose_case(1, 1, 2, 3, 4, 2, 1);
    }
    group_norm_case(3, 16, 32, 8);
    group_norm_case(2, 1, 6, 3);
    group_norm_case(1, 300, 64, 8); // a group of 2400 values: more than one per thread
    elementwise_cases();
}
