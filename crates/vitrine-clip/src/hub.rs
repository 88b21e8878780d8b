//! Finding a checkpoint: a local folder, or a hub name resolved in the local Hugging Face cache.
//! Nothing is ever downloaded.

use crate::Error;
use std::path::{Path, PathBuf};

/// The Hugging Face hub cache directory: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn hub_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

/// Resolves `model` to a folder holding `config.json`: the folder itself, or
/// `HUB/models--ORG--NAME/snapshots/REV/` (REV from `refs/main`, else the only snapshot).
pub fn resolve(model: &str) -> Result<PathBuf, Error> {
    let p = Path::new(model);
    if p.is_dir() {
        if !p.join("config.json").is_file() {
            return Err(Error::Checkpoint {
                path: p.to_path_buf(),
                msg: "folder has no config.json".into(),
            });
        }
        return Ok(p.to_path_buf());
    }
    // Hub names are ORG/NAME; anything shaped like a path is a folder that is not there.
    let path_like = model.starts_with(['/', '.', '~']) || model.contains('\\') || model.matches('/').count() > 1;
    if path_like {
        return Err(Error::NotFound(format!(
            "model {model:?}: no such folder (a model is a folder with config.json and weights, or an ORG/NAME in the Hugging Face cache)"
        )));
    }
    let cache = hub_cache();
    let repo = cache.join(format!("models--{}", model.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let rev = std::fs::read_to_string(repo.join("refs").join("main"))
        .ok()
        .map(|s| s.trim().to_string());
    let candidate = match rev {
        Some(r) => Some(snapshots.join(r)),
        None => std::fs::read_dir(&snapshots).ok().and_then(|rd| {
            let dirs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            (dirs.len() == 1).then(|| dirs[0].clone())
        }),
    };
    match candidate {
        Some(dir) if dir.join("config.json").is_file() => Ok(dir),
        _ => Err(Error::NotFound(format!(
            "model {model:?} is neither a folder nor in the Hugging Face cache (looked for {}); vitrine never \
             downloads: on a machine with network run `huggingface-cli download {model}` and copy {} here, or \
             pass --model with a local folder holding config.json and model.safetensors",
            snapshots.display(),
            repo.display()
        ))),
    }
}
