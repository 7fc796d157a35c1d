//! The command line itself: an argv built from the real subcommands and options, their value names,
//! numbers, fixture files and raw (even non-UTF-8) strings, parsed by clap (`Cli::try_parse_from`,
//! with clap's debug assertions on the argument definitions) and, for `sample` and `compare`,
//! validated by the CLI's own layer (`commands::setup`: model file, grid, rule, sampler, noise files,
//! output directories, device), which is everything those commands do before a sampler runs.
//!
//! Invariants: no panic, no abort, no unbounded allocation; every CLI error is one line; a validated
//! problem is consistent (batch ≥ 1, input arrays of the shapes it announces, a window within the
//! steps); a validated run that is small enough is run, and returns finite samples of the right shape
//! or an error.
//!
//! Nothing is written: `--out`/`--stats` are only checked (their directories), `bench` and `demo`
//! are only parsed. Model and noise paths are fixtures (created once in a temp dir) or a missing
//! file. Grids are capped (`--steps`, `--train-steps`, the paper grid's κ and horizon) so that one
//! input stays cheap; larger ones are only parsed.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/cli/mod.rs"]
mod cli;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use clap::Parser;
use libfuzzer_sys::fuzz_target;
use npyz::WriterBuilder;
use picardiff::prelude::*;

use cli::{Cli, CliError, Command, RunArgs};

const COMMANDS: &[&str] = &["sample", "compare", "demo", "bench", "info", "help"];

const FLAGS: &[&str] = &[
    "--model",
    "--schedule",
    "--dtype",
    "--steps",
    "--rule",
    "--eta",
    "--horizon",
    "--t-end",
    "--grid",
    "--kappa",
    "--spacing",
    "--train-steps",
    "--shift",
    "--mu",
    "--sampler",
    "--window",
    "--tol",
    "--max-iters",
    "--block-len",
    "--iters",
    "--anderson",
    "--corrector",
    "--corrector-gamma",
    "--corrector-time",
    "--corrector-steps",
    "--corrector-iters",
    "--picard-form",
    "--batch",
    "--seed",
    "--device",
    "--init",
    "--noise",
    "--out",
    "--stats",
    "--mixture",
    "--dims",
    "--mlp",
    "--batches",
    "--forms",
    "--graphs",
    "--repeat",
    "--json",
    "--markdown",
    "--help",
    "-h",
    "--version",
    "-V",
    "--",
    "-",
];

const NAMES: &[&str] = &[
    "ddpm-linear",
    "scaled-linear",
    "cosine",
    "ou",
    "vp-linear",
    "ddpm",
    "ddim",
    "exp-sde",
    "exp-ode",
    "sequential",
    "picard",
    "blocks",
    "scan",
    "drift",
    "uniform",
    "paper",
    "leading",
    "trailing",
    "linspace",
    "cpu",
    "cuda",
    "auto",
    "f32",
    "bf16",
    "f16",
    "64d",
    "2d",
    "on",
    "off",
    "both",
    "scan,drift",
    "1,16",
    "",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "-0",
    "0x10",
    "flow",
    "euler",
    "diffusers",
];

/// The temp dir of the fixtures.
fn fixture_dir() -> PathBuf {
    std::env::temp_dir().join(format!("picardiff-fuzz-cli-{}", std::process::id()))
}

/// A file that does not exist.
fn missing() -> PathBuf {
    fixture_dir().join("missing.json")
}

