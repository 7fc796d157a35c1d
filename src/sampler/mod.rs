//! Samplers, generic over [`Backend`]: `sequential` (the reference), `picard` (ParaDiGMS' sliding
//! window) and `blocks` (the seed paper's PIADM). They size a workspace once per run and the
//! iteration loop allocates nothing.

pub mod auto;
mod corrector;
mod inputs;
mod memory;
pub mod progress;
mod window;

use std::time::Instant;

pub use corrector::Corrector;
use inputs::check_inputs;
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
        /// The final-sample stop's tolerance on the last point's RMS change per iteration, in
        /// data units (`docs/algorithms.md` §3; None: off).
        final_tol: Option<f64>,
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
        /// The final-sample stop's tolerance on the last point's RMS change per iteration, in
        /// data units (`docs/algorithms.md` §3; None: off).
        final_tol: Option<f64>,
    },
}

impl SamplerKind {
    /// Picard over a sliding window of `window` points at tolerance `tol` in `form`: no iteration
    /// cap beyond the steps, no Anderson acceleration, no final-sample stop.
    pub fn picard(window: usize, tol: f64, form: PicardForm) -> SamplerKind {
        SamplerKind::Picard {
            window,
            tol,
            max_iters: None,
            form,
            anderson: None,
            final_tol: None,
        }
    }

    /// The same sampler with the final-sample stop `final_tol` (picard and blocks; the sequential
    /// sampler has none and is returned as it is).
    pub fn with_final_tol(mut self, tol: Option<f64>) -> SamplerKind {
        if let SamplerKind::Picard { final_tol, .. } | SamplerKind::Blocks { final_tol, .. } =
            &mut self
        {
            *final_tol = tol;
        }
        self
    }

    /// A short name (`sequential`, `picard`, `blocks`).
    pub fn name(&self) -> &'static str {
        match self {
            SamplerKind::Sequential => "sequential",
            SamplerKind::Picard { .. } => "picard",
            SamplerKind::Blocks { .. } => "blocks",
        }
    }

    /// The final-sample stop's tolerance of a picard or blocks sampler (None: off, sequential).
    pub fn final_tol(&self) -> Option<f64> {
        match self {
            SamplerKind::Sequential => None,
            SamplerKind::Picard { final_tol, .. } | SamplerKind::Blocks { final_tol, .. } => {
                *final_tol
            }
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
    /// With the final-sample stop (`final_tol`): the last point's RMS change per element in the
    /// last iteration that swept it, for the sample that changed most (data units); None without
    /// the stop.
    pub final_change: Option<f64>,
    /// Whether the final-sample stop ended the run before the per-step τ test accepted every
    /// point (false without the stop).
    pub final_stopped: bool,
}

impl RunStats {
    /// The counters as the stats JSON of the CLI and Python name them: `rounds`, `nfe`, `wall_ms`,
    /// `host_syncs`; `final_change` and `final_stopped` with the final-sample stop; and for the
    /// blocks sampler (`kind`) `worst_block_residual`.
    pub fn json(&self, kind: &SamplerKind) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("rounds".into(), self.rounds.into());
        m.insert("nfe".into(), self.nfe.into());
        m.insert("wall_ms".into(), self.wall_ms.into());
        m.insert("host_syncs".into(), self.host_syncs.into());
        if let Some(change) = self.final_change {
            m.insert("final_change".into(), change.into());
            m.insert("final_stopped".into(), self.final_stopped.into());
        }
        if matches!(kind, SamplerKind::Blocks { .. }) {
            m.insert(
                "worst_block_residual".into(),
                self.worst_block_residual.into(),
            );
        }
        m
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
    let n = table.steps();
    check_sizes(shape, n, kind)?;
    check_inputs(shape, n, model.cond_dim(), inputs)?;
    let plan = window_plan(kind, n, grid)?
        .map(|p| p.with_final_stop(kind.final_tol(), table.var[n - 1] as f32))
        .transpose()?;
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
    let layout = Layout::new(&table, plan.as_ref());
    let corrector_rows = match kind {
        SamplerKind::Blocks {
            corrector: Some(c), ..
        } => Some(c.steps.saturating_mul(shape.batch)),
        _ => None,
    };
    let model_bytes = model
        .workspace_bytes(layout.ring.saturating_mul(shape.batch))
        .saturating_add(corrector_rows.map_or(0, |rows| model.workspace_bytes(rows)));
    let noisy_rule = table.c.iter().any(|&c| c != 0.0);
    check_memory(
        backend,
        plan.as_ref(),
        kind,
        shape,
        n,
        inputs,
        noisy_rule,
        layout.history,
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
    let mut bufs = Buffers::new(backend, model, shape, &layout, inputs, &table)?;
    let run = Run {
        backend,
        model,
        tables: &tables,
        shape,
        steps: n,
        noise,
        kind,
        grid,
        inputs,
        observer: progress::current(),
    };
    let mut stats = RunStats::default();
    let final_slot = match &plan {
        None => run.sequential(&mut bufs, &mut stats)?,
        Some(plan) => window::run_window(&run, plan, &mut bufs, &mut stats)?,
    };
    let mut samples = vec![0f32; shape.slot_len()];
    backend.download(&bufs.x, final_slot * shape.slot_len(), &mut samples)?;
    stats.wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if samples.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            op: format!("{} sampler output", kind.name()),
            step: n,
        });
    }
    Ok(RunOutput { samples, stats })
}

