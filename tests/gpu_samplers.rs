//! The samplers on the CUDA backend against the CPU oracle, through `picardiff::sampler::run`: same
//! seed, samples within 1e-4 (relative to max(1, |x|)), same rounds and evaluations where the
//! iteration count is deterministic (window 1, blocks with K < block size). Without a device each
//! test prints "skipped: no CUDA device (...)" and passes; with `REQUIRE_GPU=1` it fails.
#![cfg(feature = "cuda")]

mod common;
mod gpu_common;

use common::*;
use gpu_common::*;
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::Backend;
use picardiff::model::MlpModel;
use picardiff::prelude::*;

fn inputs(batch: usize) -> RunInputs<'static> {
    RunInputs {
        batch,
        seed: 11,
        ..Default::default()
    }
}

/// Runs `kind` on both backends; returns (cpu, gpu).
fn both(
    be: &CudaBackend,
    model: &GmmModel,
    grid: &Grid,
    rule: &str,
    kind: &SamplerKind,
    inputs: &RunInputs<'_>,
) -> (RunOutput, RunOutput) {
    let rule = StepRule::from_name(rule, None).unwrap();
    let cpu = run(&CpuBackend, model, grid, rule, kind, inputs).unwrap();
    let gpu = run(be, model, grid, rule, kind, inputs).unwrap();
    (cpu, gpu)
}

fn assert_close(cpu: &RunOutput, gpu: &RunOutput, what: &str) -> f32 {
    let diff = max_rel_diff(&cpu.samples, &gpu.samples);
    report(format!(
        "{what}: rounds cpu {} gpu {}, nfe cpu {} gpu {}, host syncs gpu {}, max rel diff {diff:e}",
        cpu.stats.rounds, gpu.stats.rounds, cpu.stats.nfe, gpu.stats.nfe, gpu.stats.host_syncs
    ));
    assert!(diff <= 1e-4, "{what}: samples differ by {diff}");
    diff
}

#[test]
fn sequential_matches_the_cpu() {
    let Some(be) = device("sequential_matches_the_cpu") else {
        return;
    };
    let (s, g) = ddpm_grid(200);
    let model = GmmModel::new(mixture_64d(), s);
    for rule in ["ddpm", "ddim"] {
        for batch in [1, 33] {
            let (c, gp) = both(
                &be,
                &model,
                &g,
                rule,
                &SamplerKind::Sequential,
                &inputs(batch),
            );
            assert_close(&c, &gp, &format!("sequential {rule} batch {batch}"));
            assert_eq!((gp.stats.rounds, gp.stats.nfe), (200, 200));
        }
    }
}

#[test]
fn window_one_equals_sequential_with_exactly_n_rounds() {
    let Some(be) = device("window_one_equals_sequential_with_exactly_n_rounds") else {
        return;
    };
    let (s, g) = ddpm_grid(100);
    let model = GmmModel::new(mixture_2d(), s);
    for form in [PicardForm::Scan, PicardForm::Drift] {
        let (c, gp) = both(
            &be,
            &model,
            &g,
            "ddpm",
            &SamplerKind::picard(1, 0.1, form),
            &inputs(33),
        );
        assert_close(&c, &gp, &format!("window 1 {form:?}"));
        assert_eq!((gp.stats.rounds, gp.stats.nfe), (100, 100));
        assert_eq!(
            (c.stats.rounds, c.stats.nfe),
            (gp.stats.rounds, gp.stats.nfe)
        );
        let seq = run(
            &be,
            &model,
            &g,
            StepRule::from_name("ddpm", None).unwrap(),
            &SamplerKind::Sequential,
            &inputs(33),
        )
        .unwrap();
        assert!(max_rel_diff(&seq.samples, &gp.samples) <= 1e-4);
    }
}

