//! One stage of a build, an instruction at a time: FROM, the config
//! instructions (a new image that shares its parent's layers), COPY, ADD
//! and WORKDIR (a layer written through lifecycled), RUN (see `run`).

use std::collections::BTreeMap;

use berth_proto::lifecycle::v1 as api;
use dockerfile::{CommandForm, Dockerfile, Instr, Kind};
use serde_json::{Value, json};

use std::sync::Arc;

use super::context::Tree;
use super::{BuildError, Builder, ImageRef, copy};
use crate::daemon::images::normalize;

/// The ARGs every build knows without a declaration (and keeps out of the
/// image's history), as Docker's.
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The stages the target needs (through FROM <stage> and COPY --from), in
/// Dockerfile order: only those are built.
pub fn needed(
    df: &Dockerfile,
    target: usize,
    expand: &dyn Fn(&str) -> Result<String, BuildError>,
) -> Result<Vec<usize>, BuildError> {
    let mut want = vec![false; df.stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if want[i] {
            continue;
        }
        want[i] = true;
        let s = &df.stages[i];
        let mut refs = Vec::new();
        if let Kind::From { image, .. } = &s.from.kind {
            refs.push(expand(image)?);
        }
        for ins in &s.instructions {
            if let Kind::Copy { from: Some(f), .. } = &ins.kind {
                refs.push(f.clone());
            }
        }
        for r in refs {
            if let Some(j) = df.stage_index(&r).filter(|&j| j < i) {
                todo.push(j);
            }
        }
    }
    Ok((0..df.stages.len()).filter(|&i| want[i]).collect())
}

/// A stage's state between its instructions.
pub(super) struct Stage {
    pub image: ImageRef,
    /// ARGs declared in this stage, with their values.
    pub args: BTreeMap<String, Option<String>>,
    pub shell: Vec<String>,
    /// CMD was set in this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl Stage {
    fn cfg(&self) -> Value {
        let c = &self.image.config["config"];
        if c.is_object() { c.clone() } else { json!({}) }
    }

