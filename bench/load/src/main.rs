//! `vitrine-load`: how `vitrine serve` holds up under concurrent clients, measured side by side
//! with the very same searches run in process (the engine API, no HTTP), in one run.
//!
//! For each workload (vector search over the given stores; text search with the bundled demo
//! model over stores of its 128-d vectors, built once under `--data`), and for each number of
//! concurrent clients, a fixed number of requests is sent twice: once as `Engine::search` calls
//! from that many threads of this process, once as `POST /api/search` from that many keep-alive
//! HTTP/1.1 connections to a `vitrine serve` child process on loopback. Both open the same store
//! (the same mapped files). Every answer is checked (status 200, k hits); a run reports QPS,
//! p50 and p99 latency and errors, and the server/in-process ratios.
//!
//! Then the upload burst: `--uploads` clients at once each post a 12-megapixel JPEG (base64 in
//! JSON) to a server over the demo store, first with the default number of model workers, then
//! with one worker per client, and the server's peak resident memory (VmHWM) is read from
//! /proc before and after: queued uploads wait as compressed bodies, not as decoded pixels.
//!
//! Usage: see BENCHMARKS.md (`cargo run --release -p vitrine-load -- --help`).

use anyhow::{bail, Context, Result};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitrine_engine::import::{Defaults, ImportRequest, ImportSource};
use vitrine_engine::query::{Query, SearchRequest};
use vitrine_engine::{Engine, Metric};

#[derive(Parser, Debug)]
struct Args {
    /// The `vitrine` binary that serves.
    #[arg(long, default_value = "target/release/vitrine")]
    bin: PathBuf,
    /// Vector-search workloads: LABEL=STORE:COLLECTION (e.g. 1M=bench/data/vitrine_store365_1000000_512:bench).
    #[arg(long = "vector")]
    vector: Vec<String>,
    /// Text-search workloads (demo model): row counts; each store is built once under --data.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "100000,1000000")]
    text_rows: Vec<usize>,
    /// Where the text-search stores are kept.
    #[arg(long, default_value = "bench/data")]
    data: PathBuf,
    /// Concurrent clients.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Requests per run: this many, and at least 4 per client.
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// Runs per (workload, clients), alternating in process and server; latencies are pooled.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Hits per search.
    #[arg(short, default_value_t = 20)]
    k: usize,
    /// The demo store (collection `demo`) for the upload burst; none: no upload burst.
    #[arg(long)]
    upload_store: Option<PathBuf>,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 64)]
    uploads: usize,
    /// Extra arguments for `vitrine serve` in the search runs (e.g. --serve-arg=--model-workers=4).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// Write every measurement here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    requests: usize,
    errors: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Run {
    /// Runs pooled: every latency, the total time.
    fn pooled(runs: &[(Vec<f64>, usize, f64)]) -> Run {
        let lat = runs.iter().flat_map(|r| r.0.iter().copied()).collect();
        Run::of(lat, runs.iter().map(|r| r.1).sum(), runs.iter().map(|r| r.2).sum())
    }

    fn of(mut lat: Vec<f64>, errors: usize, seconds: f64) -> Run {
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if lat.is_empty() {
                return f64::NAN;
            }
            lat[((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1]
        };
        Run {
            requests: lat.len(),
            errors,
            seconds,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
    fn qps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"requests": self.requests, "errors": self.errors, "seconds": self.seconds,
            "qps": self.qps(), "p50_ms": self.p50_ms, "p99_ms": self.p99_ms})
    }
}

/// One kind of search, as an engine request and as the JSON body of `POST /api/search`.
trait Workload: Sync {
    fn request(&self, i: usize) -> SearchRequest;
    fn body(&self, i: usize) -> serde_json::Value;
}

struct Vectors {
    collection: String,
    queries: Vec<Vec<f32>>,
    k: usize,
}

impl Workload for Vectors {
    fn request(&self, i: usize) -> SearchRequest {
        let mut r = SearchRequest::new(
            &self.collection,
            Query::Vectors(self.queries[i % self.queries.len()].clone()),
        );
        r.k = Some(self.k);
        r
    }
    fn body(&self, i: usize) -> serde_json::Value {
        serde_json::json!({"collection": self.collection, "vector": self.queries[i % self.queries.len()], "k": self.k})
    }
}

