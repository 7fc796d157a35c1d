//! The CLI on a LeRobot policy directory: `info`, `sample` and `compare` with `--cond`, LeRobot's
//! `(B, T, A)` arrays in and out, scheduler overrides, and the errors a user meets first.

mod cli_common;

use std::path::Path;

use cli_common::*;
use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lerobot")
        .join(name)
        .display()
        .to_string()
}

fn reference(name: &str) -> Value {
    read_json(&Path::new(&fixture(name)).join("reference.json"))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

const NAME: &str = "film_scale_k5";

/// Writes the DDIM reference's conditioning and x_T; returns (cond, x_T) paths.
fn inputs(tmp: &TempDir) -> (String, String) {
    let r = &reference(NAME)["ddim"];
    let cond = floats(&r["global_cond"]);
    write_npy(&tmp.path("cond.npy"), &[3, 16], &cond);
    write_npy(&tmp.path("xT.npy"), &[3, 16, 2], &floats(&r["x_T"]));
    (tmp.arg("cond.npy"), tmp.arg("xT.npy"))
}

#[test]
fn info_describes_the_policy() {
    let tmp = TempDir::new("policy-info");
    let text = ok(&["info", "--model", &fixture(NAME)], &tmp.0);
    assert!(text.contains("LeRobot Diffusion Policy U-Net"), "{text}");
    assert!(
        text.contains("16 = (state 6 + environment_state 2) × n_obs_steps 2"),
        "{text}"
    );
    assert_eq!(ok(&["info", &fixture(NAME)], &tmp.0), text);
}

/// `sample` with the checkpoint's scheduler switched to DDIM-10 reproduces LeRobot's actions, and
/// writes them as `[batch, horizon, action_dim]`.
#[test]
fn sample_reproduces_lerobot_ddim() {
    let tmp = TempDir::new("policy-sample");
    let (cond, xt) = inputs(&tmp);
    let out = tmp.arg("actions.npy");
    let stats = tmp.arg("stats.json");
    for sampler in ["sequential", "picard"] {
        ok(
            &[
                "sample",
                "--model",
                &fixture(NAME),
                "--cond",
                &cond,
                "--init",
                &xt,
                "--rule",
                "ddim",
                "--steps",
                "10",
                "--sampler",
                sampler,
                "--device",
                "cpu",
                "--out",
                &out,
                "--stats",
                &stats,
            ],
            &tmp.0,
        );
        let (shape, got) = read_npy(Path::new(&out));
        assert_eq!(shape, vec![3, 16, 2]);
        let want = floats(&reference(NAME)["ddim"]["out"]);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "{sampler}: {err}");
        let s = read_json(Path::new(&stats));
        assert_eq!(s["model_kind"], "lerobot_diffusion");
        assert_eq!(s["steps"], 10);
        assert_eq!(s["scheduler"], "Ddim");
    }
}

/// `compare` runs the checkpoint's own DDPM-100 with clipping, sequential vs picard, same noise.
#[test]
fn compare_uses_the_checkpoints_scheduler() {
    let tmp = TempDir::new("policy-compare");
    let (cond, _) = inputs(&tmp);
    let stats = tmp.arg("compare.json");
    ok(
        &[
            "compare",
            "--model",
            &fixture(NAME),
            "--cond",
            &cond,
            "--device",
            "cpu",
            "--stats",
            &stats,
        ],
        &tmp.0,
    );
    let s = read_json(Path::new(&stats));
    assert_eq!(s["steps"], 100);
    assert_eq!(s["clip_sample"], 1.0);
    assert!(s["max_abs_diff"].as_f64().unwrap() < 0.2, "{s}");
    assert!(s["rounds"].as_u64().unwrap() < 100, "{s}");
}

#[test]
fn policy_errors_are_clear() {
    let tmp = TempDir::new("policy-errors");
    let (cond, xt) = inputs(&tmp);
    let model = fixture(NAME);
    let fails = |args: &[&str], want: &str| {
        let out = picardiff(args, &tmp.0);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    fails(
        &["sample", "--model", &model, "--device", "cpu"],
        "--cond is required for a Diffusion Policy: a float32 .npy of shape [batch, 16]",
    );
    write_npy(&tmp.path("wide.npy"), &[3, 17], &vec![0f32; 51]);
    fails(
        &["sample", "--model", &model, "--cond", &tmp.arg("wide.npy"), "--device", "cpu"],
        "expected a float32 array of shape [batch, 16] (16 = (state 6 + environment_state 2) × n_obs_steps 2",
    );
    fails(
        &[
            "sample", "--model", &model, "--cond", &cond, "--rule", "exp-sde", "--device", "cpu",
        ],
        "not `exp-sde`",
    );
    fails(
        &[
            "sample",
            "--model",
            &model,
            "--cond",
            &cond,
            "--schedule",
            "cosine",
            "--device",
            "cpu",
        ],
        "names its own schedule",
    );
    fails(
        &[
            "sample", "--model", &model, "--cond", &cond, "--set", "bogus=1", "--device", "cpu",
        ],
        "no such field",
    );
    fails(
        &[
            "sample",
            "--model",
            &model,
            "--cond",
            &cond,
            "--set",
            "noise_scheduler_type=PNDM",
            "--device",
            "cpu",
        ],
        "not supported",
    );
    fails(
        &[
            "sample", "--model", &model, "--cond", &cond, "--init", &cond, "--device", "cpu",
        ],
        "[batch, horizon, action_dim]",
    );
    fails(
        &[
            "sample", "--model", &model, "--cond", &xt, "--device", "cpu",
        ],
        "[batch, 16]",
    );
    fails(
        &[
            "sample",
            "--model",
            &example("mixture_2d.json"),
            "--cond",
            &cond,
            "--rule",
            "ddpm",
            "--schedule",
            "cosine",
            "--steps",
            "5",
        ],
        "Diffusion Policy directory only",
    );
    fails(
        &[
            "sample",
            "--model",
            &example("mixture_2d.json"),
            "--schedule",
            "cosine",
            "--steps",
            "5",
        ],
        "--rule is required",
    );
}

/// `bench --policy`: sequential and picard rows per scheduler, then auto's choice against the
/// faster of the two, each row as one line of the table.
#[test]
fn bench_policy_rows_end_with_autos_choice() {
    let dir = TempDir::new("bench-policy");
    let policy = fixture("film_bias_k3_g4");
    let stdout = ok(
        &[
            "bench",
            "--device",
            "cpu",
            "--dims",
            "--policy",
            &policy,
            "--batches",
            "1",
            "--repeat",
            "1",
        ],
        &dir.0,
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| policy"))
        .collect();
    assert_eq!(rows.len(), 6, "{stdout}");
    for (i, sampler) in ["| sequential |", "| picard |", "| auto: "]
        .iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        assert!(rows[i].contains(sampler), "row {i}: {}", rows[i]);
    }
    for auto in [rows[2], rows[5]] {
        assert!(
            auto.contains("auto: sequential (") || auto.contains("auto: picard ("),
            "{auto}"
        );
        assert!(auto.contains("x the best, "), "{auto}");
    }
    // DDIM-10: picard cannot win (R̂ = N): sequential, without measuring. (Its ratio to the best
    // row is timing: on this tiny policy a 9-round picard row can beat 10 sequential calls.)
    assert!(
        rows[5].contains("DDIM-10") && rows[5].contains("auto: sequential ("),
        "{}",
        rows[5]
    );
}
