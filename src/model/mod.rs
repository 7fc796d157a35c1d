//! Score models: a batch of states with one time per row in, the model's prediction out.

mod file;
mod gmm;
#[cfg(feature = "cuda")]
mod gmm_cuda;
mod mlp;
mod tensors;
pub mod unet;

pub use file::{load_model, ModelFile};
pub use gmm::{GmmModel, Mixture};
#[cfg(feature = "cuda")]
pub use gmm_cuda::GmmWorkspace;
pub use mlp::{
    Activation, Layer, Linear, MlpConfig, MlpModel, MlpWeights, MlpWorkspace, Norm, WeightDtype,
    MAX_FILE_BYTES, MLP_FORMAT_VERSION, MLP_METADATA_KEY,
};
pub use unet::{DiffusionPolicy, UnetConfig};

use crate::backend::Backend;
use crate::error::Result;
use crate::schedule::ModelOutput;
use crate::Field;

/// Fails with a shape error naming `what` when a buffer of `have` values is shorter than the `need`
/// an evaluation's rows take (for models that hand the rows to a callback: the C ABI's, Python's).
pub fn check_rows(what: &str, have: usize, need: usize) -> Result<()> {
    if have < need {
        return Err(crate::error::Error::shape(
            "callback model",
            format!("{what}: need {need} values, the buffer has {have}"),
        ));
    }
    Ok(())
}

/// A score network on a backend. Rows are states of `dim` elements; row i is evaluated at `times[i]`
/// (model time: a timestep index for discrete schedules, t for continuous ones).
pub trait ScoreModel<B: Backend>: Sync {
    /// Scratch memory, sized once per run by [`ScoreModel::workspace`].
    type Workspace;

    /// Elements per state (D).
    fn dim(&self) -> usize;
    /// What the model predicts (converted to ε̂ by the step tables).
    fn output(&self) -> ModelOutput;
    /// Width of the per-sample conditioning the model takes (0: none).
    fn cond_dim(&self) -> usize {
        0
    }
    /// Sets the per-sample conditioning of this run: `batch` rows of [`ScoreModel::cond_dim`]
    /// values, row b for sample b (evaluation row r belongs to sample `r % batch`). Called once
    /// per run, after [`ScoreModel::workspace`]. The default refuses: the model takes none.
    fn set_condition(
        &self,
        backend: &B,
        ws: &mut Self::Workspace,
        cond: &[f32],
        batch: usize,
    ) -> Result<()> {
        let _ = (backend, ws, cond, batch);
        Err(crate::error::Error::config(
            Field::Cond,
            "this model takes no per-sample conditioning",
        ))
    }
    /// Scratch for evaluating up to `max_rows` rows at once.
    fn workspace(&self, backend: &B, max_rows: usize) -> Result<Self::Workspace>;
    /// Bytes of backend memory that [`ScoreModel::workspace`] allocates for `max_rows` rows
    /// (saturating at `usize::MAX`): the sampler's memory check counts them before anything is
    /// allocated. Implementations size both from one function, as faer's `*_scratch` functions
    /// do. The default, 0, is for models whose memory picardiff cannot know (a callback model).
    fn workspace_bytes(&self, max_rows: usize) -> usize {
        let _ = max_rows;
        0
    }
    /// Called once per run, before any [`ScoreModel::eval`], with every model time the run will use
    /// (the grid's points, the corrector's block ends): a model whose time path does not depend on
    /// the state (a time-embedding MLP) tabulates it here. The default does nothing.
    fn prepare_times(&self, backend: &B, ws: &mut Self::Workspace, times: &[f64]) -> Result<()> {
        let _ = (backend, ws, times);
        Ok(())
    }
    /// True when [`ScoreModel::eval`] only enqueues device work, without synchronising or reading
    /// results on the host, so that a backend may record it once and replay it
    /// ([`Backend::iteration`]). The default, false, is the
    /// safe answer for a model that calls back into the application.
    fn recordable(&self) -> bool {
        false
    }
    /// Evaluates rows `row0 .. row0 + rows` of `x` (row-major, `dim` per row) at `times[row0 ..]`,
    /// writing the same rows of `out`.
    #[allow(clippy::too_many_arguments)]
    fn eval(
        &self,
        backend: &B,
        ws: &mut Self::Workspace,
        x: &B::Buf,
        times: &B::Buf,
        row0: usize,
        rows: usize,
        out: &mut B::Buf,
    ) -> Result<()>;
}
