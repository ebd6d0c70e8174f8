//! One act of writing: turns a writer's template into pen paths in pixels. A genuine sample is the
//! writer's own hand with natural variation; a skilled forgery follows the writer's shape with a
//! forger's hand — slower, less overlapped strokes, tremor, hesitations and a different pen.

use crate::dice::{stream, Dice};
use crate::lognormal::{trajectory, Stroke, Vec2};
use crate::render::InkPath;
use crate::writer::{Component, Hand, Writer};

/// How one sample is performed: the hand moving the pen and how far it strays from the template.
struct Performance {
    hand: Hand,
    /// Standard deviation of target positions around the template, in x-heights.
    shape_jitter: f64,
    /// Standard deviation of stroke curvature around the template, in radians.
    turn_jitter: f64,
    /// Relative spread of stroke durations and onset gaps.
    timing_jitter: f64,
    /// Whether to use the template's own rhythm (only the writer knows it).
    own_rhythm: bool,
    /// Tremor amplitude in x-heights, and its frequencies in Hz.
    tremor: f64,
    tremor_hz: [f64; 2],
    /// Probability of a pause before a stroke, and its length in seconds.
    hesitation: f64,
    pause: (f64, f64),
    /// Fluent writers start and lift the pen in motion: thin tapered ends.
    taper: bool,
    /// Relative scale error.
    scale: f64,
}

impl Performance {
    fn genuine(writer: &Writer, dice: &mut Dice) -> Performance {
        let own = writer.hand;
        let hand = Hand {
            slant: own.slant + dice.normal(0.04),
            tilt: own.tilt + dice.normal(0.025),
            stroke_time: own.stroke_time * (1.0 + dice.normal(0.06)),
            sigma: own.sigma * (1.0 + dice.normal(0.05)),
            overlap: own.overlap * (1.0 + dice.normal(0.05)),
            pen: own.pen * (1.0 + dice.normal(0.08)),
            thinning: own.thinning,
            ink: (own.ink + dice.normal(0.03)).clamp(0.6, 1.0),
            fill: own.fill,
        };
        Performance {
            hand,
            shape_jitter: 0.035,
            turn_jitter: 0.12,
            timing_jitter: 0.06,
            own_rhythm: true,
            tremor: 0.003,
            tremor_hz: [dice.uniform(8.0, 12.0), dice.uniform(8.0, 12.0)],
            hesitation: 0.0,
            pause: (0.0, 0.0),
            taper: true,
            scale: dice.normal(0.05),
        }
    }

    /// The forger copies the shape, slant and size they see, but moves with their own pen and a
    /// slow, careful, shaky rhythm.
    fn forgery(writer: &Writer, forger: &Hand, dice: &mut Dice) -> Performance {
        let target = writer.hand;
        let hand = Hand {
            slant: target.slant + dice.normal(0.09),
            tilt: target.tilt + dice.normal(0.04),
            stroke_time: forger.stroke_time * dice.uniform(1.5, 2.5),
            sigma: forger.sigma * dice.uniform(1.0, 1.2),
            // Careful copying: each stroke is mostly finished before the next starts.
            overlap: (target.overlap * dice.uniform(1.15, 1.5)).min(0.95),
            pen: forger.pen * (1.0 + dice.normal(0.08)),
            thinning: forger.thinning * 0.5,
            ink: forger.ink,
            fill: target.fill,
        };
        Performance {
            hand,
            shape_jitter: dice.uniform(0.045, 0.07),
            turn_jitter: dice.uniform(0.18, 0.3),
            timing_jitter: 0.12,
            own_rhythm: false,
            tremor: dice.uniform(0.006, 0.016),
            tremor_hz: [dice.uniform(4.0, 7.0), dice.uniform(7.0, 11.0)],
            hesitation: dice.uniform(0.05, 0.15),
            pause: (0.05, 0.25),
            taper: false,
            scale: dice.normal(0.09),
        }
    }
}

/// A genuine sample `index` of writer number `writer`.
pub(crate) fn genuine(seed: u64, writer: u64, index: u64, canvas: (u32, u32)) -> Vec<InkPath> {
    let template = Writer::new(seed, writer);
    let mut dice = Dice::new(seed, &[stream::GENUINE, writer, index]);
    let performance = Performance::genuine(&template, &mut dice);
    perform(&template, &performance, &mut dice, canvas)
}

