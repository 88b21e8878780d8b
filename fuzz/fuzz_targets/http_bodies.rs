//! The HTTP API's request bodies, through vitrine-server's real router in-process (tower's
//! `oneshot`, no socket) over a small store (see `vitrine_fuzz::build_store`; no model, so
//! text and image queries answer 503 and vector, like and id queries run). The first input
//! byte picks the route; the rest is the body (or, for the last routes, the request target or
//! a multipart upload). Routes that write (retain, holds, delete, watchlists) get the store
//! put back after each request.
#![no_main]

use axum::body::Body;
use axum::http::{header, Method, Request};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tower::ServiceExt;
use vitrine_engine::Engine;

struct World {
    rt: tokio::runtime::Runtime,
    store: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
    app: Mutex<axum::Router>,
}

fn make_app(store: &PathBuf) -> axum::Router {
    let config = vitrine_server::Config {
        model_workers: 0,
        queue_timeout: Duration::from_millis(10),
        request_timeout: Duration::from_secs(20),
        max_k: 1000,
        ..Default::default()
    };
    vitrine_server::router(Arc::new(Engine::open_store(store)), config).unwrap().0
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let store = vitrine_fuzz::build_store(&vitrine_fuzz::scratch().join("build"));
        let files = vitrine_fuzz::snapshot_files(&store);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        World {
            app: Mutex::new(make_app(&store)),
            rt,
            store,
            files,
        }
    })
}

/// (method, path, writes to the store)
const ROUTES: &[(&str, &str, bool)] = &[
    ("POST", "/api/search", false),
    ("POST", "/api/sweep", false),
    ("POST", "/api/classify", false),
    ("POST", "/knn-service", false),
    ("POST", "/metadata", false),
    ("POST", "/api/login", false),
    ("POST", "/api/collections/vectors/retain", true),
    ("POST", "/api/collections/vectors/holds", true),
    ("POST", "/api/collections/vectors/holds/1/release", true),
    ("POST", "/api/collections/vectors/delete", true),
    ("POST", "/api/collections/vectors/watchlists", true),
];

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&which, body)) = data.split_first() else { return };
    let n = ROUTES.len() + 2;
    let which = which as usize % n;
    let (req, writes) = if which < ROUTES.len() {
        let (method, path, writes) = ROUTES[which];
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_vec()))
            .unwrap();
        (req, writes)
    } else if which == ROUTES.len() {
        // A GET of any request target (path and query string): rows, thumbnails, partitions...
        let Ok(target) = std::str::from_utf8(body) else { return };
        let Ok(req) = Request::get(target).body(Body::empty()) else { return };
        (req, false)
    } else {
        // A multipart search (the page's image upload).
        let req = Request::post("/api/search")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=fuzz")
            .body(Body::from(body.to_vec()))
            .unwrap();
        (req, false)
    };
    let app = w.app.lock().unwrap().clone();
    w.rt.block_on(async move {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes());
        assert!(!status.is_server_error() || status.as_u16() == 503 || status.as_u16() == 500, "{status}");
        if status.as_u16() == 500 {
            panic!("500 Internal Server Error: {:?}", bytes.map(|b| String::from_utf8_lossy(&b).into_owned()));
        }
    });
    if writes {
        vitrine_fuzz::restore_files(&w.store, &w.files);
        *w.app.lock().unwrap() = make_app(&w.store);
    }
});
