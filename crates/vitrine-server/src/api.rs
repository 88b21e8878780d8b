//! The JSON API under `/api`. Handlers parse and check the request, call the engine (on the
//! blocking pool; model work behind the permits), and shape its answer; nothing else.

use crate::error::{ApiError, ErrorBody};
use crate::{blocking, model_work, ModelWork, State};
use axum::extract::{FromRequest, Multipart, Path, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vitrine_engine::admin::{Cutoff, DeleteRequest, RetainRequest};
use vitrine_engine::holds::HoldRequest;
use vitrine_engine::negatives::Negatives;
use vitrine_engine::query::{ClassifyRequest, Query, SearchRequest, SweepRequest, Weighted};
use vitrine_engine::{Day, Hit, SelectionSpec};

/// The collection a request names when it names none.
pub const DEFAULT_COLLECTION: &str = "images";

pub(crate) fn routes() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(login))
        .routes(routes!(search))
        .routes(routes!(sweep))
        .routes(routes!(classify))
        .routes(routes!(collections))
        .routes(routes!(collection))
        .routes(routes!(partitions))
        .routes(routes!(drop_partition))
        .routes(routes!(retain))
        .routes(routes!(holds, place_hold))
        .routes(routes!(release_hold))
        .routes(routes!(delete_rows))
        .routes(routes!(row))
        .routes(routes!(thumbnail))
        .routes(routes!(image))
}

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness; needs no token.
#[utoipa::path(get, path = "/api/health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `POST /api/login` body.
#[derive(Deserialize, ToSchema)]
pub struct Login {
    /// The server's token.
    token: String,
}

/// Checks the token and sets the HttpOnly cookie the page's requests (and `<img>` thumbnails)
/// then carry, so the token never appears in a URL.
#[utoipa::path(post, path = "/api/login", request_body = Login,
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn login(
    axum::extract::State(state): axum::extract::State<State>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(l) = body?;
    match &state.config.token {
        Some(t) if crate::security::same(&l.token, t) => Ok((
            StatusCode::NO_CONTENT,
            [(header::SET_COOKIE, crate::security::cookie(t))],
        )
            .into_response()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "wrong token")),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Which rows: the fields every query and delete share.
#[derive(Deserialize, ToSchema, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Only these sources.
    #[serde(default)]
    pub sources: Vec<String>,
    /// First day, YYYY-MM-DD, inclusive.
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD, inclusive.
    pub to: Option<String>,
    /// Only the last N days, today included ("30d", "12w", "36h").
    pub last: Option<String>,
    /// A filter expression (the Milvus boolean-expression subset), e.g. `price > 100`.
    pub filter: Option<String>,
}

impl Selection {
    fn spec(&self) -> Result<SelectionSpec, ApiError> {
        let day = |field: &str, v: &Option<String>| -> Result<Option<Day>, ApiError> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<Day>()
                        .map_err(|e| ApiError::bad(field, format!("{field}: {e}")))
                })
                .transpose()
        };
        Ok(SelectionSpec {
            sources: self.sources.iter().filter(|s| !s.is_empty()).cloned().collect(),
            from: day("from", &self.from)?,
            to: day("to", &self.to)?,
            last: self
                .last
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|e| ApiError::bad("last", format!("last: {e}"))))
                .transpose()?,
            filter: self.filter.clone().filter(|f| !f.trim().is_empty()),
        })
    }
}

/// `POST /api/search`: exactly one of `text`, `image`, `vector`, `like`.
#[derive(Deserialize, ToSchema, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// The collection (default "images").
    pub collection: Option<String>,
    /// A text query (English or Chinese, as the collection's model reads).
    pub text: Option<String>,
    /// An image query: the file's bytes, base64.
    pub image: Option<String>,
    /// A query vector.
    pub vector: Option<Vec<f32>>,
    /// An uploaded file's bytes (multipart), kept as they came.
    #[serde(skip)]
    pub image_bytes: Option<Vec<u8>>,
    /// The id of a stored row: more like it.
    pub like: Option<String>,
    /// Results (default 20; with a threshold, an optional cap).
    pub k: Option<usize>,
    /// Every row scoring at least this (cosine, ip) or within this distance (l2).
    pub threshold: Option<f64>,
    /// Only these user fields in the hits (default: all).
    pub fields: Option<Vec<String>>,
    /// Negative prompts: a hit must score higher for the query than for any of these (by more
    /// than `not_margin`, default 0).
    #[serde(default)]
    pub not: Vec<String>,
    /// See `not`.
    pub not_margin: Option<f64>,
    /// Weighted prompts blended into the text query, rclip's `W:prompt` (see the README).
    #[serde(default)]
    pub add: Vec<String>,
    /// Prompts subtracted from the text query (`W:prompt` too).
    #[serde(default)]
    pub subtract: Vec<String>,
    /// Which rows.
    #[serde(flatten)]
    pub selection: Selection,
}

