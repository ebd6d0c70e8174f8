//! The sigma-lognormal stroke model (Plamondon's kinematic theory): a pen movement is a sum of
//! overlapping strokes, each with a lognormal speed profile along a circular arc. Summing the
//! strokes' velocities and integrating gives the pen trajectory; we integrate in closed form (the
//! distance travelled by a lognormal stroke is a normal CDF of log-time) so the trajectory has no
//! integration drift and costs one `erf` per active stroke and time step.

/// A point or displacement in writer units (1.0 = x-height, y up).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Vec2 {
    pub x: f64,
    pub y: f64,
}

impl Vec2 {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    pub fn add(self, other: Vec2) -> Vec2 {
        Vec2::new(self.x + other.x, self.y + other.y)
    }

    pub fn sub(self, other: Vec2) -> Vec2 {
        Vec2::new(self.x - other.x, self.y - other.y)
    }

    pub fn scale(self, k: f64) -> Vec2 {
        Vec2::new(self.x * k, self.y * k)
    }

    pub fn length(self) -> f64 {
        self.x.hypot(self.y)
    }
}

/// One lognormal stroke: it starts at `t0`, travels the arc length `distance` along a circular arc
/// that leaves at angle `theta_start` and turns by `turn` radians (positive: counter-clockwise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stroke {
    pub t0: f64,
    pub mu: f64,
    pub sigma: f64,
    pub distance: f64,
    pub theta_start: f64,
    pub turn: f64,
}

/// Beyond this many sigmas from the log-time mean a stroke is taken as not started / finished.
const SPAN_SIGMAS: f64 = 3.5;

impl Stroke {
    /// The stroke that moves from `from` to the virtual target `to` along an arc turning by `turn`.
    pub fn towards(from: Vec2, to: Vec2, turn: f64, t0: f64, mu: f64, sigma: f64) -> Stroke {
        let chord = to.sub(from);
        let half = turn / 2.0;
        // Arc length of a circular arc with this chord: |c| * (θ/2) / sin(θ/2).
        let distance = if half.abs() < 1e-6 {
            chord.length()
        } else {
            chord.length() * half / half.sin()
        };
        Stroke {
            t0,
            mu,
            sigma,
            distance,
            theta_start: chord.y.atan2(chord.x) - half,
            turn,
        }
    }

    /// Time at which the stroke has practically started moving.
    pub fn onset(&self) -> f64 {
        self.t0 + (self.mu - SPAN_SIGMAS * self.sigma).exp()
    }

    /// Time at which the stroke has practically finished.
    pub fn end(&self) -> f64 {
        self.t0 + (self.mu + SPAN_SIGMAS * self.sigma).exp()
    }

    /// Fraction of the distance covered at time `t`: the integral of the lognormal speed profile.
    pub fn progress(&self, t: f64) -> f64 {
        let elapsed = t - self.t0;
        if elapsed <= 0.0 {
            return 0.0;
        }
        normal_cdf((elapsed.ln() - self.mu) / self.sigma)
    }

    /// Displacement after covering `fraction` of the arc.
    pub fn displacement(&self, fraction: f64) -> Vec2 {
        if self.turn.abs() < 1e-6 {
            let along = self.distance * fraction;
            return Vec2::new(
                along * self.theta_start.cos(),
                along * self.theta_start.sin(),
            );
        }
        let radius = self.distance / self.turn;
        let theta = self.theta_start + self.turn * fraction;
        Vec2::new(
            radius * (theta.sin() - self.theta_start.sin()),
            -radius * (theta.cos() - self.theta_start.cos()),
        )
    }
}

/// Standard normal CDF.
fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// Error function, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7: far under a pixel).
fn erf(x: f64) -> f64 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

/// A sampled pen trajectory: positions with the time at which the pen was there.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trajectory {
    pub times: Vec<f64>,
    pub points: Vec<Vec2>,
}

