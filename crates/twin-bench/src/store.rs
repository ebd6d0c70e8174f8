//! `twin bench store`: how fast the embedded store takes and answers vectors of a
//! model's size. For each collection size it measures upsert throughput (durable
//! writes, as the worker makes them), the HNSW build, and search latency with and
//! without a subject filter. The result prints as a table and one JSON line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use twin_core::metric::Metric;

use twin_store::{
    CollectionSpec, EmbeddedStore, Point, PointFilter, PointPayload, SearchRequest, StoreError,
    VectorStore,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct StoreBenchOptions {
    /// Collection sizes, in points; each gets a fresh store.
    pub sizes: Vec<usize>,
    /// Vector size (the model's embedding size).
    pub dim: usize,
    pub metric: Metric,
    /// Searches timed per size and kind (unfiltered, filtered).
    pub queries: usize,
    pub top_k: usize,
    /// Points per upsert call.
    pub batch: usize,
    /// Points per subject (the filtered search selects one subject).
    pub points_per_subject: usize,
    /// Where the stores are built; a temporary directory when `None`. Each size uses
    /// a fresh subdirectory, removed afterwards.
    pub data_dir: Option<PathBuf>,
    pub seed: u64,
}

impl Default for StoreBenchOptions {
    fn default() -> Self {
        Self {
            sizes: vec![100_000, 1_000_000],
            dim: 128,
            metric: Metric::Cosine,
            queries: 1_000,
            top_k: 10,
            batch: 1_000,
            points_per_subject: 10,
            data_dir: None,
            seed: 42,
        }
    }
}

/// Latency percentiles of one kind of call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self {
                p50_ms: 0.0,
                p99_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| {
            let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
        Self {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            mean_ms: mean,
        }
    }
}

/// Figures for one collection size.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeReport {
    pub points: usize,
    /// Points per second through `upsert` into a fresh, unindexed collection (each
    /// call waits until durable; no index build runs meanwhile).
    pub upsert_points_per_s: f64,
    pub upsert_s: f64,
    /// Points per second through `upsert` once the collection is indexed: further
    /// enrolments into a full collection.
    pub upsert_indexed_points_per_s: f64,
    /// Time of `optimize()`: HNSW build plus segment merging.
    pub hnsw_build_s: f64,
    /// Points in the HNSW index afterwards.
    pub indexed_vectors: u64,
    pub search: Latency,
    pub search_filtered: Latency,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreBenchReport {
    pub backend: &'static str,
    pub dim: usize,
    pub metric: Metric,
    pub queries: usize,
    pub top_k: usize,
    pub batch: usize,
    pub sizes: Vec<SizeReport>,
}

/// `100000` → `100k`, `1000000` → `1m`, others as they are; used in JSON keys.
pub fn size_label(points: usize) -> String {
    if points >= 1_000_000 && points.is_multiple_of(1_000_000) {
        format!("{}m", points / 1_000_000)
    } else if points >= 1_000 && points.is_multiple_of(1_000) {
        format!("{}k", points / 1_000)
    } else {
        points.to_string()
    }
}