/// One hit.
#[derive(Serialize, ToSchema)]
pub struct HitJson {
    rank: usize,
    id: String,
    score: f64,
    source: String,
    day: String,
    uri: String,
    /// User fields by name.
    #[schema(value_type = Object)]
    fields: serde_json::Map<String, serde_json::Value>,
    /// Where the row's thumbnail is served.
    thumbnail: String,
}

/// What a search found.
#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    /// The query, in words.
    query: String,
    hits: Vec<HitJson>,
    /// What the search covered (partitions and rows scanned or excluded, failed and pending
    /// inputs, coverage).
    #[schema(value_type = Object)]
    receipt: serde_json::Value,
    /// Things to know about the query (a language the model was not trained for, ...).
    warnings: Vec<String>,
}

/// The URL of a row's thumbnail.
pub fn thumbnail_url(collection: &str, id: &str) -> String {
    format!(
        "/api/collections/{}/thumbnail/{}",
        utf8_percent_encode(collection, NON_ALPHANUMERIC),
        utf8_percent_encode(id, NON_ALPHANUMERIC)
    )
}

fn hit_json(collection: &str, h: Hit) -> HitJson {
    HitJson {
        thumbnail: thumbnail_url(collection, &h.id),
        rank: h.rank,
        score: h.score,
        source: h.source,
        day: h.day.to_string(),
        uri: h.uri,
        fields: h.fields.to_json(),
        id: h.id,
    }
}

/// The body as JSON, or as `multipart/form-data` (an `image` file part, the other fields as
/// text parts; `sources` may repeat).
async fn search_body(state: &State, req: Request) -> Result<SearchBody, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let Json(b) = Json::<SearchBody>::from_request(req, state).await?;
        return Ok(b);
    }
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::bad("body", e.body_text()))?;
    let mut b = SearchBody::default();
    while let Some(field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "image" {
            let bytes = field.bytes().await?;
            if !bytes.is_empty() {
                b.image_bytes = Some(bytes.to_vec());
            }
            continue;
        }
        let text = field.text().await?;
        let num = |v: &str| -> Result<f64, ApiError> {
            v.trim()
                .parse()
                .map_err(|_| ApiError::bad(&name, format!("{name}: {v:?} is not a number")))
        };
        let some = |v: String| Some(v).filter(|v| !v.is_empty());
        match name.as_str() {
            "collection" => b.collection = some(text),
            "text" => b.text = some(text),
            "like" => b.like = some(text),
            "k" if !text.is_empty() => b.k = Some(num(&text)? as usize),
            "threshold" if !text.is_empty() => b.threshold = Some(num(&text)?),
            "k" | "threshold" => {}
            "not" if !text.trim().is_empty() => b.not.push(text),
            "not" => {}
            "not_margin" if !text.is_empty() => b.not_margin = Some(num(&text)?),
            "not_margin" => {}
            "add" if !text.trim().is_empty() => b.add.push(text),
            "subtract" if !text.trim().is_empty() => b.subtract.push(text),
            "add" | "subtract" => {}
            "sources" | "source" => b.selection.sources.push(text),
            "from" => b.selection.from = some(text),
            "to" => b.selection.to = some(text),
            "last" => b.selection.last = some(text),
            "filter" => b.selection.filter = some(text),
            other => return Err(ApiError::bad(other, format!("unknown form field {other:?}"))),
        }
    }
    Ok(b)
}

