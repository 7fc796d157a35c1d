//! LeRobot's Diffusion Policy denoiser (`DiffusionConditionalUnet1d`), loaded from a policy
//! directory as `DiffusionPolicy.save_pretrained` writes it ([`DiffusionPolicy::from_dir`]).
//!
//! A state is an action chunk of `horizon × action_dim` values in LeRobot's `(T, A)` layout, which
//! is the channels-last tensor the ops work on (`crate::backend::ops`). The forward, per row, with
//! E = `diffusion_step_embed_dim`, G = the global conditioning width and levels d_0 … d_{L−1}:
//!
//! ```text
//! temb = Linear(4E→E) · mish(Linear(E→4E) · sinusoidal_E(t))
//! cond = mish([temb | global_cond])                     (cond_encoder's leading Mish, shared)
//! h = x;  for each level i: h = Res(h, d_i), Res(h, d_i); skip_i = h; h = Down(h) unless last
//! h = Res(h), Res(h)                                    (middle, d_{L−1})
//! for i = L−1 … 1: h = Res([h | skip_i], d_{i−1}), Res(h, d_{i−1}); h = Up(h)
//! out = Conv1x1(d_0→A) · ConvBlock(d_0→d_0)(h)
//! Res(x, c):  y = ConvBlock(x→c); y = FiLM(y, Linear(cond)); y = ConvBlock(y→c); y + R(x)
//! ConvBlock:  conv (k, padding k/2) → GroupNorm(n_groups, eps 1e-5) → Mish
//! FiLM:       s·y + b with (s, b) = the Linear's two halves, or y + b without scale modulation
//! ```
//!
//! R is a 1×1 convolution when the channels change, else the identity. The first level's skip is
//! never used (as upstream). Per-sample conditioning comes from the run ([`ScoreModel::set_condition`]):
//! row r of an evaluation is sample `r % batch`.

mod config;
mod load;
mod weights;

pub use config::{DpScheduler, Features, SchedulerType, MAX_POLICY_BYTES};
pub use weights::{ConvBlock, DownLevel, MapWeights, ResBlock, UnetWeights, UpLevel};

use crate::backend::ops::{HostTensor, Input, Ops, Output};
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::ModelOutput;
use crate::Field;

/// Rows evaluated together (bounds the workspace; each chunk's GEMMs are parallel inside).
pub const EVAL_ROWS: usize = 256;

/// The U-Net's architecture, as read from a policy's config.json and checked against its tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnetConfig {
    /// Action dimension A (channels of the state).
    pub action_dim: usize,
    /// Horizon T (positions of the state).
    pub horizon: usize,
    /// Channels per level.
    pub down_dims: Vec<usize>,
    /// Kernel size of the conv blocks (odd).
    pub kernel_size: usize,
    /// GroupNorm groups.
    pub n_groups: usize,
    /// Width E of the diffusion-step embedding.
    pub step_embed_dim: usize,
    /// FiLM with scale and bias (true) or bias only.
    pub film_scale: bool,
    /// Width G of the global conditioning.
    pub global_cond_dim: usize,
}

impl UnetConfig {
    /// Width of the conditioning vector `[temb | global_cond]`.
    pub fn cond_dim(&self) -> usize {
        self.step_embed_dim + self.global_cond_dim
    }

    /// Positions at level i.
    fn len_at(&self, level: usize) -> usize {
        self.horizon >> level
    }

    /// The largest `len × ch` of any activation, and the skip sizes per level.
    fn activation_sizes(&self) -> (usize, Vec<usize>) {
        let d = &self.down_dims;
        let mut most = self.horizon * self.action_dim.max(d[0]);
        let mut skips = vec![0; d.len()];
        for (i, &c) in d.iter().enumerate() {
            most = most.max(self.len_at(i) * c);
            if i > 0 {
                skips[i] = self.len_at(i) * c;
                // decoder: blocks at len_i with d_{i−1} channels, then upsampled to len_{i−1}.
                most = most.max(self.len_at(i) * d[i - 1]);
                most = most.max(self.len_at(i - 1) * d[i - 1]);
            }
        }
        (most, skips)
    }
}

/// A Diffusion Policy loaded from a LeRobot policy directory: the U-Net and its scheduler.
#[derive(Debug, Clone)]
pub struct DiffusionPolicy {
    /// The architecture.
    pub config: UnetConfig,
    /// The scheduler settings of the checkpoint (callers may override any of them).
    pub scheduler: DpScheduler,
    /// What the checkpoint's config names as inputs, for `info` and error messages.
    pub features: Features,
    /// Tensors of the checkpoint outside the U-Net (an image encoder, normalisation buffers).
    pub other_tensors: Vec<String>,
    weights: UnetWeights<HostTensor>,
}

