//! [`RunSpec::plan`]: a spec and what the model says about itself → the schedule, grid, rule and
//! sampler of a run, every default applied here and nowhere else, with a warning for each setting
//! given but unused.

use serde_json::{json, Map, Value};

use super::{GridName, Named, RuleName, RunSpec, SamplerName, ScheduleName};
use crate::defaults as d;
use crate::error::{Error, Result};
use crate::model::unet::{DpScheduler, SchedulerType};
use crate::sampler::SamplerKind;
use crate::schedule::{
    ClipSample, FlowShift, Grid, ModelOutput, Schedule, StepRule, StepTable, DEFAULT_TRAIN_STEPS,
};
use crate::Field;

/// The most sampling or training steps a spec may ask for.
pub const MAX_STEPS: usize = 10_000_000;

/// What a model says about the runs it can take part in.
#[derive(Debug, Clone, Copy)]
pub enum ModelRun<'a> {
    /// Any schedule the spec names (the exact mixture: its score is exact under each).
    AnySchedule,
    /// A network trained on one schedule (an MLP, a callback model): the spec may repeat it but
    /// not change it.
    Trained {
        /// The schedule's name.
        schedule: ScheduleName,
        /// Its training steps.
        train_steps: usize,
        /// How messages introduce its schedule ("the model was trained with").
        what: &'static str,
    },
    /// A LeRobot Diffusion Policy: its own scheduler, which `steps`, `train_steps` and `rule`
    /// (ddpm or ddim) override.
    Policy(&'a DpScheduler),
}

/// A validated run: what [`crate::sampler::run`] takes, the spec's effective settings and its
/// warnings.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The noise schedule.
    pub schedule: Schedule,
    /// The time grid.
    pub grid: Grid,
    /// The step rule.
    pub rule: StepRule,
    /// What the model predicts (a policy's `prediction_type`, else the caller's).
    pub output: ModelOutput,
    /// Clipping of x̂0 at every step (a policy's `clip_sample`).
    pub clip: Option<ClipSample>,
    /// The sampler with its settings (for `auto`, the picard candidate).
    pub kind: SamplerKind,
    /// The sampler is `auto`: a front end resolves `kind` to it or to the sequential sampler with
    /// [`crate::device::ModelRef::choose`] before running.
    pub auto: bool,
    /// The sampler's label for tables (`picard (scan)`).
    pub label: String,
    /// Philox seed.
    pub seed: u64,
    /// Global index of the first sample.
    pub sample0: u32,
    /// Each setting of the problem in effect (schedule, grid, rule, model, seed), by field name
    /// (the stats' keys).
    pub settings: Map<String, Value>,
    /// Each setting of the sampler in effect (`sampler`, `tol`, `window`, `picard_form`,
    /// `final_tol`, block settings, ...), by field name (the stats' keys).
    pub sampler_settings: Map<String, Value>,
    /// Settings given but unused: (field, message); a front end shows `{field} {message}` with
    /// the field in its own spelling.
    pub warnings: Vec<(&'static str, String)>,
}

impl Plan {
    /// The warning for caller-supplied step noise when the rule is deterministic.
    pub fn unused_noise_warning(&self) -> Option<(&'static str, String)> {
        (!self.rule.is_stochastic()).then(|| {
            (
                "noise",
                format!(
                    "is unused: the {} rule{} is deterministic",
                    self.rule.name(),
                    match self.rule {
                        StepRule::Ddim { eta } => format!(" with eta {eta}"),
                        _ => String::new(),
                    }
                ),
            )
        })
    }
}

/// Fails with `field: msg`.
fn bad<T>(field: Field, msg: impl Into<String>) -> Result<T> {
    Err(Error::config(field, msg))
}

impl RunSpec {
    /// Checks the numeric settings that are wrong whatever they are used for.
    pub fn check_values(&self) -> Result<()> {
        for (v, f) in [
            (self.steps, Field::Steps),
            (self.window, Field::Window),
            (self.iters, Field::Iters),
            (self.max_iters, Field::MaxIters),
            (self.batch, Field::Batch),
        ] {
            if v == Some(0) {
                return bad(f, "must be at least 1, got 0");
            }
        }
        for (v, f) in [
            (self.steps, Field::Steps),
            (self.train_steps, Field::TrainSteps),
        ] {
            if v.is_some_and(|n| n > MAX_STEPS) {
                return bad(f, format!("at most {MAX_STEPS} are supported"));
            }
        }
        if let Some(t) = self.tol {
            if !(t >= 0.0 && t.is_finite()) {
                return bad(Field::Tol, format!("must be finite and >= 0, got {t}"));
            }
        }
        for (v, f, what) in [
            (self.block_len, Field::BlockLen, ""),
            (self.t_end, Field::TEnd, "the early-stopping time "),
            (self.kappa, Field::Kappa, ""),
        ] {
            if let Some(h) = v {
                if !(h > 0.0 && h.is_finite()) {
                    return bad(f, format!("{what}must be finite and > 0, got {h}"));
                }
            }
        }
        Ok(())
    }

