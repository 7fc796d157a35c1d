//! Step rules as affine maps `x_{j+1} = a_j x_j + b_j d̂(x_j, t_j) + c_j z_j`, tabulated once per grid;
//! the direction d̂ is ε̂ for the VP rules and the flow velocity v̂ for `euler`.

use super::multistep::{self, MultistepTable};
use super::{Grid, Process};
use crate::error::{Error, Result};
use crate::Field;

/// A sampler's step rule (`docs/algorithms.md` §2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepRule {
    /// DDIM with stochasticity η: η = 0 is deterministic DDIM, η = 1 is DDPM ancestral sampling.
    Ddim {
        /// η ≥ 0.
        eta: f64,
    },
    /// The seed paper's exponential integrator of the backward SDE, score frozen at t.
    ExpSde,
    /// The exponential integrator of the probability-flow ODE (PIADM-ODE's predictor).
    ExpOde,
    /// The Euler step of a rectified flow, `x_s = x + (σ_s − σ_t)·v̂` (diffusers'
    /// `FlowMatchEulerDiscreteScheduler.step`); flow schedule only.
    Euler,
    /// DPM-Solver++ multistep of order 2 (`dpmpp-2m`) or 3 (`dpmpp-3m`): diffusers'
    /// `DPMSolverMultistepScheduler` with `algorithm_type = "dpmsolver++"`, midpoint solver,
    /// `lower_order_final`, `final_sigmas_type = "zero"` (`docs/algorithms.md` §9). A step uses
    /// the data predictions x̂0 of the current and the `order − 1` previous points; VP only.
    DpmSolverPP {
        /// Solver order, 2 or 3.
        order: usize,
    },
}

impl StepRule {
    /// Parses `ddpm`, `ddim` (η from `eta`, default 0), `exp-sde`, `exp-ode`, `euler`, `dpmpp-2m`,
    /// `dpmpp-3m`.
    pub fn from_name(name: &str, eta: Option<f64>) -> Result<Self> {
        let rule = match name {
            "ddpm" => StepRule::Ddim {
                eta: eta.unwrap_or(1.0),
            },
            "ddim" => StepRule::Ddim {
                eta: eta.unwrap_or(0.0),
            },
            "exp-sde" => StepRule::ExpSde,
            "exp-ode" => StepRule::ExpOde,
            "euler" => StepRule::Euler,
            "dpmpp-2m" => StepRule::DpmSolverPP { order: 2 },
            "dpmpp-3m" => StepRule::DpmSolverPP { order: 3 },
            o => {
                return Err(Error::config(
                    Field::Rule,
                    format!(
                        "unknown rule `{o}` (expected ddpm, ddim, exp-sde, exp-ode, euler, \
                         dpmpp-2m or dpmpp-3m)"
                    ),
                ))
            }
        };
        if let StepRule::Ddim { eta } = rule {
            if !(eta >= 0.0 && eta.is_finite()) {
                return Err(Error::config(
                    Field::Eta,
                    format!("must be finite and >= 0, got {eta}"),
                ));
            }
        }
        Ok(rule)
    }

    /// True when the rule injects noise (c ≠ 0).
    pub fn is_stochastic(&self) -> bool {
        match self {
            StepRule::Ddim { eta } => *eta > 0.0,
            StepRule::ExpSde => true,
            StepRule::ExpOde | StepRule::Euler | StepRule::DpmSolverPP { .. } => false,
        }
    }

