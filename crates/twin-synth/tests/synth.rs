//! The generator's promises: byte-identical output for a seed, the documented folder layout, and
//! samples that carry their writer's identity (genuine samples of a writer look more alike than
//! samples of different writers, and forgeries sit in between).

use twin_synth::{
    encode_png, generate_sample, write_dataset, GrayImage, SampleKind, SynthError, SynthSpec,
};

fn small_spec(seed: u64) -> SynthSpec {
    SynthSpec {
        writers: 3,
        genuine_per_writer: 2,
        forgeries_per_writer: 2,
        seed,
        width: 300,
        height: 100,
    }
}

#[test]
fn same_seed_gives_byte_identical_pngs_and_another_seed_does_not() {
    let spec = SynthSpec::default();
    for kind in [SampleKind::Genuine, SampleKind::Forgery] {
        let a = encode_png(&generate_sample(&spec, 4, kind, 2));
        let b = encode_png(&generate_sample(&spec, 4, kind, 2));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{kind:?} sample differs between two runs");
        let other = SynthSpec { seed: 1, ..spec };
        assert_ne!(a, encode_png(&generate_sample(&other, 4, kind, 2)));
        assert_ne!(a, encode_png(&generate_sample(&spec, 4, kind, 3)));
    }
}

#[test]
fn a_sample_does_not_depend_on_the_dataset_size() {
    let few = SynthSpec {
        writers: 2,
        ..SynthSpec::default()
    };
    let many = SynthSpec {
        writers: 500,
        genuine_per_writer: 40,
        ..few
    };
    assert_eq!(
        generate_sample(&few, 1, SampleKind::Forgery, 0),
        generate_sample(&many, 1, SampleKind::Forgery, 0)
    );
}

