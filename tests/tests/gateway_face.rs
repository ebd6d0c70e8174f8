//! Faces through the real `twin serve` with the shipped `models/face-v1`: every bad-input
//! class answered INVALID_ARGUMENT with its reason, and an enrol → VerifySubject → Search
//! round trip on LFW photos (../shared/data/lfw; the tests say "skipped" without it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::{Code, Request};
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::similarity_client::SimilarityClient;
use twin_proto::v1::verification_client::VerificationClient;
use twin_tests::{channel, image, repo_root, TwinProcess};

fn face_model() -> PathBuf {
    repo_root().join("models/face-v1")
}

fn lfw() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/data/lfw/images");
    if dir.is_dir() && face_model().join("model.onnx").is_file() {
        Some(dir)
    } else {
        println!("skipped: ../shared/data/lfw or models/face-v1 is missing");
        None
    }
}

/// People with at least `n` photos, by name, and their photos' paths.
fn people(lfw: &Path, n: usize) -> Vec<(String, Vec<PathBuf>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(lfw)
        .expect("lfw images")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|dir| {
            let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            photos.sort();
            (photos.len() >= n).then(|| {
                let name = dir.file_name()?.to_string_lossy().into_owned();
                Some((name, photos))
            })?
        })
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read photo")
}

fn png(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A variant of face-v1 in `dir` with other [face] settings, named `name`.
fn variant(dir: &Path, name: &str, edit: &[(&str, &str)]) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("variant dir");
    for entry in std::fs::read_dir(face_model()).expect("face-v1") {
        let path = entry.expect("entry").path();
        let file = path.file_name().expect("name").to_owned();
        if file != "manifest.toml" {
            std::os::unix::fs::symlink(&path, out.join(file)).expect("link");
        }
    }
    let mut manifest = std::fs::read_to_string(face_model().join("manifest.toml"))
        .expect("manifest")
        .replace("name = \"face-v1\"", &format!("name = \"{name}\""));
    for (from, to) in edit {
        assert!(manifest.contains(from), "manifest has no {from:?}");
        manifest = manifest.replace(from, to);
    }
    std::fs::write(out.join("manifest.toml"), manifest).expect("write manifest");
    out
}

fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(120));
    request
}

