//! `vitrine embed`: texts or images → L2-normalised vectors, as JSON lines or a .npy matrix.

use crate::args::{EmbedArgs, EmbedFormat};
use anyhow::{bail, Context, Result};
use std::io::Write;
use vitrine_engine::{Embedder, Towers};

pub fn run(a: EmbedArgs) -> Result<()> {
    let towers = if a.text.is_empty() { Towers::Image } else { Towers::Text };
    let mut e = Embedder::load_towers(&a.model, towers)?;
    e.set_batch(a.batch);
    let (rows, failed): (Vec<Vec<f32>>, usize) = if !a.text.is_empty() {
        let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
        (e.embed_texts(&texts)?, 0)
    } else {
        let mut rows = Vec::new();
        let mut failed = 0;
        // Errors name their file; a failed image never stops the others.
        for r in e.embed_images(&a.image) {
            match r {
                Ok(v) => rows.push(v),
                Err(err) => {
                    eprintln!("error: {err}");
                    failed += 1;
                }
            }
        }
        (rows, failed)
    };
    match a.format {
        EmbedFormat::Json => {
            let mut out = std::io::stdout().lock();
            for r in &rows {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        EmbedFormat::Npy => {
            let Some(path) = &a.out else {
                bail!("--format npy needs --out FILE")
            };
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            vitrine_import::npy::write_f32(path, &flat, rows.len(), e.dim())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} × {} to {}", rows.len(), e.dim(), path.display());
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images failed (listed above); the others were embedded",
            a.image.len()
        );
    }
    Ok(())
}
