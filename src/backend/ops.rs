//! Tensor operations for learned models, implemented by a backend ([`Ops`]).
//!
//! A model family (the Diffusion Policy U-Net, `crate::model::unet`) writes its forward pass once
//! over these operations; each backend implements them on its own buffers. Activations are
//! **channels-last**: a tensor of `n` rows (window points × samples) of `len` positions × `ch`
//! channels is stored row-major as `[n][len][ch]` at some offset of a backend buffer, so that a
//! state of `horizon × action_dim` values (LeRobot's `(B, T, A)` layout) is such a tensor as it is.
//!
//! Weights are prepared once in a canonical layout (below), then made resident on a backend with
//! [`Ops::weight`]:
//! - [`Linear`]: PyTorch's `[out][in]`;
//! - [`Conv`]: `[k][cin][cout]` (PyTorch's `[cout][cin][k]` permuted), the right-hand matrix of the
//!   im2col GEMM `[n·len_out][k·cin] × [k·cin][cout]`;
//! - [`ConvTranspose`]: `[cin][k][cout]` (PyTorch's `[cin][cout][k]` permuted), the right-hand
//!   matrix of `[n·len][cin] × [cin][k·cout]`, whose rows are then scattered to the output;
//! - biases and norm parameters: vectors.

use std::sync::Arc;

use super::Backend;
use crate::error::{Error, Result};

/// A weight tensor in its canonical layout on the host (shared, never copied per run).
pub type HostTensor = Arc<[f32]>;

/// A fully connected layer `y = W x + b` (`weight` `[out][in]`).
#[derive(Debug, Clone)]
pub struct Linear<W> {
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
    /// `[out][in]`.
    pub weight: W,
    /// `[out]`.
    pub bias: W,
}

/// The geometry of a 1-D convolution or transposed convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels (of all concatenated inputs together).
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvShape {
    /// Output length of a convolution over `len` positions (PyTorch's formula), or an error when
    /// the kernel does not fit.
    pub fn conv_len(&self, len: usize) -> Result<usize> {
        let padded = len + 2 * self.pad;
        if self.stride == 0 || padded < self.k {
            return Err(Error::shape(
                "conv1d",
                format!(
                    "a kernel of {} (stride {}, padding {}) does not fit {len} positions",
                    self.k, self.stride, self.pad
                ),
            ));
        }
        Ok((padded - self.k) / self.stride + 1)
    }

    /// Output length of a transposed convolution over `len` positions (no output padding).
    pub fn transpose_len(&self, len: usize) -> Result<usize> {
        let full = (len.max(1) - 1) * self.stride + self.k;
        if len == 0 || full <= 2 * self.pad {
            return Err(Error::shape(
                "conv_transpose1d",
                format!("{len} positions give an empty output"),
            ));
        }
        Ok(full - 2 * self.pad)
    }
}

/// A convolution: weight `[k][cin][cout]`, bias `[cout]`.
#[derive(Debug, Clone)]
pub struct Conv<W> {
    /// Geometry.
    pub shape: ConvShape,
    /// `[k][cin][cout]`.
    pub weight: W,
    /// `[cout]`.
    pub bias: W,
}

/// A transposed convolution: weight `[cin][k][cout]`, bias `[cout]`.
#[derive(Debug, Clone)]
pub struct ConvTranspose<W> {
    /// Geometry.
    pub shape: ConvShape,
    /// `[cin][k][cout]`.
    pub weight: W,
    /// `[cout]`.
    pub bias: W,
}

/// GroupNorm over `groups` groups of `ch / groups` channels × all positions, with a per-channel
/// affine `gamma`, `beta` and `eps` (PyTorch's `nn.GroupNorm`, biased variance).
#[derive(Debug, Clone)]
pub struct GroupNorm<W> {
    /// Groups (divides `ch`).
    pub groups: usize,
    /// Channels.
    pub ch: usize,
    /// `[ch]`.
    pub gamma: W,
    /// `[ch]`.
    pub beta: W,
    /// Added to the variance.
    pub eps: f32,
}

/// One input of a convolution: `n × len × ch` channels-last at `off` of `buf`. A convolution over
/// several inputs reads their channel-wise concatenation (the U-Net's skip connections) without
/// materialising it.
#[derive(Debug)]
pub struct Input<'a, Buf> {
    /// The buffer.
    pub buf: &'a Buf,
    /// Offset of row 0.
    pub off: usize,
    /// Channels of this input.
    pub ch: usize,
}

impl<Buf> Clone for Input<'_, Buf> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Buf> Copy for Input<'_, Buf> {}

/// Where an operation writes: `buf` from offset `off`.
#[derive(Debug)]
pub struct Output<'a, Buf> {
    /// The buffer.
    pub buf: &'a mut Buf,
    /// Offset of row 0.
    pub off: usize,
}

