//! Schedules, grids and step rules against independent float64 references.
//!
//! `tests/data/reference_schedules.json` is written by `tools/reference_schedules.py` (numpy, outside
//! the crate): a re-implementation of diffusers' `DDPMScheduler` / `DDIMScheduler` formulas
//! (alphas_cumprod, `set_timesteps` spacings, one `step` each with given x, ε and noise), the continuous
//! `ou` and `vp-linear` schedules, the seed paper's grid and the (a, b, c) tables of
//! `docs/algorithms.md` §2. Regenerate with
//! `python3 tools/reference_schedules.py > tests/data/reference_schedules.json`.
//!
//! Tolerances: alphas_cumprod 1e-12 relative; timesteps exact; paper grid exact length, times within
//! 1e-12; single steps 1e-10, relative to the size of the terms `|a x| + |b ε| + |c z|` (at least 1,
//! so 1e-10 absolute for ordinary steps; the first cosine step has terms of 1e4); table coefficients
//! 1e-10 relative plus 1e-13 absolute (for c = 0 and the tiny b of the last geometric steps).

use picardiff::schedule::{
    discrete_timesteps, Grid, ModelOutput, Schedule, Spacing, StepRule, StepTable,
};
use serde::Deserialize;

const REFERENCE: &str = "tests/data/reference_schedules.json";
const N_TRAIN: usize = 1000;

#[derive(Deserialize)]
struct Reference {
    alphas_cumprod: std::collections::BTreeMap<String, Vec<f64>>,
    timesteps: Vec<TimestepCase>,
    ddpm_steps: Vec<StepCase>,
    ddim_steps: Vec<StepCase>,
    ddim_eta05: Vec<StepCase>,
    continuous: std::collections::BTreeMap<String, Vec<ContinuousPoint>>,
    paper_grid: PaperGrid,
    step_tables: Vec<TableCase>,
}

#[derive(Deserialize)]
struct TimestepCase {
    spacing: String,
    steps: usize,
    timesteps: Vec<usize>,
}

#[derive(Deserialize)]
struct StepCase {
    schedule: String,
    spacing: String,
    steps: usize,
    timesteps: Vec<i64>,
    #[serde(default)]
    eta: Option<f64>,
    step: Vec<SingleStep>,
}

#[derive(Deserialize)]
struct SingleStep {
    j: usize,
    t: i64,
    t_prev: i64,
    x: Vec<f64>,
    eps: Vec<f64>,
    noise: Vec<f64>,
    #[serde(default)]
    ddpm: Option<Vec<f64>>,
    #[serde(default)]
    ddim: Option<Vec<f64>>,
}

#[derive(Deserialize)]
struct ContinuousPoint {
    t: f64,
    alpha: f64,
    sigma: f64,
}

#[derive(Deserialize)]
struct PaperGrid {
    schedule: String,
    #[serde(rename = "T")]
    horizon: f64,
    eta: f64,
    kappa: f64,
    steps: usize,
    times: Vec<f64>,
}

#[derive(Deserialize)]
struct TableCase {
    grid: String,
    rule: String,
    steps: usize,
    rows: Vec<TableRow>,
}

#[derive(Deserialize)]
struct TableRow {
    j: usize,
    a: f64,
    b: f64,
    c: f64,
}

fn reference() -> Reference {
    let text =
        std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| panic!("reading {REFERENCE}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {REFERENCE}: {e}"))
}

fn spacing(name: &str) -> Spacing {
    name.parse()
        .unwrap_or_else(|e| panic!("spacing `{name}`: {e}"))
}

fn schedule(name: &str) -> Schedule {
    Schedule::from_name(name, N_TRAIN).unwrap_or_else(|e| panic!("schedule `{name}`: {e}"))
}

fn rel_err(got: f64, want: f64) -> f64 {
    if got == want {
        0.0
    } else {
        (got - want).abs() / want.abs().max(f64::MIN_POSITIVE)
    }
}

/// `a x + b ε + c z` in f64, and the size of its terms (at least 1) that rounding errors scale with.
fn apply(a: f64, b: f64, c: f64, s: &SingleStep) -> (Vec<f64>, f64) {
    let mut scale = 1.0_f64;
    let out = (0..s.x.len())
        .map(|i| {
            scale = scale.max((a * s.x[i]).abs() + (b * s.eps[i]).abs() + (c * s.noise[i]).abs());
            a * s.x[i] + b * s.eps[i] + c * s.noise[i]
        })
        .collect();
    (out, scale)
}

