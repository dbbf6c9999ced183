//! From a descriptor to what a container needs: the manifest for this
//! machine's platform (chosen from an index or manifest list), its config,
//! its layers with their diff ids and chain ids.

use std::fmt;
use std::sync::Arc;

use oci_spec::image::{
    Arch, Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, Platform,
};
use serde::Deserialize;

use crate::digest::parse_digest;
use crate::error::{Error, Result};

/// Media types the store reads and writes.
pub mod media_types {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// The config of a Docker managed plugin (`docker plugin push`).
    pub const PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";

    /// What a registry is asked for when a manifest is fetched.
    pub const MANIFEST_ACCEPT: &[&str] = &[
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ];

    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    pub fn is_config(mt: &str) -> bool {
        mt == OCI_CONFIG || mt == DOCKER_CONFIG
    }

    pub fn is_layer(mt: &str) -> bool {
        mt.starts_with("application/vnd.oci.image.layer.")
            || mt == DOCKER_LAYER
            || mt == DOCKER_LAYER_GZIP
            || mt == DOCKER_FOREIGN_LAYER_GZIP
    }
}

/// Manifests, indexes and configs are read whole; nothing legitimate is
/// anywhere near this.
pub(crate) const MAX_MANIFEST_SIZE: u64 = 8 << 20;
pub(crate) const MAX_CONFIG_SIZE: u64 = 32 << 20;

