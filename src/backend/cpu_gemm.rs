//! The CPU backend's GEMM against a resident weight: `out[m×n] += lhs[m×k] · rhs[k×n]`, all three
//! row-major and dense, `rhs` read where it lies (no packing).
//!
//! Why not a crate's GEMM: Picard's fixed point must equal the sequential sampler bit for bit, so
//! an output element's bits may not depend on how many rows a call has, where its row is, or how
//! the call is split over threads (batch invariance). The `gemm` crate picks its K blocking from
//! m and n, so its sums change with the row count; `matrixmultiply` keeps its K blocks fixed but
//! packs both operands into panels on every call, and for a Diffusion Policy step at batch 1
//! (4–16 rows against weight matrices of 0.3–21 MB, 254 MB in all for LeRobot's low-dim U-Net)
//! copying the weight is most of the work. Here every output element is **one fused
//! multiply-add chain over k in ascending order, starting from its value in `out`**; the blocking
//! below only decides when a partial sum is parked in `out` and picked up again (an exact f32
//! store and load), so the bits are the same for any m, any block sizes and any thread split.
//!
//! Blocking: rows in blocks of [`MB`] (their slice of `out` stays in cache while the weight
//! streams past once per block), `k` in chunks of [`KC`] or [`KC_FEW`] (that many rows of `rhs`
//! are read as parallel sequential streams, prefetched [`PREFETCH_ROWS`] rows ahead), and tiles
//! of at most [`MR`] rows × [`NB`] columns whose sums live in registers for one chunk. The tile
//! body is plain Rust over `f32::mul_add` arrays, compiled twice: with AVX2+FMA (chosen at run
//! time when the CPU has them) and for the baseline target; both give the same bits, because a
//! fused multiply-add is exactly rounded however it is done.

use rayon::prelude::*;

/// Columns per tile: two 8-lane vectors.
const NB: usize = 16;
/// Rows per tile (12 vector sums, 2 weight vectors and a broadcast: 15 of AVX2's 16 registers).
const MR: usize = 6;
/// `k` values per pass over a tile when a row block has more than [`FEW_ROWS`] rows (its tiles
/// reuse each chunk of `rhs` from cache, and longer passes park the sums less often).
const KC: usize = 16;
/// `k` values per pass when a row block has at most [`FEW_ROWS`] rows: the weight streams from
/// memory once, and fewer rows of it at a time are fewer concurrent streams.
const KC_FEW: usize = 4;
/// Row blocks of at most this many rows use [`KC_FEW`] (a batch-1 Diffusion Policy's deeper
/// levels: 4–8 rows).
const FEW_ROWS: usize = 2 * MR;
/// How many rows of `rhs` ahead of the one it reads a tile asks the cache for.
const PREFETCH_ROWS: usize = 8;
/// Rows per block (a multiple of [`MR`]).
const MB: usize = 48;
/// Multiply-adds below which a call runs on the calling thread.
const PARALLEL_FLOPS: usize = 1 << 18;

/// A raw output pointer shared by tasks that write disjoint blocks of it (this GEMM's and the
/// linear layers' in `cpu_ops`).
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: every task writes a block of the output no other task touches (see the GEMMs).
unsafe impl Send for OutPtr {}
// SAFETY: as for `Send`: the tasks sharing it write disjoint blocks.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// One task's share of a call: rows `r0..r1` and columns `c0..c1` of `out`.
#[derive(Clone, Copy)]
struct Task {
    r0: usize,
    r1: usize,
    c0: usize,
    c1: usize,
}

/// The operands of one call: `lhs` `[m][k]`, `rhs` `[k][n]`, `out` `[m][n]`.
#[derive(Clone, Copy)]
struct Operands {
    k: usize,
    n: usize,
    lhs: *const f32,
    rhs: *const f32,
    out: OutPtr,
}

// SAFETY: the pointers are read (lhs, rhs) or written in disjoint blocks (out) while the borrows
// they come from are held by `gemm_acc`.
unsafe impl Send for Operands {}
// SAFETY: as for `Send`.
unsafe impl Sync for Operands {}

