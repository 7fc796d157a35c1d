//! Samplers, generic over [`Backend`]: `sequential` (the reference), `picard` (ParaDiGMS' sliding
//! window) and `blocks` (the seed paper's PIADM). They size a workspace once per run and the
//! iteration loop allocates nothing.

mod corrector;
mod memory;
pub mod progress;

use std::time::Instant;

pub use corrector::Corrector;
use corrector::CorrectorRun;
use memory::{check_memory, check_sizes};

use crate::backend::{Backend, IterationRun, Noise, PicardForm, Shape, WindowPlan};
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::rng;
use crate::schedule::{ClipSample, Grid, StepRule, StepTable};
use crate::Field;

/// Which sampler to run and its knobs.
#[derive(Debug, Clone, PartialEq)]
pub enum SamplerKind {
    /// One model call per step.
    Sequential,
    /// The sliding Picard window.
    Picard {
        /// Window length p (clamped to the steps).
        window: usize,
        /// Tolerance τ (ParaDiGMS: 0.1 stochastic, 1e-3 deterministic).
        tol: f64,
        /// Iteration cap (default: the number of steps, which always suffices).
        max_iters: Option<usize>,
        /// Scan or drift form.
        form: PicardForm,
        /// Anderson acceleration's history m, 2 to 5 (`docs/algorithms.md` §11; None: off).
        anderson: Option<usize>,
    },
    /// The seed paper's blocks of Picard iterations.
    Blocks {
        /// Block length in the schedule's time (timesteps for discrete schedules).
        block_len: f64,
        /// Iterations per block K.
        iters: usize,
        /// Tolerance τ for stopping a block early (0: always K iterations).
        tol: f64,
        /// Scan or drift form.
        form: PicardForm,
        /// PIADM-ODE's Langevin corrector after each block (None: off).
        corrector: Option<Corrector>,
        /// Anderson acceleration's history m, 2 to 5 (`docs/algorithms.md` §11; None: off).
        anderson: Option<usize>,
    },
}

impl SamplerKind {
    /// A short name (`sequential`, `picard`, `blocks`).
    pub fn name(&self) -> &'static str {
        match self {
            SamplerKind::Sequential => "sequential",
            SamplerKind::Picard { .. } => "picard",
            SamplerKind::Blocks { .. } => "blocks",
        }
    }
}

/// Per-run inputs besides the model and grid.
#[derive(Debug, Clone, Default)]
pub struct RunInputs<'a> {
    /// Samples in the batch.
    pub batch: usize,
    /// Philox seed.
    pub seed: u64,
    /// Global index of the first sample (noise of sample b is keyed by `sample0 + b`).
    pub sample0: u32,
    /// Caller-supplied x_T, `[batch][dim]`; default: Philox normals (tag `TAG_INIT`).
    pub init: Option<&'a [f32]>,
    /// Caller-supplied step noise, `[steps][batch][dim]`; default: Philox (tag `TAG_STEP`).
    pub noise: Option<&'a [f32]>,
    /// Per-sample conditioning, `[batch][model.cond_dim()]` (required by a model that takes it).
    pub cond: Option<&'a [f32]>,
    /// Clip the predicted x̂0 at every step as diffusers' schedulers do with `clip_sample`
    /// (`docs/algorithms.md` §7); None: no clipping.
    pub clip: Option<ClipSample>,
}

/// What a run reports.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunStats {
    /// Sequential model calls (Picard iterations; N for the sequential sampler).
    pub rounds: usize,
    /// Model evaluations per sample.
    pub nfe: usize,
    /// Wall-clock time of the run, milliseconds.
    pub wall_ms: f64,
    /// Host reads of the window state (device synchronisations inside the loop).
    pub host_syncs: usize,
    /// Picard iterations recorded into a CUDA graph (one per model-slot shape), or sequential steps
    /// (one per run: the graph reads the step from a device counter); 0 on the CPU.
    pub recorded: usize,
    /// Picard iterations or sequential steps run by replaying a recorded graph.
    pub replayed: usize,
    /// Blocks sampler: the largest residual any block ended with (the root of its worst normalised
    /// squared point error in its last iteration, comparable with τ); 0 for the other samplers.
    /// With τ > 0 it is at most τ (a block ending above τ is [`Error::BlockNotConverged`]); with
    /// τ = 0 (exactly K iterations per block) it says how far from converged the blocks were.
    pub worst_block_residual: f64,
}

