//! The HTTP API through the router (no socket): answers, errors and their statuses, the token,
//! originals and traversal, the sweep stream, OpenAPI against the routes, metrics, and
//! clip-retrieval's routes.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use vitrine_engine::import::{Defaults, ImportRequest, ImportSource};
use vitrine_engine::index::{IndexInputs, IndexOptions, IndexRequest};
use vitrine_engine::{Engine, Metric};
use vitrine_server::Config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vitrine-clip/tests/fixtures")
}

/// A store with `images` (fixture pictures indexed with a small model, under `root`) and
/// `vectors` (imported 4-d rows, one with a uri outside the root).
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pictures");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for f in ["scene_320x240.png", "wide_641x203.jpg", "rgba_200x200.png"] {
        std::fs::copy(fixtures().join("images").join(f), root.join("sub").join(f)).unwrap();
    }
    std::fs::write(dir.path().join("secret.jpg"), b"not for you").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.jpg"), root.join("escape.jpg")).unwrap();
    let store = dir.path().join("store");
    let engine = Engine::open_store(&store);
    engine
        .index(
            &IndexRequest {
                collection: "images".into(),
                inputs: IndexInputs::Paths {
                    paths: vec![root.clone()],
                    source: "products".into(),
                },
                model: Some(fixtures().join("chinese-clip-p16").display().to_string()),
                options: IndexOptions::default(),
            },
            &mut |_, _| {},
        )
        .unwrap();
    // 30 rows of 4-d vectors, two sources; one row claims a file outside the root.
    let n = 30;
    let mut v = Vec::new();
    let mut meta = String::new();
    for i in 0..n {
        let mut row = [0.1f32; 4];
        row[i % 4] = 1.0 + i as f32 / 50.0;
        v.extend(row);
        // r0 names a file outside the root; r1 a link inside the root that points out of it.
        let uri = match i {
            0 => dir.path().join("secret.jpg").display().to_string(),
            1 => root.join("escape.jpg").display().to_string(),
            _ => format!("/nowhere/{i}.jpg"),
        };
        meta += &format!(
            "{}\n",
            serde_json::json!({"id": format!("r{i}"), "uri": uri, "source": if i % 2 == 0 {"products"} else {"avatars"},
                               "day": format!("2023-11-{:02}", 19 + i % 5), "caption": format!("<b>row {i}</b>")})
        );
    }
    let npy = dir.path().join("v.npy");
    vitrine_engine::write_npy(&npy, &v, n, 4).unwrap();
    let m = dir.path().join("m.jsonl");
    std::fs::write(&m, meta).unwrap();
    engine
        .import(
            &ImportRequest {
                collection: "vectors".into(),
                source: ImportSource::Npy {
                    vectors: npy,
                    metadata: Some(m),
                },
                defaults: Defaults::default(),
                metric: Metric::Cosine,
                batch_size: 100,
                model: None,
            },
            &mut |_, _| {},
        )
        .unwrap();
    World { root, store, _dir: dir }
}

fn app(w: &World, config: Config) -> axum::Router {
    vitrine_server::router(Arc::new(Engine::open_store(&w.store)), config)
        .unwrap()
        .0
}

fn config(w: &World) -> Config {
    Config {
        images_root: Some(w.root.clone()),
        ..Default::default()
    }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, body, headers)
}