/// τ = 0: every window reproduces the sequential samples. The rounds depend on when iterates become
/// bit-identical, which the GEMM's rounding can shift: they are reported, and must agree closely.
#[test]
fn zero_tolerance_windows_match_the_cpu() {
    let Some(be) = device("zero_tolerance_windows_match_the_cpu") else {
        return;
    };
    let (s, g) = ddpm_grid(200);
    let model = GmmModel::new(mixture_64d(), s);
    for (w, form) in [
        (7, PicardForm::Scan),
        (50, PicardForm::Scan),
        (200, PicardForm::Scan),
        (50, PicardForm::Drift),
    ] {
        let (c, gp) = both(
            &be,
            &model,
            &g,
            "ddpm",
            &SamplerKind::picard(w, 0.0, form),
            &inputs(3),
        );
        assert_close(&c, &gp, &format!("window {w} {form:?} tau 0"));
        // Exact convergence at τ = 0 depends on when f32 iterates stop changing, which GEMM
        // rounding can shift: report a difference, fail only on a gross one or past the bound N.
        assert!(
            gp.stats.rounds <= 200,
            "window {w}: {} rounds > N",
            gp.stats.rounds
        );
        let diff = c.stats.rounds.abs_diff(gp.stats.rounds);
        if diff > 0 {
            report(format!(
                "NOTE: window {w} {form:?} tau 0: rounds differ by {diff} (cpu {}, gpu {})",
                c.stats.rounds, gp.stats.rounds
            ));
        }
        assert!(
            diff <= 2.max(c.stats.rounds / 4),
            "window {w}: rounds cpu {} gpu {}",
            c.stats.rounds,
            gp.stats.rounds
        );
    }
}

/// The ParaDiGMS setting: 1000-step DDPM, full window, τ = 0.1. Rounds may differ by one where an
/// error sits on the threshold (different summation order, GEMM rounding; up to 2 is accepted and
/// reported); the samples then differ by about the
/// tolerance's effect (~1e-3), otherwise by GEMM rounding only.
#[test]
fn paradigms_setting_matches_the_cpu_with_few_host_syncs() {
    let Some(be) = device("paradigms_setting_matches_the_cpu_with_few_host_syncs") else {
        return;
    };
    let (s, g) = ddpm_grid(1000);
    let model = GmmModel::new(mixture_64d(), s);
    for form in [PicardForm::Scan, PicardForm::Drift] {
        let (c, gp) = both(
            &be,
            &model,
            &g,
            "ddpm",
            &SamplerKind::picard(1000, 0.1, form),
            &inputs(33),
        );
        let diff = max_rel_diff(&c.samples, &gp.samples);
        report(format!(
            "ddpm 1000 {form:?} tau 0.1: rounds cpu {} gpu {}, nfe cpu {} gpu {}, host syncs {}, max rel diff {diff:e}",
            c.stats.rounds, gp.stats.rounds, c.stats.nfe, gp.stats.nfe, gp.stats.host_syncs
        ));
        if c.stats.rounds == gp.stats.rounds {
            assert!(
                diff <= 1e-4,
                "{form:?}: same rounds, samples differ by {diff}"
            );
        } else {
            report(format!(
                "NOTE: {form:?}: rounds differ by {} (threshold rounding)",
                c.stats.rounds.abs_diff(gp.stats.rounds)
            ));
            assert!(c.stats.rounds.abs_diff(gp.stats.rounds) <= 2);
            assert!(diff <= 1e-2, "{form:?}: {diff}");
        }
        // Checks every sync_interval iterations, more often only near the predicted end.
        assert!(2 * gp.stats.host_syncs <= gp.stats.rounds, "{:?}", gp.stats);
    }
}