/// A skilled forgery `index` of writer number `writer`, by a hand that is not the writer's.
pub(crate) fn forgery(seed: u64, writer: u64, index: u64, canvas: (u32, u32)) -> Vec<InkPath> {
    let template = Writer::new(seed, writer);
    let forger = Hand::draw(&mut Dice::new(seed, &[stream::FORGER, writer, index]));
    let mut dice = Dice::new(seed, &[stream::FORGERY, writer, index]);
    let performance = Performance::forgery(&template, &forger, &mut dice);
    perform(&template, &performance, &mut dice, canvas)
}

/// A pen-down piece sampled in writer units, before placement on the canvas.
struct Piece {
    times: Vec<f64>,
    points: Vec<Vec2>,
}

fn perform(
    template: &Writer,
    performance: &Performance,
    dice: &mut Dice,
    (width, height): (u32, u32),
) -> Vec<InkPath> {
    let hand = &performance.hand;
    // About 60 samples per stroke whatever the tempo, so slow forgeries are not oversampled.
    let dt = hand.stroke_time / 60.0;
    let phases: [f64; 4] = std::array::from_fn(|_| dice.uniform(0.0, std::f64::consts::TAU));
    let mut clock = 0.0;
    let mut pieces = Vec::with_capacity(template.components.len());
    for component in &template.components {
        let strokes = strokes(component, performance, dice, &mut clock);
        let start = jitter(component.start, performance.shape_jitter, dice);
        let path = trajectory(start, &strokes, dt);
        let points = path
            .times
            .iter()
            .zip(&path.points)
            .map(|(&t, &p)| p.add(tremor(performance, &phases, t)))
            .collect();
        pieces.push(Piece {
            times: path.times,
            points,
        });
        // The pen travels in the air to the next piece.
        clock += hand.stroke_time * dice.uniform(1.0, 2.5);
    }
    place(&pieces, performance, dice, width, height)
}

fn jitter(point: Vec2, sd: f64, dice: &mut Dice) -> Vec2 {
    Vec2::new(point.x + dice.normal(sd), point.y + dice.normal(sd))
}

fn tremor(performance: &Performance, phases: &[f64; 4], t: f64) -> Vec2 {
    let [f1, f2] = performance.tremor_hz;
    let wave = |f: f64, phase: f64| (std::f64::consts::TAU * f * t + phase).sin();
    Vec2::new(
        wave(f1, phases[0]) + 0.6 * wave(f2, phases[1]),
        wave(f1, phases[2]) + 0.6 * wave(f2, phases[3]),
    )
    .scale(performance.tremor)
}

/// The lognormal strokes of one piece, advancing the performance clock.
fn strokes(
    component: &Component,
    performance: &Performance,
    dice: &mut Dice,
    clock: &mut f64,
) -> Vec<Stroke> {
    let hand = &performance.hand;
    let mut from = component.start;
    let mut out = Vec::with_capacity(component.targets.len());
    for target in &component.targets {
        let to = jitter(target.at, performance.shape_jitter, dice);
        let turn = target.turn + dice.normal(performance.turn_jitter);
        let (tempo, gap) = if performance.own_rhythm {
            (target.tempo, target.gap)
        } else {
            (
                (1.0 + dice.normal(0.15)).clamp(0.7, 1.4),
                (1.0 + dice.normal(0.2)).clamp(0.6, 1.6),
            )
        };
        // Longer strokes take longer, sub-linearly (isochrony of handwriting).
        let length = to.sub(from).length().max(0.05);
        let duration = hand.stroke_time
            * tempo
            * length.powf(0.35)
            * (1.0 + dice.normal(performance.timing_jitter)).max(0.5);
        let sigma = (hand.sigma * (1.0 + dice.normal(performance.timing_jitter))).max(0.12);
        if performance.hesitation > 0.0 && dice.chance(performance.hesitation) {
            *clock += dice.uniform(performance.pause.0, performance.pause.1);
        }
        out.push(Stroke::towards(
            from,
            to,
            turn,
            *clock,
            duration.ln(),
            sigma,
        ));
        *clock +=
            hand.overlap * duration * gap * (1.0 + dice.normal(performance.timing_jitter)).max(0.3);
        from = to;
    }
    out
}