    /// Validates the spec for a model and applies the defaults: `output` is what the model
    /// predicts (a policy's own replaces it).
    pub fn plan(&self, model: ModelRun<'_>, output: ModelOutput) -> Result<Plan> {
        self.check_values()?;
        let mut warnings = Vec::new();
        let mut settings = Map::new();
        let (schedule, grid, rule, output, clip) = match model {
            ModelRun::Policy(s) => self.policy_problem(s, &mut settings, &mut warnings)?,
            _ => {
                let (schedule, grid, rule) = self.problem(model, &mut settings, &mut warnings)?;
                (schedule, grid, rule, output, None)
            }
        };
        // Rejects grids on which the rule's table is not finite, before anything runs.
        StepTable::new(&grid, rule, output)?;
        let mut sampler_settings = Map::new();
        let (kind, label) =
            self.sampler_kind(&schedule, &grid, rule, &mut sampler_settings, &mut warnings)?;
        let seed = self.seed.unwrap_or(d::SEED);
        settings.insert("seed".into(), json!(seed));
        Ok(Plan {
            schedule,
            grid,
            rule,
            output,
            clip,
            kind,
            auto: self.sampler.unwrap_or(d::SAMPLER) == SamplerName::Auto,
            label,
            seed,
            sample0: self.sample0.unwrap_or(0),
            settings,
            sampler_settings,
            warnings,
        })
    }

    /// The schedule a mixture, MLP or callback model runs under, and its training steps.
    fn schedule_for(&self, model: ModelRun<'_>) -> Result<(ScheduleName, usize)> {
        match model {
            ModelRun::Trained {
                schedule,
                train_steps,
                what,
            } => {
                if let Some(g) = self.schedule.filter(|g| *g != schedule) {
                    return bad(Field::Schedule, format!("{what} `{schedule}`, not `{g}`"));
                }
                if let Some(n) = self.train_steps.filter(|n| *n != train_steps) {
                    return bad(
                        Field::TrainSteps,
                        format!(
                            "{what} {train_steps} training steps (its time input \
                             is a timestep of that schedule), not {n}"
                        ),
                    );
                }
                Ok((schedule, train_steps))
            }
            _ => {
                let s = self.schedule.ok_or_else(|| {
                    Error::config(
                        Field::Schedule,
                        "required with a mixture model (an MLP file names its own)",
                    )
                })?;
                Ok((s, self.train_steps.unwrap_or(DEFAULT_TRAIN_STEPS)))
            }
        }
    }