/// Fixture files: paths by index (some created at start-up, some hostile).
fn fixtures() -> &'static Vec<PathBuf> {
    static FIXTURES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = fixture_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let npy = |name: &str, shape: &[u64], data: &[f32]| {
            let mut buf = vec![];
            let mut w = npyz::WriteOptions::<f32>::new()
                .default_dtype()
                .shape(shape)
                .writer(&mut buf)
                .begin_nd()
                .unwrap();
            w.extend(data.iter().copied()).unwrap();
            w.finish().unwrap();
            let p = dir.join(name);
            std::fs::write(&p, buf).unwrap();
            p
        };
        let vals = |n: usize| {
            (0..n)
                .map(|i| (i % 7) as f32 / 3.0 - 1.0)
                .collect::<Vec<_>>()
        };
        let mut f64_npy = vec![];
        {
            let mut w = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&[1, 2])
                .writer(&mut f64_npy)
                .begin_nd()
                .unwrap();
            w.extend([0.5f64, -0.5]).unwrap();
            w.finish().unwrap();
        }
        std::fs::write(dir.join("f64.npy"), f64_npy).unwrap();
        std::fs::write(dir.join("garbage.npy"), b"\x93NUMPY\x01\x00garbage").unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        vec![
            root.join("examples/mixture_2d.json"),
            root.join("examples/mixture_64d.json"),
            root.join("fuzz/seeds/mlp_safetensors/mlp_variant_a.safetensors"),
            root.join("fuzz/seeds/mlp_safetensors/mlp_variant_b.safetensors"),
            npy("x_1x2.npy", &[1, 2], &vals(2)),
            npy("x_4x2.npy", &[4, 2], &vals(8)),
            npy("x_2x3.npy", &[2, 3], &vals(6)),
            npy("x_0x2.npy", &[0, 2], &[]),
            npy("z_10x1x2.npy", &[10, 1, 2], &vals(20)),
            npy("z_10x4x2.npy", &[10, 4, 2], &vals(80)),
            npy("z_5x2x3.npy", &[5, 2, 3], &vals(30)),
            npy("nan_1x2.npy", &[1, 2], &[f32::NAN, 1.0]),
            npy("scalar.npy", &[], &[1.0]),
            dir.join("f64.npy"),
            dir.join("garbage.npy"),
            dir.join("empty"),
            missing(),
            dir.clone(),
            PathBuf::from("/dev/null"),
            PathBuf::from("/dev/zero"),
        ]
    })
}

/// A path the target may read: a fixture as is, anything else a missing file.
fn tame(p: &Path) -> PathBuf {
    let f = fixtures();
    if f.iter().any(|q| q == p) {
        p.to_path_buf()
    } else {
        missing()
    }
}

#[derive(Debug, Arbitrary)]
enum Token {
    Command(u8),
    Flag(u8),
    Name(u8),
    Int(i64),
    Small(u16),
    Float(f64),
    File(u8),
    Raw(String),
    Bytes(Vec<u8>),
}

/// A well-formed core (`--model F --schedule S --rule R --steps N`, optionally `--init`, `--noise`
/// and `--out` files) that the tokens then add to.
#[derive(Debug, Arbitrary)]
struct Base {
    model: u8,
    schedule: u8,
    rule: u8,
    steps: u8,
    init: Option<u8>,
    noise: Option<u8>,
    out: Option<u8>,
}

/// `--out`/`--stats` values: checked (their directory), never written.
const OUT_PATHS: &[&str] = &[
    "/nonexistent-dir/x.npy",
    "/",
    "/tmp",
    "/dev/null",
    "",
    ".",
    "x.npy",
];

#[derive(Debug, Arbitrary)]
struct Input {
    command: u8,
    base: Option<Base>,
    tokens: Vec<Token>,
}

fn argv(inp: &Input) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["picardiff".into()];
    let pick = |list: &[&str], i: u8| list[i as usize % list.len()].to_string();
    if (inp.command as usize) < COMMANDS.len() * 2 {
        v.push(pick(COMMANDS, inp.command).into());
    }
    if let Some(b) = &inp.base {
        let f = fixtures();
        v.push("--model".into());
        v.push(f[b.model as usize % 4].clone().into());
        v.push("--schedule".into());
        v.push(pick(&NAMES[..5], b.schedule).into());
        v.push("--rule".into());
        v.push(pick(&NAMES[5..9], b.rule).into());
        v.push("--steps".into());
        v.push(b.steps.to_string().into());
        for (flag, file) in [("--init", b.init), ("--noise", b.noise)] {
            if let Some(i) = file {
                v.push(flag.into());
                v.push(f[i as usize % f.len()].clone().into());
            }
        }
        if let Some(i) = b.out {
            v.push("--out".into());
            v.push(pick(OUT_PATHS, i).into());
        }
    }
    for t in &inp.tokens {
        v.push(match t {
            Token::Command(i) => pick(COMMANDS, *i).into(),
            Token::Flag(i) => pick(FLAGS, *i).into(),
            Token::Name(i) => pick(NAMES, *i).into(),
            Token::Int(i) => i.to_string().into(),
            Token::Small(i) => i.to_string().into(),
            Token::Float(x) => x.to_string().into(),
            Token::File(i) => {
                let f = fixtures();
                f[*i as usize % f.len()].clone().into()
            }
            Token::Raw(s) => s.into(),
            Token::Bytes(b) => OsString::from_vec(b.clone()),
        });
    }
    v
}

