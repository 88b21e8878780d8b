//! Building blocks shared by the towers: attention, MLP, activations.
//!
//! Tensor paths passed to the `VarBuilder` are the checkpoint's own names, so a missing or
//! misshaped tensor is reported under the name a user can find in the file.

use crate::config::Activation;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};

/// A dense layer that multiplies all tokens of a batch in one matrix product.
///
/// candle's `Linear` on a (batch, tokens, in) input runs one small product per batch item;
/// folding batch and tokens into one (batch·tokens, in) matrix gives the GEMM kernel one large,
/// well-shaped problem, which is markedly faster on CPU.
pub struct Linear {
    weight: Tensor,
    weight_t: Tensor,
    bias: Option<Tensor>,
}

/// Below this many rows (a single text query has ~10 tokens) `W · xᵀ` is computed instead of
/// `x · Wᵀ`: the GEMM then streams the weights in their stored row-major order instead of
/// gathering them column by column, which made one-query text encoding several times slower.
const FEW_ROWS: usize = 64;

impl Linear {
    /// Applies `x · Wᵀ + b` over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (last, lead) = dims.split_last().expect("rank >= 1");
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, *last))?;
        let y = if rows < FEW_ROWS {
            self.weight.matmul(&x2.t()?)?.t()?.contiguous()?
        } else {
            x2.matmul(&self.weight_t)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = lead.to_vec();
        out.push(self.weight_t.dim(1)?);
        y.reshape(out)
    }
}

/// Loads `weight` (out, in) and `bias` (out) under `vb`.
pub fn linear(i: usize, o: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((o, i), "weight")?;
    let b = vb.get(o, "bias")?;
    Ok(Linear {
        weight_t: w.t()?,
        weight: w,
        bias: Some(b),
    })
}

/// Like [`linear`] without a bias.
pub fn linear_no_bias(i: usize, o: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((o, i), "weight")?;
    Ok(Linear {
        weight_t: w.t()?,
        weight: w,
        bias: None,
    })
}

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
        let y = attention_core(&q, &k, &v, mask)?.transpose(1, 2)?.reshape((b, n, d))?;
        self.out.forward(&y)
    }
}

/// `softmax(q·kᵀ + mask)·v` for every (batch, head), with q already scaled.
///
/// candle would run one small GEMM per (batch, head) and ask every thread to join each of
/// them; with ~50–200 tokens per image the synchronisation costs more than the arithmetic.
/// Here each (batch, head) is one rayon task computed on one core with the SIMD dot-product
/// kernel, so threads scale.
fn attention_core(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    use rayon::prelude::*;
    let (b, h, n, hd) = q.dims4()?;
    let (qv, kv, vv) = (flat(q)?, flat(k)?, flat(v)?);
    // The mask broadcasts over heads: (mb, 1, mr, n) with mb ∈ {1, b} and mr ∈ {1, n}.
    let m = match mask {
        Some(m) => {
            let d = m.dims4()?;
            Some((flat(&m.contiguous()?)?, d.0, d.2))
        }
        None => None,
    };
    let mut out = vec![0f32; b * h * n * hd];
    out.par_chunks_mut(n * hd).enumerate().for_each(|(bh, o)| {
        let bi = bh / h;
        let base = bh * n * hd;
        let (qs, ks, vs) = (
            &qv[base..base + n * hd],
            &kv[base..base + n * hd],
            &vv[base..base + n * hd],
        );
        let mut p = vec![0f32; n * n];
        vitrine_kernels::scores_block(qs, ks, hd, &mut p);
        for i in 0..n {
            let row = &mut p[i * n..(i + 1) * n];
            if let Some((mv, mb, mr)) = &m {
                let mrow = &mv[((bi % mb) * mr + i % mr) * n..][..n];
                for (x, a) in row.iter_mut().zip(mrow) {
                    *x += a;
                }
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            let oi = &mut o[i * hd..(i + 1) * hd];
            for (j, &pj) in row.iter().enumerate() {
                let w = pj * inv;
                for (acc, &vj) in oi.iter_mut().zip(&vs[j * hd..(j + 1) * hd]) {
                    *acc += w * vj;
                }
            }
        }
    });
    Tensor::from_vec(out, (b, h, n, hd), q.device())
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
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

/// The `encoder.layers.*` stack of a CLIP tower.
pub fn clip_encoder(
    vb: VarBuilder,
    layers: usize,
    hidden: usize,
    inter: usize,
    heads: usize,
    act: Activation,
    eps: f64,
) -> Result<Vec<ClipLayer>> {
    (0..layers)
        .map(|i| ClipLayer::new(vb.pp("encoder").pp("layers").pp(i), hidden, inter, heads, act, eps))
        .collect()
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
