//! The model kernels: the mixture score (`kernels/gmm.cu`, with naive GEMMs for cuBLAS's part)
//! and the MLP's bias/activation epilogue, against the CPU.

use picardiff::prelude::*;

use super::{ffi, null, rand_vec};

pub fn check_gmm() {
    use picardiff::backend::cpu::CpuBackend as C;
    let mixes = {
        let k = 37;
        let d = 70;
        let w: Vec<f64> = (0..k).map(|i| 1.0 + (i % 5) as f64).collect();
        let m: Vec<Vec<f64>> = (0..k).map(|i| rand_vec(d, 500 + i as u64).iter().map(|&v| 3.0 * v as f64).collect()).collect();
        let s: Vec<f64> = (0..k).map(|i| 0.2 + 0.03 * i as f64).collect();
        vec![
            Mixture::new(vec![0.3, 0.7], vec![vec![-2.0, 1.0], vec![1.5, -1.0]], vec![0.4, 0.6]).unwrap(),
            Mixture::new(w, m, s).unwrap(),
            Mixture::new(vec![1.0], vec![vec![0.5]], vec![0.0]).unwrap(),
        ]
    };
    for mix in mixes {
        for sname in ["ddpm-linear", "ou", "vp-linear", "flow"] {
            let sched = Schedule::from_name(sname, 1000).unwrap();
            let (d, k) = (mix.dim, mix.components());
            let model = GmmModel::new(mix.clone(), sched.clone());
            let rows = 9;
            let x = rand_vec(rows * d, 77).iter().map(|v| v * 3.0).collect::<Vec<_>>();
            let times: Vec<f32> = match sname {
                "ddpm-linear" => vec![0.0, 1.0, 999.0, 500.4, 500.5, -1.0, 1500.0, 20.0, 3.0],
                "ou" => vec![1e-3, 0.01, 0.5, 1.0, 2.0, 5.0, 10.0, 0.1, 3.0],
                // σ = t / 1000 from the noise end (σ = 1) to near the data end.
                "flow" => vec![1000.0, 999.0, 750.0, 500.5, 250.0, 20.0, 3.0, 1.0, 0.5],
                _ => vec![1e-3, 0.01, 0.2, 0.5, 0.9, 1.0, 0.05, 0.3, 0.7],
            };
            let mut ws = ScoreModel::<C>::workspace(&model, &C, rows).unwrap();
            let mut cout = vec![0f32; rows * d];
            model.eval(&C, &mut ws, &x, &times, 0, rows, &mut cout).unwrap();
            // Emulated: naive GEMMs + kernels.
            let mut coef = vec![0f32; rows * k];
            for r in 0..rows {
                for j in 0..k {
                    let mut acc = 0f32;
                    for i in 0..d {
                        acc += x[r * d + i] * model.means_f32[j * d + i];
                    }
                    coef[r * k + j] = acc;
                }
            }
            let mut scale = vec![0f32; rows * 3];
            let log_w: Vec<f64> = mix.weights.iter().map(|w| w.ln()).collect();
            let std2: Vec<f64> = mix.stds.iter().map(|s| s.powi(2)).collect();
            // (kind, n_train, table, β_min, β_max) as `backend/cuda/mixture.rs` fills them.
            let (kind, n_train, table, bmin, bmax) = match &sched {
                Schedule::Discrete { alphas_cumprod, .. } => {
                    (0, alphas_cumprod.len(), alphas_cumprod.clone(), 0.0, 0.0)
                }
                Schedule::Ou => (1, 0, vec![0.0], 0.0, 0.0),
                Schedule::VpLinear { beta_min, beta_max } => (2, 0, vec![0.0], *beta_min, *beta_max),
                // σ = t / n_train on the device: n_train is the flow's train steps, no table.
                Schedule::Flow { train_steps } => (3, *train_steps, vec![0.0], 0.0, 0.0),
            };
            let p = ffi::GmmParams {
                x: x.as_ptr(),
                times: times.as_ptr(),
                coef: coef.as_mut_ptr(),
                scale: scale.as_mut_ptr(),
                log_w: log_w.as_ptr(),
                std2: std2.as_ptr(),
                mean_norm2: model.mean_norm2.as_ptr(),
                sched: ffi::GmmSchedule {
                    kind,
                    n_train: n_train as i32,
                    alphas_cumprod: table.as_ptr(),
                    beta_min: bmin,
                    beta_max: bmax,
                },
                dim: d as i64,
                components: k as i32,
                rows: rows as i32,
            };
            assert_eq!(unsafe { ffi::launch_gmm_coef_f32(p, null()) }, 0);
            let mut eout = vec![0f32; rows * d];
            for r in 0..rows {
                for i in 0..d {
                    let mut acc = 0f32;
                    for j in 0..k {
                        acc += coef[r * k + j] * model.means_f32[j * d + i];
                    }
                    eout[r * d + i] = acc;
                }
            }
            assert_eq!(unsafe { ffi::launch_gmm_finish_f32(x.as_ptr(), scale.as_ptr(), eout.as_mut_ptr(), rows as i32, d as i64, null()) }, 0);
            let mut worst = 0f32;
            for (a, b) in cout.iter().zip(&eout) {
                let rel = (a - b).abs() / a.abs().max(1.0);
                if a.is_nan() && b.is_nan() {
                    continue;
                }
                if !(rel <= 1e-4) {
                    panic!("gmm {sname} K={k} D={d}: cpu {a} emu {b}");
                }
                worst = worst.max(rel);
            }
            println!("gmm {sname} K={k} D={d}: max rel diff {worst:e}");
        }
    }
}

pub fn check_bias_act() {
    let (rows, cols) = (5usize, 300usize);
    let y0 = rand_vec(rows * cols, 9).iter().map(|v| v * 6.0).collect::<Vec<_>>();
    let bias = rand_vec(cols, 10);
    for act in 0..3 {
        let mut y = y0.clone();
        assert_eq!(unsafe { ffi::launch_bias_act_f32(y.as_mut_ptr(), bias.as_ptr(), rows as i64, cols as i64, act, null()) }, 0);
        for r in 0..rows {
            for c in 0..cols {
                let v = (y0[r * cols + c] + bias[c]) as f64;
                let want = match act {
                    0 => v,
                    1 => v / (1.0 + (-v).exp()),
                    _ => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
                };
                let got = y[r * cols + c] as f64;
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "act {act}: {got} vs {want}");
            }
        }
    }
    let mut y = y0.clone();
    assert_eq!(unsafe { ffi::launch_bias_act_f32(y.as_mut_ptr(), std::ptr::null(), rows as i64, cols as i64, 0, null()) }, 0);
    assert_eq!(y, y0);
    println!("bias_act: ok");
}