/// `out[m×n] += lhs[m×k] · rhs[k×n]` (row-major, dense), split over the rayon pool by row blocks
/// (many rows) or column ranges (few rows); each element's bits are independent of the split and
/// of `m` (module docs).
///
/// # Panics
/// When a slice is shorter than its shape (callers check shapes and return errors first).
pub(crate) fn gemm_acc(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], out: &mut [f32]) {
    assert!(lhs.len() >= m * k && rhs.len() >= k * n && out.len() >= m * n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let ops = Operands {
        k,
        n,
        lhs: lhs.as_ptr(),
        rhs: rhs.as_ptr(),
        out: OutPtr(out.as_mut_ptr()),
    };
    let threads = rayon::current_num_threads().max(1);
    let (row_block, col_block) = if m * n * k < PARALLEL_FLOPS || threads == 1 {
        (m, n)
    } else if m >= 2 * MB * threads {
        (m.div_ceil(2 * threads).next_multiple_of(MB), n)
    } else {
        (m, n.div_ceil(threads).next_multiple_of(NB))
    };
    let col_blocks = n.div_ceil(col_block);
    let blocks = m.div_ceil(row_block) * col_blocks;
    let task = |b: usize| {
        let (r0, c0) = ((b / col_blocks) * row_block, (b % col_blocks) * col_block);
        Task {
            r0,
            r1: (r0 + row_block).min(m),
            c0,
            c1: (c0 + col_block).min(n),
        }
    };
    if blocks == 1 {
        // SAFETY: the assert bounds every index the task touches; it is the only task.
        unsafe { run(ops, task(0)) };
    } else {
        // SAFETY: as above; the tasks' blocks of `out` are disjoint.
        (0..blocks)
            .into_par_iter()
            .for_each(|b| unsafe { run(ops, task(b)) });
    }
}

/// Runs one task with the fastest tile body this CPU has.
///
/// # Safety
/// The task's rows and columns lie inside the operands' shapes, which lie inside their buffers.
unsafe fn run(ops: Operands, t: Task) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `blocked_fma` is compiled for; bounds as for `run`.
        return unsafe { blocked_fma(ops, t) };
    }
    // SAFETY: as for `run`.
    unsafe { blocked(ops, t) }
}

/// [`blocked`] compiled with AVX2 and FMA.
///
/// # Safety
/// As for [`run`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_fma(ops: Operands, t: Task) {
    // SAFETY: as for `run`.
    unsafe { blocked(ops, t) }
}

/// The blocked loop over one task (module docs).
///
/// # Safety
/// As for [`run`].
#[inline(always)]
unsafe fn blocked(ops: Operands, t: Task) {
    let Operands {
        k,
        n,
        lhs,
        rhs,
        out,
    } = ops;
    // SAFETY: every pointer formed below stays inside the task's rows, columns and k (caller).
    unsafe {
        for rb in (t.r0..t.r1).step_by(MB) {
            let rb_end = (rb + MB).min(t.r1);
            let chunk = if rb_end - rb <= FEW_ROWS { KC_FEW } else { KC };
            for kb in (0..k).step_by(chunk) {
                let kc = chunk.min(k - kb);
                // Tiles of near-equal height (8 rows: 4 + 4, not 6 + 2).
                let tiles = (rb_end - rb).div_ceil(MR);
                let (base, extra) = ((rb_end - rb) / tiles, (rb_end - rb) % tiles);
                for i in 0..tiles {
                    let rt = rb + i * base + i.min(extra);
                    let rows = base + usize::from(i < extra);
                    for ct in (t.c0..t.c1).step_by(NB) {
                        let at = Tile {
                            kc,
                            cols: NB.min(t.c1 - ct),
                            lhs: lhs.add(rt * k + kb),
                            ld_lhs: k,
                            rhs: rhs.add(kb * n + ct),
                            ld: n,
                            out: out.get().add(rt * n + ct),
                            prefetch: i == 0,
                        };
                        match rows {
                            6 => tile::<6>(at),
                            5 => tile::<5>(at),
                            4 => tile::<4>(at),
                            3 => tile::<3>(at),
                            2 => tile::<2>(at),
                            _ => tile::<1>(at),
                        }
                    }
                }
            }
        }
    }
}

/// One tile: `cols ≤ NB` columns of `R` rows over `kc` values of k.
#[derive(Clone, Copy)]
struct Tile {
    kc: usize,
    cols: usize,
    /// `lhs` at the tile's first row and chunk's first k; rows `ld_lhs` apart.
    lhs: *const f32,
    ld_lhs: usize,
    /// `rhs` at the chunk's first k and tile's first column; `out` at the tile's corner; both
    /// with rows `ld` apart.
    rhs: *const f32,
    ld: usize,
    out: *mut f32,
    /// Whether to prefetch rows of `rhs` ahead (the first tile of a row block does).
    prefetch: bool,
}

