//! A self-contained HTML page showing search hits as a grid of thumbnails (`--html`).
//!
//! Thumbnails come from the store (kept there by `vitrine index`), else are made from the hits'
//! URIs when they are local files (128 px); both are embedded as JPEG data URIs, so the page can be mailed or archived as one file. Every text is
//! HTML-escaped.

use std::fmt::Write as _;
use std::path::Path;
use vitrine_store::Hit;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A thumbnail made from the hit's file, when it is a local image (the same as `vitrine index`
/// keeps in the store).
fn thumbnail(uri: &str) -> Option<String> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let p = Path::new(path);
    if !p.is_file() {
        return None;
    }
    let img = vitrine_image::decode(p, &vitrine_image::Limits::default()).ok()?;
    Some(vitrine_engine::index::thumbnail(&img)).filter(|t| !t.is_empty())
}

/// Writes the page for `hits` (all queries) to `out`. `stored(hit)` gives the thumbnail kept in
/// the store (base64 JPEG), used first; the file at the hit's uri is the fallback.
pub fn write_grid(
    out: &Path,
    title: &str,
    queries: &[String],
    hits: &[Vec<Hit>],
    stored: impl Fn(&Hit) -> Option<String>,
) -> std::io::Result<()> {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;background:#fafafa}}\
         .grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}}\
         figure{{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px}}\
         img,.missing{{width:192px;height:192px;object-fit:contain;display:block;margin:auto;background:#eee}}\
         .missing{{display:flex;align-items:center;justify-content:center;color:#888;font-size:12px}}\
         figcaption{{font-size:12px;line-height:1.4;word-break:break-all}}</style></head><body><h1>{t}</h1>",
        t = escape(title)
    );
    for (q, qhits) in hits.iter().enumerate() {
        let label = queries.get(q).map(String::as_str).unwrap_or("query");
        let _ = write!(
            s,
            "<h2>{} — {} hits</h2><div class=\"grid\">",
            escape(label),
            qhits.len()
        );
        for h in qhits {
            let pic = match stored(h).filter(|t| !t.is_empty()).or_else(|| thumbnail(&h.uri)) {
                Some(b64) => format!("<img alt=\"{}\" src=\"data:image/jpeg;base64,{b64}\">", escape(&h.id)),
                None => "<div class=\"missing\">no thumbnail</div>".to_string(),
            };
            let _ = write!(
                s,
                "<figure>{pic}<figcaption><b>#{} · {:.4}</b><br>{} · {}<br>{}</figcaption></figure>",
                h.rank,
                h.score,
                escape(&h.source),
                h.day,
                escape(&h.uri)
            );
        }
        s.push_str("</div>");
    }
    s.push_str("</body></html>\n");
    std::fs::write(out, s)
}
