//! clip-retrieval's back end routes, so its Python `ClipClient` and its front end query vitrine
//! unchanged: `POST /knn-service`, `GET /indices-list`, `POST /metadata`.
//!
//! As clip-retrieval's back does: bodies are JSON whatever their Content-Type; `indice_name`
//! names a collection (null: the first); the query is `text` if non-empty, else `image` (base64
//! of the file), else `embedding_input`; `num_result_ids` results (default `num_images`), the
//! first `num_images` with their metadata (`url` = the row's uri, `caption` = its `caption`
//! field if any, `image` = its thumbnail as base64, plus `source` and `day`); `deduplicate`
//! drops a result whose vector has cosine ≥ 0.94 with a better one; every response carries
//! `Access-Control-Allow-Origin: *`.
//!
//! Differences, by design: `image_url` is refused (vitrine never uses the network);
//! `use_safety_model`, `use_violence_detector` and the aesthetic fields are accepted and
//! ignored (vitrine has no such models, so nothing is filtered: the search stays exact);
//! `modality` is accepted but a collection holds image embeddings only, so both modalities
//! search them; ids are strings.

use crate::error::{ApiError, ErrorBody};
use crate::{blocking, State};
use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vitrine_engine::query::{Query, SearchRequest};

pub(crate) fn routes() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(indices_list))
        .routes(routes!(knn_service, knn_preflight))
        .routes(routes!(metadata, metadata_preflight))
}

/// Cosine at or above which `deduplicate` drops the worse of two results (clip-retrieval's).
const DUPLICATE_COSINE: f64 = 0.94;

fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    r
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad("body", format!("not the expected JSON: {e}")))
}

/// The collections, as clip-retrieval's index names.
#[utoipa::path(get, path = "/indices-list", responses((status = 200, body = Vec<String>)))]
async fn indices_list(axum::extract::State(state): axum::extract::State<State>) -> Response {
    let engine = state.engine.clone();
    let names = blocking(move || Ok(engine.backend().collections().unwrap_or_default())).await;
    cors(match names {
        Ok(n) => Json(n).into_response(),
        Err(e) => e.into_response(),
    })
}

/// clip-retrieval's `/knn-service` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[allow(dead_code)] // the model and aesthetic fields are accepted and ignored (see the module)
pub struct KnnBody {
    text: Option<String>,
    /// base64 of the image file.
    image: Option<String>,
    image_url: Option<String>,
    embedding_input: Option<Vec<f32>>,
    modality: String,
    num_images: usize,
    num_result_ids: Option<usize>,
    indice_name: Option<String>,
    #[serde(default)]
    deduplicate: Option<bool>,
    // Accepted and ignored (no such models here; strings or numbers, as the front end and the
    // client send them).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    use_mclip: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    use_safety_model: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    use_violence_detector: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    aesthetic_score: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    aesthetic_weight: Option<serde::de::IgnoredAny>,
}

async fn collection_or_first(state: &State, name: Option<String>) -> Result<String, ApiError> {
    match name.filter(|n| !n.is_empty()) {
        Some(n) => Ok(n),
        None => {
            let engine = state.engine.clone();
            blocking(move || {
                engine
                    .backend()
                    .collections()?
                    .into_iter()
                    .next()
                    .ok_or_else(|| ApiError::not_found("the store has no collections"))
            })
            .await
        }
    }
}

/// Nearest neighbours in clip-retrieval's format.
#[utoipa::path(post, path = "/knn-service", request_body = KnnBody,
    responses((status = 200, description = "[{id, similarity, url, caption, image, source, day}]"), (status = 400, body = ErrorBody)))]
async fn knn_service(axum::extract::State(state): axum::extract::State<State>, body: Bytes) -> Response {
    cors(knn(&state, body).await.unwrap_or_else(IntoResponse::into_response))
}

async fn knn(state: &State, body: Bytes) -> Result<Response, ApiError> {
    let mut b: KnnBody = json_body(&body)?;
    drop(body); // an upload waits for a model worker as bytes, not as JSON and base64 too
    if b.modality != "image" && b.modality != "text" {
        return Err(ApiError::bad("modality", "modality must be \"image\" or \"text\""));
    }
    let collection = collection_or_first(state, b.indice_name.clone()).await?;
    let results = b.num_result_ids.unwrap_or(b.num_images).max(b.num_images);
    if results == 0 || results > state.config.max_k {
        return Err(ApiError::bad(
            "num_images",
            format!("num_images and num_result_ids must be 1..={}", state.config.max_k),
        ));
    }
    let query = if let Some(t) = b.text.clone().filter(|t| !t.is_empty()) {
        Query::Text(vec![t])
    } else if let Some(i) = b.image.take().filter(|i| !i.is_empty()) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(i.trim())
            .map_err(|e| ApiError::bad("image", format!("image: not base64 ({e})")))?;
        Query::ImageBytes(vec![("uploaded image".into(), bytes)])
    } else if b.image_url.as_deref().is_some_and(|u| !u.is_empty()) {
        return Err(ApiError::bad(
            "image_url",
            "image_url is not fetched (vitrine never uses the network): send the image itself, base64",
        ));
    } else if let Some(v) = b.embedding_input.clone() {
        Query::Vectors(v)
    } else {
        return Err(ApiError::bad(
            "text|image|embedding_input",
            "give text, image or embedding_input",
        ));
    };
    let mut req = SearchRequest::new(collection.clone(), query);
    req.k = Some(results);
    let req = crate::embedded(state, req).await?;
    let engine = state.engine.clone();
    let dedup = b.deduplicate.unwrap_or(false);
    let num_images = b.num_images;
    let run = move || -> Result<Vec<serde_json::Value>, ApiError> {
        let ans = engine.search(&req)?;
        let mut hits = ans.hits.into_iter().next().unwrap_or_default();
        if dedup {
            hits = deduplicate(&engine, &collection, hits)?;
        }
        let ids: Vec<String> = hits.iter().take(num_images).map(|h| h.id.clone()).collect();
        let meta = metadata_of(&engine, &collection, &ids)?;
        Ok(hits
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let mut o = serde_json::Map::new();
                if let Some(Some(m)) = meta.get(i) {
                    o.extend(m.clone());
                }
                o.insert("id".into(), h.id.into());
                o.insert("similarity".into(), h.score.into());
                serde_json::Value::Object(o)
            })
            .collect())
    };
    let out = blocking(run).await?;
    Ok(Json(out).into_response())
}

