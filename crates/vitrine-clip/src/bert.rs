//! Chinese-CLIP's BERT text tower (`text_model.*` of a `chinese_clip` checkpoint).
//!
//! Post-norm BERT; the text feature is the `[CLS]` position of the last layer. The attention
//! mask matters: without it padded batches give wrong features.

use crate::config::{Activation, BertConfig};
use crate::layers::{activate, linear, padding_mask, Attention, Linear};
use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};

struct BertLayer {
    attn: Attention,
    attn_ln: LayerNorm,
    inter: Linear,
    out: Linear,
    out_ln: LayerNorm,
    act: Activation,
}

impl BertLayer {
    fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let a = vb.pp("attention");
        Ok(BertLayer {
            // q/k/v live under `attention.self`, the output projection under `attention.output`.
            attn: Attention::new(
                a.clone(),
                c.hidden_size,
                c.num_attention_heads,
                ["self.query", "self.key", "self.value", "output.dense"],
            )?,
            attn_ln: layer_norm(c.hidden_size, c.layer_norm_eps, a.pp("output").pp("LayerNorm"))?,
            inter: linear(c.hidden_size, c.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            out: linear(c.intermediate_size, c.hidden_size, vb.pp("output").pp("dense"))?,
            out_ln: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            act: c.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let a = self.attn_ln.forward(&(x + self.attn.forward(x, Some(mask))?)?)?;
        let h = activate(&self.inter.forward(&a)?, self.act)?;
        self.out_ln.forward(&(a + self.out.forward(&h)?)?)
    }
}

/// Word + position + token-type embeddings with LayerNorm, then post-norm encoder layers.
pub struct BertTextTower {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    ln: LayerNorm,
    layers: Vec<BertLayer>,
}

impl BertTextTower {
    /// Loads `text_model.*`.
    pub fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let e = vb.pp("embeddings");
        Ok(BertTextTower {
            words: embedding(c.vocab_size, c.hidden_size, e.pp("word_embeddings"))?,
            positions: embedding(c.max_position_embeddings, c.hidden_size, e.pp("position_embeddings"))?,
            types: embedding(c.type_vocab_size, c.hidden_size, e.pp("token_type_embeddings"))?,
            ln: layer_norm(c.hidden_size, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers: (0..c.num_hidden_layers)
                .map(|i| BertLayer::new(vb.pp("encoder").pp("layer").pp(i), c))
                .collect::<Result<_>>()?,
        })
    }

    /// `ids`, `mask`: (batch, tokens) → `[CLS]` states (batch, hidden).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let n = ids.dim(1)?;
        let pos = Tensor::arange(0u32, n as u32, ids.device())?;
        let types = ids.zeros_like()?;
        let x =
            (self.words.forward(ids)?.broadcast_add(&self.positions.forward(&pos)?)? + self.types.forward(&types)?)?;
        let mut x = self.ln.forward(&x)?;
        let m = padding_mask(mask)?;
        for l in &self.layers {
            x = l.forward(&x, &m)?;
        }
        x.narrow(1, 0, 1)?.squeeze(1)
    }
}