impl StoreBenchReport {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "store benchmark: backend {}, {} dims, {}, top_k {}, {} queries per kind, {} points \
             per upsert\n",
            self.backend, self.dim, self.metric, self.top_k, self.queries, self.batch
        );
        out.push_str(&format!(
            "{:>9} {:>12} {:>13} {:>10} {:>9} {:>9} {:>9} {:>12} {:>12}\n",
            "points",
            "upsert pt/s",
            "+indexed pt/s",
            "hnsw s",
            "indexed",
            "p50 ms",
            "p99 ms",
            "filt p50 ms",
            "filt p99 ms"
        ));
        for s in &self.sizes {
            out.push_str(&format!(
                "{:>9} {:>12.0} {:>13.0} {:>10.1} {:>9} {:>9.3} {:>9.3} {:>12.3} {:>12.3}\n",
                s.points,
                s.upsert_points_per_s,
                s.upsert_indexed_points_per_s,
                s.hnsw_build_s,
                s.indexed_vectors,
                s.search.p50_ms,
                s.search.p99_ms,
                s.search_filtered.p50_ms,
                s.search_filtered.p99_ms
            ));
        }
        out
    }

    /// One JSON object on one line, keys suffixed by size (`search_p99_ms_1m`).
    pub fn json_line(&self) -> String {
        use serde_json::{json, Value};
        let round = |x: f64, digits: i32| {
            let f = 10f64.powi(digits);
            (x * f).round() / f
        };
        let mut fields: Vec<(String, Value)> = vec![
            ("bench".into(), json!("store")),
            ("backend".into(), json!(self.backend)),
            ("dim".into(), json!(self.dim)),
            ("metric".into(), json!(self.metric.as_str())),
            ("top_k".into(), json!(self.top_k)),
            ("queries".into(), json!(self.queries)),
            ("batch".into(), json!(self.batch)),
            (
                "sizes".into(),
                json!(self.sizes.iter().map(|s| s.points).collect::<Vec<_>>()),
            ),
        ];
        for s in &self.sizes {
            let l = size_label(s.points);
            fields.extend([
                (
                    format!("upsert_pts_per_s_{l}"),
                    json!(round(s.upsert_points_per_s, 0)),
                ),
                (
                    format!("upsert_indexed_pts_per_s_{l}"),
                    json!(round(s.upsert_indexed_points_per_s, 0)),
                ),
                (format!("hnsw_build_s_{l}"), json!(round(s.hnsw_build_s, 2))),
                (format!("indexed_vectors_{l}"), json!(s.indexed_vectors)),
                (
                    format!("search_p50_ms_{l}"),
                    json!(round(s.search.p50_ms, 3)),
                ),
                (
                    format!("search_p99_ms_{l}"),
                    json!(round(s.search.p99_ms, 3)),
                ),
                (
                    format!("search_filtered_p50_ms_{l}"),
                    json!(round(s.search_filtered.p50_ms, 3)),
                ),
                (
                    format!("search_filtered_p99_ms_{l}"),
                    json!(round(s.search_filtered.p99_ms, 3)),
                ),
            ]);
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// splitmix64: a small, seedable generator, plenty for benchmark data.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| self.next_f32()).collect();
        twin_core::metric::l2_normalize(&mut v);
        v
    }
}

const BENCH_MODEL_ID: &str = "bench";

fn bench_point(i: usize, points_per_subject: usize, vector: Vec<f32>) -> Point {
    Point::new(
        vector,
        PointPayload {
            subject_id: format!("subject-{}", i / points_per_subject.max(1)),
            image_sha256: format!("{i:064x}"),
            source: format!("bench-{i}"),
            enrolled_at_ms: 1_700_000_000_000 + i as i64,
            model_id: BENCH_MODEL_ID.to_owned(),
            ..PointPayload::default()
        },
    )
}

/// Runs the benchmark. Progress goes to the log; the report is returned.
pub async fn run_store_bench(options: &StoreBenchOptions) -> Result<StoreBenchReport, StoreError> {
    if options.sizes.is_empty() || options.sizes.contains(&0) {
        return Err(StoreError::InvalidArgument(
            "give at least one collection size, each at least 1 point".to_owned(),
        ));
    }
    if options.batch == 0 || options.queries == 0 || options.dim == 0 {
        return Err(StoreError::InvalidArgument(
            "batch, queries and dim must be at least 1".to_owned(),
        ));
    }
    let parent = match &options.data_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("twin-bench-store-")
            .tempdir_in(dir),
        None => tempfile::Builder::new()
            .prefix("twin-bench-store-")
            .tempdir(),
    }
    .map_err(|e| StoreError::Internal(format!("cannot create a benchmark directory: {e}")))?;

    let mut sizes = Vec::with_capacity(options.sizes.len());
    for (n, &points) in options.sizes.iter().enumerate() {
        let dir = parent.path().join(format!("size-{points}"));
        let mut rng = Rng(options.seed.wrapping_add(n as u64));
        let report = bench_size(options, points, &dir, &mut rng).await?;
        let _ = std::fs::remove_dir_all(&dir);
        sizes.push(report);
    }
    Ok(StoreBenchReport {
        backend: "embedded",
        dim: options.dim,
        metric: options.metric,
        queries: options.queries,
        top_k: options.top_k,
        batch: options.batch,
        sizes,
    })
}

