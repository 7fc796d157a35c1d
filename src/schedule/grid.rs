//! Time grids: the decreasing list of times `t_0 = T > … > t_N` a sampler walks, with α and σ at each.

use super::Schedule;
use crate::error::{Error, Result};
use crate::Field;

/// The largest grid a continuous schedule builds (10^7 steps).
pub const MAX_STEPS: usize = 10_000_000;

/// One point of a grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridPoint {
    /// The time passed to the model (a timestep index for discrete schedules; −1 marks the clean end).
    pub t: f64,
    /// α at this point.
    pub alpha: f64,
    /// σ at this point.
    pub sigma: f64,
}

/// diffusers' spacing of a discrete timestep subset (`DDIMScheduler.set_timesteps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// `arange(0, N) · (N_train // N)`, reversed (diffusers' default).
    Leading,
    /// `round(arange(N_train, 0, −N_train/N)) − 1`.
    Trailing,
    /// `round(linspace(0, N_train − 1, N))`, reversed (`DDIMScheduler`, `DDPMScheduler`).
    Linspace,
    /// `round(linspace(0, N_train − 1, N + 1))`, reversed, without its last value 0: the
    /// `linspace` of diffusers' multistep schedulers (`DPMSolverMultistepScheduler`'s default).
    DpmLinspace,
}

/// The decreasing discrete timesteps of `steps` inference steps out of `n_train`, with diffusers'
/// formulas (steps_offset = 0, numpy's round-half-to-even).
pub fn discrete_timesteps(n_train: usize, steps: usize, spacing: Spacing) -> Result<Vec<usize>> {
    if steps == 0 || steps > n_train {
        return Err(Error::config(
            Field::Steps,
            format!("must be in 1..={n_train} for a discrete schedule, got {steps}"),
        ));
    }
    let ts: Vec<i64> = match spacing {
        Spacing::Leading => {
            let ratio = (n_train / steps) as i64;
            (0..steps as i64).rev().map(|i| i * ratio).collect()
        }
        Spacing::Trailing => {
            let ratio = n_train as f64 / steps as f64;
            (0..steps)
                .map(|i| (n_train as f64 - i as f64 * ratio).round_ties_even() as i64 - 1)
                .collect()
        }
        Spacing::Linspace => {
            let last = (n_train - 1) as f64;
            let div = (steps.max(2) - 1) as f64;
            let mut v: Vec<i64> = (0..steps)
                .map(|i| {
                    if steps == 1 {
                        0
                    } else {
                        (last * i as f64 / div).round_ties_even() as i64
                    }
                })
                .collect();
            v.reverse();
            v
        }
        Spacing::DpmLinspace => {
            // numpy.linspace(0, last, N + 1): i·(last/N), the last value exactly `last`.
            let last = (n_train - 1) as f64;
            let step = last / steps as f64;
            (1..=steps)
                .rev()
                .map(|i| {
                    let v = if i == steps { last } else { i as f64 * step };
                    v.round_ties_even() as i64
                })
                .collect()
        }
    };
    if ts.windows(2).any(|w| w[0] <= w[1]) || ts.iter().any(|&t| t < 0 || t >= n_train as i64) {
        return Err(Error::config(
            Field::Steps,
            format!("{steps} steps with {spacing:?} spacing do not give distinct timesteps"),
        ));
    }
    Ok(ts.into_iter().map(|t| t as usize).collect())
}

/// Which forward process a grid's (α, σ) belong to: the step rules and the error normaliser differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Process {
    /// Variance preserving: α² + σ² = 1 (every schedule but `flow`).
    #[default]
    Vp,
    /// Rectified flow: α = 1 − σ (`docs/algorithms.md` §8).
    Flow,
}

/// The shift of diffusers' `FlowMatchEulerDiscreteScheduler` (`docs/algorithms.md` §8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowShift {
    /// `shift = s`: `σ' = s σ / (1 + (s − 1) σ)` (applied at construction and again in
    /// `set_timesteps`, as diffusers does). s = 1 is no shift.
    Static(f64),
    /// `use_dynamic_shifting = True` with `mu = μ` (exponential time shift): `σ' = e^μ / (e^μ + (1/σ − 1))`,
    /// applied in `set_timesteps` only.
    Dynamic {
        /// diffusers' `mu`.
        mu: f64,
    },
}

/// A decreasing grid of N + 1 points; step j maps point j to point j + 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The points, noise end first.
    pub points: Vec<GridPoint>,
    /// The forward process of the points' (α, σ).
    pub process: Process,
}

impl Grid {
    /// Number of steps N (points − 1).
    pub fn steps(&self) -> usize {
        self.points.len() - 1
    }

