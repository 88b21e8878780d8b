//! `/metrics` in Prometheus's text format: requests, latencies and errors by route, and rows
//! scanned by searches.

use crate::State;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<RouteLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    rows_scanned: Counter,
    scrubs: Counter,
    scrub_problems: Gauge,
    scrub_finished: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RouteLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms .. 33 s
            Histogram::new(exponential_buckets(0.0005, 2.0, 17))
        });
        let rows_scanned = Counter::default();
        registry.register(
            "vitrine_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "vitrine_http_errors",
            "HTTP responses with a 4xx or 5xx status, by route",
            errors.clone(),
        );
        registry.register(
            "vitrine_http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        registry.register(
            "vitrine_rows_scanned",
            "Rows scored by searches and sweeps",
            rows_scanned.clone(),
        );
        let (scrubs, scrub_problems, scrub_finished) = (Counter::default(), Gauge::default(), Gauge::default());
        registry.register("vitrine_scrubs", "Scrubs finished (every file re-read)", scrubs.clone());
        registry.register(
            "vitrine_scrub_problems",
            "Damaged files the last scrub found",
            scrub_problems.clone(),
        );
        registry.register(
            "vitrine_scrub_finished_timestamp_seconds",
            "When the last scrub finished (unix seconds)",
            scrub_finished.clone(),
        );
        Metrics {
            scrubs,
            scrub_problems,
            scrub_finished,
            registry,
            requests,
            errors,
            latency,
            rows_scanned,
        }
    }
}

impl Metrics {
    /// Records a finished scrub and how many damaged files it found.
    pub fn scrubbed(&self, problems: usize) {
        self.scrubs.inc();
        self.scrub_problems.set(problems as i64);
        self.scrub_finished.set(chrono::Utc::now().timestamp());
    }

    /// Counts rows a search scored.
    pub fn scanned(&self, rows: u64) {
        self.rows_scanned.inc_by(rows);
    }
}

/// Middleware: counts and times every request by its route template (`/api/collections/{name}`,
/// never the raw path, so ids do not become labels).
pub async fn record(axum::extract::State(state): axum::extract::State<State>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    let status = resp.status().as_u16();
    m.requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status,
        })
        .inc();
    if status >= 400 {
        m.errors.get_or_create(&RouteLabels { route: route.clone() }).inc();
    }
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`.
pub async fn render(axum::extract::State(state): axum::extract::State<State>) -> Response {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &state.metrics.registry).is_err() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
