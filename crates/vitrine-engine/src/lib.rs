//! The pipeline that turns images and texts into embeddings.
//!
//! [`Embedder`] holds a model and its preprocessing. [`Embedder::embed_images`] decodes and
//! preprocesses a batch on all cores (rayon) on one thread while the model encodes the previous
//! batch on another, so decoding overlaps encoding; one bad file yields an error for that file
//! and never stops the batch. Texts are tokenised and encoded in batches.
#![deny(missing_docs)]

pub mod index;
pub mod ledger;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use vitrine_clip::ClipModel;
pub use vitrine_clip::Towers;
use vitrine_image::{Limits, Preprocess};

/// Where the bundled demo model lives: `VITRINE_DEMO_MODEL` if set, else `models/vitrine-demo`
/// in the source tree this binary was built from.
pub fn demo_model_dir() -> PathBuf {
    match std::env::var_os("VITRINE_DEMO_MODEL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/vitrine-demo"),
    }
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the model.
    #[error(transparent)]
    Model(#[from] vitrine_clip::Error),
    /// From image decoding or preprocessing.
    #[error(transparent)]
    Image(#[from] vitrine_image::Error),
    /// From the store.
    #[error(transparent)]
    Store(#[from] vitrine_store::Error),
    /// A file could not be read.
    #[error("{0}")]
    Io(String),
    /// A model other than the collection's.
    #[error("{0}")]
    ModelMismatch(String),
}

/// A model plus everything needed to feed it.
pub struct Embedder {
    model: ClipModel,
    preprocess: Preprocess,
    limits: Limits,
    batch: usize,
}

/// The embedding of one image, or why there is none.
pub type ImageResult = Result<Vec<f32>, Error>;

impl Embedder {
    /// Loads a checkpoint folder or cached hub name.
    pub fn load(model: &str) -> Result<Embedder, Error> {
        Embedder::load_towers(model, Towers::Both)
    }

    /// Loads a checkpoint folder or cached hub name with only the towers asked for.
    pub fn load_towers(model: &str, towers: Towers) -> Result<Embedder, Error> {
        let dir = vitrine_clip::resolve(model)?;
        Embedder::load_dir_towers(&dir, towers)
    }

    /// Loads the checkpoint in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Embedder, Error> {
        Embedder::load_dir_towers(dir, Towers::Both)
    }

    /// Loads the checkpoint in `dir` with only the towers asked for.
    pub fn load_dir_towers(dir: &Path, towers: Towers) -> Result<Embedder, Error> {
        let model = ClipModel::load_towers(dir, towers)?;
        let preprocess = Preprocess::load(dir)?;
        let s = model.config().vision.image_size as u32;
        if preprocess.output_hw(s, s) != (s, s) {
            return Err(Error::Model(vitrine_clip::Error::Config(format!(
                "{}: the preprocessor's output size does not match the model's image_size {s}",
                dir.display()
            ))));
        }
        Ok(Embedder {
            model,
            preprocess,
            limits: Limits::default(),
            batch: 32,
        })
    }

    /// Images encoded per forward pass (default 32).
    pub fn set_batch(&mut self, n: usize) {
        self.batch = n.max(1);
    }

    /// The model.
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// L2-normalised text embeddings, one per text.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch.max(64)) {
            out.extend(self.model.embed_texts(chunk)?);
        }
        Ok(out)
    }

    /// Why a text query may not mean to this model what it says (empty when it is fine):
    /// Chinese asked of an English-only CLIP, or words outside a WordPiece vocabulary. Returning
    /// noise silently would be worse than a warning.
    pub fn query_warnings(&self, text: &str) -> Vec<String> {
        let cjk = text.chars().any(|c| {
            matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x3040..=0x30FF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
        });
        let name = self.model.dir().display();
        let mut out = Vec::new();
        if cjk && self.model.family() == vitrine_clip::Family::Clip {
            out.push(format!(
                "query {text:?} is Chinese/Japanese/Korean but {name} is an English CLIP; its results for it are \
                 unreliable: use a Chinese-CLIP model (e.g. OFA-Sys/chinese-clip-vit-base-patch16) or ask in English"
            ));
        }
        let unknown = self.model.tokenizer().unknown_share(text);
        if unknown > 0.0 {
            out.push(format!(
                "{:.0}% of the tokens of query {text:?} are unknown to the vocabulary of {name}; those words are ignored",
                unknown * 100.0
            ));
        }
        out
    }

    /// Decodes and preprocesses one image.
    pub fn pixels(&self, path: &Path) -> Result<Vec<f32>, Error> {
        Ok(self.preprocess.apply(&vitrine_image::decode(path, &self.limits)?))
    }

    /// L2-normalised image embeddings in input order; a failed file gets its error.
    pub fn embed_images(&self, paths: &[PathBuf]) -> Vec<ImageResult> {
        self.embed_images_with(paths, |_, _| ())
            .into_iter()
            .map(|r| r.map(|(v, ())| v))
            .collect()
    }

    /// [`Embedder::embed_images`], also returning `extra(file bytes, decoded image)` for each
    /// image (a content hash, a thumbnail), computed on the decoding threads so each file is
    /// read and decoded once.
    pub fn embed_images_with<T: Send>(
        &self,
        paths: &[PathBuf],
        extra: impl Fn(&[u8], &vitrine_image::RgbImage) -> T + Sync,
    ) -> Vec<Result<(Vec<f32>, T), Error>> {
        use rayon::prelude::*;
        type Decoded<T> = Result<(Vec<f32>, T), Error>;
        let mut results: Vec<Option<Decoded<T>>> = (0..paths.len()).map(|_| None).collect();
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<Decoded<T>>)>(1);
        let decode = |p: &PathBuf| -> Decoded<T> {
            let name = p.display().to_string();
            let bytes = std::fs::read(p).map_err(|source| vitrine_image::Error::Io {
                path: name.clone(),
                source,
            })?;
            let img = vitrine_image::decode_bytes(&bytes, &name, &self.limits)?;
            Ok((self.preprocess.apply(&img), extra(&bytes, &img)))
        };
        std::thread::scope(|s| {
            // Producer: decode + preprocess batch i+1 while the consumer encodes batch i.
            s.spawn(|| {
                for (bi, chunk) in paths.chunks(self.batch).enumerate() {
                    let px: Vec<Decoded<T>> = chunk.par_iter().map(decode).collect();
                    if tx.send((bi * self.batch, px)).is_err() {
                        return;
                    }
                }
                drop(tx);
            });
            for (start, px) in rx {
                let (mut ok, mut flat) = (Vec::new(), Vec::new());
                for (i, r) in px.into_iter().enumerate() {
                    match r {
                        Ok((mut v, t)) => {
                            ok.push((i, t));
                            flat.append(&mut v);
                        }
                        Err(e) => results[start + i] = Some(Err(e)),
                    }
                }
                if ok.is_empty() {
                    continue;
                }
                match self.model.embed_pixels(flat, ok.len()) {
                    Ok(rows) => {
                        for ((i, t), row) in ok.into_iter().zip(rows) {
                            results[start + i] = Some(Ok((row, t)));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for (i, _) in ok {
                            results[start + i] = Some(Err(Error::Model(vitrine_clip::Error::Input(format!(
                                "{}: {msg}",
                                paths[start + i].display()
                            )))));
                        }
                    }
                }
            }
        });
        results.into_iter().map(|r| r.expect("every input answered")).collect()
    }
}
