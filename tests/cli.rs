//! The `picardiff` binary end to end: files written, statistics reported, noise inputs honoured, and
//! every bad input answered with one `error:` line and a non-zero exit code (never a panic).

mod cli_common;
mod common;

use std::path::Path;

use cli_common::*;
use picardiff::prelude::*;

#[test]
fn sample_picard_writes_npy_and_stats() {
    let dir = TempDir::new("sample");
    let model = example("mixture_64d.json");
    let (out, stats) = (dir.arg("x.npy"), dir.arg("stats.json"));
    let args = [
        "sample",
        "--model",
        &model,
        "--schedule",
        "ddpm-linear",
        "--steps",
        "200",
        "--rule",
        "ddpm",
        "--sampler",
        "picard",
        "--batch",
        "5",
        "--seed",
        "4",
        "--device",
        "cpu",
        "--out",
        &out,
        "--stats",
        &stats,
    ];
    let stdout = ok(&args, &dir.0);
    assert!(stdout.contains("rounds"), "{stdout}");
    let (shape, data) = read_npy(&dir.path("x.npy"));
    assert_eq!(shape, vec![5, 64]);
    assert!(data.iter().all(|v| v.is_finite()));
    let s = read_json(&dir.path("stats.json"));
    for field in [
        "sampler",
        "device",
        "dim",
        "batch",
        "steps",
        "rounds",
        "nfe",
        "wall_ms",
        "host_syncs",
        "schedule",
        "rule",
        "tol",
        "window",
    ] {
        assert!(s.get(field).is_some(), "stats lack `{field}`: {s}");
    }
    assert_eq!(s["sampler"], "picard");
    assert_eq!(s["device"], "cpu");
    assert_eq!(s["schedule"], "ddpm-linear");
    assert_eq!(s["rule"], "ddpm");
    assert_eq!(s["dim"], 64);
    assert_eq!(s["batch"], 5);
    assert_eq!(s["steps"], 200);
    assert_eq!(s["window"], 200);
    // The window holds every step: drift at τ = 0, stopped by the final samples.
    assert_eq!(s["tol"], 0.0);
    assert_eq!(s["final_tol"], picardiff::defaults::FINAL_TOL);
    assert_eq!(s["picard_form"], "drift");
    let rounds = s["rounds"].as_u64().unwrap();
    assert!(rounds > 0 && rounds < 200, "{s}");
    assert!(s["nfe"].as_u64().unwrap() >= rounds);
    assert!(s["wall_ms"].as_f64().unwrap() >= 0.0);
    assert!(s["host_syncs"].as_u64().unwrap() >= 1);

    // The same run twice gives the same samples (counter-based noise).
    ok(&args, &dir.0);
    assert_eq!(read_npy(&dir.path("x.npy")).1, data);
}

#[test]
fn sample_every_sampler_and_schedule_family() {
    let dir = TempDir::new("families");
    let model = example("mixture_2d.json");
    let runs: &[&[&str]] = &[
        &[
            "--schedule",
            "ddpm-linear",
            "--steps",
            "50",
            "--rule",
            "ddim",
            "--sampler",
            "sequential",
        ],
        &[
            "--schedule",
            "cosine",
            "--steps",
            "50",
            "--rule",
            "ddim",
            "--spacing",
            "trailing",
        ],
        &[
            "--schedule",
            "scaled-linear",
            "--steps",
            "100",
            "--rule",
            "ddpm",
            "--sampler",
            "blocks",
            "--block-len",
            "250",
        ],
        &[
            "--schedule",
            "ou",
            "--grid",
            "paper",
            "--rule",
            "exp-sde",
            "--sampler",
            "blocks",
        ],
        &[
            "--schedule",
            "ou",
            "--steps",
            "100",
            "--rule",
            "exp-ode",
            "--picard-form",
            "drift",
            "--window",
            "20",
        ],
        &[
            "--schedule",
            "vp-linear",
            "--steps",
            "100",
            "--rule",
            "exp-sde",
            "--t-end",
            "0.01",
        ],
    ];
    for extra in runs {
        let mut args = vec![
            "sample", "--model", &model, "--batch", "3", "--device", "cpu",
        ];
        args.extend_from_slice(extra);
        let stats = dir.arg("s.json");
        let out = dir.arg("x.npy");
        args.extend_from_slice(&["--stats", &stats, "--out", &out]);
        ok(&args, &dir.0);
        let (shape, data) = read_npy(&dir.path("x.npy"));
        assert_eq!(shape, vec![3, 2], "{extra:?}");
        assert!(data.iter().all(|v| v.is_finite()), "{extra:?}");
        let s = read_json(&dir.path("s.json"));
        assert!(s["rounds"].as_u64().unwrap() >= 1, "{extra:?}: {s}");
        assert_eq!(s["schedule"], extra[1], "{s}");
        if extra.contains(&"paper") {
            // The paper grid's step count follows from kappa: 322 steps at 0.05, T = 10, eta = 1e-3.
            assert_eq!(s["steps"], 322, "{s}");
            assert_eq!(s["blocks"], 10, "{s}");
        }
    }
}