    /// The rule's name as [`StepRule::from_name`] parses it (`ddpm` for η = 1, else `ddim`).
    pub fn name(&self) -> &'static str {
        match self {
            StepRule::Ddim { eta } if *eta == 1.0 => "ddpm",
            StepRule::Ddim { .. } => "ddim",
            StepRule::ExpSde => "exp-sde",
            StepRule::ExpOde => "exp-ode",
            StepRule::Euler => "euler",
            StepRule::DpmSolverPP { order: 3 } => "dpmpp-3m",
            StepRule::DpmSolverPP { .. } => "dpmpp-2m",
        }
    }

    /// Earlier points whose model outputs a step uses besides its own: 0 for the one-step rules,
    /// `order − 1` for DPM-Solver++ (`docs/algorithms.md` §9).
    pub fn history(&self) -> usize {
        match self {
            StepRule::DpmSolverPP { order } => order.saturating_sub(1),
            _ => 0,
        }
    }

    /// ParaDiGMS' default tolerance τ for this rule: 0.1 for stochastic rules, 1e-3 for deterministic.
    pub fn default_tolerance(&self) -> f64 {
        if self.is_stochastic() {
            crate::defaults::TOL_STOCHASTIC
        } else {
            crate::defaults::TOL_DETERMINISTIC
        }
    }
}

/// What a model predicts; converted to the rule's direction (ε̂, or v̂ for `euler`) by
/// `p·x + q·out` with per-point (p, q).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelOutput {
    /// ε itself.
    #[default]
    Epsilon,
    /// The score ∇ log q_t: ε̂ = −σ ŝ.
    Score,
    /// The clean sample x̂0: ε̂ = (x − α x̂0)/σ.
    Sample,
    /// v = α ε − σ x0 (VP schedules only): ε̂ = σ x + α v̂.
    V,
    /// The rectified-flow velocity v = ε − x0 (flow schedule only): ε̂ = x + α v̂, x̂0 = x − σ v̂.
    Velocity,
}

impl ModelOutput {
    /// Parses `epsilon`, `score`, `sample` (or `x0`), `v`, `velocity` (flow).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "epsilon" => Ok(ModelOutput::Epsilon),
            "score" => Ok(ModelOutput::Score),
            "sample" | "x0" => Ok(ModelOutput::Sample),
            "v" | "v_prediction" => Ok(ModelOutput::V),
            "velocity" => Ok(ModelOutput::Velocity),
            o => Err(Error::config(
                Field::Output,
                format!(
                    "unknown model output `{o}` (expected epsilon, score, sample, v or velocity)"
                ),
            )),
        }
    }

    /// `(u, v)` with x̂0 = u·x + v·out at a point with (α, σ) (σ = α = 0 never happens inside a grid;
    /// `Velocity` uses the flow identity α + σ = 1).
    pub fn to_sample(&self, alpha: f64, sigma: f64) -> (f64, f64) {
        match self {
            ModelOutput::Epsilon => (1.0 / alpha, -sigma / alpha),
            ModelOutput::Score => (1.0 / alpha, sigma * sigma / alpha),
            ModelOutput::Sample => (0.0, 1.0),
            ModelOutput::V => (alpha, -sigma),
            ModelOutput::Velocity => (1.0, -sigma),
        }
    }

    /// `(p, q)` with ε̂ = p·x + q·out at a point with (α, σ) (`Velocity`: flow, α + σ = 1).
    pub fn to_epsilon(&self, alpha: f64, sigma: f64) -> (f64, f64) {
        match self {
            ModelOutput::Epsilon => (0.0, 1.0),
            ModelOutput::Score => (0.0, -sigma),
            ModelOutput::Sample => (1.0 / sigma, -alpha / sigma),
            ModelOutput::V => (sigma, alpha),
            ModelOutput::Velocity => (1.0, alpha),
        }
    }

    /// `(p, q)` with the flow velocity v̂ = ε̂ − x̂0 = p·x + q·out at a point of a flow grid (α = 1 − σ);
    /// singular where the output does not determine v (α = 0 for `epsilon` and `score`). NaN for
    /// the VP `v`, which has no flow meaning.
    pub fn to_velocity(&self, alpha: f64, sigma: f64) -> (f64, f64) {
        match self {
            ModelOutput::Epsilon => (-1.0 / alpha, 1.0 / alpha),
            ModelOutput::Score => (-1.0 / alpha, -sigma / alpha),
            ModelOutput::Sample => (1.0 / sigma, -1.0 / sigma),
            ModelOutput::Velocity => (0.0, 1.0),
            ModelOutput::V => (f64::NAN, f64::NAN),
        }
    }

    /// The name [`ModelOutput::from_name`] parses.
    pub fn name(&self) -> &'static str {
        match self {
            ModelOutput::Epsilon => "epsilon",
            ModelOutput::Score => "score",
            ModelOutput::Sample => "sample",
            ModelOutput::V => "v",
            ModelOutput::Velocity => "velocity",
        }
    }
}

