//! Command-line arguments (clap). Execution lives in `commands/`; this file only describes.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// vitrine: exact image-vector search over (source, day) partitions.
#[derive(Debug, Parser)]
#[command(name = "vitrine", version, about, max_term_width = 100)]
pub struct Cli {
    /// Store directory.
    #[arg(long, global = true, env = "VITRINE_STORE", default_value = "./vitrine-data")]
    pub store: PathBuf,
    /// A Milvus server instead of the store directory: milvus://HOST:PORT/DATABASE?token=... (database and options optional)
    /// (also user, password, db_name, consistency=strong; MILVUS_TOKEN, MILVUS_USER and
    /// MILVUS_PASSWORD fill what the URL leaves out).
    #[arg(long, global = true, env = "VITRINE_BACKEND", value_name = "URL")]
    pub backend: Option<String>,
    /// Log progress and commits to stderr (-vv for debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draw a gallery of products and avatars, index it with the bundled model and ask it questions (offline).
    Demo(DemoArgs),
    /// Create, list, describe or drop collections.
    #[command(subcommand)]
    Collection(CollectionCmd),
    /// List, drop or expire (source, day) partitions.
    #[command(subcommand)]
    Partitions(PartitionsCmd),
    /// Embed texts or images with a CLIP / Chinese-CLIP checkpoint (L2-normalised vectors).
    Embed(EmbedArgs),
    /// Embed image files and folders into a collection (incremental: unchanged files are skipped).
    Index(IndexArgs),
    /// Import precomputed vectors (.npy + metadata, or a clip-retrieval folder).
    Import(ImportArgs),
    /// Exact top-k or threshold search by text, example image, or query vectors from a .npy file.
    Search(SearchArgs),
    /// Every image matching text prompts above a threshold (exact range search), or the top N.
    Sweep(SweepArgs),
    /// Zero-shot labels for every image in a selection, from a list of labels and prompt templates.
    Classify(ClassifyArgs),
    /// Near-duplicate clusters: every pair of images at or past a threshold (exact), grouped.
    Dupes(DupesArgs),
    /// Precision and recall of prompts at every threshold on a reviewer's labels; saves the
    /// threshold for a target precision with the prompt set.
    Calibrate(CalibrateArgs),
    /// An evidence package (zip): originals, metadata, query, model, receipt and a SHA-256
    /// manifest; or --verify one.
    Export(ExportArgs),
    /// Delete rows by id or by selection.
    Delete(DeleteArgs),
    /// Legal holds: days that retention and partition drops keep until the hold is released.
    #[command(subcommand)]
    Hold(HoldCmd),
    /// Watchlists: standing queries run exactly on every row added since their last run, with
    /// a durable alert log each.
    #[command(subcommand)]
    Watch(WatchCmd),
    /// Serve the HTTP API and the web page (a grid of pictures for every answer).
    Serve(ServeArgs),
    /// Rewrite partitions to reclaim the space of deleted rows.
    Compact(CollectionArg),
    /// Read every file and verify its checksums; names every damaged file.
    Check(CheckArgs),
    /// Copy a collection between a store directory and a Milvus server (either way), resumable
    /// and verified.
    Migrate(MigrateArgs),
    /// Measurements for BENCHMARKS.md (memory bandwidth, search latency, open time).
    #[command(subcommand, hide = true)]
    Bench(BenchCmd),
}