/// The largest scaled deviation of `rule`'s single steps from the expected outputs chosen by `want`,
/// over every stored step of `case`; also checks that the crate's grid has the case's timesteps.
fn max_step_error(case: &StepCase, rule: StepRule, want: impl Fn(&SingleStep) -> &Vec<f64>) -> f64 {
    let sched = schedule(&case.schedule);
    let grid = Grid::discrete(&sched, case.steps, spacing(&case.spacing)).unwrap();
    assert_eq!(
        grid.steps(),
        case.steps,
        "{} {} {}: grid length",
        case.schedule,
        case.spacing,
        case.steps
    );
    let grid_t: Vec<i64> = grid.points.iter().map(|p| p.t as i64).collect();
    let mut expected_t = case.timesteps.clone();
    expected_t.push(-1);
    assert_eq!(
        grid_t, expected_t,
        "{} {} {}: grid times",
        case.schedule, case.spacing, case.steps
    );
    let table = StepTable::new(&grid, rule, ModelOutput::Epsilon).unwrap();
    assert_eq!(table.steps(), case.steps);
    assert!(!case.step.is_empty());
    let mut worst = 0.0_f64;
    for s in &case.step {
        assert_eq!(table.t[s.j], s.t as f64, "step {}: model time", s.j);
        assert_eq!(
            grid.points[s.j + 1].t as i64,
            s.t_prev,
            "step {}: previous timestep",
            s.j
        );
        let (got, scale) = apply(table.a[s.j], table.b[s.j], table.c[s.j], s);
        let expected = want(s);
        assert_eq!(got.len(), expected.len());
        for (g, w) in got.iter().zip(expected) {
            worst = worst.max((g - w).abs() / scale);
        }
    }
    worst
}

#[test]
fn alphas_cumprod_match_reference() {
    let r = reference();
    assert_eq!(r.alphas_cumprod.len(), 3);
    for (name, want) in &r.alphas_cumprod {
        let Schedule::Discrete {
            alphas_cumprod: got,
            ..
        } = schedule(name)
        else {
            panic!("{name} should be a discrete schedule");
        };
        assert_eq!(got.len(), N_TRAIN, "{name}");
        assert_eq!(want.len(), N_TRAIN, "{name}");
        let worst = got
            .iter()
            .zip(want)
            .map(|(&g, &w)| rel_err(g, w))
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-12,
            "{name}: alphas_cumprod relative error {worst:e}"
        );
        // α and σ of a discrete timestep are the square roots of ᾱ and 1 − ᾱ.
        let sched = schedule(name);
        for i in [0, 1, 499, 998, 999] {
            let (alpha, sigma) = sched.alpha_sigma(i as f64);
            assert!(
                rel_err(alpha, want[i].sqrt()) <= 1e-12,
                "{name} α at {i}: {alpha} vs {}",
                want[i].sqrt()
            );
            assert!(
                rel_err(sigma, (1.0 - want[i]).sqrt()) <= 1e-12,
                "{name} σ at {i}: {sigma}"
            );
        }
        assert_eq!(sched.alpha_sigma(-1.0), (1.0, 0.0), "{name}: clean end");
    }
}

#[test]
fn cosine_schedule_uses_float_division() {
    // candle and diffusers-rs compute i/N with integer division, giving ᾱ = 1 − 0.999 … at every
    // step; the reference values pin the float-division schedule down at both ends.
    let r = reference();
    let want = &r.alphas_cumprod["cosine"];
    assert!(
        (want[0] - 0.999958715775178).abs() < 1e-12,
        "reference ᾱ_0 = {}",
        want[0]
    );
    assert!(
        want[999] < 1e-8 && want[999] > 1e-9,
        "reference ᾱ_999 = {}",
        want[999]
    );
    let Schedule::Discrete {
        alphas_cumprod: got,
        ..
    } = schedule("cosine")
    else {
        panic!("cosine is discrete")
    };
    for i in [0, 500, 999] {
        assert!(
            rel_err(got[i], want[i]) <= 1e-12,
            "cosine ᾱ[{i}] = {} vs {}",
            got[i],
            want[i]
        );
    }
}