/// Samples the sum of `strokes` starting at `start`, every `dt` seconds, from the first stroke's
/// onset until the last one ends.
pub(crate) fn trajectory(start: Vec2, strokes: &[Stroke], dt: f64) -> Trajectory {
    let Some(begin) = strokes.iter().map(Stroke::onset).reduce(f64::min) else {
        return Trajectory::default();
    };
    let finish = strokes.iter().map(Stroke::end).fold(begin, f64::max);
    // Strokes sorted by onset; those that are over contribute their whole displacement once.
    let mut order: Vec<&Stroke> = strokes.iter().collect();
    order.sort_by(|a, b| a.onset().total_cmp(&b.onset()));
    let steps = ((finish - begin) / dt).ceil().max(1.0) as usize;
    let mut out = Trajectory {
        times: Vec::with_capacity(steps + 1),
        points: Vec::with_capacity(steps + 1),
    };
    let mut settled = start;
    let mut finished = vec![false; order.len()];
    let mut first_open = 0;
    for step in 0..=steps {
        let t = begin + step as f64 * dt;
        let mut position = settled;
        for (i, stroke) in order.iter().enumerate().skip(first_open) {
            if finished[i] {
                continue;
            }
            if stroke.onset() > t {
                break;
            }
            if stroke.end() <= t {
                finished[i] = true;
                let whole = stroke.displacement(1.0);
                settled = settled.add(whole);
                position = position.add(whole);
            } else {
                position = position.add(stroke.displacement(stroke.progress(t)));
            }
        }
        while first_open < finished.len() && finished[first_open] {
            first_open += 1;
        }
        out.times.push(t);
        out.points.push(position);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        assert!((erf(0.0)).abs() < 1e-7);
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
        assert!((erf(-1.0) + 0.842_700_792_9).abs() < 2e-7);
        assert!((erf(3.0) - 0.999_977_909_5).abs() < 2e-7);
    }

    #[test]
    fn a_stroke_reaches_its_virtual_target_along_an_arc() {
        let from = Vec2::new(1.0, 2.0);
        let to = Vec2::new(3.0, 0.5);
        for turn in [0.0, 1.0, -2.5, 3.0] {
            let stroke = Stroke::towards(from, to, turn, 0.0, -1.5, 0.3);
            let end = from.add(stroke.displacement(1.0));
            assert!(end.sub(to).length() < 1e-9, "turn {turn}: {end:?}");
            // The midpoint sits off the chord on the side the turn says.
            let mid = from.add(stroke.displacement(0.5));
            let chord = to.sub(from);
            let side = chord.x * (mid.y - from.y) - chord.y * (mid.x - from.x);
            if turn > 0.0 {
                assert!(side < 0.0, "ccw stroke bulges right of the chord");
            } else if turn < 0.0 {
                assert!(side > 0.0, "cw stroke bulges left of the chord");
            }
        }
    }

    #[test]
    fn trajectory_ends_at_the_sum_of_the_strokes() {
        let start = Vec2::new(0.0, 0.0);
        let a = Stroke::towards(start, Vec2::new(1.0, 1.0), 0.5, 0.0, -1.6, 0.25);
        let b = Stroke::towards(
            Vec2::new(1.0, 1.0),
            Vec2::new(2.0, 0.0),
            -0.5,
            0.1,
            -1.6,
            0.25,
        );
        let path = trajectory(start, &[a, b], 0.002);
        let last = *path.points.last().expect("non-empty trajectory");
        assert!(last.sub(Vec2::new(2.0, 0.0)).length() < 1e-3, "{last:?}");
        // Overlapping strokes cut the corner: the pen never reaches the first virtual target.
        let closest = path
            .points
            .iter()
            .map(|p| p.sub(Vec2::new(1.0, 1.0)).length())
            .fold(f64::MAX, f64::min);
        assert!(closest > 0.01, "closest approach {closest}");
        assert!(path.times.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn lognormal_progress_is_monotone_from_zero_to_one() {
        let stroke = Stroke::towards(Vec2::default(), Vec2::new(1.0, 0.0), 0.0, 0.2, -1.5, 0.3);
        assert_eq!(stroke.progress(0.1), 0.0);
        let mut last = 0.0;
        let mut t = stroke.onset();
        while t < stroke.end() {
            let p = stroke.progress(t);
            assert!(p >= last);
            last = p;
            t += 0.001;
        }
        assert!(stroke.progress(stroke.end()) > 0.999);
    }
}