/// The final-sample stop (`final_tol`, the default where the window holds every step: drift at
/// τ = 0) in the CUDA advance kernel against the CPU's: DDIM-100 and DDPM-100, the window over all
/// steps and a sliding one, both forms, and the blocks sampler's last block. Same rounds: samples
/// within 1e-4 and the same `final_stopped`; the stop's threshold may fall one iteration apart
/// (float rounding of the last point's change), then within 1e-2.
#[test]
fn the_final_sample_stop_matches_the_cpu() {
    let Some(be) = device("the_final_sample_stop_matches_the_cpu") else {
        return;
    };
    let (s, g) = ddpm_grid(100);
    let model = GmmModel::new(mixture_64d(), s);
    let stop = Some(picardiff::defaults::FINAL_TOL);
    let with_stop = |window, form| SamplerKind::picard(window, 0.0, form).with_final_tol(stop);
    let blocks = SamplerKind::Blocks {
        block_len: 250.0,
        iters: 25,
        tol: 0.0,
        form: PicardForm::Drift,
        corrector: None,
        anderson: None,
        final_tol: stop,
    };
    for rule in ["ddim", "ddpm"] {
        let kinds = [
            with_stop(100, PicardForm::Drift),
            with_stop(100, PicardForm::Scan),
            with_stop(30, PicardForm::Drift),
            blocks.clone(),
        ];
        for kind in kinds {
            let (c, gp) = both(&be, &model, &g, rule, &kind, &inputs(16));
            let what = format!("{rule} {kind:?}");
            let diff = max_rel_diff(&c.samples, &gp.samples);
            report(format!(
                "{what}: rounds cpu {} gpu {}, stopped cpu {} gpu {}, change cpu {:?} gpu {:?}, max rel diff {diff:e}",
                c.stats.rounds, gp.stats.rounds, c.stats.final_stopped, gp.stats.final_stopped,
                c.stats.final_change, gp.stats.final_change
            ));
            assert!(gp.stats.final_change.is_some(), "{what}: no final change");
            if c.stats.rounds == gp.stats.rounds {
                assert!(
                    diff <= 1e-4,
                    "{what}: same rounds, samples differ by {diff}"
                );
                assert_eq!(c.stats.final_stopped, gp.stats.final_stopped, "{what}");
            } else {
                assert!(c.stats.rounds.abs_diff(gp.stats.rounds) <= 1, "{what}");
                assert!(diff <= 1e-2, "{what}: {diff}");
            }
        }
    }
}

/// PIADM blocks on the OU process, `paper` grid, exp-sde: K = 2 < block size gives exactly 2
/// iterations per block on both backends.
#[test]
fn blocks_match_the_cpu() {
    let Some(be) = device("blocks_match_the_cpu") else {
        return;
    };
    let s = Schedule::from_name("ou", 1000).unwrap();
    let g = Grid::paper(&s, 0.05, 10.0, 1e-3).unwrap();
    let model = GmmModel::new(mixture_64d(), s);
    let kind = |iters, tol| SamplerKind::Blocks {
        block_len: 1.0,
        iters,
        tol,
        form: PicardForm::Scan,
        corrector: None,
        anderson: None,
        final_tol: None,
    };
    let (c, gp) = both(&be, &model, &g, "exp-sde", &kind(2, 0.0), &inputs(33));
    assert_close(&c, &gp, "blocks K=2");
    assert_eq!(
        (c.stats.rounds, c.stats.nfe),
        (gp.stats.rounds, gp.stats.nfe)
    );
    // K = 24 lets every block converge within τ (at K = 12 the last one ends above it: an error);
    // 16 suffice on the CPU (58 rounds).
    let (c, gp) = both(&be, &model, &g, "exp-sde", &kind(24, 0.1), &inputs(5));
    let diff = max_rel_diff(&c.samples, &gp.samples);
    report(format!(
        "blocks K=24 tau 0.1: rounds cpu {} gpu {}, max rel diff {diff:e}",
        c.stats.rounds, gp.stats.rounds
    ));
    if c.stats.rounds == gp.stats.rounds {
        assert!(diff <= 1e-4);
    }
}

