//! The bridge between twin's metrics (higher score = more similar) and the distances
//! Qdrant indexes. Cosine and dot are similarities and pass through; Qdrant reports
//! Euclid and Manhattan as distances (smaller = closer), which twin negates.
//!
//! Squared L2 and RBF cannot be indexed: a model with one of them as native metric
//! should declare `l2` instead (the same ranking), and compute the other scores from
//! stored vectors.

use twin_core::metric::Metric;

use crate::error::StoreError;

/// A distance Qdrant can build an index for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexDistance {
    Cosine,
    Dot,
    Euclid,
    Manhattan,
}

impl IndexDistance {
    pub(crate) fn for_metric(metric: Metric) -> Result<Self, StoreError> {
        match metric {
            Metric::Cosine => Ok(Self::Cosine),
            Metric::Dot => Ok(Self::Dot),
            Metric::L2 => Ok(Self::Euclid),
            Metric::L1 => Ok(Self::Manhattan),
            Metric::Learned => Err(StoreError::InvalidArgument(
                "the learned metric scores pairs with the model's joint head and cannot index a \
                 collection: keep a vector metric as native_metric and score learned pairs \
                 from the stored vectors"
                    .to_owned(),
            )),
            Metric::SquaredL2 | Metric::Rbf => Err(StoreError::InvalidArgument(format!(
                "metric {metric} cannot index a collection (Qdrant indexes cosine, dot, l2 and \
                 l1): declare native_metric = \"l2\" in the model manifest, which ranks \
                 neighbours the same way, and compute {metric} scores from the vectors"
            ))),
        }
    }

    /// The twin metric whose scores this distance produces.
    pub(crate) fn metric(self) -> Metric {
        match self {
            Self::Cosine => Metric::Cosine,
            Self::Dot => Metric::Dot,
            Self::Euclid => Metric::L2,
            Self::Manhattan => Metric::L1,
        }
    }

    fn is_distance(self) -> bool {
        matches!(self, Self::Euclid | Self::Manhattan)
    }

    /// twin's score for a score Qdrant reported.
    pub(crate) fn twin_score(self, qdrant_score: f32) -> f64 {
        let score = f64::from(qdrant_score);
        if self.is_distance() {
            -score
        } else {
            score
        }
    }

    /// The `score_threshold` to send Qdrant for twin's `threshold`. Qdrant compares
    /// strictly and in f32, so the bound is loosened a little; callers then apply
    /// `score >= threshold` exactly ([`crate::contract::apply_threshold`]).
    pub(crate) fn qdrant_threshold(self, threshold: f64) -> f32 {
        let bound = if self.is_distance() {
            -threshold
        } else {
            threshold
        };
        let slack = 1e-5 * bound.abs().max(1.0);
        let loosened = if self.is_distance() {
            bound + slack
        } else {
            bound - slack
        };
        loosened as f32
    }

    pub(crate) fn to_edge(self) -> qdrant_edge::Distance {
        match self {
            Self::Cosine => qdrant_edge::Distance::Cosine,
            Self::Dot => qdrant_edge::Distance::Dot,
            Self::Euclid => qdrant_edge::Distance::Euclid,
            Self::Manhattan => qdrant_edge::Distance::Manhattan,
        }
    }

    pub(crate) fn from_edge(distance: qdrant_edge::Distance) -> Self {
        match distance {
            qdrant_edge::Distance::Cosine => Self::Cosine,
            qdrant_edge::Distance::Dot => Self::Dot,
            qdrant_edge::Distance::Euclid => Self::Euclid,
            qdrant_edge::Distance::Manhattan => Self::Manhattan,
        }
    }

    pub(crate) fn to_grpc(self) -> qdrant_client::qdrant::Distance {
        use qdrant_client::qdrant::Distance;
        match self {
            Self::Cosine => Distance::Cosine,
            Self::Dot => Distance::Dot,
            Self::Euclid => Distance::Euclid,
            Self::Manhattan => Distance::Manhattan,
        }
    }

    /// From the wire value of `qdrant.Distance`.
    pub(crate) fn from_grpc(value: i32) -> Option<Self> {
        use qdrant_client::qdrant::Distance;
        match Distance::try_from(value).ok()? {
            Distance::Cosine => Some(Self::Cosine),
            Distance::Dot => Some(Self::Dot),
            Distance::Euclid => Some(Self::Euclid),
            Distance::Manhattan => Some(Self::Manhattan),
            Distance::UnknownDistance => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_negated_and_similarities_kept() {
        assert_eq!(IndexDistance::Euclid.twin_score(2.0), -2.0);
        assert_eq!(IndexDistance::Manhattan.twin_score(3.0), -3.0);
        assert_eq!(IndexDistance::Cosine.twin_score(0.5), 0.5);
        assert_eq!(IndexDistance::Dot.twin_score(-1.5), -1.5);
    }

    #[test]
    fn thresholds_are_loosened_towards_more_results() {
        // twin threshold -1.0 on l2 = "distance at most 1.0": Qdrant gets a bit more.
        let t = IndexDistance::Euclid.qdrant_threshold(-1.0);
        assert!(t > 1.0 && t < 1.001, "{t}");
        let t = IndexDistance::Cosine.qdrant_threshold(0.8);
        assert!(t < 0.8 && t > 0.799, "{t}");
    }

    #[test]
    fn unindexable_metrics_are_refused_with_advice() {
        for metric in [Metric::SquaredL2, Metric::Rbf] {
            let err = IndexDistance::for_metric(metric).expect_err("must refuse");
            assert!(err.to_string().contains("native_metric = \"l2\""), "{err}");
        }
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2, Metric::L1] {
            let distance = IndexDistance::for_metric(metric).expect("indexable");
            assert_eq!(distance.metric(), metric);
            assert_eq!(IndexDistance::from_edge(distance.to_edge()), distance);
            assert_eq!(
                IndexDistance::from_grpc(distance.to_grpc() as i32),
                Some(distance)
            );
        }
    }
}