#[test]
fn compare_picard_matches_sequential_in_fewer_rounds() {
    let dir = TempDir::new("compare");
    let model = example("mixture_2d.json");
    let stats = dir.arg("c.json");
    let stdout = ok(
        &[
            "compare",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--steps",
            "1000",
            "--rule",
            "ddpm",
            "--sampler",
            "picard",
            "--batch",
            "4",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--stats",
            &stats,
        ],
        &dir.0,
    );
    assert!(
        stdout.contains("sequential") && stdout.contains("picard"),
        "{stdout}"
    );
    let s = read_json(&dir.path("c.json"));
    let diff = s["max_abs_diff"].as_f64().unwrap();
    let (rounds, seq_rounds) = (
        s["rounds"].as_u64().unwrap(),
        s["sequential_rounds"].as_u64().unwrap(),
    );
    assert!(diff <= 2e-3, "{s}");
    assert_eq!(seq_rounds, 1000);
    assert!(rounds < seq_rounds, "{s}");
    assert!(s["sequential_wall_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["sampler"], "picard");
}

#[test]
fn init_and_noise_replace_the_generated_noise() {
    let dir = TempDir::new("noise");
    let model = example("mixture_2d.json");
    let (b, d, n) = (3usize, 2usize, 60usize);
    write_npy(
        &dir.path("init.npy"),
        &[b as u64, d as u64],
        &values(b * d, 1),
    );
    write_npy(
        &dir.path("z.npy"),
        &[n as u64, b as u64, d as u64],
        &values(n * b * d, 2),
    );
    let (init, noise) = (dir.arg("init.npy"), dir.arg("z.npy"));
    let run = |seed: &str, with_inputs: bool, sampler: &str, out: &str| {
        let out = dir.arg(out);
        let mut args = vec![
            "sample",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--steps",
            "60",
            "--rule",
            "ddpm",
            "--sampler",
            sampler,
            "--seed",
            seed,
            "--device",
            "cpu",
            "--out",
            &out,
        ];
        if with_inputs {
            args.extend_from_slice(&["--init", &init, "--noise", &noise]);
        } else {
            args.extend_from_slice(&["--batch", "3"]);
        }
        ok(&args, &dir.0);
        read_npy(Path::new(&out))
    };
    // --batch is taken from --init.
    let (shape, a) = run("1", true, "picard", "a.npy");
    assert_eq!(shape, vec![3, 2]);
    let (_, b2) = run("2", true, "picard", "b.npy");
    assert_eq!(a, b2, "given --init and --noise, the seed must not matter");
    // Without them the seed does matter.
    let (_, c) = run("1", false, "picard", "c.npy");
    let (_, e) = run("2", false, "picard", "e.npy");
    assert_ne!(c, e);
    // The sequential sampler on the same inputs agrees with picard.
    let (_, s) = run("9", true, "sequential", "s.npy");
    assert!(common::max_abs_diff(&a, &s) <= 2e-3);
}

/// A bad input: exit code ≠ 0 (and not a panic's 101), exactly one line on stderr, starting `error:`.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let dir = TempDir::new("cuda");
    let model = example("mixture_2d.json");
    let args = [
        "sample",
        "--model",
        &model,
        "--schedule",
        "ddpm-linear",
        "--steps",
        "10",
        "--rule",
        "ddpm",
        "--device",
        "cuda",
    ];
    assert_one_line_error(
        &args,
        &dir.0,
        "built without CUDA support: rebuild with --features cuda",
    );
    // auto falls back to the CPU and says so on stderr.
    let out = picardiff(
        &[
            "sample",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--steps",
            "10",
            "--rule",
            "ddpm",
        ],
        &dir.0,
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("device cpu"), "{stderr}");
    // A CPU-only build has nothing wrong with it: no advice to rebuild unless cuda was asked for.
    assert!(!stderr.contains("rebuild"), "{stderr}");
}

#[test]
fn usage_errors_are_clap_errors() {
    let dir = TempDir::new("usage");
    let out = picardiff(&["sample", "--steps", "ten"], &dir.0);
    assert_eq!(out.status.code(), Some(2));
    let out = picardiff(&["sample", "--help"], &dir.0);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--grid") && help.contains("ignored"),
        "{help}"
    );
    // One symbol per quantity: η is DDIM's --eta, the early-stopping time of --t-end is δ.
    let t_end = help.split("--t-end <").nth(1).expect("--t-end in the help");
    let t_end = &t_end[..t_end.find("\n  -").unwrap_or(t_end.len())];
    assert!(
        t_end.starts_with("DELTA>") && t_end.contains("δ > 0"),
        "{t_end}"
    );
    assert!(
        !t_end.contains("= η") && !t_end.contains("<ETA>"),
        "{t_end}"
    );
    let eta = help.split("--eta <").nth(1).expect("--eta in the help");
    assert!(
        eta[..eta.find("\n  -").unwrap_or(eta.len())].contains("stochasticity η"),
        "{eta}"
    );
}

