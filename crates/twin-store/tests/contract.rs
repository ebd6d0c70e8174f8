//! The storage contract, one suite for every backend: the embedded engine, the remote
//! backend over Qdrant's gRPC protocol (test-only server on the same engine), and a real
//! Qdrant server when `TWIN_QDRANT_URL` is set (otherwise those cases print
//! "skipped: TWIN_QDRANT_URL not set" and pass).
//!
//! ```text
//! TWIN_QDRANT_URL=http://localhost:6334 cargo test -p twin-store --test contract real_qdrant
//! ```

mod support;

use support::{assert_kind, axis, payload, point, Harness};
use twin_core::Metric;
use twin_store::{CollectionSpec, Point, PointFilter, SearchRequest};

const DIM: usize = 8;

/// The contract's cases; each takes a fresh harness.
mod cases {
    use super::*;

    pub async fn collections_are_ensured_idempotently(h: &Harness) {
        let spec = CollectionSpec {
            name: h.name("shape"),
            dim: DIM,
            metric: Metric::Cosine,
        };
        let first = h.store.ensure_collection(&spec).await.expect("create");
        let again = h
            .store
            .ensure_collection(&spec)
            .await
            .expect("ensure again");
        assert_eq!(first.dim, DIM);
        assert_eq!(again.metric, Metric::Cosine);
        assert_eq!(again.name, spec.name);

        let other_dim = CollectionSpec {
            dim: DIM + 1,
            ..spec.clone()
        };
        let err = assert_kind(h.store.ensure_collection(&other_dim).await, "conflict");
        assert!(err.to_string().contains("dimensions"), "{err}");
        let other_metric = CollectionSpec {
            metric: Metric::L2,
            ..spec.clone()
        };
        assert_kind(h.store.ensure_collection(&other_metric).await, "conflict");

        let squared = CollectionSpec {
            name: h.name("squared"),
            metric: Metric::SquaredL2,
            ..spec.clone()
        };
        assert_kind(
            h.store.ensure_collection(&squared).await,
            "invalid_argument",
        );
        let bad_name = CollectionSpec {
            name: "no/slashes".into(),
            ..spec
        };
        assert_kind(
            h.store.ensure_collection(&bad_name).await,
            "invalid_argument",
        );
    }

