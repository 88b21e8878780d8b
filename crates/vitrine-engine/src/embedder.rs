//! [`Embedder`]: images and texts → L2-normalised embeddings, batched and parallel.
//!
//! [`Embedder::embed_images`] decodes and preprocesses a batch on all cores (rayon) on one
//! thread while the model encodes the previous batch on another, so decoding overlaps encoding;
//! one bad file yields an error for that file and never stops the batch. Texts are tokenised and
//! encoded in batches.

use crate::error::Error;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use vitrine_clip::{ClipModel, Towers};
use vitrine_image::{Limits, Preprocess};

/// Largest image file read, in bytes: a bigger one is refused before it is read.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// Reads an image file, refusing what is not a regular file (a named pipe, a device: opened
/// without blocking and checked before any read) and files over [`MAX_FILE_BYTES`], so no
/// input can block a run or make it read without bound.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.display().to_string();
    let io = |source: std::io::Error| {
        Error::Image(vitrine_image::Error::Io {
            path: name.clone(),
            source,
        })
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::Image(vitrine_image::Error::TooLarge {
            path: name.clone(),
            reason: format!(
                "{} bytes; files over {} MiB are not read",
                meta.len(),
                MAX_FILE_BYTES >> 20
            ),
        }));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read still stops at the limit.
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Image(vitrine_image::Error::TooLarge {
            path: name,
            reason: format!("grew past {} MiB while being read", MAX_FILE_BYTES >> 20),
        }));
    }
    Ok(bytes)
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
        let bytes = read_image_file(path)?;
        let img = vitrine_image::decode_bytes(&bytes, &path.display().to_string(), &self.limits)?;
        Ok(self.preprocess.apply(&img))
    }

    /// L2-normalised image embeddings in input order; a failed file gets its error.
    pub fn embed_images(&self, paths: &[PathBuf]) -> Vec<ImageResult> {
        self.embed_images_with(paths, self.batch, |_, _| ())
            .into_iter()
            .map(|r| r.map(|(v, ())| v))
            .collect()
    }

    /// L2-normalised embeddings of images given as bytes (uploads), each with a name for its
    /// errors; a bad image gets its error and never stops the others.
    pub fn embed_image_bytes(&self, images: &[(String, Vec<u8>)]) -> Vec<ImageResult> {
        self.embed_inputs(
            images,
            self.batch,
            |(name, bytes)| Ok((std::borrow::Cow::Borrowed(bytes.as_slice()), name.clone())),
            |_, _| (),
        )
        .into_iter()
        .map(|r| r.map(|(v, ())| v))
        .collect()
    }

    /// [`Embedder::embed_images`] with `batch` images per forward pass, also returning
    /// `extra(file bytes, decoded image)` for each image (a content hash, a thumbnail), computed
    /// on the decoding threads so each file is read and decoded once.
    pub fn embed_images_with<T: Send>(
        &self,
        paths: &[PathBuf],
        batch: usize,
        extra: impl Fn(&[u8], &vitrine_image::RgbImage) -> T + Sync,
    ) -> Vec<Result<(Vec<f32>, T), Error>> {
        self.embed_inputs(
            paths,
            batch,
            |p| Ok((std::borrow::Cow::Owned(read_image_file(p)?), p.display().to_string())),
            extra,
        )
    }

    /// The pipeline behind the image methods: `read(input)` gives its bytes and name.
    fn embed_inputs<'a, I: Sync, T: Send>(
        &self,
        inputs: &'a [I],
        batch: usize,
        read: impl Fn(&'a I) -> Result<(std::borrow::Cow<'a, [u8]>, String), Error> + Sync,
        extra: impl Fn(&[u8], &vitrine_image::RgbImage) -> T + Sync,
    ) -> Vec<Result<(Vec<f32>, T), Error>> {
        use rayon::prelude::*;
        type Decoded<T> = Result<(Vec<f32>, T), Error>;
        let mut results: Vec<Option<Decoded<T>>> = (0..inputs.len()).map(|_| None).collect();
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<(Decoded<T>, String)>)>(1);
        let decode = |input: &'a I| -> (Decoded<T>, String) {
            match read(input) {
                Ok((bytes, name)) => {
                    let r = vitrine_image::decode_bytes(&bytes, &name, &self.limits)
                        .map_err(Error::from)
                        .map(|img| (self.preprocess.apply(&img), extra(&bytes, &img)));
                    (r, name)
                }
                Err(e) => (Err(e), String::new()),
            }
        };
        let batch = batch.max(1);
        std::thread::scope(|s| {
            // Producer: decode + preprocess batch i+1 while the consumer encodes batch i.
            s.spawn(|| {
                for (bi, chunk) in inputs.chunks(batch).enumerate() {
                    let px: Vec<(Decoded<T>, String)> = chunk.par_iter().map(decode).collect();
                    if tx.send((bi * batch, px)).is_err() {
                        return;
                    }
                }
                drop(tx);
            });
            for (start, px) in rx {
                let (mut ok, mut flat) = (Vec::new(), Vec::new());
                for (i, (r, name)) in px.into_iter().enumerate() {
                    match r {
                        Ok((mut v, t)) => {
                            ok.push((i, t, name));
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
                        for ((i, t, _), row) in ok.into_iter().zip(rows) {
                            results[start + i] = Some(Ok((row, t)));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for (i, _, name) in ok {
                            results[start + i] =
                                Some(Err(Error::Model(vitrine_clip::Error::Input(format!("{name}: {msg}")))));
                        }
                    }
                }
            }
        });
        results.into_iter().map(|r| r.expect("every input answered")).collect()
    }
}
