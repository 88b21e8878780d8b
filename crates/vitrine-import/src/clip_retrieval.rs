//! clip-retrieval output folders: `img_emb/img_emb_N.npy` beside `metadata/metadata_N.parquet`.
//!
//! Row `i` of `img_emb_N.npy` belongs to row `i` of `metadata_N.parquet`. The metadata's `key`
//! becomes the id (else `image_path`, else `url`), `image_path` or `url` the uri; `caption`,
//! `similarity`, `width`, `height` and any other columns become user fields. Source and day come
//! from columns named `source` and `timestamp`/`day` if present, else from the defaults.

use crate::{invalid, metadata, npy, Defaults, Error, Part, Result};
use std::path::{Path, PathBuf};

/// The (vectors, metadata) file pairs of a clip-retrieval folder, ordered by N.
pub fn pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let emb = dir.join("img_emb");
    let rd = std::fs::read_dir(&emb).map_err(|source| Error::Io {
        path: emb.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|source| Error::Io {
            path: emb.clone(),
            source,
        })?;
        let name = ent.file_name().to_string_lossy().to_string();
        let Some(n) = name.strip_prefix("img_emb_").and_then(|s| s.strip_suffix(".npy")) else {
            continue;
        };
        let Ok(num) = n.parse::<u64>() else { continue };
        let meta = dir.join("metadata").join(format!("metadata_{n}.parquet"));
        if !meta.is_file() {
            return Err(invalid(&ent.path(), format!("has no metadata file {}", meta.display())));
        }
        out.push((num, ent.path(), meta));
    }
    if out.is_empty() {
        return Err(invalid(
            dir,
            "not a clip-retrieval folder: no img_emb/img_emb_N.npy files",
        ));
    }
    out.sort();
    Ok(out.into_iter().map(|(_, a, b)| (a, b)).collect())
}

/// Opens every pair of a clip-retrieval folder as import [`Part`]s.
pub fn open(dir: &Path, defaults: &Defaults) -> Result<Vec<Part>> {
    let aliases: metadata::Aliases<'_> = &[("key", "id"), ("image_path", "uri"), ("url", "uri")];
    let mut offset = 0;
    let mut parts = Vec::new();
    for (v, m) in pairs(dir)? {
        let table = metadata::read_with(&m, aliases)?;
        let part = Part::from_table(npy::Npy::open(&v)?, table, &m, defaults, offset)?;
        offset += part.rows();
        parts.push(part);
    }
    Ok(parts)
}
