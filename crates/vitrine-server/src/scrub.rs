//! The scrub: a query verifies the metadata of every file it opens, but not the vector
//! payload (too large to re-hash per query), so `vitrine serve` re-reads every byte of every
//! collection on a schedule (`--scrub-every`), as `vitrine check` does, and reports what it
//! found: `GET /api/scrub`, the `vitrine_scrub_*` metrics, and a warning in the log per damaged
//! file. `POST /api/scrub` runs one now.

use crate::error::{ApiError, ErrorBody};
use crate::{blocking, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the scrubs found so far.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ScrubStatus {
    /// Scrubs finished since the server started.
    pub runs: u64,
    /// Whether one is running now.
    pub running: bool,
    /// The schedule, in seconds between scrubs (none: only on request).
    pub every_seconds: Option<u64>,
    /// When the last one started (RFC 3339).
    pub started: Option<String>,
    /// How long it took.
    pub seconds: Option<f64>,
    /// Collections it read.
    pub collections: usize,
    /// Files read.
    pub files: usize,
    /// Live rows.
    pub rows: u64,
    /// Every damaged file it found, each with what is wrong (empty: every checksum matched).
    pub problems: Vec<String>,
    /// Why it could not run (a backend that cannot be scrubbed from here).
    pub error: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<State> {
    OpenApiRouter::new().routes(routes!(status, run_now))
}

/// The last scrub's findings.
#[utoipa::path(get, path = "/api/scrub", responses((status = 200, body = ScrubStatus)))]
async fn status(axum::extract::State(state): axum::extract::State<State>) -> Json<ScrubStatus> {
    Json(state.scrub.lock().unwrap().clone())
}

/// Scrubs every collection now and answers its findings.
#[utoipa::path(post, path = "/api/scrub",
    responses((status = 200, body = ScrubStatus), (status = 409, description = "a scrub is running", body = ErrorBody)))]
async fn run_now(axum::extract::State(state): axum::extract::State<State>) -> Result<Json<ScrubStatus>, ApiError> {
    Ok(Json(run(&state).await?))
}

/// Runs one scrub (or answers 409 if one is running) and records it.
pub(crate) async fn run(state: &State) -> Result<ScrubStatus, ApiError> {
    {
        let mut s = state.scrub.lock().unwrap();
        if s.running {
            return Err(ApiError::new(StatusCode::CONFLICT, "conflict", "a scrub is running"));
        }
        s.running = true;
    }
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let clock = Instant::now();
    let engine = state.engine.clone();
    let checked = blocking(move || Ok(engine.check(None))).await;
    let mut s = state.scrub.lock().unwrap();
    s.running = false;
    let checked = checked?;
    s.runs += 1;
    s.started = Some(started);
    s.seconds = Some(clock.elapsed().as_secs_f64());
    match checked {
        Ok(checks) => {
            s.error = None;
            s.collections = checks.len();
            s.files = checks.iter().map(|c| c.report.files).sum();
            s.rows = checks.iter().map(|c| c.report.rows).sum();
            s.problems = checks
                .iter()
                .flat_map(|c| c.report.problems.iter().map(move |p| format!("{}: {p}", c.collection)))
                .collect();
        }
        Err(e) => {
            s.error = Some(e.to_string());
            s.problems.clear();
        }
    }
    for p in &s.problems {
        tracing::warn!(problem = %p, "scrub found a damaged file");
    }
    tracing::info!(
        files = s.files,
        rows = s.rows,
        problems = s.problems.len(),
        seconds = s.seconds,
        "scrub done"
    );
    state.metrics.scrubbed(s.problems.len());
    Ok(s.clone())
}

/// Scrubs every `every`, the first one an `every` after the start.
pub(crate) async fn schedule(state: State, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = run(&state).await {
            tracing::warn!(error = %e, "scheduled scrub skipped");
        }
    }
}
