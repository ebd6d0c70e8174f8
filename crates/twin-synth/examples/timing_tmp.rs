fn main() {
    let spec = twin_synth::SynthSpec {
        writers: 50,
        genuine_per_writer: 10,
        forgeries_per_writer: 10,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let s =
        twin_synth::write_dataset(&spec, std::path::Path::new("/tmp/synth-1000")).expect("write");
    println!("{} images in {:.2}s", s.images(), t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let mut n = 0;
    for w in 0..50 {
        for i in 0..10 {
            n += twin_synth::generate_sample(&spec, w, twin_synth::SampleKind::Genuine, i).len();
            n += twin_synth::generate_sample(&spec, w, twin_synth::SampleKind::Forgery, i).len();
        }
    }
    println!(
        "1000 renders single thread (no png) {:.2}s {n}",
        t.elapsed().as_secs_f64()
    );
}
