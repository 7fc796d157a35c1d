//! The MLP safetensors loader: any bytes give a model or an error, never a panic or an allocation
//! sized by an unchecked header; an accepted model evaluates to finite outputs on a finite input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picardiff::model::MlpModel;
use picardiff::prelude::*;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = MlpModel::from_bytes(data) else { return };
    let d = ScoreModel::<CpuBackend>::dim(&model);
    if d == 0 || d > 4096 || model.config().hidden > 4096 {
        return;
    }
    let cpu = CpuBackend;
    let Ok(mut ws) = model.workspace(&cpu, 2) else { return };
    let x = vec![0.1f32; 2 * d];
    let mut out = vec![0f32; 2 * d];
    let _ = model.eval(&cpu, &mut ws, &x, &vec![3.0, 500.0], 0, 2, &mut out);
});