#[derive(Debug, Args)]
pub struct CollectionArg {
    /// Collection name.
    #[arg(long, short = 'c', default_value = "images")]
    pub collection: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The collection to copy.
    #[arg(long, short = 'c')]
    pub collection: String,
    /// Where it is: a store directory or milvus://HOST:PORT[/DATABASE].
    #[arg(long)]
    pub from: String,
    /// Where it goes: a store directory or milvus://HOST:PORT[/DATABASE].
    #[arg(long)]
    pub to: String,
    /// Rows per write.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this collection (default: every collection in the store).
    #[arg(long, short = 'c')]
    pub collection: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pictures in the generated gallery.
    #[arg(long, default_value_t = 6000)]
    pub images: usize,
    /// Days the gallery spans (ending 2023-11-23).
    #[arg(long, default_value_t = 45)]
    pub days: u32,
    /// Model (default: the bundled demo model).
    #[arg(long)]
    pub model: Option<String>,
    /// Keep an existing demo collection instead of rebuilding it.
    #[arg(long)]
    pub keep: bool,
    /// Then serve the page over the demo store (as `vitrine serve`, at --addr).
    #[arg(long)]
    pub serve: bool,
    /// Where --serve listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen (a non-loopback address needs --token).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// A bearer token every request but health and the page's assets must carry.
    #[arg(long, env = "VITRINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Serve original pictures from under this folder (none: only stored thumbnails).
    #[arg(long)]
    pub images_root: Option<PathBuf>,
    /// Largest request body, MiB (uploaded images included).
    #[arg(long, default_value_t = 16)]
    pub max_body_mib: usize,
    /// Largest k.
    #[arg(long, default_value_t = 10_000)]
    pub max_k: usize,
    /// Image queries that may be decoded and embedded at once (default: the number of cores);
    /// others queue. A text query takes an eighth of one. 0 serves vector, like and id searches
    /// only (every text or image query answers 503).
    #[arg(long)]
    pub model_workers: Option<usize>,
    /// Re-read every file this often to catch bit rot in the vectors (queries verify only the
    /// files' metadata): `30m`, `12h`, `7d`, or `off`. Findings: `GET /api/scrub`, /metrics,
    /// the log.
    #[arg(long, default_value = "1d", value_parser = parse_interval)]
    pub scrub_every: Interval,
}

/// A schedule's interval, or none.
#[derive(Debug, Clone, Copy)]
pub struct Interval(pub Option<std::time::Duration>);

/// `90s`, `30m`, `12h`, `7d` or `off`.
fn parse_interval(s: &str) -> Result<Interval, String> {
    if s == "off" {
        return Ok(Interval(None));
    }
    let bad = || format!("{s:?} is not an interval: give a number and a unit (s, m, h, d), like 12h, or off");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(format!("{s:?}: the interval must be at least a second (or off)"));
    }
    Ok(Interval(Some(std::time::Duration::from_secs(secs))))
}

