//! Renders a contact sheet of a few writers (genuine rows, then forgeries) for eyeballing.
use image::GenericImage;
use twin_synth::{generate_sample, SampleKind, SynthSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).cloned().unwrap_or_else(|| "preview.png".into());
    let first: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let spec = SynthSpec::default();
    let (w, h) = (spec.width, spec.height);
    let writers: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let per: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut sheet =
        image::GrayImage::from_pixel(w * per as u32, h * (writers * 2) as u32, image::Luma([128]));
    for wr in 0..writers {
        for i in 0..per {
            let g = generate_sample(&spec, first + wr, SampleKind::Genuine, i);
            let f = generate_sample(&spec, first + wr, SampleKind::Forgery, i);
            sheet
                .copy_from(&g, i as u32 * w, (wr * 2) as u32 * h)
                .expect("fits");
            sheet
                .copy_from(&f, i as u32 * w, (wr * 2 + 1) as u32 * h)
                .expect("fits");
        }
    }
    sheet.save(out).expect("save");
}
