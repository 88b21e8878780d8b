//! A whole checkpoint: config, tokenizer, both towers and the projections into the joint space.

use crate::bert::BertTextTower;
use crate::clip_text::ClipTextTower;
use crate::config::{Family, ModelConfig, TextConfig};
use crate::layers::{linear_no_bias, normalize, Linear};
use crate::tokenizer::TextTokenizer;
use crate::vision::VisionTower;
use crate::Error;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

enum TextTower {
    Clip(ClipTextTower),
    Bert(BertTextTower),
}

/// Which towers to load. A text query needs only the text tower: for ViT-L/14 that is 0.5 of
/// its 1.7 GB, and a command-line search loads the model for every query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Towers {
    /// Text and image.
    Both,
    /// Text only; embedding an image is an error.
    Text,
    /// Image only; embedding a text is an error.
    Image,
}

/// A loaded CLIP or Chinese-CLIP model (f32, CPU).
pub struct ClipModel {
    config: ModelConfig,
    dir: PathBuf,
    tokenizer: TextTokenizer,
    /// The text tower and its projection, unless loaded with [`Towers::Image`].
    text: Option<(TextTower, Linear)>,
    /// The vision tower and its projection, unless loaded with [`Towers::Text`].
    vision: Option<(VisionTower, Linear)>,
    logit_scale: f32,
    device: Device,
}

/// The weights file of the checkpoint in `dir`: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Result<PathBuf, Error> {
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Checkpoint {
        path: dir.to_path_buf(),
        msg: "no model.safetensors or pytorch_model.bin".into(),
    })
}

impl ClipModel {
    /// Loads the checkpoint in `dir` (see [`crate::resolve`] for hub names), both towers.
    pub fn load(dir: &Path) -> Result<ClipModel, Error> {
        ClipModel::load_towers(dir, Towers::Both)
    }

    /// Loads the checkpoint in `dir` with only the towers asked for; the other tower's
    /// weights are never read (the config, tokenizer and `logit_scale` always are).
    pub fn load_towers(dir: &Path, towers: Towers) -> Result<ClipModel, Error> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::Checkpoint {
            path: cfg_path.clone(),
            msg: e.to_string(),
        })?;
        let config = ModelConfig::from_json(&text, &cfg_path.display().to_string()).map_err(Error::Config)?;
        let weights = weights_file(dir)?;
        let device = Device::Cpu;
        let vb = if weights.extension().is_some_and(|e| e == "safetensors") {
            // SAFETY: the weights file is mapped read-only and not modified while loaded.
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
        } else {
            VarBuilder::from_pth(&weights, DType::F32, &device)
        }
        .map_err(|e| Error::Checkpoint {
            path: weights.clone(),
            msg: e.to_string(),
        })?;
        let bad = |e: candle_core::Error| Error::Checkpoint {
            path: weights.clone(),
            msg: e.to_string(),
        };
        let text = if towers == Towers::Image {
            None
        } else {
            let (tower, hidden) = match &config.text {
                TextConfig::Clip(c) => (
                    TextTower::Clip(ClipTextTower::new(vb.pp("text_model"), c).map_err(bad)?),
                    c.hidden_size,
                ),
                TextConfig::Bert(c) => (
                    TextTower::Bert(BertTextTower::new(vb.pp("text_model"), c).map_err(bad)?),
                    c.hidden_size,
                ),
            };
            let projection = linear_no_bias(hidden, config.projection_dim, vb.pp("text_projection")).map_err(bad)?;
            Some((tower, projection))
        };
        let vision = if towers == Towers::Text {
            None
        } else {
            let tower = VisionTower::new(vb.pp("vision_model"), &config.vision).map_err(bad)?;
            let projection = linear_no_bias(
                config.vision.hidden_size,
                config.projection_dim,
                vb.pp("visual_projection"),
            )
            .map_err(bad)?;
            Some((tower, projection))
        };
        // A missing logit_scale is an error, never a silent default.
        let logit_scale = vb
            .get((), "logit_scale")
            .or_else(|_| vb.get(1, "logit_scale").and_then(|t| t.squeeze(0)))
            .and_then(|t| t.to_scalar::<f32>())
            .map_err(bad)?;
        let tokenizer = TextTokenizer::load(dir, config.family, config.context_length())?;
        Ok(ClipModel {
            config,
            dir: dir.to_path_buf(),
            tokenizer,
            text,
            vision,
            logit_scale,
            device,
        })
    }

    /// The config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// `exp(logit_scale)`: the temperature that turns cosines into logits.
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale.exp()
    }

    /// Joint-space dimension.
    pub fn dim(&self) -> usize {
        self.config.projection_dim
    }

    /// Projected (unnormalised) text features of tokenised texts, padded into one batch.
    pub fn text_features(&self, ids: &[Vec<u32>]) -> Result<Tensor, Error> {
        let n = ids.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let b = ids.len();
        let mut flat = vec![self.tokenizer.pad_id(); b * n];
        let mut mask = vec![0u32; b * n];
        for (i, row) in ids.iter().enumerate() {
            flat[i * n..i * n + row.len()].copy_from_slice(row);
            mask[i * n..i * n + row.len()].fill(1);
        }
        let (tower, projection) = self
            .text
            .as_ref()
            .ok_or_else(|| Error::Input("this model was loaded without its text tower".into()))?;
        let run = || -> candle_core::Result<Tensor> {
            let ids = Tensor::from_vec(flat, (b, n), &self.device)?;
            let mask = Tensor::from_vec(mask, (b, n), &self.device)?;
            let pooled = match tower {
                TextTower::Clip(t) => t.forward(&ids, &mask)?,
                TextTower::Bert(t) => t.forward(&ids, &mask)?,
            };
            projection.forward(&pooled)
        };
        run().map_err(Error::Compute)
    }

    /// Projected (unnormalised) image features of preprocessed pixels (batch, 3, size, size).
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor, Error> {
        let s = self.config.vision.image_size;
        let dims = pixels.dims();
        if dims.len() != 4 || dims[1] != self.config.vision.num_channels || dims[2] != s || dims[3] != s {
            return Err(Error::Input(format!(
                "pixels have shape {dims:?}, the model needs (batch, 3, {s}, {s})"
            )));
        }
        let (tower, projection) = self
            .vision
            .as_ref()
            .ok_or_else(|| Error::Input("this model was loaded without its vision tower".into()))?;
        projection
            .forward(&tower.forward(pixels).map_err(Error::Compute)?)
            .map_err(Error::Compute)
    }

    /// L2-normalised embeddings of texts, one row per text.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        let ids = self.tokenizer.encode(texts)?;
        rows(&normalize(&self.text_features(&ids)?).map_err(Error::Compute)?)
    }

    /// L2-normalised embeddings of preprocessed images given as `batch × 3 × size × size` floats.
    pub fn embed_pixels(&self, pixels: Vec<f32>, batch: usize) -> Result<Vec<Vec<f32>>, Error> {
        let s = self.config.vision.image_size;
        let t = Tensor::from_vec(pixels, (batch, self.config.vision.num_channels, s, s), &self.device)
            .map_err(|e| Error::Input(e.to_string()))?;
        rows(&normalize(&self.image_features(&t)?).map_err(Error::Compute)?)
    }

    /// Whether the text tower was trained for Chinese (Chinese-CLIP).
    pub fn family(&self) -> Family {
        self.config.family
    }
}

/// A 2-D tensor as rows.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>, Error> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.to_vec2::<f32>())
        .map_err(Error::Compute)
}