/// Exact search: the top k (or every row past a threshold) for one query; hits with their
/// fields, thumbnails and the recall receipt. Also accepts `multipart/form-data` with an
/// `image` file part.
#[utoipa::path(post, path = "/api/search", request_body = SearchBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn search(
    axum::extract::State(state): axum::extract::State<State>,
    req: Request,
) -> Result<Json<SearchResponse>, ApiError> {
    let mut b = search_body(&state, req).await?;
    let collection = b.collection.clone().unwrap_or_else(|| DEFAULT_COLLECTION.to_string());
    let given = [
        b.text.is_some(),
        b.image.is_some() || b.image_bytes.is_some(),
        b.vector.is_some(),
        b.like.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::bad(
            "text|image|vector|like",
            "give exactly one of text, image (base64), vector or like (a stored id)",
        ));
    }
    let max_k = state.config.max_k;
    if let Some(k) = b.k {
        if k == 0 || k > max_k {
            return Err(ApiError::bad("k", format!("k must be 1..={max_k}")));
        }
    }
    let add = weighted(&b.add, &b.subtract)?;
    if !add.is_empty() && b.text.is_none() {
        return Err(ApiError::bad(
            "add",
            "add and subtract blend prompts into a text query: give text too",
        ));
    }
    let query = if let Some(t) = b.text.clone() {
        if add.is_empty() {
            Query::Text(vec![t])
        } else {
            Query::Blend { texts: vec![t], add }
        }
    } else if let Some(bytes) = b.image_bytes.take() {
        Query::ImageBytes(vec![("uploaded image".to_string(), bytes)])
    } else if let Some(i) = b.image.take() {
        // Only the decoded bytes wait for a model worker (not the base64 text as well).
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(i.trim())
            .map_err(|e| ApiError::bad("image", format!("image: not base64 ({e})")))?;
        Query::ImageBytes(vec![("uploaded image".to_string(), bytes)])
    } else if let Some(v) = b.vector.clone() {
        Query::Vectors(v)
    } else {
        Query::Like(vec![b.like.clone().unwrap_or_default()])
    };
    let req = SearchRequest {
        collection: collection.clone(),
        query,
        k: b.k,
        threshold: b.threshold,
        selection: b.selection.spec()?,
        model: None,
        fields: b.fields.clone(),
        negatives: Negatives {
            prompts: b.not.clone(),
            margin: b.not_margin.unwrap_or(0.0),
        },
    };
    let req = crate::embedded(&state, req).await?;
    let engine = state.engine.clone();
    let ans = blocking(move || engine.search(&req).map_err(ApiError::from)).await?;
    state.metrics.scanned(ans.receipt.scan.rows_scanned);
    let hits = ans.hits.into_iter().next().unwrap_or_default();
    if hits.len() > max_k {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "{} rows pass the threshold, more than {max_k}: use /api/sweep, which streams every one",
                hits.len()
            ),
        ));
    }
    Ok(Json(SearchResponse {
        query: ans.labels.into_iter().next().unwrap_or_default(),
        hits: hits.into_iter().map(|h| hit_json(&collection, h)).collect(),
        receipt: serde_json::to_value(&ans.receipt).unwrap_or_default(),
        warnings: ans.warnings,
    }))
}

/// `add` and `subtract` as weighted prompts (`W:prompt`), subtracted ones negated.
fn weighted(add: &[String], subtract: &[String]) -> Result<Vec<Weighted>, ApiError> {
    let parse = |field: &str, s: &String| Weighted::parse(s).map_err(|e| ApiError::bad(field, format!("{field}: {e}")));
    let mut out = Vec::new();
    for s in add {
        out.push(parse("add", s)?);
    }
    for s in subtract {
        out.push(parse("subtract", s)?.negated());
    }
    Ok(out)
}

/// `POST /api/sweep` body.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct SweepBody {
    /// The collection (default "images").
    pub collection: Option<String>,
    /// Text prompts (any language the model reads); a row matches if any prompt does.
    pub prompts: Vec<String>,
    /// Every row scoring at least this for some prompt.
    pub threshold: f64,
    /// Negative prompts: a row must score higher for its prompt than for any of these (by more
    /// than `not_margin`, default 0).
    #[serde(default)]
    pub not: Vec<String>,
    /// See `not`.
    pub not_margin: Option<f64>,
    /// Weighted prompts blended into every prompt, rclip's `W:prompt`.
    #[serde(default)]
    pub add: Vec<String>,
    /// Prompts subtracted from every prompt (`W:prompt` too).
    #[serde(default)]
    pub subtract: Vec<String>,
    /// Which rows.
    #[serde(flatten)]
    pub selection: Selection,
}

