//! A LeRobot policy checkpoint from arbitrary bytes: `[u32 LE config length][config.json][model.safetensors]`
//! (seeded with a committed fixture) to `DiffusionPolicy::from_parts`, then one U-Net forward of an
//! accepted policy. Invariants: no panic, no abort, no allocation sized by an unchecked header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    if n > rest.len() {
        return;
    }
    let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&rest[..n]) else {
        return;
    };
    let Ok(p) = DiffusionPolicy::from_parts(&cfg, &rest[n..]) else {
        return;
    };
    let c = &p.config;
    // Forwards only of small policies (the fuzzer's time, not a limit of the loader).
    if c.horizon * c.action_dim > 4096 || c.down_dims.iter().any(|&d| d > 256) {
        return;
    }
    let be = CpuBackend;
    let Ok(mut ws) = ScoreModel::<CpuBackend>::workspace(&p, &be, 1) else {
        return;
    };
    let cond = vec![0.25f32; c.global_cond_dim];
    if p.set_condition(&be, &mut ws, &cond, 1).is_err() {
        return;
    }
    let dim = c.horizon * c.action_dim;
    let x = vec![0.5f32; dim];
    let mut out = vec![0f32; dim];
    // Finite but huge weights may overflow f32: an error or any values, never a panic.
    let _ = p.eval(&be, &mut ws, &x, &vec![3.0f32], 0, 1, &mut out);
});