/// Scratch of one U-Net run on backend `B`: its resident weights, the conditioning and activations.
pub struct UnetWorkspace<B: Ops> {
    w: UnetWeights<B::Weight>,
    rows: usize,
    cond: Option<(B::Buf, usize)>,
    emb: B::Buf,
    thid: B::Buf,
    temb: B::Buf,
    mcond: B::Buf,
    film: B::Buf,
    acts: [B::Buf; 3],
    skips: Vec<B::Buf>,
    col: B::Buf,
    tmp: B::Buf,
}

/// `acts[i]` to read and the other two to write, in a fixed order.
fn three<T>(acts: &mut [T; 3], i: usize) -> (&T, &mut T, &mut T) {
    let [a, b, c] = acts;
    match i {
        0 => (a, b, c),
        1 => (b, c, a),
        _ => (c, a, b),
    }
}

fn inp<Buf>(buf: &Buf, ch: usize) -> Input<'_, Buf> {
    Input { buf, off: 0, ch }
}

fn outp<Buf>(buf: &mut Buf) -> Output<'_, Buf> {
    Output { buf, off: 0 }
}

/// Scratch a residual block writes besides its output.
struct BlockScratch<'a, Buf> {
    mcond: &'a Buf,
    film: &'a mut Buf,
    col: &'a mut Buf,
    mid: &'a mut Buf,
}

impl DiffusionPolicy {
    /// The U-Net's parameters (host tensors in the canonical layouts of `crate::backend::ops`).
    pub fn weights(&self) -> &UnetWeights<HostTensor> {
        &self.weights
    }

    /// Values of all the U-Net's parameter tensors together.
    pub fn weight_values(&self) -> usize {
        let mut total = 0usize;
        let _ = self.weights.map(&mut |t| {
            total = total.saturating_add(t.len());
            Ok(())
        });
        total
    }

