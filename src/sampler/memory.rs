//! Refusing a run before anything is allocated: its sizes in checked arithmetic, and every buffer
//! it will allocate (rings, tables, model workspaces) against the backend's free memory.

use super::{RunInputs, SamplerKind};
use crate::backend::{Backend, Shape, WindowPlan};
use crate::error::{DeviceCode, Error, Result};
use crate::Field;

/// Validates once, with checked arithmetic, that every buffer length the run computes fits in
/// memory's address space: `batch × dim` ([`Shape::slot_len`], infallible after this), the ring and
/// a noise table (at most `(steps + 1)` slots) and the corrector's buffer (`steps + 1` slots), each
/// in bytes.
pub(super) fn check_sizes(shape: Shape, steps: usize, kind: &SamplerKind) -> Result<()> {
    let corrector_steps = match kind {
        SamplerKind::Blocks {
            corrector: Some(c), ..
        } => c.steps,
        _ => 0,
    };
    let slots = steps.max(corrector_steps).checked_add(1);
    let fits = shape
        .batch
        .checked_mul(shape.dim)
        .and_then(|slot| slot.checked_mul(slots?))
        .and_then(|n| n.checked_mul(4))
        .is_some_and(|b| b <= isize::MAX as usize);
    if !fits {
        return Err(Error::config(
            Field::Batch,
            format!(
                "batch {} × dim {} × {} points overflows the address space",
                shape.batch,
                shape.dim,
                steps.max(corrector_steps).saturating_add(1)
            ),
        ));
    }
    Ok(())
}

/// Floats per step of a backend's step tables: an upper bound (the CPU keeps 7 per step, CUDA 10).
const TABLE_FLOATS_PER_STEP: u128 = 10;

/// Fails before allocating when the run's buffers (the iterate and output rings, times, errors, a
/// caller noise table or a window's noise ring, a multistep rule's directions, Anderson's histories, the corrector's ring, the step tables, an
/// uploaded x_T and the samples) plus the model's workspaces (`model_bytes`,
/// [`crate::model::ScoreModel::workspace_bytes`]) exceed the backend's free memory; the message gives both.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_memory<B: Backend>(
    backend: &B,
    plan: Option<&WindowPlan>,
    kind: &SamplerKind,
    shape: Shape,
    steps: usize,
    inputs: &RunInputs<'_>,
    noisy_rule: bool,
    history: usize,
    model_bytes: usize,
) -> Result<()> {
    let Some(free) = backend.free_memory() else {
        return Ok(());
    };
    let slot = shape.slot_len() as u128;
    let ring = plan.map_or(1, |p| p.ring()) as u128;
    let mut floats = 2 * ring * slot + ring * shape.batch as u128;
    floats += TABLE_FLOATS_PER_STEP * steps as u128;
    // The samples read back, and a caller x_T uploaded.
    floats += slot * (1 + inputs.init.is_some() as u128);
    let noise_table = inputs.noise.is_some();
    if let Some(p) = plan {
        floats += backend.err_len(p, shape) as u128;
        if noisy_rule {
            floats += backend.noise_ring_len(p, shape) as u128;
        }
        floats += backend.history_ring_len(p, shape, history) as u128;
        floats += backend.anderson_len(p, shape).unwrap_or(0) as u128;
    } else {
        // The sequential run's direction slots after the state.
        floats += history as u128 * slot;
    }
    if noise_table {
        floats += steps as u128 * slot;
    }
    if let SamplerKind::Blocks {
        corrector: Some(c), ..
    } = kind
    {
        floats += (2 * c.steps as u128 + 1) * slot + c.steps as u128 * shape.batch as u128;
    }
    let bytes = floats * 4 + model_bytes as u128;
    if bytes > free as u128 {
        return Err(Error::device_code(
            "allocate sampler workspace",
            format!(
                "the run needs {:.1} MiB but only {:.1} MiB are free on the {} backend (reduce \
                 the window or batch)",
                bytes as f64 / 1048576.0,
                free as f64 / 1048576.0,
                backend.name()
            ),
            DeviceCode::InsufficientMemory,
        ));
    }
    Ok(())
}
