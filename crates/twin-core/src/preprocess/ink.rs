//! Steps 3–5: Otsu's split of ink from paper, reading a pixel as ink on black, and the
//! ink's bounding box.

/// Gray levels that must separate the mean of ink and the mean of paper; below this the
/// image is treated as blank (scanner noise on an empty page would otherwise be "ink").
pub(super) const MIN_CONTRAST: f64 = 16.0;

/// Otsu's split of the gray levels into ink and paper.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct InkSplit {
    /// Levels `<= threshold` form the dark class.
    pub(super) threshold: u8,
    /// The ink is the dark class (dark ink on light paper); false for light-on-dark.
    pub(super) ink_is_dark: bool,
}

impl InkSplit {
    pub(super) fn is_ink(&self, level: u8) -> bool {
        (level <= self.threshold) == self.ink_is_dark
    }
}

/// Otsu's threshold over the 256-level histogram; `None` when the image has one level
/// or too little contrast to hold ink.
pub(super) fn otsu_split(pixels: &[u8]) -> Option<InkSplit> {
    let histogram = histogram(pixels);
    let total = pixels.len() as f64;
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(level, &n)| level as f64 * n as f64)
        .sum();

    let (mut best, mut best_variance) = (None, -1.0f64);
    let (mut dark_count, mut dark_sum) = (0.0f64, 0.0f64);
    for (level, &n) in histogram.iter().enumerate().take(255) {
        dark_count += n as f64;
        dark_sum += level as f64 * n as f64;
        let light_count = total - dark_count;
        if dark_count == 0.0 || light_count == 0.0 {
            continue;
        }
        let dark_mean = dark_sum / dark_count;
        let light_mean = (sum_all - dark_sum) / light_count;
        let variance = dark_count * light_count * (dark_mean - light_mean).powi(2);
        if variance > best_variance {
            best_variance = variance;
            best = Some((level as u8, dark_count, dark_mean, light_count, light_mean));
        }
    }
    let (threshold, dark_count, dark_mean, light_count, light_mean) = best?;
    if light_mean - dark_mean < MIN_CONTRAST {
        return None;
    }
    Some(InkSplit {
        threshold,
        // The ink is the smaller class: a signature covers a small part of its page.
        ink_is_dark: dark_count <= light_count,
    })
}

/// Pixels looked at together when skipping paper: a run of one level in the histogram, a
/// run without ink in the resize. Long enough for the comparisons to be vectorized, short
/// enough that a stroke leaves most runs of its row untouched.
pub(super) const RUN: usize = 32;

/// The 256-level histogram of `pixels`.
pub(super) fn histogram(pixels: &[u8]) -> [u64; 256] {
    // A scan is mostly paper of one level: a run of equal pixels is counted at once.
    // Other runs go through four interleaved histograms, as consecutive pixels of one
    // level would otherwise wait on each other's increment.
    let mut partial = [[0u32; 256]; 4];
    let mut runs = pixels.chunks_exact(RUN);
    for run in &mut runs {
        let first = run[0];
        if run.iter().fold(0u8, |acc, &p| acc | (p ^ first)) == 0 {
            partial[0][first as usize] += RUN as u32;
        } else {
            count_interleaved(&mut partial, run);
        }
    }
    count_interleaved(&mut partial, runs.remainder());
    let mut histogram = [0u64; 256];
    for (level, count) in histogram.iter_mut().enumerate() {
        *count = partial.iter().map(|lane| u64::from(lane[level])).sum();
    }
    histogram
}

pub(super) fn count_interleaved(partial: &mut [[u32; 256]; 4], pixels: &[u8]) {
    let mut quads = pixels.chunks_exact(4);
    for quad in &mut quads {
        for (lane, &p) in partial.iter_mut().zip(quad) {
            lane[p as usize] += 1;
        }
    }
    for &p in quads.remainder() {
        partial[0][p as usize] += 1;
    }
}