/// Drops every hit whose vector has cosine ≥ 0.94 with a better kept hit.
fn deduplicate(
    engine: &vitrine_engine::Engine,
    collection: &str,
    hits: Vec<vitrine_engine::Hit>,
) -> Result<Vec<vitrine_engine::Hit>, ApiError> {
    let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
    let vectors = engine.vectors(collection, &ids)?;
    let unit = |v: &[f32]| {
        let n = v
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        v.iter().map(|x| *x as f64 / n).collect::<Vec<f64>>()
    };
    let mut kept: Vec<(vitrine_engine::Hit, Vec<f64>)> = Vec::new();
    for (h, v) in hits.into_iter().zip(vectors) {
        let u = unit(v.as_deref().unwrap_or_default());
        let dup = kept
            .iter()
            .any(|(_, k)| k.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>() >= DUPLICATE_COSINE);
        if !dup {
            kept.push((h, u));
        }
    }
    Ok(kept.into_iter().map(|(h, _)| h).collect())
}

/// clip-retrieval's metadata of rows: url, caption, image (base64 thumbnail), source, day.
fn metadata_of(
    engine: &vitrine_engine::Engine,
    collection: &str,
    ids: &[String],
) -> Result<Vec<Option<serde_json::Map<String, serde_json::Value>>>, ApiError> {
    use base64::Engine as _;
    let rows = engine.rows_by_id(collection, ids, None)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(match r {
            None => None,
            Some(r) => {
                let mut m = serde_json::Map::new();
                m.insert("url".into(), r.uri.clone().into());
                let caption = r.fields.get("caption").map(|v| v.to_json()).unwrap_or("".into());
                m.insert("caption".into(), caption);
                m.insert("source".into(), r.source.clone().into());
                m.insert("day".into(), r.day.to_string().into());
                if let Some(t) = engine.stored_thumbnail(collection, &r.id)? {
                    m.insert(
                        "image".into(),
                        base64::engine::general_purpose::STANDARD.encode(t).into(),
                    );
                }
                Some(m)
            }
        });
    }
    Ok(out)
}

/// CORS preflight.
#[utoipa::path(options, path = "/knn-service", responses((status = 200)))]
async fn knn_preflight() -> Response {
    cors(().into_response())
}

/// clip-retrieval's `/metadata` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
pub struct MetadataBody {
    ids: Vec<serde_json::Value>,
    indice_name: Option<String>,
}

/// Metadata of rows by id, in clip-retrieval's format: `[{id, metadata: {url, caption, image}}]`.
#[utoipa::path(post, path = "/metadata", request_body = MetadataBody,
    responses((status = 200, description = "[{id, metadata}]"), (status = 400, body = ErrorBody)))]
async fn metadata(axum::extract::State(state): axum::extract::State<State>, body: Bytes) -> Response {
    let r = async {
        let b: MetadataBody = json_body(&body)?;
        if b.ids.is_empty() {
            return Ok(Json(Vec::<serde_json::Value>::new()).into_response());
        }
        let collection = collection_or_first(&state, b.indice_name.clone()).await?;
        // Ids may come back as numbers (clip-retrieval's are ints).
        let ids: Vec<String> = b
            .ids
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        let engine = state.engine.clone();
        let out = blocking(move || {
            let meta = metadata_of(&engine, &collection, &ids)?;
            Ok(ids
                .into_iter()
                .zip(meta)
                .map(|(id, m)| serde_json::json!({"id": id, "metadata": m.unwrap_or_default()}))
                .collect::<Vec<_>>())
        })
        .await?;
        Ok::<_, ApiError>(Json(out).into_response())
    }
    .await;
    cors(r.unwrap_or_else(IntoResponse::into_response))
}

/// CORS preflight.
#[utoipa::path(options, path = "/metadata", responses((status = 200)))]
async fn metadata_preflight() -> Response {
    cors(().into_response())
}
