//! The watchlists under `/api/collections/{name}/watchlists`: list, add, remove, run, alerts.
//! Each handler calls one engine method ([`vitrine_engine::watch`]); query vectors stay on the
//! server (a watchlist is shown by its prompts, images and ids).

use crate::api::thumbnail_url;
use crate::error::{ApiError, ErrorBody};
use crate::{blocking, model_work, ModelWork, State};
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vitrine_engine::negatives::Negatives;
use vitrine_engine::watch::{Alert, WatchRun, Watchlist, WatchlistRequest, WatchlistStatus};

pub(crate) fn routes() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
        .routes(routes!(run))
        .routes(routes!(alerts))
}

/// A watchlist as JSON: its queries by kind and text, without their vectors.
fn watchlist_json(w: &Watchlist) -> Value {
    let queries = |q: &[vitrine_engine::watch::WatchQuery]| -> Vec<Value> {
        q.iter().map(|q| json!({"kind": q.kind, "text": q.text})).collect()
    };
    json!({
        "name": w.name,
        "queries": queries(&w.queries),
        "threshold": w.threshold,
        "not": queries(&w.negatives),
        "not_margin": w.margin,
        "sources": w.sources,
        "since": w.since.map(|d| d.to_string()),
        "start": w.start,
        "by": w.by,
        "at": w.at,
    })
}

fn status_json(s: &WatchlistStatus) -> Value {
    json!({
        "watchlist": watchlist_json(&s.watchlist),
        "cursor": s.cursor,
        "published": s.published,
        "runs": s.runs,
        "alerts": s.alerts,
        "last_run": s.last_run,
    })
}

fn alert_json(collection: &str, a: &Alert) -> Value {
    let mut v = serde_json::to_value(a).expect("an alert serialises");
    v["thumbnail"] = json!(thumbnail_url(collection, &a.id));
    v
}

fn run_json(collection: &str, r: &WatchRun) -> Value {
    json!({
        "watchlist": r.watchlist,
        "run": r.run,
        "from": r.from,
        "to": r.to,
        "backfill": r.backfill,
        "rows_evaluated": r.rows_evaluated,
        "already_alerted": r.already_alerted,
        "vetoed": r.vetoed,
        "alerts": r.alerts.iter().map(|a| alert_json(collection, a)).collect::<Vec<_>>(),
    })
}

/// The watchlists of a collection, with their cursors, runs and alert counts.
#[utoipa::path(get, path = "/api/collections/{name}/watchlists", params(("name" = String, Path)),
    responses((status = 200, description = "[{watchlist: {name, queries, threshold, not, sources, since, by, at}, cursor, published, runs, alerts, last_run}]"), (status = 404, body = ErrorBody)))]
async fn list(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let all = blocking(move || engine.watchlists(&name).map_err(ApiError::from)).await?;
    Ok(Json(all.iter().map(status_json).collect::<Vec<_>>()).into_response())
}

/// `POST /api/collections/{name}/watchlists` body.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct WatchlistBody {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Text prompts to look for.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Stored rows to look for more of, by id.
    #[serde(default)]
    pub likes: Vec<String>,
    /// Alert on rows scoring at least this for some query.
    pub threshold: f64,
    /// Negative prompts.
    #[serde(default)]
    pub not: Vec<String>,
    /// The negatives' margin.
    #[serde(default)]
    pub not_margin: f64,
    /// Only rows of these sources.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Back-fill from this day (YYYY-MM-DD) on its first run.
    pub since: Option<String>,
    /// Who adds it.
    pub by: String,
}

/// Adds a watchlist (prompts and stored ids; image files are added from the command line).
#[utoipa::path(post, path = "/api/collections/{name}/watchlists", params(("name" = String, Path)), request_body = WatchlistBody,
    responses((status = 200, description = "the watchlist"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
    body: Result<Json<WatchlistBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let since = match &b.since {
        Some(d) => Some(d.parse().map_err(|e| ApiError::bad("since", format!("since: {e}")))?),
        None => None,
    };
    let req = WatchlistRequest {
        name: b.name,
        prompts: b.prompts,
        images: vec![],
        likes: b.likes,
        threshold: b.threshold,
        negatives: Negatives {
            prompts: b.not,
            margin: b.not_margin,
        },
        sources: b.sources,
        since,
        by: b.by,
        model: None,
    };
    let engine = state.engine.clone();
    // Embedding the prompts is model work: it waits for a permit like a text search.
    let w = model_work(&state, ModelWork::Text, move || {
        engine.add_watchlist(&name, &req).map_err(ApiError::from)
    })
    .await?;
    Ok(Json(watchlist_json(&w)).into_response())
}

/// Removes a watchlist; its definition and alerts are kept aside on the server.
#[utoipa::path(delete, path = "/api/collections/{name}/watchlists/{watchlist}", params(("name" = String, Path), ("watchlist" = String, Path)),
    responses((status = 200, description = "{removed}"), (status = 404, body = ErrorBody)))]
async fn remove(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, watchlist)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let w = watchlist.clone();
    blocking(move || engine.remove_watchlist(&name, &w).map_err(ApiError::from)).await?;
    Ok(Json(json!({ "removed": watchlist })).into_response())
}

/// Runs a watchlist on the rows added since its last run; answers its new alerts.
#[utoipa::path(post, path = "/api/collections/{name}/watchlists/{watchlist}/run", params(("name" = String, Path), ("watchlist" = String, Path)),
    responses((status = 200, description = "{watchlist, run, from, to, backfill, rows_evaluated, already_alerted, vetoed, alerts}"), (status = 404, body = ErrorBody)))]
async fn run(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, watchlist)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let c = name.clone();
    let r = blocking(move || engine.run_watchlist(&c, &watchlist).map_err(ApiError::from)).await?;
    Ok(Json(run_json(&name, &r)).into_response())
}

/// `GET .../alerts` parameters.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// Only alerts numbered after this one.
    #[serde(default)]
    after: u64,
    /// At most this many (default 500).
    limit: Option<usize>,
}

/// A watchlist's alerts numbered after `after` (oldest first; the page asks for what is new).
#[utoipa::path(get, path = "/api/collections/{name}/watchlists/{watchlist}/alerts",
    params(("name" = String, Path), ("watchlist" = String, Path), ("after" = Option<u64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, description = "{watchlist, alerts: [{n, run, id, score, query, source, day, uri, timestamp, arrival, found, thumbnail}]}"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn alerts(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, watchlist)): Path<(String, String)>,
    params: Result<axum::extract::Query<AlertParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(p) = params?;
    let engine = state.engine.clone();
    let (c, w) = (name.clone(), watchlist.clone());
    let limit = p.limit.unwrap_or(500).min(10_000);
    let a = blocking(move || engine.alerts(&c, &w, p.after, limit).map_err(ApiError::from)).await?;
    Ok(Json(json!({
        "watchlist": watchlist,
        "alerts": a.iter().map(|x| alert_json(&name, x)).collect::<Vec<_>>(),
    }))
    .into_response())
}