/// How each gray level reads as ink.
#[derive(Debug, Clone)]
pub(super) struct InkReading {
    /// The ink value of each level: ink = 1, background = 0; binary when binarizing,
    /// else the intensity with the paper's polarity removed (dark ink on white gives
    /// 1 − level/255). A table, so the image is never converted to floats as a whole.
    pub(super) values: [f32; 256],
    /// The levels whose value is 0, tested without the table.
    pub(super) paper: Paper,
}

impl InkReading {
    pub(super) fn new(split: &InkSplit, binarize: bool) -> Self {
        let values = std::array::from_fn(|level| {
            let p = level as u8;
            if binarize {
                if split.is_ink(p) {
                    1.0
                } else {
                    0.0
                }
            } else if split.ink_is_dark {
                1.0 - f32::from(p) / 255.0
            } else {
                f32::from(p) / 255.0
            }
        });
        Self {
            values,
            paper: Paper::new(split, binarize),
        }
    }
}

/// A half-open pixel rectangle; may reach outside the image (margins), where the
/// canvas is background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InkBox {
    pub(super) x0: i64,
    pub(super) y0: i64,
    pub(super) x1: i64,
    pub(super) y1: i64,
}

impl InkBox {
    pub(super) fn width(&self) -> i64 {
        self.x1 - self.x0
    }

    pub(super) fn height(&self) -> i64 {
        self.y1 - self.y0
    }

    pub(super) fn with_margin(self, margin: f32) -> Self {
        let m = (f64::from(margin) * self.width().max(self.height()) as f64).round() as i64;
        Self {
            x0: self.x0 - m,
            y0: self.y0 - m,
            x1: self.x1 + m,
            y1: self.y1 + m,
        }
    }
}

pub(super) fn ink_bounding_box(pixels: &[u8], width: usize, split: &InkSplit) -> Option<InkBox> {
    // Branch-free passes (ORing ink flags into a column mask) that the compiler
    // vectorizes, instead of searching every row for its first and last ink pixel.
    let (threshold, dark) = (split.threshold, split.ink_is_dark);
    let mut columns = vec![0u8; width];
    let (mut y0, mut y1) = (None, 0);
    for (y, row) in pixels.chunks_exact(width).enumerate() {
        let mut any = 0u8;
        for (column, &p) in columns.iter_mut().zip(row) {
            let ink = u8::from((p <= threshold) == dark);
            *column |= ink;
            any |= ink;
        }
        if any != 0 {
            y0.get_or_insert(y);
            y1 = y + 1;
        }
    }
    let y0 = y0?;
    let x0 = columns.iter().position(|&c| c != 0)?;
    let x1 = columns.iter().rposition(|&c| c != 0)? + 1;
    Some(InkBox {
        x0: x0 as i64,
        y0: y0 as i64,
        x1: x1 as i64,
        y1: y1 as i64,
    })
}

/// Which gray levels read as no ink at all (value 0), tested without the table so that
/// runs of paper are skipped with vectorized comparisons.
#[derive(Debug, Clone, Copy)]
pub(super) enum Paper {
    /// Binarized: every level outside the ink class.
    Class(InkSplit),
    /// Intensity: only the extreme paper level (white under dark ink, black under light).
    Level(u8),
}

impl Paper {
    pub(super) fn new(split: &InkSplit, binarize: bool) -> Self {
        match (binarize, split.ink_is_dark) {
            (true, _) => Paper::Class(*split),
            (false, true) => Paper::Level(u8::MAX),
            (false, false) => Paper::Level(0),
        }
    }

    pub(super) fn is_all_paper(self, run: &[u8]) -> bool {
        match self {
            Paper::Class(split) => {
                let (threshold, dark) = (split.threshold, split.ink_is_dark);
                run.iter()
                    .fold(0u8, |acc, &p| acc | u8::from((p <= threshold) == dark))
                    == 0
            }
            Paper::Level(level) => run.iter().fold(0u8, |acc, &p| acc | (p ^ level)) == 0,
        }
    }
}
