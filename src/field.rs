//! The settings an [`Error::Config`](crate::Error::Config) can be about, by the library's own
//! names: every field of [`RunSpec`](crate::spec::RunSpec) (snake_case, as in config files, the
//! C ABI's `picardiff_config` and Python's keyword arguments), the run's inputs, and the keys of a
//! model's own scheduler config. Front ends spell them their way from [`Field::name`] (the CLI:
//! `block_len` → `--block-len`) and decide by [`Field::is_spec`] whether one is an option.

use std::fmt;

/// Declares [`Field`] with one variant per run-spec field, in the order of `RunSpec`.
macro_rules! fields {
    ($($(#[doc = $doc:literal])* $var:ident = $name:literal),+ $(,)?) => {
        /// A setting named by an [`Error::Config`](crate::Error::Config).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Field {
            $($(#[doc = $doc])* $var,)+
            /// The per-sample conditioning (`cond`, `[batch, cond_dim]`).
            Cond,
            /// The initial state x_T (`init`).
            Init,
            /// The per-step noise table (`noise`).
            Noise,
            /// What the model predicts (ε, x0, velocity) as the step rule reads it.
            Output,
            /// A config file or text as a whole (a syntax error, an unknown key).
            Config,
            /// A key of the model's own scheduler config (LeRobot's `clip_sample`,
            /// `beta_schedule`, ...), by the key's name in that config.
            ModelConfig(&'static str),
        }

        impl Field {
            /// The run-spec fields, in `RunSpec`'s order.
            pub const SPEC: &'static [Field] = &[$(Field::$var),+];
            /// Their names ([`Field::name`] of each of [`Field::SPEC`]).
            pub const SPEC_NAMES: &'static [&'static str] = &[$($name),+];

            /// The field's name (snake_case; a model-config key as the model's config spells it).
            pub fn name(self) -> &'static str {
                match self {
                    $(Field::$var => $name,)+
                    Field::Cond => "cond",
                    Field::Init => "init",
                    Field::Noise => "noise",
                    Field::Output => "output",
                    Field::Config => "config",
                    Field::ModelConfig(key) => key,
                }
            }
        }
    };
}

fields! {
    /// The noise schedule.
    Schedule = "schedule",
    /// The weight dtype of a device model.
    Dtype = "dtype",
    /// The number of sampling steps.
    Steps = "steps",
    /// The step rule.
    Rule = "rule",
    /// DDIM's η.
    Eta = "eta",
    /// The continuous schedules' horizon T.
    Horizon = "horizon",
    /// The continuous grids' end time δ.
    TEnd = "t_end",
    /// The time grid.
    Grid = "grid",
    /// The paper grid's κ.
    Kappa = "kappa",
    /// The discrete grids' timestep spacing.
    Spacing = "spacing",
    /// A discrete schedule's training steps.
    TrainSteps = "train_steps",
    /// The flow grid's static shift.
    Shift = "shift",
    /// The flow grid's dynamic-shift μ.
    Mu = "mu",
    /// The sampler.
    Sampler = "sampler",
    /// The Picard window.
    Window = "window",
    /// The Picard tolerance τ.
    Tol = "tol",
    /// The Picard iteration cap.
    MaxIters = "max_iters",
    /// The blocks' length.
    BlockLen = "block_len",
    /// Iterations per block.
    Iters = "iters",
    /// The blocks' corrector switch.
    Corrector = "corrector",
    /// The corrector's step size.
    CorrectorGamma = "corrector_gamma",
    /// The corrector's time.
    CorrectorTime = "corrector_time",
    /// The corrector's Langevin steps.
    CorrectorSteps = "corrector_steps",
    /// The corrector's iterations.
    CorrectorIters = "corrector_iters",
    /// The Picard form (scan or drift).
    PicardForm = "picard_form",
    /// Anderson acceleration's history.
    Anderson = "anderson",
    /// The final-sample stop's tolerance.
    FinalTol = "final_tol",
    /// The number of samples.
    Batch = "batch",
    /// The noise seed.
    Seed = "seed",
    /// The first sample's index in the noise stream.
    Sample0 = "sample0",
    /// The device.
    Device = "device",
    /// Model-config overrides (`key=value`).
    Set = "set",
}

impl Field {
    /// True for the fields of [`RunSpec`](crate::spec::RunSpec) (an option of every front end).
    pub fn is_spec(self) -> bool {
        Field::SPEC.contains(&self)
    }

    /// The run-spec field called `name` (snake_case).
    pub fn spec(name: &str) -> Option<Field> {
        Field::SPEC.iter().copied().find(|f| f.name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Field;

    #[test]
    fn names_round_trip_and_are_unique() {
        for (f, name) in Field::SPEC.iter().zip(Field::SPEC_NAMES) {
            assert_eq!(f.name(), *name);
            assert_eq!(Field::spec(name), Some(*f));
            assert!(f.is_spec());
        }
        let mut names = Field::SPEC_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::SPEC.len());
        assert!(!Field::Cond.is_spec());
        assert_eq!(Field::ModelConfig("clip_sample").to_string(), "clip_sample");
    }
}
