//! A writer: the shape of their signature (virtual targets of a cursive name, letter by letter)
//! and their hand (slant, rhythm, pen, size). Both are drawn once from the writer's seed; every
//! sample of the writer varies around them, which is what carries identity.

use crate::dice::{stream, Dice};
use crate::lognormal::Vec2;

/// One movement towards a virtual target, in writer units (1.0 = x-height, y up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Target {
    pub at: Vec2,
    /// Signed arc angle of the stroke reaching this target (positive: counter-clockwise).
    pub turn: f64,
    /// The writer's habitual timing of this stroke: duration factor and onset gap factor.
    pub tempo: f64,
    pub gap: f64,
}

/// A pen-down piece: from `start` through the targets, then the pen lifts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Component {
    pub start: Vec2,
    pub targets: Vec<Target>,
}

/// How a person moves the pen, independent of what they write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hand {
    /// Horizontal shear (x += slant * y).
    pub slant: f64,
    /// Baseline rotation in radians.
    pub tilt: f64,
    /// Median duration of a unit-length stroke in seconds.
    pub stroke_time: f64,
    /// Log-time spread of the strokes (the lognormal sigma).
    pub sigma: f64,
    /// Onset gap between successive strokes as a fraction of a stroke's duration; small values give
    /// fluent, rounded writing, values near 1 give slow, angular writing.
    pub overlap: f64,
    /// Pen width in x-heights.
    pub pen: f64,
    /// How much faster strokes get thinner (0: not at all).
    pub thinning: f64,
    /// Ink darkness in 0..1.
    pub ink: f64,
    /// Share of the canvas width and height the signature tends to fill.
    pub fill: Vec2,
}

impl Hand {
    pub fn draw(dice: &mut Dice) -> Hand {
        Hand {
            slant: dice.uniform(-0.15, 0.55),
            tilt: dice.normal(0.04),
            stroke_time: dice.uniform(0.16, 0.26),
            sigma: dice.uniform(0.22, 0.34),
            overlap: dice.uniform(0.38, 0.58),
            pen: dice.uniform(0.09, 0.17),
            thinning: dice.uniform(0.2, 0.45),
            ink: dice.uniform(0.82, 1.0),
            fill: Vec2::new(dice.uniform(0.6, 0.92), dice.uniform(0.55, 0.88)),
        }
    }
}

/// A writer's template: what they write and how they move.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Writer {
    pub components: Vec<Component>,
    pub hand: Hand,
}

/// A cursive lower-case letter as targets in a unit box: x in letter widths, y in x-heights with
/// 1.0 the x-height, above 1.2 an ascender and below -0.2 a descender (both scaled per writer).
/// Each letter starts with an up-stroke from the baseline and ends with an exit stroke that the
/// next letter continues from. `mark` is a separate pen-down piece (an i dot, a t bar).
struct Glyph {
    moves: &'static [(f64, f64, f64)],
    mark: Option<&'static [(f64, f64, f64)]>,
}

const GLYPHS: &[Glyph] = &[
    // n
    Glyph {
        moves: &[
            (0.12, 1.0, -0.4),
            (0.18, 0.0, 0.1),
            (0.45, 1.0, -1.1),
            (0.7, 0.0, -1.0),
            (0.95, 0.35, 1.0),
        ],
        mark: None,
    },
    // m
    Glyph {
        moves: &[
            (0.1, 1.0, -0.4),
            (0.15, 0.0, 0.1),
            (0.35, 1.0, -1.1),
            (0.55, 0.0, -1.0),
            (0.75, 1.0, -1.1),
            (0.95, 0.0, -1.0),
            (1.2, 0.35, 1.0),
        ],
        mark: None,
    },
    // u
    Glyph {
        moves: &[
            (0.12, 1.0, -0.5),
            (0.3, 0.0, 0.9),
            (0.5, 1.0, 0.9),
            (0.55, 0.0, 0.0),
            (0.85, 0.35, 1.0),
        ],
        mark: None,
    },
    // a
    Glyph {
        moves: &[
            (0.6, 0.95, -0.6),
            (0.15, 0.4, 1.9),
            (0.65, 0.9, 1.9),
            (0.7, 0.0, 0.1),
            (0.95, 0.35, 1.0),
        ],
        mark: None,
    },
    // e
    Glyph {
        moves: &[(0.5, 0.85, 0.9), (0.15, 0.55, 2.0), (0.8, 0.15, 1.5)],
        mark: None,
    },
    // l
    Glyph {
        moves: &[(0.55, 2.3, 1.0), (0.3, 0.0, 0.4), (0.75, 0.35, 1.0)],
        mark: None,
    },
    // h
    Glyph {
        moves: &[
            (0.5, 2.3, 1.0),
            (0.25, 0.0, 0.4),
            (0.5, 1.0, -1.1),
            (0.75, 0.0, -1.0),
            (1.0, 0.35, 1.0),
        ],
        mark: None,
    },
    // d
    Glyph {
        moves: &[
            (0.6, 0.95, -0.6),
            (0.15, 0.4, 1.9),
            (0.65, 0.9, 1.9),
            (0.75, 2.2, 0.2),
            (0.72, 0.0, 0.0),
            (0.95, 0.35, 1.0),
        ],
        mark: None,
    },
    // g / y
    Glyph {
        moves: &[
            (0.2, 1.0, -0.5),
            (0.3, -1.3, 0.1),
            (0.0, -0.6, -2.5),
            (0.75, 0.35, -0.3),
        ],
        mark: None,
    },
    // i
    Glyph {
        moves: &[(0.2, 1.0, -0.3), (0.25, 0.0, 0.1), (0.5, 0.35, 1.0)],
        mark: Some(&[(0.3, 1.6, 0.0), (0.36, 1.65, 0.0)]),
    },
    // t
    Glyph {
        moves: &[(0.3, 1.9, 0.3), (0.35, 0.0, 0.1), (0.7, 0.35, 1.0)],
        mark: Some(&[(0.05, 1.2, 0.0), (0.75, 1.3, 0.2)]),
    },
    // r
    Glyph {
        moves: &[
            (0.2, 1.0, -0.3),
            (0.5, 0.85, -1.4),
            (0.5, 0.0, 0.2),
            (0.8, 0.35, 1.0),
        ],
        mark: None,
    },
    // v
    Glyph {
        moves: &[
            (0.15, 1.0, -0.5),
            (0.4, 0.0, 0.4),
            (0.65, 1.0, 0.4),
            (0.9, 0.85, -1.2),
        ],
        mark: None,
    },
    // s
    Glyph {
        moves: &[
            (0.4, 1.05, -0.2),
            (0.55, 0.15, -2.2),
            (0.1, 0.15, -1.2),
            (0.8, 0.3, 1.2),
        ],
        mark: None,
    },
];

