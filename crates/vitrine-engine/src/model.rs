//! Which model filled a collection, and loading the models queries need (once each).
//!
//! A collection filled by `index` records its model in the manifest's info: the folder
//! ([`MODEL_KEY`]), the BLAKE3 hash of its weights ([`MODEL_HASH_KEY`]) and a stamp of the weights
//! file ([`MODEL_STAMP_KEY`]: path, size, modification time). Vectors of different models do not
//! compare, so every query and every later index run checks that its model has the same weights.
//! While the weights file's stamp is unchanged, the recorded hash is trusted (the same rule as for
//! unchanged images) instead of reading 600 MB of weights per command-line query.

use crate::embedder::Embedder;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vitrine_clip::Towers;

/// Manifest info key: the folder of the model that filled the collection.
pub const MODEL_KEY: &str = "model";
/// Manifest info key: the BLAKE3 hash (32 hex digits) of that model's weights.
pub const MODEL_HASH_KEY: &str = "model_hash";
/// Manifest info key: see [`weights_stamp`].
pub const MODEL_STAMP_KEY: &str = "model_weights_stamp";

/// Where the bundled demo model lives: `VITRINE_DEMO_MODEL` if set, else `models/vitrine-demo`
/// in the source tree this binary was built from.
pub fn demo_model_dir() -> PathBuf {
    match std::env::var_os("VITRINE_DEMO_MODEL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/vitrine-demo"),
    }
}

/// The bundled demo model's folder, checked to be there.
pub fn demo_model() -> Result<String> {
    let dir = demo_model_dir();
    if !dir.join("config.json").is_file() {
        return Err(Error::NotFound(format!(
            "the bundled demo model is not at {} (set VITRINE_DEMO_MODEL, or pass --model)",
            dir.display()
        )));
    }
    Ok(dir.display().to_string())
}

/// `path|size|mtime_ns` of the weights file in `dir`.
pub fn weights_stamp(dir: &Path) -> Option<String> {
    let p = vitrine_clip::weights_file(dir).ok()?;
    let meta = std::fs::metadata(&p).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    Some(format!("{}|{}|{mtime}", p.display(), meta.len()))
}

/// A model's identity for a collection: its folder and the BLAKE3 hash of its weights.
pub fn model_identity(dir: &Path) -> Result<(String, String)> {
    let p = vitrine_clip::weights_file(dir)?;
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(&p).map_err(|e| Error::io(&p, e))?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok((dir.display().to_string(), h.finalize().to_hex()[..32].to_string()))
}

/// Refuses a model other than the one that filled the collection (vectors would not compare).
pub fn check_model(info: &serde_json::Map<String, serde_json::Value>, name: &str, hash: &str) -> Result<()> {
    match info.get(MODEL_HASH_KEY).and_then(|v| v.as_str()) {
        Some(h) if h != hash => Err(Error::ModelMismatch(format!(
            "the collection was filled by model {} (weights {h}), not {name} (weights {hash}); vectors of different \
             models are not comparable: use that model, or another collection",
            info.get(MODEL_KEY).and_then(|v| v.as_str()).unwrap_or("?")
        ))),
        _ => Ok(()),
    }
}

/// [`check_model`] for a query: when the weights file's stamp equals the one recorded at index
/// time, the recorded hash stands; otherwise the weights are hashed and compared.
pub fn check_collection_model(info: &serde_json::Map<String, serde_json::Value>, dir: &Path) -> Result<()> {
    if !info.contains_key(MODEL_HASH_KEY) {
        return Ok(()); // imported vectors: no model recorded, nothing to compare with
    }
    let recorded = info.get(MODEL_STAMP_KEY).and_then(|v| v.as_str());
    if recorded.is_some() && recorded == weights_stamp(dir).as_deref() {
        return Ok(());
    }
    let (name, hash) = model_identity(dir)?;
    check_model(info, &name, &hash)
}

/// Refuses a model whose vectors have another dimension than the collection's.
pub fn check_dim(collection: &str, have: usize, model: &str, embeds: usize) -> Result<()> {
    if have != embeds {
        return Err(Error::invalid(format!(
            "collection {collection:?} has dimension {have}, model {model} embeds to {embeds}"
        )));
    }
    Ok(())
}

/// Records in a collection's info that `name` (weights `hash`, in `dir`) made its vectors,
/// after refusing another model's weights; notes the weights file's stamp so that queries can
/// trust the recorded hash without hashing again.
pub fn record_model(col: &mut dyn crate::backend::CollectionWriter, name: &str, hash: &str, dir: &Path) -> Result<()> {
    check_model(col.info(), name, hash)?;
    let mut info = Vec::new();
    if !col.info().contains_key(MODEL_HASH_KEY) {
        info.push((MODEL_KEY.to_string(), name.into()));
        info.push((MODEL_HASH_KEY.to_string(), hash.into()));
    }
    if let Some(stamp) = weights_stamp(dir) {
        if col.info().get(MODEL_STAMP_KEY).and_then(|v| v.as_str()) != Some(stamp.as_str()) {
            info.push((MODEL_STAMP_KEY.to_string(), stamp.into()));
        }
    }
    if !info.is_empty() {
        col.set_info(info)?;
    }
    Ok(())
}

/// The model recorded for a collection, if any.
pub fn recorded_model(info: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    info.get(MODEL_KEY).and_then(|v| v.as_str())
}

/// Models loaded so far, by folder and towers, shared by every request of a process (a server
/// loads each model once; a command loads what it needs).
#[derive(Default)]
pub struct Models {
    loaded: Mutex<HashMap<(PathBuf, Towers), Arc<Embedder>>>,
}

impl Models {
    /// The model `name` (a folder or a cached hub name) with `towers`, loaded on first use.
    pub fn get(&self, name: &str, towers: Towers) -> Result<Arc<Embedder>> {
        let dir = vitrine_clip::resolve(name)?;
        let key = (std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()), towers);
        // Loading takes seconds; holding the lock meanwhile makes concurrent first requests for
        // one model wait for it instead of loading it twice.
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = loaded.get(&key).or_else(|| loaded.get(&(key.0.clone(), Towers::Both))) {
            return Ok(e.clone());
        }
        let e = Arc::new(Embedder::load_dir_towers(&dir, towers)?);
        loaded.insert(key, e.clone());
        Ok(e)
    }

    /// The model that filled a collection (or `model`, which must have the same weights), with
    /// the towers a query needs, checked against the collection's dimension.
    pub fn for_collection(
        &self,
        collection: &str,
        info: &serde_json::Map<String, serde_json::Value>,
        dim: usize,
        model: Option<&str>,
        towers: Towers,
    ) -> Result<Arc<Embedder>> {
        let name = match (model, recorded_model(info)) {
            (Some(m), _) | (None, Some(m)) => m.to_string(),
            (None, None) => {
                return Err(Error::invalid(format!(
                    "collection {collection:?} records no model (its vectors were imported); name a model, or query by vector"
                )))
            }
        };
        let e = self.get(&name, towers)?;
        check_collection_model(info, e.model().dir())?;
        if e.dim() != dim {
            return Err(Error::invalid(format!(
                "model {name} embeds to {} dimensions, collection {collection:?} has {dim}",
                e.dim()
            )));
        }
        Ok(e)
    }
}