/// Every row past the threshold for any prompt, exactly, streamed as JSON Lines: one hit per
/// line (each row once, with its best prompt), partition by partition, best first within each;
/// the last line is `{"receipt": ...}`.
#[utoipa::path(post, path = "/api/sweep", request_body = SweepBody,
    responses((status = 200, description = "JSON Lines", content_type = "application/x-ndjson"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn sweep(
    axum::extract::State(state): axum::extract::State<State>,
    body: Result<Json<SweepBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let collection = b.collection.clone().unwrap_or_else(|| DEFAULT_COLLECTION.to_string());
    let req = SweepRequest {
        collection: collection.clone(),
        prompts: b.prompts.clone(),
        threshold: Some(b.threshold),
        top: None,
        selection: b.selection.spec()?,
        model: None,
        negatives: Negatives {
            prompts: b.not.clone(),
            margin: b.not_margin.unwrap_or(0.0),
        },
        blend: weighted(&b.add, &b.subtract)?,
    };
    // Lines flow through a bounded channel: a slow reader slows the sweep, and no more than
    // a few partitions' hits are ever held.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let engine = state.engine.clone();
    let st = state.clone();
    let first = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let (ready_tx, ready_rx) = first;
    let prompts = b.prompts.clone();
    let owner = state.clone();
    let task = async move {
        let _ = model_work(&owner, ModelWork::Text, move || {
            let mut ready = Some(ready_tx);
            let c = collection.clone();
            let result = engine.sweep_each(&req, &mut |h| {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                let line = serde_json::json!({
                    "prompt": prompts.get(h.query).cloned().unwrap_or_default(),
                    "id": h.id, "score": h.score, "source": h.source, "day": h.day.to_string(), "uri": h.uri,
                    "thumbnail": thumbnail_url(&c, &h.id),
                });
                // A reader that went away ends the sweep.
                tx.blocking_send(Ok(format!("{line}\n")))
                    .map_err(|_| vitrine_engine::Error::invalid("the client closed the connection"))
            });
            match result {
                Ok(receipt) => {
                    st.metrics.scanned(receipt.scan.rows_scanned);
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                    let _ = tx.blocking_send(Ok(format!("{}\n", serde_json::json!({ "receipt": receipt }))));
                    Ok(())
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    match ready.take() {
                        Some(r) => {
                            let _ = r.send(Err(e));
                        }
                        // Hits were already sent: the stream ends with an error line.
                        None => {
                            let _ = tx.blocking_send(Ok(format!(
                                "{}\n",
                                serde_json::json!({"error": {"kind": e.kind, "message": e.message}})
                            )));
                        }
                    }
                    Ok(())
                }
            }
        })
        .await;
    };
    tokio::spawn(task);
    // Errors found before the first line (bad prompt, unknown source) are answered as errors.
    match ready_rx.await {
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {}
        Err(_) => return Err(ApiError::busy("the sweep could not start")),
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /api/classify` body.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBody {
    /// The collection (default "images").
    pub collection: Option<String>,
    /// Distinct labels, at least two.
    pub labels: Vec<String>,
    /// Prompt templates with `{}` for the label (default `["a photo of a {}"]`).
    #[serde(default)]
    pub templates: Vec<String>,
    /// Which rows.
    #[serde(flatten)]
    pub selection: Selection,
}

/// One row's label.
#[derive(Serialize, ToSchema)]
pub struct LabelJson {
    id: String,
    source: String,
    day: String,
    uri: String,
    label: String,
    score: f64,
    second: String,
    margin: f64,
}

/// A label for every row in the selection.
#[derive(Serialize, ToSchema)]
pub struct ClassifyResponse {
    rows: Vec<LabelJson>,
    warnings: Vec<String>,
}

/// Zero-shot labels for every row in a selection (cosine in f64 against each label's mean
/// template embedding).
#[utoipa::path(post, path = "/api/classify", request_body = ClassifyBody,
    responses((status = 200, body = ClassifyResponse), (status = 400, body = ErrorBody)))]
async fn classify(
    axum::extract::State(state): axum::extract::State<State>,
    body: Result<Json<ClassifyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let Json(b) = body?;
    let req = ClassifyRequest {
        collection: b.collection.clone().unwrap_or_else(|| DEFAULT_COLLECTION.to_string()),
        labels: b.labels.clone(),
        templates: if b.templates.is_empty() {
            vec!["a photo of a {}".into()]
        } else {
            b.templates.clone()
        },
        selection: b.selection.spec()?,
        model: None,
    };
    let engine = state.engine.clone();
    let ans = model_work(&state, ModelWork::Text, move || {
        engine.classify(&req).map_err(ApiError::from)
    })
    .await?;
    Ok(Json(ClassifyResponse {
        rows: ans
            .rows
            .into_iter()
            .map(|r| LabelJson {
                label: ans.labels[r.label].clone(),
                second: ans.labels[r.second].clone(),
                id: r.id,
                source: r.source,
                day: r.day.to_string(),
                uri: r.uri,
                score: r.score,
                margin: r.margin,
            })
            .collect(),
        warnings: ans.warnings,
    }))
}

/// Every collection with its size.
#[utoipa::path(get, path = "/api/collections", responses((status = 200, description = "[{name, dim, metric, rows, partitions}]")))]
async fn collections(axum::extract::State(state): axum::extract::State<State>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let list = blocking(move || match engine.collections() {
        Ok(l) => Ok(l),
        // No store yet: no collections.
        Err(e) if e.kind() == vitrine_engine::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e.into()),
    })
    .await?;
    Ok(Json(list).into_response())
}

/// A collection: schema, model, counts, days, sources.
#[utoipa::path(get, path = "/api/collections/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "schema, model, counts"), (status = 404, body = ErrorBody)))]
async fn collection(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let info = blocking(move || engine.collection_info(&name).map_err(ApiError::from)).await?;
    Ok(Json(info).into_response())
}

/// Rows per (source, day) partition.
#[utoipa::path(get, path = "/api/collections/{name}/partitions", params(("name" = String, Path)),
    responses((status = 200, description = "[{source, day, segments, rows, deleted, bytes}]"), (status = 404, body = ErrorBody)))]
async fn partitions(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let parts = blocking(move || engine.partitions(&name).map_err(ApiError::from)).await?;
    Ok(Json(parts).into_response())
}

/// Drops one (source, day) partition.
#[utoipa::path(delete, path = "/api/collections/{name}/partitions/{source}/{day}",
    params(("name" = String, Path), ("source" = String, Path), ("day" = String, Path)),
    responses((status = 200, description = "the partition dropped"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn drop_partition(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, source, day)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let day: Day = day.parse().map_err(|e| ApiError::bad("day", format!("day: {e}")))?;
    let engine = state.engine.clone();
    let p = blocking(move || engine.drop_partition(&name, &source, day).map_err(ApiError::from)).await?;
    Ok(Json(p).into_response())
}

/// `POST /api/collections/{name}/retain` body: one of `older_than` or `before`.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RetainBody {
    /// Drop days older than the last N days ("400d"): it keeps exactly what `last` shows.
    pub older_than: Option<String>,
    /// Drop days before this one (YYYY-MM-DD).
    pub before: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Only say what would be dropped.
    #[serde(default)]
    pub dry_run: bool,
}

/// Retention: drops (or, with `dry_run`, lists) every partition older than the cutoff.
#[utoipa::path(post, path = "/api/collections/{name}/retain", params(("name" = String, Path)), request_body = RetainBody,
    responses((status = 200, description = "{cutoff, dry_run, dropped, kept: partitions legal holds kept, with the holds}"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retain(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
    body: Result<Json<RetainBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let cutoff = match (&b.older_than, &b.before) {
        (Some(a), None) => Cutoff::OlderThan(
            a.parse()
                .map_err(|e| ApiError::bad("older_than", format!("older_than: {e}")))?,
        ),
        (None, Some(d)) => Cutoff::Before(d.parse().map_err(|e| ApiError::bad("before", format!("before: {e}")))?),
        _ => {
            return Err(ApiError::bad(
                "older_than|before",
                "give exactly one of older_than or before",
            ))
        }
    };
    let req = RetainRequest {
        collection: name,
        cutoff,
        source: b.source.clone(),
        dry_run: b.dry_run,
    };
    let engine = state.engine.clone();
    let r = blocking(move || engine.retain(&req).map_err(ApiError::from)).await?;
    Ok(Json(r).into_response())
}

/// Legal holds of a collection, released ones included.
#[utoipa::path(get, path = "/api/collections/{name}/holds", params(("name" = String, Path)),
    responses((status = 200, description = "[{id, source, from, to, reason, by, at, released?: {by, at, reason}}]"), (status = 404, body = ErrorBody)))]
async fn holds(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let h = blocking(move || engine.holds(&name).map_err(ApiError::from)).await?;
    Ok(Json(h).into_response())
}

/// `POST /api/collections/{name}/holds` body.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Only this source (default: every source).
    pub source: Option<String>,
    /// First day held (YYYY-MM-DD).
    pub from: String,
    /// Last day held, inclusive (YYYY-MM-DD).
    pub to: String,
    /// Why.
    pub reason: String,
    /// Who places it.
    pub by: String,
}

/// Places a legal hold: retention and partition drops keep its days until it is released.
#[utoipa::path(post, path = "/api/collections/{name}/holds", params(("name" = String, Path)), request_body = HoldBody,
    responses((status = 200, description = "the hold placed"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn place_hold(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
    body: Result<Json<HoldBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let req = HoldRequest {
        source: b.source,
        from: b
            .from
            .parse()
            .map_err(|e| ApiError::bad("from", format!("from: {e}")))?,
        to: b.to.parse().map_err(|e| ApiError::bad("to", format!("to: {e}")))?,
        reason: b.reason,
        by: b.by,
    };
    let engine = state.engine.clone();
    let h = blocking(move || engine.place_hold(&name, req).map_err(ApiError::from)).await?;
    Ok(Json(h).into_response())
}

/// `POST /api/collections/{name}/holds/{id}/release` body.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// Why it is released.
    pub reason: String,
    /// Who releases it.
    pub by: String,
}

/// Releases a legal hold; the record stays, with who released it, when and why.
#[utoipa::path(post, path = "/api/collections/{name}/holds/{id}/release", params(("name" = String, Path), ("id" = u64, Path)),
    request_body = ReleaseBody,
    responses((status = 200, description = "the hold, released"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn release_hold(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, id)): Path<(String, u64)>,
    body: Result<Json<ReleaseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let engine = state.engine.clone();
    let h = blocking(move || engine.release_hold(&name, id, &b.by, &b.reason).map_err(ApiError::from)).await?;
    Ok(Json(h).into_response())
}

/// `POST /api/collections/{name}/delete` body: `ids`, or a selection, or `all`.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// These ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every row: must be asked for explicitly.
    #[serde(default)]
    pub all: bool,
    /// Or every row in a selection.
    #[serde(flatten)]
    pub selection: Selection,
}

/// Deletes rows by id, by selection, or all; names ids that were not there. Deleted rows stay
/// deleted: indexing the same files again skips them.
#[utoipa::path(post, path = "/api/collections/{name}/delete", params(("name" = String, Path)), request_body = DeleteBody,
    responses((status = 200, description = "{deleted, not_found}"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_rows(
    axum::extract::State(state): axum::extract::State<State>,
    Path(name): Path<String>,
    body: Result<Json<DeleteBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let spec = b.selection.spec()?;
    let req = match (b.ids.is_empty(), spec.is_everything(), b.all) {
        (false, true, false) => DeleteRequest::Ids(b.ids.clone()),
        (true, false, false) => DeleteRequest::Selection(spec),
        (true, true, true) => DeleteRequest::All,
        _ => {
            return Err(ApiError::bad(
                "ids|selection|all",
                "give ids, or a selection (sources, from, to, last, filter), or all: true",
            ))
        }
    };
    let engine = state.engine.clone();
    let r = blocking(move || engine.delete(&name, &req).map_err(ApiError::from)).await?;
    Ok(Json(r).into_response())
}

/// A row: identity, partition, every field, and where its pictures are served.
#[derive(Serialize, ToSchema)]
pub struct RowJson {
    id: String,
    source: String,
    day: String,
    uri: String,
    timestamp: i64,
    #[schema(value_type = Object)]
    fields: serde_json::Map<String, serde_json::Value>,
    thumbnail: String,
    /// Where the original is served (only with an images root).
    image: Option<String>,
    /// The stored embedding, with `?vector=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<Vec<f32>>,
}

/// `?vector=true` adds the stored embedding to a row.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct RowParams {
    #[serde(default)]
    vector: bool,
}

/// One stored row with all its fields.
#[utoipa::path(get, path = "/api/collections/{name}/rows/{id}", params(("name" = String, Path), ("id" = String, Path), RowParams),
    responses((status = 200, body = RowJson), (status = 404, body = ErrorBody)))]