/// Letters per name, and words per signature; kept small enough to fit a signature box.
const MAX_LETTERS: usize = 14;

impl Writer {
    /// The writer number `writer` of a dataset seeded with `seed`.
    pub fn new(seed: u64, writer: u64) -> Writer {
        let mut dice = Dice::new(seed, &[stream::WRITER, writer]);
        let hand = Hand::draw(&mut dice);
        let shape = Shape::draw(&mut dice);
        Writer {
            components: shape.compose(&mut dice),
            hand,
        }
    }
}

/// The letter-level habits a writer applies to every letter.
struct Shape {
    letter_width: f64,
    spacing: f64,
    ascender: f64,
    descender: f64,
    cap_height: f64,
    /// Per-target spread of this writer's deviation from the copybook letters.
    wobble: f64,
    words: Vec<Word>,
    flourish: Option<Flourish>,
}

struct Word {
    capital: bool,
    connected_capital: bool,
    letters: Vec<usize>,
}

#[derive(Clone, Copy)]
enum Flourish {
    /// A loop down and a long stroke back under the name.
    Underline,
    /// A rising tail after the last letter.
    Tail,
}

impl Shape {
    fn draw(dice: &mut Dice) -> Shape {
        let word_count = match dice.uniform(0.0, 1.0) {
            x if x < 0.35 => 1,
            x if x < 0.9 => 2,
            _ => 3,
        };
        let mut budget = MAX_LETTERS;
        let mut words = Vec::with_capacity(word_count);
        for w in 0..word_count {
            // A leading initial: capital alone (the pen lifts after it).
            let initial = w + 1 < word_count && dice.chance(0.3);
            let letters = if initial {
                0
            } else {
                dice.int(2, 7).min(budget.saturating_sub(word_count - w))
            };
            budget = budget.saturating_sub(letters + 1);
            words.push(Word {
                capital: w == 0 || dice.chance(0.75),
                connected_capital: dice.chance(0.55),
                letters: (0..letters)
                    .map(|_| dice.int(0, GLYPHS.len() - 1))
                    .collect(),
            });
        }
        let flourish = match dice.uniform(0.0, 1.0) {
            x if x < 0.35 => Some(Flourish::Underline),
            x if x < 0.6 => Some(Flourish::Tail),
            _ => None,
        };
        Shape {
            letter_width: dice.uniform(0.55, 1.05),
            spacing: dice.uniform(-0.05, 0.25),
            ascender: dice.uniform(0.75, 1.3),
            descender: dice.uniform(0.75, 1.2),
            cap_height: dice.uniform(2.2, 3.4),
            wobble: dice.uniform(0.05, 0.12),
            words,
            flourish,
        }
    }

    fn level(&self, y: f64) -> f64 {
        if y > 1.2 {
            1.0 + (y - 1.0) * self.ascender
        } else if y < -0.2 {
            y * self.descender
        } else {
            y
        }
    }

    /// One target per move, perturbed by this writer's way of forming the letter.
    fn target(&self, dice: &mut Dice, origin: Vec2, width: f64, mv: (f64, f64, f64)) -> Target {
        let (x, y, turn) = mv;
        Target {
            at: Vec2::new(
                origin.x + x * width + dice.normal(self.wobble),
                origin.y + self.level(y) + dice.normal(self.wobble),
            ),
            turn: turn + dice.normal(0.35),
            tempo: (1.0 + dice.normal(0.12)).clamp(0.7, 1.4),
            gap: (1.0 + dice.normal(0.15)).clamp(0.6, 1.5),
        }
    }

