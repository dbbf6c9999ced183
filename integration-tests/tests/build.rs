//! Image builds through berthd's classic builder, driven by `berth build`,
//! the real docker CLI (legacy builder), docker-py and docker-compose:
//! every instruction checked in the image's config and files, the cache's
//! rules, multi-stage targets, .dockerignore, bad input, and a build cut
//! off by a berthd SIGKILL leaving nothing behind.

use std::path::{Path, PathBuf};

use integration_tests::stack::{Out, Stack, docker_cli};

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

/// A build context of the stack's own, from (path, contents) pairs.
fn context(s: &Stack, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = s.dir.path().join(name);
    for (p, data) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&f, data).expect("writing the context");
    }
    dir
}

fn build(s: &Stack, dir: &Path, args: &[&str]) -> Out {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    let d = dir.to_string_lossy().into_owned();
    a.push(&d);
    s.berth(&a)
}

fn inspect(s: &Stack, image: &str) -> serde_json::Value {
    let out = s.berth(&["image", "inspect", image]).ok().to_string();
    serde_json::from_str::<serde_json::Value>(&out).expect("inspect JSON")[0].clone()
}

fn run(s: &Stack, image: &str, cmd: &[&str]) -> String {
    let mut a = vec!["run", "--rm", "--network", "none", image];
    a.extend_from_slice(cmd);
    s.berth(&a).ok().to_string()
}

/// The steps an output took from the cache.
fn cached(out: &str) -> usize {
    out.matches("Using cache").count()
}

#[test]
fn every_instruction_lands_in_the_image() {
    let s = stack();
    let mut tarball = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    tarball
        .append_data(&mut h, "inside/unpacked.txt", &b"packed"[..])
        .unwrap();
    let tar_bytes = tarball.into_inner().unwrap();
    let dir = context(
        &s,
        "all",
        &[
            (
                "Dockerfile",
                r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE}
LABEL org.example.name="all of it" version=1
ENV GREETING=hello \
    TARGET=world
ENV OLD style value
ARG WHO=builder
RUN echo "$GREETING $TARGET from $WHO" > /greeting && \
    mkdir -p /data
ENV TARGET=moon WAS=${TARGET}
COPY --chown=1000:100 --chmod=600 secret.txt /etc/app/
COPY src/ /app/src/
ADD bundle.tar /opt/
WORKDIR /srv/site
WORKDIR sub
USER 1000
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["true"]
ONBUILD RUN echo child
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]
"#,
            ),
            ("secret.txt", "s3cret\n"),
            ("src/main.c", "int main(void) { return 0; }\n"),
            ("src/lib/util.h", "#define X 1\n"),
        ],
    );
    std::fs::write(dir.join("bundle.tar"), tar_bytes).unwrap();
    let out = build(&s, &dir, &["-t", "all:v1", "--build-arg", "WHO=tests"]);
    let text = out.ok();
    assert!(text.contains("Step 1/22 : ARG BASE=busybox"), "{text}");
    assert!(text.contains("Successfully built "), "{text}");
    assert!(text.contains("Successfully tagged all:v1"), "{text}");
    let i = inspect(&s, "all:v1");
    let c = &i["Config"];
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hello".to_string()), "{env:?}");
    // An ENV's values see the variables as they were before it.
    assert!(env.contains(&"TARGET=moon".to_string()), "{env:?}");
    assert!(env.contains(&"WAS=world".to_string()), "{env:?}");
    assert!(env.contains(&"OLD=style value".to_string()), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("WHO=")),
        "build args stay out: {env:?}"
    );
    assert_eq!(c["Labels"]["org.example.name"], "all of it");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(c["WorkingDir"], "/srv/site/sub");
    assert_eq!(c["User"], "1000");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object() && c["ExposedPorts"]["53/udp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /greeting"]));
    assert!(!i["Parent"].as_str().unwrap_or("").is_empty(), "{i}");
    // The last step's container config, as the classic builder keeps it
    // (docker-compose carries the VOLUMEs it lists over to a recreated
    // container): its comment follows the SHELL.
    let cc = &i["ContainerConfig"];
    assert_eq!(
        cc["Cmd"],
        serde_json::json!(["/bin/sh", "-ec", "#(nop) ", "CMD [\"cat /greeting\"]"]),
        "{cc}"
    );
    assert!(cc["Volumes"]["/data"].is_object(), "{cc}");
    assert_eq!(cc["Image"], i["Parent"], "{cc}");
    // The files, as the container sees them.
    assert_eq!(run(&s, "all:v1", &[]), "hello world from tests");
    let stat = run(
        &s,
        "all:v1",
        &[
            "stat -c '%u:%g %a' /etc/app/secret.txt; cat /app/src/main.c /app/src/lib/util.h /opt/inside/unpacked.txt; ls -d /srv/site/sub /data",
        ],
    );
    assert!(stat.contains("1000:100 600"), "{stat}");
    assert!(
        stat.contains("int main") && stat.contains("#define X 1"),
        "{stat}"
    );
    assert!(stat.contains("packed"), "ADD unpacks a local tar: {stat}");
    assert!(
        stat.contains("/srv/site/sub") && stat.contains("/data"),
        "{stat}"
    );
    // History as Docker writes it, shown by `history`.
    let hist = s
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "all:v1",
        ])
        .ok()
        .to_string();
    assert!(
        hist.contains("/bin/sh -ec #(nop)  CMD [\"cat /greeting\"]"),
        "{hist}"
    );
    assert!(
        hist.contains("/bin/sh -c #(nop)  STOPSIGNAL SIGUSR1"),
        "before SHELL: {hist}"
    );
    assert!(hist.contains("|1 WHO=tests /bin/sh -c echo"), "{hist}");
    assert!(hist.contains("COPY file:"), "{hist}");
    // A RUN step's: its command as the container ran it, build arguments
    // first, and the container it ran in.
    let ran = context(
        &s,
        "ran",
        &[("Dockerfile", "FROM busybox\nARG v\nRUN echo $v\n")],
    );
    build(&s, &ran, &["--build-arg", "v=1", "-t", "ran"]).ok();
    let i = inspect(&s, "ran");
    assert_eq!(
        i["ContainerConfig"]["Cmd"],
        serde_json::json!(["|1", "v=1", "/bin/sh", "-c", "echo $v"]),
        "{i}"
    );
    assert_eq!(i["Container"].as_str().map(str::len), Some(64), "{i}");
    // Removing a built image removes its steps' untagged images with it,
    // as dockerd's rmi (unless --no-prune).
    let before = s.berth(&["images", "-aq"]).ok().lines().count();
    let steps = context(
        &s,
        "steps",
        &[("Dockerfile", "FROM busybox\nRUN echo a > /a\nENV X=1\n")],
    );
    build(&s, &steps, &["-t", "steps"]).ok();
    assert_eq!(s.berth(&["images", "-aq"]).ok().lines().count(), before + 2);
    // The two images and the RUN step's unpacked layer (images are
    // unpacked when committed, as dockerd's are); the layer's blob stays
    // in the build cache.
    let out = s.berth(&["rmi", "steps"]).ok().to_string();
    assert_eq!(out.matches("Deleted: ").count(), 3, "{out}");
    assert_eq!(s.berth(&["images", "-aq"]).ok().lines().count(), before);
    build(&s, &steps, &["--no-cache", "-t", "steps"]).ok();
    s.berth(&["rmi", "--no-prune", "steps"]).ok();
    assert_eq!(s.berth(&["images", "-aq"]).ok().lines().count(), before + 1);
    // ONBUILD fires in a child build.
    let child = context(
        &s,
        "child",
        &[("Dockerfile", "FROM all:v1\nUSER 0\nCMD [\"true\"]\n")],
    );
    let out = build(&s, &child, &["-t", "child"]).ok().to_string();
    assert!(out.contains("Executing 1 build trigger"), "{out}");
    assert!(out.contains("child"), "{out}");
    assert!(inspect(&s, "child")["Config"]["OnBuild"].is_null());
}

