//! CLIP and Chinese-CLIP in Rust, numerically matching Hugging Face transformers.
//!
//! * [`config`] — the architecture from `config.json` alone (every size loads: ViT-B/32 … ViT-H/14,
//!   `quick_gelu` or `gelu`, any layer-norm epsilon), with transformers' defaults for omitted keys.
//! * [`TextTokenizer`] — CLIP byte-level BPE (`tokenizer.json`, or `vocab.json` + `merges.txt`) and
//!   Chinese-CLIP WordPiece (`vocab.txt`), truncated to the model's context length.
//! * [`ClipModel`] — text tower (CLIP's causal transformer pooled at the *first* end-of-text
//!   token, or Chinese-CLIP's BERT with its attention mask, pooled at `[CLS]`), the ViT vision
//!   tower, and the projections. Weights come from `model.safetensors` (memory-mapped) or
//!   `pytorch_model.bin`; a missing or misshaped tensor is an error naming the file and tensor
//!   (never a silent default, unlike candle-transformers' CLIP for `class_embedding`/`logit_scale`).
//! * [`resolve`] — a local folder or a hub name found in the local Hugging Face cache; nothing
//!   is downloaded.
//!
//! The tensor arithmetic uses candle (`candle-core`, `candle-nn`: Hugging Face's Rust tensor
//! library, whose mmap'd safetensors loading and CPU matmul we build on) and `tokenizers` (the
//! same Rust code that runs inside transformers' fast tokenizers, so ids match by construction).
//! Parity is tested against random-weight fixtures made by `tools/clip_fixtures.py`.
#![deny(missing_docs)]

mod bert;
mod clip_text;
pub mod config;
mod hub;
mod layers;
mod model;
mod tokenizer;
mod vision;

pub use config::{Family, ModelConfig};
pub use hub::{hub_cache, resolve};
pub use model::{rows, weights_file, ClipModel, Towers};
pub use tokenizer::TextTokenizer;

pub use candle_core::Tensor;

/// Errors of the model crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A checkpoint file is missing, unreadable, or lacks/misshapes a tensor.
    #[error("{}: {msg}", path.display())]
    Checkpoint {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What is wrong (names the tensor where one is at fault).
        msg: String,
    },
    /// `config.json` describes something we cannot build.
    #[error("{0}")]
    Config(String),
    /// A model name that is neither a folder nor in the local hub cache.
    #[error("{0}")]
    NotFound(String),
    /// Bad input (text, pixels).
    #[error("{0}")]
    Input(String),
    /// A tensor operation failed.
    #[error("model computation failed: {0}")]
    Compute(candle_core::Error),
}
