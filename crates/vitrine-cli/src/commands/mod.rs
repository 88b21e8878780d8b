//! Command execution: each submodule runs one family of commands.

mod analyze;
mod bench;
mod demo;
mod embed;
mod gallery;
mod import;
mod index;
mod manage;
mod search;

use crate::args::{Cli, Command, SelectionArgs};
use anyhow::{Context, Result};
use vitrine_store::{Day, Expr, Schema, Selection};

pub fn run(cli: Cli) -> Result<()> {
    let store = cli.store.clone();
    match cli.command {
        Command::Demo(a) => demo::run(&store, a),
        Command::Collection(c) => manage::collection(&store, c),
        Command::Partitions(p) => manage::partitions(&store, p),
        Command::Embed(a) => embed::run(a),
        Command::Index(a) => index::run(&store, a),
        Command::Import(a) => import::run(&store, a),
        Command::Search(a) => search::run(&store, a),
        Command::Sweep(a) => analyze::sweep(&store, a),
        Command::Classify(a) => analyze::classify(&store, a),
        Command::Delete(a) => manage::delete(&store, a),
        Command::Compact(c) => manage::compact(&store, &c.collection),
        Command::Check(c) => manage::check(&store, &c.collection),
        Command::Bench(b) => bench::run(&store, b),
    }
}

/// `--model` if given, else the bundled demo model (a path baked in at build time, or
/// `VITRINE_DEMO_MODEL`).
pub fn model_or_demo(model: Option<String>) -> Result<String> {
    if let Some(m) = model {
        return Ok(m);
    }
    let dir = vitrine_engine::demo_model_dir();
    anyhow::ensure!(
        dir.join("config.json").is_file(),
        "the bundled demo model is not at {} (set VITRINE_DEMO_MODEL, or pass --model)",
        dir.display()
    );
    Ok(dir.display().to_string())
}

/// Parses a day argument, naming the flag in the error.
pub fn parse_day(flag: &str, s: &str) -> Result<Day> {
    s.parse().with_context(|| format!("--{flag}"))
}

/// Turns selection flags into a store [`Selection`], checking the filter against `schema`.
pub fn selection(a: &SelectionArgs, schema: &Schema) -> Result<Selection> {
    let (mut from, mut to) = (None, None);
    if let Some(f) = &a.from {
        from = Some(parse_day("from", f)?);
    }
    if let Some(t) = &a.to {
        to = Some(parse_day("to", t)?);
    }
    if let Some(last) = &a.last {
        let secs = vitrine_store::parse_age(last).context("--last")?;
        let today = Day::today();
        from = Some(vitrine_store::days_back(today, secs));
        to = Some(today);
    }
    if let (Some(f), Some(t)) = (from, to) {
        anyhow::ensure!(f <= t, "--from {f} is after --to {t}");
    }
    let filter = match &a.filter {
        Some(text) => Some(Expr::parse(text, schema).map_err(anyhow::Error::new)?),
        None => None,
    };
    Ok(Selection {
        sources: a.sources.clone(),
        from,
        to,
        filter,
    })
}
