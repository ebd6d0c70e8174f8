//! Property tests for the metrics: each property pins a formula, so changing a
//! formula (a sign, a square, a missing root) makes at least one of them fail.

use proptest::prelude::*;
use twin_core::metric::{
    cosine, dot, l1_distance, l2_distance, l2_normalize, rbf, score, squared_l2_distance, Metric,
};

const DIM: usize = 16;

fn vector() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-10.0f32..10.0, DIM)
}

fn nonzero_vector() -> impl Strategy<Value = Vec<f32>> {
    vector().prop_filter("non-zero norm", |v| v.iter().any(|x| x.abs() > 1e-3))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #[test]
    fn every_metric_is_symmetric(x in vector(), y in vector()) {
        for metric in Metric::OF_VECTORS {
            let xy = score(metric, &x, &y, 2.0).expect("same length");
            let yx = score(metric, &y, &x, 2.0).expect("same length");
            prop_assert!(close(xy, yx), "{metric}: {xy} != {yx}");
        }
    }

    #[test]
    fn distances_are_zero_on_identity_and_positive_elsewhere(x in vector(), y in vector()) {
        prop_assert_eq!(l2_distance(&x, &x), 0.0);
        prop_assert_eq!(squared_l2_distance(&x, &x), 0.0);
        prop_assert_eq!(l1_distance(&x, &x), 0.0);
        prop_assert!((rbf(&x, &x, 1.5) - 1.0).abs() < 1e-12);
        if x != y {
            prop_assert!(l2_distance(&x, &y) > 0.0);
            prop_assert!(l1_distance(&x, &y) > 0.0);
        }
    }

    #[test]
    fn l1_and_l2_obey_the_triangle_inequality(x in vector(), y in vector(), z in vector()) {
        let slack = 1e-9;
        prop_assert!(l2_distance(&x, &z) <= l2_distance(&x, &y) + l2_distance(&y, &z) + slack);
        prop_assert!(l1_distance(&x, &z) <= l1_distance(&x, &y) + l1_distance(&y, &z) + slack);
    }

    #[test]
    fn l2_is_the_root_of_squared_l2_and_at_most_l1(x in vector(), y in vector()) {
        let l2 = l2_distance(&x, &y);
        prop_assert!(close(l2 * l2, squared_l2_distance(&x, &y)));
        prop_assert!(l2 <= l1_distance(&x, &y) + 1e-9);
    }

    #[test]
    fn l2_distance_matches_the_dot_product_expansion(x in vector(), y in vector()) {
        // ‖x − y‖² = x·x − 2x·y + y·y pins squared L2 (and so L2) to an independent formula.
        let expanded = dot(&x, &x) - 2.0 * dot(&x, &y) + dot(&y, &y);
        prop_assert!((squared_l2_distance(&x, &y) - expanded).abs() <= 1e-6 * (1.0 + expanded.abs()));
    }

    #[test]
    fn cosine_of_normalized_vectors_equals_dot(x in nonzero_vector(), y in nonzero_vector()) {
        let c = cosine(&x, &y);
        let (mut a, mut b) = (x.clone(), y.clone());
        l2_normalize(&mut a);
        l2_normalize(&mut b);
        prop_assert!((c - dot(&a, &b)).abs() < 1e-5, "cosine {c} vs dot of normalized {}", dot(&a, &b));
        prop_assert!((-1.0 - 1e-9..=1.0 + 1e-9).contains(&c));
        // Scale invariance: cosine ignores length, dot does not.
        let scaled: Vec<f32> = x.iter().map(|v| v * 3.0).collect();
        prop_assert!((cosine(&scaled, &y) - c).abs() < 1e-5);
    }

    #[test]
    fn rbf_is_monotone_decreasing_in_l2(x in vector(), y in vector(), z in vector(), sigma in 0.5f64..20.0) {
        let (dy, dz) = (l2_distance(&x, &y), l2_distance(&x, &z));
        let (ky, kz) = (rbf(&x, &y, sigma), rbf(&x, &z, sigma));
        if dy < dz {
            prop_assert!(ky >= kz, "closer point must not score lower: d {dy} < {dz} but k {ky} < {kz}");
        }
        // And it is exactly exp(-d²/σ²).
        prop_assert!((ky - (-(dy * dy) / (sigma * sigma)).exp()).abs() < 1e-9);
    }

    #[test]
    fn higher_score_means_more_similar_for_distances(x in vector(), y in vector()) {
        for metric in [Metric::L2, Metric::SquaredL2, Metric::L1] {
            let s = score(metric, &x, &y, 1.0).expect("same length");
            prop_assert!(s <= 0.0, "{metric}: distance scores are negated, got {s}");
            prop_assert_eq!(score(metric, &x, &x, 1.0).expect("same length"), 0.0);
        }
    }
}

#[test]
fn known_values_pin_each_formula() {
    let x = [1.0f32, 2.0, 3.0];
    let y = [4.0f32, 0.0, -1.0];
    // d = (-3, 2, 4): L1 = 9, L2² = 29
    assert_eq!(l1_distance(&x, &y), 9.0);
    assert_eq!(squared_l2_distance(&x, &y), 29.0);
    assert!((l2_distance(&x, &y) - 29f64.sqrt()).abs() < 1e-12);
    assert_eq!(dot(&x, &y), 1.0);
    assert!((cosine(&x, &y) - 1.0 / (14f64.sqrt() * 17f64.sqrt())).abs() < 1e-12);
    assert!((rbf(&x, &y, 2.0) - (-29.0f64 / 4.0).exp()).abs() < 1e-15);
}

#[test]
fn mismatched_lengths_and_bad_sigma_are_errors() {
    assert!(score(Metric::L2, &[1.0, 2.0], &[1.0], 1.0).is_err());
    assert!(score(Metric::Rbf, &[1.0], &[1.0], 0.0).is_err());
    assert!(score(Metric::Rbf, &[1.0], &[1.0], f64::NAN).is_err());
}

#[test]
fn rbf_of_identical_vectors_is_one_for_any_positive_sigma() {
    let x = [0.25f32, -0.5, 1.0];
    for sigma in [f64::MIN_POSITIVE, 1e-300, 1e-10, 1.0, 1e300, f64::MAX] {
        let s = score(Metric::Rbf, &x, &x, sigma).expect("valid sigma");
        assert_eq!(s, 1.0, "sigma {sigma}");
        let y = [0.0f32, 0.0, 0.0];
        let t = score(Metric::Rbf, &x, &y, sigma).expect("valid sigma");
        assert!((0.0..=1.0).contains(&t), "sigma {sigma}: {t}");
    }
}