#[test]
fn dataset_folders_are_byte_identical_for_a_seed_and_follow_the_layout() {
    let spec = small_spec(42);
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    let summary = write_dataset(&spec, first.path()).expect("first dataset");
    write_dataset(&spec, second.path()).expect("second dataset");

    assert_eq!(
        (summary.writers, summary.genuine, summary.forgeries),
        (3, 6, 6)
    );
    assert_eq!(summary.images(), 12);
    assert_eq!(summary.labels, first.path().join("labels.csv"));

    let labels = std::fs::read_to_string(&summary.labels).expect("labels.csv");
    let mut lines = labels.lines();
    assert_eq!(lines.next(), Some("path,subject,kind"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    assert!(rows.contains(&vec!["w0001/w0001-G-01.png", "w0001", "genuine"]));
    assert!(rows.contains(&vec!["w0003/w0003-F-02.png", "w0003", "forgery"]));
    for row in &rows {
        let [path, subject, kind] = row[..] else {
            panic!("row {row:?} has not three fields");
        };
        let (folder, file) = path.split_once('/').expect("subject folder");
        assert_eq!(folder, subject);
        let code = if kind == "genuine" { "-G-" } else { "-F-" };
        assert!(file.starts_with(subject) && file.contains(code) && file.ends_with(".png"));
        let a = std::fs::read(first.path().join(path)).expect("image in first");
        let b = std::fs::read(second.path().join(path)).expect("image in second");
        assert_eq!(a, b, "{path} differs between two runs with the same seed");
        let decoded = image::load_from_memory(&a).expect("valid png").to_luma8();
        assert_eq!(decoded.dimensions(), (300, 100));
    }
    assert_eq!(
        std::fs::read(second.path().join("labels.csv")).expect("labels"),
        labels.into_bytes()
    );
}

#[test]
fn encode_png_round_trips() {
    let image = generate_sample(&SynthSpec::default(), 0, SampleKind::Genuine, 0);
    let decoded = image::load_from_memory(&encode_png(&image))
        .expect("decodes")
        .to_luma8();
    assert_eq!(decoded, image);
}

#[test]
fn invalid_specs_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (spec, needle) in [
        (
            SynthSpec {
                writers: 0,
                ..small_spec(0)
            },
            "writers",
        ),
        (
            SynthSpec {
                genuine_per_writer: 0,
                forgeries_per_writer: 0,
                ..small_spec(0)
            },
            "at least one",
        ),
        (
            SynthSpec {
                width: 8,
                ..small_spec(0)
            },
            "width",
        ),
    ] {
        match write_dataset(&spec, dir.path()) {
            Err(SynthError::InvalidSpec(reason)) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected invalid spec, got {other:?}"),
        }
    }
    assert!(!dir.path().join("labels.csv").exists());
}

#[test]
fn samples_look_like_ink_on_paper() {
    let spec = SynthSpec::default();
    for writer in 0..10 {
        for kind in [SampleKind::Genuine, SampleKind::Forgery] {
            let image = generate_sample(&spec, writer, kind, 0);
            let pixels = image.as_raw();
            let ink = pixels.iter().filter(|&&p| p < 128).count() as f64 / pixels.len() as f64;
            assert!(
                (0.01..0.2).contains(&ink),
                "writer {writer} {kind:?}: ink share {ink:.3} is not a signature"
            );
            assert!(pixels.iter().filter(|&&p| p == 255).count() > pixels.len() / 2);
            // Anti-aliased: there are intermediate grey levels along the stroke edges.
            assert!(pixels.iter().any(|&p| (40..215).contains(&p)));
            // The signature stays inside the page: the outermost rows and columns are blank.
            let (w, h) = image.dimensions();
            for x in 0..w {
                assert_eq!(image.get_pixel(x, 0)[0], 255);
                assert_eq!(image.get_pixel(x, h - 1)[0], 255);
            }
            for y in 0..h {
                assert_eq!(image.get_pixel(0, y)[0], 255);
                assert_eq!(image.get_pixel(w - 1, y)[0], 255);
            }
        }
    }
}

/// A coarse binary shape: ink cropped to its bounding box and max-pooled onto a small grid, so
/// position, scale and stroke width matter little and the layout of the strokes matters most.
fn shape(image: &GrayImage) -> Vec<bool> {
    const GW: u32 = 48;
    const GH: u32 = 16;
    let (w, h) = image.dimensions();
    let inked = |x: u32, y: u32| image.get_pixel(x, y)[0] < 160;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if inked(x, y) {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    assert!(x0 <= x1, "blank image");
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut grid = vec![false; (GW * GH) as usize];
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inked(x, y) {
                let gx = ((x - x0) * GW / bw).min(GW - 1);
                let gy = ((y - y0) * GH / bh).min(GH - 1);
                grid[(gy * GW + gx) as usize] = true;
            }
        }
    }
    grid
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let either = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    both as f64 / either.max(1) as f64
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn genuine_samples_carry_their_writers_identity() {
    let spec = SynthSpec {
        seed: 7,
        ..SynthSpec::default()
    };
    let (writers, per) = (12, 4);
    let genuine: Vec<Vec<Vec<bool>>> = (0..writers)
        .map(|w| {
            (0..per)
                .map(|i| shape(&generate_sample(&spec, w, SampleKind::Genuine, i)))
                .collect()
        })
        .collect();
    let forged: Vec<Vec<Vec<bool>>> = (0..writers)
        .map(|w| {
            (0..per)
                .map(|i| shape(&generate_sample(&spec, w, SampleKind::Forgery, i)))
                .collect()
        })
        .collect();

    let (mut same, mut other, mut skilled) = (Vec::new(), Vec::new(), Vec::new());
    let mut nearest_correct = 0;
    for (w, samples) in genuine.iter().enumerate() {
        for (i, query) in samples.iter().enumerate() {
            let mut best = (f64::MIN, usize::MAX);
            for (v, candidates) in genuine.iter().enumerate() {
                for (j, candidate) in candidates.iter().enumerate() {
                    if (v, j) == (w, i) {
                        continue;
                    }
                    let score = iou(query, candidate);
                    if v == w {
                        same.push(score);
                    } else {
                        other.push(score);
                    }
                    if score > best.0 {
                        best = (score, v);
                    }
                }
            }
            skilled.extend(forged[w].iter().map(|f| iou(query, f)));
            nearest_correct += usize::from(best.1 == w);
        }
    }
    let (same, other, skilled) = (mean(&same), mean(&other), mean(&skilled));
    let nearest = nearest_correct as f64 / (writers * per) as f64;
    eprintln!(
        "iou same writer {same:.3}, skilled forgery {skilled:.3}, other writer {other:.3}, \
         nearest-neighbour writer accuracy {nearest:.3}"
    );
    assert!(same > other + 0.15, "same {same:.3} vs other {other:.3}");
    assert!(nearest >= 0.9, "nearest-neighbour accuracy {nearest:.3}");
    // Skilled forgeries are hard negatives: nearer the writer than other writers are, but not
    // as near as the writer's own samples.
    assert!(
        skilled > other + 0.05,
        "skilled {skilled:.3} vs other {other:.3}"
    );
    assert!(skilled < same, "skilled {skilled:.3} vs same {same:.3}");
}