/// Asks for the cache line holding `p` (any address: a prefetch never faults).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch hint reads nothing architecturally and never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `out[R × cols] += lhs[R × kc] · rhs[kc × cols]`, each element a fused multiply-add chain in
/// ascending k from its value in `out`.
///
/// # Safety
/// The tile lies inside the operands (see [`blocked`]).
#[inline(always)]
unsafe fn tile<const R: usize>(t: Tile) {
    // SAFETY: as for this function.
    unsafe {
        if t.cols == NB {
            full_tile::<R>(t)
        } else {
            edge_tile::<R>(t)
        }
    }
}

/// [`tile`] with all [`NB`] columns: the sums stay in registers for the whole chunk.
///
/// # Safety
/// As for [`tile`].
#[inline(always)]
unsafe fn full_tile<const R: usize>(t: Tile) {
    // SAFETY: every offset is inside the tile (caller).
    unsafe {
        let mut acc = [[0f32; NB]; R];
        for (r, a) in acc.iter_mut().enumerate() {
            *a = t.out.add(r * t.ld).cast::<[f32; NB]>().read_unaligned();
        }
        for kk in 0..t.kc {
            if t.prefetch {
                prefetch(t.rhs.wrapping_add((kk + PREFETCH_ROWS) * t.ld));
                prefetch(t.rhs.wrapping_add((kk + PREFETCH_ROWS) * t.ld + NB - 1));
            }
            let b = t.rhs.add(kk * t.ld).cast::<[f32; NB]>().read_unaligned();
            for (r, a) in acc.iter_mut().enumerate() {
                let x = *t.lhs.add(r * t.ld_lhs + kk);
                for (s, w) in a.iter_mut().zip(b) {
                    *s = x.mul_add(w, *s);
                }
            }
        }
        for (r, a) in acc.into_iter().enumerate() {
            t.out.add(r * t.ld).cast::<[f32; NB]>().write_unaligned(a);
        }
    }
}

/// [`tile`] with fewer than [`NB`] columns (the last of a row), element by element.
///
/// # Safety
/// As for [`tile`].
#[inline(always)]
unsafe fn edge_tile<const R: usize>(t: Tile) {
    // SAFETY: every offset is inside the tile (caller).
    unsafe {
        for r in 0..R {
            for c in 0..t.cols {
                let o = t.out.add(r * t.ld + c);
                let mut s = *o;
                for kk in 0..t.kc {
                    s = (*t.lhs.add(r * t.ld_lhs + kk)).mul_add(*t.rhs.add(kk * t.ld + c), s);
                }
                *o = s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// The definition: one fused chain per element, ascending k, from `out`'s value.
    fn reference(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], out: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                let mut s = out[i * n + j];
                for kk in 0..k {
                    s = lhs[i * k + kk].mul_add(rhs[kk * n + j], s);
                }
                out[i * n + j] = s;
            }
        }
    }

    #[test]
    fn equals_the_fused_chain_bit_for_bit_on_awkward_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 17, 33),
            (7, 31, 16),
            (13, 16, 1),
            (49, 47, 65),
            (97, 130, 40),
            (200, 300, 50),
        ] {
            let (lhs, rhs) = (values(m * k, 1), values(k * n, 2));
            let mut want = values(m * n, 3);
            let mut got = want.clone();
            reference(m, n, k, &lhs, &rhs, &mut want);
            gemm_acc(m, n, k, &lhs, &rhs, &mut got);
            let same = want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "m {m} n {n} k {k}");
        }
    }

    #[test]
    fn a_row_has_the_same_bits_alone_and_among_many() {
        let (m, n, k) = (300, 70, 130);
        let (lhs, rhs) = (values(m * k, 4), values(k * n, 5));
        let mut all = vec![0.25; m * n];
        gemm_acc(m, n, k, &lhs, &rhs, &mut all);
        for row in [0, 5, 6, 47, 48, 299] {
            let mut one = vec![0.25; n];
            gemm_acc(1, n, k, &lhs[row * k..][..k], &rhs, &mut one);
            assert_eq!(one, all[row * n..][..n], "row {row}");
        }
    }
}