    fn from_times(schedule: &Schedule, times: impl IntoIterator<Item = f64>) -> Self {
        let points = times
            .into_iter()
            .map(|t| {
                let (alpha, sigma) = schedule.alpha_sigma(t);
                GridPoint { t, alpha, sigma }
            })
            .collect();
        Grid {
            points,
            process: Process::Vp,
        }
    }

    /// A flow grid from its σ values (model time σ · train_steps, α = 1 − σ).
    fn from_flow_sigmas(schedule: &Schedule, sigmas: &[f64]) -> Result<Self> {
        let Schedule::Flow { train_steps } = schedule else {
            unreachable!("checked by the callers")
        };
        // Finite first, so that `<=` sees no NaN.
        if sigmas.iter().any(|s| !s.is_finite()) || sigmas.windows(2).any(|w| w[0] <= w[1]) {
            return Err(Error::config(
                Field::Steps,
                format!(
                    "{} steps do not give a finite, strictly decreasing flow grid",
                    sigmas.len() - 1
                ),
            ));
        }
        let n = *train_steps as f64;
        Ok(Grid {
            points: sigmas
                .iter()
                .map(|&sigma| GridPoint {
                    t: sigma * n,
                    alpha: 1.0 - sigma,
                    sigma,
                })
                .collect(),
            process: Process::Flow,
        })
    }

    /// diffusers' `FlowMatchEulerDiscreteScheduler(num_train_timesteps = train_steps, shift,
    /// use_dynamic_shifting).set_timesteps(steps, mu)` as diffusers 0.39 computes it
    /// (`docs/algorithms.md` §8): the training σ = i/n (i = n..1, f32) shifted in f32 gives σ_max, σ_min;
    /// `linspace(σ_max·n, σ_min·n, steps)/n` in f64, shifted again, rounded to f32; then σ = 0. Model
    /// times are `σ · n` (diffusers' `timesteps`).
    pub fn flow(schedule: &Schedule, steps: usize, shift: FlowShift) -> Result<Self> {
        let Schedule::Flow { train_steps } = schedule else {
            return Err(Error::config(
                Field::Grid,
                format!(
                    "the flow grids need the flow schedule, not `{}`",
                    schedule.name()
                ),
            ));
        };
        check_flow_steps(steps)?;
        let n = *train_steps;
        let (n32, n64) = (n as f32, n as f64);
        // Training sigmas at construction, in f32 as torch computes them.
        let train = |i: usize| i as f32 / n32;
        let (sigma_max, sigma_min) = match shift {
            FlowShift::Static(s) => {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(Error::config(
                        Field::Shift,
                        format!("must be finite and > 0, got {s}"),
                    ));
                }
                let (s32, sm1) = (s as f32, (s - 1.0) as f32);
                let f = |x: f32| (s32 * x) / (1.0 + sm1 * x);
                (f(train(n)) as f64, f(train(1)) as f64)
            }
            FlowShift::Dynamic { mu } => {
                if !mu.is_finite() {
                    return Err(Error::config(
                        Field::Mu,
                        format!("must be finite, got {mu}"),
                    ));
                }
                (train(n) as f64, train(1) as f64)
            }
        };
        // numpy.linspace: start + i·step, the last value exactly `stop`.
        let (start, stop) = (sigma_max * n64, sigma_min * n64);
        let lin = |i: usize| {
            if steps > 1 && i == steps - 1 {
                stop
            } else if steps > 1 {
                i as f64 * ((stop - start) / (steps - 1) as f64) + start
            } else {
                start
            }
        };
        let mut sigmas: Vec<f64> = (0..steps)
            .map(|i| {
                let x = lin(i) / n64;
                let shifted = match shift {
                    FlowShift::Static(s) => s * x / (1.0 + (s - 1.0) * x),
                    FlowShift::Dynamic { mu } => mu.exp() / (mu.exp() + (1.0 / x - 1.0)),
                };
                shifted as f32 as f64
            })
            .collect();
        sigmas.push(0.0);
        Self::from_flow_sigmas(schedule, &sigmas)
    }

    /// pi0's uniform flow grid: `σ_k = 1 − k/steps`, k = 0..=steps (model time σ · train_steps).
    pub fn flow_uniform(schedule: &Schedule, steps: usize) -> Result<Self> {
        if !schedule.is_flow() {
            return Err(Error::config(
                Field::Grid,
                format!(
                    "the flow grids need the flow schedule, not `{}`",
                    schedule.name()
                ),
            ));
        }
        check_flow_steps(steps)?;
        let sigmas: Vec<f64> = (0..=steps).map(|k| 1.0 - k as f64 / steps as f64).collect();
        Self::from_flow_sigmas(schedule, &sigmas)
    }

    /// A discrete grid: the chosen timesteps, then the clean end (t = −1, α = 1, σ = 0), as diffusers'
    /// schedulers do with `set_alpha_to_one` / `alpha_prod_t_prev = 1`.
    pub fn discrete(schedule: &Schedule, steps: usize, spacing: Spacing) -> Result<Self> {
        let Schedule::Discrete { alphas_cumprod, .. } = schedule else {
            return Err(Error::config(
                Field::Grid,
                format!(
                    "schedule `{}` is continuous: use the uniform or paper grid",
                    schedule.name()
                ),
            ));
        };
        let ts = discrete_timesteps(alphas_cumprod.len(), steps, spacing)?;
        Ok(Self::from_times(
            schedule,
            ts.into_iter().map(|t| t as f64).chain([-1.0]),
        ))
    }

    /// `steps` uniform steps from `horizon` down to `t_end` in continuous time.
    pub fn uniform(schedule: &Schedule, steps: usize, horizon: f64, t_end: f64) -> Result<Self> {
        check_continuous(schedule, horizon, t_end)?;
        if steps == 0 || steps > MAX_STEPS {
            return Err(Error::config(
                Field::Steps,
                format!("must be in 1..={MAX_STEPS}, got {steps}"),
            ));
        }
        let h = (horizon - t_end) / steps as f64;
        Ok(Self::from_times(
            schedule,
            (0..=steps).map(|j| {
                if j == steps {
                    t_end
                } else {
                    horizon - j as f64 * h
                }
            }),
        ))
    }

    /// The seed paper's grid: uniform steps of size κ while t ≥ 1, then geometric steps
    /// `t/(1 + κ)` down to `t_end`, the last step landing exactly on `t_end`.
    pub fn paper(schedule: &Schedule, kappa: f64, horizon: f64, t_end: f64) -> Result<Self> {
        check_continuous(schedule, horizon, t_end)?;
        if !(kappa > 0.0 && kappa.is_finite()) {
            return Err(Error::config(
                Field::Kappa,
                format!("must be positive, got {kappa}"),
            ));
        }
        let eps = 1e-9;
        let mut times = vec![horizon];
        let mut j = 1;
        // Size before building: the uniform part's steps plus the geometric part's.
        let knee = horizon.min(1.0).max(t_end);
        let estimate = (horizon - knee) / kappa + (knee / t_end).ln() / kappa.ln_1p() + 2.0;
        if estimate > MAX_STEPS as f64 {
            return Err(Error::config(
                Field::Kappa,
                format!("the paper grid would have about {estimate:.3e} steps (limit {MAX_STEPS})"),
            ));
        }
        while horizon - j as f64 * kappa >= 1.0 - eps
            && horizon - j as f64 * kappa > t_end * (1.0 + eps)
        {
            times.push(horizon - j as f64 * kappa);
            j += 1;
        }
        let mut t = *times.last().unwrap();
        while t / (1.0 + kappa) > t_end * (1.0 + eps) {
            t /= 1.0 + kappa;
            times.push(t);
        }
        times.push(t_end);
        Ok(Self::from_times(schedule, times))
    }
}