/// PIADM blocks with the Langevin corrector (kernels/langevin.cu) on the OU process, paper grid,
/// exp-ode, K = 2 per block and M = 8 corrector steps with 8 Picard iterations: the same rounds
/// as the CPU and samples within 1e-4 (the mixture's GEMMs round differently; the corrector sweep
/// itself is the CPU's bit for bit, checked by tools/cuda-emu).
#[test]
fn blocks_with_the_corrector_match_the_cpu() {
    let Some(be) = device("blocks_with_the_corrector_match_the_cpu") else {
        return;
    };
    let s = Schedule::from_name("ou", 1000).unwrap();
    let g = Grid::paper(&s, 0.05, 10.0, 1e-3).unwrap();
    let model = GmmModel::new(mixture_64d(), s);
    let kind = SamplerKind::Blocks {
        block_len: 1.0,
        iters: 2,
        tol: 0.0,
        form: PicardForm::Scan,
        corrector: Some(picardiff::sampler::Corrector {
            gamma: 2.0,
            duration: 1.0,
            steps: 8,
            iters: 8,
        }),
        anderson: None,
        final_tol: None,
    };
    let (c, gp) = both(&be, &model, &g, "exp-ode", &kind, &inputs(33));
    assert_close(&c, &gp, "blocks K=2 + corrector");
    assert_eq!(
        (c.stats.rounds, c.stats.nfe),
        (gp.stats.rounds, gp.stats.nfe)
    );
}

#[test]
fn caller_noise_and_initial_state_match_the_cpu() {
    let Some(be) = device("caller_noise_and_initial_state_match_the_cpu") else {
        return;
    };
    let (s, g) = ddpm_grid(50);
    let model = GmmModel::new(mixture_2d(), s);
    let batch = 33;
    let init = rand_vec(batch * 2, 5);
    let noise = rand_vec(50 * batch * 2, 6);
    let inputs = RunInputs {
        batch,
        seed: 0,
        sample0: 0,
        init: Some(&init),
        noise: Some(&noise),
        ..Default::default()
    };
    for kind in [
        SamplerKind::Sequential,
        SamplerKind::picard(50, 0.0, PicardForm::Scan),
    ] {
        let (c, gp) = both(&be, &model, &g, "ddpm", &kind, &inputs);
        assert_close(&c, &gp, &format!("caller noise {}", kind.name()));
    }
}

/// The mixture model with NaN outputs at one model time, on the GPU (poisoned through the trait).
struct Poisoned {
    inner: GmmModel,
    at: f32,
}

impl ScoreModel<CudaBackend> for Poisoned {
    type Workspace = <GmmModel as ScoreModel<CudaBackend>>::Workspace;
    fn dim(&self) -> usize {
        ScoreModel::<CudaBackend>::dim(&self.inner)
    }
    fn output(&self) -> ModelOutput {
        ModelOutput::Epsilon
    }
    fn workspace(&self, b: &CudaBackend, rows: usize) -> Result<Self::Workspace> {
        self.inner.workspace(b, rows)
    }
    fn eval(
        &self,
        b: &CudaBackend,
        ws: &mut Self::Workspace,
        x: &<CudaBackend as Backend>::Buf,
        t: &<CudaBackend as Backend>::Buf,
        row0: usize,
        rows: usize,
        out: &mut <CudaBackend as Backend>::Buf,
    ) -> Result<()> {
        self.inner.eval(b, ws, x, t, row0, rows, out)?;
        let mut times = vec![0f32; rows];
        b.download(t, row0, &mut times)?;
        let d = self.dim();
        for (i, &ti) in times.iter().enumerate() {
            if ti == self.at {
                b.fill(out, (row0 + i) * d, 1, f32::NAN)?;
            }
        }
        Ok(())
    }
}

#[test]
fn a_nan_model_output_stops_every_sampler_naming_the_step() {
    let Some(be) = device("a_nan_model_output_stops_every_sampler_naming_the_step") else {
        return;
    };
    let (s, g) = ddpm_grid(100);
    let model = Poisoned {
        inner: GmmModel::new(mixture_2d(), s),
        at: g.points[37].t as f32,
    };
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let kinds = [
        SamplerKind::Sequential,
        SamplerKind::picard(100, 0.1, PicardForm::Scan),
        SamplerKind::picard(8, 0.1, PicardForm::Drift),
        SamplerKind::Blocks {
            block_len: 200.0,
            iters: 4,
            tol: 0.1,
            form: PicardForm::Scan,
            corrector: None,
            anderson: None,
            final_tol: None,
        },
    ];
    for kind in kinds {
        match run(&be, &model, &g, rule, &kind, &inputs(3)) {
            Err(Error::NonFinite { step, .. }) => assert_eq!(step, 37, "{kind:?}"),
            other => panic!("{kind:?}: expected a non-finite error, got {other:?}"),
        }
    }
}