/// Whether validating `a` is cheap enough for one fuzz input (the grid and step tables are built).
fn cheap_to_validate(a: &RunArgs) -> bool {
    let s = &a.spec;
    s.steps.is_none_or(|n| n <= 20_000)
        && s.train_steps.is_none_or(|n| n <= 100_000)
        && s.kappa.is_none_or(|k| k >= 0.01)
        && s.horizon.is_none_or(|h| h.abs() <= 100.0)
        && a.config.is_none()
}

/// Every CLI error is one line.
fn one_line(e: &CliError) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "multi-line error: {text:?}");
}

fn check_run_args(a: &RunArgs, compare: bool) {
    let mut a = a.clone();
    a.model = tame(&a.model);
    a.init = a.init.as_deref().map(tame);
    a.noise = a.noise.as_deref().map(tame);
    if !cheap_to_validate(&a) {
        return;
    }
    let s = match cli::commands::setup(&a, compare) {
        Ok(s) => s,
        Err(e) => return one_line(&e),
    };
    let p = &s.problem;
    let (batch, dim, steps) = (p.batch, p.dim(), p.steps());
    assert!(
        batch >= 1 && dim >= 1 && steps >= 1,
        "{batch} {dim} {steps}"
    );
    if let Some(x) = &p.init {
        assert_eq!(
            x.len(),
            batch * dim,
            "--init accepted with the wrong length"
        );
    }
    if let Some(z) = &p.noise {
        assert_eq!(
            z.len(),
            steps * batch * dim,
            "--noise accepted with the wrong length"
        );
    }
    let ring = match &s.sampler.kind {
        SamplerKind::Sequential => 1,
        SamplerKind::Picard { window, .. } => {
            assert!(
                (1..=steps).contains(window),
                "window {window} of {steps} steps"
            );
            window + 1
        }
        SamplerKind::Blocks { iters, .. } => {
            assert!(*iters >= 1);
            steps + 1
        }
    };
    // Run what is small: at most steps × ring × batch × dim = 1e6 element-evaluations.
    let corrector_work = match &s.sampler.kind {
        SamplerKind::Blocks {
            corrector: Some(c), ..
        } => c.steps.saturating_mul(c.iters),
        _ => 0,
    };
    let work = (steps as u128) * (ring as u128) * (batch as u128) * (dim as u128);
    if steps <= 100 && batch <= 8 && work <= 1_000_000 && corrector_work <= 256 {
        match s.device.run(p, &s.sampler.kind, &s.sampler.label) {
            Ok(out) => {
                assert_eq!(out.samples.len(), batch * dim);
                assert!(out.samples.iter().all(|v| v.is_finite()));
            }
            Err(e) => one_line(&e),
        }
    }
}

fuzz_target!(|inp: Input| {
    let Ok(parsed) = Cli::try_parse_from(argv(&inp)) else {
        return;
    };
    match &parsed.command {
        Command::Sample(a) => check_run_args(a, false),
        Command::Compare(a) => check_run_args(a, true),
        Command::Info { file, model } => {
            if let Some(path) = file.as_ref().or(model.as_ref()) {
                if let Ok(m) = picardiff::model::load_model(&tame(path)) {
                    assert!(!m.summary().is_empty());
                }
            }
        }
        // These run samplers from their first line; parsing is what is checked.
        Command::Demo(_) | Command::Bench(_) => {}
    }
});
