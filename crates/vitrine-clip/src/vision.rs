//! The ViT image tower shared by CLIP and Chinese-CLIP (`vision_model.*` tensors).

use crate::config::VisionConfig;
use crate::layers::{clip_encoder, ClipLayer};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{conv2d_no_bias, embedding, layer_norm, Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};

/// Patch embedding, class token, position embedding, pre-norm transformer, post-norm of the class token.
pub struct VisionTower {
    patch: Conv2d,
    class: Tensor,
    positions: Embedding,
    pre_ln: LayerNorm,
    layers: Vec<ClipLayer>,
    post_ln: LayerNorm,
    num_positions: usize,
}

impl VisionTower {
    /// Loads `vision_model.*`.
    pub fn new(vb: VarBuilder, c: &VisionConfig) -> Result<Self> {
        let e = vb.pp("embeddings");
        let grid = c.image_size / c.patch_size;
        let num_positions = grid * grid + 1;
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        let layers = clip_encoder(
            vb.clone(),
            c.num_hidden_layers,
            c.hidden_size,
            c.intermediate_size,
            c.num_attention_heads,
            c.hidden_act,
            c.layer_norm_eps,
        )?;
        Ok(VisionTower {
            patch: conv2d_no_bias(
                c.num_channels,
                c.hidden_size,
                c.patch_size,
                conv,
                e.pp("patch_embedding"),
            )?,
            class: e.get(c.hidden_size, "class_embedding")?,
            positions: embedding(num_positions, c.hidden_size, e.pp("position_embedding"))?,
            // "pre_layrnorm" is the checkpoints' own spelling.
            pre_ln: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("pre_layrnorm"))?,
            layers,
            post_ln: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("post_layernorm"))?,
            num_positions,
        })
    }

    /// `pixels`: (batch, 3, size, size) → pooled (batch, hidden).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let x = self.patch.forward(pixels)?.flatten_from(2)?.transpose(1, 2)?; // (b, patches, hidden)
        let d = x.dim(D::Minus1)?;
        let cls = self.class.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[&cls, &x], 1)?;
        let ids = Tensor::arange(0u32, self.num_positions as u32, x.device())?;
        let x = x.broadcast_add(&self.positions.forward(&ids)?)?;
        let mut x = self.pre_ln.forward(&x)?;
        for l in &self.layers {
            x = l.forward(&x, None)?;
        }
        self.post_ln.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)
    }
}