#[test]
fn the_cache_reuses_exactly_what_did_not_change() {
    let s = stack();
    let dir = context(
        &s,
        "cache",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG V=1\nRUN echo run-$V > /v\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nCMD [\"cat\", \"/a.txt\", \"/b.txt\", \"/v\"]\n",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
        ],
    );
    let first = build(&s, &dir, &["-t", "c"]).ok().to_string();
    assert_eq!(cached(&first), 0, "{first}");
    let id1 = inspect(&s, "c")["Id"].as_str().unwrap().to_string();
    // Nothing changed: every step from the cache, the same image.
    let again = build(&s, &dir, &["-t", "c"]).ok().to_string();
    assert_eq!(cached(&again), 5, "{again}");
    assert_eq!(inspect(&s, "c")["Id"], id1.as_str());
    // A new mtime alone is the same file.
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("b.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(cached(build(&s, &dir, &["-t", "c"]).ok()), 5);
    // One byte of b.txt: only its COPY and what follows.
    std::fs::write(dir.join("b.txt"), "B\n").unwrap();
    let out = build(&s, &dir, &["-t", "c"]).ok().to_string();
    assert_eq!(cached(&out), 3, "{out}");
    assert_eq!(run(&s, "c", &[]), "a\nB\nrun-1");
    // One mode bit of a.txt: its COPY and after.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = build(&s, &dir, &["-t", "c"]).ok().to_string();
    assert_eq!(cached(&out), 2, "{out}");
    // A build arg the RUN uses: the RUN and after.
    let out = build(&s, &dir, &["-t", "c", "--build-arg", "V=2"])
        .ok()
        .to_string();
    assert_eq!(cached(&out), 1, "{out}");
    assert_eq!(run(&s, "c", &[]), "a\nB\nrun-2");
    // --no-cache builds everything.
    let out = build(&s, &dir, &["-t", "c", "--no-cache"]).ok().to_string();
    assert_eq!(cached(&out), 0, "{out}");
    // The cache (its newest entries: the --no-cache build's) outlives the
    // daemons.
    let mut s = s;
    s.kill9_berthd();
    s.lc_mut().kill9();
    s.lc_mut().spawn();
    s.spawn_berthd();
    let out = build(&s, &dir, &["-t", "c"]).ok().to_string();
    assert_eq!(cached(&out), 5, "{out}");
    // builder prune empties it.
    let pruned = s.berth(&["builder", "prune", "-f"]).ok().to_string();
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let out = build(&s, &dir, &["-t", "c"]).ok().to_string();
    assert_eq!(cached(&out), 0, "{out}");
    assert_eq!(run(&s, "c", &[]), "a\nB\nrun-1");
}

#[test]
fn parallel_builds_give_correct_images() {
    let s = stack();
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let df = "FROM busybox\nRUN echo same > /same\nCOPY n.txt /n\nCMD [\"cat\", \"/same\", \"/n\"]\n";
            context(&s, &format!("par{i}"), &[("Dockerfile", df), ("n.txt", &format!("{i}\n"))])
        })
        .collect();
    std::thread::scope(|sc| {
        for (i, d) in dirs.iter().enumerate() {
            let s = &s;
            sc.spawn(move || {
                build(s, d, &["-t", &format!("par{i}")]).ok();
            });
        }
    });
    for i in 0..3 {
        assert_eq!(run(&s, &format!("par{i}"), &[]), format!("same\n{i}"));
    }
}