/// Runs `kind` on `be` with CUDA graphs off, then on; returns (eager, graphs).
fn eager_and_graphs<M: ScoreModel<CudaBackend>>(
    be: &CudaBackend,
    model: &M,
    grid: &Grid,
    rule: &str,
    kind: &SamplerKind,
    inputs: &RunInputs<'_>,
) -> (RunOutput, RunOutput) {
    let rule = StepRule::from_name(rule, None).unwrap();
    be.set_graphs(false);
    let eager = run(be, model, grid, rule, kind, inputs).unwrap();
    be.set_graphs(true);
    let graphs = run(be, model, grid, rule, kind, inputs).unwrap();
    (eager, graphs)
}

/// An iteration recorded into a CUDA graph and replayed computes exactly what the eagerly enqueued
/// iteration computes: same samples bit for bit, same rounds; and the graphs were really used (no
/// refused capture), for a window covering the grid (the model slots shrink towards the end), a
/// wrapping ring (window 64 of 1000) and blocks.
#[test]
fn graph_replay_equals_eager_iteration_bit_for_bit() {
    let Some(be) = device("graph_replay_equals_eager_iteration_bit_for_bit") else {
        return;
    };
    let (s, g) = ddpm_grid(1000);
    let model = GmmModel::new(mixture_64d(), s);
    let kinds = [
        (
            "picard p=1000 scan",
            SamplerKind::picard(1000, 0.1, PicardForm::Scan),
        ),
        (
            "picard p=1000 drift",
            SamplerKind::picard(1000, 0.1, PicardForm::Drift),
        ),
        (
            "picard p=64",
            SamplerKind::picard(64, 0.1, PicardForm::Scan),
        ),
        (
            "blocks",
            // Fixed K (τ = 0): at τ = 0.1 these blocks end above τ, an error.
            SamplerKind::Blocks {
                block_len: 100.0,
                iters: 8,
                tol: 0.0,
                form: PicardForm::Scan,
                corrector: None,
                anderson: None,
                final_tol: None,
            },
        ),
    ];
    for (what, kind) in &kinds {
        let (e, gr) = eager_and_graphs(&be, &model, &g, "ddpm", kind, &inputs(5));
        report(format!(
            "graphs {what}: rounds {} / {}, recorded {}, replayed {}, host syncs {} / {}",
            e.stats.rounds,
            gr.stats.rounds,
            gr.stats.recorded,
            gr.stats.replayed,
            e.stats.host_syncs,
            gr.stats.host_syncs
        ));
        assert_eq!(be.graph_refusal(), None, "{what}: capture refused");
        assert_eq!(e.stats.recorded + e.stats.replayed, 0, "{what}");
        assert!(
            gr.stats.recorded >= 1 && gr.stats.replayed >= 1,
            "{what}: {:?}",
            gr.stats
        );
        assert!(
            gr.stats.recorded + gr.stats.replayed >= gr.stats.rounds,
            "{what}"
        );
        assert_eq!(
            (e.stats.rounds, e.stats.nfe),
            (gr.stats.rounds, gr.stats.nfe),
            "{what}"
        );
        assert_bits_eq(&e.samples, &gr.samples, what);
    }
}

