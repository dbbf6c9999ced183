//! The Dockerfile language as Docker's classic builder reads it.
//!
//! [`parse`] turns a Dockerfile into its global ARGs and stages, each
//! instruction typed ([`Kind`]) with its line and the text Docker prints in
//! "Step N/M : …". [`expand`] and [`expand_words`] are Docker's variable
//! substitution, which the builder applies to the arguments of ENV, LABEL,
//! ARG, COPY/ADD, WORKDIR, USER, VOLUME, EXPOSE, STOPSIGNAL and FROM as it
//! reaches them.
//!
//! Everything follows the parser dockerd uses (moby/buildkit
//! `frontend/dockerfile/parser` and `instructions`, the classic builder's
//! own checks in moby `builder/dockerfile`), in the same order, so that a
//! Dockerfile fails here when and where it fails with `docker build`:
//! line continuations and comment lines inside them, parser directives,
//! what counts as JSON (exec) form, word splitting, flags, and the error
//! messages (first letter lowercased). What the classic builder cannot do
//! is refused when parsing: heredocs, and the flags that need BuildKit.
//!
//! Arguments are kept as Docker keeps them until a step runs: **not
//! expanded and still quoted** (`ENV A="x y"` gives the value `"x y"`).
//! Run them through [`expand`] when the step runs, with the variables in
//! scope then; that removes the quotes and escapes too, as Docker's
//! `ProcessWord` does. Unquoting earlier would be wrong: `'$HOME'` must
//! stay literal and `"a\"b"` must keep its quote. RUN, CMD, ENTRYPOINT,
//! SHELL and HEALTHCHECK are not expanded by Docker (the shell does it).
//!
//! The lexing here is Docker's own rather than a general Dockerfile parser
//! (such as the `parse-dockerfile` crate): their readings differ on exactly
//! the points that decide what runs (`ENTRYPOINT []`, `\\` before a line
//! end, unknown ONBUILD triggers, error wording).

#![warn(missing_docs)]