#[test]
fn multi_stage_builds_only_what_the_target_needs() {
    let s = stack();
    let dir = context(
        &s,
        "multi",
        &[(
            "Dockerfile",
            r#"FROM busybox AS tool
RUN mkdir -p /out && echo '#!/bin/sh' > /out/hello && echo 'echo compiled hello' >> /out/hello && chmod 755 /out/hello

FROM busybox AS unused
RUN echo never-built

FROM tool AS build
RUN /out/hello > /out/result.txt

FROM busybox
COPY --from=build /out/result.txt /result.txt
COPY --from=0 /out/hello /usr/local/bin/
CMD ["sh", "-c", "cat /result.txt && hello"]
"#,
        )],
    );
    let out = build(&s, &dir, &["-t", "multi"]).ok().to_string();
    assert!(!out.contains("never-built"), "an unneeded stage ran: {out}");
    assert_eq!(run(&s, "multi", &[]), "compiled hello\ncompiled hello");
    // --target stops at a stage.
    let out = build(&s, &dir, &["-t", "multi-tool", "--target", "tool"])
        .ok()
        .to_string();
    assert!(!out.contains("result.txt"), "{out}");
    assert_eq!(run(&s, "multi-tool", &["/out/hello"]), "compiled hello");
    let bad = build(&s, &dir, &["--target", "nope"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("failed to reach build target nope"),
        "{bad:?}"
    );
}

#[test]
fn dockerignore_is_applied_with_dockers_rules() {
    let s = stack();
    let dir = context(
        &s,
        "ignore",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nCMD [\"find\", \"/ctx\", \"-type\", \"f\"]\n",
            ),
            (
                ".dockerignore",
                "**/*.log\nsecrets\n!secrets/public.txt\nDockerfile\n",
            ),
            ("app.txt", "app"),
            ("deep/a/b.log", "log"),
            ("top.log", "log"),
            ("secrets/key.pem", "key"),
            ("secrets/public.txt", "pub"),
        ],
    );
    build(&s, &dir, &["-t", "ign"]).ok();
    let mut files: Vec<String> = run(&s, "ign", &[]).lines().map(String::from).collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            "/ctx/.dockerignore",
            "/ctx/app.txt",
            "/ctx/secrets/public.txt"
        ],
        "the Dockerfile is read, then excluded as it asks"
    );
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    let s = stack();
    let case = |name: &str, dockerfile: &str, want: &str| {
        let dir = context(&s, name, &[("Dockerfile", dockerfile), ("ok.txt", "x")]);
        let out = build(&s, &dir, &["-t", "keep"]);
        assert_ne!(out.code, 0, "{name}: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{name}: want {want:?} in {out:?}"
        );
        out
    };
    // A good build holds the tag; failing ones must not move it.
    let good = context(
        &s,
        "good",
        &[("Dockerfile", "FROM busybox\nCMD [\"echo\", \"kept\"]\n")],
    );
    build(&s, &good, &["-t", "keep"]).ok();
    let kept = inspect(&s, "keep")["Id"].as_str().unwrap().to_string();
    case("unknown", "FROM busybox\nFOO bar\n", "unknown instruction");
    case(
        "missing",
        "FROM busybox\nCOPY nothing-here /x\n",
        "nothing-here",
    );
    case(
        "outside",
        "FROM busybox\nCOPY ../../etc/passwd /x\n",
        "COPY failed: forbidden path outside the build context: ../../etc/passwd ()",
    );
    // dockerd tells an empty file from one without instructions.
    case("empty", "", "the Dockerfile (Dockerfile) cannot be empty");
    case("comments", "# nothing\n", "file with no instructions");
    // A registry nobody serves (loopback, refused at once).
    case("noimage", "FROM 127.0.0.1:1/none:1\n", "127.0.0.1:1/none");
    case(
        "heredoc",
        "FROM busybox\nRUN <<EOF\necho hi\nEOF\n",
        "heredoc",
    );
    case(
        "url",
        // Nothing listens on port 1 of loopback.
        "FROM busybox\nADD http://127.0.0.1:1/x /x\n",
        "Connection refused",
    );
    let out = case(
        "failing",
        "FROM busybox\nRUN echo before\nRUN echo failing && exit 3\n",
        "returned a non-zero code: 3",
    );
    assert_eq!(out.code, 3, "the exit status is the command's: {out:?}");
    assert_eq!(
        inspect(&s, "keep")["Id"],
        kept.as_str(),
        "a failed build moved the tag"
    );
    // The failed step's container is kept to be looked into, as Docker's
    // classic builder keeps it (`rm` is for steps that succeeded); it is
    // the user's now: without the build's label, no restart removes it.
    let left = s.berth(&["ps", "-aq"]).ok().to_string();
    assert_eq!(
        left.lines().count(),
        1,
        "want the failed step's container: {left}"
    );
    let status = s
        .berth(&["ps", "-a", "--format", "{{.Status}}"])
        .ok()
        .to_string();
    assert!(status.starts_with("Exited (3)"), "{status}");
    assert_eq!(s.berth(&["logs", &left]).ok(), "failing");
    let labels = s
        .berth(&["inspect", "--format", "{{json .Config.Labels}}", &left])
        .ok()
        .to_string();
    assert!(!labels.contains("berth.build"), "{labels}");
    s.berth(&["rm", &left]).ok();
    // --force-rm removes it with the others.
    let dir = context(
        &s,
        "forcerm",
        &[("Dockerfile", "FROM busybox\nRUN exit 4\n")],
    );
    let out = build(&s, &dir, &["--force-rm", "-t", "keep"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        s.berth(&["ps", "-aq"]).ok().is_empty(),
        "--force-rm left containers"
    );
    // The client's own mistakes.
    let out = s.berth(&["build", "-f", "../Dockerfile", &good.to_string_lossy()]);
    assert_ne!(out.code, 0);
    let garbage = s.berth_stdin(&["build", "-"], &[0x1f, 0x8b, 0, 1, 2, 3]);
    assert_ne!(garbage.code, 0, "{garbage:?}");
    let (code, body) = s.api("POST", "/build?t=x&platform=linux/s390x", Some(""));
    assert_eq!(code, 400, "{body}");
    // A Dockerfile on stdin, as its only context.
    let out = s.berth_stdin(
        &["build", "-t", "fromstdin", "-"],
        b"FROM busybox\nRUN echo stdin > /s\n",
    );
    out.ok();
    assert_eq!(run(&s, "fromstdin", &["cat", "/s"]), "stdin");
    assert!(s.berth(&["ps", "-aq"]).ok().is_empty());
}

