//! `vitrine serve`: the HTTP API and the page, over the engine.

use crate::args::ServeArgs;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use vitrine_engine::Engine;

pub fn run(engine: Engine, store: &Path, a: ServeArgs) -> Result<()> {
    let mut config = vitrine_server::Config {
        addr: a.addr,
        token: a.token.filter(|t| !t.is_empty()),
        images_root: a.images_root,
        max_body: a.max_body_mib << 20,
        max_k: a.max_k,
        scrub_every: a.scrub_every.0,
        ..Default::default()
    };
    if let Some(n) = a.model_workers {
        config.model_workers = n;
    }
    serve(engine, store, config)
}

/// Serves `engine` until Ctrl-C, saying where.
pub fn serve(engine: Engine, store: &Path, config: vitrine_server::Config) -> Result<()> {
    let auth = if config.token.is_some() {
        "token required"
    } else {
        "no token, loopback only"
    };
    let where_ = match engine.backend().location() {
        l if l.starts_with("store ") => store.display().to_string(),
        l => l,
    };
    vitrine_server::serve_blocking(Arc::new(engine), config, |addr| {
        // The one line scripts wait for (the port, when asked for port 0).
        println!(
            "vitrine serving {} on http://{addr}/ ({auth}); Ctrl-C stops it",
            where_.as_str()
        );
    })?;
    Ok(())
}