/// Two backends (two streams, two cuBLAS handles) sampling at once from two threads, each
/// recording its own graphs, give exactly what each gives alone.
#[test]
fn two_streams_at_once_equal_alone() {
    let Some(be) = device("two_streams_at_once_equal_alone") else {
        return;
    };
    let (s, g) = ddpm_grid(1000);
    let model = GmmModel::new(mixture_64d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let kinds = [
        SamplerKind::picard(1000, 0.1, PicardForm::Scan),
        SamplerKind::Sequential,
    ];
    let alone: Vec<RunOutput> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| run(&be, &model, &g, rule, k, &inputs(3 + i)).unwrap())
        .collect();
    let together: Vec<RunOutput> = std::thread::scope(|scope| {
        let handles: Vec<_> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (model, g) = (&model, &g);
                scope.spawn(move || {
                    let own = CudaBackend::new(0).unwrap();
                    (0..3)
                        .map(|_| run(&own, model, g, rule, k, &inputs(3 + i)).unwrap())
                        .last()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        report(format!(
            "two streams: {} rounds {} / {}",
            kinds[i].name(),
            a.stats.rounds,
            t.stats.rounds
        ));
        assert_eq!(a.stats.rounds, t.stats.rounds);
        assert_bits_eq(&a.samples, &t.samples, kinds[i].name());
    }
}

#[test]
fn flow_euler_matches_the_cpu() {
    let Some(be) = device("flow_euler_matches_the_cpu") else {
        return;
    };
    // The mixture velocity kernel (PICARDIFF_SCHED_FLOW) through sequential and Picard runs, on
    // diffusers' shifted grid (σ = 1 first: the velocity's a = 0 end) and pi0's uniform grid.
    let s = Schedule::from_name("flow", 1000).unwrap();
    let model = GmmModel::new(mixture_64d(), s.clone());
    for (g, what) in [
        (
            Grid::flow(&s, 50, FlowShift::Static(3.0)).unwrap(),
            "diffusers shift 3",
        ),
        (Grid::flow_uniform(&s, 40).unwrap(), "uniform"),
    ] {
        let n = g.steps();
        for kind in [
            SamplerKind::Sequential,
            SamplerKind::picard(n, 1e-3, PicardForm::Scan),
        ] {
            let (c, gp) = both(&be, &model, &g, "euler", &kind, &inputs(9));
            assert_close(&c, &gp, &format!("flow {what} {kind:?}"));
        }
    }
}

/// The sequential sampler as it ran before its step counter: per step a fill of the model times
/// with the host's t_j, the model, and `Backend::step` with the host's j (eagerly).
fn sequential_by_hand<M: ScoreModel<CudaBackend>>(
    be: &CudaBackend,
    model: &M,
    grid: &Grid,
    rule: &str,
    batch: usize,
    seed: u64,
) -> Vec<f32> {
    use picardiff::backend::{Noise, Shape};
    let rule = StepRule::from_name(rule, None).unwrap();
    let table = StepTable::new(grid, rule, model.output()).unwrap();
    let tables = be.upload_tables(&table).unwrap();
    let shape = Shape {
        batch,
        dim: model.dim(),
    };
    let mut x = be.alloc(shape.slot_len()).unwrap();
    be.normal_fill(&mut x, 0, shape, seed, 0, 0, picardiff::rng::TAG_INIT)
        .unwrap();
    let mut out = be.alloc(shape.slot_len()).unwrap();
    let mut times = be.alloc(batch).unwrap();
    let mut ws = model.workspace(be, batch).unwrap();
    model.prepare_times(be, &mut ws, &table.t).unwrap();
    let noise = Noise::Philox { seed, sample0: 0 };
    for j in 0..table.steps() {
        be.fill(&mut times, 0, batch, table.t[j] as f32).unwrap();
        model
            .eval(be, &mut ws, &x, &times, 0, batch, &mut out)
            .unwrap();
        be.step(&tables, j, shape, &mut x, 0, &out, 0, noise)
            .unwrap();
    }
    let mut v = vec![0f32; shape.slot_len()];
    be.download(&x, 0, &mut v).unwrap();
    v
}

/// The sequential sampler with one CUDA graph replayed for every step (the step read from a device
/// counter) computes exactly what it computes eagerly (graphs off) and what the per-step eager
/// loop of before the counter computed: the same samples bit for bit, for the exact mixture and
/// the example MLP, with one recording and N − 1 replays, and no refused capture.
#[test]
fn sequential_graph_replay_equals_eager_bit_for_bit() {
    let Some(be) = device("sequential_graph_replay_equals_eager_bit_for_bit") else {
        return;
    };
    let (s, g) = ddpm_grid(1000);
    let mixture = GmmModel::new(mixture_64d(), s);
    let mlp =
        MlpModel::from_file(std::path::Path::new("examples/models/mix64d.safetensors")).unwrap();
    let ms = mlp.schedule().unwrap();
    let mg = Grid::discrete(&ms, 100, Spacing::Leading).unwrap();
    let check = |what: &str, e: &RunOutput, gr: &RunOutput, by_hand: &[f32], n: usize| {
        report(format!(
            "sequential graphs {what}: wall ms eager {:.2} graphs {:.2}, recorded {}, replayed {}",
            e.stats.wall_ms, gr.stats.wall_ms, gr.stats.recorded, gr.stats.replayed
        ));
        assert_eq!(be.graph_refusal(), None, "{what}: capture refused");
        assert_eq!(e.stats.recorded + e.stats.replayed, 0, "{what}");
        assert_eq!((gr.stats.recorded, gr.stats.replayed), (1, n - 1), "{what}");
        assert_eq!((gr.stats.rounds, gr.stats.nfe), (n, n), "{what}");
        assert_bits_eq(&e.samples, &gr.samples, &format!("{what}: eager vs graphs"));
        assert_bits_eq(
            by_hand,
            &gr.samples,
            &format!("{what}: per-step loop vs graphs"),
        );
    };
    for (rule, batch) in [("ddpm", 5), ("ddim", 1)] {
        let inp = RunInputs {
            batch,
            seed: 11,
            ..Default::default()
        };
        let what = format!("mixture {rule} batch {batch}");
        let (e, gr) = eager_and_graphs(&be, &mixture, &g, rule, &SamplerKind::Sequential, &inp);
        let by_hand = sequential_by_hand(&be, &mixture, &g, rule, batch, 11);
        check(&what, &e, &gr, &by_hand, 1000);
        let what = format!("mlp mix64d {rule} batch {batch}");
        let (e, gr) = eager_and_graphs(&be, &mlp, &mg, rule, &SamplerKind::Sequential, &inp);
        let by_hand = sequential_by_hand(&be, &mlp, &mg, rule, batch, 11);
        check(&what, &e, &gr, &by_hand, 100);
    }
}

/// DPM-Solver++ (2M, 3M) on the device (kernels/multistep.cu): sequential, Picard at the defaults
/// (full window, drift, τ = 0, final stop), a sliding window at τ = 0 in scan form, window 1 (exactly
/// N rounds) and blocks, all against the CPU within 1e-4; the direction ring carries the earlier
/// points across window starts, so the sliding window must land on the sequential solver too.
#[test]
fn multistep_rules_match_the_cpu() {
    let Some(be) = device("multistep_rules_match_the_cpu") else {
        return;
    };
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let model = GmmModel::new(mixture_64d(), s.clone());
    for (name, steps) in [("dpmpp-2m", 20), ("dpmpp-3m", 20), ("dpmpp-3m", 9)] {
        let g = Grid::discrete(&s, steps, Spacing::DpmLinspace).unwrap();
        let kinds = [
            SamplerKind::Sequential,
            SamplerKind::picard(steps, 0.0, PicardForm::Drift)
                .with_final_tol(Some(picardiff::defaults::FINAL_TOL)),
            SamplerKind::picard(7, 0.0, PicardForm::Scan),
            SamplerKind::picard(1, 0.0, PicardForm::Scan),
            SamplerKind::Blocks {
                block_len: 250.0, // about 5 of the grid's 20 steps (timesteps 1000 / 20 apart)
                iters: 50,
                tol: 0.0,
                form: PicardForm::Drift,
                corrector: None,
                anderson: None,
                final_tol: None,
            },
        ];
        for kind in kinds {
            let (c, gp) = both(&be, &model, &g, name, &kind, &inputs(6));
            assert_close(&c, &gp, &format!("{name}-{steps} {kind:?}"));
            if matches!(&kind, SamplerKind::Picard { window: 1, .. }) {
                assert_eq!(gp.stats.rounds, steps, "{name}: window 1 takes N rounds");
            }
        }
    }
}