async fn row(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, id)): Path<(String, String)>,
    params: Result<axum::extract::Query<RowParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RowJson>, ApiError> {
    let axum::extract::Query(params) = params?;
    let engine = state.engine.clone();
    let (n, i) = (name.clone(), id.clone());
    let (rec, vector) = blocking(move || {
        let rec = engine.rows_by_id(&n, std::slice::from_ref(&i), None)?;
        let vector = if params.vector {
            engine.vectors(&n, &[i])?.into_iter().flatten().next()
        } else {
            None
        };
        Ok::<_, ApiError>((rec, vector))
    })
    .await?;
    let rec = rec
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no row with id {id:?} in {name:?}")))?;
    Ok(Json(RowJson {
        thumbnail: thumbnail_url(&name, &rec.id),
        image: state.images_root.as_ref().map(|_| {
            format!(
                "/api/collections/{}/image/{}",
                utf8_percent_encode(&name, NON_ALPHANUMERIC),
                utf8_percent_encode(&rec.id, NON_ALPHANUMERIC)
            )
        }),
        source: rec.source,
        day: rec.day.to_string(),
        uri: rec.uri,
        timestamp: rec.timestamp,
        fields: rec.fields.to_json(),
        id: rec.id,
        vector,
    }))
}

fn jpeg(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response()
}

