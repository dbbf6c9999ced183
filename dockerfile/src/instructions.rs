//! Syntax nodes to typed instructions, with the checks buildkit's
//! `instructions.ParseInstruction` makes (frontend/dockerfile/instructions
//! parse.go), in its order, plus what dockerd's classic builder refuses
//! when it runs a step (RUN flags, BuildKit-only COPY/ADD flags, heredocs),
//! moved here so a build fails before its first step rather than midway.

use crate::flags::{FlagKind, Flags};
use crate::node::Node;
use crate::suggest::with_suggestion;
use crate::{ArgDecl, CommandForm, Kind, healthcheck, heredoc};

/// The instructions Docker knows, for "did you mean" hints.
const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The refusal of heredocs.
pub(crate) const HEREDOC: &str = "heredocs are not supported by the classic builder";

const RUN_FLAGS: &[(&str, FlagKind)] = &[
    ("mount", FlagKind::Strings),
    ("network", FlagKind::String),
    ("security", FlagKind::String),
    ("device", FlagKind::Strings),
];

const COPY_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", FlagKind::String),
    ("from", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("parents", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
];

const ADD_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("keep-git-dir", FlagKind::Bool),
    ("checksum", FlagKind::String),
    ("exclude", FlagKind::Strings),
];

/// dockerd's wording for what only BuildKit can do.
fn needs_buildkit(flag: &str) -> String {
    format!(
        "the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ \
         to learn how to build images with BuildKit enabled"
    )
}

/// The typed instruction of `node`.
pub(crate) fn kind(node: &Node) -> Result<Kind, String> {
    let args = &node.args;
    let no_flags = || Flags::parse(&node.flags, &[]).map(drop);
    match node.cmd.to_lowercase().as_str() {
        "env" => {
            no_flags()?;
            Ok(Kind::Env(pairs(args, "ENV")?))
        }
        "maintainer" => {
            let text = exactly_one(args, "MAINTAINER")?;
            no_flags()?;
            Ok(Kind::Maintainer(text))
        }
        "label" => {
            no_flags()?;
            Ok(Kind::Label(pairs(args, "LABEL")?))
        }
        "add" => {
            let (flags, srcs, dest) = sources_and_dest(node, "ADD", ADD_FLAGS)?;
            Ok(Kind::Add {
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                srcs,
                dest,
            })
        }
        "copy" => {
            let (flags, srcs, dest) = sources_and_dest(node, "COPY", COPY_FLAGS)?;
            Ok(Kind::Copy {
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                srcs,
                dest,
            })
        }
        "from" => {
            let name = stage_name(args)?;
            let flags = Flags::parse(&node.flags, &[("platform", FlagKind::String)])?;
            Ok(Kind::From {
                image: args[0].clone(),
                platform: flags.string("platform"),
                name,
            })
        }
        "onbuild" => onbuild(node),
        "workdir" => {
            let path = exactly_one(args, "WORKDIR")?;
            no_flags()?;
            Ok(Kind::Workdir(path))
        }
        "run" => {
            let flags = Flags::parse(&node.flags, RUN_FLAGS)?;
            // dockerd's classic builder refuses any RUN flag.
            if let Some(flag) = flags.used().next() {
                return Err(needs_buildkit(flag));
            }
            Ok(Kind::Run {
                cmd: command_form(node),
            })
        }
        "cmd" => {
            no_flags()?;
            Ok(Kind::Cmd(command_form(node)))
        }
        "entrypoint" => {
            no_flags()?;
            Ok(Kind::Entrypoint(command_form(node)))
        }
        "healthcheck" => Ok(Kind::Healthcheck(healthcheck::parse(
            args,
            node.json,
            &node.flags,
        )?)),
        "expose" => {
            if args.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            no_flags()?;
            let mut ports = args.clone();
            ports.sort();
            Ok(Kind::Expose(ports))
        }
        "user" => {
            let user = exactly_one(args, "USER")?;
            no_flags()?;
            Ok(Kind::User(user))
        }
        "volume" => {
            if args.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            no_flags()?;
            args.iter()
                .map(|v| match v.trim() {
                    "" => Err("VOLUME specified can not be an empty string".to_string()),
                    v => Ok(v.to_string()),
                })
                .collect::<Result<_, _>>()
                .map(Kind::Volume)
        }
        // Docker checks neither STOPSIGNAL's nor ARG's flags.
        "stopsignal" => Ok(Kind::Stopsignal(exactly_one(args, "STOPSIGNAL")?)),
        "arg" => arg(args),
        "shell" => {
            no_flags()?;
            if args.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Ok(Kind::Shell(args.clone()))
        }
        _ => Err(with_suggestion(
            format!("unknown instruction: {}", node.cmd),
            &node.cmd,
            INSTRUCTIONS,
            false,
        )),
    }
}

