//! The sampler part of [`RunSpec::plan`]: sequential, picard, blocks or auto with their defaults, and a
//! warning for each sampler setting the chosen sampler does not use.

use serde_json::{json, Map, Value};

use super::{Named, RunSpec, SamplerName};
use crate::backend::WindowPlan;
use crate::defaults as d;
use crate::error::Result;
use crate::sampler::{block_ends, sufficient_block_iters, Corrector, SamplerKind};
use crate::schedule::{Grid, Schedule, StepRule};

impl RunSpec {
    /// The Langevin corrector of the blocks sampler, if `corrector` is set.
    fn corrector_plan(&self, warn: &mut Vec<(&'static str, String)>) -> Result<Option<Corrector>> {
        let knobs = [
            (self.corrector_gamma.is_some(), "corrector_gamma"),
            (self.corrector_time.is_some(), "corrector_time"),
            (self.corrector_steps.is_some(), "corrector_steps"),
            (self.corrector_iters.is_some(), "corrector_iters"),
        ];
        if !self.corrector {
            Self::unused(&knobs, "applies with corrector only; ignored", warn);
            return Ok(None);
        }
        let c0 = Corrector::default();
        let c = Corrector {
            gamma: self.corrector_gamma.unwrap_or(c0.gamma),
            duration: self.corrector_time.unwrap_or(c0.duration),
            steps: self.corrector_steps.unwrap_or(c0.steps),
            iters: self.corrector_iters.unwrap_or(c0.iters),
        };
        c.validate()?;
        Ok(Some(c))
    }

    /// The sampler with its defaults, validated against the grid; its label and settings.
    pub(super) fn sampler_kind(
        &self,
        schedule: &Schedule,
        grid: &Grid,
        rule: StepRule,
        info: &mut Map<String, Value>,
        warn: &mut Vec<(&'static str, String)>,
    ) -> Result<(SamplerKind, String)> {
        let name = self.sampler.unwrap_or(d::SAMPLER);
        let steps = grid.steps();
        let window = self.window.unwrap_or(d::WINDOW).min(steps);
        let final_stop = matches!(name, SamplerName::Picard | SamplerName::Auto) && window == steps;
        let (tol, form, final_tol) =
            d::stopping(rule, final_stop, self.tol, self.picard_form, self.final_tol);
        let why = format!("does not apply to the {name} sampler; ignored");
        info.insert("sampler".into(), json!(name.name()));
        let picard_only = [
            (self.window.is_some(), "window"),
            (self.max_iters.is_some(), "max_iters"),
        ];
        let anderson = self.anderson;
        if let (Some(t), false) = (final_tol, name == SamplerName::Sequential) {
            crate::backend::FinalStop::check_tol(t)?;
        }
        let blocks_only = [
            (self.block_len.is_some(), "block_len"),
            (self.iters.is_some(), "iters"),
            (self.corrector, "corrector"),
        ];
        Ok(match name {
            SamplerName::Sequential => {
                Self::unused(&picard_only, &why, warn);
                Self::unused(&blocks_only, &why, warn);
                let given = [
                    (self.tol.is_some(), "tol"),
                    (self.picard_form.is_some(), "picard_form"),
                    (self.anderson.is_some(), "anderson"),
                    (self.final_tol.is_some(), "final_tol"),
                ];
                Self::unused(&given, &why, warn);
                info.insert("tol".into(), Value::Null);
                info.insert("window".into(), Value::Null);
                (SamplerKind::Sequential, "sequential".to_string())
            }
            SamplerName::Picard | SamplerName::Auto => {
                Self::unused(&blocks_only, &why, warn);
                WindowPlan::sliding(steps, window, tol, form, self.max_iters)?
                    .with_anderson(anderson)?;
                info.insert("tol".into(), json!(tol));
                info.insert("window".into(), json!(window));
                info.insert("max_iters".into(), json!(self.max_iters.unwrap_or(steps)));
                info.insert("picard_form".into(), json!(form.name()));
                info.insert("anderson".into(), json!(anderson));
                info.insert("final_tol".into(), json!(final_tol));
                let kind = SamplerKind::Picard {
                    window,
                    tol,
                    max_iters: self.max_iters,
                    form,
                    anderson,
                    final_tol,
                };
                (kind, format!("picard ({form}{})", anderson_label(anderson)))
            }
            SamplerName::Blocks => {
                Self::unused(&picard_only, &why, warn);
                let block_len =
                    self.block_len
                        .unwrap_or(if schedule.is_discrete() || schedule.is_flow() {
                            d::BLOCK_LEN_DISCRETE
                        } else {
                            d::BLOCK_LEN_CONTINUOUS
                        });
                let ends = block_ends(grid, block_len)?;
                let iters = self.iters.unwrap_or_else(|| sufficient_block_iters(&ends));
                let blocks = ends.len();
                let plan =
                    WindowPlan::blocks(steps, ends, iters, tol, form)?.with_anderson(anderson)?;
                let corrector = self.corrector_plan(warn)?;
                info.insert("tol".into(), json!(tol));
                info.insert("window".into(), json!(plan.window));
                info.insert("block_len".into(), json!(block_len));
                info.insert("blocks".into(), json!(blocks));
                info.insert("iters".into(), json!(iters));
                info.insert("picard_form".into(), json!(form.name()));
                info.insert("anderson".into(), json!(anderson));
                info.insert("final_tol".into(), json!(final_tol));
                info.insert(
                    "corrector".into(),
                    corrector.map_or(Value::Null, |c| {
                        json!({"gamma": c.gamma, "time": c.duration, "steps": c.steps, "iters": c.iters})
                    }),
                );
                let aa = anderson_label(anderson);
                let label = match corrector {
                    Some(_) => format!("blocks ({form}{aa}) + corrector"),
                    None => format!("blocks ({form}{aa})"),
                };
                let kind = SamplerKind::Blocks {
                    block_len,
                    iters,
                    tol,
                    form,
                    corrector,
                    anderson,
                    final_tol,
                };
                (kind, label)
            }
        })
    }
}

/// The sampler label's note of Anderson acceleration (`, anderson 3`), empty when off.
fn anderson_label(anderson: Option<usize>) -> String {
    anderson.map_or(String::new(), |m| format!(", anderson {m}"))
}
