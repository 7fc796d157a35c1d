//! The C ABI with arbitrary arguments: config strings and numbers, mixture JSON, buffer lengths and
//! NULL pointers. Every call returns a status; nothing panics across the boundary or aborts.
#![no_main]

use std::ffi::CString;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use picardiff::ffi::*;

#[derive(Debug, Arbitrary)]
struct Input {
    json: Vec<u8>,
    schedule: String,
    spacing: String,
    grid: String,
    rule: String,
    sampler: String,
    form: String,
    steps: u16,
    train_steps: u16,
    horizon: f64,
    t_end: f64,
    kappa: f64,
    shift: f64,
    eta: f64,
    window: u16,
    tol: f64,
    max_iters: u16,
    block_len: f64,
    iters: u8,
    anderson: u8,
    batch: u8,
    seed: u64,
    out_len: u16,
    null_out: bool,
    device: u32,
}

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap()
}

fuzz_target!(|inp: Input| unsafe {
    let mut ctx = std::ptr::null_mut();
    if picardiff_context_new(inp.device % 4, 0, &mut ctx) as u32 != 0 {
        return;
    }
    let mut model = std::ptr::null_mut();
    let status = picardiff_model_new_mixture_json(inp.json.as_ptr().cast(), inp.json.len(), &mut model);
    if status as u32 != 0 {
        let json = br#"{"weights":[1,2],"means":[[0,1],[1,0]],"stds":[0.5,0.4]}"#;
        assert_eq!(picardiff_model_new_mixture_json(json.as_ptr().cast(), json.len(), &mut model) as u32, 0);
    }
    let names = [cstr(&inp.schedule), cstr(&inp.spacing), cstr(&inp.grid), cstr(&inp.rule), cstr(&inp.sampler), cstr(&inp.form)];
    let mut cfg = std::mem::zeroed::<picardiff_sampler_config>();
    picardiff_sampler_config_default(&mut cfg);
    cfg.schedule = names[0].as_ptr();
    cfg.spacing = if inp.spacing.is_empty() { std::ptr::null() } else { names[1].as_ptr() };
    cfg.grid = if inp.grid.is_empty() { std::ptr::null() } else { names[2].as_ptr() };
    cfg.rule = names[3].as_ptr();
    cfg.sampler = names[4].as_ptr();
    cfg.picard_form = if inp.form.is_empty() { std::ptr::null() } else { names[5].as_ptr() };
    cfg.steps = inp.steps as usize % 400;
    cfg.train_steps = inp.train_steps as usize % 2000;
    cfg.horizon = inp.horizon;
    cfg.t_end = inp.t_end;
    cfg.kappa = if inp.kappa.abs() < 0.02 { 0.05 } else { inp.kappa };
    cfg.shift = inp.shift;
    cfg.eta = inp.eta;
    cfg.window = inp.window as usize;
    cfg.tol = inp.tol;
    cfg.max_iters = inp.max_iters as usize;
    cfg.block_len = inp.block_len;
    cfg.iters = inp.iters as usize;
    cfg.anderson = u32::from(inp.anderson % 8);
    cfg.batch = inp.batch as usize % 6;
    cfg.seed = inp.seed;
    let mut sampler = std::ptr::null_mut();
    if picardiff_sampler_new(ctx, &cfg, &mut sampler) as u32 == 0 {
        let mut out = vec![0f32; inp.out_len as usize % 64];
        let mut stats = std::mem::zeroed::<picardiff_stats>();
        let ptr = if inp.null_out { std::ptr::null_mut() } else { out.as_mut_ptr() };
        let _ = picardiff_sampler_run(sampler, model, ptr, out.len(), &mut stats);
        picardiff_sampler_free(sampler);
    }
    let mut buf = [0u8; 64];
    let mut written = 0usize;
    let _ = picardiff_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut written);
    picardiff_model_free(model);
    picardiff_context_free(ctx);
});