#[test]
fn timesteps_match_diffusers_spacings() {
    let r = reference();
    assert_eq!(r.timesteps.len(), 10);
    for case in &r.timesteps {
        let got = discrete_timesteps(N_TRAIN, case.steps, spacing(&case.spacing)).unwrap();
        assert_eq!(
            got, case.timesteps,
            "{} spacing, {} steps",
            case.spacing, case.steps
        );
        // The grid adds the clean end (−1) after the last timestep.
        let grid =
            Grid::discrete(&schedule("ddpm-linear"), case.steps, spacing(&case.spacing)).unwrap();
        let grid_t: Vec<f64> = grid.points.iter().map(|p| p.t).collect();
        let mut want: Vec<f64> = case.timesteps.iter().map(|&t| t as f64).collect();
        want.push(-1.0);
        assert_eq!(
            grid_t, want,
            "{} spacing, {} steps: grid",
            case.spacing, case.steps
        );
        let last = grid.points.last().unwrap();
        assert_eq!((last.alpha, last.sigma), (1.0, 0.0));
    }
}

#[test]
fn continuous_schedules_match_reference() {
    let r = reference();
    let mut checked = 0;
    for (name, points) in &r.continuous {
        let sched = schedule(name);
        assert!(!sched.is_discrete(), "{name}");
        for p in points {
            let (alpha, sigma) = sched.alpha_sigma(p.t);
            assert!(
                rel_err(alpha, p.alpha) <= 1e-12,
                "{name} α({}) = {alpha} vs {}",
                p.t,
                p.alpha
            );
            assert!(
                rel_err(sigma, p.sigma) <= 1e-12,
                "{name} σ({}) = {sigma} vs {}",
                p.t,
                p.sigma
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8 + 5, "ou at 8 times, vp-linear at 5");
}

#[test]
fn paper_grid_matches_reference() {
    let r = reference();
    let g = &r.paper_grid;
    assert_eq!(g.schedule, "ou");
    assert_eq!(
        g.steps, 322,
        "docs/algorithms.md: the ou paper grid with T = 10, δ = 1e-3, κ = 0.05 has 322 steps"
    );
    assert_eq!(g.times.len(), g.steps + 1);
    let sched = schedule(&g.schedule);
    let grid = Grid::paper(&sched, g.kappa, g.horizon, g.eta).unwrap();
    assert_eq!(grid.steps(), g.steps, "paper grid step count");
    for (j, (p, &want)) in grid.points.iter().zip(&g.times).enumerate() {
        assert!(
            (p.t - want).abs() <= 1e-12,
            "paper grid point {j}: {} vs {want}",
            p.t
        );
        let (alpha, sigma) = sched.alpha_sigma(want);
        assert!(
            rel_err(p.alpha, alpha) <= 1e-12 && rel_err(p.sigma, sigma) <= 1e-12,
            "point {j}: α, σ"
        );
    }
    assert_eq!(grid.points[0].t, 10.0);
    assert_eq!(
        grid.points.last().unwrap().t,
        1e-3,
        "the last point lands exactly on δ"
    );
}

fn rule_by_name(name: &str) -> StepRule {
    match name {
        "ddim(0)" => StepRule::Ddim { eta: 0.0 },
        "ddim(1)" => StepRule::Ddim { eta: 1.0 },
        "exp-sde" => StepRule::ExpSde,
        "exp-ode" => StepRule::ExpOde,
        other => panic!("unknown rule `{other}` in the reference"),
    }
}

#[test]
fn step_tables_match_reference() {
    let r = reference();
    let ou = schedule("ou");
    let paper = Grid::paper(
        &ou,
        r.paper_grid.kappa,
        r.paper_grid.horizon,
        r.paper_grid.eta,
    )
    .unwrap();
    let ddpm50 = Grid::discrete(&schedule("ddpm-linear"), 50, Spacing::Leading).unwrap();
    assert_eq!(r.step_tables.len(), 8);
    let mut rows = 0;
    for case in &r.step_tables {
        let grid = match case.grid.as_str() {
            "paper-ou" => &paper,
            "ddpm-linear-leading-50" => &ddpm50,
            other => panic!("unknown grid `{other}` in the reference"),
        };
        assert_eq!(grid.steps(), case.steps, "{}", case.grid);
        let table = StepTable::new(grid, rule_by_name(&case.rule), ModelOutput::Epsilon).unwrap();
        for row in &case.rows {
            for (what, got, want) in [
                ("a", table.a[row.j], row.a),
                ("b", table.b[row.j], row.b),
                ("c", table.c[row.j], row.c),
            ] {
                let tol = 1e-10 * want.abs() + 1e-13;
                assert!(
                    (got - want).abs() <= tol,
                    "{} {} step {}: {what} = {got:e}, reference {want:e} (diff {:e})",
                    case.grid,
                    case.rule,
                    row.j,
                    (got - want).abs()
                );
            }
            rows += 1;
        }
    }
    assert_eq!(rows, 4 * 10 + 4 * 50);
}

#[test]
fn ddim1_steps_equal_diffusers_ddpm_steps() {
    let r = reference();
    assert_eq!(r.ddpm_steps.len(), 4);
    for case in &r.ddpm_steps {
        let worst = max_step_error(case, StepRule::Ddim { eta: 1.0 }, |s| {
            s.ddpm.as_ref().expect("ddpm output")
        });
        assert!(
            worst <= 1e-10,
            "{} {} {}: ddim(1) vs DDPMScheduler.step, error {worst:e}",
            case.schedule,
            case.spacing,
            case.steps
        );
    }
}

#[test]
fn ddpm_rule_name_is_ddim1() {
    let r = reference();
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let worst = max_step_error(&r.ddpm_steps[0], rule, |s| {
        s.ddpm.as_ref().expect("ddpm output")
    });
    assert!(
        worst <= 1e-10,
        "`ddpm` rule vs DDPMScheduler.step: {worst:e}"
    );
    let rule = StepRule::from_name("ddim", None).unwrap();
    let worst = max_step_error(&r.ddim_steps[0], rule, |s| {
        s.ddim.as_ref().expect("ddim output")
    });
    assert!(
        worst <= 1e-10,
        "`ddim` rule vs DDIMScheduler.step: {worst:e}"
    );
}

#[test]
fn ddim0_steps_equal_diffusers_ddim_steps() {
    let r = reference();
    assert_eq!(r.ddim_steps.len(), 4);
    for case in &r.ddim_steps {
        let worst = max_step_error(case, StepRule::Ddim { eta: 0.0 }, |s| {
            s.ddim.as_ref().expect("ddim output")
        });
        assert!(
            worst <= 1e-10,
            "{} {} {}: ddim(0) vs DDIMScheduler.step, error {worst:e}",
            case.schedule,
            case.spacing,
            case.steps
        );
    }
}

#[test]
fn ddim_eta_half_equals_diffusers_ddim_step() {
    let r = reference();
    assert_eq!(r.ddim_eta05.len(), 1);
    for case in &r.ddim_eta05 {
        let eta = case.eta.expect("eta of the ddim_eta05 case");
        assert_eq!(eta, 0.5);
        let worst = max_step_error(case, StepRule::Ddim { eta }, |s| {
            s.ddim.as_ref().expect("ddim output")
        });
        assert!(
            worst <= 1e-10,
            "{} {} {}: ddim(0.5) vs DDIMScheduler.step, error {worst:e}",
            case.schedule,
            case.spacing,
            case.steps
        );
    }
}

#[test]
fn reference_steps_discriminate_between_rules() {
    // The comparisons above are only meaningful if the wrong rule fails them: DDPM and DDIM outputs
    // differ far beyond the tolerance on every case, and so does the other rule's table.
    let r = reference();
    for (ddpm_case, ddim_case) in r.ddpm_steps.iter().zip(&r.ddim_steps) {
        let ddpm_vs_ddim = max_step_error(ddpm_case, StepRule::Ddim { eta: 0.0 }, |s| {
            s.ddpm.as_ref().unwrap()
        });
        assert!(
            ddpm_vs_ddim > 1e-4,
            "{} {}: ddim(0) should not match DDPM steps ({ddpm_vs_ddim:e})",
            ddpm_case.schedule,
            ddpm_case.spacing
        );
        let ddim_vs_ddpm = max_step_error(ddim_case, StepRule::Ddim { eta: 1.0 }, |s| {
            s.ddim.as_ref().unwrap()
        });
        assert!(
            ddim_vs_ddpm > 1e-4,
            "{} {}: ddim(1) should not match DDIM steps ({ddim_vs_ddpm:e})",
            ddim_case.schedule,
            ddim_case.spacing
        );
        let sde = max_step_error(ddpm_case, StepRule::ExpSde, |s| s.ddpm.as_ref().unwrap());
        assert!(
            sde > 1e-6,
            "{} {}: exp-sde should not match DDPM steps ({sde:e})",
            ddpm_case.schedule,
            ddpm_case.spacing
        );
    }
}