#[test]
fn bare_commands_are_the_shell_alone_as_dockerd_keeps_them() {
    let s = stack();
    // A bare ENTRYPOINT clears the one before; a bare CMD is the shell.
    let dir = context(
        &s,
        "bare",
        &[(
            "Dockerfile",
            "FROM busybox\nENTRYPOINT [\"echo\"]\nENTRYPOINT\nCMD\n",
        )],
    );
    build(&s, &dir, &["-t", "bare"]).ok();
    let c = &inspect(&s, "bare")["Config"];
    assert_eq!(c["Entrypoint"], serde_json::Value::Null, "{c}");
    assert_eq!(c["Cmd"], serde_json::json!(["/bin/sh", "-c"]), "{c}");
    // A bare RUN runs the shell without a command, which fails.
    let dir = context(&s, "barerun", &[("Dockerfile", "FROM busybox\nRUN\n")]);
    let out = build(&s, &dir, &["-t", "barerun", "--force-rm"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("The command '/bin/sh -c' returned a non-zero code: 2"),
        "{out:?}"
    );
}

#[test]
fn a_build_cut_off_by_a_berthd_kill_leaves_nothing_after_restart() {
    let mut s = stack();
    let dir = context(
        &s,
        "slow",
        &[("Dockerfile", "FROM busybox\nCOPY . /c\nRUN sleep 60\n")],
    );
    let mut c = s.berth_cmd();
    c.args(["build", "-t", "slow", &dir.to_string_lossy()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("berth build");
    assert!(
        integration_tests::eventually(30, || !s
            .berth(&["ps", "-aq", "--filter", "label=berth.build"])
            .ok()
            .is_empty()),
        "the RUN never started"
    );
    s.kill9_berthd();
    let _ = child.kill();
    let _ = child.wait();
    s.spawn_berthd();
    assert!(
        integration_tests::eventually(30, || s.berth(&["ps", "-aq"]).ok().is_empty()),
        "the build's container outlived the restart: {}",
        s.berth(&["ps", "-a"]).stdout
    );
    let build_dir = s.exec_root.join("build");
    assert!(
        !build_dir.exists() || std::fs::read_dir(&build_dir).unwrap().next().is_none(),
        "the build's directory was left"
    );
    let lc = s
        .command(
            &integration_tests::bin("berth-ctr").to_string_lossy(),
            &[
                "--address",
                &s.lc().address.to_string_lossy(),
                "-n",
                "berth",
                "containers",
                "ls",
                "-q",
            ],
        )
        .stdout;
    assert!(
        lc.trim().is_empty(),
        "lifecycled kept build containers: {lc}"
    );
}

#[test]
fn images_built_push_and_pull_back_byte_identical() {
    let s = stack();
    let reg = integration_tests::registry::Registry::start();
    let dir = context(
        &s,
        "push",
        &[("Dockerfile", "FROM busybox\nRUN echo pushed > /p\n")],
    );
    let name = format!("{}/built:1", reg.host);
    build(&s, &dir, &["-t", &name]).ok();
    let before = inspect(&s, &name);
    s.berth(&["push", &name]).ok();
    s.berth(&["rmi", &name]).ok();
    s.berth(&["pull", &name]).ok();
    let after = inspect(&s, &name);
    assert_eq!(before["Id"], after["Id"]);
    assert_eq!(before["RootFS"], after["RootFS"]);
    assert_eq!(run(&s, &name, &["cat", "/p"]), "pushed");
}

/// git in `dir`, as a test's own user.
fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
        .args([
            "-c",
            "protocol.file.allow=always",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository at `src`, then served bare (git's dumb HTTP protocol)
/// from `served`/`name`.git.
fn serve_bare(src: &Path, served: &Path, name: &str) {
    let bare = served.join(format!("{name}.git"));
    git(
        served,
        &[
            "clone",
            "--quiet",
            "--bare",
            &src.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    git(&bare, &["update-server-info"]);
}

/// POST /build?remote=…&t=…, as docker-py's build(path=URL) sends it.
fn build_remote(s: &Stack, remote: &str, tag: &str) -> (u16, String) {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("remote", remote)
        .append_pair("t", tag)
        .finish();
    s.api("POST", &format!("/build?{q}"), None)
}

/// `remote=` of POST /build, as docker-py's build(path=URL) and compose's
/// `context: URL` send it: a git repository fetched by the engine, its
/// ref and subdirectory as the URL's fragment names them.
#[test]
fn a_git_repository_is_a_build_context() {
    let s = stack();
    let src = s.dir.path().join("repo");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(
        src.join("Dockerfile"),
        "FROM busybox\nCOPY sub/hello /h\nCMD [\"cat\", \"/h\"]\n",
    )
    .unwrap();
    std::fs::write(
        src.join("sub/Dockerfile"),
        "FROM busybox\nCOPY hello /h\nCMD [\"cat\", \"/h\"]\n",
    )
    .unwrap();
    std::fs::write(src.join("sub/hello"), "tagged\n").unwrap();
    git(&src, &["init", "--quiet"]);
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "--quiet", "-m", "one"]);
    git(&src, &["tag", "v1"]);
    std::fs::write(src.join("sub/hello"), "main\n").unwrap();
    git(&src, &["commit", "--quiet", "-am", "two"]);
    git(&src, &["checkout", "--quiet", "-b", "feature"]);
    std::fs::write(src.join("sub/hello"), "feature\n").unwrap();
    git(&src, &["commit", "--quiet", "-am", "three"]);
    git(&src, &["checkout", "--quiet", "main"]);
    let served = s.dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    serve_bare(&src, &served, "repo");
    let http = integration_tests::fileserver::FileServer::start(&served);
    let build = |remote: &str, tag: &str| build_remote(&s, remote, tag);
    let repo = format!("{}/repo.git", http.url);
    // The default branch, a tag, a branch with a subdirectory.
    for (fragment, want) in [
        ("", "main"),
        ("#v1", "tagged"),
        ("#feature:sub", "feature"),
        ("#:sub", "main"),
    ] {
        let (code, body) = build(&format!("{repo}{fragment}"), "fromgit");
        assert_eq!(code, 200, "{fragment}: {body}");
        assert!(
            body.contains("Successfully tagged fromgit:latest"),
            "{fragment}: {body}"
        );
        assert_eq!(run(&s, "fromgit", &[]), want, "{fragment}");
    }
    // `berth build URL` sends it for the daemon to fetch.
    let id = s
        .berth(&["build", "-q", &format!("{repo}#feature:sub")])
        .ok()
        .to_string();
    assert_eq!(run(&s, &id, &[]), "feature");
    // What cannot be fetched or built from, in dockerd's words, before
    // anything is built.
    let images = s.berth(&["images", "-qa"]).ok().to_string();
    for (remote, want) in [
        (format!("{repo}#nope"), "error fetching: "),
        (format!("{}/none.git", http.url), "error fetching: "),
        (format!("{repo}#main:../.."), "not within git root"),
        (
            format!("{repo}#main:nodir"),
            "stat nodir: no such file or directory",
        ),
        (
            format!("{repo}#main:sub/hello"),
            "not a directory: sub/hello",
        ),
        (format!("{repo}#-x"), "invalid refspec: -x"),
        (
            "/etc/passwd".to_string(),
            "remoteURL (/etc/passwd) could not be recognized as URL",
        ),
    ] {
        let (code, body) = build(&remote, "never");
        assert_eq!(code, 500, "{remote}: {body}");
        assert!(body.contains(want), "{remote}: {body}");
    }
    assert_eq!(s.berth(&["images", "-qa"]).ok().to_string(), images);
    // A submodule that names a path on the engine's host is not fetched:
    // it would copy the host's files into the image.
    let secret = s.dir.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "host secret\n").unwrap();
    git(&secret, &["init", "--quiet"]);
    git(&secret, &["add", "-A"]);
    git(&secret, &["commit", "--quiet", "-m", "secret"]);
    git(
        &src,
        &[
            "submodule",
            "--quiet",
            "add",
            &secret.to_string_lossy(),
            "sec",
        ],
    );
    git(&src, &["commit", "--quiet", "-m", "with a submodule"]);
    serve_bare(&src, &served, "withsub");
    let (code, body) = build(&format!("{}/withsub.git", http.url), "never");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("error initializing submodules"), "{body}");
    assert!(!body.contains("Successfully"), "{body}");
}

/// Any other http(s) URL as dockerd takes it: a tar (plain or compressed)
/// is the context, a text is the Dockerfile alone, anything else is
/// refused; through the API, `berth build URL` and docker-py.
#[test]
fn a_url_is_a_build_context() {
    let s = stack();
    let files = s.dir.path().join("files");
    let ctx = s.dir.path().join("urlctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY hello /h\nCMD [\"cat\", \"/h\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.join("hello"), "from a tar\n").unwrap();
    for (name, flag) in [("ctx.tar", "-cf"), ("ctx.tgz", "-czf")] {
        let st = std::process::Command::new("tar")
            .args([
                "-C",
                &ctx.to_string_lossy(),
                flag,
                &files.join(name).to_string_lossy(),
                ".",
            ])
            .status()
            .expect("tar");
        assert!(st.success());
    }
    // No extension: http.server says application/octet-stream, and the
    // bytes tell it is text.
    std::fs::write(
        files.join("Dockerfile"),
        "FROM busybox\nRUN echo alone > /a\nCMD [\"cat\", \"/a\"]\n",
    )
    .unwrap();
    std::fs::write(
        files.join("page.html"),
        "<html><body>not a context</body></html>\n",
    )
    .unwrap();
    std::fs::write(files.join("empty"), "").unwrap();
    let http = integration_tests::fileserver::FileServer::start(&files);
    let build = |remote: &str| build_remote(&s, remote, "fromurl");
    for (file, want) in [
        ("ctx.tar", "from a tar"),
        ("ctx.tgz", "from a tar"),
        ("Dockerfile", "alone"),
    ] {
        let url = format!("{}/{file}", http.url);
        let (code, body) = build(&url);
        assert_eq!(code, 200, "{file}: {body}");
        // dockerd's line: the URL as the status, the phrase as the id.
        assert!(
            body.contains(r#""id":"Downloading context""#)
                && body.contains(&format!(r#""status":"{url}""#)),
            "{file}: {body}"
        );
        assert_eq!(run(&s, "fromurl", &[]), want, "{file}");
    }
    let images = s.berth(&["images", "-qa"]).ok().to_string();
    for (file, code, want) in [
        (
            "page.html",
            500,
            r#"unsupported Content-Type \"text/html\""#,
        ),
        ("empty", 500, "empty response"),
        ("missing", 404, "with status 404 File not found"),
    ] {
        let (got, body) = build(&format!("{}/{file}", http.url));
        assert_eq!(got, code, "{file}: {body}");
        assert!(body.contains(want), "{file}: {body}");
    }
    assert_eq!(s.berth(&["images", "-qa"]).ok().to_string(), images);
    // The CLI sends the URL for the daemon to fetch.
    let id = s
        .berth(&["build", "-q", &format!("{}/ctx.tgz", http.url)])
        .ok()
        .to_string();
    assert_eq!(run(&s, &id, &[]), "from a tar");
    let out = s.berth(&["build", &format!("{}/missing", http.url)]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Error response from daemon: error downloading remote context"),
        "{out:?}"
    );
    let script = format!(
        r#"
import docker
c = docker.from_env(timeout=120)
image, _ = c.images.build(path="{url}/ctx.tar", tag="pyurl")
assert c.containers.run("pyurl", remove=True) == b"from a tar\n"
try:
    c.images.build(path="{url}/missing")
    raise AssertionError("a missing context did not raise")
except docker.errors.NotFound as e:
    assert "failed to GET" in str(e), str(e)
print("ok")
"#,
        url = http.url
    );
    let out = s.command("python3", &["-c", &script]);
    assert_eq!(out.stdout.trim(), "ok", "{out:?}");
}

/// ADD of a URL as dockerd's classic builder does it: one file, mode 0600,
/// its time the server's Last-Modified, never unpacked, named by the URL
/// or by the destination; the download's content in the cache key.
#[test]
fn add_fetches_urls_as_dockerd_does() {
    let s = stack();
    let files = s.dir.path().join("served");
    std::fs::create_dir_all(files.join("inner")).unwrap();
    std::fs::write(files.join("inner/f"), "inside\n").unwrap();
    let st = std::process::Command::new("tar")
        .args(["-C", &files.join("inner").to_string_lossy(), "-cf"])
        .arg(files.join("a.tar"))
        .arg("f")
        .status()
        .expect("tar");
    assert!(st.success());
    std::fs::write(files.join("note.txt"), "v1\n").unwrap();
    // http.server sends the file's time as Last-Modified.
    for f in ["a.tar", "note.txt"] {
        let st = std::process::Command::new("touch")
            .args(["-d", "2021-02-03 04:05:06 UTC"])
            .arg(files.join(f))
            .status()
            .expect("touch");
        assert!(st.success());
    }
    let http = integration_tests::fileserver::FileServer::start(&files);
    let u = &http.url;
    let dir = context(
        &s,
        "addurl",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD {u}/a.tar /x/\nADD {u}/note.txt /renamed\nADD --chown=5:6 {u}/note.txt /o/\nADD {u}/ /listing\n"
            ),
        )],
    );
    let out = build(&s, &dir, &["-t", "addurl"]).ok().to_string();
    assert!(!out.contains("Using cache"), "{out}");
    let ls = run(
        &s,
        "addurl",
        &[
            "sh",
            "-c",
            "ls -ln --full-time /x/a.tar /renamed /o/note.txt /listing; cat /renamed",
        ],
    );
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 5, "{ls}");
    for (line, owner, path) in [
        (lines[0], "0        0", "/listing"),
        (lines[1], "5        6", "/o/note.txt"),
        (lines[2], "0        0", "/renamed"),
        (lines[3], "0        0", "/x/a.tar"),
    ] {
        assert!(line.starts_with("-rw-------"), "{ls}");
        assert!(line.contains(owner) && line.ends_with(path), "{ls}");
        if path != "/listing" {
            assert!(line.contains("2021-02-03 04:05:06 +0000"), "{ls}");
        }
    }
    assert_eq!(lines[4], "v1");
    // The same content again: every step from the cache; changed: only
    // what it reaches is done again.
    let out = build(&s, &dir, &["-t", "addurl"]).ok().to_string();
    assert_eq!(cached(&out), 4, "{out}");
    std::fs::write(files.join("note.txt"), "v2\n").unwrap();
    let out = build(&s, &dir, &["-t", "addurl"]).ok().to_string();
    assert_eq!(cached(&out), 1, "{out}");
    assert_eq!(run(&s, "addurl", &["cat", "/renamed"]), "v2");
    // What dockerd refuses, in its words.
    for (df, want) in [
        (
            format!("FROM busybox\nCOPY {u}/note.txt /n\n"),
            "source can't be a URL for COPY".to_string(),
        ),
        (
            format!("FROM busybox\nADD {u}/ /d/\n"),
            format!("cannot determine filename for source {u}/"),
        ),
        (
            format!("FROM busybox\nADD {u}/missing /m\n"),
            format!("failed to GET {u}/missing with status 404"),
        ),
    ] {
        let out = s.berth_stdin(&["build", "-"], df.as_bytes());
        assert_ne!(out.code, 0, "{df}");
        assert!(out.stderr.contains(&want), "{df}: {out:?}");
    }
}

/// A FROM image pulled by a build is shown as `docker pull` shows it
/// (dockerd's classic builder writes its pull into the build's output):
/// docker-compose's `build --pull` looks for the pull's last line.
#[test]
fn a_builds_pull_is_shown_as_a_pull() {
    let s = stack();
    let reg = integration_tests::registry::Registry::start();
    let base = format!("{}/team/base:1", reg.host);
    s.berth(&["tag", "busybox", &base]).ok();
    s.berth(&["push", &base]).ok();
    s.berth(&["rmi", &base]).ok();
    let dir = context(
        &s,
        "pulled",
        &[("Dockerfile", &format!("FROM {base}\nLABEL built=yes\n"))],
    );
    // Missing here: pulled whether or not --pull says so.
    let out = build(&s, &dir, &["-t", "frompull"]).ok().to_string();
    let step = out.find("Step 1/2").expect("the FROM step");
    let pulling = out.find("1: Pulling from team/base").expect(&out);
    let digest = out.find("Digest: sha256:").expect(&out);
    let status = out
        .find(&format!("Status: Downloaded newer image for {base}"))
        .expect(&out);
    let arrow = out.find(" ---> ").expect(&out);
    assert!(
        step < pulling && pulling < digest && digest < status && status < arrow,
        "{out}"
    );
    // Asked again with --pull: nothing new, and said so.
    if docker_cli().is_some() {
        let mut c = s.docker_cmd();
        c.env("DOCKER_BUILDKIT", "0")
            .args(["build", "--pull", "-t", "frompull"])
            .arg(&dir);
        let out = s.run(c, None).ok().to_string();
        assert!(out.contains("1: Pulling from team/base"), "{out}");
        assert!(
            out.contains(&format!("Status: Image is up to date for {base}")),
            "{out}"
        );
    }
    let out = build(&s, &dir, &["--pull", "-t", "frompull"])
        .ok()
        .to_string();
    assert!(
        out.contains(&format!("Status: Image is up to date for {base}")),
        "{out}"
    );
    // Quiet: the image id alone.
    s.berth(&["rmi", "frompull", &base]).ok();
    let quiet = build(&s, &dir, &["-q"]).ok().to_string();
    assert!(
        quiet.trim().starts_with("sha256:") && !quiet.contains("Pulling"),
        "{quiet}"
    );
}

#[test]
fn the_docker_cli_builds_with_the_classic_builder() {
    let Some(_) = docker_cli() else { return };
    let s = stack();
    let dir = context(
        &s,
        "dockercli",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG X=1\nCOPY f.txt /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n",
            ),
            ("f.txt", "from docker\n"),
        ],
    );
    let iid = s.dir.path().join("iid");
    for env in [Some("0"), None] {
        let mut c = s.docker_cmd();
        if let Some(v) = env {
            c.env("DOCKER_BUILDKIT", v);
        } else {
            c.env_remove("DOCKER_BUILDKIT");
        }
        c.args([
            "build",
            "-t",
            "fromdocker",
            "--build-arg",
            "X=2",
            "--iidfile",
        ])
        .arg(&iid)
        .arg(&dir);
        let out = s.run(c, None);
        assert_eq!(out.code, 0, "DOCKER_BUILDKIT={env:?}: {out:?}");
        assert!(
            std::fs::read_to_string(&iid)
                .unwrap()
                .starts_with("sha256:")
        );
    }
    assert_eq!(s.docker(&["run", "--rm", "fromdocker"]).ok(), "from docker");
    // An option refused before the context is read: the CLI, still
    // sending it, reads the answer (not a broken pipe).
    for (flag, want) in [
        ("--isolation=hyperv", r#"Unsupported isolation: "hyperv""#),
        (
            "--platform=linux/s390x",
            r#"platform "linux/s390x" is not supported"#,
        ),
    ] {
        let mut c = s.docker_cmd();
        c.env("DOCKER_BUILDKIT", "0")
            .args(["build", flag])
            .arg(&dir);
        let out = s.run(c, None);
        assert_ne!(out.code, 0, "{flag}");
        assert!(
            out.stderr
                .contains(&format!("Error response from daemon: {want}")),
            "{flag}: {out:?}"
        );
    }
    let mut c = s.docker_cmd();
    c.env("DOCKER_BUILDKIT", "0").args(["build", "-q", "-"]);
    let out = s.run(c, Some(b"FROM busybox\nRUN false\n"));
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("returned a non-zero code: 1"),
        "{out:?}"
    );
    // A failed quiet build shows what the daemon held back.
    assert!(out.stderr.contains("Step 2/2 : RUN false"), "{out:?}");
    // The failed step's container is kept, as the classic builder keeps it.
    let left = s
        .docker(&["ps", "-aq", "--filter", "status=exited"])
        .ok()
        .to_string();
    assert_eq!(left.lines().count(), 1, "{left}");
    s.docker(&["rm", &left]).ok();
    let failed = s.berth_stdin(&["build", "-q", "-"], b"FROM busybox\nRUN false\n");
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains("Step 2/2 : RUN false"), "{failed:?}");
    let left = s.docker(&["ps", "-aq"]).ok().to_string();
    s.docker(&["rm", &left]).ok();
    // A quiet build prints the image id alone, with either CLI.
    let quiet = b"FROM busybox\nRUN echo quiet > /q\n";
    let mut c = s.docker_cmd();
    c.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "quietd", "-"]);
    let by_docker = s.run(c, Some(quiet)).ok().to_string();
    let by_berth = s
        .berth_stdin(&["build", "-q", "-t", "quietb", "-"], quiet)
        .ok()
        .to_string();
    for (tag, printed) in [("quietd", &by_docker), ("quietb", &by_berth)] {
        let id = s
            .docker(&["image", "inspect", "-f", "{{.Id}}", tag])
            .ok()
            .to_string();
        assert_eq!(printed, &id, "{tag}");
    }
    let hist = s.docker(&["history", "fromdocker"]).ok().to_string();
    assert!(
        hist.contains("CMD [\"cat\" \"/g\"]") || hist.contains("CMD"),
        "{hist}"
    );
}

