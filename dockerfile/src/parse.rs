//! The whole file: lines, then syntax nodes, then typed instructions
//! grouped into stages. The phases run in Docker's order (its parser reads
//! every line before any instruction is interpreted), so the error
//! reported for a file with several faults is the one Docker reports.

use crate::error::Error;
use crate::lines::{self, LogicalLine};
use crate::node::{Node, node_from_line};
use crate::{Dockerfile, Instr, Kind, Stage, heredoc, instructions};

/// Parses a Dockerfile as Docker's classic builder does: parser
/// directives, line continuations, every instruction's arguments, and the
/// grouping into global ARGs and stages. Fails as `docker build` would,
/// with the line where the offending instruction starts.
pub fn parse(text: &str) -> Result<Dockerfile, Error> {
    let scanned = lines::scan(text, '\\', true)?;
    let last_line = scanned.line_count.max(1);
    if scanned.lines.is_empty() {
        return Err(Error::new(last_line, "file with no instructions"));
    }
    let escape = scanned.escape;
    let nodes = scanned
        .lines
        .iter()
        .map(|l| syntax(l, escape))
        .collect::<Result<Vec<_>, _>>()?;

    let mut global_args = Vec::new();
    let mut global_arg_instructions = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (node, line) in nodes.iter().zip(&scanned.lines) {
        let instr = instruction(node, line)?;
        match &instr.kind {
            Kind::Arg(decls) if stages.is_empty() => {
                global_args.extend(decls.iter().cloned());
                global_arg_instructions.push(instr);
            }
            Kind::From { name, .. } => stages.push(Stage {
                index: stages.len(),
                name: name.clone(),
                from: instr,
                instructions: Vec::new(),
            }),
            _ => match stages.last_mut() {
                Some(stage) => stage.instructions.push(instr),
                None => {
                    return Err(Error::new(line.start, "no build stage in current context"));
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(Error::new(
            last_line,
            "dockerfile contains no stages to build",
        ));
    }
    // dockerd finds a reused name when it reaches the second stage.
    for (i, stage) in stages.iter().enumerate() {
        if let Some(name) = &stage.name
            && stages[..i].iter().any(|s| s.name.as_ref() == Some(name))
        {
            return Err(Error::new(
                stage.from.line,
                format!("{name} stage name already used"),
            ));
        }
    }
    Ok(Dockerfile {
        escape,
        syntax: scanned.syntax,
        global_args,
        global_arg_instructions,
        stages,
        warnings: scanned.warnings,
    })
}

/// Parses one instruction given as text: an ONBUILD trigger
/// ([`Kind::Onbuild`]) run by a build that uses the image. Docker parses
/// triggers with `\` as escape character, whatever the Dockerfile that
/// recorded them used. Any instruction is accepted here, FROM included;
/// Docker refuses a FROM trigger when it runs it.
pub fn parse_instruction(text: &str, escape: char) -> Result<Instr, Error> {
    let scanned = lines::scan(text, escape, false)?;
    match scanned.lines.as_slice() {
        [] => Err(Error::new(
            scanned.line_count.max(1),
            "file with no instructions",
        )),
        [line] => instruction(&syntax(line, escape)?, line),
        [_, second, ..] => Err(Error::new(
            second.start,
            "onbuild trigger should be a single expression",
        )),
    }
}

/// A line's syntax node; heredocs refused.
fn syntax(line: &LogicalLine, escape: char) -> Result<Node, Error> {
    let node = node_from_line(&line.text, escape).map_err(|m| Error::new(line.start, m))?;
    if heredoc::has_heredoc(&node) {
        return Err(Error::new(line.start, instructions::HEREDOC));
    }
    Ok(node)
}

/// A node's typed instruction.
fn instruction(node: &Node, line: &LogicalLine) -> Result<Instr, Error> {
    let kind = instructions::kind(node).map_err(|m| Error::new(line.start, m))?;
    Ok(Instr {
        line: line.start,
        original: line.text.trim().to_string(),
        kind,
    })
}
