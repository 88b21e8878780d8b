//! Model configs deserialized from the checkpoint's `config.json`, with transformers' defaults
//! for keys that older checkpoints omit. The architecture comes from this file alone.

use serde::Deserialize;

/// Which family a checkpoint belongs to (`model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI-layout CLIP (`clip`): byte-level BPE, causal text transformer.
    Clip,
    /// Chinese-CLIP (`chinese_clip`): BERT/RoBERTa-wwm text tower, CLIP vision tower.
    ChineseClip,
}

/// Activation functions named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` (OpenAI CLIP).
    QuickGelu,
    /// Exact GELU with erf (LAION, BERT).
    Gelu,
    /// tanh approximation of GELU.
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
    /// ReLU.
    Relu,
}

fn quick_gelu() -> Activation {
    Activation::QuickGelu
}
fn gelu() -> Activation {
    Activation::Gelu
}
fn eps_clip() -> f64 {
    1e-5
}
fn eps_bert() -> f64 {
    1e-12
}

/// CLIP's text tower (`text_config` of a `clip` checkpoint).
#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Width.
    #[serde(default = "d512")]
    pub hidden_size: usize,
    /// MLP width.
    #[serde(default = "d2048")]
    pub intermediate_size: usize,
    /// Layers.
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    /// Heads.
    #[serde(default = "d8")]
    pub num_attention_heads: usize,
    /// Context length.
    #[serde(default = "d77")]
    pub max_position_embeddings: usize,
    /// Activation.
    #[serde(default = "quick_gelu")]
    pub hidden_act: Activation,
    /// Layer-norm epsilon.
    #[serde(default = "eps_clip")]
    pub layer_norm_eps: f64,
    /// End-of-text id; the text is pooled at its first occurrence (2 means "legacy": argmax).
    #[serde(default = "d_eos")]
    pub eos_token_id: Option<u32>,
}

/// The vision tower (`vision_config`), the same in CLIP and Chinese-CLIP.
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    /// Width.
    #[serde(default = "d768")]
    pub hidden_size: usize,
    /// MLP width.
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    /// Layers.
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    /// Heads.
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    /// Input resolution.
    #[serde(default = "d224")]
    pub image_size: usize,
    /// Patch size.
    #[serde(default = "d32")]
    pub patch_size: usize,
    /// Channels.
    #[serde(default = "d3")]
    pub num_channels: usize,
    /// Activation.
    #[serde(default = "quick_gelu")]
    pub hidden_act: Activation,
    /// Layer-norm epsilon.
    #[serde(default = "eps_clip")]
    pub layer_norm_eps: f64,
}

/// Chinese-CLIP's BERT text tower.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    #[serde(default = "d_bert_vocab")]
    pub vocab_size: usize,
    /// Width.
    #[serde(default = "d768")]
    pub hidden_size: usize,
    /// MLP width.
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    /// Layers.
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    /// Heads.
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    /// Positions.
    #[serde(default = "d512")]
    pub max_position_embeddings: usize,
    /// Token types.
    #[serde(default = "d2")]
    pub type_vocab_size: usize,
    /// Activation.
    #[serde(default = "gelu")]
    pub hidden_act: Activation,
    /// Layer-norm epsilon.
    #[serde(default = "eps_bert")]
    pub layer_norm_eps: f64,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct Raw {
    model_type: Option<String>,
    #[serde(default = "d512")]
    projection_dim: usize,
    text_config: Option<serde_json::Value>,
    vision_config: Option<serde_json::Value>,
}

/// A whole checkpoint's config.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Family.
    pub family: Family,
    /// Joint embedding width.
    pub projection_dim: usize,
    /// Text tower.
    pub text: TextConfig,
    /// Vision tower.
    pub vision: VisionConfig,
}

/// The text tower of either family.
#[derive(Debug, Clone)]
pub enum TextConfig {
    /// CLIP's causal transformer.
    Clip(ClipTextConfig),
    /// Chinese-CLIP's BERT.
    Bert(BertConfig),
}

impl ModelConfig {
    /// Parses `config.json` text; `what` names the file in errors.
    pub fn from_json(text: &str, what: &str) -> Result<ModelConfig, String> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| format!("{what}: not a model config: {e}"))?;
        let family = match raw.model_type.as_deref() {
            Some("clip") => Family::Clip,
            Some("chinese_clip") => Family::ChineseClip,
            Some(other) => {
                return Err(format!(
                    "{what}: model_type {other:?} is not supported (supported: clip, chinese_clip)"
                ))
            }
            None => return Err(format!("{what}: no model_type")),
        };
        let sub = |v: Option<serde_json::Value>| v.unwrap_or_else(|| serde_json::json!({}));
        let vision: VisionConfig =
            serde_json::from_value(sub(raw.vision_config)).map_err(|e| format!("{what}: vision_config: {e}"))?;
        let text = match family {
            Family::Clip => TextConfig::Clip(
                serde_json::from_value(sub(raw.text_config)).map_err(|e| format!("{what}: text_config: {e}"))?,
            ),
            Family::ChineseClip => TextConfig::Bert(
                serde_json::from_value(sub(raw.text_config)).map_err(|e| format!("{what}: text_config: {e}"))?,
            ),
        };
        let cfg = ModelConfig {
            family,
            projection_dim: raw.projection_dim,
            text,
            vision,
        };
        cfg.check().map_err(|e| format!("{what}: {e}"))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        let v = &self.vision;
        if v.num_attention_heads == 0 || !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err("vision hidden_size is not a multiple of num_attention_heads".into());
        }
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        let (h, n) = match &self.text {
            TextConfig::Clip(t) => (t.hidden_size, t.num_attention_heads),
            TextConfig::Bert(t) => (t.hidden_size, t.num_attention_heads),
        };
        if n == 0 || !h.is_multiple_of(n) {
            return Err("text hidden_size is not a multiple of num_attention_heads".into());
        }
        Ok(())
    }

    /// Maximum tokens per text (including the special tokens).
    pub fn context_length(&self) -> usize {
        match &self.text {
            TextConfig::Clip(t) => t.max_position_embeddings,
            // Chinese-CLIP was trained with 52 tokens; its BERT has room for more.
            TextConfig::Bert(t) => t.max_position_embeddings.min(52),
        }
    }
}

fn d_vocab() -> usize {
    49_408
}
fn d_bert_vocab() -> usize {
    21_128
}
fn d_eos() -> Option<u32> {
    Some(49_407)
}
fn d2() -> usize {
    2
}
fn d3() -> usize {
    3
}
fn d8() -> usize {
    8
}
fn d12() -> usize {
    12
}
fn d32() -> usize {
    32
}
fn d77() -> usize {
    77
}
fn d224() -> usize {
    224
}
fn d512() -> usize {
    512
}
fn d768() -> usize {
    768
}
fn d2048() -> usize {
    2048
}
fn d3072() -> usize {
    3072
}
