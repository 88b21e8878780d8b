//! `vitrine embed`: texts or images → L2-normalised vectors, as JSON lines or a .npy matrix.

use crate::args::{EmbedArgs, EmbedFormat};
use anyhow::{bail, Context, Result};
use std::io::Write;
use vitrine_engine::Engine;

pub fn run(engine: &Engine, a: EmbedArgs) -> Result<()> {
    let (rows, dim, failed): (Vec<Vec<f32>>, usize, usize) = if !a.text.is_empty() {
        let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
        let (rows, warnings) = engine.embed_texts(&a.model, &texts)?;
        super::warn(&warnings);
        let dim = rows.first().map_or(0, Vec::len);
        (rows, dim, 0)
    } else {
        let (dim, results) = engine.embed_images(&a.model, &a.image, a.batch)?;
        let mut rows = Vec::new();
        let mut failed = 0;
        // Errors name their file; a failed image never stops the others.
        for r in results {
            match r {
                Ok(v) => rows.push(v),
                Err(err) => {
                    eprintln!("error: {err}");
                    failed += 1;
                }
            }
        }
        (rows, dim, failed)
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
            vitrine_engine::write_npy(path, &flat, rows.len(), dim)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} × {dim} to {}", rows.len(), path.display());
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
