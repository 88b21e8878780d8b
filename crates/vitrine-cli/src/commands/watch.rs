//! `vitrine watch`: watchlists (add, list, remove, run, alerts) and the `--watch` of index and
//! import.

use crate::args::{Format, WatchAddArgs, WatchCmd};
use crate::output::Rows;
use anyhow::{Context, Result};
use vitrine_engine::watch::{Alert, WatchRun, WatchlistRequest};
use vitrine_engine::Engine;

pub fn run(engine: &Engine, cmd: WatchCmd) -> Result<()> {
    match cmd {
        WatchCmd::Add(a) => add(engine, a),
        WatchCmd::List { c, format } => {
            let mut rows = Rows::new(&[
                "name",
                "queries",
                "threshold",
                "not",
                "sources",
                "since",
                "cursor",
                "published",
                "runs",
                "alerts",
                "last_run",
                "by",
                "at",
            ]);
            for s in engine.watchlists(&c.collection)? {
                let w = &s.watchlist;
                let texts = |q: &[vitrine_engine::watch::WatchQuery]| {
                    q.iter()
                        .map(|q| format!("{} {}", q.kind, q.text))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                rows.rows.push(vec![
                    w.name.clone().into(),
                    texts(&w.queries).into(),
                    w.threshold.into(),
                    texts(&w.negatives).into(),
                    w.sources.join(",").into(),
                    w.since.map(|d| d.to_string()).unwrap_or_default().into(),
                    s.cursor.into(),
                    s.published.into(),
                    s.runs.into(),
                    s.alerts.into(),
                    s.last_run.clone().unwrap_or_default().into(),
                    w.by.clone().into(),
                    w.at.clone().into(),
                ]);
            }
            rows.print(format, &mut std::io::stdout().lock())?;
            Ok(())
        }
        WatchCmd::Remove { c, name } => {
            let to = engine.remove_watchlist(&c.collection, &name)?;
            say!(
                "removed watchlist {name:?}; its definition and alerts are kept in {}",
                to.display()
            );
            Ok(())
        }
        WatchCmd::Run { c, name, format, html } => {
            let runs = match &name {
                Some(n) => vec![engine.run_watchlist(&c.collection, n)?],
                None => engine.run_watchlists(&c.collection)?,
            };
            if runs.is_empty() {
                eprintln!(
                    "collection {:?} has no watchlists (add one with `vitrine watch add`)",
                    c.collection
                );
            }
            summarise(&runs);
            let alerts: Vec<Alert> = runs.into_iter().flat_map(|r| r.alerts).collect();
            print_alerts(&alerts, format)?;
            if let Some(path) = html {
                page(engine, &c.collection, &path, "new alerts", &alerts)?;
            }
            Ok(())
        }
        WatchCmd::Alerts {
            c,
            name,
            after,
            format,
            html,
        } => {
            let mut alerts = engine.alerts(&c.collection, &name, after, usize::MAX)?;
            print_alerts(&alerts, format)?;
            if let Some(path) = html {
                alerts.reverse();
                page(engine, &c.collection, &path, "alerts", &alerts)?;
            }
            Ok(())
        }
    }
}

fn add(engine: &Engine, a: WatchAddArgs) -> Result<()> {
    let by =
        a.by.or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .context("say who you are with --by (no $USER is set)")?;
    let w = engine.add_watchlist(
        &a.c.collection,
        &WatchlistRequest {
            name: a.name,
            prompts: a.prompt,
            images: a.image,
            likes: a.like,
            threshold: a.threshold,
            negatives: a.neg.negatives(),
            sources: a.sources,
            since: a.since.as_deref().map(|d| super::parse_day("since", d)).transpose()?,
            by,
            model: a.model,
        },
    )?;
    say!(
        "added watchlist {:?}: {} quer{}, threshold {}{}; rows committed from now on{} are evaluated by `vitrine watch run`",
        w.name,
        w.queries.len(),
        if w.queries.len() == 1 { "y" } else { "ies" },
        w.threshold,
        if w.negatives.is_empty() {
            String::new()
        } else {
            format!(", {} negative prompt(s)", w.negatives.len())
        },
        w.since.map(|d| format!(" (and, on its first run, every row from {d})")).unwrap_or_default()
    );
    Ok(())
}

/// One line per run on stderr.
pub fn summarise(runs: &[WatchRun]) {
    for r in runs {
        let commits = if r.to > r.from {
            format!("commits {}..={}", r.from + 1, r.to)
        } else {
            "no commit since its last run".to_string()
        };
        eprintln!(
            "watchlist {:?} run {}: {} new alert(s) among {} row(s) evaluated ({commits}{}){}{}",
            r.watchlist,
            r.run,
            r.alerts.len(),
            r.rows_evaluated,
            if r.backfill { ", with its back-fill" } else { "" },
            if r.already_alerted > 0 {
                format!("; {} already alerted by an interrupted run", r.already_alerted)
            } else {
                String::new()
            },
            if r.vetoed > 0 {
                format!("; {} removed by negative prompts", r.vetoed)
            } else {
                String::new()
            },
        );
    }
}

fn print_alerts(alerts: &[Alert], format: Format) -> Result<()> {
    let mut rows = Rows::new(&[
        "watchlist",
        "n",
        "id",
        "score",
        "query",
        "source",
        "day",
        "uri",
        "arrival",
        "found",
    ]);
    for a in alerts {
        rows.rows.push(vec![
            a.watchlist.clone().into(),
            a.n.into(),
            a.id.clone().into(),
            a.score.into(),
            a.query.clone().into(),
            a.source.clone().into(),
            a.day.to_string().into(),
            a.uri.clone().into(),
            a.arrival.into(),
            a.found.clone().into(),
        ]);
    }
    rows.print(format, &mut std::io::stdout().lock())?;
    Ok(())
}

fn page(engine: &Engine, collection: &str, path: &std::path::Path, what: &str, alerts: &[Alert]) -> Result<()> {
    let shown: Vec<(String, String)> = alerts.iter().map(|a| (a.id.clone(), a.uri.clone())).collect();
    let thumbs = engine.thumbnails(collection, &shown)?;
    let title = format!("vitrine: {what} in {collection}");
    crate::html::write_alerts(path, &title, alerts, &thumbs).with_context(|| path.display().to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `--watch` of index and import: every watchlist of the collection on what was just added,
/// the new alerts printed as JSON lines.
pub fn after_write(engine: &Engine, collection: &str) -> Result<()> {
    let runs = engine.run_watchlists(collection)?;
    summarise(&runs);
    let alerts: Vec<Alert> = runs.into_iter().flat_map(|r| r.alerts).collect();
    print_alerts(&alerts, Format::Jsonl)
}