    /// The image's environment as name → value.
    pub fn env(&self) -> Vec<(String, String)> {
        self.image.config["config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// What a `$name` means in this stage: ENV first, then ARGs.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.env()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.args.get(name).cloned().flatten())
    }

    /// The build arguments a RUN sees (declared, with a value, not hidden
    /// by an ENV of the same name), sorted: Docker puts them in the
    /// history and the cache key as `|N K=V …`.
    pub fn run_args(&self) -> Vec<(String, String)> {
        let env: Vec<String> = self.env().into_iter().map(|(k, _)| k).collect();
        self.args
            .iter()
            .filter(|(k, _)| !env.contains(k))
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }
}

/// A stage whose base has no PATH gets the default one, as dockerd's
/// builder gives it (what the stage commits has it, and its RUNs see it).
fn default_path(config: &mut Value) {
    let Some(obj) = config.as_object_mut() else {
        return;
    };
    let cfg = obj.entry("config").or_insert_with(|| json!({}));
    if cfg.is_null() {
        *cfg = json!({});
    }
    let Some(cfg) = cfg.as_object_mut() else {
        return;
    };
    let env = cfg.entry("Env").or_insert_with(|| json!([]));
    if env.is_null() {
        *env = json!([]);
    }
    let Some(env) = env.as_array_mut() else {
        return;
    };
    let has_path = env
        .iter()
        .filter_map(|e| e.as_str())
        .any(|e| e.split_once('=').map_or(e, |(k, _)| k) == "PATH");
    if !has_path {
        env.push(json!(format!("PATH={}", specgen::defaults::DEFAULT_PATH)));
    }
}

/// A HEALTHCHECK in history as dockerd writes it, Go's %q of its config
/// (`&{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x00'}`: test, interval,
/// timeout, start period, retries).
fn healthcheck_shown(h: &Value) -> String {
    let test: Vec<String> = h["Test"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    let d = |k: &str| {
        format!(
            "{:?}",
            dockerfile::format_go_duration(h[k].as_i64().unwrap_or(0))
        )
    };
    format!(
        "&{{{} {} {} {} {}}}",
        quoted_list(&test),
        d("Interval"),
        d("Timeout"),
        d("StartPeriod"),
        go_quoted_rune(h["Retries"].as_i64().unwrap_or(0))
    )
}

/// Go's %q of an integer: the rune it is, quoted ('\x00' for 0).
fn go_quoted_rune(n: i64) -> String {
    let escaped = match n {
        7 => "\\a".to_string(),
        8 => "\\b".to_string(),
        9 => "\\t".to_string(),
        10 => "\\n".to_string(),
        11 => "\\v".to_string(),
        12 => "\\f".to_string(),
        13 => "\\r".to_string(),
        39 => "\\'".to_string(),
        92 => "\\\\".to_string(),
        0..=31 | 127 => format!("\\x{n:02x}"),
        _ => match u32::try_from(n).ok().and_then(char::from_u32) {
            Some(c) if !c.is_control() => c.to_string(),
            _ => format!("\\u{:04x}", n),
        },
    };
    format!("'{escaped}'")
}

/// Go's %q of a string list, as Docker writes CMD and friends in history.
fn quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

impl Builder {
    fn expand(&self, st: &Stage, word: &str) -> Result<String, BuildError> {
        let lookup = |k: &str| st.lookup(k);
        dockerfile::expand(word, &lookup, self.escape).map_err(|e| BuildError::Parse(e.to_string()))
    }

    /// The image a FROM names: a stage built before, `scratch`, or an
    /// image here (pulled when missing, or always with `pull`).
    async fn base(&mut self, df: &Dockerfile, image: &str) -> Result<ImageRef, BuildError> {
        if image.eq_ignore_ascii_case("scratch") {
            return Ok(ImageRef::scratch());
        }
        if let Some(i) = df.stage_index(image)
            && let Some(done) = self.stages.get(&i)
        {
            return Ok(done.clone());
        }
        self.image(image).await
    }

    /// An image by name or id, pulled when it is not here.
    pub(super) async fn image(&mut self, image: &str) -> Result<ImageRef, BuildError> {
        if !self.opts.pull
            && let Ok(found) = self.d.find_image(image).await
        {
            return Ok(ImageRef {
                name: found.name,
                id: found.id,
                config: found.config,
            });
        }
        let full = normalize(image)
            .map_err(|e| BuildError::Step(format!("invalid reference format: {e}")))?;
        self.pull(&full).await?;
        let found = self.d.find_image(&full).await.map_err(BuildError::from)?;
        Ok(ImageRef {
            name: found.name,
            id: found.id,
            config: found.config,
        })
    }

    async fn pull(&mut self, full: &str) -> Result<(), BuildError> {
        let host = crate::api::images::registry_host(full).to_string();
        let auth = self.opts.auths.get(&host).cloned();
        crate::api::images::pull_shown(&self.d, &self.out, full, auth)
            .await
            .map_err(|e| pull_error(full, &e))
    }

    /// Runs one stage; its image.
    pub(super) async fn run_stage(
        &mut self,
        df: &Dockerfile,
        index: usize,
    ) -> Result<ImageRef, BuildError> {
        let s = &df.stages[index];
        let Kind::From { image, .. } = &s.from.kind else {
            return Err(BuildError::Internal("a stage without FROM".into()));
        };
        self.step += 1;
        self.step_line(&s.from.original).await?;
        let name = self.expand_global(image)?;
        let base = self.base(df, &name).await?;
        // scratch has no id: dockerd shows the arrow bare.
        self.out.stream(&format!(" ---> {}\n", base.short())).await;
        let mut st = Stage {
            image: base,
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
        };
        if let Some(shell) = st.image.config["config"]["Shell"].as_array() {
            let shell: Vec<String> = shell
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            if !shell.is_empty() {
                st.shell = shell;
            }
        }
        default_path(&mut st.image.config);
        self.onbuild_triggers(df, &mut st).await?;
        for ins in &s.instructions {
            self.step += 1;
            self.step_line(&ins.original).await?;
            let t = std::time::Instant::now();
            self.instruction(df, &mut st, ins).await?;
            tracing::debug!("build {}: step {} in {:?}", self.id, self.step, t.elapsed());
            if !st.image.id.is_empty() {
                self.out
                    .stream(&format!(" ---> {}\n", st.image.short()))
                    .await;
            }
        }
        Ok(st.image)
    }

    /// The base image's ONBUILD triggers run first, and are not inherited.
    async fn onbuild_triggers(
        &mut self,
        df: &Dockerfile,
        st: &mut Stage,
    ) -> Result<(), BuildError> {
        let triggers: Vec<String> = st.image.config["config"]["OnBuild"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        if triggers.is_empty() {
            return Ok(());
        }
        let n = triggers.len();
        self.out
            .stream(&format!(
                "# Executing {n} build trigger{}\n",
                if n == 1 { "" } else { "s" }
            ))
            .await;
        let mut cfg = st.cfg();
        cfg["OnBuild"] = Value::Null;
        st.image.config["config"] = cfg;
        for t in triggers {
            let ins = dockerfile::parse_instruction(&t, self.escape)
                .map_err(|e| BuildError::Parse(format!("ONBUILD trigger {t:?}: {e}")))?;
            self.instruction(df, st, &ins).await?;
        }
        Ok(())
    }

    /// A config-only step: the new config as a new image, from the cache
    /// when it was made before. Its history line is the stage's shell and
    /// a "#(nop)" comment, as the classic builder writes it.
    async fn config_step(
        &mut self,
        st: &mut Stage,
        cfg: Value,
        comment: String,
    ) -> Result<(), BuildError> {
        let created_by = format!("{} #(nop)  {comment}", st.shell.join(" "));
        let key = super::cache::key(&[&st.image.id, "config", &created_by, &cfg.to_string()]);
        if let Some(hit) = self.reuse(&key, &st.image, &created_by, &cfg).await? {
            self.out.stream(" ---> Using cache\n").await;
            st.image = hit;
            return Ok(());
        }
        let made = self.derive(&st.image, cfg, &created_by, None).await?;
        self.remember(&key, &st.image, &made, &created_by);
        st.image = made;
        Ok(())
    }

    pub(super) async fn instruction(
        &mut self,
        df: &Dockerfile,
        st: &mut Stage,
        ins: &Instr,
    ) -> Result<(), BuildError> {
        let mut cfg = st.cfg();
        match &ins.kind {
            Kind::From { .. } => {
                return Err(BuildError::Parse(format!(
                    "line {}: FROM inside a stage",
                    ins.line
                )));
            }
            Kind::Arg(decls) => {
                let mut text = Vec::new();
                for a in decls {
                    // A declaration without a value takes the global one.
                    let global = self.global_args.get(&a.name).cloned().flatten();
                    let lookup = |k: &str| st.lookup(k);
                    let v = self.arg_value(a, &lookup)?.or(global);
                    text.push(match &a.default {
                        Some(d) => format!("{}={d}", a.name),
                        None => a.name.clone(),
                    });
                    st.args.insert(a.name.clone(), v);
                }
                self.config_step(st, cfg, format!("ARG {}", text.join(" ")))
                    .await?;
            }
            Kind::Env(pairs) => {
                // Every pair is expanded with the variables as they were
                // before this ENV: `ENV a=1 b=$a` gives b the older a, as
                // Docker's builders do (and document).
                let expanded = pairs
                    .iter()
                    .map(|(k, v)| Ok((self.expand(st, k)?, self.expand(st, v)?)))
                    .collect::<Result<Vec<_>, BuildError>>()?;
                let mut env: Vec<(String, String)> = st.env();
                let mut shown = Vec::new();
                for (k, v) in expanded {
                    shown.push(format!("{k}={v}"));
                    if let Some(e) = env.iter_mut().find(|(ek, _)| *ek == k) {
                        e.1 = v;
                    } else {
                        env.push((k, v));
                    }
                }
                cfg["Env"] = json!(
                    env.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                );
                self.config_step(st, cfg, format!("ENV {}", shown.join(" ")))
                    .await?;
            }
            Kind::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    cfg["Labels"][&k] = json!(v);
                    shown.push(format!("{k}={v}"));
                }
                self.config_step(st, cfg, format!("LABEL {}", shown.join(" ")))
                    .await?;
            }
            Kind::Maintainer(m) => {
                st.image.config["author"] = json!(m);
                self.config_step(st, cfg, format!("MAINTAINER {m}")).await?;
            }
            Kind::Cmd(c) => {
                let list = self.command_list(st, c);
                cfg["Cmd"] = json!(list);
                st.cmd_set = true;
                self.config_step(st, cfg, format!("CMD {}", quoted_list(&list)))
                    .await?;
            }
            Kind::Entrypoint(c) => {
                let list = match c {
                    CommandForm::Shell(s) if s.is_empty() => Vec::new(),
                    c => self.command_list(st, c),
                };
                // An empty one (`ENTRYPOINT []`, or a bare `ENTRYPOINT`)
                // clears it: null, as dockerd writes it.
                cfg["Entrypoint"] = if list.is_empty() {
                    Value::Null
                } else {
                    json!(list)
                };
                if !st.cmd_set {
                    cfg["Cmd"] = Value::Null;
                }
                self.config_step(st, cfg, format!("ENTRYPOINT {}", quoted_list(&list)))
                    .await?;
            }
            Kind::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    let p = self.expand(st, p)?;
                    let specs = crate::api::changes::port_specs(&p)
                        .map_err(|e| BuildError::Step(e.message))?;
                    for spec in specs {
                        cfg["ExposedPorts"][&spec] = json!({});
                    }
                    shown.push(p);
                }
                self.config_step(st, cfg, format!("EXPOSE {}", shown.join(" ")))
                    .await?;
            }
            Kind::Volume(vols) => {
                let mut shown = Vec::new();
                for v in vols {
                    let v = self.expand(st, v)?;
                    if v.trim().is_empty() {
                        return Err(BuildError::Step(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    cfg["Volumes"][&v] = json!({});
                    shown.push(v);
                }
                self.config_step(st, cfg, format!("VOLUME [{}]", shown.join(" ")))
                    .await?;
            }
            Kind::User(u) => {
                let u = self.expand(st, u)?;
                cfg["User"] = json!(u);
                self.config_step(st, cfg, format!("USER {u}")).await?;
            }
            Kind::Stopsignal(s) => {
                let s = self.expand(st, s)?;
                crate::daemon::ops::parse_signal(&s).map_err(|e| BuildError::Step(e.message))?;
                cfg["StopSignal"] = json!(s);
                self.config_step(st, cfg, format!("STOPSIGNAL {s}")).await?;
            }
            Kind::Shell(sh) => {
                if sh.is_empty() {
                    return Err(BuildError::Step(
                        "SHELL requires at least one argument".into(),
                    ));
                }
                st.shell = sh.clone();
                cfg["Shell"] = json!(sh);
                self.config_step(st, cfg, format!("SHELL {}", quoted_list(sh)))
                    .await?;
            }
            Kind::Healthcheck(h) => {
                cfg["Healthcheck"] = crate::api::changes::healthcheck(h.as_ref());
                let shown = healthcheck_shown(&cfg["Healthcheck"]);
                self.config_step(st, cfg, format!("HEALTHCHECK {shown}"))
                    .await?;
            }
            Kind::Onbuild(trigger) => {
                let mut list = cfg["OnBuild"].as_array().cloned().unwrap_or_default();
                list.push(json!(trigger));
                cfg["OnBuild"] = Value::Array(list);
                self.config_step(st, cfg, format!("ONBUILD {trigger}"))
                    .await?;
            }
            Kind::Workdir(w) => {
                let w = self.expand(st, w)?;
                let cur = cfg["WorkingDir"].as_str().unwrap_or("/").to_string();
                let dir = if w.starts_with('/') {
                    crate::daemon::volumes::clean(&w)
                } else {
                    crate::daemon::volumes::clean(&format!("{cur}/{w}"))
                };
                cfg["WorkingDir"] = json!(dir);
                self.workdir_step(st, cfg, &dir).await?;
            }
            Kind::Run { cmd } => self.run_step(st, cmd).await?,
            Kind::Copy {
                from,
                chown,
                chmod,
                srcs,
                dest,
            } => {
                self.copy_step(
                    df,
                    st,
                    "COPY",
                    from.as_deref(),
                    chown.as_deref(),
                    chmod.as_deref(),
                    srcs,
                    dest,
                )
                .await?
            }
            Kind::Add {
                chown,
                chmod,
                srcs,
                dest,
            } => {
                self.copy_step(
                    df,
                    st,
                    "ADD",
                    None,
                    chown.as_deref(),
                    chmod.as_deref(),
                    srcs,
                    dest,
                )
                .await?
            }
        }
        Ok(())
    }

    /// CMD, ENTRYPOINT and RUN as the argument list the image keeps.
    pub(super) fn command_list(&self, st: &Stage, c: &CommandForm) -> Vec<String> {
        match c {
            CommandForm::Exec(v) => v.clone(),
            // A bare `CMD` or `RUN` is the shell alone, as dockerd keeps
            // and runs it ("/bin/sh: -c requires an argument").
            CommandForm::Shell(s) if s.is_empty() => st.shell.clone(),
            CommandForm::Shell(s) => {
                let mut v = st.shell.clone();
                v.push(s.clone());
                v
            }
        }
    }

    /// WORKDIR: the directory is made in the image when it is missing (a
    /// layer of its own), then the config changes.
    async fn workdir_step(
        &mut self,
        st: &mut Stage,
        cfg: Value,
        dir: &str,
    ) -> Result<(), BuildError> {
        let created_by = format!("{} #(nop) WORKDIR {dir}", st.shell.join(" "));
        let key = super::cache::key(&[&st.image.id, "workdir", &created_by, &cfg.to_string()]);
        if let Some(hit) = self.reuse(&key, &st.image, &created_by, &cfg).await? {
            self.out.stream(" ---> Using cache\n").await;
            st.image = hit;
            return Ok(());
        }
        let c = self.scratch_container(&st.image).await?;
        let exists = self
            .d
            .lc
            .snapshots()
            .stat(self.d.lc.req(api::ArchiveRequest {
                key: c.clone(),
                path: format!("{dir}/"),
                ..Default::default()
            }))
            .await
            .is_ok();
        let made = if exists {
            self.drop_scratch(&c).await;
            self.derive(&st.image, cfg, &created_by, None).await?
        } else {
            self.write_tar(&c, dir, |w| tar::Builder::new(w).finish())
                .await?;
            let m = self.derive(&st.image, cfg, &created_by, Some(&c)).await?;
            self.drop_scratch(&c).await;
            m
        };
        self.remember(&key, &st.image, &made, &created_by);
        st.image = made;
        Ok(())
    }

    /// Writes a tar (an empty one makes just the directory) at `dir` in a
    /// scratch container, making the directory when missing.
    async fn write_archive(
        &self,
        container: &str,
        dir: &str,
        mut chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> Result<(), BuildError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<api::WriteArchiveRequest>(8);
        let _ = tx
            .send(api::WriteArchiveRequest {
                kind: Some(api::write_archive_request::Kind::Target(
                    api::ArchiveRequest {
                        key: container.to_string(),
                        path: dir.to_string(),
                        ..Default::default()
                    },
                )),
                no_overwrite_dir_non_dir: false,
                create_path: true,
            })
            .await;
        tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                let m = api::WriteArchiveRequest {
                    kind: Some(api::write_archive_request::Kind::Chunk(chunk)),
                    no_overwrite_dir_non_dir: false,
                    create_path: false,
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        self.d
            .lc
            .snapshots()
            .write_archive(
                self.d
                    .lc
                    .req(tokio_stream::wrappers::ReceiverStream::new(rx)),
            )
            .await?;
        Ok(())
    }

    /// Writes what `make` writes as a tar (an empty one makes just the
    /// directory) at `dir` in a scratch container, streamed: a COPY of a
    /// large context never sits in the engine's memory.
    async fn write_tar<F>(&self, container: &str, dir: &str, make: F) -> Result<(), BuildError>
    where
        F: FnOnce(ChunkWriter) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let writer = tokio::task::spawn_blocking(move || make(ChunkWriter::new(tx)));
        let sent = self.write_archive(container, dir, rx).await;
        let written = writer
            .await
            .map_err(|e| BuildError::Internal(e.to_string()))?;
        written.map_err(|e| BuildError::Step(format!("writing the files: {e}")))?;
        sent
    }

    /// Where `plan.dir` resolves in the scratch container's image (relative
    /// to its root), and the directories on the way: as the image has
    /// them where they exist, root's 0755 where they do not (the last one,
    /// when the plan makes it, comes with the plan's owner).
    async fn layer_path(
        &self,
        container: &str,
        plan: &copy::Plan,
    ) -> Result<(String, Vec<copy::DirEntry>), BuildError> {
        let comps: Vec<&str> = plan.dir.split('/').filter(|c| !c.is_empty()).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut at = String::new();
        let mut above = Vec::new();
        let mut missing = false;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            if !missing {
                let path = format!("{at}/{c}/");
                match self
                    .d
                    .lc
                    .snapshots()
                    .stat(self.d.lc.req(api::ArchiveRequest {
                        key: container.to_string(),
                        path: path.clone(),
                        ..Default::default()
                    }))
                    .await
                {
                    Ok(st) => {
                        let st = st.into_inner();
                        if st.mode & libc::S_IFMT != libc::S_IFDIR {
                            return Err(BuildError::Step(format!(
                                "{path}: not a directory in the image"
                            )));
                        }
                        at = st.resolved.trim_end_matches('/').to_string();
                        above.push(copy::DirEntry {
                            path: at.trim_start_matches('/').to_string(),
                            mode: st.mode & 0o7777,
                            uid: st.uid,
                            gid: st.gid,
                            mtime: st
                                .mtime
                                .map_or(0, |t| u64::try_from(t.seconds).unwrap_or(0)),
                        });
                        continue;
                    }
                    Err(e) if e.code() == tonic::Code::NotFound => missing = true,
                    Err(e) => return Err(e.into()),
                }
            }
            at = format!("{at}/{c}");
            if !(last && plan.make_dir) {
                above.push(copy::DirEntry {
                    path: at.trim_start_matches('/').to_string(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: now,
                });
            }
        }
        Ok((at.trim_start_matches('/').to_string(), above))
    }

    /// A new image of `parent`'s layers and the tar `make` writes (streamed
    /// to lifecycled as it is written), with `cfg` as its config.
    async fn commit_layer<F>(
        &self,
        parent: &ImageRef,
        cfg: Value,
        created_by: &str,
        make: F,
    ) -> Result<ImageRef, BuildError>
    where
        F: FnOnce(ChunkWriter) -> std::io::Result<()> + Send + 'static,
    {
        let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let writer = tokio::task::spawn_blocking(move || make(ChunkWriter::new(chunks_tx)));
        let (tx, rx) = tokio::sync::mpsc::channel::<api::CommitLayerRequest>(8);
        let mut labels = std::collections::HashMap::new();
        labels.insert(super::STEP_LABEL.to_string(), "1".to_string());
        if !parent.id.is_empty() {
            labels.insert(super::PARENT_LABEL.to_string(), parent.id.clone());
        }
        let _ = tx
            .send(api::CommitLayerRequest {
                kind: Some(api::commit_layer_request::Kind::Header(
                    api::CommitRequest {
                        container_id: String::new(),
                        name: String::new(),
                        config: json!({"config": cfg}).to_string().into_bytes(),
                        comment: String::new(),
                        author: parent.config["author"].as_str().unwrap_or("").to_string(),
                        parent: parent.name.clone(),
                        created_by: created_by.to_string(),
                        labels,
                        uncompressed: true,
                        layer_image: String::new(),
                        layer_index: 0,
                        exclude: Vec::new(),
                    },
                )),
            })
            .await;
        tokio::spawn(async move {
            while let Some(c) = chunks.recv().await {
                let m = api::CommitLayerRequest {
                    kind: Some(api::commit_layer_request::Kind::Chunk(c)),
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        let image = self
            .d
            .lc
            .images()
            .commit_layer(
                self.d
                    .lc
                    .req(tokio_stream::wrappers::ReceiverStream::new(rx)),
            )
            .await;
        let written = writer
            .await
            .map_err(|e| BuildError::Internal(e.to_string()))?;
        written.map_err(|e| BuildError::Step(format!("writing the files: {e}")))?;
        let image = image?.into_inner();
        Ok(ImageRef {
            config: serde_json::from_slice(&image.config).unwrap_or_default(),
            name: image.name,
            id: image.config_digest,
        })
    }

    /// `--chown=user:group` as ids, resolved in the image being built.
    async fn owner(&self, container: &str, chown: Option<&str>) -> Result<(u32, u32), BuildError> {
        let Some(spec) = chown.filter(|c| !c.is_empty()) else {
            return Ok((0, 0));
        };
        let (u, g) = spec.split_once(':').unwrap_or((spec, ""));
        let uid = match u.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                crate::daemon::files::resolve_user(&self.d.lc, container, u, &[])
                    .await?
                    .0
            }
        };
        let gid = if g.is_empty() {
            // Docker: a user without a group uses the uid as the gid.
            uid
        } else {
            match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    crate::daemon::files::resolve_user(
                        &self.d.lc,
                        container,
                        &format!("0:{g}"),
                        &[],
                    )
                    .await?
                    .1
                }
            }
        };
        Ok((uid, gid))
    }

    /// The sources of `COPY --from`: the named paths of a stage or image,
    /// copied out into a directory of the build's, as a root to find them in.
    async fn sources_of(
        &mut self,
        df: &Dockerfile,
        from: &str,
        srcs: &[String],
    ) -> Result<Arc<Tree>, BuildError> {
        let image = match from.parse::<usize>().ok().or_else(|| df.stage_index(from)) {
            Some(i) => self.stages.get(&i).cloned().ok_or_else(|| {
                BuildError::Step(format!(
                    "COPY --from={from}: that stage is not built before this one"
                ))
            })?,
            None => self.image(from).await?,
        };
        let c = self.scratch_container(&image).await?;
        let mut tree = Tree::default();
        for s in srcs {
            // What to fetch: the part of the path before any wildcard.
            let fixed: Vec<&str> = s
                .split('/')
                .filter(|p| !p.is_empty())
                .take_while(|p| !p.contains(['*', '?', '[']))
                .collect();
            let path = format!("/{}", fixed.join("/"));
            let parent = path
                .rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            let stream = match self
                .d
                .lc
                .snapshots()
                .read_archive(self.d.lc.req(api::ArchiveRequest {
                    key: c.clone(),
                    path: path.clone(),
                    ..Default::default()
                }))
                .await
            {
                Ok(s) => s.into_inner(),
                Err(e) if e.code() == tonic::Code::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            // The archive streams into the tree's file as it comes.
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            self.copies_from += 1;
            let store = super::context::store_path(&self.work, self.copies_from);
            let add = tokio::task::spawn_blocking(move || {
                let r = tree.add_tar(super::context::ChunkReader::new(rx), &store, &parent);
                (tree, r)
            });
            let mut stream = stream;
            loop {
                match stream.message().await {
                    Ok(Some(chunk)) => {
                        if tx.send(Ok(bytes::Bytes::from(chunk.data))).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e.message().to_string())).await;
                        break;
                    }
                }
            }
            drop(tx);
            let (t, r) = add.await.map_err(|e| BuildError::Internal(e.to_string()))?;
            tree = t;
            r.map_err(|e| BuildError::Step(format!("COPY --from={from}: {e}")))?;
        }
        self.drop_scratch(&c).await;
        Ok(Arc::new(tree))
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_step(
        &mut self,
        df: &Dockerfile,
        st: &mut Stage,
        what: &str,
        from: Option<&str>,
        chown: Option<&str>,
        chmod: Option<&str>,
        srcs: &[String],
        dest: &str,
    ) -> Result<(), BuildError> {
        let srcs: Vec<String> = srcs
            .iter()
            .map(|s| self.expand(st, s))
            .collect::<Result<_, _>>()?;
        let dest = self.expand(st, dest)?;
        let chown = chown.map(|c| self.expand(st, c)).transpose()?;
        let chmod = match chmod {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                BuildError::Step(format!(
                    "invalid chmod parameter {m:?}: an octal mode like 0755"
                ))
            })?),
            None => None,
        };
        let workdir = st.image.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let abs_dest = if dest.starts_with('/') {
            dest.clone()
        } else {
            let trailing = if dest.ends_with('/') || dest == "." {
                "/"
            } else {
                ""
            };
            format!(
                "{}/{}{trailing}",
                workdir.trim_end_matches('/'),
                dest.trim_start_matches("./")
            )
        };
        let is_url = |s: &String| super::remote::is_url(s);
        if what == "COPY" && srcs.iter().any(is_url) {
            return Err(BuildError::Step(
                "COPY failed: source can't be a URL for COPY".into(),
            ));
        }
        let tree = match from {
            Some(f) => self.sources_of(df, f, &srcs).await?,
            None => self.ctx.clone(),
        };
        let c = self.scratch_container(&st.image).await?;
        let stat = self
            .d
            .lc
            .snapshots()
            .stat(self.d.lc.req(api::ArchiveRequest {
                key: c.clone(),
                path: abs_dest.clone(),
                ..Default::default()
            }))
            .await;
        let dest_is_dir = match stat {
            Ok(s) => Some(s.into_inner().mode & libc::S_IFMT == libc::S_IFDIR),
            Err(_) => None,
        };
        let mut srcs = srcs;
        let tree = if srcs.iter().any(is_url) {
            // The context, and what ADD downloads beside it: a URL that
            // names no file is written under the destination's name when
            // that is a file, as dockerd does.
            let to_file = srcs.len() == 1 && !abs_dest.ends_with('/') && dest_is_dir != Some(true);
            let unnamed = to_file
                .then(|| abs_dest.rsplit('/').next().unwrap_or("").to_string())
                .filter(|n| !n.is_empty());
            let mut tree = tree
                .try_clone()
                .map_err(|e| BuildError::Internal(format!("the build context: {e}")))?;
            for s in srcs.iter_mut().filter(|s| is_url(s)) {
                self.copies_from += 1;
                *s = super::remote::add_source(
                    s,
                    unnamed.as_deref(),
                    self.copies_from,
                    &mut tree,
                    &self.work,
                    &self.out,
                )
                .await?;
            }
            Arc::new(tree)
        } else {
            tree
        };
        let mut plan = copy::plan(&tree, &srcs, &abs_dest, dest_is_dir, what == "ADD", what)?;
        plan.owner = self.owner(&c, chown.as_deref()).await?;
        plan.chmod = chmod;
        tracing::debug!(
            "build {}: {what} planned ({} items)",
            self.id,
            plan.items.len()
        );
        let digest = plan.digest(&tree);
        let created_by = format!(
            "{} #(nop) {what} {}:{digest} in {dest} ",
            st.shell.join(" "),
            plan.what
        );
        let key = super::cache::key(&[
            &st.image.id,
            what,
            &created_by,
            &format!("{:?}{:?}", plan.owner, plan.chmod),
        ]);
        let cfg = st.cfg();
        if let Some(hit) = self.reuse(&key, &st.image, &created_by, &cfg).await? {
            self.drop_scratch(&c).await;
            self.out.stream(" ---> Using cache\n").await;
            st.image = hit;
            return Ok(());
        }
        // The files go straight into a layer, no snapshot in between:
        // where the destination resolves in the image, and the directories
        // on the way as the image has them.
        let (dir, above) = self.layer_path(&c, &plan).await?;
        let p3 = plan.clone();
        let t = std::time::Instant::now();
        let made = self
            .commit_layer(&st.image, st.cfg(), &created_by, move |w| {
                p3.write_layer(&tree, &dir, &above, w)
            })
            .await
            .map_err(|e| match e {
                BuildError::Step(m) => BuildError::Step(format!("{what} failed: {m}")),
                other => other,
            })?;
        tracing::debug!("build {}: {what} committed in {:?}", self.id, t.elapsed());
        self.drop_scratch(&c).await;
        self.remember(&key, &st.image, &made, &created_by);
        st.image = made;
        Ok(())
    }
}

