//! A self-contained HTML page showing search hits as a grid of thumbnails (`--html`).
//!
//! Thumbnails are JPEG bytes from the engine (stored by `vitrine index`, else made from the
//! local file), embedded as data URIs so the page can be mailed or archived as one file. Every
//! text and attribute value goes through [`escape`], and image bytes are base64-encoded here, so
//! no stored value reaches the markup unescaped.

use base64::Engine as _;
use std::fmt::Write as _;
use std::path::Path;
use vitrine_engine::dupes::Cluster;
use vitrine_engine::Hit;

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's head and style, with `title` escaped.
fn head(title: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;background:#fafafa}}\
         .grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}}\
         .row{{display:flex;gap:12px;overflow-x:auto;padding-bottom:6px}}\
         .row figure{{flex:0 0 204px}}\
         figure{{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px}}\
         img,.missing{{width:192px;height:192px;object-fit:contain;display:block;margin:auto;background:#eee}}\
         .missing{{display:flex;align-items:center;justify-content:center;color:#888;font-size:12px}}\
         figcaption{{font-size:12px;line-height:1.4;word-break:break-all}}</style></head><body><h1>{t}</h1>",
        t = escape(title)
    )
}

/// A thumbnail as an `<img>` with its bytes inline, or a placeholder.
fn picture(alt: &str, jpeg: Option<&Vec<u8>>) -> String {
    match jpeg {
        Some(jpeg) => format!(
            "<img alt=\"{}\" src=\"data:image/jpeg;base64,{}\">",
            escape(alt),
            base64::engine::general_purpose::STANDARD.encode(jpeg)
        ),
        None => "<div class=\"missing\">no thumbnail</div>".to_string(),
    }
}

/// Writes the page of near-duplicate clusters, each a row of thumbnails (earliest first);
/// `thumbnails` holds one JPEG (or none) per member, clusters in order.
pub fn write_clusters(
    out: &Path,
    title: &str,
    clusters: &[Cluster],
    thumbnails: &[Option<Vec<u8>>],
) -> std::io::Result<()> {
    let mut s = head(title);
    let mut thumbs = thumbnails.iter();
    for (k, c) in clusters.iter().enumerate() {
        let best = c
            .pairs
            .first()
            .map_or(String::new(), |p| format!(" · best pair {:.4}", p.score));
        let _ = write!(
            s,
            "<h2>cluster {} — {} images · {}{best}</h2><div class=\"row\">",
            k + 1,
            c.members.len(),
            escape(&c.sources.join(", "))
        );
        for m in &c.members {
            let pic = picture(&m.id, thumbs.next().and_then(Option::as_ref));
            let _ = write!(
                s,
                "<figure data-id=\"{}\">{pic}<figcaption><b>{}</b><br>{} · {}<br>{}</figcaption></figure>",
                escape(&m.id),
                escape(&m.id),
                escape(&m.source),
                m.day,
                escape(&m.uri)
            );
        }
        s.push_str("</div>");
    }
    s.push_str("</body></html>\n");
    std::fs::write(out, s)
}

/// Writes the page for `hits` (all queries, `labels[q]` naming query `q`) to `out`;
/// `thumbnails` holds one JPEG (or none) per hit, in the order of `hits` flattened.
pub fn write_grid(
    out: &Path,
    title: &str,
    labels: &[String],
    hits: &[Vec<Hit>],
    thumbnails: &[Option<Vec<u8>>],
) -> std::io::Result<()> {
    let mut s = head(title);
    let mut thumbs = thumbnails.iter();
    for (q, qhits) in hits.iter().enumerate() {
        let label = labels.get(q).map(String::as_str).unwrap_or("query");
        let _ = write!(
            s,
            "<h2>{} — {} hits</h2><div class=\"grid\">",
            escape(label),
            qhits.len()
        );
        for h in qhits {
            let pic = picture(&h.id, thumbs.next().and_then(Option::as_ref));
            let _ = write!(
                s,
                "<figure data-id=\"{}\">{pic}<figcaption><b>#{} · {:.4}</b><br>{} · {}<br>{}</figcaption></figure>",
                escape(&h.id),
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

/// Writes the page of watchlist alerts, a grid per watchlist (newest first); `thumbnails`
/// holds one JPEG (or none) per alert, in order.
pub fn write_alerts(
    out: &Path,
    title: &str,
    alerts: &[vitrine_engine::watch::Alert],
    thumbnails: &[Option<Vec<u8>>],
) -> std::io::Result<()> {
    let mut s = head(title);
    let mut current: Option<&str> = None;
    for (a, thumb) in alerts.iter().zip(thumbnails) {
        if current != Some(a.watchlist.as_str()) {
            if current.is_some() {
                s.push_str("</div>");
            }
            let n = alerts.iter().filter(|x| x.watchlist == a.watchlist).count();
            let _ = write!(s, "<h2>{} — {n} alerts</h2><div class=\"grid\">", escape(&a.watchlist));
            current = Some(&a.watchlist);
        }
        let pic = picture(&a.id, thumb.as_ref());
        let _ = write!(
            s,
            "<figure data-id=\"{}\">{pic}<figcaption><b>alert {} · {:.4}</b><br>{}<br>{} · {}<br>{}<br>found {} (run {})</figcaption></figure>",
            escape(&a.id),
            a.n,
            a.score,
            escape(&a.query),
            escape(&a.source),
            a.day,
            escape(&a.uri),
            escape(&a.found),
            a.run
        );
    }
    if current.is_some() {
        s.push_str("</div>");
    } else {
        s.push_str("<p>no alerts</p>");
    }
    s.push_str("</body></html>\n");
    std::fs::write(out, s)
}
