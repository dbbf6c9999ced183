//! Image builds as Docker's classic builder runs them. The context is
//! unpacked to a directory of the build's own; the Dockerfile is parsed
//! (the `dockerfile` crate) and run a step at a time: every `RUN` is a real
//! container of this engine (started through lifecycled, its output
//! streamed to the client), `COPY`/`ADD`/`WORKDIR` write into a container's
//! snapshot through lifecycled, and each step's result is committed there
//! as an image whose parent is the step before. A step whose parent and
//! inputs were built before is taken from the cache (see `cache`).

pub mod cache;
pub mod context;
pub mod copy;
pub mod options;
mod progress;
pub mod remote;
mod run;
mod stage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use berth_proto::lifecycle::v1 as api;
use serde_json::{Value, json};

pub use options::Options;
pub use progress::Progress;

use crate::daemon::Daemon;
use crate::daemon::images::familiar;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Options(String),
    #[error("{0}")]
    Context(String),
    #[error("{0}")]
    Parse(String),
    /// A step failed; the message is the client's.
    #[error("{0}")]
    Step(String),
    /// A RUN whose command failed: Docker's message and its exit status.
    #[error("The command '{cmd}' returned a non-zero code: {code}")]
    Command { cmd: String, code: i32 },
    #[error("the client went away: build cancelled")]
    Cancelled,
    #[error("{0}")]
    Internal(String),
    /// A remote context's failure, with the status dockerd answers it.
    #[error("{1}")]
    Remote(u16, String),
}

impl From<crate::error::ApiError> for BuildError {
    fn from(e: crate::error::ApiError) -> Self {
        BuildError::Step(e.message)
    }
}

impl From<tonic::Status> for BuildError {
    fn from(s: tonic::Status) -> Self {
        BuildError::Step(s.message().to_string())
    }
}

impl BuildError {
    /// The code of Docker's errorDetail: a failed command's exit status;
    /// dockerd gives other failures none (the client exits 1).
    pub fn code(&self) -> Option<i32> {
        match self {
            BuildError::Command { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// An image a step starts from or made.
#[derive(Debug, Clone, Default)]
pub struct ImageRef {
    /// lifecycled's name for it; empty for `scratch` before its first layer.
    pub name: String,
    /// sha256:… of its config; empty for `scratch`.
    pub id: String,
    /// The whole OCI image config.
    pub config: Value,
}

impl ImageRef {
    fn scratch() -> ImageRef {
        ImageRef {
            name: String::new(),
            id: String::new(),
            config: json!({
                "architecture": crate::daemon::images::host_architecture(),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
            }),
        }
    }

    pub fn short(&self) -> &str {
        let id = self.id.trim_start_matches("sha256:");
        id.get(..12).unwrap_or(id)
    }
}

/// An image given with `--cache-from`: its history and layers, to find
/// in it the result of a step this build has not made before.
struct CacheSource {
    name: String,
    history: Vec<(String, bool)>,
    diff_ids: Vec<String>,
}

/// An image's history as (created_by, empty_layer), and its layers.
fn history_of(config: &Value) -> (Vec<(String, bool)>, Vec<String>) {
    let history = config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or("").to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(String::from))
        .collect();
    (history, diff_ids)
}

/// The Dockerfile, found in the context and taken out of it when the
/// .dockerignore excludes it (as dockerd does), parsed.
fn read_dockerfile(
    tree: &mut context::Tree,
    name: &str,
) -> Result<dockerfile::Dockerfile, BuildError> {
    let rel = context::inside(name)?;
    let text = tree.read_all(&rel).ok_or_else(|| {
        BuildError::Context(format!("Cannot locate specified Dockerfile: {name}"))
    })?;
    if let Some(ignore_text) = tree.read_all(".dockerignore") {
        let patterns = dockerignore::Patterns::parse(&String::from_utf8_lossy(&ignore_text))
            .map_err(|e| BuildError::Context(e.to_string()))?;
        if patterns.excludes(&rel) {
            tree.remove(&rel);
        }
        if patterns.excludes(".dockerignore") {
            tree.remove(".dockerignore");
        }
    }
    // dockerd tells an empty file from one with nothing but comments.
    if text.is_empty() {
        return Err(BuildError::Parse(format!(
            "the Dockerfile ({name}) cannot be empty"
        )));
    }
    dockerfile::parse(&String::from_utf8_lossy(&text)).map_err(|e| BuildError::Parse(e.to_string()))
}

/// Where a build keeps its files (its context, files copied out of other
/// stages), removed with it.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing build directory {}: {e}", self.0.display());
        }
    }
}