async fn post(app: &axum::Router, path: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, b, _) = call(app, req).await;
    (s, serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null))
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, Vec<u8>) {
    let (s, b, _) = call(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (s, b)
}

#[tokio::test]
async fn search_by_text_vector_id_and_image_answers_hits_with_fields_thumbnails_and_a_receipt() {
    let w = world();
    let app = app(&w, config(&w));
    let (s, r) = post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "images", "text": "a photo", "k": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let hits = r["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits[0]["fields"]["content_hash"].is_string() && hits[0]["fields"].get("thumbnail").is_none());
    assert_eq!(r["receipt"]["rows_scanned"], 3);
    // escape.jpg (a link to a file that is not an image) failed to index: the receipt says so.
    assert_eq!(
        (
            r["receipt"]["coverage"].as_str(),
            r["receipt"]["inputs_failed"].as_u64()
        ),
        (Some("incomplete"), Some(1)),
        "{r}"
    );
    // The thumbnail it points at is a JPEG.
    let (s, jpeg) = get(&app, hits[0]["thumbnail"].as_str().unwrap()).await;
    assert_eq!((s, &jpeg[..3]), (StatusCode::OK, &[0xFF, 0xD8, 0xFF][..]));
    // By vector, with a selection and a filter; fields by name.
    let (s, r) = post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "vectors", "vector": [1.0, 0.0, 0.0, 0.0], "k": 3, "sources": ["products"],
                           "from": "2023-11-19", "to": "2023-11-21", "filter": "id != \"r0\"", "fields": ["caption"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let ids: Vec<&str> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r20", "r16", "r12"]);
    assert_eq!(r["hits"][0]["fields"]["caption"], "<b>row 20</b>");
    // More like a stored row: itself first.
    let (_, r) = post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "vectors", "like": "r7", "k": 1}),
    )
    .await;
    assert_eq!(r["hits"][0]["id"], "r7");
    // By image: base64 in JSON, and the same file as a multipart upload, give the same hits.
    use base64::Engine as _;
    let bytes = std::fs::read(w.root.join("sub/wide_641x203.jpg")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let (s, r) = post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "images", "image": b64, "k": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["hits"][0]["uri"].as_str().unwrap().ends_with("wide_641x203.jpg"));
    let boundary = "XyZ";
    let mut form = Vec::new();
    form.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\nimages\r\n").bytes(),
    );
    form.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n1\r\n").bytes());
    form.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
            .bytes(),
    );
    form.extend(&bytes);
    form.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let req = Request::post("/api/search")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(form))
        .unwrap();
    let (s, body, _) = call(&app, req).await;
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["hits"][0]["id"], r["hits"][0]["id"]);
}

