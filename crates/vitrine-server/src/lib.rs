//! `vitrine serve`: the HTTP API and the web page, one more front end of the engine.
//!
//! One process: the engine (its store stays open and mapped between requests, each model is
//! loaded once and shared) behind an axum router on tokio. Engine work is blocking and runs on
//! tokio's blocking pool; work that runs a model (text and image queries, sweeps, classify)
//! also takes one of a few permits, so a burst of uploads queues instead of exhausting memory,
//! and a request that waits too long for one is answered 503.
//!
//! * [`api`]: the JSON API under `/api` (search, sweep as JSON Lines, classify, collections,
//!   partitions, retention, deletes, thumbnails and originals).
//! * [`compat`]: clip-retrieval's back end routes (`/knn-service`, `/indices-list`,
//!   `/metadata`), so its client and front end query vitrine unchanged.
//! * [`page`]: the web page at `/`, its assets built into the binary.
//! * [`security`]: the bearer token (or its cookie), and serving originals only from under an
//!   allowed folder.
//! * [`metrics`]: `/metrics` in Prometheus's text format.
//!
//! `/openapi.json` is generated from the handlers' own annotations (utoipa), so it lists
//! exactly the routes the router serves.
//!
//! Dependencies: `axum`/`tokio`/`tower`/`tower-http` (the tokio project's HTTP stack),
//! `utoipa` + `utoipa-axum` (OpenAPI from the handlers), `prometheus-client` (the Prometheus
//! project's Rust client), `percent-encoding` (servo).
#![deny(missing_docs)]

pub mod api;
pub mod compat;
mod error;
pub mod metrics;
pub mod page;
pub mod scrub;
pub mod security;
mod watch;

pub use error::ApiError;

use axum::extract::DefaultBodyLimit;
use security::BearerAuth;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use vitrine_engine::Engine;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The bearer token every route but health and the page needs (none: open, loopback only).
    pub token: Option<String>,
    /// Originals are served only from under this folder (none: never).
    pub images_root: Option<PathBuf>,
    /// Largest request body, bytes (an uploaded image included).
    pub max_body: usize,
    /// Largest `k` (and `num_images`).
    pub max_k: usize,
    /// Image queries that may be decoded and embedded at once; the others queue. A text query
    /// (small in memory) takes an eighth of a worker, so text searches overlap more. 0: no model
    /// work at all (text and image queries answer 503 busy; vectors, likes and ids still work).
    pub model_workers: usize,
    /// How long a request may wait for a model worker before it is answered 503.
    pub queue_timeout: Duration,
    /// How long a request may take in all.
    pub request_timeout: Duration,
    /// How often [`serve`] re-reads every file to catch bit rot in the vector payload (none:
    /// only when `POST /api/scrub` asks).
    pub scrub_every: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            images_root: None,
            max_body: 16 << 20,
            max_k: 10_000,
            model_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            scrub_every: Some(Duration::from_secs(86_400)),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Listening on a non-loopback address with no token would expose the store.
    #[error("refusing to listen on {0} without a token: pass --token (or set VITRINE_TOKEN), or listen on 127.0.0.1")]
    OpenToTheNetwork(SocketAddr),
    /// The images root is not a folder.
    #[error("--images-root {path}: {why}", path = .0.display(), why = .1)]
    ImagesRoot(PathBuf, String),
    /// Binding or serving failed.
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
}

/// What every handler shares.
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The configuration.
    pub config: Config,
    /// The images root, canonical (links resolved).
    pub images_root: Option<PathBuf>,
    /// Permits for model work.
    pub model_permits: Semaphore,
    /// Counters and histograms for `/metrics`.
    pub metrics: metrics::Metrics,
    /// What the scrubs found.
    pub scrub: std::sync::Mutex<scrub::ScrubStatus>,
}

/// Shared state.
pub type State = Arc<AppState>;

#[derive(OpenApi)]
#[openapi(
    info(title = "vitrine", description = "Exact image search by text, image or vector over (source, day) partitions."),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The router and the OpenAPI description of its routes (tests use the router without a socket).