/// One build in progress.
pub struct Builder {
    d: Arc<Daemon>,
    opts: Options,
    out: Progress,
    cache: cache::Cache,
    owner: Option<String>,
    id: String,
    work: PathBuf,
    /// The context, as received.
    ctx: Arc<context::Tree>,
    escape: char,
    step: usize,
    total: usize,
    /// Build arguments some ARG declared (the rest are reported unused).
    consumed: BTreeSet<String>,
    /// Global ARGs (before the first FROM) as they stand.
    global_args: BTreeMap<String, Option<String>>,
    /// Stage results by index.
    stages: HashMap<usize, ImageRef>,
    /// lifecycled containers made for COPY and friends, removed at the end.
    scratch: Vec<String>,
    /// Engine containers of RUN steps still to remove.
    intermediate: Vec<String>,
    /// RUN steps' commands by the history line they make (the line joins
    /// them with spaces and cannot be split back).
    run_cmds: HashMap<String, Vec<String>>,
    copies_from: usize,
    sources: Vec<CacheSource>,
    /// With --cache-from: the images given and their ancestors, the only
    /// local cache results a step may take (as dockerd's image cache).
    cache_from_ids: Option<std::collections::HashSet<String>>,
}

/// The command of a step that runs nothing, as the classic builder writes
/// it into the step's container config: `/bin/sh -c #(nop)  X` is the shell,
/// "#(nop) " and X; `/bin/sh -c #(nop) X` (WORKDIR, COPY) the shell and one
/// comment. The shell is the config's (SHELL), else `/bin/sh -c`.
fn nop_cmd(created_by: &str, cfg: &Value) -> Vec<String> {
    let shell = shell_of(cfg);
    let prefix = shell.join(" ");
    let rest = created_by
        .strip_prefix(prefix.as_str())
        .and_then(|r| r.strip_prefix(' '));
    if let Some(comment) = rest.and_then(|r| r.strip_prefix("#(nop)  ")) {
        [&shell[..], &["#(nop) ".to_string(), comment.to_string()]].concat()
    } else if let Some(rest) = rest {
        [&shell[..], &[rest.to_string()]].concat()
    } else if created_by.is_empty() {
        Vec::new()
    } else {
        vec![created_by.to_string()]
    }
}

/// The shell a config's steps run with: its SHELL, else `/bin/sh -c`.
fn shell_of(cfg: &Value) -> Vec<String> {
    match cfg["Shell"].as_array() {
        Some(s) if !s.is_empty() => s
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    }
}

/// The labels that mark a build's own objects, so that what a crash left
/// can be found and removed at the next start.
pub const BUILD_LABEL: &str = "berth.build";
/// Labels of a step's image: its parent, and that it is a build step.
pub const PARENT_LABEL: &str = "berth.parent";
pub const STEP_LABEL: &str = "berth.build.step";