#[tokio::test]
async fn every_error_is_json_with_the_right_status_and_the_field_at_fault() {
    let w = world();
    let app = app(
        &w,
        Config {
            max_body: 64 << 10,
            ..config(&w)
        },
    );
    let cases: Vec<(serde_json::Value, StatusCode, Option<&str>)> = vec![
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0], "k": 0}),
            StatusCode::BAD_REQUEST,
            Some("k"),
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0], "like": "r1"}),
            StatusCode::BAD_REQUEST,
            Some("text|image|vector|like"),
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0], "from": "2023-13-01"}),
            StatusCode::BAD_REQUEST,
            Some("from"),
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0], "filter": "prcie > 1"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0], "sources": ["product"]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            serde_json::json!({"collection": "nope", "vector": [1, 0, 0, 0]}),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            serde_json::json!({"collection": "vectors", "like": "ghost"}),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0], "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            serde_json::json!({"collection": "images", "image": "***"}),
            StatusCode::BAD_REQUEST,
            Some("image"),
        ),
        (
            serde_json::json!({"collection": "images", "image": "aGVsbG8="}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let (s, r) = post(&app, "/api/search", body.clone()).await;
        assert_eq!(s, status, "{body} → {r}");
        assert!(r["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
        if let Some(f) = field {
            assert_eq!(r["error"]["field"], f, "{body} → {r}");
        }
    }
    // Not JSON at all; too large; the writer lock held by someone else.
    let req = Request::post("/api/search")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{oops"))
        .unwrap();
    assert_eq!(call(&app, req).await.0, StatusCode::BAD_REQUEST);
    let big = serde_json::json!({"collection": "vectors", "vector": vec![0.5f32; 40_000]});
    let (s, r) = post(&app, "/api/search", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    let held = Engine::open_store(&w.store).backend().writer().unwrap();
    let (s, r) = post(
        &app,
        "/api/collections/vectors/delete",
        serde_json::json!({"ids": ["r1"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("locked"), "{r}");
    drop(held);
    let (s, r) = post(
        &app,
        "/api/collections/vectors/delete",
        serde_json::json!({"ids": ["r1", "ghost"]}),
    )
    .await;
    assert_eq!(
        (s, &r["deleted"], &r["not_found"]),
        (StatusCode::OK, &serde_json::json!(1), &serde_json::json!(["ghost"]))
    );
    let (s, r) = post(&app, "/api/collections/vectors/delete", serde_json::json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
}

/// A PNG that is only a header: `w`×`h` grey pixels claimed, none present.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let body = [kind, data].concat();
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(&body);
        png.extend(crc(&body).to_be_bytes());
    };
    // 8-bit grey, deflate, no interlace; then an empty (zlib) image stream and the end.
    chunk(
        b"IHDR",
        &[&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 0, 0, 0, 0]].concat(),
    );
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    png
}

#[tokio::test]
async fn a_picture_bomb_is_refused_before_decoding_and_busy_model_work_answers_503() {
    use base64::Engine as _;
    let w = world();
    let open = app(&w, config(&w));
    // 60000×60000 claimed in a 65-byte file: refused from its header, naming the size.
    let bomb = base64::engine::general_purpose::STANDARD.encode(png_header(60_000, 60_000));
    let (s, r) = post(
        &open,
        "/api/search",
        serde_json::json!({"collection": "images", "image": bomb}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("60000×60000"), "{r}");
    // No model worker free (none at all here): text and image queries are told to come back;
    // vector searches, which need no model, still answer.
    let busy = app(
        &w,
        Config {
            model_workers: 0,
            queue_timeout: std::time::Duration::from_millis(20),
            ..config(&w)
        },
    );
    let (s, r) = post(
        &busy,
        "/api/search",
        serde_json::json!({"collection": "images", "text": "x"}),
    )
    .await;
    assert_eq!(
        (s, r["error"]["kind"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("busy")),
        "{r}"
    );
    let (s, r) = post(
        &busy,
        "/api/search",
        serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
}

#[tokio::test]
async fn with_a_token_only_health_and_the_page_are_open_and_the_cookie_lets_images_load() {
    let w = world();
    let app = app(
        &w,
        Config {
            token: Some("s3cret-token".into()),
            ..config(&w)
        },
    );
    assert_eq!(get(&app, "/api/health").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/assets/app.js").await.0, StatusCode::OK);
    let body = serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0]});
    for path in [
        "/api/collections",
        "/api/collections/vectors",
        "/metrics",
        "/openapi.json",
        "/indices-list",
    ] {
        assert_eq!(get(&app, path).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (s, r) = post(&app, "/api/search", body.clone()).await;
    assert_eq!(
        (s, r["error"]["kind"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let with = |auth: &str| {
        Request::post("/api/search")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, auth)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    assert_eq!(call(&app, with("Bearer wrong")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, with("Bearer s3cret-token")).await.0, StatusCode::OK);
    // The page logs in once; the HttpOnly cookie then carries the token (never a URL).
    let (s, _) = post(&app, "/api/login", serde_json::json!({"token": "nope"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let req = Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"token":"s3cret-token"}"#))
        .unwrap();
    let (s, _, h) = call(&app, req).await;
    let cookie = h.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(s == StatusCode::NO_CONTENT && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_string();
    let req = Request::get("/api/collections")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn originals_are_served_only_from_under_the_images_root() {
    let w = world();
    let open = app(&w, config(&w));
    let (_, r) = post(
        &open,
        "/api/search",
        serde_json::json!({"collection": "images", "text": "x", "k": 3}),
    )
    .await;
    let id = r["hits"][0]["id"].as_str().unwrap().to_string();
    let (s, bytes) = get(&open, &format!("/api/collections/images/image/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let uri = r["hits"][0]["uri"].as_str().unwrap();
    assert_eq!(bytes, std::fs::read(uri).unwrap());
    // A row whose file lies outside the root, traversal in the id, a bad collection name.
    assert_eq!(
        get(&open, "/api/collections/vectors/image/r0").await.0,
        StatusCode::FORBIDDEN
    );
    for path in [
        "/api/collections/images/image/..%2F..%2Fsecret.jpg",
        "/api/collections/images/image/%2Fetc%2Fpasswd",
        "/api/collections/images/image/../../secret.jpg",
        "/api/collections/..%2Fimages/image/x",
    ] {
        let s = get(&open, path).await.0;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
            "{path}: {s}"
        );
    }
    // A link inside the root that points out of it: refused.
    assert_eq!(
        get(&open, "/api/collections/vectors/image/r1").await.0,
        StatusCode::FORBIDDEN
    );
    // Without a root, no original is served at all.
    let closed = app(&w, Config::default());
    assert_eq!(
        get(&closed, &format!("/api/collections/images/image/{id}")).await.0,
        StatusCode::FORBIDDEN
    );
    // A stored row's details carry every field.
    let (s, row) = get(&open, "/api/collections/vectors/rows/r3").await;
    let row: serde_json::Value = serde_json::from_slice(&row).unwrap();
    assert_eq!(
        (s, &row["fields"]["caption"]),
        (StatusCode::OK, &serde_json::json!("<b>row 3</b>"))
    );
    assert!(row.get("vector").is_none(), "{row}");
    // With ?vector=true, its stored vector too; a bad flag is a JSON error that says so.
    let (s, row) = get(&open, "/api/collections/vectors/rows/r3?vector=true").await;
    let row: serde_json::Value = serde_json::from_slice(&row).unwrap();
    assert_eq!(
        (s, row["vector"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(4)),
        "{row}"
    );
    let (s, body) = get(&open, "/api/collections/vectors/rows/r3?vector=maybe").await;
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"]["message"].as_str().unwrap().contains("vector"), "{e}");
}

#[tokio::test]
async fn a_sweep_streams_json_lines_and_ends_with_its_receipt() {
    let w = world();
    let app = app(&w, config(&w));
    let req = Request::post("/api/sweep")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({"collection": "images", "prompts": ["a dog", "一只猫"], "threshold": -1.0}).to_string(),
        ))
        .unwrap();
    let (s, body, h) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h[header::CONTENT_TYPE], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, hits) = lines.split_last().unwrap();
    assert_eq!(hits.len(), 3, "each row once");
    assert!(hits
        .iter()
        .all(|h| h["prompt"].is_string() && h["thumbnail"].is_string()));
    assert_eq!(last["receipt"]["rows_scanned"], 3);
    // An unknown source fails before any line, as a JSON error.
    let (s, r) = post(
        &app,
        "/api/sweep",
        serde_json::json!({"collection": "images", "prompts": ["a dog"], "threshold": 0.2, "sources": ["nope"]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
}

#[tokio::test]
async fn collections_partitions_classify_and_retention_answer_in_json() {
    let w = world();
    let app = app(&w, config(&w));
    let (s, list) = get(&app, "/api/collections").await;
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, info) = get(&app, "/api/collections/images").await;
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert!(info["info"]["model"].is_string() && info["rows"] == 3, "{info}");
    let (_, parts) = get(&app, "/api/collections/vectors/partitions").await;
    let parts: serde_json::Value = serde_json::from_slice(&parts).unwrap();
    assert_eq!(parts.as_array().unwrap().len(), 10);
    let (s, r) = post(
        &app,
        "/api/classify",
        serde_json::json!({"collection": "images", "labels": ["dog", "cat"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["rows"].as_array().unwrap().len(), 3);
    let (s, r) = post(
        &app,
        "/api/collections/vectors/retain",
        serde_json::json!({"before": "2023-11-21", "dry_run": true}),
    )
    .await;
    assert_eq!((s, r["dropped"].as_array().unwrap().len()), (StatusCode::OK, 4), "{r}");
    // A legal hold keeps its day from retention and from a drop until it is released.
    let (s, h) = post(
        &app,
        "/api/collections/vectors/holds",
        serde_json::json!({"source": "avatars", "from": "2023-11-20", "to": "2023-11-20", "reason": "case 7", "by": "legal"}),
    )
    .await;
    assert_eq!((s, &h["id"]), (StatusCode::OK, &serde_json::json!(1)), "{h}");
    let (s, bad) = post(
        &app,
        "/api/collections/vectors/holds",
        serde_json::json!({"from": "2023-11-21", "to": "2023-11-20", "reason": "x", "by": "legal"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    let (_, r) = post(
        &app,
        "/api/collections/vectors/retain",
        serde_json::json!({"before": "2023-11-21", "dry_run": true}),
    )
    .await;
    assert_eq!(
        (
            r["dropped"].as_array().unwrap().len(),
            r["kept"].as_array().unwrap().len()
        ),
        (3, 1),
        "{r}"
    );
    assert_eq!(r["kept"][0]["holds"][0]["reason"], "case 7", "{r}");
    let drop_day = || {
        Request::delete("/api/collections/vectors/partitions/avatars/2023-11-20")
            .body(Body::empty())
            .unwrap()
    };
    let (s, body, _) = call(&app, drop_day()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&body));
    let (s, r) = post(
        &app,
        "/api/collections/vectors/holds/1/release",
        serde_json::json!({"reason": "closed", "by": "legal"}),
    )
    .await;
    assert_eq!(
        (s, &r["released"]["reason"]),
        (StatusCode::OK, &serde_json::json!("closed")),
        "{r}"
    );
    let (s, list) = get(&app, "/api/collections/vectors/holds").await;
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!((s, list.as_array().unwrap().len()), (StatusCode::OK, 1), "{list}");
    let (s, body, _) = call(&app, drop_day()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_and_metrics_count_them() {
    let w = world();
    let app = app(&w, config(&w));
    let (s, doc) = get(&app, "/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            listed.push(format!("{} {path}", method.to_uppercase()));
            // Every documented route exists: a request to it is never "no such route".
            let concrete = path
                .replace("{name}", "vectors")
                .replace("{watchlist}", "nope")
                .replace("{id}", "r3")
                .replace("{source}", "products")
                .replace("{day}", "2023-11-19");
            let req = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&concrete)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let (s, body, _) = call(&app, req).await;
            // axum's own "no such route" is an empty 404 (or a 405); ours are JSON.
            let unrouted = s == StatusCode::METHOD_NOT_ALLOWED || (s == StatusCode::NOT_FOUND && body.is_empty());
            assert!(!unrouted, "{method} {concrete}: {s}");
        }
    }
    listed.sort();
    let expected = [
        "DELETE /api/collections/{name}/partitions/{source}/{day}",
        "DELETE /api/collections/{name}/watchlists/{watchlist}",
        "GET /api/collections",
        "GET /api/collections/{name}",
        "GET /api/collections/{name}/holds",
        "GET /api/collections/{name}/image/{id}",
        "GET /api/collections/{name}/partitions",
        "GET /api/collections/{name}/rows/{id}",
        "GET /api/collections/{name}/thumbnail/{id}",
        "GET /api/collections/{name}/watchlists",
        "GET /api/collections/{name}/watchlists/{watchlist}/alerts",
        "GET /api/health",
        "GET /api/scrub",
        "GET /indices-list",
        "OPTIONS /knn-service",
        "OPTIONS /metadata",
        "POST /api/classify",
        "POST /api/collections/{name}/delete",
        "POST /api/collections/{name}/holds",
        "POST /api/collections/{name}/holds/{id}/release",
        "POST /api/collections/{name}/retain",
        "POST /api/collections/{name}/watchlists",
        "POST /api/collections/{name}/watchlists/{watchlist}/run",
        "POST /api/login",
        "POST /api/scrub",
        "POST /api/search",
        "POST /api/sweep",
        "POST /knn-service",
        "POST /metadata",
    ];
    assert_eq!(listed, expected);
    // Undocumented paths are not routed (the page, /openapi.json and /metrics are the extras).
    let (s, body) = get(&app, "/api/nothing-here").await;
    assert!(s == StatusCode::NOT_FOUND && body.is_empty());
    post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "vectors", "vector": [1, 0, 0, 0]}),
    )
    .await;
    let (_, m) = get(&app, "/metrics").await;
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("vitrine_http_requests_total{route=\"/api/search\",method=\"POST\",status=\"200\"}"),
        "{m}"
    );
    assert!(m.contains("vitrine_http_request_duration_seconds_bucket{"), "{m}");
    assert!(m.contains("vitrine_rows_scanned_total "), "{m}");
    assert!(m.contains("vitrine_http_errors_total{route="), "{m}");
}

#[tokio::test]
async fn clip_retrievals_client_format_is_answered() {
    let w = world();
    let app = app(&w, config(&w));
    // As ClipClient sends it: every key, unused ones null, no content type.
    let body = serde_json::json!({
        "text": null, "image": null, "image_url": null, "embedding_input": [1.0, 0.0, 0.0, 0.0],
        "deduplicate": true, "use_safety_model": true, "use_violence_detector": true, "indice_name": "vectors",
        "use_mclip": false, "aesthetic_score": 9, "aesthetic_weight": 0.5, "modality": "image",
        "num_images": 2, "num_result_ids": 5
    });
    let req = Request::post("/knn-service")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, out, h) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&out));
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let out = out.as_array().unwrap();
    // Deduplicated: rows along one axis are near-duplicates (cosine ≥ 0.94), so one per axis.
    assert!(!out.is_empty() && out.len() <= 5);
    assert!(out[0]["url"].is_string() && out[0]["similarity"].as_f64().unwrap() > 0.9 && out[0]["caption"].is_string());
    if out.len() > 2 {
        assert!(out[2].get("url").is_none(), "metadata only for the first num_images");
    }
    // The front end's form: aesthetic fields as strings, a text query, the first index by default.
    let body = serde_json::json!({"text": "a photo", "image": null, "modality": "image", "num_images": 2,
                                  "indice_name": "images", "aesthetic_score": "", "aesthetic_weight": "0.5"});
    let req = Request::post("/knn-service")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, out, _) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&out));
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(out[0]["image"].is_string(), "thumbnails as base64");
    let (_, list) = get(&app, "/indices-list").await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list).unwrap(),
        serde_json::json!(["images", "vectors"])
    );
    let req = Request::post("/metadata")
        .body(Body::from(r#"{"ids": ["r3", "ghost"], "indice_name": "vectors"}"#))
        .unwrap();
    let (_, meta, _) = call(&app, req).await;
    let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta[0]["metadata"]["caption"], "<b>row 3</b>");
    assert_eq!(meta[1]["metadata"], serde_json::json!({}));
    // image_url would need the network: refused by name.
    let body = serde_json::json!({"image_url": "http://example.com/a.jpg", "modality": "image", "num_images": 1, "indice_name": "images"});
    let (s, r) = post(&app, "/knn-service", body).await;
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("image_url"))
    );
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let engine = Arc::new(Engine::open_store("/nonexistent-store"));
    let config = Config {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..Default::default()
    };
    let e = vitrine_server::serve_blocking(engine, config, |_| {}).unwrap_err();
    assert!(e.to_string().contains("--token"), "{e}");
}

#[tokio::test]
async fn watchlists_are_added_run_listed_read_and_removed_over_the_api() {
    let w = world();
    let app = app(&w, config(&w));
    let base = "/api/collections/vectors/watchlists";
    // More rows like r2 (axis 2), back-filled from the first day.
    let body =
        serde_json::json!({"name": "like-r2", "likes": ["r2"], "threshold": 0.9, "since": "2023-11-19", "by": "ana"});
    let (s, added) = post(&app, base, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["queries"][0], serde_json::json!({"kind": "like", "text": "r2"}));
    assert!(
        !added.to_string().contains("vector"),
        "query vectors stay on the server: {added}"
    );
    let (s, e) = post(&app, base, body).await;
    assert_eq!(
        (s, e["error"]["kind"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{e}"
    );
    let (s, e) = post(
        &app,
        base,
        serde_json::json!({"name": "x", "likes": ["r2"], "threshold": 0.9, "since": "19/11/2023", "by": "ana"}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("since")),
        "{e}"
    );
    let (s, e) = post(&app, &format!("{base}/nope/run"), serde_json::json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");

    // The run: every row with cosine ≥ 0.9 to r2 (those along axis 2: r2, r6, ..., r26).
    let (s, run) = post(&app, &format!("{base}/like-r2/run"), serde_json::json!({})).await;
    assert_eq!(s, StatusCode::OK, "{run}");
    let mut ids: Vec<&str> = run["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["r10", "r14", "r18", "r2", "r22", "r26", "r6"]);
    assert_eq!(run["backfill"], true);
    assert_eq!(
        run["alerts"][0]["thumbnail"].as_str(),
        Some(
            format!(
                "/api/collections/vectors/thumbnail/{}",
                run["alerts"][0]["id"].as_str().unwrap()
            )
            .as_str()
        )
    );
    let (s, again) = post(&app, &format!("{base}/like-r2/run"), serde_json::json!({})).await;
    assert_eq!((s, again["alerts"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    // Listing and reading: what is new since alert 3.
    let (s, list) = get(&app, base).await;
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (list[0]["runs"].as_u64(), list[0]["alerts"].as_u64()),
        (Some(2), Some(7)),
        "{list}"
    );
    let (s, page) = get(&app, &format!("{base}/like-r2/alerts?after=3")).await;
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    assert_eq!(s, StatusCode::OK);
    let n: Vec<u64> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["n"].as_u64().unwrap())
        .collect();
    assert_eq!(n, [4, 5, 6, 7]);
    let (s, _) = get(&app, &format!("{base}/like-r2/alerts?after=x")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Removal.
    let req = Request::delete(format!("{base}/like-r2")).body(Body::empty()).unwrap();
    let (s, _, _) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = get(&app, base).await;
    assert_eq!(list, b"[]");
}

#[tokio::test]
async fn weighted_prompts_blend_into_a_text_search_and_are_checked() {
    let w = world();
    let app = app(&w, config(&w));
    let (s, r) = post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "images", "text": "一只狗", "add": ["0.5:一只猫"], "subtract": ["一辆车"], "k": 3}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["query"], "一只狗 +0.5 \"一只猫\" -1 \"一辆车\"");
    assert_eq!(r["hits"].as_array().unwrap().len(), 3);
    for (body, field) in [
        (
            serde_json::json!({"collection": "images", "like": "x", "add": ["一只猫"]}),
            "add",
        ),
        (
            serde_json::json!({"collection": "images", "text": "一只狗", "subtract": ["inf:一只猫"]}),
            "subtract",
        ),
    ] {
        let (s, e) = post(&app, "/api/search", body).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{e}"
        );
    }
}

/// The scrub re-reads every byte, so it finds what no query checks: a flipped bit in a stored
/// vector (which queries still answer from), names the file in `GET /api/scrub`, and counts it
/// in /metrics.
#[tokio::test]
async fn a_scrub_finds_a_flipped_bit_in_the_vectors_names_the_file_and_counts_it() {
    let w = world();
    let app = app(&w, config(&w));
    let (s, body) = get(&app, "/api/scrub").await;
    assert_eq!(s, StatusCode::OK);
    let before: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(before["runs"], 0);
    assert_eq!(before["every_seconds"], 86_400);
    let (s, clean) = post(&app, "/api/scrub", serde_json::json!({})).await;
    assert_eq!(s, StatusCode::OK, "{clean}");
    assert_eq!(clean["runs"], 1);
    assert_eq!(clean["collections"], 2);
    assert_eq!(clean["problems"], serde_json::json!([]));
    assert!(
        clean["files"].as_u64().unwrap() >= 3 && clean["rows"].as_u64().unwrap() >= 30,
        "{clean}"
    );
    // One bit of one stored vector: a query would still open this segment.
    let seg = std::fs::read_dir(w.store.join("collections/vectors/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "vseg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[64 + 5] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let (s, _) = post(
        &app,
        "/api/search",
        serde_json::json!({"collection": "vectors", "vector": [1.0, 0.1, 0.1, 0.1], "k": 3}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, found) = post(&app, "/api/scrub", serde_json::json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let problems = found["problems"].as_array().unwrap();
    let name = seg.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(problems.len(), 1, "{found}");
    assert!(
        problems[0].as_str().unwrap().starts_with("vectors: ") && problems[0].as_str().unwrap().contains(&name),
        "{found}"
    );
    let (_, last) = get(&app, "/api/scrub").await;
    let last: serde_json::Value = serde_json::from_slice(&last).unwrap();
    assert_eq!(last["problems"], found["problems"]);
    assert_eq!(last["runs"], 2);
    let (_, metrics) = get(&app, "/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("vitrine_scrub_problems 1"), "{metrics}");
    assert!(metrics.contains("vitrine_scrubs_total 2"), "{metrics}");
}