    /// One residual block over `inputs` (`len` positions) into `out`.
    #[allow(clippy::too_many_arguments)]
    fn res_block<B: Ops>(
        &self,
        be: &B,
        blk: &ResBlock<B::Weight>,
        n: usize,
        len: usize,
        inputs: &[Input<'_, B::Buf>],
        s: BlockScratch<'_, B::Buf>,
        out: &mut B::Buf,
    ) -> Result<()> {
        let cd = self.config.cond_dim();
        be.conv1d(&blk.conv1.conv, n, len, inputs, s.col, outp(s.mid))?;
        be.group_norm_mish(&blk.conv1.norm, n, len, outp(s.mid))?;
        be.linear(&blk.film, n, inp(s.mcond, cd), outp(s.film))?;
        let fw = blk.film.out_dim;
        be.film(
            n,
            len,
            blk.cout,
            self.config.film_scale,
            inp(s.film, fw),
            fw,
            outp(s.mid),
        )?;
        be.conv1d(
            &blk.conv2.conv,
            n,
            len,
            &[inp(s.mid, blk.cout)],
            s.col,
            outp(out),
        )?;
        be.group_norm_mish(&blk.conv2.norm, n, len, outp(out))?;
        let count = n * len * blk.cout;
        match &blk.residual {
            Some(rc) => {
                be.conv1d(rc, n, len, inputs, s.col, outp(s.mid))?;
                be.add(count, inp(s.mid, blk.cout), outp(out))
            }
            None => be.add(count, inputs[0], outp(out)),
        }
    }

    /// The forward of `n ≤ ws.rows` rows: states at `x[x_off..]`, model times at `times[r0..]`
    /// (r0 is also the rows' ring index for the conditioning), outputs to `out[out_off..]`.
    #[allow(clippy::too_many_arguments)]
    fn forward<B: Ops>(
        &self,
        be: &B,
        ws: &mut UnetWorkspace<B>,
        x: &B::Buf,
        x_off: usize,
        times: &B::Buf,
        r0: usize,
        n: usize,
        out: &mut B::Buf,
        out_off: usize,
    ) -> Result<()> {
        let c = &self.config;
        let e = c.step_embed_dim;
        let Some((cond, batch)) = &ws.cond else {
            return Err(Error::config(
                Field::Cond,
                format!(
                    "this policy needs its global conditioning ({} values per sample)",
                    c.global_cond_dim
                ),
            ));
        };
        let w = &ws.w;
        let times = Input {
            buf: times,
            off: r0,
            ch: 1,
        };
        be.sinusoidal(e, n, times, outp(&mut ws.emb))?;
        be.linear(&w.time1, n, inp(&ws.emb, e), outp(&mut ws.thid))?;
        be.mish(n * 4 * e, outp(&mut ws.thid))?;
        be.linear(&w.time2, n, inp(&ws.thid, 4 * e), outp(&mut ws.temb))?;
        let g = c.global_cond_dim;
        be.concat_cond(
            n,
            e,
            inp(&ws.temb, e),
            g,
            inp(cond, g),
            r0,
            *batch,
            outp(&mut ws.mcond),
        )?;
        be.mish(n * c.cond_dim(), outp(&mut ws.mcond))?;

        let levels = c.down_dims.len();
        let mut cur: Option<usize> = None; // None: the input x
        let mut ch = c.action_dim;
        for (i, level) in w.down.iter().enumerate() {
            let len = c.len_at(i);
            for blk in &level.blocks {
                let src = cur.unwrap_or(2);
                let (a, mid, dst) = three(&mut ws.acts, src);
                let input = match cur {
                    Some(_) => Input { buf: a, off: 0, ch },
                    None => Input {
                        buf: x,
                        off: x_off,
                        ch,
                    },
                };
                let s = BlockScratch {
                    mcond: &ws.mcond,
                    film: &mut ws.film,
                    col: &mut ws.col,
                    mid,
                };
                self.res_block(be, blk, n, len, &[input], s, dst)?;
                cur = Some((src + 2) % 3);
                ch = blk.cout;
            }
            let h = cur.expect("a level has blocks");
            if i > 0 {
                be.copy(&ws.acts[h], 0, &mut ws.skips[i], 0, n * len * ch)?;
            }
            if let Some(down) = &level.down {
                let (a, _, dst) = three(&mut ws.acts, h);
                be.conv1d(down, n, len, &[inp(a, ch)], &mut ws.col, outp(dst))?;
                cur = Some((h + 2) % 3);
            }
        }
        let deep = c.len_at(levels - 1);
        for blk in &w.mid {
            let src = cur.expect("the encoder ran");
            let (a, mid, dst) = three(&mut ws.acts, src);
            let s = BlockScratch {
                mcond: &ws.mcond,
                film: &mut ws.film,
                col: &mut ws.col,
                mid,
            };
            self.res_block(be, blk, n, deep, &[inp(a, ch)], s, dst)?;
            cur = Some((src + 2) % 3);
        }
        for (u, level) in w.up.iter().enumerate() {
            let i = levels - 1 - u;
            let len = c.len_at(i);
            for (b, blk) in level.blocks.iter().enumerate() {
                let src = cur.expect("the encoder ran");
                let (a, mid, dst) = three(&mut ws.acts, src);
                let s = BlockScratch {
                    mcond: &ws.mcond,
                    film: &mut ws.film,
                    col: &mut ws.col,
                    mid,
                };
                if b == 0 {
                    let inputs = [inp(a, ch), inp(&ws.skips[i], c.down_dims[i])];
                    self.res_block(be, blk, n, len, &inputs, s, dst)?;
                } else {
                    self.res_block(be, blk, n, len, &[inp(a, ch)], s, dst)?;
                }
                cur = Some((src + 2) % 3);
                ch = blk.cout;
            }
            let h = cur.expect("a level has blocks");
            let (a, _, dst) = three(&mut ws.acts, h);
            be.conv_transpose1d(&level.up, n, len, inp(a, ch), &mut ws.tmp, outp(dst))?;
            cur = Some((h + 2) % 3);
        }
        let h = cur.expect("the decoder ran");
        let (a, _, dst) = three(&mut ws.acts, h);
        let fb = &w.final_block;
        be.conv1d(
            &fb.conv,
            n,
            c.horizon,
            &[inp(a, ch)],
            &mut ws.col,
            outp(dst),
        )?;
        be.group_norm_mish(&fb.norm, n, c.horizon, outp(dst))?;
        let out = Output {
            buf: out,
            off: out_off,
        };
        be.conv1d(
            &w.final_conv,
            n,
            c.horizon,
            &[inp(dst, ch)],
            &mut ws.col,
            out,
        )
    }

    /// Values of each workspace buffer for `rows` rows: (emb, thid, temb, mcond, film, act, col,
    /// tmp) and the skips.
    fn workspace_sizes<B: Ops>(&self, rows: usize) -> Result<([usize; 8], Vec<usize>)> {
        let c = &self.config;
        let (act, skips) = c.activation_sizes();
        let mut col = 0;
        let mut tmp = 0;
        let mut film = 0;
        let mut visit = |blk: &ResBlock<HostTensor>, len: usize| -> Result<()> {
            for conv in [&blk.conv1.conv, &blk.conv2.conv]
                .into_iter()
                .chain(&blk.residual)
            {
                col = col.max(B::conv1d_scratch(conv.shape, rows, len)?);
            }
            film = film.max(blk.film.out_dim);
            Ok(())
        };
        let w = &self.weights;
        for (i, l) in w.down.iter().enumerate() {
            l.blocks.iter().try_for_each(|b| visit(b, c.len_at(i)))?;
        }
        let deep = c.len_at(c.down_dims.len() - 1);
        w.mid.iter().try_for_each(|b| visit(b, deep))?;
        for (u, l) in w.up.iter().enumerate() {
            let len = c.len_at(c.down_dims.len() - 1 - u);
            l.blocks.iter().try_for_each(|b| visit(b, len))?;
            tmp = tmp.max(B::conv_transpose1d_scratch(l.up.shape, rows, len));
        }
        for (i, l) in w.down.iter().enumerate() {
            if let Some(d) = &l.down {
                col = col.max(B::conv1d_scratch(d.shape, rows, c.len_at(i))?);
            }
        }
        col = col.max(B::conv1d_scratch(
            w.final_block.conv.shape,
            rows,
            c.horizon,
        )?);
        let e = c.step_embed_dim;
        let sizes = [e, 4 * e, e, c.cond_dim(), film, act, col, tmp].map(|v| v * rows);
        Ok((sizes, skips.into_iter().map(|s| s * rows).collect()))
    }
}

impl<B: Ops> ScoreModel<B> for DiffusionPolicy {
    type Workspace = UnetWorkspace<B>;