    /// Warns about each given setting of `given` that does not apply.
    pub(super) fn unused(
        given: &[(bool, &'static str)],
        why: &str,
        warnings: &mut Vec<(&'static str, String)>,
    ) {
        for (g, f) in given {
            if *g {
                warnings.push((f, why.to_string()));
            }
        }
    }

    /// Schedule, grid and rule of a mixture, MLP or callback model.
    fn problem(
        &self,
        model: ModelRun<'_>,
        info: &mut Map<String, Value>,
        warn: &mut Vec<(&'static str, String)>,
    ) -> Result<(Schedule, Grid, StepRule)> {
        let (name, train_steps) = self.schedule_for(model)?;
        let rule_name = self.rule.ok_or_else(|| {
            Error::config(
                Field::Rule,
                format!(
                    "required ({}) except for a policy directory",
                    RuleName::choices()
                ),
            )
        })?;
        let schedule = Schedule::from_name(name.name(), train_steps)?;
        let rule = StepRule::from_name(rule_name.name(), self.eta)?;
        if self.eta.is_some() && !matches!(rule_name, RuleName::Ddpm | RuleName::Ddim) {
            warn.push((
                "eta",
                format!("applies to the ddpm and ddim rules only; ignored for {rule_name}"),
            ));
        }
        if matches!(model, ModelRun::AnySchedule) && self.dtype.is_some() {
            warn.push((
                "dtype",
                "applies to MLP models only; ignored for a mixture".into(),
            ));
        }
        info.insert("schedule".into(), json!(schedule.name()));
        info.insert("rule".into(), json!(rule_name.name()));
        if let StepRule::Ddim { eta } = rule {
            info.insert("eta".into(), json!(eta));
        }
        let grid = if name == ScheduleName::Flow {
            self.flow_grid(&schedule, train_steps, info, warn)?
        } else if name.is_discrete() {
            let why = format!("does not apply to the discrete schedule {name}; ignored");
            let given = [
                (self.shift.is_some(), "shift"),
                (self.mu.is_some(), "mu"),
                (self.horizon.is_some(), "horizon"),
                (self.t_end.is_some(), "t_end"),
                (self.grid.is_some(), "grid"),
                (self.kappa.is_some(), "kappa"),
            ];
            Self::unused(&given, &why, warn);
            let spacing = self.spacing.unwrap_or(d::SPACING);
            let steps = self.steps.ok_or_else(|| {
                Error::config(
                    Field::Steps,
                    format!("required for the discrete schedule {name}"),
                )
            })?;
            info.insert("spacing".into(), json!(spacing.to_string()));
            info.insert("train_steps".into(), json!(train_steps));
            Grid::discrete(&schedule, steps, spacing)?
        } else {
            self.continuous_grid(&schedule, name, info, warn)?
        };
        Ok((schedule, grid, rule))
    }

    /// The flow schedule's grid: diffusers' (shift or μ) or pi0's uniform one.
    fn flow_grid(
        &self,
        schedule: &Schedule,
        train_steps: usize,
        info: &mut Map<String, Value>,
        warn: &mut Vec<(&'static str, String)>,
    ) -> Result<Grid> {
        let given = [
            (self.horizon.is_some(), "horizon"),
            (self.t_end.is_some(), "t_end"),
            (self.kappa.is_some(), "kappa"),
            (self.spacing.is_some(), "spacing"),
        ];
        Self::unused(&given, "does not apply to the flow schedule; ignored", warn);
        let steps = self
            .steps
            .ok_or_else(|| Error::config(Field::Steps, "required for the flow schedule"))?;
        let grid = self.grid.unwrap_or(GridName::Diffusers);
        info.insert("grid".into(), json!(grid.name()));
        info.insert("train_steps".into(), json!(train_steps));
        match grid {
            GridName::Diffusers => {
                let shift = match (self.shift, self.mu) {
                    (Some(_), Some(_)) => {
                        return bad(
                            Field::Mu,
                            "excludes shift (mu is diffusers' dynamic shifting)",
                        )
                    }
                    (_, Some(mu)) => {
                        info.insert("mu".into(), json!(mu));
                        FlowShift::Dynamic { mu }
                    }
                    (s, None) => {
                        let s = s.unwrap_or(d::SHIFT);
                        info.insert("shift".into(), json!(s));
                        FlowShift::Static(s)
                    }
                };
                Grid::flow(schedule, steps, shift)
            }
            GridName::Uniform => {
                let given = [(self.shift.is_some(), "shift"), (self.mu.is_some(), "mu")];
                Self::unused(
                    &given,
                    "applies to the diffusers flow grid only; ignored",
                    warn,
                );
                Grid::flow_uniform(schedule, steps)
            }
            GridName::Paper => bad(
                Field::Grid,
                "unknown grid `paper` for the flow schedule (expected diffusers or uniform)",
            ),
        }
    }

    /// The grid of a continuous schedule (ou, vp-linear): uniform or the paper's.
    fn continuous_grid(
        &self,
        schedule: &Schedule,
        name: ScheduleName,
        info: &mut Map<String, Value>,
        warn: &mut Vec<(&'static str, String)>,
    ) -> Result<Grid> {
        let why = format!("does not apply to the continuous schedule {name}; ignored");
        let given = [
            (self.shift.is_some(), "shift"),
            (self.mu.is_some(), "mu"),
            (self.spacing.is_some(), "spacing"),
            (self.train_steps.is_some(), "train_steps"),
        ];
        Self::unused(&given, &why, warn);
        let horizon = self.horizon.unwrap_or_else(|| d::horizon(schedule));
        let t_end = self.t_end.unwrap_or(d::T_END);
        let grid = self.grid.unwrap_or(GridName::Uniform);
        info.insert("horizon".into(), json!(horizon));
        info.insert("t_end".into(), json!(t_end));
        info.insert("grid".into(), json!(grid.name()));
        match grid {
            GridName::Uniform => {
                if self.kappa.is_some() {
                    warn.push(("kappa", "applies to the paper grid only; ignored".into()));
                }
                let steps = self.steps.ok_or_else(|| {
                    Error::config(
                        Field::Steps,
                        "required with the uniform grid (or use the paper grid)",
                    )
                })?;
                Grid::uniform(schedule, steps, horizon, t_end)
            }
            GridName::Paper => {
                if self.steps.is_some() {
                    warn.push((
                        "steps",
                        "is ignored with the paper grid (its step count follows from kappa)".into(),
                    ));
                }
                let kappa = self.kappa.unwrap_or(d::KAPPA);
                info.insert("kappa".into(), json!(kappa));
                Grid::paper(schedule, kappa, horizon, t_end)
            }
            GridName::Diffusers => bad(
                Field::Grid,
                "unknown grid `diffusers` for a continuous schedule (expected uniform or paper)",
            ),
        }
    }

    /// A Diffusion Policy's scheduler with this spec's `steps`, `train_steps` and `rule` applied.
    pub fn policy_scheduler(&self, own: &DpScheduler) -> Result<DpScheduler> {
        let mut s = own.clone();
        const MAX_WIDTH: usize = 1 << 16;
        if let Some(n) = self.steps {
            if n > MAX_WIDTH {
                return bad(
                    Field::Steps,
                    format!("num_inference_steps {n} is not in 1..={MAX_WIDTH}"),
                );
            }
            s.inference_steps = Some(n);
        }
        if let Some(n) = self.train_steps {
            if !(2..=MAX_WIDTH).contains(&n) {
                return bad(
                    Field::TrainSteps,
                    format!("num_train_timesteps {n} is not in 2..={MAX_WIDTH}"),
                );
            }
            s.train_steps = n;
        }
        match self.rule {
            None => {}
            Some(RuleName::Ddpm) => s.kind = SchedulerType::Ddpm,
            Some(RuleName::Ddim) => s.kind = SchedulerType::Ddim,
            Some(o) => {
                return bad(
                    Field::Rule,
                    format!(
                        "a Diffusion Policy samples with its scheduler, ddpm or ddim, not `{o}`"
                    ),
                )
            }
        }
        if s.steps() > s.train_steps {
            return bad(
                Field::Steps,
                format!(
                    "num_inference_steps {} exceeds num_train_timesteps {}",
                    s.steps(),
                    s.train_steps
                ),
            );
        }
        Ok(s)
    }

    /// Schedule, grid, rule, output and clip of a Diffusion Policy.
    #[allow(clippy::type_complexity)]
    fn policy_problem(
        &self,
        own: &DpScheduler,
        info: &mut Map<String, Value>,
        warn: &mut Vec<(&'static str, String)>,
    ) -> Result<(Schedule, Grid, StepRule, ModelOutput, Option<ClipSample>)> {
        if self.schedule.is_some() {
            return bad(
                Field::Schedule,
                "a Diffusion Policy names its own schedule (change it with set beta_schedule=...)",
            );
        }
        let given = [
            (self.dtype.is_some(), "dtype"),
            (self.horizon.is_some(), "horizon"),
            (self.t_end.is_some(), "t_end"),
            (self.grid.is_some(), "grid"),
            (self.kappa.is_some(), "kappa"),
            (self.shift.is_some(), "shift"),
            (self.mu.is_some(), "mu"),
        ];
        Self::unused(
            &given,
            "does not apply to a Diffusion Policy; ignored",
            warn,
        );
        let sched = self.policy_scheduler(own)?;
        let schedule = sched.schedule()?;
        let spacing = self.spacing.unwrap_or(d::SPACING);
        let grid = Grid::discrete(&schedule, sched.steps(), spacing)?;
        let rule = match self.rule {
            Some(r) => StepRule::from_name(r.name(), self.eta)?,
            None => {
                if self.eta.is_some() {
                    warn.push((
                        "eta",
                        "applies with the ddpm or ddim rule for a Diffusion Policy; ignored".into(),
                    ));
                }
                sched.rule()
            }
        };
        let clip = sched.clip.map(|r| ClipSample::for_rule(rule, r));
        info.insert("model_kind".into(), json!("lerobot_diffusion"));
        info.insert("scheduler".into(), json!(format!("{:?}", sched.kind)));
        info.insert("schedule".into(), json!(schedule.name()));
        info.insert("beta_schedule".into(), json!(sched.beta_schedule));
        info.insert("train_steps".into(), json!(sched.train_steps));
        info.insert("spacing".into(), json!(spacing.to_string()));
        info.insert("clip_sample".into(), json!(sched.clip));
        info.insert(
            "prediction_type".into(),
            json!(format!("{:?}", sched.prediction)),
        );
        if let StepRule::Ddim { eta } = rule {
            info.insert("eta".into(), json!(eta));
        }
        Ok((schedule, grid, rule, sched.prediction, clip))
    }
}
