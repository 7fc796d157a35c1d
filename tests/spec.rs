//! The run specification (`picardiff::spec`): one set of defaults for the library, the CLI and the
//! C ABI; config files with flags over them; named choices spelled the same everywhere.

mod cli_common;

use cli_common::{example, picardiff, read_json, TempDir};
use picardiff::backend::PicardForm;
use picardiff::sampler::SamplerKind;
use picardiff::schedule::ModelOutput;
use picardiff::spec::{ModelRun, Named, RunSpec, SamplerName, ScheduleName};

/// A 300-step DDPM spec for the mixture: everything else at its default.
fn ddpm300() -> RunSpec {
    RunSpec {
        schedule: Some(ScheduleName::DdpmLinear),
        rule: Some(picardiff::spec::RuleName::Ddpm),
        steps: Some(300),
        ..RunSpec::default()
    }
}

#[test]
fn library_defaults_are_the_documented_ones() {
    let plan = ddpm300()
        .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
        .unwrap();
    assert_eq!(
        plan.kind,
        SamplerKind::Picard {
            window: picardiff::defaults::WINDOW,
            tol: picardiff::defaults::TOL_STOCHASTIC,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        }
    );
    assert_eq!(plan.seed, 0);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    // A short grid clamps the window, which then holds every step: the final samples stop the
    // run (drift at τ = 0 with the default final_tol), unless a τ is given.
    let short = RunSpec {
        steps: Some(10),
        rule: Some(picardiff::spec::RuleName::Ddim),
        ..ddpm300()
    };
    let kind = |spec: RunSpec| {
        spec.plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
            .unwrap()
            .kind
    };
    let picard = |window, tol, form, final_tol| SamplerKind::Picard {
        window,
        tol,
        max_iters: None,
        form,
        anderson: None,
        final_tol,
    };
    let d = picardiff::defaults::FINAL_TOL;
    assert_eq!(
        kind(short.clone()),
        picard(10, 0.0, PicardForm::Drift, Some(d))
    );
    let given = |f: &dyn Fn(&mut RunSpec)| {
        let mut s = short.clone();
        f(&mut s);
        kind(s)
    };
    // A given τ: ParaDiGMS' per-step test, scan, no final stop (τ = 0 is the sequential run).
    let tol = picardiff::defaults::TOL_DETERMINISTIC;
    assert_eq!(
        given(&|s| s.tol = Some(tol)),
        picard(10, tol, PicardForm::Scan, None)
    );
    assert_eq!(
        given(&|s| s.tol = Some(0.0)),
        picard(10, 0.0, PicardForm::Scan, None)
    );
    // A given final_tol or form replaces only itself.
    let ft = given(&|s| s.final_tol = Some(1e-4));
    assert_eq!(ft, picard(10, 0.0, PicardForm::Drift, Some(1e-4)));
    let scan = given(&|s| s.picard_form = Some(PicardForm::Scan));
    assert_eq!(scan, picard(10, 0.0, PicardForm::Scan, Some(d)));
    // A window shorter than the grid slides: the per-step test.
    let slide = given(&|s| s.window = Some(5));
    assert_eq!(slide, picard(5, tol, PicardForm::Scan, None));
    // Blocks keep the per-step test.
    let blocks = given(&|s| s.sampler = Some(SamplerName::Blocks));
    assert!(
        matches!(blocks, SamplerKind::Blocks { tol: t, form: PicardForm::Scan, final_tol: None, .. }
        if t == tol),
        "{blocks:?}"
    );
}