/// The row's thumbnail (JPEG): the one `index` stored, else one made from the original when it
/// lies under the images root.
#[utoipa::path(get, path = "/api/collections/{name}/thumbnail/{id}", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg"), (status = 404, body = ErrorBody)))]
async fn thumbnail(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let root = state.images_root.clone();
    let bytes = blocking(move || {
        if let Some(t) = engine.stored_thumbnail(&name, &id)? {
            return Ok(Some(t));
        }
        let (Some(root), Some(Some(rec))) = (root, engine.rows_by_id(&name, &[id], Some(&[]))?.into_iter().next())
        else {
            return Ok(None);
        };
        Ok(crate::security::under_root(&root, &rec.uri)
            .ok()
            .and_then(|p| vitrine_engine::thumbnail::from_file(p.to_str().unwrap_or_default())))
    })
    .await?;
    bytes
        .map(jpeg)
        .ok_or_else(|| ApiError::not_found("no thumbnail for this row"))
}

/// The original picture, only when its file lies under the images root (links resolved).
#[utoipa::path(get, path = "/api/collections/{name}/image/{id}", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the image file"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn image(
    axum::extract::State(state): axum::extract::State<State>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Some(root) = state.images_root.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "originals are not served: start the server with --images-root FOLDER",
        ));
    };
    let engine = state.engine.clone();
    let (path, bytes) = blocking(move || {
        let rec = engine
            .rows_by_id(&name, std::slice::from_ref(&id), Some(&[]))?
            .into_iter()
            .flatten()
            .next()
            .ok_or_else(|| ApiError::not_found(format!("no row with id {id:?} in {name:?}")))?;
        let path = crate::security::under_root(&root, &rec.uri)?;
        let bytes = vitrine_engine::read_image_file(&path)?;
        Ok((path, bytes))
    })
    .await?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mime = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}
