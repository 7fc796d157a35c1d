//! Sample-quality measures against a known target: exact mixture samples and the sliced
//! Wasserstein-2 distance; and per-sample deviation between two samplers' outputs.

use crate::model::Mixture;
use crate::rng;

impl Mixture {
    /// The 2-D, 2-component mixture of `examples/mixture_2d.json` (weights 0.3, 0.7; the one
    /// definition: the demo and the tests use it, `tools/make_mixtures.py` writes the file from
    /// the same numbers and `tests/cli.rs` checks that they agree).
    pub fn example_2d() -> Mixture {
        Mixture::new(
            vec![0.3, 0.7],
            vec![vec![-2.0, 1.0], vec![1.5, -1.0]],
            vec![0.4, 0.6],
        )
        .expect("a valid mixture")
    }

    /// The 64-D, 8-component mixture of `examples/mixture_64d.json`: weights 1 + k/4, means
    /// 1.5·(((7k + 3j) mod 11)/5 − 1), stds 0.3 + 0.05k (as [`Mixture::example_2d`]).
    pub fn example_64d() -> Mixture {
        let (k, d) = (8, 64);
        let weights: Vec<f64> = (0..k).map(|i| 1.0 + i as f64 * 0.25).collect();
        let means: Vec<Vec<f64>> = (0..k)
            .map(|i| {
                (0..d)
                    .map(|j| 1.5 * (((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0))
                    .collect()
            })
            .collect();
        let stds: Vec<f64> = (0..k).map(|i| 0.3 + 0.05 * i as f64).collect();
        Mixture::new(weights, means, stds).expect("a valid mixture")
    }

    /// The benchmark mixture of `picardiff bench` and the scaling study: `k` components with weights
    /// 1, 2, …, k, means drawn N(0, 1) per coordinate (Philox seed 2024, tag 7, sample = component)
    /// and std 0.5, in `dim` dimensions. Deterministic.
    pub fn benchmark(k: usize, dim: usize) -> crate::Result<Mixture> {
        let oom = || {
            crate::Error::model(
                "means",
                format!("cannot allocate {k} means of {dim} values"),
            )
        };
        let means = (0..k)
            .map(|i| {
                let mut m = Vec::new();
                m.try_reserve_exact(dim).map_err(|_| oom())?;
                m.resize(dim, 0f32);
                rng::fill_normal(2024, 0, i as u32, 7, &mut m);
                let mut row = Vec::new();
                row.try_reserve_exact(dim).map_err(|_| oom())?;
                row.extend(m.into_iter().map(f64::from));
                Ok(row)
            })
            .collect::<crate::Result<Vec<Vec<f64>>>>()?;
        Mixture::new((1..=k).map(|i| i as f64).collect(), means, vec![0.5; k])
    }

    /// `n` exact samples of the mixture pushed forward to a point with (α, σ):
    /// `α μ_k + sqrt(α² s_k² + σ²) z`, component k drawn by weight. Deterministic in `seed`
    /// (Philox, a stream separate from the samplers').
    pub fn sample_exact(&self, n: usize, alpha: f64, sigma: f64, seed: u64) -> Vec<f32> {
        const TAG_EXACT: u32 = 0x5eed;
        let d = self.dim;
        let mut out = vec![0f32; n * d];
        for (i, row) in out.chunks_mut(d).enumerate() {
            let w = rng::philox4x32_10(
                [i as u32, 0, 0, TAG_EXACT + 2],
                [seed as u32, (seed >> 32) as u32],
            )[0];
            let target = (w as f64 + 0.5) / 4294967296.0;
            let mut acc = 0.0;
            let k = self.weights.iter().position(|&wk| {
                acc += wk;
                target < acc
            });
            let k = k.unwrap_or(self.components() - 1);
            let spread = (alpha * alpha * self.stds[k] * self.stds[k] + sigma * sigma).sqrt();
            rng::fill_normal(seed, 0, i as u32, TAG_EXACT, row);
            for (v, &m) in row.iter_mut().zip(self.mean(k)) {
                *v = (alpha * m + spread * *v as f64) as f32;
            }
        }
        out
    }
}

/// Sliced Wasserstein-2 distance between two equal-size sample sets (`[n][dim]` row-major), averaged
/// over `projections` random directions (deterministic in `seed`).
pub fn sliced_wasserstein(a: &[f32], b: &[f32], dim: usize, projections: usize, seed: u64) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "sliced_wasserstein needs equal sample counts"
    );
    let n = a.len() / dim;
    let mut dir = vec![0f32; dim];
    let (mut pa, mut pb) = (vec![0f64; n], vec![0f64; n]);
    let mut total = 0.0;
    for p in 0..projections {
        rng::fill_normal(seed, p as u32, 0, 0x51, &mut dir);
        let norm = dir.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        let proj = |x: &[f32], out: &mut [f64]| {
            for (o, row) in out.iter_mut().zip(x.chunks(dim)) {
                *o = row
                    .iter()
                    .zip(&dir)
                    .map(|(&xi, &di)| xi as f64 * di as f64)
                    .sum::<f64>()
                    / norm;
            }
            out.sort_by(f64::total_cmp);
        };
        proj(a, &mut pa);
        proj(b, &mut pb);
        total += pa
            .iter()
            .zip(&pb)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / n as f64;
    }
    (total / projections as f64).sqrt()
}