    /// A capital: a few large strokes with strong curvature, different for every writer.
    fn capital(&self, dice: &mut Dice, origin: Vec2) -> (Vec<Target>, f64) {
        let h = self.cap_height;
        let w = self.letter_width * dice.uniform(1.0, 1.8);
        let mut moves = vec![
            (dice.uniform(0.2, 0.9), h, dice.uniform(-1.6, 1.6)),
            (
                dice.uniform(-0.3, 0.5),
                dice.uniform(-0.2, 0.3),
                dice.uniform(-1.2, 1.2),
            ),
        ];
        if dice.chance(0.7) {
            moves.push((
                dice.uniform(0.6, 1.4),
                dice.uniform(0.35, 0.75) * h,
                dice.sign() * dice.uniform(1.5, 2.8),
            ));
        }
        if dice.chance(0.4) {
            moves.push((
                dice.uniform(0.1, 0.6),
                dice.uniform(0.3, 0.6) * h,
                dice.sign() * dice.uniform(1.0, 2.5),
            ));
        }
        moves.push((
            dice.uniform(1.0, 1.6),
            dice.uniform(0.0, 0.5),
            dice.uniform(-1.0, 1.0),
        ));
        let targets: Vec<Target> = moves
            .into_iter()
            .map(|(x, y, turn)| {
                // Capital heights are absolute, not copybook levels.
                let mut t = self.target(dice, origin, w, (x, 0.0, turn));
                t.at.y += y;
                t
            })
            .collect();
        let advance = targets
            .iter()
            .map(|t| t.at.x - origin.x)
            .fold(0.0, f64::max);
        (targets, advance)
    }

    fn compose(&self, dice: &mut Dice) -> Vec<Component> {
        let mut components = Vec::new();
        let mut cursor = 0.0;
        let last_word = self.words.len().saturating_sub(1);
        for (w, word) in self.words.iter().enumerate() {
            let start = Vec2::new(cursor, dice.uniform(0.0, 0.3));
            let mut piece = Component {
                start,
                targets: Vec::new(),
            };
            let mut marks = Vec::new();
            let mut x = cursor;
            if word.capital {
                let (targets, advance) = self.capital(dice, Vec2::new(x, 0.0));
                piece.targets.extend(targets);
                x += advance + self.spacing.max(0.0);
                if !word.connected_capital && !word.letters.is_empty() {
                    components.push(std::mem::replace(
                        &mut piece,
                        Component {
                            start: Vec2::new(x, dice.uniform(0.0, 0.3)),
                            targets: Vec::new(),
                        },
                    ));
                }
            }
            for &letter in &word.letters {
                let glyph = &GLYPHS[letter];
                let width = self.letter_width * (1.0 + dice.normal(0.08));
                let origin = Vec2::new(x, 0.0);
                for &mv in glyph.moves {
                    piece.targets.push(self.target(dice, origin, width, mv));
                }
                if let Some(mark) = glyph.mark {
                    let mut targets = mark.iter().map(|&mv| self.target(dice, origin, width, mv));
                    if let Some(first) = targets.next() {
                        marks.push(Component {
                            start: first.at,
                            targets: targets.collect(),
                        });
                    }
                }
                let exit = glyph.moves.last().map_or(1.0, |m| m.0);
                x += exit * width + self.spacing;
            }
            if w == last_word {
                if let Some(flourish) = self.flourish {
                    let origin = Vec2::new(x, 0.0);
                    let span = x - cursor;
                    let moves: Vec<(f64, f64, f64)> = match flourish {
                        Flourish::Underline => vec![
                            (0.4, -0.6, -1.6),
                            (
                                -span * dice.uniform(0.4, 0.9),
                                -dice.uniform(0.6, 1.1),
                                dice.uniform(-0.4, 0.4),
                            ),
                        ],
                        Flourish::Tail => vec![(
                            dice.uniform(0.8, 1.6),
                            dice.uniform(0.8, 2.0),
                            dice.uniform(-1.0, 1.0),
                        )],
                    };
                    for mv in moves {
                        piece.targets.push(self.target(dice, origin, 1.0, mv));
                    }
                }
            }
            if !piece.targets.is_empty() {
                components.push(piece);
            }
            components.extend(marks);
            cursor = x + dice.uniform(0.7, 1.8);
        }
        components
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_is_a_pure_function_of_seed_and_number() {
        assert_eq!(Writer::new(3, 5), Writer::new(3, 5));
        assert_ne!(Writer::new(3, 5), Writer::new(3, 6));
        assert_ne!(Writer::new(3, 5), Writer::new(4, 5));
    }

    #[test]
    fn every_writer_has_ink_to_lay_down() {
        for writer in 0..200 {
            let w = Writer::new(11, writer);
            assert!(!w.components.is_empty(), "writer {writer}");
            let moves: usize = w.components.iter().map(|c| c.targets.len()).sum();
            assert!(moves >= 4, "writer {writer} has {moves} moves");
            assert!(w.components.iter().all(|c| !c.targets.is_empty()));
        }
    }
}