impl Builder {
    /// Runs a whole build from the request body's context; the image id.
    pub async fn run(
        d: Arc<Daemon>,
        opts: Options,
        body: axum::body::Body,
        out: Progress,
        owner: Option<String>,
    ) -> Result<String, BuildError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let work = d.cfg.exec_root.join("build").join(&id);
        std::fs::create_dir_all(&work)
            .map_err(|e| BuildError::Internal(format!("creating {}: {e}", work.display())))?;
        let _work = WorkDir(work.clone());
        let t = std::time::Instant::now();
        let (mut tree, size) = match &opts.remote {
            // The body is not read: dockerd builds what the remote names.
            Some(remote) => remote::context(remote, &work, &opts.dockerfile, &out).await?,
            None => context::receive(body, &work).await?,
        };
        tracing::debug!("build {id}: context of {size} bytes in {:?}", t.elapsed());
        let dockerfile = read_dockerfile(&mut tree, &opts.dockerfile)?;
        let ctx = Arc::new(tree);
        let cache = cache::Cache::open(&d.cfg.data_root)
            .map_err(|e| BuildError::Internal(format!("the build cache: {e}")))?;
        let mut b = Builder {
            d,
            opts,
            out,
            cache,
            owner,
            id,
            work,
            ctx,
            escape: '\\',
            step: 0,
            total: 0,
            consumed: BTreeSet::new(),
            global_args: BTreeMap::new(),
            stages: HashMap::new(),
            scratch: Vec::new(),
            intermediate: Vec::new(),
            run_cmds: HashMap::new(),
            copies_from: 0,
            sources: Vec::new(),
            cache_from_ids: None,
        };
        let result = b.build(dockerfile).await;
        b.clean_up().await;
        result
    }

    async fn clean_up(&mut self) {
        for id in std::mem::take(&mut self.intermediate) {
            if let Ok(e) = self.d.find(&id)
                && let Err(err) = self.d.remove(&e, true, true).await
            {
                tracing::warn!("removing build container {id}: {}", err.message);
            }
        }
        for id in std::mem::take(&mut self.scratch) {
            let _ = self
                .d
                .lc
                .containers()
                .delete(self.d.lc.req(api::ContainerRequest { id }))
                .await;
        }
    }

    async fn build(&mut self, df: dockerfile::Dockerfile) -> Result<String, BuildError> {
        self.escape = df.escape;
        for w in &df.warnings {
            self.out.stream(&format!("[WARNING]: {w}\n")).await;
        }
        if let Some(s) = &df.syntax {
            self.out
                .stream(&format!(
                    "[WARNING]: the syntax directive ({s}) is ignored by the classic builder\n"
                ))
                .await;
        }
        if !self.opts.cache_from.is_empty() {
            self.cache_from_ids = Some(std::collections::HashSet::new());
        }
        for name in self.opts.cache_from.clone() {
            match self.d.find_image(&name).await {
                Ok(found) => {
                    self.note_ancestry(&found.id).await;
                    let (history, diff_ids) = history_of(&found.config);
                    self.sources.push(CacheSource {
                        name: found.name,
                        history,
                        diff_ids,
                    });
                }
                Err(_) => {
                    self.out
                        .stream(&format!(
                            "[WARNING]: cache-from image {name} is not here: pull it first to use it\n"
                        ))
                        .await;
                }
            }
        }
        let target = match &self.opts.target {
            Some(t) => df.stage_index(t).ok_or_else(|| {
                BuildError::Step(format!("failed to reach build target {t} in Dockerfile"))
            })?,
            None => df.stages.len().saturating_sub(1),
        };
        // Global ARGs first: they name the images of FROM lines; each
        // default sees the ones declared before it.
        for a in &df.global_args {
            let known = self.global_args.clone();
            let scope = move |k: &str| known.get(k).cloned().flatten();
            let v = self.arg_value(a, &scope)?;
            self.global_args.insert(a.name.clone(), v);
        }
        let needed = stage::needed(&df, target, &|w| self.expand_global(w))?;
        let label_step = usize::from(!self.opts.labels.is_empty());
        self.total = df.global_arg_instructions.len()
            + needed
                .iter()
                .map(|&i| df.stages[i].instructions.len() + 1)
                .sum::<usize>()
            + label_step;
        for ins in &df.global_arg_instructions {
            self.step += 1;
            self.step_line(&ins.original).await?;
        }
        let mut last = ImageRef::scratch();
        let mut told = String::new();
        for &i in &needed {
            last = self.run_stage(&df, i).await?;
            self.stages.insert(i, last.clone());
            // Each stage's image as it ends, as dockerd's builder tells
            // them (clients take the last for the build's).
            if !last.id.is_empty() {
                self.out.aux(&last.id).await;
                told = last.id.clone();
            }
        }
        if !self.opts.labels.is_empty() {
            self.step += 1;
            let text = format!(
                "LABEL {}",
                self.opts
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            self.step_line(&text).await?;
            let mut cfg = last.config["config"].clone();
            for (k, v) in &self.opts.labels {
                cfg["Labels"][k] = json!(v);
            }
            let created_by = format!("{} #(nop)  {text}", shell_of(&cfg).join(" "));
            last = self.derive(&last, cfg, &created_by, None).await?;
            self.out.stream(&format!(" ---> {}\n", last.short())).await;
        }
        if last.name.is_empty() {
            // FROM scratch and nothing else: an image of no layers.
            last = self
                .derive(&last, last.config["config"].clone(), "", None)
                .await?;
        }
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| {
                !self.consumed.contains(*k) && !stage::PREDEFINED_ARGS.contains(&k.as_str())
            })
            .collect();
        if !unused.is_empty() {
            self.out
                .stream(&format!(
                    "[Warning] One or more build-args [{}] were not consumed\n",
                    unused
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
                .await;
        }
        if told != last.id {
            self.out.aux(&last.id).await;
        }
        self.out
            .stream(&format!("Successfully built {}\n", last.short()))
            .await;
        for t in self.opts.tags.clone() {
            self.d
                .lc
                .images()
                .tag(self.d.lc.req(api::TagImageRequest {
                    source: last.name.clone(),
                    target: t.clone(),
                }))
                .await?;
            self.d.events.publish(
                "image",
                "tag",
                &last.id,
                BTreeMap::from([("name".to_string(), familiar(&t))]),
            );
            self.out
                .stream(&format!("Successfully tagged {}\n", familiar(&t)))
                .await;
        }
        self.out.built(&last.id).await;
        Ok(last.id)
    }

    /// "Step n/N : …", and the end of the build if the client left.
    async fn step_line(&mut self, text: &str) -> Result<(), BuildError> {
        if self.out.closed() {
            return Err(BuildError::Cancelled);
        }
        self.out
            .stream(&format!("Step {}/{} : {text}", self.step, self.total))
            .await;
        // Its end of line comes apart, as dockerd sends it.
        self.out.stream("\n").await;
        Ok(())
    }

    /// A global ARG's expansion for FROM lines.
    fn expand_global(&self, word: &str) -> Result<String, BuildError> {
        let lookup = |k: &str| -> Option<String> { self.global_args.get(k).cloned().flatten() };
        dockerfile::expand(word, &lookup, self.escape).map_err(|e| BuildError::Parse(e.to_string()))
    }

    /// What an ARG is worth: the build argument given for it, else its
    /// default (expanded with what is in scope).
    fn arg_value(
        &mut self,
        a: &dockerfile::ArgDecl,
        scope: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, BuildError> {
        if let Some(given) = self.opts.build_args.get(&a.name) {
            self.consumed.insert(a.name.clone());
            if given.is_some() {
                return Ok(given.clone());
            }
        }
        match &a.default {
            Some(d) => Ok(Some(
                dockerfile::expand(d, scope, self.escape)
                    .map_err(|e| BuildError::Parse(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// A new image: `parent`'s layers (plus the changes of `container`
    /// when there is one) and `cfg` as its config.
    async fn derive(
        &self,
        parent: &ImageRef,
        cfg: Value,
        created_by: &str,
        container: Option<&str>,
    ) -> Result<ImageRef, BuildError> {
        self.commit(parent, cfg, created_by, container, None).await
    }

    /// `derive`, or with another image's layer as the new one.
    async fn commit(
        &self,
        parent: &ImageRef,
        cfg: Value,
        created_by: &str,
        container: Option<&str>,
        layer_of: Option<(&str, u32)>,
    ) -> Result<ImageRef, BuildError> {
        let mut labels = std::collections::HashMap::new();
        labels.insert(STEP_LABEL.to_string(), "1".to_string());
        if !parent.id.is_empty() {
            labels.insert(PARENT_LABEL.to_string(), parent.id.clone());
        }
        let author = parent.config["author"].as_str().unwrap_or("").to_string();
        // Docker's image keeps the config of the step's container: the
        // command it ran (or its "#(nop)" comment) and the image it ran on
        // (docker-compose reads the VOLUMEs it declared from there).
        let mut container_config = cfg.clone();
        if container_config.is_object() {
            container_config["Cmd"] = match self.run_cmds.get(created_by) {
                Some(cmd) => json!(cmd),
                None => json!(nop_cmd(created_by, &cfg)),
            };
            container_config["Image"] = json!(parent.id);
        }
        let image = self
            .d
            .lc
            .images()
            .commit(
                self.d.lc.req(api::CommitRequest {
                    container_id: container.unwrap_or("").to_string(),
                    name: String::new(),
                    config: json!({"config": cfg, "container_config": container_config, "container": container})
                        .to_string()
                        .into_bytes(),
                    comment: String::new(),
                    author,
                    parent: parent.name.clone(),
                    created_by: created_by.to_string(),
                    labels,
                    uncompressed: true,
                    layer_image: layer_of.map(|l| l.0.to_string()).unwrap_or_default(),
                    layer_index: layer_of.map_or(0, |l| l.1),
                    exclude: crate::daemon::files::MOUNT_POINTS
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                }),
            )
            .await?
            .into_inner();
        Ok(ImageRef {
            config: serde_json::from_slice(&image.config).unwrap_or_default(),
            name: image.name,
            id: image.config_digest,
        })
    }

    /// A step's result from this build's cache, else from a --cache-from
    /// image whose history is the parent's and then this step: the new
    /// image gets that image's layer and `cfg`, as the step would make.
    async fn reuse(
        &self,
        key: &str,
        parent: &ImageRef,
        created_by: &str,
        cfg: &Value,
    ) -> Result<Option<ImageRef>, BuildError> {
        if let Some(hit) = self.cached(key, parent).await {
            return Ok(Some(hit));
        }
        if self.opts.no_cache || self.sources.is_empty() || parent.name.is_empty() {
            return Ok(None);
        }
        let (ph, pl) = history_of(&parent.config);
        for s in &self.sources {
            let n = ph.len();
            let matches = s.history.len() > n
                && s.history[..n] == ph[..]
                && s.diff_ids.starts_with(&pl)
                && s.history[n].0 == created_by;
            if !matches {
                continue;
            }
            let layer = if s.history[n].1 {
                None
            } else if s.diff_ids.len() > pl.len() {
                u32::try_from(pl.len()).ok().map(|i| (s.name.as_str(), i))
            } else {
                continue;
            };
            let made = self
                .commit(parent, cfg.clone(), created_by, None, layer)
                .await?;
            self.remember(key, parent, &made, created_by);
            return Ok(Some(made));
        }
        Ok(None)
    }

    /// The cached result of a step, if its image is still there.
    async fn cached(&self, key: &str, parent: &ImageRef) -> Option<ImageRef> {
        if self.opts.no_cache {
            return None;
        }
        let e = self.cache.get(key)?;
        if e.parent != parent.id {
            return None;
        }
        if let Some(allowed) = &self.cache_from_ids
            && !allowed.contains(&e.id)
        {
            return None;
        }
        match self
            .d
            .lc
            .images()
            .get(self.d.lc.req(api::ImageRequest {
                name: e.image.clone(),
            }))
            .await
        {
            Ok(i) => {
                let i = i.into_inner();
                Some(ImageRef {
                    config: serde_json::from_slice(&i.config).unwrap_or_default(),
                    name: i.name,
                    id: i.config_digest,
                })
            }
            Err(_) => {
                self.cache.remove(key);
                None
            }
        }
    }

    /// Adds `id` and the images it was built from (their parent labels)
    /// to the ids --cache-from allows.
    async fn note_ancestry(&mut self, id: &str) {
        let images = match self
            .d
            .lc
            .images()
            .list(self.d.lc.req(api::ListImagesRequest::default()))
            .await
        {
            Ok(r) => r.into_inner().images,
            Err(_) => Vec::new(),
        };
        let parent_of: std::collections::HashMap<String, String> = images
            .into_iter()
            .filter_map(|i| Some((i.config_digest, i.labels.get(PARENT_LABEL)?.clone())))
            .collect();
        let Some(allowed) = self.cache_from_ids.as_mut() else {
            return;
        };
        let mut at = Some(id.to_string());
        while let Some(i) = at {
            if !allowed.insert(i.clone()) {
                break;
            }
            at = parent_of.get(&i).cloned();
        }
    }

    fn remember(&self, key: &str, parent: &ImageRef, made: &ImageRef, created_by: &str) {
        let e = cache::Entry {
            image: made.name.clone(),
            id: made.id.clone(),
            parent: parent.id.clone(),
            created_by: created_by.to_string(),
            created: std::time::SystemTime::now(),
        };
        if let Err(err) = self.cache.put(key, &e) {
            tracing::warn!("recording build step {}: {err}", made.id);
        }
    }

    /// A container of lifecycled's own for a step that writes files (no
    /// process ever runs in it), from `image`.
    async fn scratch_container(&mut self, image: &ImageRef) -> Result<String, BuildError> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let spec = json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
        });
        let mut labels = std::collections::HashMap::new();
        labels.insert(BUILD_LABEL.to_string(), self.id.clone());
        self.d
            .lc
            .containers()
            .create(self.d.lc.req(api::CreateContainerRequest {
                container: Some(api::Container {
                    id: id.clone(),
                    labels,
                    image: image.name.clone(),
                    runtime: String::new(),
                    spec: spec.to_string().into_bytes(),
                    rootfs: Vec::new(),
                    snapshot_key: id.clone(),
                    created_at: None,
                    updated_at: None,
                }),
            }))
            .await?;
        self.scratch.push(id.clone());
        Ok(id)
    }

    async fn drop_scratch(&mut self, id: &str) {
        self.scratch.retain(|s| s != id);
        let _ = self
            .d
            .lc
            .containers()
            .delete(self.d.lc.req(api::ContainerRequest { id: id.into() }))
            .await;
    }
}

/// Whether a cache entry is one a `builder prune` filter picks, with the
/// fields [`usage`] shows it with (`until`: made before that time). No
/// entry has labels: a `label` filter picks none, a `label!` one all.
pub fn prune_picks(
    f: &std::collections::BTreeMap<String, Vec<String>>,
    until: Option<std::time::SystemTime>,
    key: &str,
    e: &cache::Entry,
) -> bool {
    let all = |k: &str, ok: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|v| v.iter().all(|x| ok(x)));
    let flag = |k: &str, value: bool| {
        f.get(k).is_none_or(|v| {
            v.iter()
                .all(|x| (x.is_empty() || x == "true" || x == "1") == value)
        })
    };
    until.is_none_or(|u| e.created < u)
        && all("id", &|x| key.starts_with(x))
        && all("parent", &|x| e.parent == x)
        && all("type", &|x| x == "regular")
        && all("description", &|x| e.created_by == x)
        && flag("inuse", false)
        && flag("shared", true)
        && flag("private", false)
        && f.get("label").is_none_or(Vec::is_empty)
}

/// `builder prune`: the cache's entries, and the step images nothing else
/// keeps (a container's image, a tag); their space is given back by the
/// content store's garbage collection.
pub async fn prune(
    d: &Arc<Daemon>,
    f: &std::collections::BTreeMap<String, Vec<String>>,
    until: Option<std::time::SystemTime>,
) -> crate::error::Result<(Vec<String>, i64)> {
    let cache = cache::Cache::open(&d.cfg.data_root)
        .map_err(|e| crate::error::ApiError::internal(format!("the build cache: {e}")))?;
    let mut used = BTreeSet::new();
    for e in d.all() {
        used.insert(e.c.lock().await.image_id.clone());
    }
    let list =
        d.lc.images()
            .list(d.lc.req(api::ListImagesRequest::default()))
            .await?
            .into_inner()
            .images;
    let mut deleted = Vec::new();
    let mut reclaimed = 0i64;
    // The step images entries still kept point at stay.
    let mut kept = BTreeSet::new();
    for (key, e) in cache.all() {
        if prune_picks(f, until, &key, &e) {
            cache.remove(&key);
            deleted.push(key);
        } else {
            kept.insert(e.image);
        }
    }
    for i in list {
        let step = i.labels.get(STEP_LABEL).is_some_and(|v| v == "1");
        if !step
            || !i.name.contains('@')
            || used.contains(&i.config_digest)
            || kept.contains(&i.name)
        {
            continue;
        }
        if d.lc
            .images()
            .delete(d.lc.req(api::ImageRequest {
                name: i.name.clone(),
            }))
            .await
            .is_ok()
        {
            reclaimed = reclaimed.saturating_add(i.size);
        }
    }
    if let Err(e) = d.lc.content_gc().await {
        tracing::warn!(
            "collecting unused content after builder prune: {}",
            e.message()
        );
    }
    Ok((deleted, reclaimed))
}

/// The build cache as `system df` shows it.
pub async fn usage(d: &Arc<Daemon>) -> Vec<Value> {
    let Ok(cache) = cache::Cache::open(&d.cfg.data_root) else {
        return Vec::new();
    };
    cache
        .all()
        .into_iter()
        .map(|(key, e)| {
            let at = humantime::format_rfc3339_seconds(e.created).to_string();
            json!({
                "ID": key.get(..25).unwrap_or(&key),
                "Parent": e.parent,
                "Parents": [e.parent],
                "Type": "regular",
                "Description": e.created_by,
                "InUse": false,
                "Shared": true,
                "Size": 0,
                "CreatedAt": at,
                "LastUsedAt": at,
                "UsageCount": 1,
            })
        })
        .collect()
}

/// What builds a crash interrupted left: their RUN containers, the
/// containers lifecycled made for their COPY steps, their directories.
/// Builds do not outlive the engine, so at its start every such thing is
/// an orphan.
pub async fn remove_orphans(d: &Arc<Daemon>) {
    for e in d.all() {
        let orphan = e.c.lock().await.config.labels.contains_key(BUILD_LABEL);
        if orphan {
            tracing::info!("removing {}, left by an interrupted build", e.id);
            // A start the killed engine had under way may still be making
            // the task in lifecycled, which refuses its removal meanwhile:
            // tried again until it is done, or the container stays Dead.
            if let Err(err) = d.remove(&e, true, true).await {
                tracing::debug!("removing {}: {}", e.id, err.message);
                d.remove_eventually(e, true);
            }
        }
    }
    if let Ok(list) =
        d.lc.containers()
            .list(d.lc.req(api::ListContainersRequest::default()))
            .await
    {
        for c in list.into_inner().containers {
            if c.labels.contains_key(BUILD_LABEL) {
                let _ =
                    d.lc.containers()
                        .delete(d.lc.req(api::ContainerRequest { id: c.id }))
                        .await;
            }
        }
    }
    let _ = std::fs::remove_dir_all(d.cfg.exec_root.join("build"));
}

#[cfg(test)]
mod tests {
    #[test]
    fn builder_prune_filters_pick_entries_as_usage_shows_them() {
        use std::time::{Duration, SystemTime};
        let now = SystemTime::now();
        let e = super::cache::Entry {
            image: "img".into(),
            id: "sha256:1".into(),
            parent: "sha256:0".into(),
            created_by: "/bin/sh -c true".into(),
            created: now - Duration::from_secs(3600),
        };
        let f = |pairs: &[(&str, &str)]| {
            let mut m = std::collections::BTreeMap::<String, Vec<String>>::new();
            for (k, v) in pairs {
                m.entry(k.to_string()).or_default().push(v.to_string());
            }
            m
        };
        let picks =
            |pairs: &[(&str, &str)], until| super::prune_picks(&f(pairs), until, "abc123", &e);
        assert!(picks(&[], None));
        assert!(picks(&[], Some(now)));
        assert!(!picks(&[], Some(now - Duration::from_secs(7200))));
        assert!(picks(&[("id", "abc")], None));
        assert!(!picks(&[("id", "abd")], None));
        assert!(picks(&[("parent", "sha256:0")], None));
        assert!(!picks(&[("type", "frontend")], None));
        assert!(!picks(&[("inuse", "")], None));
        assert!(picks(&[("shared", "true")], None));
        assert!(!picks(&[("private", "true")], None));
    }

    #[test]
    fn a_nop_step_reads_back_as_the_classic_builders_command() {
        let plain = serde_json::json!({});
        assert_eq!(
            super::nop_cmd("/bin/sh -c #(nop)  VOLUME [/data]", &plain),
            ["/bin/sh", "-c", "#(nop) ", "VOLUME [/data]"]
        );
        assert_eq!(
            super::nop_cmd("/bin/sh -c #(nop) WORKDIR /w", &plain).join(" "),
            "/bin/sh -c #(nop) WORKDIR /w"
        );
        assert!(super::nop_cmd("", &plain).is_empty());
        // After SHELL, the steps' comments follow the shell.
        let bash = serde_json::json!({"Shell": ["/bin/bash", "-eo", "pipefail", "-c"]});
        assert_eq!(
            super::nop_cmd("/bin/bash -eo pipefail -c #(nop)  CMD [\"x\"]", &bash),
            [
                "/bin/bash",
                "-eo",
                "pipefail",
                "-c",
                "#(nop) ",
                "CMD [\"x\"]"
            ]
        );
    }
}
