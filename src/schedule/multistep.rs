//! Multistep rules: DPM-Solver++ (2M, 3M) as diffusers' `DPMSolverMultistepScheduler` steps,
//! written as one affine map per step in the state and the data predictions x̂0 of the step's point
//! and of the points before it (`docs/algorithms.md` §9).

use super::{Grid, GridPoint, ModelOutput, StepTable};
use crate::error::{Error, Result};
use crate::Field;

/// diffusers' `lower_order_final` threshold: grids of fewer steps end with lower-order steps.
const LOWER_ORDER_FINAL_STEPS: usize = 15;

/// The coefficients of a multistep rule's earlier points (`StepTable::multistep`).
///
/// Step j is `x_{j+1} = a_j x_j + b_j d_j + b1_j d_{j−1} + b2_j d_{j−2} + c_j z_j`, where
/// `d_m = p_m x_m + q_m o_m` is point m's direction (x̂0 for DPM-Solver++) computed from the
/// state at which the model was evaluated and its output; `d_m` for m < 0 is 0 (`b1_0 = b2_0 =
/// b2_1 = 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct MultistepTable {
    /// The rule's name (`dpmpp-2m`, `dpmpp-3m`).
    pub rule: &'static str,
    /// Earlier points a step reads (1 for 2M, 2 for 3M).
    pub history: usize,
    /// Coefficient of `d_{j−1}` in step j.
    pub b1: Vec<f64>,
    /// Coefficient of `d_{j−2}` in step j (all 0 for 2M).
    pub b2: Vec<f64>,
}

/// The order diffusers' `DPMSolverMultistepScheduler.step` uses at step `j` of `n` for
/// `solver_order = order` (`lower_order_final = True`, `euler_at_final = False`): first order at
/// the first step (warm-up) and at the last one when it lands on σ = 0 or the grid has fewer than
/// 15 steps; at most second order at the second step, and at the second-to-last of a short grid.
pub fn dpm_step_order(order: usize, j: usize, n: usize, last_sigma_zero: bool) -> usize {
    let short = n < LOWER_ORDER_FINAL_STEPS;
    if j == 0 || (j + 1 == n && (last_sigma_zero || short)) {
        1
    } else if order == 2 || j == 1 || (j + 2 == n && short) {
        2
    } else {
        3
    }
}

/// λ = log α − log σ (∞ at σ = 0).
fn lambda(p: GridPoint) -> f64 {
    p.alpha.ln() - p.sigma.ln()
}

/// `(a, b0, b1, b2)` of DPM-Solver++ step j at order `k` (midpoint form): diffusers'
/// `dpm_solver_first_order_update`, `multistep_dpm_solver_second_order_update` and
/// `..._third_order_update` for `dpmsolver++`, expanded into coefficients of the x̂0 of points
/// j, j − 1, j − 2.
fn dpm_coefficients(pts: &[GridPoint], j: usize, k: usize) -> (f64, f64, f64, f64) {
    let (t, s) = (pts[j], pts[j + 1]);
    let a = s.sigma / t.sigma;
    let h = lambda(s) - lambda(t);
    // e^{−h} − 1, exact at σ_s = 0 (h = ∞): −1.
    let em = (-h).exp_m1();
    let phi1 = -s.alpha * em;
    match k {
        1 => (a, phi1, 0.0, 0.0),
        2 => {
            let r0 = (lambda(t) - lambda(pts[j - 1])) / h;
            // D0 = m0, D1 = (m0 − m1)/r0; x' = a x + φ1 D0 + ½ φ1 D1.
            (a, phi1 * (1.0 + 0.5 / r0), -0.5 * phi1 / r0, 0.0)
        }
        _ => {
            let r0 = (lambda(t) - lambda(pts[j - 1])) / h;
            let r1 = (lambda(pts[j - 1]) - lambda(pts[j - 2])) / h;
            let phi2 = s.alpha * (em / h + 1.0);
            let phi3 = s.alpha * ((em + h) / (h * h) - 0.5);
            // D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1, D1 = D1_0 + r0 g (D1_0 − D1_1),
            // D2 = g (D1_0 − D1_1) with g = 1/(r0 + r1); x' = a x + φ1 m0 + φ2 D1 − φ3 D2.
            let g = 1.0 / (r0 + r1);
            let c10 = phi2 * (1.0 + r0 * g) - phi3 * g;
            let c11 = g * (phi3 - phi2 * r0);
            (a, phi1 + c10 / r0, -c10 / r0 + c11 / r1, -c11 / r1)
        }
    }
}

/// Fills `tab`'s a, b, c (= 0), p, q (x̂0 = p·x + q·out) and t for DPM-Solver++ of `order` over a
/// VP `grid`, and returns the coefficients of the earlier points.
pub(super) fn dpm_solver_pp(
    grid: &Grid,
    order: usize,
    output: ModelOutput,
    tab: &mut StepTable,
) -> Result<MultistepTable> {
    let name = match order {
        2 => "dpmpp-2m",
        3 => "dpmpp-3m",
        o => {
            return Err(Error::config(
                Field::Rule,
                format!("DPM-Solver++ has orders 2 and 3 here, got {o}"),
            ))
        }
    };
    let pts = &grid.points;
    let n = grid.steps();
    let last_zero = pts[n].sigma == 0.0;
    let mut ms = MultistepTable {
        rule: name,
        history: order - 1,
        b1: Vec::with_capacity(n),
        b2: Vec::with_capacity(n),
    };
    for j in 0..n {
        let k = dpm_step_order(order, j, n, last_zero);
        let (a, b0, b1, b2) = dpm_coefficients(pts, j, k);
        let (p, q) = output.to_sample(pts[j].alpha, pts[j].sigma);
        tab.a.push(a);
        tab.b.push(b0);
        tab.c.push(0.0);
        tab.p.push(p);
        tab.q.push(q);
        tab.t.push(pts[j].t);
        ms.b1.push(b1);
        ms.b2.push(b2);
    }
    if ms.b1.iter().chain(&ms.b2).any(|x| !x.is_finite()) {
        return Err(Error::config(
            Field::Grid,
            format!("the {name} step table has non-finite coefficients"),
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// diffusers' order sequence: warm-up, the final first-order step, and the short-grid
    /// second-to-last step.
    #[test]
    fn step_orders_follow_diffusers() {
        let orders = |order, n, zero| {
            (0..n)
                .map(|j| dpm_step_order(order, j, n, zero))
                .collect::<Vec<_>>()
        };
        assert_eq!(orders(2, 5, true), [1, 2, 2, 2, 1]);
        assert_eq!(orders(3, 5, true), [1, 2, 3, 2, 1]);
        assert_eq!(orders(3, 20, true), {
            let mut v = vec![1, 2];
            v.extend([3; 17]);
            v.push(1);
            v
        });
        assert_eq!(
            orders(3, 20, false)[19],
            3,
            "sigma_min, long grid: full order"
        );
        assert_eq!(orders(2, 1, true), [1]);
        assert_eq!(orders(3, 2, true), [1, 1]);
    }
}