/// Per-sample deviation of `a` from `b` (both `[batch][dim]`): the largest |a − b| of each sample.
pub fn per_sample_deviation(a: &[f32], b: &[f32], dim: usize) -> Vec<f32> {
    a.chunks(dim.max(1))
        .zip(b.chunks(dim.max(1)))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max)
        })
        .collect()
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `values`, interpolated linearly between the two nearest ranks
/// (numpy's default `np.percentile(values, 100 q)`; 0 for none).
pub fn quantile(values: &[f32], q: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (f64::from(v[lo]), f64::from(v[hi]));
    (a + (b - a) * (pos - lo as f64)) as f32
}

/// How far one sampler's samples are from another's (`compare`'s figures): over the per-sample
/// deviations ([`per_sample_deviation`]), their median, 90th percentile ([`quantile`]) and maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// The median per-sample deviation.
    pub p50: f32,
    /// The 90th-percentile per-sample deviation.
    pub p90: f32,
    /// The largest |a − b| over every element (the largest per-sample deviation).
    pub max: f32,
}

impl Deviation {
    /// The deviation of `a` from `b`, both `[batch][dim]`.
    pub fn of(a: &[f32], b: &[f32], dim: usize) -> Deviation {
        let dev = per_sample_deviation(a, b, dim);
        Deviation {
            p50: quantile(&dev, 0.5),
            p90: quantile(&dev, 0.9),
            max: dev.iter().copied().fold(0.0, f32::max),
        }
    }

    /// The stats JSON's keys: `max_abs_diff`, `deviation_p50`, `deviation_p90`, `deviation_max`
    /// (= `max_abs_diff`).
    pub fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("max_abs_diff".into(), self.max.into());
        m.insert("deviation_p50".into(), self.p50.into());
        m.insert("deviation_p90".into(), self.p90.into());
        m.insert("deviation_max".into(), self.max.into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::{per_sample_deviation, quantile, Deviation};

    #[test]
    fn deviation_quantiles() {
        let a = [0.0, 0.0, 1.0, 0.0, 0.0, 3.0];
        let b = [0.5, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(per_sample_deviation(&a, &b, 2), vec![0.5, 1.0, 3.0]);
        // numpy: np.percentile([4, 1, 3, 2], [50, 90, 0, 100]) = [2.5, 3.7, 1, 4].
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.9) - 3.7).abs() < 1e-6);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        let d = Deviation::of(&a, &b, 2);
        assert_eq!((d.p50, d.max), (1.0, 3.0));
        assert!((d.p90 - 2.6).abs() < 1e-6);
        assert_eq!(d.json()["max_abs_diff"], 3.0);
    }
}