/// Text queries, a different text every request (no answer can be remembered).
struct Texts {
    collection: String,
    k: usize,
}

const CAPTIONS: [&str; 8] = [
    "a photo of a red sneaker",
    "一张黑色手枪的照片",
    "a photo of a white dog",
    "一只白色猫的照片",
    "a photo of a blue bicycle",
    "一张红色雨伞的照片",
    "a photo of a black watch",
    "a photo of a green mug",
];

impl Texts {
    fn text(i: usize) -> String {
        format!("{} {i}", CAPTIONS[i % CAPTIONS.len()])
    }
}

impl Workload for Texts {
    fn request(&self, i: usize) -> SearchRequest {
        let mut r = SearchRequest::new(&self.collection, Query::Text(vec![Texts::text(i)]));
        r.k = Some(self.k);
        r
    }
    fn body(&self, i: usize) -> serde_json::Value {
        serde_json::json!({"collection": self.collection, "text": Texts::text(i), "k": self.k})
    }
}

/// splitmix64: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Roughly normal (sum of uniforms), enough for directions uniform on the sphere.
    fn normal(&mut self) -> f32 {
        (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum::<f32>()
            - 2.0
    }
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

/// `n` requests from `clients` threads calling the engine.
fn in_process(engine: &Engine, w: &dyn Workload, clients: usize, n: usize, k: usize) -> (Vec<f64>, usize, f64) {
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    let per: Vec<(Vec<f64>, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let (mut lat, mut errors) = (Vec::new(), 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let t = Instant::now();
                        match engine.search(&w.request(i)) {
                            Ok(a) if a.hits.first().map(Vec::len) == Some(k) => {
                                lat.push(t.elapsed().as_secs_f64() * 1e3)
                            }
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let seconds = t0.elapsed().as_secs_f64();
    let errors = per.iter().map(|p| p.1).sum();
    (per.into_iter().flat_map(|p| p.0).collect(), errors, seconds)
}

/// Whether an answer (status, body) is right.
type Check = Arc<dyn Fn(u16, &[u8]) -> bool + Send + Sync>;

fn status_ok() -> Check {
    Arc::new(|s, _| s == 200)
}

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client(clients: usize) -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build_http()
}

/// Posts `body`; the status and the whole answer.
async fn post(c: &Client, url: &str, body: Bytes) -> Result<(u16, Bytes)> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let resp = c.request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// `n` requests from `clients` concurrent keep-alive connections; bodies are made before the
/// clock starts.
fn over_http(base: &str, bodies: Vec<Bytes>, clients: usize, check: Check) -> (Vec<f64>, usize, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = client(clients);
        let url = format!("{base}/api/search");
        let bodies = Arc::new(bodies);
        let next = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (c, url, bodies, next, check) =
                    (c.clone(), url.clone(), bodies.clone(), next.clone(), check.clone());
                tokio::spawn(async move {
                    let (mut lat, mut errors) = (Vec::new(), 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bodies.len() {
                            break;
                        }
                        let t = Instant::now();
                        match post(&c, &url, bodies[i].clone()).await {
                            Ok((s, b)) if check(s, &b) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            lat.extend(l);
            errors += e;
        }
        (lat, errors, t0.elapsed().as_secs_f64())
    })
}

/// A `vitrine serve` child process, stopped on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(bin: &Path, store: &Path, extra: &[&str]) -> Result<Server> {
        let mut child = Command::new(bin)
            .arg("--store")
            .arg(store)
            .args(["serve", "--addr", "127.0.0.1:0", "--max-k", "100000"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line)?;
        // "vitrine serving STORE on http://127.0.0.1:PORT/ (...)": the URL without its '/'.
        let Some(base) = line
            .find("http://")
            .and_then(|at| line[at..].split_whitespace().next())
            .map(|url| url.trim_end_matches('/').to_string())
        else {
            bail!("vitrine serve said {line:?}");
        };
        // Keep reading its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Ok(Server { child, base })
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb = |key: &str| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
                / 1024.0
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hits_ok(k: usize) -> Check {
    Arc::new(move |s, b| {
        s == 200
            && serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| v["hits"].as_array().map(Vec::len))
                == Some(k)
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The demo model's 128-d vectors for `rows` rows over 2 sources × the 365 days of 2023 (as the
/// 512-d search stores), imported once with the demo model recorded.
fn text_store(data: &Path, rows: usize) -> Result<PathBuf> {
    let store = data.join(format!("vitrine_store_demo128_{rows}"));
    if store.join("collections/bench").is_dir() {
        let have = Engine::open_store(&store).collection_info("bench")?.rows;
        if have != rows as u64 {
            bail!(
                "{}: {have} rows, not {rows} (an interrupted build?): remove it",
                store.display()
            );
        }
        return Ok(store);
    }
    eprintln!("[load] building {} ({rows} rows, demo model)", store.display());
    let tmp = data.join(format!("demo128_{rows}.tmp"));
    std::fs::create_dir_all(&tmp)?;
    let mut rng = Rng(7);
    let mut v = Vec::with_capacity(rows * 128);
    for _ in 0..rows {
        v.extend(rng.unit(128));
    }
    let vectors = tmp.join("v.npy");
    vitrine_engine::write_npy(&vectors, &v, rows, 128)?;
    drop(v);
    let metadata = tmp.join("m.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&metadata)?);
    let first: vitrine_engine::Day = "2023-01-01".parse()?;
    for i in 0..rows {
        let day = vitrine_engine::Day(first.0 + (i / 2 % 365) as i32);
        let source = if i % 2 == 0 { "products" } else { "avatars" };
        writeln!(
            f,
            r#"{{"id":"r{i}","uri":"img/{i}.jpg","source":"{source}","day":"{day}"}}"#
        )?;
    }
    f.flush()?;
    drop(f);
    Engine::open_store(&store).import(
        &ImportRequest {
            collection: "bench".into(),
            source: ImportSource::Npy {
                vectors,
                metadata: Some(metadata),
            },
            defaults: Defaults::default(),
            metric: Metric::Cosine,
            batch_size: 100_000,
            model: Some(vitrine_engine::model::demo_model()?),
        },
        &mut |_, _| {},
    )?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(store)
}

/// A 4000×3000 JPEG (12 megapixels), base64: an upload that decodes to 36 MB of pixels.
fn big_jpeg() -> Result<String> {
    use base64::Engine as _;
    let mut rng = Rng(3);
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let n = (rng.next() % 24) as u8;
        image::Rgb([(x / 16) as u8 ^ n, (y / 12) as u8, ((x + y) / 28) as u8 ^ n])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let mut table = Vec::new();
    let mut out = serde_json::Map::new();
    out.insert("started".into(), load_average().into());
    let mut workloads: Vec<(String, PathBuf, Box<dyn Workload>)> = Vec::new();
    for spec in &a.vector {
        let (label, rest) = spec.split_once('=').context("--vector LABEL=STORE:COLLECTION")?;
        let (store, collection) = rest.rsplit_once(':').context("--vector LABEL=STORE:COLLECTION")?;
        let dim = Engine::open_store(store).collection_info(collection)?.dim;
        let mut rng = Rng(11);
        let queries = (0..64).map(|_| rng.unit(dim)).collect();
        workloads.push((
            format!("vector search, {label} × {dim}"),
            store.into(),
            Box::new(Vectors {
                collection: collection.into(),
                queries,
                k: a.k,
            }),
        ));
    }
    for &rows in &a.text_rows {
        let store = text_store(&a.data, rows)?;
        workloads.push((
            format!("text search (demo model), {} × 128", human(rows)),
            store,
            Box::new(Texts {
                collection: "bench".into(),
                k: a.k,
            }),
        ));
    }
    let mut runs = Vec::new();
    for (name, store, w) in &workloads {
        let extra: Vec<&str> = a.serve_args.iter().map(String::as_str).collect();
        let server = Server::start(&a.bin, store, &extra)?;
        let engine = Engine::open_store(store);
        // Warm both: the model loaded, the vectors in the page cache.
        in_process(&engine, w.as_ref(), 1, 2, a.k);
        let _ = over_http(&server.base, vec![w.body(0).to_string().into(); 2], 1, status_ok());
        for &c in &a.clients {
            let n = a.requests.max(4 * c);
            let load = load_average();
            let bodies: Vec<Bytes> = (0..n).map(|i| Bytes::from(w.body(i).to_string())).collect();
            let (mut local, mut http) = (Vec::new(), Vec::new());
            for _ in 0..a.repeat {
                local.push(in_process(&engine, w.as_ref(), c, n, a.k));
                http.push(over_http(&server.base, bodies.clone(), c, hits_ok(a.k)));
            }
            let (local, http) = (Run::pooled(&local), Run::pooled(&http));
            eprintln!(
                "[load] {name}, {c} clients: in process {:.1} q/s p50 {:.1} ms; server {:.1} q/s p50 {:.1} ms ({} errors)",
                local.qps(),
                local.p50_ms,
                http.qps(),
                http.p50_ms,
                http.errors + local.errors
            );
            table.push(format!(
                "| {name} | {c} | {} | {:.1} | {:.1} / {:.1} | **{:.1}** | **{:.1} / {:.1}** | {} | {:.2} | {:.2} | {load} |",
                local.requests,
                local.qps(),
                local.p50_ms,
                local.p99_ms,
                http.qps(),
                http.p50_ms,
                http.p99_ms,
                http.errors + local.errors,
                local.qps() / http.qps(),
                http.p50_ms / local.p50_ms,
            ));
            runs.push(
                serde_json::json!({"workload": name, "clients": c, "in_process": local.json(),
                "server": http.json(), "load_before": load}),
            );
        }
    }
    out.insert("searches".into(), runs.into());
    println!("| workload | clients | requests | in process q/s | in process p50 / p99 ms | server q/s | server p50 / p99 ms | errors | q/s in / server | p50 server / in | load before |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &table {
        println!("{row}");
    }
    if let Some(demo) = &a.upload_store {
        let image = big_jpeg()?;
        let body = Bytes::from(serde_json::json!({"collection": "demo", "image": image, "k": 5}).to_string());
        println!(
            "\n| upload burst: {} clients × 4 requests, 12 MP JPEG ({:.1} MiB base64) | model workers | q/s | p50 / p99 ms | errors | server RSS before MiB | peak RSS MiB |",
            a.uploads,
            body.len() as f64 / (1 << 20) as f64
        );
        println!("|---|---|---|---|---|---|---|");
        let mut bursts = Vec::new();
        for workers in [None, Some(a.uploads)] {
            let extra: Vec<String> = workers
                .map(|w| vec!["--model-workers".into(), w.to_string()])
                .unwrap_or_default();
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let server = Server::start(&a.bin, demo, &extra)?;
            let warm = over_http(&server.base, vec![body.clone()], 1, status_ok());
            if warm.1 > 0 {
                bail!("the upload was refused by the server");
            }
            let (rss0, _) = server.memory();
            let run = Run::pooled(&[over_http(
                &server.base,
                vec![body.clone(); 4 * a.uploads],
                a.uploads,
                status_ok(),
            )]);
            let (_, peak) = server.memory();
            let label = workers.map_or("default (one per core)".to_string(), |w| w.to_string());
            println!(
                "| | {label} | {:.1} | {:.0} / {:.0} | {} | {rss0:.0} | **{peak:.0}** |",
                run.qps(),
                run.p50_ms,
                run.p99_ms,
                run.errors
            );
            bursts.push(serde_json::json!({"model_workers": label, "run": run.json(), "rss_before_mib": rss0, "peak_rss_mib": peak}));
            drop(server);
            std::thread::sleep(Duration::from_millis(200));
        }
        out.insert("uploads".into(), bursts.into());
    }
    out.insert("finished".into(), load_average().into());
    if let Some(p) = &a.out {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}

fn human(n: usize) -> String {
    if n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