mod error;
mod expand;
mod flags;
mod healthcheck;
mod heredoc;
mod instructions;
mod lines;
mod node;
mod parse;
mod pattern;
mod suggest;
mod words;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use expand::{expand, expand_words};
/// Go's `time.ParseDuration`, for the engine's other durations too.
pub use healthcheck::format_duration as format_go_duration;
pub use healthcheck::parse_duration as parse_go_duration;
pub use parse::{parse, parse_instruction};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` by the `escape` directive):
    /// give it to [`expand`] for this file's words.
    pub escape: char,
    /// The `syntax` directive's value, if any (the classic builder ignores
    /// it; BuildKit would use it as its frontend).
    pub syntax: Option<String>,
    /// The ARGs before the first FROM, in order (their defaults expand
    /// with the global ARGs before them only).
    pub global_args: Vec<ArgDecl>,
    /// The ARG instructions before the first FROM: Docker prints a step
    /// for each (one per instruction, not per name).
    pub global_arg_instructions: Vec<Instr>,
    /// The stages, in order; there is at least one.
    pub stages: Vec<Stage>,
    /// Lines to print before the build, each as Docker prints it after
    /// `[WARNING]: ` (empty continuation lines, then Docker's notice that
    /// they will become errors).
    pub warnings: Vec<String>,
}

impl Dockerfile {
    /// The stage a `--target` or `COPY --from` names: by its AS name (any
    /// case; names are stored lowercased), else by its number.
    pub fn stage_index(&self, name_or_index: &str) -> Option<usize> {
        let lower = name_or_index.to_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name_or_index
            .parse::<usize>()
            .ok()
            .filter(|&i| i < self.stages.len())
    }
}

/// One build stage: a FROM and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its position among the stages, from 0.
    pub index: usize,
    /// Its AS name, lowercased.
    pub name: Option<String>,
    /// The FROM instruction (its kind is [`Kind::From`]).
    pub from: Instr,
    /// The instructions after FROM.
    pub instructions: Vec<Instr>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instr {
    /// The 1-based line it starts on.
    pub line: usize,
    /// The instruction as Docker prints it in "Step N/M : …": its lines
    /// joined (escape character and line end removed, comment lines inside
    /// dropped; continuation lines keep their indentation), trimmed.
    pub original: String,
    /// What it says.
    pub kind: Kind,
}

/// What an instruction says. Strings are as written: not expanded, quotes
/// kept (see the crate docs), except where noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `FROM [--platform=p] image [AS name]`.
    From {
        /// The image (or stage) name, to expand with the global ARGs.
        image: String,
        /// `--platform`, to expand with the global ARGs.
        platform: Option<String>,
        /// The AS name, lowercased.
        name: Option<String>,
    },
    /// `RUN`; its flags all need BuildKit and are refused.
    Run {
        /// The command.
        cmd: CommandForm,
    },
    /// `CMD`.
    Cmd(CommandForm),
    /// `ENTRYPOINT`. `ENTRYPOINT []` and an ENTRYPOINT without arguments
    /// both clear the entrypoint in Docker.
    Entrypoint(CommandForm),
    /// `ENV k=v …` or `ENV k value`: keys and values, in order.
    Env(Vec<(String, String)>),
    /// `LABEL k=v …` (or Docker's legacy `LABEL k value`).
    Label(Vec<(String, String)>),
    /// `ARG name[=default] …`.
    Arg(Vec<ArgDecl>),
    /// `EXPOSE port[/proto] …`, sorted as Docker sorts them (bytewise);
    /// each to be split by [`expand_words`].
    Expose(Vec<String>),
    /// `VOLUME ["/a"]` or `VOLUME /a /b`: the paths, trimmed.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `WORKDIR path`.
    Workdir(String),
    /// `STOPSIGNAL signal`.
    Stopsignal(String),
    /// `MAINTAINER text` (deprecated, sets the image's author).
    Maintainer(String),
    /// `SHELL ["exe", "arg", …]` (JSON form only).
    Shell(Vec<String>),
    /// `COPY [--from=…] [--chown=…] [--chmod=…] src… dest`.
    Copy {
        /// `--from`: a stage name or index, or an image.
        from: Option<String>,
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod` (dockerd's classic builder refuses it when it runs
        /// the step: "the --chmod option requires BuildKit").
        chmod: Option<String>,
        /// The sources, at least one.
        srcs: Vec<String>,
        /// The destination.
        dest: String,
    },
    /// `ADD [--chown=…] [--chmod=…] src… dest`.
    Add {
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod` (refused by dockerd's classic builder at run time).
        chmod: Option<String>,
        /// The sources (paths or URLs), at least one.
        srcs: Vec<String>,
        /// The destination.
        dest: String,
    },
    /// `ONBUILD instruction`: the trigger as it goes into the image's
    /// OnBuild list (the line without `ONBUILD `, e.g. `RUN echo hi`), to
    /// be parsed by [`parse_instruction`] in the build that uses the image.
    Onbuild(String),
    /// `HEALTHCHECK [options] CMD …`, or `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
}

/// The two forms of RUN, CMD and ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// Shell form: the text given to the SHELL (`/bin/sh -c`), exactly as
    /// written after the instruction (continuations joined). Empty when
    /// the instruction had no arguments (Docker then runs the shell with
    /// no command, or for ENTRYPOINT clears it).
    Shell(String),
    /// Exec form (a JSON array of strings), not expanded.
    Exec(Vec<String>),
}

/// One name of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default after `=` (maybe empty), not expanded; `None` without `=`.
    pub default: Option<String>,
}

/// A HEALTHCHECK, as it goes into the image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", exe, args…]` (exec form) or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`, in nanoseconds; 0 when not given (Docker's default).
    pub interval_ns: i64,
    /// `--timeout`, in nanoseconds; 0 when not given.
    pub timeout_ns: i64,
    /// `--start-period`, in nanoseconds; 0 when not given.
    pub start_period_ns: i64,
    /// `--start-interval`, in nanoseconds; 0 when not given.
    pub start_interval_ns: i64,
    /// `--retries`; 0 when not given.
    pub retries: i64,
}
