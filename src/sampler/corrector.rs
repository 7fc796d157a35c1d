//! PIADM-ODE's corrector: underdamped Langevin dynamics at a block's end time, itself solved by
//! Picard iterations (`docs/algorithms.md` §4; Chen et al. 2023). The paper gives no constants, so γ,
//! the duration, the steps and the iterations are knobs.

use crate::backend::{Backend, LangevinSweep, Shape};
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::{Grid, GridPoint};
use crate::Field;

/// Corrector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corrector {
    /// Friction γ > 0.
    pub gamma: f64,
    /// Length of the Langevin run (in Langevin time u).
    pub duration: f64,
    /// Discretisation steps M of the run.
    pub steps: usize,
    /// Picard iterations K over the M steps (K ≥ M is exact).
    pub iters: usize,
}

impl Default for Corrector {
    /// γ = 2 (critical damping for a unit-variance target), duration 1, 16 steps, 16 iterations
    /// (exact): the best of the settings measured in `examples/corrector_study.rs`
    /// (docs/corrector.md); the paper's values are unknown.
    fn default() -> Self {
        Corrector {
            gamma: 2.0,
            duration: 1.0,
            steps: 16,
            iters: 16,
        }
    }
}

/// The most Picard iterations of one corrector run (each is a model call of M rows).
pub(crate) const MAX_ITERS: usize = 1000;

impl Corrector {
    /// Checks the knobs.
    pub fn validate(&self) -> Result<()> {
        if !(self.gamma > 0.0 && self.gamma.is_finite()) {
            return Err(Error::config(
                Field::CorrectorGamma,
                format!("must be positive, got {}", self.gamma),
            ));
        }
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            return Err(Error::config(
                Field::CorrectorTime,
                format!("must be positive, got {}", self.duration),
            ));
        }
        if self.steps == 0 || self.iters == 0 {
            return Err(Error::config(
                Field::CorrectorSteps,
                "corrector steps and iterations must be at least 1",
            ));
        }
        if self.iters > MAX_ITERS {
            return Err(Error::config(
                Field::CorrectorIters,
                format!(
                    "at most {MAX_ITERS} (>= the corrector steps is already exact), got {}",
                    self.iters
                ),
            ));
        }
        Ok(())
    }
}

/// A corrector's buffers, sized once per run.
pub(crate) struct CorrectorRun<B: Backend, W> {
    cfg: Corrector,
    x: B::Buf,
    out: B::Buf,
    times: B::Buf,
    ws: W,
    /// Corrector runs so far (separates their Philox counters).
    pub runs: usize,
}

impl<B: Backend, W> CorrectorRun<B, W> {
    /// Allocates the corrector's ring (M + 1 slots), outputs and times.
    pub fn new<M: ScoreModel<B, Workspace = W>>(
        backend: &B,
        model: &M,
        cfg: Corrector,
        shape: Shape,
        grid: &Grid,
        cond: Option<&[f32]>,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut ws = model.workspace(backend, cfg.steps * shape.batch)?;
        if let Some(cond) = cond {
            model.set_condition(backend, &mut ws, cond, shape.batch)?;
        }
        let times: Vec<f64> = grid
            .points
            .iter()
            .map(|p| p.t)
            .filter(|&t| t >= 0.0)
            .collect();
        model.prepare_times(backend, &mut ws, &times)?;
        Ok(CorrectorRun {
            cfg,
            x: backend.alloc((cfg.steps + 1) * shape.slot_len())?,
            out: backend.alloc(cfg.steps * shape.slot_len())?,
            times: backend.alloc(cfg.steps * shape.batch)?,
            ws,
            runs: 0,
        })
    }

    /// Corrects the state at `point` held at `state[offset..]` in place. Returns the model calls
    /// (rounds) it made; points with σ = 0 (a discrete grid's clean end) are left alone.
    #[allow(clippy::too_many_arguments)]
    pub fn apply<M: ScoreModel<B, Workspace = W>>(
        &mut self,
        backend: &B,
        model: &M,
        point: GridPoint,
        shape: Shape,
        seed: u64,
        sample0: u32,
        state: &mut B::Buf,
        offset: usize,
    ) -> Result<usize> {
        if point.sigma <= 0.0 {
            return Ok(0);
        }
        let (c, m, slot) = (self.cfg, self.cfg.steps, shape.slot_len());
        let h = c.duration / m as f64;
        let decay = (-c.gamma * h).exp();
        let (p, q) = model.output().to_epsilon(point.alpha, point.sigma);
        let params = LangevinSweep {
            steps: m,
            h: h as f32,
            decay: decay as f32,
            force: (-(1.0 - decay) / (c.gamma * point.sigma)) as f32,
            kick: (-(-2.0 * c.gamma * h).exp_m1()).sqrt() as f32,
            p: p as f32,
            q: q as f32,
            seed,
            sample0,
            step0: (self.runs * (m + 1)) as u32,
        };
        self.runs += 1;
        backend.fill(&mut self.times, 0, m * shape.batch, point.t as f32)?;
        for i in 0..=m {
            backend.copy(state, offset, &mut self.x, i * slot, slot)?;
        }
        for _ in 0..c.iters {
            model.eval(
                backend,
                &mut self.ws,
                &self.x,
                &self.times,
                0,
                m * shape.batch,
                &mut self.out,
            )?;
            backend.langevin_sweep(&params, shape, &mut self.x, &self.out)?;
        }
        self.write_result(backend, state, offset, shape)?;
        Ok(c.iters)
    }

    /// Copies the last corrected state into `state[offset..]`.
    pub fn write_result(
        &self,
        backend: &B,
        state: &mut B::Buf,
        offset: usize,
        shape: Shape,
    ) -> Result<()> {
        backend.copy(
            &self.x,
            self.cfg.steps * shape.slot_len(),
            state,
            offset,
            shape.slot_len(),
        )
    }

    /// Corrector steps M (model evaluations per sample per iteration).
    pub fn steps(&self) -> usize {
        self.cfg.steps
    }
}