#[test]
fn demo_prints_a_table_per_sampler() {
    let dir = TempDir::new("demo");
    let stdout = ok(&["demo", "--batch", "4", "--device", "cpu"], &dir.0);
    for word in [
        "sequential",
        "picard scan",
        "picard drift",
        "blocks",
        "rounds",
        "nfe",
        "wall ms",
        "max |Δ|",
        "t-end = 0.001",
    ] {
        assert!(
            stdout.contains(word),
            "demo output lacks `{word}`:\n{stdout}"
        );
    }
    // eta is DDIM's stochasticity only, not the OU problem's early-stopping time.
    assert!(!stdout.contains("eta ="), "{stdout}");
    // The 1000-step DDPM table: picard needs far fewer than 1000 rounds.
    let picard_rounds: u64 = stdout
        .lines()
        .find(|l| l.starts_with("picard scan"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|r| r.parse().ok())
        .expect("a picard scan row");
    assert!(picard_rounds < 200, "{stdout}");
}

#[test]
fn example_mixtures_match_their_formulas() {
    let close = |a: &Mixture, b: &Mixture| {
        a.dim == b.dim
            && a.weights.len() == b.weights.len()
            && [
                (&a.weights, &b.weights),
                (&a.means, &b.means),
                (&a.stds, &b.stds),
            ]
            .iter()
            .all(|(x, y)| x.iter().zip(y.iter()).all(|(p, q)| (p - q).abs() <= 1e-12))
    };
    let m64 = Mixture::from_file(Path::new(&example("mixture_64d.json"))).unwrap();
    assert!(close(&m64, &common::mixture_64d()));
    let m2 = Mixture::from_file(Path::new(&example("mixture_2d.json"))).unwrap();
    assert!(close(&m2, &common::mixture_2d()));
}

#[test]
fn mlp_models_sample_compare_and_report_info() {
    let dir = TempDir::new("mlp");
    let model = example("models/moons2d.safetensors");
    let info = ok(&["info", &model], &dir.0);
    assert!(
        info.contains("MLP") && info.contains("121,474 parameters"),
        "{info}"
    );
    assert!(ok(&["info", &example("mixture_2d.json")], &dir.0).contains("2 components"));
    // The MLP names its own schedule; compare runs sequential and picard on the same noise.
    let stats = dir.arg("stats.json");
    let args = [
        "compare",
        "--model",
        &model,
        "--steps",
        "200",
        "--rule",
        "ddim",
        "--sampler",
        "picard",
        "--tol",
        "1e-3",
        "--batch",
        "8",
        "--seed",
        "4",
        "--device",
        "cpu",
        "--stats",
        &stats,
    ];
    ok(&args, &dir.0);
    let s = read_json(&dir.path("stats.json"));
    assert_eq!(s["schedule"], "ddpm-linear");
    assert_eq!(s["dim"], 2);
    assert!(s["rounds"].as_u64().unwrap() < 100, "{s}");
    assert!(s["max_abs_diff"].as_f64().unwrap() <= 2e-3, "{s}");
    // A contradicting --schedule and a bad --dtype are one-line errors.
    let bad = [
        "sample",
        "--model",
        &model,
        "--schedule",
        "cosine",
        "--steps",
        "10",
        "--rule",
        "ddpm",
    ];
    assert_one_line_error(&bad, &dir.0, "trained with `ddpm-linear`");
    let bad = [
        "sample", "--model", &model, "--steps", "10", "--rule", "ddpm", "--dtype", "f64",
    ];
    assert_one_line_error(&bad, &dir.0, "f64");
    // A mixture still needs --schedule.
    let bad = [
        "sample",
        "--model",
        &example("mixture_2d.json"),
        "--steps",
        "10",
        "--rule",
        "ddpm",
    ];
    assert_one_line_error(&bad, &dir.0, "--schedule is required");
}

/// Issue 17: `bench` prints each row when its run finishes, not the whole table at the end. The
/// D = 2 rows arrive while the D = 10^6 runs (seconds each) are still going; the bench is then killed.
#[test]
fn bench_streams_each_row_as_it_finishes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    let dir = TempDir::new("bench-stream");
    let mut child = Command::new(env!("CARGO_BIN_EXE_picardiff"))
        .args(["bench", "--device", "cpu", "--dims", "2,1000000"])
        .args(["--batches", "1", "--steps", "1000", "--repeat", "1"])
        .current_dir(&dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Generous for a loaded machine; the D = 2 group takes milliseconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut rows = Vec::new();
    while !rows
        .iter()
        .any(|l: &String| l.contains("D=2 ") && l.contains("blocks"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => rows.push(line),
            Err(_) => break,
        }
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let d2: Vec<_> = rows
        .iter()
        .filter(|l| l.starts_with("| mixture D=2 "))
        .collect();
    assert_eq!(
        d2.len(),
        3,
        "sequential, picard and blocks rows of D = 2: {rows:?}"
    );
    assert!(
        still_running,
        "the D = 2 rows came only when the bench ended: {rows:?}"
    );
}

/// Issue 17: a long run draws a progress line on a terminal's stderr (erased at the end), and
/// nothing of it reaches a pipe. The terminal is `script`'s pseudo-terminal (util-linux). The run
/// (6000 samples × 1000 steps, sequential) lasts seconds on the 2-core VM; the line appears after
/// 0.5 s.
#[test]
fn long_runs_show_progress_on_a_terminal_only() {
    let dir = TempDir::new("progress");
    let model = example("mixture_64d.json");
    let run = |batch: &str| {
        [
            "sample",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--steps",
            "1000",
            "--rule",
            "ddpm",
            "--sampler",
            "sequential",
            "--device",
            "cpu",
            "--batch",
            batch,
        ]
        .map(String::from)
    };
    let piped = picardiff(&run("1000").each_ref().map(String::as_str), &dir.0);
    assert!(piped.status.success());
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !stderr.contains("steps final") && !stderr.contains('\r'),
        "{stderr}"
    );
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the terminal half: no `script` (util-linux) on PATH");
        return;
    }
    let command = std::iter::once(env!("CARGO_BIN_EXE_picardiff").to_string())
        .chain(run("6000"))
        .collect::<Vec<_>>()
        .join(" ");
    let log = dir.path("typescript");
    let out = std::process::Command::new("script")
        .args(["-qfec", &command])
        .arg(&log)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let tty = std::fs::read_to_string(&log).unwrap();
    let last = tty.rfind(" steps final, ").expect("a progress line");
    assert!(
        tty[..last].contains("\r\x1b[2Kpicardiff: sequential [#"),
        "{tty}"
    );
    assert!(
        tty[last..].contains("\r\x1b[2K"),
        "the line is erased at the end: {tty}"
    );
}