/// A platform to select, `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// This machine: `linux/<arch>` with the variant Docker uses for it.
    pub fn host() -> PlatformSpec {
        let architecture = Arch::default().to_string();
        let variant = match architecture.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        PlatformSpec {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    /// Parses `linux/amd64` or `linux/arm/v7`.
    pub fn parse(s: &str) -> Result<PlatformSpec, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(PlatformSpec {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(v.to_string()),
                })
            }
            _ => Err(format!("platform {s:?} is not os/architecture[/variant]")),
        }
    }

    /// 0 = no match; higher is better.
    fn score(&self, p: &Platform) -> u8 {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.architecture {
            return 0;
        }
        let have = p.variant().as_deref().filter(|v| !v.is_empty());
        match (self.variant.as_deref(), have) {
            (a, b) if a == b => 3,
            (Some("v8"), None) if self.architecture == "arm64" => 2,
            (None, Some("v1")) => 2,
            // Older ARM variants run on newer cores.
            (Some(want), Some(have)) if self.architecture == "arm" && have < want => 1,
            (Some(_), None) if self.architecture == "arm" => 1,
            _ => 0,
        }
    }

    pub fn matches(&self, p: &Platform) -> bool {
        self.score(p) > 0
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

pub(crate) fn platform_string(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant().as_deref().filter(|v| !v.is_empty()) {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// An image resolved for this machine with its config as stored: the
/// bytes a client reads, keys the OCI type does not know included.
#[derive(Debug)]
pub struct Resolved {
    pub image: ResolvedImage,
    pub config_bytes: Vec<u8>,
}

/// Resolutions for the host's platform, by target. Content is addressed
/// by digest, so a target whose blobs are all still here resolves as it
/// did: listing or inspecting images read and parsed every manifest and
/// config again on each call (~8 ms for 300 names, 7x dockerd's).
#[derive(Default)]
pub(crate) struct Resolutions {
    /// Each with the store's blob removal count when it was last seen whole.
    by_target: std::sync::Mutex<std::collections::HashMap<TargetKey, (u64, Arc<Resolved>)>>,
}

/// A target by digest and media type (what its parse depends on).
pub(crate) type TargetKey = (Digest, String);

/// More than a machine holds images; past it the cache starts over.
const MAX_RESOLUTIONS: usize = 4096;

impl Resolutions {
    /// The resolution of `key` and the removal count it was last checked at.
    pub(crate) fn get(&self, key: &TargetKey) -> Option<(u64, Arc<Resolved>)> {
        let m = self.by_target.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned()
    }

    /// Keeps `r`, whole at removal count `seen`.
    pub(crate) fn put(&self, key: TargetKey, seen: u64, r: Arc<Resolved>) {
        let mut m = self.by_target.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_RESOLUTIONS {
            m.clear();
        }
        m.insert(key, (seen, r));
    }
}

/// An image resolved for one platform.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// What the image record points at (an index or a manifest).
    pub target: Descriptor,
    /// The platform's manifest (equal to `target` when that is a manifest).
    pub manifest: Descriptor,
    pub manifest_digest: Digest,
    pub config_descriptor: Descriptor,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    pub layers: Vec<Descriptor>,
    /// Digests of the uncompressed layers, from the config.
    pub diff_ids: Vec<Digest>,
    /// Chain ids of the layers; the last one names the image's unpacked top.
    pub chain_ids: Vec<Digest>,
    pub platform: Platform,
}

impl ResolvedImage {
    /// The chain id of the top layer, `None` for an image without layers.
    pub fn top_chain_id(&self) -> Option<&Digest> {
        self.chain_ids.last()
    }
}

#[derive(Debug)]
pub(crate) enum Parsed {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// Parses a manifest or index, telling which it is by its descriptor's
/// media type, its own `mediaType`, or (for OCI content without one) its
/// shape.
pub(crate) fn parse_manifest(data: &[u8], media_type: &str, digest: &str) -> Result<Parsed> {
    let invalid = |reason: String| Error::InvalidContent {
        what: "manifest",
        digest: digest.to_string(),
        reason,
    };
    let probe: Probe =
        serde_json::from_slice(data).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if probe.schema_version == Some(1) || media_type == media_types::DOCKER_SCHEMA1 {
        return Err(Error::UnsupportedMediaType {
            what: "manifest",
            digest: digest.to_string(),
            media_type: media_types::DOCKER_SCHEMA1.into(),
        });
    }
    if probe.schema_version != Some(2) {
        return Err(invalid(format!(
            "schemaVersion is {:?}, expected 2",
            probe.schema_version
        )));
    }
    let own = probe.media_type.as_deref().unwrap_or("");
    let mt = if media_types::is_index(media_type) || media_types::is_manifest(media_type) {
        media_type
    } else {
        own
    };
    let is_index = if media_types::is_index(mt) {
        true
    } else if media_types::is_manifest(mt) {
        false
    } else if mt.is_empty() || mt == "application/octet-stream" {
        if probe.manifests.is_some() {
            true
        } else if probe.layers.is_some() && probe.config.is_some() {
            false
        } else {
            return Err(invalid("neither an index nor a manifest".into()));
        }
    } else {
        return Err(Error::UnsupportedMediaType {
            what: "manifest",
            digest: digest.to_string(),
            media_type: mt.to_string(),
        });
    };
    if !own.is_empty() && (media_types::is_index(own) != is_index) {
        return Err(invalid(format!(
            "its mediaType {own:?} contradicts its descriptor's {media_type:?}"
        )));
    }
    if is_index {
        serde_json::from_slice::<ImageIndex>(data)
            .map(|i| Parsed::Index(Box::new(i)))
            .map_err(|e| invalid(e.to_string()))
    } else {
        serde_json::from_slice::<ImageManifest>(data)
            .map(|m| Parsed::Manifest(Box::new(m)))
            .map_err(|e| invalid(e.to_string()))
    }
}

/// The best entry of an index for `want`, or an error listing what is there.
pub(crate) fn select_platform(
    index: &ImageIndex,
    want: &PlatformSpec,
    image: &str,
) -> Result<Descriptor> {
    let best = index
        .manifests()
        .iter()
        .filter(|d| {
            media_types::is_manifest(d.media_type().as_ref()) || d.media_type().as_ref().is_empty()
        })
        .filter_map(|d| d.platform().as_ref().map(|p| (want.score(p), d)))
        .filter(|(s, _)| *s > 0)
        // max_by_key keeps the last of equals; the first listed should win.
        .fold(None::<(u8, &Descriptor)>, |acc, (s, d)| match acc {
            Some((bs, _)) if bs >= s => acc,
            _ => Some((s, d)),
        });
    match best {
        Some((_, d)) => Ok(d.clone()),
        None => {
            let mut available: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref().map(platform_string))
                .filter(|p| !p.starts_with("unknown/"))
                .collect();
            available.dedup();
            Err(Error::NoMatchingPlatform {
                wanted: want.to_string(),
                image: image.to_string(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            })
        }
    }
}

/// Checks a manifest's config and layer media types.
pub(crate) fn check_manifest(m: &ImageManifest, digest: &str) -> Result<()> {
    let cmt = m.config().media_type().to_string();
    if !media_types::is_config(&cmt) {
        return Err(Error::UnsupportedMediaType {
            what: "config of manifest",
            digest: digest.to_string(),
            media_type: cmt,
        });
    }
    check_layers(m)
}

/// Checks that each of a manifest's layers is a layer media type.
fn check_layers(m: &ImageManifest) -> Result<()> {
    for l in m.layers() {
        let mt = l.media_type().to_string();
        if !media_types::is_layer(&mt) {
            return Err(Error::UnsupportedMediaType {
                what: "layer",
                digest: l.digest().to_string(),
                media_type: mt,
            });
        }
    }
    Ok(())
}

/// Checks that a manifest is a Docker managed plugin's: its config is the
/// plugin config, its layers are layers (they are stored, never unpacked:
/// the engine unpacks them into the plugin's own rootfs).
pub(crate) fn check_plugin_manifest(m: &ImageManifest, digest: &str) -> Result<()> {
    let cmt = m.config().media_type().to_string();
    if cmt != media_types::PLUGIN_CONFIG {
        return Err(Error::InvalidContent {
            what: "manifest",
            digest: digest.to_string(),
            reason: format!(
                "it is not a plugin: its config is {cmt}, not {}",
                media_types::PLUGIN_CONFIG
            ),
        });
    }
    check_layers(m)
}

/// Whether `data` reads as an image config, as [`parse_config`] reads
/// it (for a config about to be written, whose layers are not counted).
pub fn check_config(data: &[u8]) -> std::result::Result<(), serde_json::Error> {
    serde_json::from_slice::<ImageConfiguration>(data).map(|_| ())
}

/// Parses a config and its diff ids, which must be one per layer.
pub(crate) fn parse_config(
    data: &[u8],
    digest: &str,
    layers: usize,
) -> Result<(ImageConfiguration, Vec<Digest>)> {
    let invalid = |reason: String| Error::InvalidContent {
        what: "config",
        digest: digest.to_string(),
        reason,
    };
    let config: ImageConfiguration =
        serde_json::from_slice(data).map_err(|e| invalid(e.to_string()))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| parse_digest(d).map_err(|e| invalid(format!("diff id: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    if diff_ids.len() != layers {
        return Err(invalid(format!(
            "it lists {} diff ids for {} layers",
            diff_ids.len(),
            layers
        )));
    }
    Ok((config, diff_ids))
}

pub(crate) fn config_platform(c: &ImageConfiguration) -> Platform {
    let mut p = Platform::default();
    p.set_os(c.os().clone());
    p.set_architecture(c.architecture().clone());
    p.set_variant(c.variant().clone());
    p
}

/// Whether a single-platform image can run here.
pub(crate) fn config_matches(c: &ImageConfiguration, want: &PlatformSpec) -> bool {
    // Configs without os/architecture exist (hand-made, artifacts); do not
    // refuse them for what they leave out.
    let os = c.os().to_string();
    let arch = c.architecture().to_string();
    if os.is_empty() || arch.is_empty() {
        return true;
    }
    want.matches(&config_platform(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[&str]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let parts: Vec<&str> = p.split('/').collect();
                let mut plat = serde_json::json!({"os": parts[0], "architecture": parts[1]});
                if parts.len() > 2 {
                    plat["variant"] = parts[2].into();
                }
                serde_json::json!({
                    "mediaType": media_types::OCI_MANIFEST,
                    "digest": format!("sha256:{:064x}", i),
                    "size": 1,
                    "platform": plat,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    #[test]
    fn the_host_platform_is_chosen_from_an_index() {
        let host = PlatformSpec::host();
        let idx = index(&["linux/arm/v7", &host.to_string(), "unknown/unknown"]);
        let d = select_platform(&idx, &host, "x").unwrap();
        assert_eq!(d.digest().to_string(), format!("sha256:{:064x}", 1));
    }

    #[test]
    fn an_index_without_this_platform_lists_what_it_has() {
        let want = PlatformSpec::parse("linux/amd64").unwrap();
        let idx = index(&["linux/arm64/v8", "linux/arm/v7", "unknown/unknown"]);
        let e = select_platform(&idx, &want, "example.com/a:b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no manifest for linux/amd64 in example.com/a:b; available: linux/arm64/v8, linux/arm/v7"
        );
    }

    #[test]
    fn arm_variants() {
        let want = PlatformSpec::parse("linux/arm64/v8").unwrap();
        let idx = index(&["linux/arm64"]);
        assert!(select_platform(&idx, &want, "x").is_ok());
        let want = PlatformSpec::parse("linux/arm/v7").unwrap();
        let idx = index(&["linux/arm/v6", "linux/arm/v7"]);
        let d = select_platform(&idx, &want, "x").unwrap();
        assert_eq!(d.digest().to_string(), format!("sha256:{:064x}", 1));
    }

    #[test]
    fn manifests_are_told_apart_from_indexes() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(m, "", "d").unwrap(),
            Parsed::Manifest(_)
        ));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_manifest(i, "", "d").unwrap(),
            Parsed::Index(_)
        ));
        let s1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(
            parse_manifest(s1, "", "d")
                .unwrap_err()
                .to_string()
                .contains("does not support")
        );
        assert!(
            parse_manifest(b"nope", "", "d")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
