//! Building blocks shared by the towers: attention, MLP, activations.
//!
//! Tensor paths passed to the `VarBuilder` are the checkpoint's own names, so a missing or
//! misshaped tensor is reported under the name a user can find in the file.

use crate::config::Activation;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{layer_norm, linear, LayerNorm, Linear, VarBuilder};

/// Applies `act` elementwise.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluNew => x.gelu(),
        Activation::Relu => x.relu(),
    }
}

/// Multi-head self-attention with separate q/k/v/out projections.
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    /// Loads projections named `q`, `k`, `v`, `out` under `vb`.
    pub fn new(vb: VarBuilder, hidden: usize, heads: usize, names: [&str; 4]) -> Result<Self> {
        Ok(Attention {
            q: linear(hidden, hidden, vb.pp(names[0]))?,
            k: linear(hidden, hidden, vb.pp(names[1]))?,
            v: linear(hidden, hidden, vb.pp(names[2]))?,
            out: linear(hidden, hidden, vb.pp(names[3]))?,
            heads,
            scale: ((hidden / heads) as f64).powf(-0.5),
        })
    }

    /// `x`: (batch, tokens, hidden); `mask`: additive, broadcastable to (batch, heads, tokens, tokens).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let hd = d / self.heads;
        let split = |t: Tensor| t.reshape((b, n, self.heads, hd))?.transpose(1, 2)?.contiguous();
        let q = split((self.q.forward(x)? * self.scale)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let mut att = q.matmul(&k.t()?)?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?;
        self.out.forward(&y)
    }
}

/// A CLIP encoder layer (pre-norm): `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
pub struct ClipLayer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl ClipLayer {
    /// Loads `encoder.layers.{i}` of a CLIP tower.
    pub fn new(vb: VarBuilder, hidden: usize, inter: usize, heads: usize, act: Activation, eps: f64) -> Result<Self> {
        Ok(ClipLayer {
            ln1: layer_norm(hidden, eps, vb.pp("layer_norm1"))?,
            attn: Attention::new(
                vb.pp("self_attn"),
                hidden,
                heads,
                ["q_proj", "k_proj", "v_proj", "out_proj"],
            )?,
            ln2: layer_norm(hidden, eps, vb.pp("layer_norm2"))?,
            fc1: linear(hidden, inter, vb.pp("mlp").pp("fc1"))?,
            fc2: linear(inter, hidden, vb.pp("mlp").pp("fc2"))?,
            act,
        })
    }

    /// One layer.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
        let h = activate(&self.fc1.forward(&self.ln2.forward(&x)?)?, self.act)?;
        x + self.fc2.forward(&h)?
    }
}

/// Additive key-padding mask (batch, 1, 1, tokens): 0 where attended, a large negative where padded.
pub fn padding_mask(mask: &Tensor) -> Result<Tensor> {
    let (b, n) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    ((1.0 - m)? * f32::MIN as f64)?.reshape((b, 1, 1, n))
}

/// Additive causal mask (1, 1, tokens, tokens).
pub fn causal_mask(n: usize, device: &candle_core::Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..n * n).map(|i| if i % n > i / n { f32::MIN } else { 0.0 }).collect();
    Tensor::from_vec(v, (1, 1, n, n), device)
}

/// L2-normalises rows.
pub fn normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}