    fn dim(&self) -> usize {
        self.config.horizon * self.config.action_dim
    }

    fn output(&self) -> ModelOutput {
        self.scheduler.prediction
    }

    fn cond_dim(&self) -> usize {
        self.config.global_cond_dim
    }

    /// The activation buffers of [`Self::workspace`], from the same sizing function, plus the
    /// weights on a backend that uploads them (they are shared, not copied, on the CPU).
    fn workspace_bytes(&self, max_rows: usize) -> usize {
        let rows = max_rows.clamp(1, EVAL_ROWS);
        match self.workspace_sizes::<B>(rows) {
            Ok((sizes, skips)) => {
                let mut values =
                    sizes.iter().sum::<usize>() + 2 * sizes[5] + skips.iter().sum::<usize>();
                if B::UPLOADS_WEIGHTS {
                    values = values.saturating_add(self.weight_values());
                }
                values.saturating_mul(4)
            }
            Err(_) => usize::MAX,
        }
    }

    /// True on a backend whose ops only enqueue device work: an evaluation then has no host
    /// synchronisation or host state beyond what the run fixes (the conditioning, the chunking).
    fn recordable(&self) -> bool {
        B::ENQUEUES_ONLY
    }

    fn workspace(&self, backend: &B, max_rows: usize) -> Result<UnetWorkspace<B>> {
        let rows = max_rows.clamp(1, EVAL_ROWS);
        let ([emb, thid, temb, mcond, film, act, col, tmp], skips) =
            self.workspace_sizes::<B>(rows)?;
        Ok(UnetWorkspace {
            w: self.weights.map(&mut |t| backend.weight(t))?,
            rows,
            cond: None,
            emb: backend.alloc(emb)?,
            thid: backend.alloc(thid)?,
            temb: backend.alloc(temb)?,
            mcond: backend.alloc(mcond)?,
            film: backend.alloc(film)?,
            acts: [
                backend.alloc(act)?,
                backend.alloc(act)?,
                backend.alloc(act)?,
            ],
            skips: skips
                .iter()
                .map(|&s| backend.alloc(s))
                .collect::<Result<_>>()?,
            col: backend.alloc(col)?,
            tmp: backend.alloc(tmp)?,
        })
    }

    fn set_condition(
        &self,
        backend: &B,
        ws: &mut UnetWorkspace<B>,
        cond: &[f32],
        batch: usize,
    ) -> Result<()> {
        let g = self.config.global_cond_dim;
        if batch == 0 || cond.len() != batch * g {
            return Err(Error::shape(
                "cond",
                format!(
                    "the policy's global conditioning must be [{batch}, {g}] ({}), got {} values",
                    self.features.describe(g),
                    cond.len()
                ),
            ));
        }
        if let Some(i) = cond.iter().position(|v| !v.is_finite()) {
            return Err(Error::shape(
                "cond",
                format!("value {i} is {} (conditioning must be finite)", cond[i]),
            ));
        }
        ws.cond = Some((backend.upload(cond)?, batch));
        Ok(())
    }

    fn eval(
        &self,
        backend: &B,
        ws: &mut UnetWorkspace<B>,
        x: &B::Buf,
        times: &B::Buf,
        row0: usize,
        rows: usize,
        out: &mut B::Buf,
    ) -> Result<()> {
        let dim = <Self as ScoreModel<B>>::dim(self);
        let mut done = 0;
        while done < rows {
            let n = (rows - done).min(ws.rows);
            let r = row0 + done;
            self.forward(backend, ws, x, r * dim, times, r, n, out, r * dim)?;
            done += n;
        }
        Ok(())
    }
}
