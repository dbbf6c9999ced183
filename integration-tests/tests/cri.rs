//! Kubernetes' CRI on berth-lifecycled's socket, driven as the kubelet and
//! crictl drive containerd's CRI plugin: a client built from the same
//! protos (the kubelet and crictl cannot be installed here), a real
//! registry on loopback, no engine.

use std::process::Command;

use berth_proto::cri::v1 as cri;
use berth_proto::cri::v1::image_service_client::ImageServiceClient;
use integration_tests::cri::{ctr, push_busybox};
use integration_tests::lifecycled::Lifecycled;
use integration_tests::registry::Registry;
use tonic::Code;

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

#[tokio::test]
async fn images_are_pulled_listed_found_and_removed_as_containerd_does() {
    let l = Lifecycled::start(&[]);
    let reg = Registry::start();
    let manifest = push_busybox(&l, &reg);
    let c = l.client("k8s.io").await;
    let mut images = ImageServiceClient::new(c.channel.clone());
    let remote = format!("{}/berth/bb:1", reg.host);

    // Not here yet: an empty answer, which is how the kubelet learns to pull.
    let status = images
        .image_status(cri::ImageStatusRequest {
            image: spec(&remote),
            verbose: false,
        })
        .await
        .expect("status of a missing image")
        .into_inner();
    assert!(status.image.is_none(), "{status:?}");

    // Pulled from the loopback registry (plain HTTP, as containerd does for
    // loopback hosts): the answer is the image id.
    let id = images
        .pull_image(cri::PullImageRequest {
            image: spec(&remote),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("pull: {e}\n{}", l.log()))
        .into_inner()
        .image_ref;
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let list = images
        .list_images(cri::ListImagesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .images;
    assert_eq!(list.len(), 1, "{list:?}");
    let image = &list[0];
    assert_eq!(image.id, id);
    assert_eq!(image.repo_tags, std::slice::from_ref(&remote));
    assert_eq!(
        image.repo_digests,
        [format!("{}/berth/bb@{manifest}", reg.host)]
    );
    assert!(image.size > 0);
    assert!(
        image.uid.is_none() && image.username.is_empty(),
        "{image:?}"
    );

    // Found by id (with and without sha256:), by name, by repo digest.
    let hex = id.trim_start_matches("sha256:").to_string();
    let digest_ref = format!("{}/berth/bb@{manifest}", reg.host);
    for name in [
        id.as_str(),
        hex.as_str(),
        remote.as_str(),
        digest_ref.as_str(),
    ] {
        let found = images
            .image_status(cri::ImageStatusRequest {
                image: spec(name),
                verbose: true,
            })
            .await
            .expect("status")
            .into_inner();
        assert_eq!(
            found.image.as_ref().map(|i| i.id.as_str()),
            Some(id.as_str()),
            "{name}"
        );
        let info: serde_json::Value =
            serde_json::from_str(found.info.get("info").expect("verbose info")).expect("JSON");
        assert_eq!(info["imageSpec"]["rootfs"]["type"], "layers", "{info}");
        assert!(
            info["chainID"]
                .as_str()
                .is_some_and(|c| c.starts_with("sha256:"))
        );
    }

    // The image file system: where snapshots live, and what they use.
    let fs = images
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .expect("fs info")
        .into_inner();
    let usage = &fs.image_filesystems[0];
    let mountpoint = &usage.fs_id.as_ref().expect("fs id").mountpoint;
    assert!(std::path::Path::new(mountpoint).is_dir(), "{mountpoint}");
    // The same figures as du's (allocated blocks, each inode once).
    let du = |flag: &str| -> u64 {
        let out = Command::new("du")
            .args(["-s", flag, mountpoint])
            .output()
            .expect("du");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("du {flag}: {text}"))
    };
    assert_eq!(
        usage.used_bytes.as_ref().expect("bytes").value,
        du("--block-size=1")
    );
    assert_eq!(
        usage.inodes_used.as_ref().expect("inodes").value,
        du("--inodes")
    );
    assert!(usage.timestamp > 0);

    // The CRI's images are in their own namespace: berth's default one
    // still holds only what berth-ctr imported.
    assert_eq!(ctr(&l, &["images", "ls", "-q"]), "local/bb:1");

    // Removed by name: every name of it goes (tag, digest, id), and a
    // second removal is not an error.
    for _ in 0..2 {
        images
            .remove_image(cri::RemoveImageRequest {
                image: spec(&remote),
            })
            .await
            .expect("remove");
    }
    let after = images
        .image_status(cri::ImageStatusRequest {
            image: spec(&id),
            verbose: false,
        })
        .await
        .expect("status")
        .into_inner();
    assert!(after.image.is_none(), "{after:?}");
    let list = images
        .list_images(cri::ListImagesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .images;
    assert!(list.is_empty(), "{list:?}");
}

#[tokio::test]
async fn bad_pulls_say_why_and_leave_nothing() {
    let l = Lifecycled::start(&[]);
    let reg = Registry::start();
    let c = l.client("k8s.io").await;
    let mut images = ImageServiceClient::new(c.channel.clone());
    let cases = [
        (String::new(), Code::InvalidArgument, "no image given"),
        (
            "Not/A:Valid:Ref".to_string(),
            Code::InvalidArgument,
            "failed to pull image",
        ),
        (
            format!("{}/berth/nothing:1", reg.host),
            Code::NotFound,
            "failed to pull image",
        ),
    ];
    for (image, code, words) in cases {
        let err = images
            .pull_image(cri::PullImageRequest {
                image: spec(&image),
                ..Default::default()
            })
            .await
            .expect_err(&image);
        assert_eq!(err.code(), code, "{image}: {err:?}");
        assert!(err.message().contains(words), "{image}: {err:?}");
    }
    let err = images
        .image_status(cri::ImageStatusRequest {
            image: spec(""),
            verbose: false,
        })
        .await
        .expect_err("an empty image");
    assert_eq!(err.code(), Code::InvalidArgument);
    let list = images
        .list_images(cri::ListImagesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .images;
    assert!(list.is_empty(), "{list:?}");
}

#[tokio::test]
async fn pulls_go_through_the_configured_mirrors() {
    use integration_tests::cri::CriNode;
    // A registry name that exists nowhere: only its mirror can answer (and
    // nothing leaves the machine, as the mirror answers first).
    let mut node = CriNode::start_with(
        true,
        "[cri.registry.mirrors]\n\"mirrored.example\" = [\"http://{registry}\"]",
    )
    .await;
    let name = "mirrored.example/berth/bb:1";
    let pulled = node
        .images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("pull through the mirror: {e}\n{}", node.l.log()))
        .into_inner()
        .image_ref;
    let status = |image: String| cri::ImageStatusRequest {
        image: Some(cri::ImageSpec {
            image,
            ..Default::default()
        }),
        verbose: false,
    };
    let direct = node
        .images
        .image_status(status(node.image.clone()))
        .await
        .expect("status")
        .into_inner()
        .image
        .expect("busybox as pulled directly");
    // The same image, under the name it was asked for.
    assert_eq!(pulled, direct.id);
    let mirrored = node
        .images
        .image_status(status(name.into()))
        .await
        .expect("status")
        .into_inner()
        .image
        .expect("the mirrored name");
    assert!(mirrored.repo_tags.iter().any(|t| t == name), "{mirrored:?}");
}