/// Shears, rotates, scales and positions the pieces on the canvas and gives every point its pen
/// width and ink.
fn place(
    pieces: &[Piece],
    performance: &Performance,
    dice: &mut Dice,
    width: u32,
    height: u32,
) -> Vec<InkPath> {
    let hand = &performance.hand;
    let (sin, cos) = hand.tilt.sin_cos();
    // Writer units, y up -> unscaled canvas orientation, y down.
    let orient = |p: Vec2| {
        let x = p.x + hand.slant * p.y;
        Vec2::new(x * cos - p.y * sin, -(x * sin + p.y * cos))
    };
    let oriented: Vec<Vec<Vec2>> = pieces
        .iter()
        .map(|piece| piece.points.iter().map(|&p| orient(p)).collect())
        .collect();
    let (mut min, mut max) = (Vec2::new(f64::MAX, f64::MAX), Vec2::new(f64::MIN, f64::MIN));
    for p in oriented.iter().flatten() {
        min = Vec2::new(min.x.min(p.x), min.y.min(p.y));
        max = Vec2::new(max.x.max(p.x), max.y.max(p.y));
    }
    if min.x > max.x {
        return Vec::new();
    }
    // Leave room for the widest pen (blobs at pauses reach 1.5 widths).
    let pad = hand.pen * 0.75;
    let size = Vec2::new(max.x - min.x + 2.0 * pad, max.y - min.y + 2.0 * pad);
    let (w, h) = (f64::from(width), f64::from(height));
    let margins = [
        w * dice.uniform(0.02, 0.08),
        w * dice.uniform(0.02, 0.08),
        h * dice.uniform(0.03, 0.1),
        h * dice.uniform(0.03, 0.1),
    ];
    let room = Vec2::new(
        (w - margins[0] - margins[1]).max(1.0),
        (h - margins[2] - margins[3]).max(1.0),
    );
    let wanted =
        (hand.fill.x * w / size.x).min(hand.fill.y * h / size.y) * (1.0 + performance.scale);
    let scale = wanted.min(room.x / size.x).min(room.y / size.y).max(1e-3);
    let offset = Vec2::new(
        margins[0]
            + dice.uniform(0.0, 1.0) * (room.x - size.x * scale).max(0.0)
            + (pad - min.x) * scale,
        margins[2]
            + dice.uniform(0.0, 1.0) * (room.y - size.y * scale).max(0.0)
            + (pad - min.y) * scale,
    );
    let reference_speed = median_speed(pieces);
    let radius = (hand.pen * scale / 2.0).max(0.6);
    pieces
        .iter()
        .zip(&oriented)
        .map(|(piece, points)| {
            let speeds = speeds(piece);
            let from_start = arc_lengths(&piece.points);
            let total = from_start.last().copied().unwrap_or(0.0);
            let mut path = InkPath::with_capacity(points.len());
            for (i, p) in points.iter().enumerate() {
                let fast = speeds[i] / reference_speed;
                let mut factor = (1.2 - hand.thinning * fast).clamp(0.6, 1.5);
                if performance.taper {
                    let end = from_start[i].min(total - from_start[i]);
                    factor *= 0.4 + 0.6 * smoothstep(end / 0.35);
                }
                path.push(
                    (p.x * scale + offset.x) as f32,
                    (p.y * scale + offset.y) as f32,
                    (radius * factor) as f32,
                    (hand.ink * (0.88 + 0.12 * factor.min(1.0))) as f32,
                );
            }
            path
        })
        .collect()
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// Pen speed at each sample (central differences), in writer units per second.
fn speeds(piece: &Piece) -> Vec<f64> {
    let n = piece.points.len();
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(1), (i + 1).min(n - 1));
            let dt = piece.times[b] - piece.times[a];
            if dt > 0.0 {
                piece.points[b].sub(piece.points[a]).length() / dt
            } else {
                0.0
            }
        })
        .collect()
}

/// The median speed of the moving parts of a sample: what "fast" means for this performance.
fn median_speed(pieces: &[Piece]) -> f64 {
    let mut all: Vec<f64> = pieces.iter().flat_map(speeds).collect();
    let moving = all.iter().copied().fold(0.0, f64::max) * 0.05;
    all.retain(|&s| s > moving);
    if all.is_empty() {
        return 1.0;
    }
    all.sort_by(f64::total_cmp);
    all[all.len() / 2].max(1e-9)
}

fn arc_lengths(points: &[Vec2]) -> Vec<f64> {
    let mut total = 0.0;
    let mut out = Vec::with_capacity(points.len());
    let mut previous = points.first().copied().unwrap_or_default();
    for &p in points {
        total += p.sub(previous).length();
        out.push(total);
        previous = p;
    }
    out
}