#[test]
fn docker_py_and_compose_build() {
    let s = stack();
    let dir = context(
        &s,
        "py",
        &[
            (
                "Dockerfile",
                "FROM busybox AS base\nARG MSG=default\nRUN echo $MSG > /msg\nFROM base AS final\nCMD [\"cat\", \"/msg\"]\n",
            ),
            (
                "docker-compose.yml",
                "version: '3.8'\nservices:\n  app:\n    image: composed:latest\n    build:\n      context: .\n      dockerfile: Dockerfile\n      target: final\n      args:\n        MSG: from-compose\n",
            ),
        ],
    );
    let script = format!(
        r#"
import docker
c = docker.from_env(timeout=120)
image, logs = c.images.build(path={dir:?}, tag="pybuilt", buildargs={{"MSG": "from-py"}})
assert "pybuilt:latest" in image.tags, image.tags
assert any("Successfully built" in l.get("stream", "") for l in logs), list(logs)
out = c.containers.run("pybuilt", remove=True)
assert out == b"from-py\n", out
try:
    c.images.build(fileobj=__import__("io").BytesIO(b"FROM busybox\nRUN exit 7\n"), tag="pyfail")
    raise AssertionError("a failing build did not raise")
except docker.errors.BuildError as e:
    assert "non-zero code: 7" in str(e), str(e)
print("ok")
"#,
        dir = dir.to_string_lossy()
    );
    let out = s.command("python3", &["-c", &script]);
    assert_eq!(out.stdout.trim(), "ok", "{out:?}");
    // Debian's docker-compose 1.29 (scripts/deps installs it).
    let mut c = std::process::Command::new("/usr/bin/docker-compose");
    c.current_dir(&dir)
        .env("DOCKER_HOST", &s.host)
        .args(["-p", "buildtest", "build"]);
    let out = s.run(c, None);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(run(&s, "composed", &[]), "from-compose");
}

