//! The U-Net's parameters, generic over where a tensor lives (host tensors in the model, backend
//! weights in a workspace), and their canonical layouts (`crate::backend::ops`).

use crate::backend::ops::{Conv, ConvTranspose, GroupNorm, Linear};
use crate::error::Result;

/// `Conv1dBlock`: convolution, GroupNorm, Mish.
#[derive(Debug, Clone)]
pub struct ConvBlock<W> {
    /// The convolution (padding k/2).
    pub conv: Conv<W>,
    /// Its GroupNorm.
    pub norm: GroupNorm<W>,
}

/// `ConditionalResidualBlock1d`: conv block, FiLM from the conditioning, conv block, residual.
#[derive(Debug, Clone)]
pub struct ResBlock<W> {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// First conv block (cin → cout).
    pub conv1: ConvBlock<W>,
    /// FiLM projection of `mish(cond)`: 2·cout outputs (scale, then bias) or cout (bias only).
    pub film: Linear<W>,
    /// Second conv block (cout → cout).
    pub conv2: ConvBlock<W>,
    /// 1×1 convolution of the input when cin ≠ cout.
    pub residual: Option<Conv<W>>,
}

/// One encoder level: two residual blocks, then a stride-2 convolution except at the last level.
#[derive(Debug, Clone)]
pub struct DownLevel<W> {
    /// The two blocks.
    pub blocks: [ResBlock<W>; 2],
    /// The downsampling convolution (k 3, stride 2, padding 1).
    pub down: Option<Conv<W>>,
}

/// One decoder level: two residual blocks over (state ‖ skip), then a stride-2 transposed conv.
#[derive(Debug, Clone)]
pub struct UpLevel<W> {
    /// The two blocks.
    pub blocks: [ResBlock<W>; 2],
    /// The upsampling transposed convolution (k 4, stride 2, padding 1).
    pub up: ConvTranspose<W>,
}

/// Every parameter of the U-Net.
#[derive(Debug, Clone)]
pub struct UnetWeights<W> {
    /// Time MLP: embedding → 4·E.
    pub time1: Linear<W>,
    /// Time MLP: 4·E → E.
    pub time2: Linear<W>,
    /// Encoder levels.
    pub down: Vec<DownLevel<W>>,
    /// The two middle blocks.
    pub mid: [ResBlock<W>; 2],
    /// Decoder levels, in the order they run.
    pub up: Vec<UpLevel<W>>,
    /// Final conv block (d0 → d0).
    pub final_block: ConvBlock<W>,
    /// Final 1×1 convolution (d0 → action dim).
    pub final_conv: Conv<W>,
}

/// Converts every tensor of a parameter structure.
pub trait MapWeights<W> {
    /// The same structure over `V`.
    type Out<V>;
    /// Applies `f` to every tensor.
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<Self::Out<V>>;
}

impl<W> MapWeights<W> for Linear<W> {
    type Out<V> = Linear<V>;
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<Linear<V>> {
        Ok(Linear {
            in_dim: self.in_dim,
            out_dim: self.out_dim,
            weight: f(&self.weight)?,
            bias: f(&self.bias)?,
        })
    }
}

impl<W> MapWeights<W> for Conv<W> {
    type Out<V> = Conv<V>;
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<Conv<V>> {
        Ok(Conv {
            shape: self.shape,
            weight: f(&self.weight)?,
            bias: f(&self.bias)?,
        })
    }
}

impl<W> MapWeights<W> for ConvTranspose<W> {
    type Out<V> = ConvTranspose<V>;
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<ConvTranspose<V>> {
        Ok(ConvTranspose {
            shape: self.shape,
            weight: f(&self.weight)?,
            bias: f(&self.bias)?,
        })
    }
}

impl<W> MapWeights<W> for ConvBlock<W> {
    type Out<V> = ConvBlock<V>;
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<ConvBlock<V>> {
        Ok(ConvBlock {
            conv: self.conv.map(f)?,
            norm: GroupNorm {
                groups: self.norm.groups,
                ch: self.norm.ch,
                gamma: f(&self.norm.gamma)?,
                beta: f(&self.norm.beta)?,
                eps: self.norm.eps,
            },
        })
    }
}

impl<W> MapWeights<W> for ResBlock<W> {
    type Out<V> = ResBlock<V>;
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<ResBlock<V>> {
        Ok(ResBlock {
            cin: self.cin,
            cout: self.cout,
            conv1: self.conv1.map(f)?,
            film: self.film.map(f)?,
            conv2: self.conv2.map(f)?,
            residual: self.residual.as_ref().map(|r| r.map(f)).transpose()?,
        })
    }
}

fn pair<W, V>(
    b: &[ResBlock<W>; 2],
    f: &mut dyn FnMut(&W) -> Result<V>,
) -> Result<[ResBlock<V>; 2]> {
    Ok([b[0].map(f)?, b[1].map(f)?])
}

impl<W> MapWeights<W> for UnetWeights<W> {
    type Out<V> = UnetWeights<V>;
    fn map<V>(&self, f: &mut dyn FnMut(&W) -> Result<V>) -> Result<UnetWeights<V>> {
        Ok(UnetWeights {
            time1: self.time1.map(f)?,
            time2: self.time2.map(f)?,
            down: self
                .down
                .iter()
                .map(|l| {
                    Ok(DownLevel {
                        blocks: pair(&l.blocks, f)?,
                        down: l.down.as_ref().map(|c| c.map(f)).transpose()?,
                    })
                })
                .collect::<Result<_>>()?,
            mid: pair(&self.mid, f)?,
            up: self
                .up
                .iter()
                .map(|l| {
                    Ok(UpLevel {
                        blocks: pair(&l.blocks, f)?,
                        up: l.up.map(f)?,
                    })
                })
                .collect::<Result<_>>()?,
            final_block: self.final_block.map(f)?,
            final_conv: self.final_conv.map(f)?,
        })
    }
}
