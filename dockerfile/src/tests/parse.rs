//! Files as a whole: stages, lines and directives, errors, heredocs.

use super::*;
use crate::{CommandForm, Kind, expand, parse, parse_instruction};

// --- stages -----------------------------------------------------------------

#[test]
fn multi_stage_with_names_and_copy_from() {
    let df = ok("\
# syntax=docker/dockerfile:1
ARG GO=1.22
FROM golang:${GO} AS Build
WORKDIR /src
COPY . .
RUN go build -o /out/app ./cmd/app

FROM --platform=linux/amd64 alpine:3.19
COPY --from=build /out/app /usr/local/bin/app
COPY --from=0 /etc/passwd /tmp/
CMD [\"app\"]
");
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(build.index, 0);
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.from.line, 3);
    assert_eq!(build.from.original, "FROM golang:${GO} AS Build");
    assert_eq!(
        build.from.kind,
        Kind::From {
            image: "golang:${GO}".into(),
            platform: None,
            name: Some("build".into())
        }
    );
    assert_eq!(build.instructions.len(), 3);
    let run = &df.stages[1];
    assert_eq!(run.index, 1);
    assert_eq!(run.name, None);
    assert_eq!(
        run.from.kind,
        Kind::From {
            image: "alpine:3.19".into(),
            platform: Some("linux/amd64".into()),
            name: None
        }
    );
    assert_eq!(
        run.instructions[0].kind,
        Kind::Copy {
            from: Some("build".into()),
            chown: None,
            chmod: None,
            srcs: strings(&["/out/app"]),
            dest: "/usr/local/bin/app".into()
        }
    );
    assert_eq!(run.instructions[0].line, 9);
    assert_eq!(df.stage_index("BUILD"), Some(0));
    assert_eq!(df.stage_index("1"), Some(1));
    assert_eq!(df.stage_index("2"), None);
    assert_eq!(df.stage_index("nope"), None);
}

#[test]
fn duplicate_stage_names_fail_at_the_second() {
    let e = err("FROM a AS x\nRUN true\nFROM b as X\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.message, "x stage name already used");
}

#[test]
fn from_forms_and_errors() {
    assert_eq!(
        err("FROM a b\n").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM\n").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a AS 1st\n").message,
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(err("FROM --plat=x a\n").message, "unknown flag: plat");
    let df = ok("from scratch as Final-Stage_1.0\n");
    assert_eq!(df.stages[0].name.as_deref(), Some("final-stage_1.0"));
}

#[test]
fn missing_from() {
    let e = err("# comment\n\nRUN echo hi\nFROM alpine\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.message, "no build stage in current context");
    let e = err("ARG A=1\nARG B\n");
    assert_eq!(e.message, "dockerfile contains no stages to build");
    let e = err("# only a comment\n\n");
    assert_eq!(e.message, "file with no instructions");
    assert_eq!(err("").message, "file with no instructions");
}

#[test]
fn instructions_are_case_insensitive() {
    let df = ok("from alpine\nRun echo a\nrUN echo b\ncmd [\"sh\"]\n");
    let s = &df.stages[0];
    assert_eq!(s.instructions.len(), 3);
    assert_eq!(s.instructions[1].original, "rUN echo b");
    assert_eq!(
        s.instructions[2].kind,
        Kind::Cmd(CommandForm::Exec(strings(&["sh"])))
    );
}

// --- lines --------------------------------------------------------------------

#[test]
fn continuation_with_comments_inside() {
    let instrs = last_stage(
        "FROM debian
RUN apt-get update \\
    # the compilers
    && apt-get install -y gcc \\
  # make too
    make \\
    && rm -rf /var/lib/apt/lists/*
USER nobody
",
    );
    assert_eq!(instrs[0].line, 2);
    assert_eq!(
        instrs[0].original,
        "RUN apt-get update     && apt-get install -y gcc     make     && rm -rf /var/lib/apt/lists/*"
    );
    assert_eq!(
        instrs[0].kind,
        Kind::Run {
            cmd: CommandForm::Shell(
                "apt-get update     && apt-get install -y gcc     make     && rm -rf /var/lib/apt/lists/*"
                    .into()
            )
        }
    );
    assert_eq!(instrs[1].line, 8);
}

#[test]
fn empty_continuation_lines_warn() {
    let df = ok("FROM a\nRUN echo a \\\n\n    b\n");
    assert_eq!(
        df.warnings,
        strings(&[
            "Empty continuation line found in: RUN echo a     b",
            "Empty continuation lines will become errors in a future release."
        ])
    );
    assert!(ok("FROM a\nRUN x\n").warnings.is_empty());
}

#[test]
fn escaped_backslash_at_line_end_does_not_continue() {
    let instrs = last_stage("FROM a\nRUN echo \\\\\nRUN echo b\n");
    assert_eq!(instrs.len(), 2);
    assert_eq!(
        instrs[0].kind,
        Kind::Run {
            cmd: CommandForm::Shell("echo \\\\".into())
        }
    );
}

#[test]
fn crlf_and_bom() {
    let df = ok("\u{feff}FROM a\r\nRUN echo a \\\r\n  b\r\n");
    assert_eq!(df.stages[0].instructions[0].original, "RUN echo a   b");
}

#[test]
fn escape_directive_backtick() {
    let df = ok("# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
COPY C:\\src\\app C:\\app\\
RUN dir C:\\ `
    && echo done
ENV P=C:\\tools `
    Q=x
");
    assert_eq!(df.escape, '`');
    let s = &df.stages[0].instructions;
    assert_eq!(
        s[0].kind,
        Kind::Copy {
            from: None,
            chown: None,
            chmod: None,
            srcs: strings(&["C:\\src\\app"]),
            dest: "C:\\app\\".into()
        }
    );
    assert_eq!(s[1].original, "RUN dir C:\\     && echo done");
    assert_eq!(
        s[2].kind,
        Kind::Env(pairs(&[("P", "C:\\tools"), ("Q", "x")]))
    );
    // With ` as escape, `\` is an ordinary character when expanding too.
    assert_eq!(
        expand("C:\\tools", &no_vars, df.escape).unwrap(),
        "C:\\tools"
    );
}

#[test]
fn directive_errors_and_late_directives() {
    let e = err("# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "only one escape parser directive can be used")
    );
    let e = err("# escape=x\nFROM a\n");
    assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
    // After an instruction (or any other comment) it is only a comment.
    let df = ok("FROM a\n# escape=`\nRUN a \\\n b\n");
    assert_eq!(df.escape, '\\');
    assert_eq!(df.stages[0].instructions[0].original, "RUN a  b");
}

// --- errors and their lines -----------------------------------------------------

#[test]
fn unknown_instruction_with_line_and_hint() {
    let e = err("FROM alpine\n\n# c\nRUNN echo\n");
    assert_eq!(e.line, 4);
    assert_eq!(e.message, "unknown instruction: RUNN (did you mean RUN?)");
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 4: unknown instruction: RUNN (did you mean RUN?)"
    );
    let e = err("FROM alpine\nXYZZY hello\n");
    assert_eq!(e.message, "unknown instruction: XYZZY");
}

#[test]
fn error_line_is_where_a_continued_instruction_starts() {
    let e = err("FROM a\nRUN echo \\\n  one \\\n  two\nCOPY \\\n  onlyone\n");
    assert_eq!(e.line, 5);
    assert_eq!(
        e.message,
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
}

#[test]
fn syntax_errors_anywhere_come_before_instruction_errors() {
    // Docker's parser reads every line before the instructions are checked.
    let e = err("FROM a\nFOO bar\nENV lonely\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "ENV must have two arguments")
    );
}

// --- heredocs -----------------------------------------------------------------------

#[test]
fn heredocs_are_refused() {
    let e = err("FROM a\nRUN echo x\nRUN <<EOF\necho hi\nEOF\n");
    assert_eq!(e.line, 3);
    assert_eq!(
        e.message,
        "heredocs are not supported by the classic builder"
    );
    assert_eq!(err("FROM a\nCOPY <<-EOT /etc/x\nhi\nEOT\n").line, 2);
    assert_eq!(err("FROM a\nRUN 3<<\"END\" cat\nEND\n").line, 2);
    assert_eq!(err("FROM a\nONBUILD RUN cat <<EOF\nx\nEOF\n").line, 2);
    assert_eq!(
        body_err("COPY [\"<<EOF\", \"/x\"]"),
        "heredocs are not supported by the classic builder"
    );
}

#[test]
fn things_that_look_like_heredocs_but_are_not() {
    let instrs = last_stage(
        "FROM a\nRUN echo \"<<EOF\"\nRUN [\"cat\", \"<<EOF\"]\nRUN x<<y\nENV A=<<B\nRUN echo a <<< b\n",
    );
    assert_eq!(instrs.len(), 5);
}

// --- robustness -------------------------------------------------------------------------

#[test]
fn never_panics_on_garbage() {
    // Fragments that exercise every path, glued in pseudo-random order.
    const PIECES: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "LABEL ",
        "ARG ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "SHELL ",
        "CMD ",
        "EXPOSE ",
        "VOLUME ",
        "USER ",
        "WORKDIR ",
        "# escape=`",
        "# syntax=x",
        "\n",
        "\r\n",
        "\\\n",
        "`\n",
        "\\",
        "`",
        " ",
        "\t",
        "\"",
        "'",
        "[",
        "]",
        "\"a\",",
        "=",
        "--",
        "--from=",
        "--mount=x",
        "--interval=",
        "1ms",
        "CMD",
        "NONE",
        "AS",
        "<<EOF",
        "<<",
        "${",
        "}",
        ":-",
        "#",
        "%",
        "/",
        "$",
        "é",
        "\u{feff}",
        "\u{a0}",
        "0",
        "x",
        "AS 1",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let len = (next() % 24) as usize;
        let text: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let _ = parse(&text);
        let _ = parse(&format!("FROM a\n{text}"));
        let _ = parse_instruction(&text, '\\');
        let _ = expand(&text, &no_vars, '\\');
        let _ = crate::expand_words(&text, &no_vars, '`');
    }
}