/// The one argument of MAINTAINER, WORKDIR, USER, STOPSIGNAL.
fn exactly_one(args: &[String], instruction: &str) -> Result<String, String> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(format!("{instruction} requires exactly one argument")),
    }
}

/// `parseKvps`: ENV's and LABEL's key, value, key, value, … as pairs.
fn pairs(args: &[String], instruction: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(format!("{instruction} requires at least one argument"));
    }
    if !args.len().is_multiple_of(2) {
        return Err(format!("bad input to {instruction}, too many arguments"));
    }
    args.chunks(2)
        .map(|kv| match kv {
            [k, _] if k.is_empty() => Err(format!("{instruction} names can not be blank")),
            [k, v] => Ok((k.clone(), v.clone())),
            _ => Err(format!("bad input to {instruction}, too many arguments")),
        })
        .collect()
}

/// COPY's and ADD's flags, sources and destination.
fn sources_and_dest(
    node: &Node,
    instruction: &str,
    declared: &[(&str, FlagKind)],
) -> Result<(Flags, Vec<String>, String), String> {
    let Some((dest, srcs)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(format!(
            "{instruction} requires at least two arguments, but only one was provided. \
             Destination could not be determined"
        ));
    };
    let flags = Flags::parse(&node.flags, declared)?;
    let buildkit_only = flags.used().find(|f| match *f {
        "link" | "parents" | "keep-git-dir" => flags.is_true(f),
        "checksum" | "exclude" => true,
        _ => false,
    });
    if let Some(flag) = buildkit_only {
        return Err(needs_buildkit(flag));
    }
    // Heredocs in shell form were refused by the parser; a JSON-form
    // `<<EOF` would be one to Docker too.
    if heredoc::is_heredoc_word(dest) || srcs.iter().any(|s| heredoc::is_heredoc_word(s)) {
        return Err(HEREDOC.into());
    }
    Ok((flags, srcs.to_vec(), dest.clone()))
}

/// `parseBuildStageName`: FROM's arguments are `image` or `image AS name`.
fn stage_name(args: &[String]) -> Result<Option<String>, String> {
    match args {
        [_] => Ok(None),
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::error::go_quote(name)
                ));
            }
            Ok(Some(lower))
        }
        _ => Err("FROM requires either one or three arguments".into()),
    }
}

/// ONBUILD: any trigger but ONBUILD, FROM and MAINTAINER; kept as text.
fn onbuild(node: &Node) -> Result<Kind, String> {
    let Some(trigger) = node.args.first() else {
        return Err("ONBUILD requires at least one argument".into());
    };
    Flags::parse(&node.flags, &[])?;
    let trigger = trigger.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
        }
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    // Docker's `(?i)^\s*ONBUILD\s*` removed from the line (RE2 `\s`).
    let re2_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let text = node.original.trim_start_matches(re2_space);
    let text = match text.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => &text[7..],
        _ => text,
    };
    Ok(Kind::Onbuild(
        text.trim_start_matches(re2_space).to_string(),
    ))
}

/// ARG: names with optional defaults.
fn arg(args: &[String]) -> Result<Kind, String> {
    if args.is_empty() {
        return Err("ARG requires at least one argument".into());
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".to_string()),
            Some((name, default)) => Ok(ArgDecl {
                name: name.to_string(),
                default: Some(default.to_string()),
            }),
            None => Ok(ArgDecl {
                name: a.clone(),
                default: None,
            }),
        })
        .collect::<Result<_, _>>()
        .map(Kind::Arg)
}

/// RUN's, CMD's and ENTRYPOINT's command (`handleJSONArgs`).
fn command_form(node: &Node) -> CommandForm {
    if node.json {
        CommandForm::Exec(node.args.clone())
    } else {
        CommandForm::Shell(node.args.join(" "))
    }
}