#[tokio::test]
async fn every_bad_face_input_is_invalid_argument_with_its_reason() {
    let Some(lfw) = lfw() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let refuse = variant(
        dir.path(),
        "face-refuse",
        &[("multiple = \"central\"", "multiple = \"refuse\"")],
    );
    let strict = variant(
        dir.path(),
        "face-strict",
        &[("min_face = 40", "min_face = 400")],
    );
    let process = TwinProcess::serve(dir.path(), &[&face_model(), &refuse, &strict], &[]).await;
    let mut verification = VerificationClient::new(channel(&process.url()).await);
    let people = people(&lfw, 2);
    let (a, b) = (read(&people[0].1[0]), read(&people[1].1[0]));
    let verify = |x: Vec<u8>, y: Vec<u8>, model: &str| {
        request(pb::VerifyRequest {
            a: image(x),
            b: image(y),
            model: model.to_owned(),
            ..Default::default()
        })
    };

    // Two faces side by side: the largest is used by face-v1, refused by face-refuse.
    let (ia, ib) = (
        image::load_from_memory(&a).expect("a").to_rgb8(),
        image::load_from_memory(&b).expect("b").to_rgb8(),
    );
    let mut pair = image::RgbImage::new(ia.width() + ib.width(), ia.height().max(ib.height()));
    image::imageops::overlay(&mut pair, &ia, 0, 0);
    image::imageops::overlay(&mut pair, &ib, i64::from(ia.width()), 0);
    let two = png(&pair);
    verification
        .verify(verify(two.clone(), a.clone(), "face-v1"))
        .await
        .expect("face-v1 takes the largest of two faces");
    let several = verification
        .verify(verify(two, a.clone(), "face-refuse"))
        .await
        .expect_err("two faces refused");
    assert_eq!(several.code(), Code::InvalidArgument);
    assert!(
        several.message().contains("a: 2 faces found"),
        "{}",
        several.message()
    );

    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            png(&image::RgbImage::from_fn(200, 200, |x, y| {
                image::Rgb([(x + y) as u8, x as u8, y as u8])
            })),
            "face-v1",
            "a: no face found",
        ),
        (
            a.clone(),
            "face-strict",
            "smaller than the model's minimum of 400",
        ),
        (
            b"not an image".to_vec(),
            "face-v1",
            "a: unsupported image format",
        ),
        (
            // A truncated PNG (a truncated JPEG decodes, its missing rows grey).
            {
                let whole = png(&ia);
                whole[..whole.len() / 2].to_vec()
            },
            "face-v1",
            "a: image data is corrupt or truncated",
        ),
        (Vec::new(), "face-v1", "a: image is empty"),
    ];
    for (bytes, model, says) in cases {
        let err = verification
            .verify(verify(bytes, b.clone(), model))
            .await
            .expect_err(says);
        assert_eq!(err.code(), Code::InvalidArgument, "{says}: {err:?}");
        assert!(err.message().contains(says), "{says}: {}", err.message());
    }
    let text = verification
        .verify(request(pb::VerifyRequest {
            a: Some(pb::Image::from_text("a face?", "")),
            b: image(b),
            model: "face-v1".into(),
            ..Default::default()
        }))
        .await
        .expect_err("a text to a face model");
    assert_eq!(text.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn faces_enrol_then_verify_against_the_subject_then_search_finds_them_or_says_unknown() {
    let Some(lfw) = lfw() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let process = TwinProcess::serve(dir.path(), &[&face_model()], &[]).await;
    let ch = channel(&process.url()).await;
    let mut enrollment = EnrollmentClient::new(ch.clone());
    let mut verification = VerificationClient::new(ch.clone());
    let mut similarity = SimilarityClient::new(ch);
    let many = people(&lfw, 6);
    let (alice, bob, stranger) = (&many[0], &many[1], &many[2]);
    for (person, photos) in [(alice, 5), (bob, 5)] {
        for photo in &person.1[..photos] {
            let job = enrollment
                .enroll(request(pb::EnrollRequest {
                    subject_id: person.0.clone(),
                    image: image(read(photo)),
                    model: "face-v1".into(),
                    wait: true,
                    ..Default::default()
                }))
                .await
                .expect("enrol")
                .into_inner()
                .job
                .expect("job");
            assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");
        }
    }
    let verify = |probe: &Path, subject: &str| {
        request(pb::VerifySubjectRequest {
            subject_id: subject.to_owned(),
            probe: image(read(probe)),
            model: "face-v1".into(),
            ..Default::default()
        })
    };
    let same = verification
        .verify_subject(verify(&alice.1[5], &alice.0))
        .await
        .expect("verify")
        .into_inner();
    assert!(same.r#match, "{same:?}");
    let audit = same.audit.expect("audit");
    assert!(audit.operating_point.contains("FAR"), "{audit:?}");
    let other = verification
        .verify_subject(verify(&bob.1[5], &alice.0))
        .await
        .expect("verify")
        .into_inner();
    assert!(!other.r#match, "{other:?}");

    let search = |probe: &Path| {
        request(pb::SearchRequest {
            query: Some(pb::search_request::Query::Image(pb::Image::from_bytes(
                read(probe),
                "",
            ))),
            model: "face-v1".into(),
            top_k: 3,
            group_by_subject: true,
            ..Default::default()
        })
    };
    let found = similarity
        .search(search(&bob.1[5]))
        .await
        .expect("search")
        .into_inner();
    assert_eq!(
        found.hits.first().map(|h| h.subject_id.as_str()),
        Some(bob.0.as_str()),
        "{found:?}"
    );
    let unknown = similarity
        .search(search(&stranger.1[0]))
        .await
        .expect("search")
        .into_inner();
    assert!(
        unknown.hits.is_empty(),
        "a stranger must be unknown: {unknown:?}"
    );
}
