//! Step 6: the aspect-preserving area-averaging resize of the ink's box into its window
//! of the output plane.

use super::ink::{InkBox, InkReading, RUN};

/// Area-averaging weights along one axis: for each output index, the first source index
/// it covers and the weight of each covered source pixel (weights sum to 1), kept in one
/// buffer (a resize would otherwise allocate a vector per output pixel).
pub(super) struct AreaWeights {
    pub(super) first: Vec<i64>,
    /// Output `t`'s weights are `weights[ends[t - 1]..ends[t]]` (from 0 for `t = 0`).
    pub(super) ends: Vec<usize>,
    pub(super) weights: Vec<f32>,
}

impl AreaWeights {
    pub(super) fn new(source_len: usize, target_len: usize) -> Self {
        let step = source_len as f64 / target_len as f64;
        let mut this = Self {
            first: Vec::with_capacity(target_len),
            ends: Vec::with_capacity(target_len),
            weights: Vec::with_capacity(target_len * (step.ceil() as usize + 1)),
        };
        for t in 0..target_len {
            let start = t as f64 * step;
            let end = start + step;
            let first = start.floor() as i64;
            // `end` of the last output can round up past the source (11.2 + 0.8 =
            // 12.000000000000002): such a tap would cover ~1e-15 of a pixel beyond it.
            let last = (end.ceil() as i64).min(source_len as i64).max(first + 1);
            this.weights.extend((first..last).map(|s| {
                let covered = (end.min(s as f64 + 1.0) - start.max(s as f64)).max(0.0);
                (covered / step) as f32
            }));
            this.first.push(first);
            this.ends.push(this.weights.len());
        }
        this
    }

    /// Output `t`'s first source index and weights.
    pub(super) fn taps(&self, t: usize) -> (i64, &[f32]) {
        let begin = if t == 0 { 0 } else { self.ends[t - 1] };
        (self.first[t], &self.weights[begin..self.ends[t]])
    }

    pub(super) fn len(&self) -> usize {
        self.first.len()
    }
}

/// Where a resize writes: `height` rows of `width` values, row `r` starting at
/// `values[r * stride]` (a window of a larger canvas).
pub(super) struct Window<'a> {
    pub(super) values: &'a mut [f32],
    pub(super) stride: usize,
    pub(super) width: usize,
    pub(super) height: usize,
}

/// For each source index of `lo..hi`, the outputs it feeds and with what weight, in output
/// order: the inverse of [`AreaWeights`], so that a source pixel (or row) is spread onto
/// its outputs. `origin` is the source index of the weights' index 0 (a region may start
/// outside the image, where there is no source).
pub(super) struct Scatter {
    /// Source `lo + i` feeds `targets[reach[i]..reach[i + 1]]`.
    pub(super) reach: Vec<usize>,
    pub(super) targets: Vec<(usize, f32)>,
}

impl Scatter {
    pub(super) fn new(weights: &AreaWeights, origin: i64, (lo, hi): (usize, usize)) -> Self {
        let mut reach = vec![0usize; hi - lo + 1];
        let mut taps = Vec::with_capacity(weights.weights.len());
        for output in 0..weights.len() {
            let (first, covered) = weights.taps(output);
            for (k, &weight) in covered.iter().enumerate() {
                let source = origin + first + k as i64;
                if (lo as i64..hi as i64).contains(&source) {
                    let i = source as usize - lo;
                    reach[i + 1] += 1;
                    taps.push((i, output, weight));
                }
            }
        }
        for i in 1..reach.len() {
            reach[i] += reach[i - 1];
        }
        let mut targets = vec![(0usize, 0.0f32); taps.len()];
        let mut filled = reach.clone();
        // `taps` is in output order, so each source's targets stay in output order.
        for (i, output, weight) in taps {
            targets[filled[i]] = (output, weight);
            filled[i] += 1;
        }
        Self { reach, targets }
    }

    /// The outputs source `lo + i` feeds.
    pub(super) fn of(&self, i: usize) -> &[(usize, f32)] {
        &self.targets[self.reach[i]..self.reach[i + 1]]
    }
}

/// Area-averaging resize of `region` of the `width`×`height` image into `out` (which holds
/// zeros), each pixel read through `ink` (its level's value); pixels of the region outside
/// the image count as background (0).
///
/// Every output value is the sum, in source order, of `weight × ink` over the pixels it
/// covers. Pixels of value 0 add nothing to such a sum, so they are skipped (runs of
/// paper at once) and only ink is spread onto the outputs it covers: the result is the
/// plain weighted sum, bit for bit, at a fraction of the work on a mostly blank page.
/// Rows are resized one at a time and spread onto their output rows at once, in source
/// order, so no intermediate image is kept.
pub(super) fn resize_area_into(
    pixels: &[u8],
    (width, height): (usize, usize),
    ink: &InkReading,
    region: &InkBox,
    out: Window<'_>,
) {
    let x_lo = region.x0.clamp(0, width as i64) as usize;
    let x_hi = region.x1.clamp(0, width as i64) as usize;
    let y_lo = region.y0.clamp(0, height as i64) as usize;
    let y_hi = region.y1.clamp(0, height as i64) as usize;
    let columns = Scatter::new(
        &AreaWeights::new(region.width() as usize, out.width),
        region.x0,
        (x_lo, x_hi),
    );
    let rows = Scatter::new(
        &AreaWeights::new(region.height() as usize, out.height),
        region.y0,
        (y_lo, y_hi),
    );

    let mut row = vec![0.0f32; out.width];
    let mut row_is_clear = true;
    for y in y_lo..y_hi {
        if !row_is_clear {
            row.fill(0.0);
            row_is_clear = true;
        }
        let src = &pixels[y * width..][x_lo..x_hi];
        for (r, run) in src.chunks(RUN).enumerate() {
            if ink.paper.is_all_paper(run) {
                continue;
            }
            for (i, &p) in run.iter().enumerate() {
                let value = ink.values[p as usize];
                if value == 0.0 {
                    continue;
                }
                row_is_clear = false;
                for &(ox, weight) in columns.of(r * RUN + i) {
                    row[ox] += weight * value;
                }
            }
        }
        if row_is_clear {
            continue;
        }
        for &(oy, weight) in rows.of(y - y_lo) {
            let dst = &mut out.values[oy * out.stride..][..out.width];
            for (d, s) in dst.iter_mut().zip(&row) {
                *d += weight * s;
            }
        }
    }
}
