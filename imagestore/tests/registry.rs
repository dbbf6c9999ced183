//! Pull and push against a real Debian `docker-registry` (distribution 2.8)
//! started by each test: plain HTTP, HTTPS with a generated CA, htpasswd
//! basic auth, token auth. Needs root (layers unpack with their owners).

mod common;

use common::*;
use imagestore::{Credentials, Error, ImageRecord, ImportOptions, Missing, ProgressAction, Store};

fn import(s: &Store, name: &str, img: &Image) -> ImageRecord {
    let archive = oci_archive(&[(name, img)]);
    s.import(NS, &archive[..], &ImportOptions::default())
        .unwrap()
        .remove(0)
}

fn creds(password: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: USER.into(),
        password: password.into(),
    })
}

fn three_layers() -> Image {
    image(
        &[
            layer(&[("bin/tool", &noise(300_000, 1))]),
            layer(&[("etc/conf", b"a=1\n"), ("etc/other", &noise(5000, 2))]),
            layer(&[("app/data", &noise(1_200_000, 3))]),
        ],
        &host_arch(),
    )
}

/// The store holds nothing at all: no blob, ingest, image or snapshot.
fn assert_untouched(s: &Store) {
    assert!(s.list().unwrap().is_empty(), "blobs: {:?}", blobs(s));
    assert!(s.ingests().unwrap().is_empty(), "{:?}", s.ingests());
    assert!(s.list_images(NS).unwrap().is_empty());
    assert!(s.list_snapshots().is_empty());
}

async fn push(
    s: &Store,
    reg: &Registry,
    name: &str,
    remote: &str,
    auth: Option<Credentials>,
) -> Vec<imagestore::Progress> {
    let (tx, rx) = progress();
    s.push(NS, name, remote, auth, &reg.options(), tx)
        .await
        .unwrap_or_else(|e| panic!("push {remote}: {}", e.chain()));
    drain(rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_images_pull_back_byte_identical_over_plain_http() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("team/app:v1");
    import(&s1, &name, &img);
    let events = push(&s1, &reg, &name, &name, None).await;
    let pushed = events
        .iter()
        .filter(|p| p.action == ProgressAction::Pushed)
        .count();
    assert_eq!(pushed, 4, "three layers and the config: {events:?}");

    let (_d2, s2) = store();
    let (tx, rx) = progress();
    let rec = s2.pull(NS, &name, None, &reg.options(), tx).await.unwrap();
    assert_eq!(
        rec.target.digest().to_string(),
        img.digest(),
        "same manifest digest"
    );
    assert_eq!(rec.name, name);
    assert_eq!(
        blobs(&s1),
        blobs(&s2),
        "every blob byte-identical (same digests)"
    );
    let events = drain(rx);
    assert_eq!(events[0].action, ProgressAction::Resolving);
    for action in [
        ProgressAction::Downloading,
        ProgressAction::Extracting,
        ProgressAction::Complete,
    ] {
        assert_eq!(
            events
                .iter()
                .filter(|p| p.action == action)
                .map(|p| &p.id)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3,
            "{action:?} for each layer: {events:?}"
        );
    }
    let done = events
        .iter()
        .find(|p| p.action == ProgressAction::Complete)
        .unwrap();
    assert_eq!(done.id.len(), 12);
    assert_eq!(done.current, done.total);
    // Unpacked while pulling.
    let r = s2.resolve_image(NS, &name).unwrap();
    assert!(s2.layer_usage(r.top_chain_id().unwrap()).is_ok());
    assert_eq!(s2.list_snapshots().len(), 3);

    // Pulling again finds everything there, and shows no layer (as
    // dockerd shows the pull of an image it has).
    let (tx, rx) = progress();
    let again = s2.pull(NS, &name, None, &reg.options(), tx).await.unwrap();
    assert_eq!(again.target, rec.target);
    let events = drain(rx);
    assert!(
        !events
            .iter()
            .any(|p| matches!(p.action, ProgressAction::Exists | ProgressAction::Waiting)),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|p| p.action == ProgressAction::Downloading)
    );

    // And by digest.
    let (_d3, s3) = store();
    let by_digest = reg.reference(&format!("team/app@{}", img.digest()));
    let (tx, _rx) = progress();
    let rec = s3
        .pull(NS, &by_digest, None, &reg.options(), tx)
        .await
        .unwrap();
    assert_eq!(rec.name, by_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_generated_ca_works_and_without_it_fails_clearly() {
    let reg = Registry::start(Mode::Tls);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("secure/app:1");
    import(&s1, &name, &img);
    push(&s1, &reg, &name, &name, None).await;

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    let rec = s2.pull(NS, &name, None, &reg.options(), tx).await.unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());

    let (_d3, s3) = store();
    let (tx, _rx) = progress();
    let mut opts = reg.options();
    opts.ca_certs.clear();
    let e = s3.pull(NS, &name, None, &opts, tx).await.unwrap_err();
    let msg = e.chain();
    assert!(msg.contains(&reg.host), "{msg}");
    assert!(msg.contains("TLS") && msg.contains("certificate"), "{msg}");
    assert_untouched(&s3);

    // Listed as insecure, its certificate goes unchecked, as dockerd
    // reaches an insecure registry that speaks TLS.
    let (tx, _rx) = progress();
    let mut opts = reg.options();
    opts.ca_certs.clear();
    opts.insecure = vec![reg.host.clone()];
    let rec = s3.pull(NS, &name, None, &opts, tx).await.unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_takes_the_right_credentials_and_names_the_wrong_ones() {
    let reg = Registry::start(Mode::Basic);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("private/app:1");
    import(&s1, &name, &img);

    let (tx, _rx) = progress();
    let e = s1
        .push(NS, &name, &name, None, &reg.options(), tx)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{}", e.chain());
    push(&s1, &reg, &name, &name, creds(PASSWORD)).await;

    let (_d2, s2) = store();
    for auth in [None, creds("wrong")] {
        let (tx, _rx) = progress();
        let e = s2
            .pull(NS, &name, auth, &reg.options(), tx)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unauthorized { .. }), "{}", e.chain());
        let msg = e.to_string();
        assert!(msg.contains(&reg.host) && msg.contains("401"), "{msg}");
        assert_untouched(&s2);
    }
    let (tx, _rx) = progress();
    let rec = s2
        .pull(NS, &name, creds(PASSWORD), &reg.options(), tx)
        .await
        .unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_goes_through_the_challenge_and_the_token_server() {
    let reg = Registry::start(Mode::Token);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("tok/app:1");
    import(&s1, &name, &img);
    push(&s1, &reg, &name, &name, creds(PASSWORD)).await;

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    let e = s2
        .pull(NS, &name, creds("wrong"), &reg.options(), tx)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{}", e.chain());
    assert!(e.to_string().contains("token server refused"), "{e}");
    assert_untouched(&s2);

    let (tx, _rx) = progress();
    let rec = s2
        .pull(NS, &name, creds(PASSWORD), &reg.options(), tx)
        .await
        .unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());
    assert_eq!(blobs(&s1), blobs(&s2));
}