/// Per-step coefficients of a grid under a rule, in f64; backends convert to f32 once.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTable {
    /// Coefficient of x_j.
    pub a: Vec<f64>,
    /// Coefficient of the direction: ε̂(x_j, t_j), or v̂(x_j, t_j) for `euler`.
    pub b: Vec<f64>,
    /// Coefficient of the noise z_j.
    pub c: Vec<f64>,
    /// The direction (ε̂, or v̂ for `euler`) is p·x + q·out at point j (model-output conversion).
    pub p: Vec<f64>,
    /// See `p`.
    pub q: Vec<f64>,
    /// The model time of point j (j = 0..N−1).
    pub t: Vec<f64>,
    /// The clipped-x̂0 correction of the model output (`docs/algorithms.md` §7), when the run clips.
    pub clip: Option<ClipTable>,
    /// A multistep rule's coefficients of the earlier points' directions (`docs/algorithms.md` §9);
    /// None for the one-step rules.
    pub multistep: Option<MultistepTable>,
    /// The error normaliser `v_j` of point j = 1..=N, stored at index j − 1: the DDPM posterior
    /// variance of the step that consumes point j (the last step's for j = N), floored at the
    /// table's smallest positive value where it is 0 (ParaDiGMS' normaliser, also used for ODE rules;
    /// on a flow grid the posterior of the flow process, `docs/algorithms.md` §8).
    pub var: Vec<f64>,
}