/// The window plan of a picard or blocks run over `n` steps of `grid`; None for sequential.
fn window_plan(kind: &SamplerKind, n: usize, grid: &Grid) -> Result<Option<WindowPlan>> {
    Ok(match kind {
        SamplerKind::Sequential => None,
        SamplerKind::Picard {
            window,
            tol,
            max_iters,
            form,
            anderson,
            ..
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
    })
}

/// How many grid points' slots a run keeps.
struct Layout {
    /// Slots of the model outputs and times: the window's ring, 1 for sequential.
    ring: usize,
    /// Earlier points a multistep rule reads (0 for the one-step rules).
    history: usize,
    /// Slots of the iterate: the ring, or for sequential the state and the history after it.
    x_slots: usize,
}

impl Layout {
    fn new(table: &StepTable, plan: Option<&WindowPlan>) -> Self {
        let ring = plan.map_or(1, |p| p.ring());
        // A multistep rule's sequential run keeps the directions of the earlier points after the
        // state (`Backend::step`); a window keeps them in its own ring.
        let history = table.multistep.as_ref().map_or(0, |m| m.history);
        let x_slots = if plan.is_some() { ring } else { 1 + history };
        Layout {
            ring,
            history,
            x_slots,
        }
    }
}

/// The buffers a run's loop works on, all allocated before it.
struct Buffers<B: Backend, M: ScoreModel<B>> {
    /// The iterate's slots (x_T in slot 0).
    x: B::Buf,
    /// The model outputs' slots.
    out: B::Buf,
    /// The model times' slots, one per row.
    times: B::Buf,
    /// The model's workspace (its conditioning and time tables set).
    ws: M::Workspace,
}

impl<B: Backend, M: ScoreModel<B>> Buffers<B, M> {
    fn new(
        backend: &B,
        model: &M,
        shape: Shape,
        layout: &Layout,
        inputs: &RunInputs<'_>,
        table: &StepTable,
    ) -> Result<Self> {
        let slot = shape.slot_len();
        let mut x = backend.alloc(layout.x_slots * slot)?;
        match inputs.init {
            Some(init) => backend.copy(&backend.upload(init)?, 0, &mut x, 0, slot)?,
            None => {
                let (seed, sample0) = (inputs.seed, inputs.sample0);
                backend.normal_fill(&mut x, 0, shape, seed, sample0, 0, rng::TAG_INIT)?
            }
        }
        let out = backend.alloc(layout.ring * slot)?;
        let times = backend.alloc(layout.ring * shape.batch)?;
        let mut ws = model.workspace(backend, layout.ring * shape.batch)?;
        if let Some(cond) = inputs.cond {
            model.set_condition(backend, &mut ws, cond, shape.batch)?;
        }
        model.prepare_times(backend, &mut ws, &table.t)?;
        Ok(Buffers { x, out, times, ws })
    }
}

/// What every part of one run reads: the backend, model, uploaded tables, shape and noise.
struct Run<'a, B: Backend, M: ScoreModel<B>> {
    backend: &'a B,
    model: &'a M,
    tables: &'a B::Tables,
    shape: Shape,
    /// The grid's steps N.
    steps: usize,
    noise: Noise<'a, B>,
    kind: &'a SamplerKind,
    grid: &'a Grid,
    inputs: &'a RunInputs<'a>,
    /// The thread's progress observer, read once per run.
    observer: Option<progress::Observer>,
}

impl<B: Backend, M: ScoreModel<B>> Run<'_, B, M> {
    /// Tells the progress observer (if any) that `done` steps are final after `rounds` rounds.
    fn report(&self, done: usize, rounds: usize) {
        if let Some(o) = &self.observer {
            o(progress::Progress {
                sampler: self.kind.name(),
                done,
                total: self.steps,
                rounds,
            });
        }
    }

    /// The sequential sampler: one model call and one step per grid step; the final samples are
    /// in slot 0.
    fn sequential(&self, bufs: &mut Buffers<B, M>, stats: &mut RunStats) -> Result<usize> {
        let (backend, model, shape, n) = (self.backend, self.model, self.shape, self.steps);
        // The step index lives in the backend's memory (`seq`), so that on CUDA one recorded step
        // (begin: the model times; the model; the step) is replayed for every step.
        let mut seq = backend.seq_new(self.tables)?;
        let recordable = model.recordable();
        let Buffers { x, out, times, ws } = bufs;
        for j in 0..n {
            // SAFETY: one counter per run, and this closure is the only body passed for it: it
            // enqueues the same work on the same buffers (x, out, times, ws and the tables, all
            // made before the loop and dropped after `seq`) and keeps no host-side state between
            // calls that a replay would miss (the step index is the device counter).
            let ran = unsafe {
                backend.sequential_step(&mut seq, recordable, &mut |sq| {
                    backend.seq_begin(self.tables, sq, times, shape.batch)?;
                    model.eval(backend, ws, x, times, 0, shape.batch, out)?;
                    backend.seq_step(self.tables, sq, shape, x, out, self.noise)
                })
            }?;
            match ran {
                IterationRun::Eager => {}
                IterationRun::Recorded => stats.recorded += 1,
                IterationRun::Replayed => stats.replayed += 1,
            }
            self.report(j + 1, j + 1);
        }
        backend.seq_finish(self.tables, &seq)?;
        stats.rounds = n;
        stats.nfe = n;
        Ok(0)
    }
}
