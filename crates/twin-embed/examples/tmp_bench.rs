fn main() {
    let config = twin_core::config::TwinConfig::from_env(None).expect("config");
    let embedder =
        twin_embed::Embedder::load("models/signature-dev".as_ref(), &config.embed).expect("load");
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(3.0, |s| s.parse().expect("secs"));
    let report = twin_embed::bench::run_embed_bench(
        &embedder,
        &twin_embed::bench::BenchOptions {
            seconds: secs,
            ..Default::default()
        },
    )
    .expect("bench");
    print!("{}", report.table());
    println!("{}", report.json_line());
}
