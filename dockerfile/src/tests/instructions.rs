//! Each instruction's arguments, flags and errors.

use super::*;
use crate::{ArgDecl, CommandForm, Healthcheck, Kind, expand, parse_instruction};

// --- RUN, CMD, ENTRYPOINT, SHELL ------------------------------------------------------

#[test]
fn run_flags_need_buildkit() {
    let m = body_err("RUN --mount=type=cache,target=/root/.cache pip install x");
    assert!(m.starts_with("the --mount option requires BuildKit"), "{m}");
    assert!(
        body_err("RUN --network=none true").starts_with("the --network option requires BuildKit")
    );
    assert!(
        body_err("RUN --security=insecure true")
            .starts_with("the --security option requires BuildKit")
    );
    assert_eq!(body_err("RUN --bogus true"), "unknown flag: bogus");
}

#[test]
fn exec_and_shell_forms() {
    assert_eq!(
        first_kind("ENTRYPOINT [\"/bin/tini\", \"--\"]"),
        Kind::Entrypoint(CommandForm::Exec(strings(&["/bin/tini", "--"])))
    );
    assert_eq!(
        first_kind("ENTRYPOINT []"),
        Kind::Entrypoint(CommandForm::Exec(vec![]))
    );
    // Not JSON: the whole text is shell form.
    assert_eq!(
        first_kind("CMD [ -f /x ] && echo yes"),
        Kind::Cmd(CommandForm::Shell("[ -f /x ] && echo yes".into()))
    );
    assert_eq!(
        first_kind("CMD ['single']"),
        Kind::Cmd(CommandForm::Shell("['single']".into()))
    );
    assert_eq!(
        first_kind("CMD"),
        Kind::Cmd(CommandForm::Shell(String::new()))
    );
    // JSON escapes are JSON's.
    assert_eq!(
        first_kind("RUN [\"sh\", \"-c\", \"echo \\\"a\\tb\\\"\"]"),
        Kind::Run {
            cmd: CommandForm::Exec(strings(&["sh", "-c", "echo \"a\tb\""]))
        }
    );
    // Valid JSON but not all strings: an error in Docker, not shell form.
    assert_eq!(
        body_err("CMD [\"a\", 1]"),
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(body_err("CMD --help"), "unknown flag: help");
}

#[test]
fn shell_needs_json() {
    assert_eq!(
        first_kind("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]"),
        Kind::Shell(strings(&["/bin/bash", "-o", "pipefail", "-c"]))
    );
    assert_eq!(
        body_err("SHELL /bin/bash -c"),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(body_err("SHELL []"), "SHELL requires at least one argument");
}

// --- ENV, LABEL, ARG ----------------------------------------------------------------------

#[test]
fn env_pairs_stay_raw_until_expanded() {
    let kind = first_kind(
        r#"ENV KEY=VALUE KEY2="quoted value" KEY3=esc\ aped KEY4='$HOME' KEY5="a\"b" KEY6="$HOME/bin""#,
    );
    let Kind::Env(env) = kind else {
        panic!("{kind:?}")
    };
    assert_eq!(
        env,
        pairs(&[
            ("KEY", "VALUE"),
            ("KEY2", "\"quoted value\""),
            ("KEY3", "esc\\ aped"),
            ("KEY4", "'$HOME'"),
            ("KEY5", "\"a\\\"b\""),
            ("KEY6", "\"$HOME/bin\""),
        ])
    );
    let home = |k: &str| (k == "HOME").then(|| "/root".to_string());
    let values: Vec<String> = env
        .iter()
        .map(|(_, v)| expand(v, &home, '\\').unwrap())
        .collect();
    assert_eq!(
        values,
        strings(&[
            "VALUE",
            "quoted value",
            "esc aped",
            "$HOME",
            "a\"b",
            "/root/bin"
        ])
    );
}

#[test]
fn env_legacy_form() {
    assert_eq!(
        first_kind("ENV PATH /usr/local/bin:$PATH"),
        Kind::Env(pairs(&[("PATH", "/usr/local/bin:$PATH")]))
    );
    assert_eq!(
        first_kind("ENV GREETING  hello   \"big\" world"),
        Kind::Env(pairs(&[("GREETING", "hello   \"big\" world")]))
    );
    assert_eq!(body_err("ENV LONELY"), "ENV must have two arguments");
    assert_eq!(body_err("ENV"), "ENV requires at least one argument");
}

#[test]
fn env_new_form_errors() {
    assert_eq!(
        body_err("ENV A=1 B"),
        "syntax error - can't find = in \"B\". Must be of the form: name=value"
    );
    assert_eq!(body_err("ENV =x"), "ENV names can not be blank");
    assert_eq!(
        first_kind("ENV A= B=\"\""),
        Kind::Env(pairs(&[("A", ""), ("B", "\"\"")]))
    );
}

#[test]
fn label_multi_line() {
    let kind = first_kind(
        "LABEL org.opencontainers.image.title=\"My App\" \\
      org.opencontainers.image.version=1.2.3 \\
      description='single quoted'",
    );
    assert_eq!(
        kind,
        Kind::Label(pairs(&[
            ("org.opencontainers.image.title", "\"My App\""),
            ("org.opencontainers.image.version", "1.2.3"),
            ("description", "'single quoted'"),
        ]))
    );
    // Docker still accepts the legacy `LABEL key value` form.
    assert_eq!(
        first_kind("LABEL maintainer someone"),
        Kind::Label(pairs(&[("maintainer", "someone")]))
    );
    assert_eq!(body_err("LABEL"), "LABEL requires at least one argument");
    assert_eq!(
        body_err("LABEL a=1 b"),
        "syntax error - can't find = in \"b\". Must be of the form: name=value"
    );
}

#[test]
fn global_and_stage_args() {
    let df = ok("\
ARG BASE=alpine VERSION
ARG REGISTRY=\"docker.io\"
FROM ${REGISTRY}/${BASE}:${VERSION:-latest}
ARG VERSION
ARG USER=app UID=1000
RUN echo $USER
");
    assert_eq!(
        df.global_args,
        vec![
            ArgDecl {
                name: "BASE".into(),
                default: Some("alpine".into())
            },
            ArgDecl {
                name: "VERSION".into(),
                default: None
            },
            ArgDecl {
                name: "REGISTRY".into(),
                default: Some("\"docker.io\"".into())
            },
        ]
    );
    assert_eq!(df.global_arg_instructions.len(), 2);
    assert_eq!(
        df.global_arg_instructions[0].original,
        "ARG BASE=alpine VERSION"
    );
    assert_eq!(df.global_arg_instructions[1].line, 2);
    let s = &df.stages[0].instructions;
    assert_eq!(
        s[0].kind,
        Kind::Arg(vec![ArgDecl {
            name: "VERSION".into(),
            default: None
        }])
    );
    assert_eq!(
        s[1].kind,
        Kind::Arg(vec![
            ArgDecl {
                name: "USER".into(),
                default: Some("app".into())
            },
            ArgDecl {
                name: "UID".into(),
                default: Some("1000".into())
            },
        ])
    );
    assert_eq!(
        err("ARG =x\nFROM a\n").message,
        "ARG names can not be blank"
    );
    assert_eq!(body_err("ARG"), "ARG requires at least one argument");
}

// --- COPY and ADD ----------------------------------------------------------------------

#[test]
fn copy_and_add_flags() {
    assert_eq!(
        first_kind("COPY --chown=\"app:app\" --chmod=0755 a b /dst/"),
        Kind::Copy {
            from: None,
            chown: Some("app:app".into()),
            chmod: Some("0755".into()),
            srcs: strings(&["a", "b"]),
            dest: "/dst/".into()
        }
    );
    assert_eq!(
        first_kind("ADD --chown=1000 https://example.com/x.tgz /opt/"),
        Kind::Add {
            chown: Some("1000".into()),
            chmod: None,
            srcs: strings(&["https://example.com/x.tgz"]),
            dest: "/opt/".into()
        }
    );
    assert_eq!(body_err("ADD --from=x a b"), "unknown flag: from");
    assert_eq!(
        body_err("COPY --chwon=1 a b"),
        "unknown flag: chwon (did you mean chown?)"
    );
    assert_eq!(
        body_err("COPY --from=a --from=b x y"),
        "duplicate flag specified: from"
    );
    assert_eq!(body_err("COPY --from x y"), "missing a value on flag: from");
}

#[test]
fn copy_and_add_buildkit_only_flags() {
    for (body, flag) in [
        ("COPY --link a b", "link"),
        ("COPY --parents a/b c/", "parents"),
        ("COPY --exclude=*.md . /src", "exclude"),
        ("ADD --checksum=sha256:abc https://x/y /y", "checksum"),
        (
            "ADD --keep-git-dir=true https://github.com/a/b.git /b",
            "keep-git-dir",
        ),
        ("ADD --link x y", "link"),
    ] {
        let m = body_err(body);
        assert!(
            m.starts_with(&format!("the --{flag} option requires BuildKit")),
            "{body}: {m}"
        );
    }
    // Saying no is what the classic builder does anyway.
    assert!(matches!(
        first_kind("COPY --link=false a b"),
        Kind::Copy { .. }
    ));
}

#[test]
fn copy_json_form_and_arity() {
    assert_eq!(
        first_kind("COPY [\"my file.txt\", \"other file\", \"/dest dir/\"]"),
        Kind::Copy {
            from: None,
            chown: None,
            chmod: None,
            srcs: strings(&["my file.txt", "other file"]),
            dest: "/dest dir/".into()
        }
    );
    let m = body_err("COPY onlyone");
    assert!(m.starts_with("COPY requires at least two arguments"), "{m}");
    assert!(body_err("ADD [\"one\"]").starts_with("ADD requires at least two arguments"));
    assert!(body_err("COPY").starts_with("COPY requires at least two arguments"));
}

// --- HEALTHCHECK ---------------------------------------------------------------------

#[test]
fn healthcheck_shell_form_with_options() {
    assert_eq!(
        first_kind(
            "HEALTHCHECK --interval=1m30s --timeout=10s --start-period=500ms --start-interval=2s --retries=3 \\
  CMD curl -f http://localhost/ || exit 1"
        ),
        Kind::Healthcheck(Some(Healthcheck {
            test: strings(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
            interval_ns: 90_000_000_000,
            timeout_ns: 10_000_000_000,
            start_period_ns: 500_000_000,
            start_interval_ns: 2_000_000_000,
            retries: 3,
        }))
    );
}

#[test]
fn healthcheck_exec_form_and_none() {
    assert_eq!(
        first_kind("HEALTHCHECK cmd [\"/bin/check\", \"--quick\"]"),
        Kind::Healthcheck(Some(Healthcheck {
            test: strings(&["CMD", "/bin/check", "--quick"]),
            interval_ns: 0,
            timeout_ns: 0,
            start_period_ns: 0,
            start_interval_ns: 0,
            retries: 0,
        }))
    );
    assert_eq!(first_kind("HEALTHCHECK NONE"), Kind::Healthcheck(None));
    assert_eq!(first_kind("HEALTHCHECK none"), Kind::Healthcheck(None));
    assert_eq!(
        body_err("HEALTHCHECK NONE now"),
        "HEALTHCHECK NONE takes no arguments"
    );
}

#[test]
fn healthcheck_errors() {
    assert_eq!(
        body_err("HEALTHCHECK --interval=500us CMD true"),
        "interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        body_err("HEALTHCHECK --start-period=-1s CMD true"),
        "interval \"start-period\" cannot be less than 1ms"
    );
    assert!(
        matches!(first_kind("HEALTHCHECK --interval=0s CMD true"), Kind::Healthcheck(Some(h)) if h.interval_ns == 0)
    );
    assert_eq!(
        body_err("HEALTHCHECK --timeout=10 CMD true"),
        "time: missing unit in duration \"10\""
    );
    assert_eq!(
        body_err("HEALTHCHECK --retries=-1 CMD true"),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        body_err("HEALTHCHECK CMD"),
        "missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        body_err("HEALTHCHECK RUN true"),
        "unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        body_err("HEALTHCHECK"),
        "HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        body_err("HEALTHCHECK --bogus=1 CMD true"),
        "unknown flag: bogus"
    );
}

// --- ONBUILD ---------------------------------------------------------------------------

#[test]
fn onbuild_triggers() {
    let instrs = last_stage("FROM a\nONBUILD RUN echo hi\nonbuild   COPY --from=x . /app\n");
    assert_eq!(instrs[0].kind, Kind::Onbuild("RUN echo hi".into()));
    assert_eq!(instrs[1].kind, Kind::Onbuild("COPY --from=x . /app".into()));
    assert_eq!(
        body_err("ONBUILD ONBUILD RUN x"),
        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        body_err("ONBUILD FROM x"),
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        body_err("ONBUILD maintainer me"),
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        body_err("ONBUILD"),
        "ONBUILD requires at least one argument"
    );
    // The trigger's syntax is checked now, its meaning when it runs.
    assert_eq!(body_err("ONBUILD ENV X"), "ENV must have two arguments");
    assert_eq!(
        first_kind("ONBUILD FOO bar"),
        Kind::Onbuild("FOO bar".into())
    );
}

#[test]
fn parse_instruction_for_triggers() {
    let i = parse_instruction("RUN echo hi", '\\').unwrap();
    assert_eq!(i.line, 1);
    assert_eq!(i.original, "RUN echo hi");
    assert_eq!(
        i.kind,
        Kind::Run {
            cmd: CommandForm::Shell("echo hi".into())
        }
    );
    let i = parse_instruction("ENV A=1 B=\"2 3\"", '\\').unwrap();
    assert_eq!(i.kind, Kind::Env(pairs(&[("A", "1"), ("B", "\"2 3\"")])));
    let e = parse_instruction("FOO bar", '\\').unwrap_err();
    assert_eq!(e.message, "unknown instruction: FOO (did you mean FROM?)");
    let e = parse_instruction("RUN --mount=type=secret,id=x cat /run/secrets/x", '\\').unwrap_err();
    assert!(
        e.message
            .starts_with("the --mount option requires BuildKit")
    );
    assert_eq!(
        parse_instruction("RUN a\nRUN b", '\\').unwrap_err().message,
        "onbuild trigger should be a single expression"
    );
    assert_eq!(
        parse_instruction("", '\\').unwrap_err().message,
        "file with no instructions"
    );
    // A trigger is never a directive.
    assert!(matches!(
        parse_instruction("# escape=`\nUSER x", '\\').unwrap().kind,
        Kind::User(_)
    ));
}

// --- the one-argument instructions and the lists -------------------------------------------

#[test]
fn single_argument_instructions() {
    assert_eq!(first_kind("USER app:app"), Kind::User("app:app".into()));
    assert_eq!(
        first_kind("WORKDIR \"/my dir\""),
        Kind::Workdir("\"/my dir\"".into())
    );
    assert_eq!(
        first_kind("STOPSIGNAL SIGQUIT"),
        Kind::Stopsignal("SIGQUIT".into())
    );
    assert_eq!(
        first_kind("MAINTAINER Jane Doe <jane@example.com>"),
        Kind::Maintainer("Jane Doe <jane@example.com>".into())
    );
    assert_eq!(body_err("USER"), "USER requires exactly one argument");
    assert_eq!(body_err("WORKDIR"), "WORKDIR requires exactly one argument");
    assert_eq!(
        body_err("STOPSIGNAL"),
        "STOPSIGNAL requires exactly one argument"
    );
    assert_eq!(body_err("WORKDIR --x=1 /a"), "unknown flag: x");
}

#[test]
fn expose_and_volume() {
    assert_eq!(
        first_kind("EXPOSE 8080/tcp 443 53/udp ${PORT}"),
        Kind::Expose(strings(&["${PORT}", "443", "53/udp", "8080/tcp"]))
    );
    assert_eq!(body_err("EXPOSE"), "EXPOSE requires at least one argument");
    assert_eq!(
        first_kind("VOLUME [\"/data\", \"/var/log\"]"),
        Kind::Volume(strings(&["/data", "/var/log"]))
    );
    assert_eq!(
        first_kind("VOLUME /data /cache"),
        Kind::Volume(strings(&["/data", "/cache"]))
    );
    assert_eq!(
        body_err("VOLUME [\"/a\", \" \"]"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(
        body_err("VOLUME []"),
        "VOLUME requires at least one argument"
    );
}

#[test]
fn original_is_trimmed_joined_text() {
    let df = ok("   FROM   alpine   AS   base  \nRUN echo 'a' \\\n\t&& echo b   \n");
    assert_eq!(df.stages[0].from.original, "FROM   alpine   AS   base");
    assert_eq!(df.stages[0].name.as_deref(), Some("base"));
    assert_eq!(
        df.stages[0].instructions[0].original,
        "RUN echo 'a' \t&& echo b"
    );
}