/// When the host next reads the window state: after `max` iterations at most, sooner when the
/// window's progress so far says it will reach the end sooner, so that few iterations are enqueued
/// after convergence (each would be a whole wasted iteration on a device).
struct CheckSchedule {
    /// Iteration count at which to check next.
    next: usize,
    /// Iteration count and window start at the last check.
    last: (usize, usize),
}

impl CheckSchedule {
    fn new(first: usize) -> Self {
        CheckSchedule {
            next: first,
            last: (0, 0),
        }
    }

    /// Plans the next check after reading `start` at iteration count `launched`.
    fn update(&mut self, launched: usize, start: usize, steps: usize, max: usize) {
        let (iters, moved) = (
            launched.saturating_sub(self.last.0),
            start.saturating_sub(self.last.1),
        );
        let remaining = steps.saturating_sub(start);
        let wait = if moved == 0 || iters == 0 {
            max
        } else {
            // Iterations to the end at the rate seen since the last check, rounded up.
            (remaining * iters).div_ceil(moved).clamp(1, max)
        };
        self.last = (launched, start);
        self.next = launched + wait;
    }
}

/// Samples and stats of one run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Final samples, `[batch][dim]` row-major.
    pub samples: Vec<f32>,
    /// Counters and timing.
    pub stats: RunStats,
}

/// Block end points for blocks of `block_len` in the grid's time: a block ends at the first point
/// at least `block_len` below its start time (or at the last point).
pub fn block_ends(grid: &Grid, block_len: f64) -> Result<Vec<usize>> {
    if !(block_len > 0.0 && block_len.is_finite()) {
        return Err(Error::config(
            Field::BlockLen,
            format!("must be positive, got {block_len}"),
        ));
    }
    let mut ends = Vec::new();
    let mut start_t = grid.points[0].t;
    for (j, pt) in grid.points.iter().enumerate().skip(1) {
        if j == grid.steps() || pt.t <= start_t - block_len * (1.0 - 1e-9) {
            ends.push(j);
            start_t = pt.t;
        }
    }
    Ok(ends)
}