pub fn router(engine: Arc<Engine>, config: Config) -> Result<(axum::Router, utoipa::openapi::OpenApi), Error> {
    Ok(routes(app_state(engine, config)?))
}

fn app_state(engine: Arc<Engine>, config: Config) -> Result<State, Error> {
    let images_root = match &config.images_root {
        Some(r) => Some(
            std::fs::canonicalize(r)
                .ok()
                .filter(|c| c.is_dir())
                .ok_or_else(|| Error::ImagesRoot(r.clone(), "not a folder".into()))?,
        ),
        None => None,
    };
    let state: State = Arc::new(AppState {
        engine,
        model_permits: Semaphore::new(config.model_workers * SHARES_PER_WORKER as usize),
        images_root,
        metrics: metrics::Metrics::default(),
        scrub: std::sync::Mutex::new(scrub::ScrubStatus {
            every_seconds: config.scrub_every.map(|d| d.as_secs()),
            ..Default::default()
        }),
        config,
    });
    Ok(state)
}

fn routes(state: State) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::routes())
        .merge(watch::routes())
        .merge(scrub::routes())
        .merge(compat::routes())
        .split_for_parts();
    let doc = openapi.clone();
    let router = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route("/metrics", axum::routing::get(metrics::render))
        .merge(page::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body))
        .with_state(state);
    (router, openapi)
}

/// Listens on `config.addr` and serves until Ctrl-C; `ready(addr)` is called once listening.
pub async fn serve(engine: Arc<Engine>, config: Config, ready: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    let addr = config.addr;
    if config.token.is_none() && !addr.ip().is_loopback() {
        return Err(Error::OpenToTheNetwork(addr));
    }
    let state = app_state(engine, config)?;
    if let Some(every) = state.config.scrub_every {
        tokio::spawn(scrub::schedule(state.clone(), every));
    }
    let (router, _) = routes(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io(addr, e))?;
    let bound = listener.local_addr().map_err(|e| Error::Io(addr, e))?;
    ready(bound);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Error::Io(bound, e))
}

/// [`serve`] on a runtime of its own, for callers that are not async (the `vitrine` command).
pub fn serve_blocking(engine: Arc<Engine>, config: Config, ready: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    let addr = config.addr;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(addr, e))?
        .block_on(serve(engine, config, ready))
}

/// Runs blocking engine work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

/// Shares of a model worker: an image query takes them all (decoded pixels and the vision
/// tower's activations are what fill memory in a burst of uploads), a text query one.
pub(crate) const SHARES_PER_WORKER: u32 = 8;

/// How much of a model worker a piece of model work takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ModelWork {
    /// Texts: prompts, labels.
    Text,
    /// Images: uploads.
    Image,
}

/// Embeds a search's query under the model-work limit (text and image queries), so that only
/// the model's part waits for a permit; the scan then runs on the blocking pool like any other.
pub(crate) async fn embedded(
    state: &State,
    req: vitrine_engine::query::SearchRequest,
) -> Result<vitrine_engine::query::SearchRequest, ApiError> {
    if !req.query.needs_model() {
        return Ok(req);
    }
    let kind = if matches!(
        req.query,
        vitrine_engine::query::Query::Text(_) | vitrine_engine::query::Query::Blend { .. }
    ) {
        ModelWork::Text
    } else {
        ModelWork::Image
    };
    let engine = state.engine.clone();
    model_work(state, kind, move || engine.embed_query(req).map_err(ApiError::from)).await
}

/// Runs model work: waits (at most the queue timeout) for a permit, then runs it blocking.
pub(crate) async fn model_work<T: Send + 'static>(
    state: &State,
    kind: ModelWork,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(
        state.config.queue_timeout,
        state.model_permits.acquire_many(match kind {
            ModelWork::Text => 1,
            ModelWork::Image => SHARES_PER_WORKER,
        }),
    )
    .await
    .map_err(|_| {
        ApiError::busy(format!(
            "every model worker has been busy for {} s; try again",
            state.config.queue_timeout.as_secs()
        ))
    })?
    .map_err(|_| ApiError::busy("the server is shutting down"))?;
    let r = blocking(f).await;
    drop(permit);
    r
}