impl StepTable {
    /// Tabulates `rule` over `grid` for a model predicting `output`. The VP rules need a VP grid and
    /// `euler` a flow grid; `velocity` outputs need a flow grid and `v` a VP one.
    pub fn new(grid: &Grid, rule: StepRule, output: ModelOutput) -> Result<Self> {
        let n = grid.steps();
        if n == 0 {
            return Err(Error::config(Field::Steps, "the grid has no steps"));
        }
        let flow = grid.process == Process::Flow;
        match (flow, rule) {
            (true, StepRule::Euler)
            | (false, StepRule::Ddim { .. })
            | (false, StepRule::ExpSde)
            | (false, StepRule::ExpOde)
            | (false, StepRule::DpmSolverPP { .. }) => {}
            (true, r) => {
                return Err(Error::config(
                    Field::Rule,
                    format!(
                        "`{}` assumes a variance-preserving schedule (α² + σ² = 1); the flow \
                         schedule takes the `euler` rule",
                        r.name()
                    ),
                ))
            }
            (false, _) => {
                return Err(Error::config(
                    Field::Rule,
                    "`euler` is the flow-matching rule: it needs the flow schedule",
                ))
            }
        }
        match (flow, output) {
            (true, ModelOutput::V) => {
                return Err(Error::config(
                    Field::Output,
                    "the VP v-prediction (α ε − σ x0) does not apply to the flow schedule; a flow \
                     model predicts `velocity` (ε − x0)",
                ))
            }
            (false, ModelOutput::Velocity) => {
                return Err(Error::config(
                    Field::Output,
                    "a flow `velocity` model needs the flow schedule",
                ))
            }
            _ => {}
        }
        let mut tab = StepTable {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            c: Vec::with_capacity(n),
            p: Vec::with_capacity(n),
            q: Vec::with_capacity(n),
            t: Vec::with_capacity(n),
            clip: None,
            multistep: None,
            var: Vec::with_capacity(n),
        };
        let mut posterior = Vec::with_capacity(n);
        for w in grid.points.windows(2) {
            let (from, to) = (w[0], w[1]);
            if from.sigma <= 0.0 {
                return Err(Error::config(
                    Field::Grid,
                    format!("σ = 0 at t = {} before the last point", from.t),
                ));
            }
            let (st2, ss2) = (from.sigma * from.sigma, to.sigma * to.sigma);
            if flow {
                // Euler in velocity space: a = 1, b = σ_s − σ_t; p, q give v̂ (§8). The normaliser is
                // the posterior variance of q(x_s | x_t, x_0) of the flow process:
                // (σ_s²/σ_t²)(σ_t² − (α_t/α_s)² σ_s²) (the VP formula below is its α² + σ² = 1 case).
                let ratio = from.alpha / to.alpha;
                let post = ((ss2 / st2) * (st2 - ratio * ratio * ss2)).max(0.0);
                let (p, q) = output.to_velocity(from.alpha, from.sigma);
                tab.a.push(1.0);
                tab.b.push(to.sigma - from.sigma);
                tab.c.push(0.0);
                tab.p.push(p);
                tab.q.push(q);
                tab.t.push(from.t);
                posterior.push(post);
                continue;
            }
            let a = to.alpha / from.alpha;
            let post = (ss2 / st2) * (1.0 - (from.alpha * from.alpha) / (to.alpha * to.alpha));
            let post = post.max(0.0);
            posterior.push(post);
            if matches!(rule, StepRule::DpmSolverPP { .. }) {
                continue; // a multistep rule: its a, b, c, p, q, t are filled below
            }
            let (b, c) = match rule {
                StepRule::Ddim { eta } => {
                    let sig = eta * post.sqrt();
                    // σ̃ may not exceed σ_s: the deterministic part's σ_s² − σ̃² would be
                    // negative (η > 1 does that on most grids); a rounding slack for η = 1.
                    if sig * sig > ss2 * (1.0 + 1e-9) {
                        return Err(Error::config(
                            Field::Eta,
                            format!(
                                "{eta} is too large for this grid: at t = {} the step noise σ̃ = \
                                 {sig:.4e} exceeds σ = {:.4e} of the next point (η ≤ 1 always works)",
                                from.t, to.sigma
                            ),
                        ));
                    }
                    ((ss2 - sig * sig).max(0.0).sqrt() - a * from.sigma, sig)
                }
                StepRule::ExpSde => (-2.0 * (a - 1.0) / from.sigma, (a * a - 1.0).max(0.0).sqrt()),
                StepRule::ExpOde => (-(a - 1.0) / from.sigma, 0.0),
                StepRule::Euler => unreachable!("refused on VP grids above"),
                StepRule::DpmSolverPP { .. } => unreachable!("skipped above"),
            };
            let (p, q) = output.to_epsilon(from.alpha, from.sigma);
            tab.a.push(a);
            tab.b.push(b);
            tab.c.push(c);
            tab.p.push(p);
            tab.q.push(q);
            tab.t.push(from.t);
        }
        if let StepRule::DpmSolverPP { order } = rule {
            tab.multistep = Some(multistep::dpm_solver_pp(grid, order, output, &mut tab)?);
        }
        let floor = posterior
            .iter()
            .copied()
            .filter(|&v| v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 1.0 };
        // Point j (1..=N) is consumed by step j; point N by nothing: use step N − 1's variance.
        tab.var = (1..=n)
            .map(|j| posterior[j.min(n - 1)].max(floor))
            .collect();
        if [&tab.a, &tab.b, &tab.c, &tab.p, &tab.q]
            .iter()
            .any(|v| v.iter().any(|x| !x.is_finite()))
        {
            return Err(Error::config(
                Field::Grid,
                "the step table has non-finite coefficients (σ = 0 inside the grid?)",
            ));
        }
        Ok(tab)
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.a.len()
    }

