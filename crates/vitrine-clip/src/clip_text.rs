//! CLIP's causal text transformer (`text_model.*` of a `clip` checkpoint).

use crate::config::ClipTextConfig;
use crate::layers::{causal_mask, clip_encoder, padding_mask, ClipLayer};
use candle_core::{IndexOp, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};

/// Token + position embeddings, pre-norm causal transformer, final norm, pooled at end-of-text.
pub struct ClipTextTower {
    tokens: Embedding,
    positions: Embedding,
    layers: Vec<ClipLayer>,
    final_ln: LayerNorm,
    eos: Option<u32>,
}

impl ClipTextTower {
    /// Loads `text_model.*`.
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        let e = vb.pp("embeddings");
        let layers = clip_encoder(
            vb.clone(),
            c.num_hidden_layers,
            c.hidden_size,
            c.intermediate_size,
            c.num_attention_heads,
            c.hidden_act,
            c.layer_norm_eps,
        )?;
        Ok(ClipTextTower {
            tokens: embedding(c.vocab_size, c.hidden_size, e.pp("token_embedding"))?,
            positions: embedding(c.max_position_embeddings, c.hidden_size, e.pp("position_embedding"))?,
            layers,
            final_ln: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("final_layer_norm"))?,
            eos: c.eos_token_id,
        })
    }

    /// `ids`, `mask`: (batch, tokens) u32 → pooled (batch, hidden).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let pos = Tensor::arange(0u32, n as u32, ids.device())?;
        let x = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&pos)?)?;
        let m = causal_mask(n, ids.device())?.broadcast_add(&padding_mask(mask)?)?;
        let mut x = x;
        for l in &self.layers {
            x = l.forward(&x, Some(&m))?;
        }
        let x = self.final_ln.forward(&x)?;
        // Pool where the text ends. transformers takes the first end-of-text token; checkpoints
        // with the legacy eos id 2 take the largest token id (OpenAI's eot is the largest id).
        let rows: Vec<Vec<u32>> = ids.to_vec2()?;
        let mut pooled = Vec::with_capacity(b);
        for (i, row) in rows.iter().enumerate() {
            let at = match self.eos {
                Some(e) if e != 2 => row.iter().position(|&t| t == e).unwrap_or(n - 1),
                _ => row
                    .iter()
                    .enumerate()
                    .max_by_key(|(j, &t)| (t, std::cmp::Reverse(*j)))
                    .map_or(0, |(j, _)| j),
            };
            pooled.push(x.i((i, at))?);
        }
        Tensor::stack(&pooled, 0)
    }
}