/// Issue 14 item 6: `sample` without `--sampler` runs auto, says on stderr what it chose and why,
/// keeps the choice in the stats, and its samples are the chosen sampler's, bit for bit.
#[test]
fn sample_defaults_to_auto_and_runs_its_choice_exactly() {
    let dir = TempDir::new("auto");
    let model = example("mixture_64d.json");
    let run = |extra: &[&str], out: &str, stats: &str| {
        let mut args = vec![
            "sample",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--steps",
            "100",
            "--rule",
            "ddpm",
            "--batch",
            "3",
            "--device",
            "cpu",
            "--out",
            out,
            "--stats",
            stats,
        ];
        args.extend_from_slice(extra);
        picardiff(&args, &dir.0)
    };
    let (x, st) = (dir.arg("x.npy"), dir.arg("st.json"));
    let auto = run(&[], &x, &st);
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "{stderr}");
    assert!(
        stderr.contains("picardiff: sampler auto chose "),
        "{stderr}"
    );
    let stats = read_json(Path::new(&st));
    assert_eq!(stats["sampler"], "auto");
    let chosen = stats["auto"]["chosen"].as_str().unwrap().to_string();
    assert!(chosen == "sequential" || chosen == "picard", "{stats}");
    assert_eq!(stats["auto"]["rounds"], 30);
    assert!(
        stderr.contains(&format!("auto chose {chosen}: estimated")),
        "{stderr}"
    );
    let (y, st2) = (dir.arg("y.npy"), dir.arg("st2.json"));
    let explicit = run(&["--sampler", &chosen], &y, &st2);
    assert!(explicit.status.success());
    assert_eq!(read_npy(Path::new(&x)), read_npy(Path::new(&y)));
    // 10 DDPM steps: picard cannot win (R̂ = N), so nothing is measured.
    let short = picardiff(
        &[
            "sample",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--steps",
            "10",
            "--rule",
            "ddpm",
            "--device",
            "cpu",
        ],
        &dir.0,
    );
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(
        stderr.contains("auto chose sequential: picard needs about 10 rounds for 10 steps"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&short.stdout).starts_with("sequential on cpu"));
}