#[test]
fn cache_from_reuses_the_steps_a_pulled_image_holds() {
    let s = stack();
    let reg = integration_tests::registry::Registry::start();
    let dir = context(
        &s,
        "cachefrom",
        &[
            (
                "Dockerfile",
                "FROM busybox\nENV A=1\nRUN echo built > /b\nCOPY f.txt /f\nCMD [\"cat\", \"/b\", \"/f\"]\n",
            ),
            ("f.txt", "file\n"),
        ],
    );
    let name = format!("{}/cached:1", reg.host);
    build(&s, &dir, &["-t", &name]).ok();
    let first = inspect(&s, &name);
    s.berth(&["push", &name]).ok();
    // Nothing of it left here: not the cache, not the image.
    s.berth(&["rmi", &name]).ok();
    s.berth(&["builder", "prune", "-f"]).ok();
    s.berth(&["pull", &name]).ok();
    let out = build(&s, &dir, &["-t", "again", "--cache-from", &name])
        .ok()
        .to_string();
    assert_eq!(cached(&out), 4, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    let again = inspect(&s, "again");
    assert_eq!(again["RootFS"], first["RootFS"], "the same layers");
    assert_eq!(run(&s, "again", &[]), "built\nfile");
    // Without --cache-from, the steps run.
    let out = build(&s, &dir, &["-t", "again2", "--no-cache"])
        .ok()
        .to_string();
    assert_eq!(cached(&out), 0, "{out}");
}

#[test]
fn a_client_that_leaves_stops_its_build() {
    let s = stack();
    let dir = context(
        &s,
        "leave",
        &[("Dockerfile", "FROM busybox\nRUN sleep 120\n")],
    );
    let mut c = s.berth_cmd();
    c.args(["build", "-t", "left", &dir.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("berth build");
    assert!(
        integration_tests::eventually(30, || !s
            .berth(&["ps", "-q", "--filter", "label=berth.build"])
            .ok()
            .is_empty()),
        "the RUN never started"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        integration_tests::eventually(30, || s.berth(&["ps", "-aq"]).ok().is_empty()),
        "the RUN outlived its client: {}\n{}",
        s.berth(&["ps", "-a"]).stdout,
        s.log()
    );
    assert!(s.berth(&["image", "inspect", "left"]).code != 0);
}

/// A client that leaves while its context (git, a URL) or an ADD source
/// is being fetched stops the fetch: the server sees its connection
/// closed (git killed, the download dropped), not held until it answers.
#[test]
fn a_client_that_leaves_stops_a_remote_fetch() {
    use std::io::Read;
    let s = stack();
    for what in ["git", "url", "add"] {
        // A server that takes the request and never answers.
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = server.local_addr().expect("its address").port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = server.accept() {
                let mut buf = [0u8; 4096];
                // Until the other end closes it.
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send(());
            }
        });
        let dir = context(
            &s,
            &format!("leave-{what}"),
            &[(
                "Dockerfile",
                &format!("FROM busybox\nADD http://127.0.0.1:{port}/big /big\n"),
            )],
        );
        let target = match what {
            "git" => format!("http://127.0.0.1:{port}/r.git"),
            "url" => format!("http://127.0.0.1:{port}/ctx.tar"),
            _ => dir.to_string_lossy().into_owned(),
        };
        let mut c = s.berth_cmd();
        c.args(["build", &target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().expect("berth build");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(rx.try_recv().is_err(), "{what}: the fetch ended by itself");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok(),
            "{what}: the fetch outlived its client\n{}",
            s.log()
        );
    }
}

#[test]
fn run_steps_on_another_containers_network_see_its_names() {
    let s = stack();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "netbox",
        "--add-host",
        "google.local:127.0.0.1",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let dir = context(
        &s,
        "withnet",
        &[("Dockerfile", "FROM busybox\nRUN ping -c1 google.local\n")],
    );
    build(
        &s,
        &dir,
        &["--network", "container:netbox", "-t", "withnet"],
    )
    .ok();
    s.berth(&["rm", "-f", "netbox"]).ok();
}

/// A tmpfs mounted for one test, unmounted however the test ends.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).expect("mkdir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mounting a tmpfs at {}", at.display());
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_build_that_fills_the_disk_fails_clearly_and_leaves_nothing() {
    let s = stack();
    // Where berthd keeps a build's context: 4 MiB, for a context of 12.
    let disk = SmallDisk::mount(s.exec_root.join("build"), "4m");
    let dir = context(&s, "big", &[("Dockerfile", "FROM busybox\nCOPY . /c\n")]);
    let noise: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("noise.bin"), noise).expect("writing the context");
    let out = build(&s, &dir, &["-t", "full"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("no space left on device"), "{out:?}");
    assert!(s.berth(&["image", "inspect", "full"]).code != 0);
    assert!(s.berth(&["ps", "-aq"]).ok().is_empty());
    assert!(
        std::fs::read_dir(&disk.0)
            .expect("the build dir")
            .next()
            .is_none(),
        "the build's files were left"
    );
    // With room again, the same build works.
    drop(disk);
    build(&s, &dir, &["-t", "full"]).ok();
}

#[test]
fn a_c_program_compiled_in_a_debian_stage_runs_from_busybox() {
    // A Debian rootfs with gcc, made by scripts/deps with debootstrap.
    let rootfs = Path::new("/var/cache/berth-tests/debian-gcc.tar");
    assert!(
        rootfs.exists(),
        "{} is missing: scripts/deps makes it",
        rootfs.display()
    );
    let s = stack();
    s.berth(&["import", &rootfs.to_string_lossy(), "debian-gcc:12"])
        .ok();
    let dir = context(
        &s,
        "cprog",
        &[
            (
                "Dockerfile",
                r#"FROM debian-gcc:12 AS build
WORKDIR /src
COPY hello.c .
ARG GREETING=hello
RUN gcc -static -O2 -DGREETING="\"$GREETING\"" -o /hello hello.c && /hello

FROM busybox
COPY --from=build /hello /usr/local/bin/hello
ENTRYPOINT ["hello"]
"#,
            ),
            (
                "hello.c",
                "#include <stdio.h>\nint main(int argc, char **argv) {\n  printf(\"%s from C, %d args\\n\", GREETING, argc - 1);\n  return 0;\n}\n",
            ),
        ],
    );
    let out = build(&s, &dir, &["-t", "cprog", "--build-arg", "GREETING=hi"])
        .ok()
        .to_string();
    // The RUN's own output, as it ran.
    assert!(out.contains("hi from C, 0 args"), "{out}");
    let img = inspect(&s, "cprog");
    assert_eq!(img["Config"]["Entrypoint"], serde_json::json!(["hello"]));
    let ran = s
        .berth(&["run", "--rm", "--network", "none", "cprog", "a", "b"])
        .ok()
        .to_string();
    assert_eq!(ran.trim(), "hi from C, 2 args");
    // The final image holds busybox's layers and one more, not Debian's.
    let busybox = inspect(&s, "busybox");
    let layers = |v: &serde_json::Value| v["RootFS"]["Layers"].as_array().map_or(0, Vec::len);
    assert_eq!(layers(&img), layers(&busybox) + 1);
}