/// Iterations per block that always suffice for blocks ending at `ends`: the longest block's
/// length (a block of h steps is exact after h Picard iterations, and its error is then 0). The
/// CLI's and the C ABI's default K; a block that converges within τ stops sooner.
pub fn sufficient_block_iters(ends: &[usize]) -> usize {
    let mut prev = 0;
    ends.iter()
        .map(|&e| {
            let len = e.saturating_sub(prev);
            prev = e;
            len
        })
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Runs `kind` on `backend` with `model` over `grid` with `rule`.
pub fn run<B: Backend, M: ScoreModel<B>>(
    backend: &B,
    model: &M,
    grid: &Grid,
    rule: StepRule,
    kind: &SamplerKind,
    inputs: &RunInputs<'_>,
) -> Result<RunOutput> {
    let _exclusive = backend.run_guard();
    let mut table = StepTable::new(grid, rule, model.output())?;
    if let Some(clip) = inputs.clip {
        table = table.with_clip(grid, model.output(), clip)?;
    }
    let shape = Shape {
        batch: inputs.batch,
        dim: model.dim(),
    };
    if shape.batch == 0 {
        return Err(Error::config(Field::Batch, "must be at least 1"));
    }
    let n = table.steps();
    // Sample b's noise is keyed by sample0 + b as a u32: past 2^32 it would wrap and reuse noise.
    if u64::from(inputs.sample0) + shape.batch as u64 > u64::from(u32::MAX) + 1 {
        return Err(Error::config(
            Field::Batch,
            format!(
                "sample0 {} + batch {} exceeds 2^32 samples (the noise counter would wrap)",
                inputs.sample0, shape.batch
            ),
        ));
    }
    check_sizes(shape, n, kind)?;
    match (inputs.cond, model.cond_dim()) {
        (None, 0) => {}
        (None, c) => {
            return Err(Error::config(
                Field::Cond,
                format!("the model needs its conditioning: {c} values per sample"),
            ))
        }
        (Some(_), 0) => {
            return Err(Error::config(
                Field::Cond,
                "this model takes no per-sample conditioning",
            ))
        }
        (Some(cond), c) => {
            let want = shape.batch.checked_mul(c);
            if want != Some(cond.len()) {
                return Err(Error::shape(
                    "cond",
                    format!(
                        "must be [{}, {c}] ({} values), got {}",
                        shape.batch,
                        want.map_or("more than 2^64".into(), |n| n.to_string()),
                        cond.len()
                    ),
                ));
            }
        }
    }
    if let Some(init) = inputs.init {
        if init.len() != shape.slot_len() {
            return Err(Error::shape(
                "init",
                format!(
                    "x_T must be [{}, {}] ({} values), got {}",
                    shape.batch,
                    shape.dim,
                    shape.slot_len(),
                    init.len()
                ),
            ));
        }
    }
    if let Some(z) = inputs.noise {
        if z.len() != n * shape.slot_len() {
            return Err(Error::shape(
                "noise",
                format!(
                    "z must be [{n}, {}, {}] ({} values), got {}",
                    shape.batch,
                    shape.dim,
                    n * shape.slot_len(),
                    z.len()
                ),
            ));
        }
    }
    let plan = match kind {
        SamplerKind::Sequential => None,
        SamplerKind::Picard {
            window,
            tol,
            max_iters,
            form,
            anderson,
        } => Some(
            WindowPlan::sliding(n, *window, *tol, *form, *max_iters)?.with_anderson(*anderson)?,
        ),
        SamplerKind::Blocks {
            block_len,
            iters,
            tol,
            form,
            anderson,
            ..
        } => Some(
            WindowPlan::blocks(n, block_ends(grid, *block_len)?, *iters, *tol, *form)?
                .with_anderson(*anderson)?,
        ),
    };
    if let Some(p) = plan.as_ref().filter(|p| p.anderson.is_some()) {
        if backend.anderson_len(p, shape).is_none() {
            return Err(Error::config(
                Field::Anderson,
                format!(
                    "Anderson acceleration runs on the CPU backend only for now, not on {}",
                    backend.name()
                ),
            ));
        }
    }
    let noisy_rule = table.c.iter().any(|&c| c != 0.0);
    let ring = plan.as_ref().map_or(1, |p| p.ring());
    // A multistep rule's sequential run keeps the directions of the earlier points after the
    // state (`Backend::step`); a window keeps them in its own ring.
    let history = table.multistep.as_ref().map_or(0, |m| m.history);
    let x_slots = if plan.is_some() { ring } else { 1 + history };
    let corrector_rows = match kind {
        SamplerKind::Blocks {
            corrector: Some(c), ..
        } => Some(c.steps.saturating_mul(shape.batch)),
        _ => None,
    };
    let model_bytes = model
        .workspace_bytes(ring.saturating_mul(shape.batch))
        .saturating_add(corrector_rows.map_or(0, |rows| model.workspace_bytes(rows)));
    check_memory(
        backend,
        plan.as_ref(),
        kind,
        shape,
        n,
        inputs,
        noisy_rule,
        history,
        model_bytes,
    )?;
    let tables = backend.upload_tables(&table)?;
    let noise_buf = inputs.noise.map(|z| backend.upload(z)).transpose()?;
    let noise = match &noise_buf {
        Some(b) => Noise::Table(b),
        None => Noise::Philox {
            seed: inputs.seed,
            sample0: inputs.sample0,
        },
    };
    let start = Instant::now();
    let mut x = backend.alloc(x_slots * shape.slot_len())?;
    match inputs.init {
        Some(init) => backend.copy(&backend.upload(init)?, 0, &mut x, 0, shape.slot_len())?,
        None => backend.normal_fill(
            &mut x,
            0,
            shape,
            inputs.seed,
            inputs.sample0,
            0,
            rng::TAG_INIT,
        )?,
    }
    let mut out = backend.alloc(ring * shape.slot_len())?;
    let mut times = backend.alloc(ring * shape.batch)?;
    let mut ws = model.workspace(backend, ring * shape.batch)?;
    if let Some(cond) = inputs.cond {
        model.set_condition(backend, &mut ws, cond, shape.batch)?;
    }
    model.prepare_times(backend, &mut ws, &table.t)?;
    let mut stats = RunStats::default();
    let observer = progress::current();
    let report = |done, rounds| {
        if let Some(o) = &observer {
            let sampler = kind.name();
            o(progress::Progress {
                sampler,
                done,
                total: n,
                rounds,
            });
        }
    };
    let final_slot = match &plan {
        None => {
            // The step index lives in the backend's memory (`seq`), so that on CUDA one recorded
            // step (begin: the model times; the model; the step) is replayed for every step.
            let mut seq = backend.seq_new(&tables)?;
            let recordable = model.recordable();
            for j in 0..n {
                // SAFETY: one counter per run, and this closure is the only body passed for it: it
                // enqueues the same work on the same buffers (x, out, times, ws and the tables, all
                // made before the loop and dropped after `seq`) and keeps no host-side state
                // between calls that a replay would miss (the step index is the device counter).
                let ran = unsafe {
                    backend.sequential_step(&mut seq, recordable, &mut |sq| {
                        backend.seq_begin(&tables, sq, &mut times, shape.batch)?;
                        model.eval(backend, &mut ws, &x, &times, 0, shape.batch, &mut out)?;
                        backend.seq_step(&tables, sq, shape, &mut x, &out, noise)
                    })
                }?;
                match ran {
                    IterationRun::Eager => {}
                    IterationRun::Recorded => stats.recorded += 1,
                    IterationRun::Replayed => stats.replayed += 1,
                }
                report(j + 1, j + 1);
            }
            backend.seq_finish(&tables, &seq)?;
            stats.rounds = n;
            stats.nfe = n;
            0
        }
        Some(plan) => {
            let mut err = backend.alloc(backend.err_len(plan, shape))?;
            let mut window = backend.window_new(plan, &tables, &mut times, shape)?;
            let max_interval = backend.sync_interval().max(1);
            let mut checks = CheckSchedule::new(max_interval.min(plan.max_iters));
            let mut launched = 0usize;
            let mut corrector = match kind {
                SamplerKind::Blocks {
                    corrector: Some(c), ..
                } => Some(CorrectorRun::new(
                    backend,
                    model,
                    *c,
                    shape,
                    grid,
                    inputs.cond,
                )?),
                _ => None,
            };
            let recordable = model.recordable() && corrector.is_none();
            let (mut block, mut extra_rounds, mut extra_nfe) = (0, 0, 0);
            loop {
                let slots = backend.model_slots(&window, plan)?;
                // SAFETY: one window per run, and this closure is the only body passed for it: it
                // enqueues the same work on the same buffers (x, out, times, err, ws and the tables,
                // all made before the loop and dropped after the window) for the same slots, and
                // keeps no host-side state between calls that a replay would miss (the MLP swaps
                // two scratch buffers inside an evaluation, each written before it is read).
                let ran = unsafe {
                    backend.iteration(&mut window, &slots, recordable, &mut |w| {
                        for range in slots.iter().flatten() {
                            model.eval(
                                backend,
                                &mut ws,
                                &x,
                                &times,
                                range.start * shape.batch,
                                range.len * shape.batch,
                                &mut out,
                            )?;
                        }
                        backend
                            .picard_sweep(plan, &tables, w, shape, &mut x, &out, noise, &mut err)?;
                        backend.picard_advance(plan, &tables, w, shape, &mut x, &mut times, &err)
                    })
                }?;
                match ran {
                    IterationRun::Eager => {}
                    IterationRun::Recorded => stats.recorded += 1,
                    IterationRun::Replayed => stats.replayed += 1,
                }
                launched += 1;
                if corrector.is_some() || launched >= checks.next || launched >= plan.max_iters {
                    stats.host_syncs += 1;
                    let st = backend.window_read(&window)?;
                    checks.update(launched, st.start, plan.steps, max_interval);
                    report(st.start, launched);
                    if let Some(c) = corrector.as_mut().filter(|_| st.block > block) {
                        // The block ended at point st.start; correct it and the new block's slots,
                        // which the advance initialised with the uncorrected state.
                        block = st.block;
                        let (r, slot) = (plan.ring(), shape.slot_len());
                        let off = (st.start % r) * slot;
                        let calls = c.apply(
                            backend,
                            model,
                            grid.points[st.start],
                            shape,
                            inputs.seed,
                            inputs.sample0,
                            &mut x,
                            off,
                        )?;
                        extra_rounds += calls;
                        extra_nfe += calls * c.steps();
                        for m in st.start + 1..=st.end {
                            c.write_result(backend, &mut x, (m % r) * slot, shape)?;
                        }
                    }
                    if st.done(plan) {
                        // A block that ended above τ > 0 spoils every later block: refuse the
                        // result. (Checked at the end, where every backend has seen every block,
                        // so that a non-finite value found later is reported as such.)
                        if let (Some(u), SamplerKind::Blocks { tol, iters, .. }) =
                            (st.unconverged, kind)
                        {
                            if *tol > 0.0 {
                                return Err(Error::BlockNotConverged {
                                    block: u.block,
                                    end: u.end,
                                    residual: (u.err as f64).sqrt(),
                                    tol: *tol,
                                    iters: *iters,
                                });
                            }
                        }
                        stats.rounds = st.iters + extra_rounds;
                        stats.nfe = st.nfe + extra_nfe;
                        stats.worst_block_residual = (st.worst_block_err as f64).sqrt();
                        break;
                    }
                    if launched >= plan.max_iters {
                        return Err(Error::NotConverged {
                            iters: plan.max_iters,
                            step: st.start,
                        });
                    }
                }
            }
            n % plan.ring()
        }
    };
    let mut samples = vec![0f32; shape.slot_len()];
    backend.download(&x, final_slot * shape.slot_len(), &mut samples)?;
    stats.wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if samples.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            op: format!("{} sampler output", kind.name()),
            step: n,
        });
    }
    Ok(RunOutput { samples, stats })
}