#[test]
fn the_cli_starts_from_the_library_defaults() {
    let dir = TempDir::new("spec-defaults");
    let stats = dir.arg("s.json");
    let model = example("mixture_2d.json");
    let out = picardiff(
        &[
            "sample",
            "--model",
            &model,
            "--schedule",
            "ddpm-linear",
            "--rule",
            "ddpm",
            "--steps",
            "300",
            "--device",
            "cpu",
            "--stats",
            &stats,
        ],
        &dir.0,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli = read_json(std::path::Path::new(&stats));
    let lib = ddpm300()
        .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
        .unwrap();
    for (key, value) in lib.settings.iter().chain(&lib.sampler_settings) {
        assert_eq!(
            &cli[key], value,
            "setting `{key}`: CLI {} vs library {value}",
            cli[key]
        );
    }
    assert_eq!(cli["window"], 256);
    assert_eq!(cli["picard_form"], "scan");
}

#[test]
fn a_config_file_is_a_spec_and_flags_override_it() {
    let dir = TempDir::new("spec-config");
    std::fs::write(
        dir.path("run.toml"),
        "schedule = \"ddpm-linear\"\nrule = \"ddim\"\nsteps = 40\nwindow = 8\ntol = 0.01\n",
    )
    .unwrap();
    std::fs::write(
        dir.path("run.json"),
        r#"{"schedule": "ddpm-linear", "rule": "ddim", "steps": 40, "window": 8}"#,
    )
    .unwrap();
    for (file, extra, window) in [
        ("run.toml", None, 8),
        ("run.json", None, 8),
        ("run.toml", Some("12"), 12),
    ] {
        let stats = dir.arg("s.json");
        let config = dir.arg(file);
        let model = example("mixture_2d.json");
        let mut args = vec![
            "sample", "--model", &model, "--config", &config, "--device", "cpu", "--stats", &stats,
        ];
        if let Some(w) = extra {
            args.extend(["--window", w]);
        }
        let out = picardiff(&args, &dir.0);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = read_json(std::path::Path::new(&stats));
        assert_eq!(s["window"], window, "{file} {extra:?}: {s}");
        assert_eq!(s["steps"], 40);
        assert_eq!(s["rule"], "ddim");
    }
    // Unknown keys and bad values are one clear error naming them.
    std::fs::write(dir.path("bad.toml"), "windw = 8\n").unwrap();
    std::fs::write(dir.path("bad2.toml"), "sampler = \"fast\"\n").unwrap();
    for (file, want) in [
        ("bad.toml", "unknown field `windw`"),
        ("bad2.toml", "unknown sampler `fast`"),
    ] {
        let config = dir.arg(file);
        let model = example("mixture_2d.json");
        cli_common::assert_one_line_error(
            &["sample", "--model", &model, "--config", &config],
            &dir.0,
            want,
        );
    }
}

#[test]
fn fields_list_matches_the_struct_and_overlay_takes_the_later() {
    let json = serde_json::to_value(RunSpec::default()).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_fields = RunSpec::FIELDS.to_vec();
    sorted_fields.sort();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    assert_eq!(sorted_keys, sorted_fields);
    let a = RunSpec {
        window: Some(4),
        tol: Some(0.5),
        ..RunSpec::default()
    };
    let b = RunSpec {
        window: Some(9),
        ..RunSpec::default()
    };
    let c = a.overlaid(&b);
    assert_eq!((c.window, c.tol), (Some(9), Some(0.5)));
    // Round trip through JSON.
    let text = serde_json::to_string(&c).unwrap();
    assert_eq!(RunSpec::from_text(&text, true).unwrap(), c);
}

#[test]
fn named_choices_parse_print_and_refuse_alike() {
    for (v, name) in SamplerName::ALL {
        assert_eq!(name.parse::<SamplerName>().unwrap(), *v);
        assert_eq!(v.to_string(), *name);
    }
    let e = "fast".parse::<SamplerName>().unwrap_err().to_string();
    assert!(
        e.contains("unknown sampler `fast` (expected sequential, picard, blocks or auto)"),
        "{e}"
    );
    let e = "nope".parse::<PicardForm>().unwrap_err().to_string();
    assert!(
        e.contains("unknown form `nope` (expected scan or drift)"),
        "{e}"
    );
}