#[derive(Debug, Subcommand)]
pub enum CollectionCmd {
    /// Create a collection.
    Create {
        /// Name.
        name: String,
        /// Vector dimension.
        #[arg(long)]
        dim: usize,
        /// Metric.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// User fields, as name:type (string, int, float, bool).
        #[arg(long = "field", value_name = "NAME:TYPE")]
        fields: Vec<String>,
    },
    /// List collections.
    List,
    /// Describe a collection: schema, rows, partitions, provenance.
    Info {
        /// Name.
        #[arg(default_value = "images")]
        name: String,
    },
    /// Drop a collection and all its data.
    Drop {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WatchCmd {
    /// Add a watchlist: rows committed from now on (and with --since, that history) are
    /// evaluated by `watch run` and by `index --watch` / `import --watch`.
    Add(WatchAddArgs),
    /// Every watchlist, with its queries, threshold, cursor, runs and alerts.
    List {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a watchlist (its folder and alerts move to watchlists-removed/).
    Remove {
        #[command(flatten)]
        c: CollectionArg,
        /// The watchlist.
        name: String,
    },
    /// Run one watchlist (default: every one) on the rows added since its last run; prints the
    /// new alerts.
    Run {
        #[command(flatten)]
        c: CollectionArg,
        /// The watchlist (default: every watchlist of the collection).
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also write the new alerts as an HTML page of thumbnails.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// A watchlist's alert log (all of it, or the alerts numbered after --after).
    Alerts {
        #[command(flatten)]
        c: CollectionArg,
        /// The watchlist.
        name: String,
        /// Only alerts numbered after this one ("new since I last looked").
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also write them as an HTML page of thumbnails.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct WatchAddArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// Its name (letters, digits, '-', '_', '.').
    pub name: String,
    /// A text prompt to look for (repeatable).
    #[arg(long)]
    pub prompt: Vec<String>,
    /// An image to look for (repeatable); embedded now.
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// A stored row to look for more of, by id (repeatable); its vector is kept.
    #[arg(long)]
    pub like: Vec<String>,
    /// Alert on rows scoring at least this for some query (at most this distance for l2).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: f64,
    #[command(flatten)]
    pub neg: NegativeArgs,
    /// Only rows of these sources (repeatable; a source may not exist yet).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Back-fill: the first run also evaluates the rows of this day and later (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Who adds it (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// The model (default: the collection's).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum HoldCmd {
    /// Place a hold on a range of days (of one source, or of every source).
    Add {
        #[command(flatten)]
        c: CollectionArg,
        /// Only this source (default: every source).
        #[arg(long)]
        source: Option<String>,
        /// First day held, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day held (inclusive), YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Why (a case number, a request); recorded with the hold.
        #[arg(long)]
        reason: String,
        /// Who places it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Every hold, released ones included, with who placed or released it, when and why.
    List {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Release a hold (the record stays, with who released it, when and why).
    Release {
        #[command(flatten)]
        c: CollectionArg,
        /// The hold's number (see `hold list`).
        id: u64,
        /// Why it is released.
        #[arg(long)]
        reason: String,
        /// Who releases it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartitionsCmd {
    /// Partitions with rows, deleted rows and bytes.
    List {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Drop one partition.
    Drop {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long)]
        source: String,
        /// Day, YYYY-MM-DD.
        #[arg(long)]
        day: String,
    },
    /// Drop every partition older than an age or a day (whole partitions; cost grows with partitions, not rows).
    #[command(group(clap::ArgGroup::new("cutoff").required(true).args(["older_than", "before"])))]
    Retain {
        #[command(flatten)]
        c: CollectionArg,
        /// Drop partitions older than the last AGE (e.g. 400d, 52w): it keeps exactly the days
        /// that `--last AGE` selects.
        #[arg(long)]
        older_than: Option<String>,
        /// Drop partitions whose day is before this day (YYYY-MM-DD).
        #[arg(long)]
        before: Option<String>,
        /// Only restrict to this source.
        #[arg(long)]
        source: Option<String>,
        /// Show what would be dropped without dropping it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["vectors", "clip_retrieval"])))]
pub struct ImportArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// Vectors, .npy (float32 or float16, C order).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Metadata (.jsonl, .csv or .parquet), one row per vector.
    #[arg(long, requires = "vectors")]
    pub metadata: Option<PathBuf>,
    /// A clip-retrieval output folder (img_emb/ + metadata/).
    #[arg(long)]
    pub clip_retrieval: Option<PathBuf>,
    /// Source for rows without one.
    #[arg(long)]
    pub source: Option<String>,
    /// Day (YYYY-MM-DD) for rows without a timestamp.
    #[arg(long)]
    pub day: Option<String>,
    /// Ids become PREFIX + row number for rows without an id.
    #[arg(long)]
    pub id_prefix: Option<String>,
    /// Metric if the collection has to be created.
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    /// Rows per commit: each commit is atomic and durable.
    #[arg(long, default_value_t = 100_000)]
    pub batch_size: usize,
    /// The model that made these vectors (a folder or a cached hub name): recorded
    /// in the collection so that text and image searches use it, as after `index`.
    #[arg(long)]
    pub model: Option<String>,
    /// Then run the collection's watchlists on what was just added.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// Image files or folders (searched recursively).
    #[arg(required_unless_present = "manifest")]
    pub paths: Vec<std::path::PathBuf>,
    /// A CSV or JSONL manifest: columns uri, source, timestamp, optional id and user fields.
    #[arg(long, conflicts_with = "paths")]
    pub manifest: Option<std::path::PathBuf>,
    /// Data source of these images (partition key with the day); for a manifest, the default
    /// for rows without a source.
    #[arg(long, required_unless_present = "manifest")]
    pub source: Option<String>,
    /// A checkpoint folder or a cached hub name (default: the bundled demo model).
    #[arg(long)]
    pub model: Option<String>,
    /// Inputs per commit.
    #[arg(long, default_value_t = 256)]
    pub commit_every: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Do not keep thumbnails in the store.
    #[arg(long)]
    pub no_thumbnails: bool,
    /// Write every failed input and its reason to this file (TSV; default: failures-COLLECTION.tsv
    /// in the store, when anything failed).
    #[arg(long)]
    pub failures: Option<std::path::PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Index inputs whose rows were deleted or whose days were dropped or expired (they are
    /// skipped otherwise, so deletes and retention stick).
    #[arg(long)]
    pub readmit_deleted: bool,
    /// Exit with an error status when any input failed (the good ones are still indexed), for
    /// scheduled runs that must notice.
    #[arg(long)]
    pub strict: bool,
    /// Then run the collection's watchlists on what was just added.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A checkpoint folder, or a hub name found in the local Hugging Face cache (never downloaded).
    #[arg(long)]
    pub model: String,
    /// Texts to embed (repeatable).
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    pub text: Vec<String>,
    /// Image files to embed: `--image a.jpg b.jpg ...` (a shell glob works), or repeated.
    #[arg(long, num_args = 1..)]
    pub image: Vec<std::path::PathBuf>,
    /// json: one JSON array per input, one per line; npy: a matrix written to --out.
    #[arg(long, value_enum, default_value_t = EmbedFormat::Json)]
    pub format: EmbedFormat,
    /// Output file for --format npy.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EmbedFormat {
    Json,
    Npy,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

/// Negative prompts of a search, sweep, calibration or export.
#[derive(Debug, Args, Clone)]
pub struct NegativeArgs {
    /// A negative prompt (repeatable): a row must score higher for what was asked than for
    /// every negative prompt, by more than --not-margin. Scores stay the positive's.
    #[arg(id = "not", long = "not", value_name = "PROMPT")]
    pub not: Vec<String>,
    /// See --not.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub not_margin: f64,
}

impl NegativeArgs {
    /// As the engine takes them.
    pub fn negatives(&self) -> vitrine_engine::negatives::Negatives {
        vitrine_engine::negatives::Negatives {
            prompts: self.not.clone(),
            margin: self.not_margin,
        }
    }
}

/// Weighted prompts blended into text queries, as in rclip.
#[derive(Debug, Args, Clone)]
pub struct BlendArgs {
    /// A prompt added to each text query (repeatable; `W:PROMPT` weighs it, e.g. "0.5:sunset"):
    /// the query becomes the unit vector along its embedding plus the weighted ones.
    #[arg(long = "add", value_name = "[W:]PROMPT")]
    pub add: Vec<String>,
    /// A prompt subtracted from each text query (repeatable; `W:PROMPT` too).
    #[arg(long = "subtract", value_name = "[W:]PROMPT")]
    pub subtract: Vec<String>,
}

impl BlendArgs {
    /// As the engine takes them: added, then subtracted (negated).
    pub fn weighted(&self) -> Result<Vec<vitrine_engine::query::Weighted>, vitrine_engine::Error> {
        use vitrine_engine::query::Weighted;
        let mut out = Vec::new();
        for s in &self.add {
            out.push(Weighted::parse(s)?);
        }
        for s in &self.subtract {
            out.push(Weighted::parse(s)?.negated());
        }
        Ok(out)
    }
}

#[derive(Debug, Args, Clone)]
pub struct SelectionArgs {
    /// Only these sources (repeatable).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// First day, inclusive (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day, inclusive (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Only the last N days, today included (e.g. 30d).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub last: Option<String>,
    /// Filter expression (Milvus boolean-expression subset), e.g. 'price > 100 and city in ["x"]'.
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("query").required(true).args(["text", "image", "like", "vector_file"])))]
pub struct SearchArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// Query vectors, .npy: one vector or a batch.
    #[arg(long)]
    pub vector_file: Option<PathBuf>,
    /// Query by the vector of a stored row (its id; repeatable).
    #[arg(long)]
    pub like: Vec<String>,
    /// Query by text (repeatable: one query each), embedded with the collection's model.
    #[arg(long)]
    pub text: Vec<String>,
    /// Query by example image (repeatable).
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// Model for --text/--image (default: the one recorded in the collection).
    #[arg(long)]
    pub model: Option<String>,
    /// Results per query (with --threshold: an optional cap).
    #[arg(short, long)]
    pub k: Option<usize>,
    /// Range search: every hit scoring at least T (cosine, ip) or within distance T (l2).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    #[command(flatten)]
    pub neg: NegativeArgs,
    #[command(flatten)]
    pub blend: BlendArgs,
    #[command(flatten)]
    pub sel: SelectionArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print what the search covered (partitions, rows scanned, rows excluded) to stderr.
    #[arg(long)]
    pub receipt: bool,
    /// Only these user fields in the output (repeatable; default: all of them).
    #[arg(long = "field", value_name = "NAME")]
    pub fields: Vec<String>,
    /// Also write a self-contained HTML page with the hits as a grid of thumbnails.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("cutoff").required(true).args(["threshold", "top", "prompt_set"])))]
pub struct SweepArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// A text prompt (repeatable); a row matches if any prompt matches.
    #[arg(long = "prompt", required_unless_present = "prompt_set")]
    pub prompts: Vec<String>,
    /// Or a prompt set saved by `calibrate --save`, at its threshold for --precision (the
    /// receipt says what precision to expect, and on what labels).
    #[arg(long, conflicts_with_all = ["prompts", "not"], requires = "precision")]
    pub prompt_set: Option<String>,
    /// The calibrated precision to sweep at (see --prompt-set).
    #[arg(long, requires = "prompt_set")]
    pub precision: Option<f64>,
    /// Every row scoring at least this (exact, no cap).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// The N best rows per prompt instead.
    #[arg(long)]
    pub top: Option<usize>,
    #[command(flatten)]
    pub neg: NegativeArgs,
    #[command(flatten)]
    pub blend: BlendArgs,
    #[command(flatten)]
    pub sel: SelectionArgs,
    /// Model (default: the collection's).
    #[arg(long)]
    pub model: Option<String>,
    /// Output CSV (prompt, id, score, source, day, uri), best first.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the recall receipt (what was scanned, excluded, failed or pending) as JSON here.
    #[arg(long)]
    pub receipt: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// A file with one label per line.
    #[arg(long)]
    pub labels: PathBuf,
    /// Prompt template with {} for the label (repeatable; embeddings are averaged).
    #[arg(long = "template", default_value = "a photo of a {}")]
    pub templates: Vec<String>,
    #[command(flatten)]
    pub sel: SelectionArgs,
    /// Model (default: the collection's).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DupesArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// A pair is a duplicate when it scores at least T (cosine, ip) or lies within distance T
    /// (l2). Every such pair is found (exact range search per row, no approximate index).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: f64,
    /// The rows whose duplicates are sought (default: every row).
    #[command(flatten)]
    pub sel: SelectionArgs,
    #[command(flatten)]
    pub against: AgainstArgs,
    /// Keep only clusters whose members come from more than one source (an avatar reused as a
    /// product photo).
    #[arg(long)]
    pub across_sources: bool,
    /// One line per pair (cluster, a, b, score) instead of one per member.
    #[arg(long)]
    pub pairs: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write a self-contained HTML page with each cluster as a row of thumbnails.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// A second selection to look for duplicates in (any flag given: the join is the first
/// selection against this one instead of against itself).
#[derive(Debug, Args, Clone)]
pub struct AgainstArgs {
    /// Look only in these sources (repeatable).
    #[arg(id = "against_source", long = "against-source")]
    pub sources: Vec<String>,
    /// First day to look in, inclusive (YYYY-MM-DD).
    #[arg(id = "against_from", long = "against-from")]
    pub from: Option<String>,
    /// Last day to look in, inclusive (YYYY-MM-DD).
    #[arg(id = "against_to", long = "against-to")]
    pub to: Option<String>,
    /// Look only in the last N days (e.g. 30d).
    #[arg(id = "against_last", long = "against-last", conflicts_with_all = ["against_from", "against_to"])]
    pub last: Option<String>,
    /// Filter expression for the rows to look in.
    #[arg(id = "against_filter", long = "against-filter")]
    pub filter: Option<String>,
}

impl AgainstArgs {
    /// The same flags as a plain selection, when any is given.
    pub fn selection(&self) -> Option<SelectionArgs> {
        let given = !self.sources.is_empty()
            || self.from.is_some()
            || self.to.is_some()
            || self.last.is_some()
            || self.filter.is_some();
        given.then(|| SelectionArgs {
            sources: self.sources.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            last: self.last.clone(),
            filter: self.filter.clone(),
        })
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("rows").args(["hits", "prompts", "verify"]).required(true)))]
pub struct ExportArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// Check a package instead: every file against its manifest; lists every problem.
    #[arg(long, value_name = "ZIP", conflicts_with_all = ["hits", "prompts", "out"])]
    pub verify: Option<PathBuf>,
    /// The package to write (never overwritten).
    #[arg(long, required_unless_present = "verify")]
    pub out: Option<PathBuf>,
    /// The rows: a CSV with an `id` column (as search --format csv and sweep --out write).
    #[arg(long, conflicts_with = "prompts")]
    pub hits: Option<PathBuf>,
    /// Or the rows of a sweep run now: a text prompt (repeatable).
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// The sweep's threshold.
    #[arg(long, allow_negative_numbers = true, requires = "prompts", conflicts_with = "top")]
    pub threshold: Option<f64>,
    /// Or the sweep's best N rows per prompt.
    #[arg(long, requires = "prompts")]
    pub top: Option<usize>,
    #[command(flatten)]
    pub neg: NegativeArgs,
    #[command(flatten)]
    pub sel: SelectionArgs,
    /// Why the package is made (a case number), recorded in it.
    #[arg(long)]
    pub reason: Option<String>,
    /// Who makes it (default: $USER), recorded in it.
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// A text prompt (repeatable); a row's score is its best prompt's, as in a sweep.
    #[arg(long = "prompt", required = true)]
    pub prompts: Vec<String>,
    #[command(flatten)]
    pub neg: NegativeArgs,
    /// A reviewer's sample: CSV with columns `id` and `label` (1: a true match, 0: not).
    #[arg(long)]
    pub labels: PathBuf,
    /// Find the threshold for this precision (repeatable).
    #[arg(long = "precision", default_values_t = [0.9, 0.95, 0.99])]
    pub precisions: Vec<f64>,
    /// Save the prompt set under this name with the thresholds found (for `sweep --prompt-set`).
    #[arg(long)]
    pub save: Option<String>,
    /// Also draw precision and recall against the threshold as an SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The rows counted at each threshold (default: all).
    #[command(flatten)]
    pub sel: SelectionArgs,
    /// Who calibrates (default: $USER), saved with the set.
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub c: CollectionArg,
    /// Ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<String>,
    /// A file of ids, one per line.
    #[arg(long)]
    pub ids_file: Option<PathBuf>,
    #[command(flatten)]
    pub sel: SelectionArgs,
    /// Allow deleting every row (no selection given).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Training data for the demo model: gallery pictures through JPEG, decoded and resized
    /// exactly as at index time, as `pixels.npy` (N × size × size × 3, uint8) + `labels.jsonl`.
    DemoDataset {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Side of the model's input.
        #[arg(long, default_value_t = 64)]
        size: u32,
        /// Side of the rendered JPEG.
        #[arg(long, default_value_t = vitrine_gallery::GALLERY_SIDE)]
        render: u32,
    },
    /// Zero-shot retrieval accuracy of a model on held-out gallery pictures; JSON.
    DemoEval {
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 7_000_001)]
        seed: u64,
    },
    /// Memory read bandwidth (sum of a large f32 array), 1 thread and all threads; JSON.
    Membw {
        #[arg(long, default_value_t = 2048)]
        mib: usize,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Median search latency in-process; JSON.
    Search {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long)]
        queries: PathBuf,
        #[arg(short, long, default_value_t = 20)]
        k: usize,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 7)]
        repeat: usize,
        #[command(flatten)]
        sel: SelectionArgs,
    },
    /// Median latency of text queries in-process (embed the text, then exact top-k); JSON.
    TextSearch {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long)]
        model: Option<String>,
        /// Query texts, one per line, used in turn (the first warms up); default: built-in captions.
        #[arg(long)]
        queries: Option<PathBuf>,
        #[arg(short, long, default_value_t = 20)]
        k: usize,
        #[arg(long, default_value_t = 15)]
        repeat: usize,
        #[command(flatten)]
        sel: SelectionArgs,
    },
    /// Image encoding throughput on random pixels (no decoding); JSON.
    ClipImage {
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Text encoding throughput on 32 fixed captions; JSON.
    ClipText {
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Decode + preprocess throughput over the images of a folder (all cores); JSON.
    Preprocess {
        #[arg(long)]
        model: String,
        #[arg(long)]
        images: PathBuf,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Writes the preprocessed pixel tensor of each image as one row of a .npy (parity checks).
    Pixels {
        #[arg(long)]
        model: String,
        #[arg(long, required = true)]
        image: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Median time to open a snapshot; JSON.
    Open {
        #[command(flatten)]
        c: CollectionArg,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
}