/// A pull that failed, as Docker words it for a FROM.
fn pull_error(full: &str, e: &tonic::Status) -> BuildError {
    let fam = crate::daemon::images::familiar(full);
    if e.code() == tonic::Code::NotFound || e.message().contains("not found") {
        BuildError::Step(format!(
            "pull access denied for {fam}, repository does not exist or may require 'docker login': {}",
            e.message()
        ))
    } else {
        BuildError::Step(format!("pulling {fam}: {}", e.message()))
    }
}

/// A blocking writer into a channel of chunks (the tar of a COPY, written
/// by a thread while the engine streams it on).
pub(super) struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    const CHUNK: usize = 256 << 10;

    fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> ChunkWriter {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(Self::CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("lifecycled stopped reading the files"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthcheck_in_history_reads_as_dockerds() {
        let h = json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 0});
        assert_eq!(
            healthcheck_shown(&h),
            r#"&{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x00'}"#
        );
        let none = json!({"Test": ["NONE"]});
        assert_eq!(
            healthcheck_shown(&none),
            r#"&{["NONE"] "0s" "0s" "0s" '\x00'}"#
        );
        assert_eq!(go_quoted_rune(3), r"'\x03'");
        assert_eq!(go_quoted_rune(65), "'A'");
    }

    #[test]
    fn a_stage_without_path_gets_the_default_one() {
        let mut bare = json!({"config": {"Env": ["A=1"]}});
        default_path(&mut bare);
        assert_eq!(
            bare["config"]["Env"],
            json!(["A=1", format!("PATH={}", specgen::defaults::DEFAULT_PATH)])
        );
        let mut set = json!({"config": {"Env": ["PATH=/x"]}});
        default_path(&mut set);
        assert_eq!(set["config"]["Env"], json!(["PATH=/x"]));
        let mut scratch = json!({"config": {}});
        default_path(&mut scratch);
        assert_eq!(scratch["config"]["Env"].as_array().map(Vec::len), Some(1));
        let mut null = json!({"config": null});
        default_path(&mut null);
        assert_eq!(null["config"]["Env"].as_array().map(Vec::len), Some(1));
    }
}
