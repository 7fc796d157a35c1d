//! The checks of a run's inputs against its shape, before anything is allocated: the batch, the
//! noise counter's range, and the lengths of the conditioning, x_T and the noise table.

use super::RunInputs;
use crate::backend::Shape;
use crate::error::{Error, Result};
use crate::Field;

/// Checks `inputs` for a run of `n` steps of `shape` on a model taking `cond_dim` conditioning
/// values per sample.
pub(super) fn check_inputs(
    shape: Shape,
    n: usize,
    cond_dim: usize,
    inputs: &RunInputs<'_>,
) -> Result<()> {
    if shape.batch == 0 {
        return Err(Error::config(Field::Batch, "must be at least 1"));
    }
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
    check_cond(shape, cond_dim, inputs.cond)?;
    let slot = shape.slot_len();
    if let Some(init) = inputs.init.filter(|init| init.len() != slot) {
        return Err(Error::shape(
            "init",
            format!(
                "x_T must be [{}, {}] ({slot} values), got {}",
                shape.batch,
                shape.dim,
                init.len()
            ),
        ));
    }
    if let Some(z) = inputs.noise.filter(|z| z.len() != n * slot) {
        return Err(Error::shape(
            "noise",
            format!(
                "z must be [{n}, {}, {}] ({} values), got {}",
                shape.batch,
                shape.dim,
                n * slot,
                z.len()
            ),
        ));
    }
    Ok(())
}

/// The conditioning is given exactly when the model takes it, `[batch, cond_dim]`.
fn check_cond(shape: Shape, cond_dim: usize, cond: Option<&[f32]>) -> Result<()> {
    match (cond, cond_dim) {
        (None, 0) => Ok(()),
        (None, c) => Err(Error::config(
            Field::Cond,
            format!("the model needs its conditioning: {c} values per sample"),
        )),
        (Some(_), 0) => Err(Error::config(
            Field::Cond,
            "this model takes no per-sample conditioning",
        )),
        (Some(cond), c) => {
            let want = shape.batch.checked_mul(c);
            if want == Some(cond.len()) {
                return Ok(());
            }
            Err(Error::shape(
                "cond",
                format!(
                    "must be [{}, {c}] ({} values), got {}",
                    shape.batch,
                    want.map_or("more than 2^64".into(), |n| n.to_string()),
                    cond.len()
                ),
            ))
        }
    }
}
