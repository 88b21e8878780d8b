//! The token, and which files may be served.
//!
//! With a token (`--token` or `VITRINE_TOKEN`), every route but `/api/health`, `/api/login` and
//! the page's own assets needs `Authorization: Bearer TOKEN`, or the `vitrine_token` cookie that
//! `POST /api/login` sets (HttpOnly, SameSite=Strict), so that `<img>` thumbnails load without
//! the token ever appearing in a URL. Tokens are compared in constant time and never logged.
//!
//! An original is served only when the row's uri is a local file (absolute, or relative to the
//! root, as a manifest's uris are) that lies under `--images-root` once every link is resolved:
//! `..`, encoded separators, absolute paths and links pointing out of the folder all land
//! outside it and are refused.

use crate::error::ApiError;
use crate::State;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};

/// The cookie `POST /api/login` sets.
pub const COOKIE: &str = "vitrine_token";

/// Paths that never need the token.
fn public(path: &str) -> bool {
    matches!(path, "/" | "/api/health" | "/api/login" | "/favicon.ico") || path.starts_with("/assets/")
}

/// Constant-time equality (no early exit on the first differing byte).
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// The token a request presents: the bearer header, else the cookie.
fn presented(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
        .map(str::to_string)
}

/// Middleware: refuses requests without the token (when one is configured).
pub async fn require_token(
    axum::extract::State(state): axum::extract::State<State>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.config.token else {
        return next.run(req).await;
    };
    if public(req.uri().path()) || presented(&req).is_some_and(|t| same(&t, token)) {
        return next.run(req).await;
    }
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this server needs a token: send `Authorization: Bearer TOKEN` (or log in on the page)",
    )
    .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// The cookie that carries `token` for the page.
pub fn cookie(token: &str) -> String {
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
}

/// The local file a row's uri names (an absolute path, or a path relative to `root`), if it lies
/// under `root` with every link resolved.
pub fn under_root(root: &Path, uri: &str) -> Result<PathBuf, ApiError> {
    let forbidden = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the original is not served: {why}"),
        )
    };
    let local = uri.strip_prefix("file://").unwrap_or(uri);
    if local.contains("://") {
        return Err(forbidden("it is not a local file"));
    }
    // A relative uri is relative to the root; `..` in it is resolved (and caught) below.
    let path = root.join(local);
    let real =
        std::fs::canonicalize(&path).map_err(|_| ApiError::not_found("the original file is not there any more"))?;
    if !real.starts_with(root) {
        return Err(forbidden("it is not under the images root the server was given"));
    }
    if !real.is_file() {
        return Err(forbidden("it is not a regular file"));
    }
    Ok(real)
}

/// The OpenAPI security scheme.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "ab") && !same("", "a"));
    }

    #[test]
    fn only_files_under_the_root_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.jpg")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let ok = |u: &str| under_root(&root, u).is_ok();
        assert!(ok(root.join("sub/a.jpg").to_str().unwrap()));
        assert!(ok(&format!("file://{}", root.join("sub/a.jpg").display())));
        assert!(ok("sub/a.jpg"));
        for bad in [
            "../secret.txt".to_string(),
            "sub/../../secret.txt".to_string(),
            format!("{}/sub/../../secret.txt", root.display()),
            format!("{}/escape.jpg", root.display()),
            dir.path().join("secret.txt").display().to_string(),
            "http://example.com/a.jpg".to_string(),
            root.join("sub").display().to_string(),
        ] {
            assert!(!ok(&bad), "{bad} was served");
        }
    }
}