/// Docker Hub gives an anonymous caller a token for any repository, one
/// that does not cover a private or missing repository: dockerd calls the
/// 401 that follows a denied pull, 404 to its clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_does_not_cover_the_repository_is_a_denied_pull() {
    let reg = Registry::start(Mode::TokenForAnyone);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("private/app:1");
    import(&s1, &name, &img);
    push(&s1, &reg, &name, &name, creds(PASSWORD)).await;

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    let e = s2
        .pull(NS, &name, None, &reg.options(), tx)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': \
             denied: requested access to the resource is denied",
            reg.reference("private/app")
        ),
        "{}",
        e.chain()
    );
    assert_untouched(&s2);
    // The same caller with credentials gets it.
    let (tx, _rx) = progress();
    let rec = s2
        .pull(NS, &name, creds(PASSWORD), &reg.options(), tx)
        .await
        .unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_corrupted_in_the_registry_is_refused_and_nothing_is_half_stored() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("team/corrupt:1");
    import(&s1, &name, &img);
    push(&s1, &reg, &name, &name, None).await;
    // Same length, different bytes: only the digest can tell.
    let victim = reg.blob_file(&sha256(&img.blobs[2]));
    let mut data = std::fs::read(&victim).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&victim, data).unwrap();

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    let e = s2
        .pull(NS, &name, None, &reg.options(), tx)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{}", e.chain());
    assert!(e.to_string().contains(&sha256(&img.blobs[2])), "{e}");
    assert_untouched(&s2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_references_missing_tags_and_a_registry_that_is_down_change_nothing() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = reg.reference("team/app:v1");
    import(&s1, &name, &img);
    push(&s1, &reg, &name, &name, None).await;

    let (_d, s) = store();
    let pull = |r: String| {
        let s = s.clone();
        let opts = reg.options();
        async move {
            let (tx, _rx) = progress();
            s.pull(NS, &r, None, &opts, tx).await.unwrap_err()
        }
    };
    let e = pull(reg.reference("Team/App:v1")).await;
    assert!(matches!(e, Error::InvalidReference { .. }), "{e}");
    assert!(e.to_string().contains("lowercase"), "{e}");
    let e = pull("app:v1".into()).await;
    assert!(e.to_string().contains("no registry host"), "{e}");
    let e = pull(reg.reference("team/app")).await;
    assert!(e.to_string().contains("neither a tag nor a digest"), "{e}");
    // dockerd's words for the registry's answers (both 404 there).
    let e = pull(reg.reference("team/app:nope")).await;
    assert_eq!(
        e.to_string(),
        format!(
            "manifest for {} not found: manifest unknown: manifest unknown",
            reg.reference("team/app:nope")
        )
    );
    let e = pull(reg.reference("other/repo:v1")).await;
    assert!(
        matches!(
            e,
            Error::NotInRegistry {
                missing: Missing::Manifest,
                ..
            }
        ),
        "{}",
        e.chain()
    );
    let e = s
        .tags(&reg.reference("other/repo:v1"), None, &reg.options())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "repository {} not found: name unknown: repository name not known to registry",
            reg.reference("other/repo")
        )
    );

    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("{}/x/y:1", down.local_addr().unwrap());
    drop(down);
    let mut opts = reg.options();
    opts.insecure
        .push(dead.split('/').next().unwrap().to_string());
    let (tx, _rx) = progress();
    let e = s.pull(NS, &dead, None, &opts, tx).await.unwrap_err();
    assert!(
        matches!(e, Error::RegistryUnreachable { .. }),
        "{}",
        e.chain()
    );
    assert!(e.chain().contains("onnection refused"), "{}", e.chain());
    assert_untouched(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_for_another_platform_only_is_refused_naming_what_there_is() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let other = image(&[layer(&[("f", b"riscv")])], "riscv64");
    let name = reg.reference("multi/app:other");
    let (archive, _) = oci_index_archive(&name, &[&other]);
    s1.import(NS, &archive[..], &ImportOptions::default())
        .unwrap();
    push(&s1, &reg, &name, &name, None).await;
    let single = reg.reference("multi/app:single");
    import(&s1, &single, &other);
    push(&s1, &reg, &single, &single, None).await;

    let (_d2, s2) = store();
    for r in [&name, &single] {
        let (tx, _rx) = progress();
        let e = s2.pull(NS, r, None, &reg.options(), tx).await.unwrap_err();
        assert!(
            matches!(e, Error::NoMatchingPlatform { .. }),
            "{}",
            e.chain()
        );
        assert_eq!(
            e.to_string(),
            format!(
                "no manifest for linux/{} in {r}; available: linux/riscv64",
                host_arch()
            )
        );
        assert_untouched(&s2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_index_pulls_this_machines_manifest_only() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let mine = image(&[layer(&[("f", b"mine")])], &host_arch());
    let other = image(&[layer(&[("f", b"riscv")])], "riscv64");
    let name = reg.reference("multi/app:both");
    let (archive, index_digest) = oci_index_archive(&name, &[&other, &mine]);
    s1.import(NS, &archive[..], &ImportOptions::default())
        .unwrap();
    push(&s1, &reg, &name, &name, None).await;

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    let rec = s2.pull(NS, &name, None, &reg.options(), tx).await.unwrap();
    assert_eq!(rec.target.digest().to_string(), index_digest);
    let r = s2.resolve_image(NS, &name).unwrap();
    assert_eq!(r.manifest_digest.to_string(), mine.digest());
    let have = blobs(&s2);
    assert!(!have.contains(&other.digest()));
    assert!(!have.contains(&sha256(&other.blobs[0])));
    assert_eq!(have.len(), 4, "index, manifest, config, layer: {have:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_pulled_image_resumes_where_it_stopped() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let big = layer(&[("big", &noise(3 << 20, 7))]);
    let img = image(
        &[
            big,
            layer(&[("small", b"s")]),
            layer(&[("last", &noise(100_000, 8))]),
        ],
        &host_arch(),
    );
    let name = reg.reference("resume/app:1");
    import(&s1, &name, &img);
    push(&s1, &reg, &name, &name, None).await;

    // An interrupted download: the first MiB of the big layer is in an ingest.
    let (_d2, s2) = store();
    let manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let big_desc: imagestore::Descriptor =
        serde_json::from_value(manifest["layers"][0].clone()).unwrap();
    let mut w = s2.writer(Some(&big_desc)).unwrap().unwrap();
    std::io::Write::write_all(&mut w, &img.blobs[0][..1 << 20]).unwrap();
    drop(w);

    // And a pull that fails half-way: the last layer is gone from the registry.
    let last = reg.blob_file(&sha256(&img.blobs[2]));
    let aside = last.with_extension("aside");
    std::fs::rename(&last, &aside).unwrap();
    let mut opts = reg.options();
    opts.max_concurrent_downloads = 1;
    let (tx, rx) = progress();
    let e = s2.pull(NS, &name, None, &opts, tx).await.unwrap_err();
    assert!(e.is_transient(), "{}", e.chain());
    let events = drain(rx);
    let big_id = &sha256(&img.blobs[0])[7..19];
    let first = events
        .iter()
        .find(|p| p.action == ProgressAction::Downloading && p.id == *big_id)
        .unwrap();
    assert!(
        first.current >= 1 << 20,
        "the download started at the ingest's offset (a range request): {first:?}"
    );
    assert!(
        s2.list_images(NS).unwrap().is_empty(),
        "no record for an incomplete image"
    );
    let have = blobs(&s2);
    assert!(have.contains(&sha256(&img.blobs[0])) && have.contains(&sha256(&img.blobs[1])));

    std::fs::rename(&aside, &last).unwrap();
    let (tx, rx) = progress();
    let rec = s2.pull(NS, &name, None, &opts, tx).await.unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());
    let events = drain(rx);
    assert_eq!(
        events
            .iter()
            .filter(|p| p.action == ProgressAction::Exists)
            .count(),
        2,
        "the two layers of the first attempt are kept: {events:?}"
    );
    assert_eq!(blobs(&s1), blobs(&s2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_second_repository_mounts_the_blobs() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let img = three_layers();
    let a = reg.reference("one/app:1");
    let b = reg.reference("two/app:1");
    import(&s1, &a, &img);
    push(&s1, &reg, &a, &a, None).await;
    let events = push(&s1, &reg, &a, &b, None).await;
    let mounted = events
        .iter()
        .filter(|p| p.action == ProgressAction::Mounted)
        .count();
    assert_eq!(mounted, 4, "{events:?}");
    assert!(!events.iter().any(|p| p.action == ProgressAction::Pushing));

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    let rec = s2.pull(NS, &b, None, &reg.options(), tx).await.unwrap();
    assert_eq!(rec.target.digest().to_string(), img.digest());
    // A pulled image remembers where it came from: pushing it to a third
    // repository mounts too.
    let c = reg.reference("three/app:1");
    let events = push(&s2, &reg, &b, &c, None).await;
    assert_eq!(
        events
            .iter()
            .filter(|p| p.action == ProgressAction::Mounted)
            .count(),
        4
    );
}

/// As dockerd shows a pull: the layers the store has already show as
/// existing alone, never as waiting for a download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_here_already_show_as_existing_alone() {
    let reg = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let shared = [
        layer(&[("bin/tool", &noise(3000, 1))]),
        layer(&[("etc/conf", b"a=1\n")]),
    ];
    let first = image(&shared, &host_arch());
    let mut layers = shared.to_vec();
    layers.push(layer(&[("app/data", &noise(2000, 3))]));
    let second = image(&layers, &host_arch());
    let (a, b) = (reg.reference("team/a:1"), reg.reference("team/b:1"));
    import(&s1, &a, &first);
    import(&s1, &b, &second);
    push(&s1, &reg, &a, &a, None).await;
    push(&s1, &reg, &b, &b, None).await;

    let (_d2, s2) = store();
    let (tx, _rx) = progress();
    s2.pull(NS, &a, None, &reg.options(), tx).await.unwrap();
    let (tx, rx) = progress();
    s2.pull(NS, &b, None, &reg.options(), tx).await.unwrap();
    let events = drain(rx);
    let ids = |action: ProgressAction| {
        events
            .iter()
            .filter(|p| p.action == action)
            .map(|p| p.id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (waiting, existing) = (ids(ProgressAction::Waiting), ids(ProgressAction::Exists));
    assert_eq!(waiting.len(), 1, "{events:?}");
    assert_eq!(existing.len(), 2, "{events:?}");
    assert!(waiting.is_disjoint(&existing), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_comes_up_late_is_retried() {
    // Push something first to a registry whose storage the late one reuses.
    let first = Registry::start(Mode::Plain);
    let (_d1, s1) = store();
    let img = three_layers();
    let name = first.reference("late/app:1");
    import(&s1, &name, &img);
    push(&s1, &first, &name, &name, None).await;
    let data = first.dir.path().join("data");

    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let starter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Registry::start_on(Mode::Plain, port, Some(&data))
    });
    let (_d2, s2) = store();
    let mut opts = imagestore::RegistryOptions {
        insecure: vec![host.clone()],
        retries: 5,
        ..Default::default()
    };
    opts.max_concurrent_downloads = 3;
    let (tx, _rx) = progress();
    let res = s2
        .pull(NS, &format!("{host}/late/app:1"), None, &opts, tx)
        .await;
    let _late = starter.join().unwrap();
    let rec = res.unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(rec.target.digest().to_string(), img.digest());
}