    pub async fn upsert_is_idempotent(h: &Harness) {
        let c = h.collection("idem", DIM, Metric::Cosine).await;
        let p = point("alice", "img-1", axis(DIM, 0, 0.1));
        h.store
            .upsert(&c, std::slice::from_ref(&p))
            .await
            .expect("first upsert");
        h.store
            .upsert(&c, std::slice::from_ref(&p))
            .await
            .expect("same point again");
        h.store
            .upsert(&c, &[p.clone(), point("alice", "img-2", axis(DIM, 1, 0.0))])
            .await
            .expect("batch repeating it");
        assert_eq!(
            h.store.count(&c, &PointFilter::all()).await.expect("count"),
            2
        );

        // Same id, new payload: replaced, not added.
        let mut relabelled = p.clone();
        relabelled
            .payload
            .labels
            .insert("scanner".into(), "B".into());
        relabelled.payload.source = "rescan.png".into();
        h.store
            .upsert(&c, &[relabelled.clone()])
            .await
            .expect("replace");
        assert_eq!(
            h.store.count(&c, &PointFilter::all()).await.expect("count"),
            2
        );
        let got = h.store.get(&c, &[p.id], false).await.expect("get");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, relabelled.payload);
        assert_eq!(got[0].vector, None);
    }

    pub async fn points_read_back_by_id(h: &Harness) {
        let c = h.collection("get", DIM, Metric::L2).await;
        let a = point("alice", "a", axis(DIM, 0, 0.5));
        let b = point("bob", "b", axis(DIM, 3, 0.0));
        h.store
            .upsert(&c, &[a.clone(), b.clone()])
            .await
            .expect("upsert");
        let missing = support::payload("carol", "never").clone();
        let missing_id = Point::new(vec![0.0; DIM], missing).id;
        let got = h
            .store
            .get(&c, &[b.id, missing_id, a.id], true)
            .await
            .expect("get");
        assert_eq!(
            got.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![b.id, a.id]
        );
        assert_eq!(got[1].vector.as_deref(), Some(a.vector.as_slice()));
        assert_eq!(got[1].payload, a.payload);
    }

    pub async fn search_filters_by_subject_and_labels(h: &Harness) {
        let c = h.collection("filter", DIM, Metric::Cosine).await;
        let mut points = Vec::new();
        for (s, subject) in ["alice", "bob", "carol"].iter().enumerate() {
            for i in 0..3 {
                let mut p = point(
                    subject,
                    &format!("{subject}-{i}"),
                    axis(DIM, s, i as f32 * 0.1),
                );
                p.payload.labels.insert("session".into(), format!("s{i}"));
                points.push(Point::new(p.vector, p.payload));
            }
        }
        h.store.upsert(&c, &points).await.expect("upsert");

        // Query close to alice's direction, but only bob's points are allowed.
        let request = SearchRequest {
            vector: axis(DIM, 0, 0.0),
            top_k: 10,
            filter: PointFilter::subject("bob"),
            score_threshold: None,
        };
        let hits = h.store.search(&c, &request).await.expect("search");
        assert_eq!(hits.len(), 3);
        assert!(
            hits.iter().all(|hit| hit.payload.subject_id == "bob"),
            "{hits:?}"
        );
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );

        let unfiltered = SearchRequest {
            filter: PointFilter::all(),
            ..request.clone()
        };
        let hits = h.store.search(&c, &unfiltered).await.expect("search all");
        assert_eq!(hits[0].payload.subject_id, "alice");
        assert!(
            (hits[0].score - 1.0).abs() < 1e-5,
            "cosine of a vector with itself"
        );

        let mut labelled = PointFilter::subject("carol");
        labelled.labels.insert("session".into(), "s2".into());
        let hits = h
            .store
            .search(
                &c,
                &SearchRequest {
                    filter: labelled.clone(),
                    ..request.clone()
                },
            )
            .await
            .expect("label search");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].payload.subject_id, "carol");
        assert_eq!(hits[0].payload.labels["session"], "s2");
        assert_eq!(h.store.count(&c, &labelled).await.expect("count"), 1);

        let two = PointFilter {
            subject_ids: vec!["alice".into(), "carol".into()],
            ..PointFilter::default()
        };
        assert_eq!(h.store.count(&c, &two).await.expect("count"), 6);

        let listed = h
            .store
            .list_subject(&c, "", "bob", true)
            .await
            .expect("list");
        assert_eq!(listed.len(), 3);
        assert!(
            listed.windows(2).all(|w| w[0].id < w[1].id),
            "ordered by id"
        );
        assert!(listed
            .iter()
            .all(|p| p.vector.as_ref().is_some_and(|v| v.len() == DIM)));
        assert!(h
            .store
            .list_subject(&c, "", "nobody", false)
            .await
            .expect("list")
            .is_empty());
    }

    pub async fn score_threshold_leaves_out_unrelated_vectors(h: &Harness) {
        let c = h.collection("threshold", DIM, Metric::Cosine).await;
        h.store
            .upsert(
                &c,
                &[
                    point("alice", "a1", axis(DIM, 0, 0.0)),
                    point("alice", "a2", axis(DIM, 0, 0.2)),
                ],
            )
            .await
            .expect("upsert");
        let unrelated = SearchRequest {
            vector: axis(DIM, 4, 0.0),
            top_k: 5,
            filter: PointFilter::all(),
            score_threshold: Some(0.5),
        };
        assert!(h
            .store
            .search(&c, &unrelated)
            .await
            .expect("search")
            .is_empty());
        let related = SearchRequest {
            vector: axis(DIM, 0, 0.05),
            ..unrelated
        };
        let hits = h.store.search(&c, &related).await.expect("search");
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|hit| hit.score >= 0.5));

        // Distances come back negated: nearer = higher, the threshold is -distance.
        let l2 = h.collection("threshold-l2", DIM, Metric::L2).await;
        h.store
            .upsert(
                &l2,
                &[
                    point("a", "x", axis(DIM, 0, 0.0)),
                    point("b", "y", axis(DIM, 1, 0.0)),
                ],
            )
            .await
            .expect("upsert");
        let near = SearchRequest {
            vector: axis(DIM, 0, 0.0),
            top_k: 5,
            filter: PointFilter::all(),
            score_threshold: Some(-0.5),
        };
        let hits = h.store.search(&l2, &near).await.expect("search");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(
            hits[0].score.abs() < 1e-6,
            "distance 0 → score 0, got {}",
            hits[0].score
        );
        let all = h
            .store
            .search(
                &l2,
                &SearchRequest {
                    score_threshold: None,
                    ..near.clone()
                },
            )
            .await
            .expect("search");
        assert_eq!(all.len(), 2);
        assert!(
            (all[1].score + 2f64.sqrt()).abs() < 1e-5,
            "score = -‖x−y‖, got {}",
            all[1].score
        );
        // A threshold exactly at a score keeps it (score >= threshold).
        let at = SearchRequest {
            score_threshold: Some(all[1].score),
            ..near
        };
        assert_eq!(h.store.search(&l2, &at).await.expect("search").len(), 2);
    }

    pub async fn subjects_and_points_are_deleted(h: &Harness) {
        let c = h.collection("delete", DIM, Metric::Dot).await;
        let mut points = Vec::new();
        for i in 0..3 {
            points.push(point("alice", &format!("a{i}"), axis(DIM, i, 0.0)));
            points.push(point("bob", &format!("b{i}"), axis(DIM, i, 0.5)));
        }
        h.store.upsert(&c, &points).await.expect("upsert");
        assert_eq!(
            h.store
                .delete_subject(&c, "", "alice")
                .await
                .expect("delete"),
            3
        );
        assert_eq!(
            h.store
                .delete_subject(&c, "", "alice")
                .await
                .expect("again"),
            0
        );
        assert_eq!(
            h.store
                .count(&c, &PointFilter::subject("alice"))
                .await
                .expect("count"),
            0
        );
        assert_eq!(
            h.store.count(&c, &PointFilter::all()).await.expect("count"),
            3
        );
        let search = SearchRequest {
            vector: axis(DIM, 0, 0.0),
            top_k: 10,
            filter: PointFilter::subject("alice"),
            score_threshold: None,
        };
        assert!(h
            .store
            .search(&c, &search)
            .await
            .expect("search")
            .is_empty());

        let bob = h
            .store
            .list_subject(&c, "", "bob", false)
            .await
            .expect("list");
        let gone = Point::new(vec![1.0; DIM], payload("zed", "never")).id;
        assert_eq!(
            h.store
                .delete_points(&c, &[bob[0].id, gone])
                .await
                .expect("delete"),
            1
        );
        assert_eq!(
            h.store.count(&c, &PointFilter::all()).await.expect("count"),
            2
        );
    }

    pub async fn tenants_see_only_their_own_points(h: &Harness) {
        let c = h.collection("tenants", DIM, Metric::Cosine).await;
        let in_tenant = |tenant: &str, subject: &str, image: &str, axis_i: usize| {
            let mut p = payload(subject, image);
            p.tenant = tenant.to_owned();
            Point::new(axis(DIM, axis_i, 0.0), p)
        };
        // The same subject name and the same image under three tenants: three points.
        let points = vec![
            in_tenant("", "alice", "img", 0),
            in_tenant("acme", "alice", "img", 0),
            in_tenant("globex", "alice", "img", 0),
            in_tenant("globex", "bob", "img-b", 1),
        ];
        assert_eq!(
            points
                .iter()
                .map(|p| p.id)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            4
        );
        h.store.upsert(&c, &points).await.expect("upsert");
        for (tenant, expected) in [("", 1), ("acme", 1), ("globex", 2), ("initech", 0)] {
            let filter = PointFilter::all().in_tenant(tenant);
            assert_eq!(
                h.store.count(&c, &filter).await.expect("count"),
                expected,
                "{tenant:?}"
            );
            let hits = h
                .store
                .search(
                    &c,
                    &SearchRequest {
                        vector: axis(DIM, 0, 0.0),
                        top_k: 10,
                        filter,
                        score_threshold: None,
                    },
                )
                .await
                .expect("search");
            assert_eq!(hits.len(), expected as usize, "{tenant:?}");
            assert!(
                hits.iter().all(|hit| hit.payload.tenant == tenant),
                "{hits:?}"
            );
            let listed = h
                .store
                .list_subject(&c, tenant, "alice", false)
                .await
                .expect("list");
            assert!(
                listed.iter().all(|p| p.payload.tenant == tenant),
                "{listed:?}"
            );
            assert_eq!(listed.len(), usize::from(tenant != "initech"), "{tenant:?}");
        }
        // Deleting acme's alice leaves the others' alices alone.
        assert_eq!(
            h.store
                .delete_subject(&c, "acme", "alice")
                .await
                .expect("delete"),
            1
        );
        assert_eq!(
            h.store
                .list_subject(&c, "", "alice", false)
                .await
                .expect("list")
                .len(),
            1
        );
        assert_eq!(
            h.store
                .list_subject(&c, "globex", "alice", false)
                .await
                .expect("list")
                .len(),
            1
        );
        // A tenant name that is not one is refused, never read as "every tenant".
        assert_kind(
            h.store.list_subject(&c, "a b", "alice", false).await,
            "invalid_argument",
        );
        assert_kind(
            h.store
                .count(&c, &PointFilter::all().in_tenant("../x"))
                .await,
            "invalid_argument",
        );
        let mut bad = payload("alice", "x");
        bad.tenant = "not a tenant".into();
        assert_kind(
            h.store
                .upsert(&c, &[Point::new(axis(DIM, 0, 0.0), bad)])
                .await,
            "invalid_argument",
        );
    }

    pub async fn alias_swaps_serving_collection(h: &Harness) {
        let v1 = h.collection("model-v1", DIM, Metric::Cosine).await;
        let v2 = h.collection("model-v2", DIM, Metric::Cosine).await;
        h.store
            .upsert(&v1, &[point("old", "o", axis(DIM, 0, 0.0))])
            .await
            .expect("v1");
        let alias = h.alias("model");
        h.store.set_alias(&alias, &v1).await.expect("alias → v1");
        let query = SearchRequest {
            vector: axis(DIM, 0, 0.0),
            top_k: 5,
            filter: PointFilter::all(),
            score_threshold: None,
        };
        let hits = h.store.search(&alias, &query).await.expect("search v1");
        assert_eq!(hits[0].payload.subject_id, "old");

        // Fill v2 while v1 serves, then swap.
        h.store
            .upsert(&v2, &[point("new", "n", axis(DIM, 0, 0.0))])
            .await
            .expect("v2");
        assert_eq!(
            h.store.search(&alias, &query).await.expect("still v1")[0]
                .payload
                .subject_id,
            "old"
        );
        h.store.set_alias(&alias, &v2).await.expect("alias → v2");
        let hits = h.store.search(&alias, &query).await.expect("search v2");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].payload.subject_id, "new");
        assert_eq!(
            h.store.collection_info(&alias).await.expect("info").name,
            v2
        );
        let aliases = h.store.list_aliases().await.expect("list");
        assert!(
            aliases
                .iter()
                .any(|a| a.alias == alias && a.collection == v2),
            "{aliases:?}"
        );
        // An alias is not a collection name.
        let clash = CollectionSpec {
            name: alias.clone(),
            dim: DIM,
            metric: Metric::Cosine,
        };
        assert_kind(h.store.ensure_collection(&clash).await, "conflict");

        assert!(h.store.delete_alias(&alias).await.expect("delete alias"));
        assert!(!h.store.delete_alias(&alias).await.expect("again"));
        assert_kind(h.store.search(&alias, &query).await, "not_found");
        assert_eq!(h.store.search(&v1, &query).await.expect("v1 kept").len(), 1);
    }

    pub async fn bad_requests_are_refused(h: &Harness) {
        let c = h.collection("bad", DIM, Metric::Cosine).await;
        assert_kind(
            h.store
                .upsert(&c, &[point("a", "short", vec![1.0; DIM - 1])])
                .await,
            "invalid_argument",
        );
        assert_kind(
            h.store
                .upsert(&c, &[point("a", "nan", vec![f32::NAN; DIM])])
                .await,
            "invalid_argument",
        );
        let mut forged = point("a", "forged", axis(DIM, 0, 0.0));
        forged.payload.subject_id = "b".into();
        let err = assert_kind(h.store.upsert(&c, &[forged]).await, "invalid_argument");
        assert!(err.to_string().contains("Point::new"), "{err}");
        let mut bad_label = point("a", "label", axis(DIM, 0, 0.0));
        bad_label.payload.labels.insert("k=v".into(), "x".into());
        let bad_label = Point::new(bad_label.vector, bad_label.payload);
        assert_kind(h.store.upsert(&c, &[bad_label]).await, "invalid_argument");
        let search = SearchRequest {
            vector: axis(DIM, 0, 0.0),
            top_k: 0,
            filter: PointFilter::all(),
            score_threshold: None,
        };
        assert_kind(h.store.search(&c, &search).await, "invalid_argument");
        let wrong_size = SearchRequest {
            vector: vec![1.0; DIM + 2],
            top_k: 3,
            ..search.clone()
        };
        assert_kind(h.store.search(&c, &wrong_size).await, "invalid_argument");
        let missing = h.name("missing");
        let ok_search = SearchRequest { top_k: 3, ..search };
        assert_kind(h.store.search(&missing, &ok_search).await, "not_found");
        assert_kind(h.store.collection_info(&missing).await, "not_found");
        assert!(!h
            .store
            .delete_collection(&missing)
            .await
            .expect("delete missing"));
        assert!(h.store.delete_collection(&c).await.expect("delete"));
        assert_kind(h.store.count(&c, &PointFilter::all()).await, "not_found");
        h.store.health().await.expect("healthy");
    }
}

/// One module per backend, one test per case.
macro_rules! contract_suite {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            use super::*;

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some(harness) = support::$backend().await else { return };
                        cases::$case(&harness).await;
                        harness.finish().await;
                    }
                };
            }

            case!(collections_are_ensured_idempotently);
            case!(upsert_is_idempotent);
            case!(points_read_back_by_id);
            case!(search_filters_by_subject_and_labels);
            case!(score_threshold_leaves_out_unrelated_vectors);
            case!(subjects_and_points_are_deleted);
            case!(tenants_see_only_their_own_points);
            case!(alias_swaps_serving_collection);
            case!(bad_requests_are_refused);
        }
    )*};
}

contract_suite!(embedded, remote, real_qdrant);