async fn bench_size(
    options: &StoreBenchOptions,
    points: usize,
    dir: &std::path::Path,
    rng: &mut Rng,
) -> Result<SizeReport, StoreError> {
    // Index builds are timed on their own, so none may start during the upserts.
    let store = EmbeddedStore::open(dir, 0).await?;
    let spec = CollectionSpec {
        name: "bench".to_owned(),
        dim: options.dim,
        metric: options.metric,
    };
    store.ensure_collection(&spec).await?;

    let upsert_time = upsert_range(&store, &spec.name, options, 0..points, rng).await?;
    tracing::info!(
        points,
        upsert_s = upsert_time.as_secs_f64(),
        "bench store: upserted, building index"
    );

    let started = Instant::now();
    store.optimize(&spec.name).await?;
    let hnsw_build = started.elapsed();
    let info = store.collection_info(&spec.name).await?;
    tracing::info!(
        points,
        hnsw_build_s = hnsw_build.as_secs_f64(),
        indexed = info.indexed_vectors,
        "bench store: index built, searching"
    );

    let subjects = points.div_ceil(options.points_per_subject.max(1));
    let mut plain = Vec::with_capacity(options.queries);
    let mut filtered = Vec::with_capacity(options.queries);
    for _ in 0..options.queries {
        let request = SearchRequest {
            vector: rng.unit_vector(options.dim),
            top_k: options.top_k,
            filter: PointFilter::all(),
            score_threshold: None,
        };
        let started = Instant::now();
        let hits = store.search(&spec.name, &request).await?;
        plain.push(started.elapsed());
        if hits.is_empty() {
            return Err(StoreError::Internal(
                "benchmark search found nothing in a filled collection".to_owned(),
            ));
        }

        let request = SearchRequest {
            filter: PointFilter::subject(format!("subject-{}", rng.below(subjects))),
            ..request
        };
        let started = Instant::now();
        let hits = store.search(&spec.name, &request).await?;
        filtered.push(started.elapsed());
        if hits.is_empty() {
            return Err(StoreError::Internal(
                "benchmark filtered search found nothing for an enrolled subject".to_owned(),
            ));
        }
    }
    // Further enrolments into the indexed collection (new points, same batches).
    let extra = (options.batch * 10).min(points).max(1);
    let extra_time = upsert_range(&store, &spec.name, options, points..points + extra, rng).await?;
    store.close().await?;
    Ok(SizeReport {
        points,
        upsert_points_per_s: points as f64 / upsert_time.as_secs_f64().max(1e-9),
        upsert_s: upsert_time.as_secs_f64(),
        upsert_indexed_points_per_s: extra as f64 / extra_time.as_secs_f64().max(1e-9),
        hnsw_build_s: hnsw_build.as_secs_f64(),
        indexed_vectors: info.indexed_vectors,
        search: Latency::of(plain),
        search_filtered: Latency::of(filtered),
    })
}

/// Upserts points `range` in batches; returns the time spent inside `upsert`.
async fn upsert_range(
    store: &EmbeddedStore,
    collection: &str,
    options: &StoreBenchOptions,
    range: std::ops::Range<usize>,
    rng: &mut Rng,
) -> Result<Duration, StoreError> {
    let mut upsert_time = Duration::ZERO;
    let mut next = range.start;
    let mut last_log = Instant::now();
    while next < range.end {
        let count = options.batch.min(range.end - next);
        let batch: Vec<Point> = (next..next + count)
            .map(|i| bench_point(i, options.points_per_subject, rng.unit_vector(options.dim)))
            .collect();
        let started = Instant::now();
        store.upsert(collection, &batch).await?;
        upsert_time += started.elapsed();
        next += count;
        if last_log.elapsed() > Duration::from_secs(10) {
            tracing::info!(points = next, of = range.end, "bench store: upserting");
            last_log = Instant::now();
        }
    }
    Ok(upsert_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_ranks() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p99_ms, 99.0);
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn sizes_get_short_labels() {
        assert_eq!(size_label(100_000), "100k");
        assert_eq!(size_label(1_000_000), "1m");
        assert_eq!(size_label(2_500), "2500");
        assert_eq!(size_label(1_234), "1234");
    }

    #[tokio::test]
    async fn a_small_run_reports_every_figure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreBenchOptions {
            sizes: vec![2_000],
            queries: 20,
            batch: 500,
            data_dir: Some(dir.path().to_owned()),
            ..StoreBenchOptions::default()
        };
        let report = run_store_bench(&options).await.expect("bench runs");
        assert_eq!(report.sizes.len(), 1);
        let size = &report.sizes[0];
        assert!(size.upsert_points_per_s > 0.0);
        assert!(size.upsert_indexed_points_per_s > 0.0);
        assert!(size.search.p99_ms >= size.search.p50_ms);
        let line = report.json_line();
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(parsed["bench"], "store");
        assert!(parsed["search_p99_ms_2k"].is_number(), "{line}");
        assert!(parsed["upsert_indexed_pts_per_s_2k"].is_number(), "{line}");
        assert!(line.starts_with("{\"bench\":\"store\""), "{line}");
        assert!(report.table().contains("2000"));
    }
}