fn check_flow_steps(steps: usize) -> Result<()> {
    if steps == 0 || steps > MAX_STEPS {
        return Err(Error::config(
            Field::Steps,
            format!("must be in 1..={MAX_STEPS}, got {steps}"),
        ));
    }
    Ok(())
}

fn check_continuous(schedule: &Schedule, horizon: f64, t_end: f64) -> Result<()> {
    if schedule.is_flow() {
        return Err(Error::config(
            Field::Grid,
            "schedule `flow` has its own grids: diffusers' (Grid::flow) or uniform (Grid::flow_uniform)",
        ));
    }
    if schedule.is_discrete() {
        return Err(Error::config(
            Field::Grid,
            format!("schedule `{}` is discrete: use --spacing", schedule.name()),
        ));
    }
    if !(t_end > 0.0 && t_end.is_finite()) {
        return Err(Error::config(
            Field::TEnd,
            format!("the early-stopping time must be > 0, got {t_end}"),
        ));
    }
    if !(horizon > t_end && horizon.is_finite()) {
        return Err(Error::config(
            Field::Horizon,
            format!("must be finite and > t_end ({t_end}), got {horizon}"),
        ));
    }
    if matches!(schedule, Schedule::VpLinear { .. }) && horizon > 1.0 {
        return Err(Error::config(
            Field::Horizon,
            format!("vp-linear is defined on [0, 1], got {horizon}"),
        ));
    }
    Ok(())
}