/// The operations a backend provides for learned models (see the module docs for layouts). Every
/// method checks its buffer ranges and returns an error, never panics, on a short buffer.
pub trait Ops: Backend {
    /// A weight tensor resident on this backend.
    type Weight: Send + Sync;

    /// True when every op only enqueues device work (no host synchronisation, no host state), so
    /// that a model written over these ops may be recorded and replayed (`ScoreModel::recordable`).
    const ENQUEUES_ONLY: bool = false;
    /// True when [`Ops::weight`] copies a tensor into backend memory (a device), so that a model's
    /// workspace holds its own copy of the weights; false when it shares the host tensor (the CPU).
    const UPLOADS_WEIGHTS: bool = false;

    /// Makes a host tensor resident (the CPU shares it; a device uploads it).
    fn weight(&self, host: &HostTensor) -> Result<Self::Weight>;

    /// `out[r] = W x[r] + b` for `n` rows.
    fn linear(
        &self,
        lin: &Linear<Self::Weight>,
        n: usize,
        x: Input<'_, Self::Buf>,
        out: Output<'_, Self::Buf>,
    ) -> Result<()>;

    /// A convolution over the channel-wise concatenation of `inputs` (`len` positions each, their
    /// channels summing to `conv.shape.cin`), bias included. `col` is scratch of at least
    /// [`Ops::conv1d_scratch`] values.
    fn conv1d(
        &self,
        conv: &Conv<Self::Weight>,
        n: usize,
        len: usize,
        inputs: &[Input<'_, Self::Buf>],
        col: &mut Self::Buf,
        out: Output<'_, Self::Buf>,
    ) -> Result<()>;

    /// Scratch values [`Ops::conv1d`] needs for `n` rows of `len` positions.
    fn conv1d_scratch(shape: ConvShape, n: usize, len: usize) -> Result<usize>;

    /// A transposed convolution of `x` (`len` positions), bias included; `tmp` is scratch of at
    /// least [`Ops::conv_transpose1d_scratch`] values.
    fn conv_transpose1d(
        &self,
        conv: &ConvTranspose<Self::Weight>,
        n: usize,
        len: usize,
        x: Input<'_, Self::Buf>,
        tmp: &mut Self::Buf,
        out: Output<'_, Self::Buf>,
    ) -> Result<()>;

    /// Scratch values [`Ops::conv_transpose1d`] needs for `n` rows of `len` positions.
    fn conv_transpose1d_scratch(shape: ConvShape, n: usize, len: usize) -> usize;

    /// In place: GroupNorm, then Mish (`v·tanh(softplus v)`), over `n × len × gn.ch`.
    fn group_norm_mish(
        &self,
        gn: &GroupNorm<Self::Weight>,
        n: usize,
        len: usize,
        x: Output<'_, Self::Buf>,
    ) -> Result<()>;

    /// In place FiLM over `n × len × ch`: row r's channel c becomes `s·x + t` with
    /// `(s, t) = (film[r][c], film[r][ch + c])` when `scale`, else `x + film[r][c]`; rows of
    /// `film` are `film_stride` apart.
    #[allow(clippy::too_many_arguments)]
    fn film(
        &self,
        n: usize,
        len: usize,
        ch: usize,
        scale: bool,
        film: Input<'_, Self::Buf>,
        film_stride: usize,
        x: Output<'_, Self::Buf>,
    ) -> Result<()>;

    /// In place Mish over `len` values.
    fn mish(&self, len: usize, x: Output<'_, Self::Buf>) -> Result<()>;

    /// `out += x` over `len` values.
    fn add(&self, len: usize, x: Input<'_, Self::Buf>, out: Output<'_, Self::Buf>) -> Result<()>;

    /// Sinusoidal embeddings of `dim` values (`[sin | cos]` of `t·f_i`, `f_i = e^{−i·ln(10⁴)/(dim/2 − 1)}`,
    /// LeRobot's and diffusers' `SinusoidalPosEmb`) of the model times `times[off..off + n]`.
    fn sinusoidal(
        &self,
        dim: usize,
        n: usize,
        times: Input<'_, Self::Buf>,
        out: Output<'_, Self::Buf>,
    ) -> Result<()>;

    /// Row r of `out` (width `a + b`) becomes `[first[r] | second[(row0 + r) % batch]]`: the
    /// per-row time features followed by the conditioning of the row's sample.
    #[allow(clippy::too_many_arguments)]
    fn concat_cond(
        &self,
        n: usize,
        a: usize,
        first: Input<'_, Self::Buf>,
        b: usize,
        second: Input<'_, Self::Buf>,
        row0: usize,
        batch: usize,
        out: Output<'_, Self::Buf>,
    ) -> Result<()>;
}
