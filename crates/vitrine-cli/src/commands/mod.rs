//! Command execution: each submodule runs one family of commands over the engine.

mod analyze;
mod bench;
mod calibrate;
mod demo;
mod dupes;
mod embed;
mod export;
mod gallery;
mod import;
mod index;
mod manage;
mod search;
mod serve;
mod watch;

use crate::args::{Cli, Command, SelectionArgs};
use anyhow::{Context, Result};
use vitrine_engine::{Day, Engine, SelectionSpec};

pub fn run(cli: Cli) -> Result<()> {
    let engine = match cli.backend.as_deref().filter(|b| !b.is_empty()) {
        // migrate names both of its backends itself.
        Some(url) if !matches!(cli.command, Command::Migrate(_)) => Engine::new(backend(url)?),
        _ => Engine::open_store(cli.store.clone()),
    };
    match cli.command {
        Command::Demo(a) => demo::run(&engine, &cli.store, a),
        Command::Collection(c) => manage::collection(&engine, c),
        Command::Partitions(p) => manage::partitions(&engine, p),
        Command::Embed(a) => embed::run(&engine, a),
        Command::Index(a) => index::run(&engine, &cli.store, a),
        Command::Import(a) => import::run(&engine, a),
        Command::Search(a) => {
            let r = search::run(&engine, a);
            leaving(engine, r)
        }
        Command::Sweep(a) => {
            let r = analyze::sweep(&engine, a);
            leaving(engine, r)
        }
        Command::Classify(a) => {
            let r = analyze::classify(&engine, a);
            leaving(engine, r)
        }
        Command::Dupes(a) => {
            let r = dupes::run(&engine, a);
            leaving(engine, r)
        }
        Command::Export(a) => export::run(&engine, a),
        Command::Calibrate(a) => calibrate::run(&engine, a),
        Command::Delete(a) => manage::delete(&engine, a),
        Command::Hold(h) => manage::hold(&engine, h),
        Command::Watch(w) => watch::run(&engine, w),
        Command::Serve(a) => serve::run(engine, &cli.store, a),
        Command::Compact(c) => manage::compact(&engine, &c.collection),
        Command::Check(c) => manage::check(&engine, c.collection.as_deref()),
        Command::Migrate(m) => manage::migrate(m),
        Command::Bench(b) => bench::run(&engine, &cli.store, b),
    }
}

/// Ends a read-only command without dropping its engine: the process is about to exit, and
/// the kernel tears down the segment mappings in one go. Dropping the engine unmaps each
/// segment in turn (a TLB shootdown to every worker thread each time): 20 ms of a 75 ms query
/// over a 374-segment store. Nothing a reader holds needs a destructor (no locks, no buffered
/// writes).
fn leaving(engine: Engine, result: Result<()>) -> Result<()> {
    std::mem::forget(engine);
    result
}

/// A backend named on the command line: a `milvus://` URL, or else a store directory.
pub fn backend(place: &str) -> Result<std::sync::Arc<dyn vitrine_engine::Backend>> {
    if place.contains("://") {
        Ok(std::sync::Arc::new(vitrine_milvus::MilvusBackend::connect(place)?))
    } else {
        Ok(std::sync::Arc::new(vitrine_engine::EmbeddedBackend::new(place)))
    }
}

/// Parses a day argument, naming the flag in the error.
pub fn parse_day(flag: &str, s: &str) -> Result<Day> {
    s.parse().with_context(|| format!("--{flag}"))
}

/// Turns selection flags into the engine's [`SelectionSpec`].
pub fn selection(a: &SelectionArgs) -> Result<SelectionSpec> {
    Ok(SelectionSpec {
        sources: a.sources.clone(),
        from: a.from.as_deref().map(|f| parse_day("from", f)).transpose()?,
        to: a.to.as_deref().map(|t| parse_day("to", t)).transpose()?,
        last: a.last.as_deref().map(|l| l.parse().context("--last")).transpose()?,
        filter: a.filter.clone(),
    })
}

/// Warnings from the engine, on stderr.
pub fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