#[cfg(test)]
mod tests {
    use super::CheckSchedule;

    /// The next check is at most `max` iterations away and at least one; with steady progress it
    /// lands on the iteration that reaches the end, so no iteration is enqueued after convergence.
    #[test]
    fn checks_land_on_the_predicted_end() {
        let (steps, max) = (1000, 8);
        let mut c = CheckSchedule::new(max);
        assert_eq!(c.next, 8);
        // 27 points per iteration: after 8 iterations the window starts at 216.
        c.update(8, 216, steps, max);
        assert_eq!(c.next, 16, "far from the end: the full interval");
        c.update(32, 864, steps, max);
        // 136 points left at 27 per iteration: 5.04 -> 6 more iterations.
        assert_eq!(c.next, 38);
        c.update(38, 990, steps, max);
        assert_eq!(c.next, 39, "at least one iteration");
        // No progress since the last check: wait the full interval.
        c.update(40, 990, steps, max);
        assert_eq!(c.next, 48);
        // A simulated run at a steady rate checks exactly at the last iteration.
        let mut c = CheckSchedule::new(max);
        let (rate, mut launched, mut start) = (23usize, 0usize, 0usize);
        let mut checks = 0;
        while start < steps {
            launched += 1;
            start = (start + rate).min(steps);
            if launched >= c.next {
                checks += 1;
                c.update(launched, start, steps, max);
            }
            assert!(c.next > launched && c.next <= launched + max);
        }
        assert_eq!(launched, steps.div_ceil(rate));
        assert_eq!(c.last.0, launched, "the last check saw the end");
        assert!(checks <= launched.div_ceil(max) + 1, "{checks} checks");
    }
}