    /// Adds the clipped-x̂0 correction of `clip` for a model predicting `output` over `grid` (the
    /// grid this table was made from): per point j, `x̂0 = u_j·x + v_j·out` and the corrected output
    /// `out' = out + f_j·(clamp(x̂0, −r, r) − x̂0)`, with `f_j` chosen so that the affine step with
    /// `out'` is the scheduler's clipped step (`docs/algorithms.md` §7).
    pub fn with_clip(mut self, grid: &Grid, output: ModelOutput, clip: ClipSample) -> Result<Self> {
        if grid.process == Process::Flow {
            return Err(Error::config(
                Field::ModelConfig("clip_sample"),
                "the clipped-x0 step is defined for the VP schedulers only, not for flow",
            ));
        }
        if let Some(m) = &self.multistep {
            return Err(Error::config(
                Field::ModelConfig("clip_sample"),
                format!(
                    "the clipped-x0 step is not defined for the multistep rule `{}` (diffusers' \
                     DPMSolverMultistepScheduler has no clip_sample)",
                    m.rule
                ),
            ));
        }
        if !(clip.range > 0.0 && clip.range.is_finite()) {
            return Err(Error::config(
                Field::ModelConfig("clip_sample_range"),
                format!("must be finite and > 0, got {}", clip.range),
            ));
        }
        let n = self.steps();
        let mut tab = ClipTable {
            range: clip.range,
            u: Vec::with_capacity(n),
            v: Vec::with_capacity(n),
            f: Vec::with_capacity(n),
        };
        for j in 0..n {
            let (from, to) = (grid.points[j], grid.points[j + 1]);
            let (u, v) = output.to_sample(from.alpha, from.sigma);
            let q = self.q[j];
            let f = match clip.keep {
                ClipKeep::State => -from.alpha / (from.sigma * q),
                ClipKeep::Epsilon => to.alpha / (self.b[j] * q),
            };
            if ![u, v, f].iter().all(|x| x.is_finite()) {
                return Err(Error::config(
                    Field::ModelConfig("clip_sample"),
                    format!(
                        "the clipped-x0 step is undefined at step {j} (t = {})",
                        from.t
                    ),
                ));
            }
            tab.u.push(u);
            tab.v.push(v);
            tab.f.push(f);
        }
        self.clip = Some(tab);
        Ok(self)
    }
}

/// Which quantity a scheduler holds fixed when it clips the predicted clean sample x̂0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipKeep {
    /// diffusers' `DDPMScheduler`: the posterior mean `c0·clip(x̂0) + ct·x` keeps the state x
    /// (equivalently, ε̂ is re-derived from the clipped x̂0).
    State,
    /// diffusers' `DDIMScheduler` (`use_clipped_model_output = False`): `α_s·clip(x̂0) + k·ε̂` keeps
    /// the model's own ε̂.
    Epsilon,
}

/// Clipping of the predicted clean sample at every step (diffusers' `clip_sample`, LeRobot's
/// Diffusion Policy default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSample {
    /// x̂0 is clamped to `[−range, range]` (diffusers' `clip_sample_range`).
    pub range: f64,
    /// What the step keeps fixed (which diffusers scheduler is followed).
    pub keep: ClipKeep,
}

impl ClipSample {
    /// The clipping of diffusers' scheduler for `rule`: `ddim` with η = 1 is DDPM and keeps the
    /// state ([`ClipKeep::State`]); every other rule keeps ε̂ as `DDIMScheduler` does.
    pub fn for_rule(rule: StepRule, range: f64) -> Self {
        let keep = match rule {
            StepRule::Ddim { eta: 1.0 } => ClipKeep::State,
            _ => ClipKeep::Epsilon,
        };
        ClipSample { range, keep }
    }
}

/// Per-point columns of the clipped-x̂0 correction ([`StepTable::with_clip`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTable {
    /// The clamp range r.
    pub range: f64,
    /// `x̂0 = u·x + v·out`.
    pub u: Vec<f64>,
    /// See `u`.
    pub v: Vec<f64>,
    /// `out' = out + f·(clamp(x̂0) − x̂0)`.
    pub f: Vec<f64>,
}
