//! A contact sheet for eyeballing the generator: for each writer, a row of genuine samples and
//! under it a row of skilled forgeries of that writer.
//!
//! `cargo run -p twin-synth --example preview -- OUT.png [FIRST_WRITER] [WRITERS] [PER_ROW] [SEED]`

use image::GenericImage;
use twin_synth::{generate_sample, SampleKind, SynthSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: u64| {
        args.get(i)
            .map(|s| s.parse().expect("arguments after OUT.png are numbers"))
            .unwrap_or(default)
    };
    let out = args.get(1).map_or("preview.png", String::as_str);
    let first = number(2, 0) as usize;
    let writers = number(3, 4) as u32;
    let per_row = number(4, 3) as u32;
    let spec = SynthSpec {
        seed: number(5, 0),
        ..SynthSpec::default()
    };
    let (w, h) = (spec.width, spec.height);
    let mut sheet = image::GrayImage::from_pixel(w * per_row, h * writers * 2, image::Luma([128]));
    for row in 0..writers {
        for i in 0..per_row {
            let writer = first + row as usize;
            for (offset, kind) in [(0, SampleKind::Genuine), (1, SampleKind::Forgery)] {
                let sample = generate_sample(&spec, writer, kind, i as usize);
                sheet
                    .copy_from(&sample, i * w, (row * 2 + offset) * h)
                    .expect("the sheet is sized for every sample");
            }
        }
    }
    sheet.save(out).expect("the contact sheet can be written");
    println!("wrote {out}");
}
