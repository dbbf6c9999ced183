//! Physical lines to logical ones, as the parser of moby/buildkit
//! (frontend/dockerfile/parser/parser.go `Parse`) reads them: parser
//! directives at the top, comment lines, and line continuations.
//!
//! Docker's rules, kept exactly because they decide what `RUN` runs and
//! what "Step N/M : …" prints:
//! - the first line of an instruction is trimmed of leading whitespace,
//!   its continuation lines are not (their indentation stays in the text);
//! - a line continues when it ends in the escape character plus optional
//!   spaces/tabs, unless that escape character is itself escaped (`\\`);
//!   the escape character and those blanks are removed;
//! - inside a continuation, comment lines are dropped and whitespace-only
//!   lines are dropped with a warning; neither ends the instruction.

use crate::error::Error;

/// One instruction's text, continuations joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// The joined text (Docker's `Node.Original`, not trimmed).
    pub text: String,
    /// The 1-based line the instruction starts on.
    pub start: usize,
}

/// What [`scan`] found.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub lines: Vec<LogicalLine>,
    pub escape: char,
    pub syntax: Option<String>,
    pub warnings: Vec<String>,
    /// How many physical lines the text has (where Docker places errors
    /// about the file as a whole).
    pub line_count: usize,
}

/// The byte-order mark Docker strips from the first line.
const BOM: char = '\u{feff}';

/// Splits `text` into logical lines. `directives` is false for ONBUILD
/// triggers, which are a single line with the escape character given.
pub(crate) fn scan(text: &str, escape: char, directives: bool) -> Result<Scanned, Error> {
    let mut d = Directives {
        escape,
        syntax: None,
        seen: Vec::new(),
        done: !directives,
    };
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let mut physical = text.split_inclusive('\n');
    let mut current = 0usize;
    while let Some(raw) = physical.next() {
        let raw = if current == 0 {
            raw.strip_prefix(BOM).unwrap_or(raw)
        } else {
            raw
        };
        let token = trim_newline(raw).trim_start();
        d.possible_directive(token)
            .map_err(|m| Error::new(current + 1, m))?;
        let token = if is_comment(token) { "" } else { token };
        current += 1;
        let start = current;
        let (first, mut end_of_line) = trim_continuation(token, d.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = physical.next() else { break };
            current += 1;
            if is_comment(raw) {
                continue;
            }
            let token = trim_newline(raw);
            if token.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(token, d.escape);
            line.push_str(part);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push(format!("Empty continuation line found in: {line}"));
        }
        lines.push(LogicalLine { text: line, start });
    }
    if !warnings.is_empty() {
        // Docker's PrintWarnings ends the list with this notice.
        warnings.push("Empty continuation lines will become errors in a future release.".into());
    }
    Ok(Scanned {
        lines,
        escape: d.escape,
        syntax: d.syntax,
        warnings,
        line_count: current,
    })
}

/// The line without its line ending (any trailing `\r`/`\n`).
fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// A comment line: `#` after optional leading whitespace.
fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Docker's `lineContinuationRegex`
/// (`([^E])E[ \t]*$|^E[ \t]*$` for escape character E): the line without
/// its continuation and whether the instruction ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, false);
    }
    (line, true)
}

/// The state of directive parsing (buildkit's `DirectiveParser`):
/// directives are only read until the first line that is not one.
struct Directives {
    escape: char,
    syntax: Option<String>,
    seen: Vec<String>,
    done: bool,
}

impl Directives {
    /// Looks at a line that may be a directive (`# name=value`); the
    /// first line that is not one ends the directives.
    fn possible_directive(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = name.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        match key.as_str() {
            "escape" => {
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ));
                    }
                };
            }
            "syntax" => self.syntax = Some(value.to_string()),
            // `check` configures BuildKit's linter; nothing to do here.
            _ => {}
        }
        self.seen.push(key);
        Ok(())
    }
}

/// Go's RE2 `\s`: ASCII only, and without `\v`.
fn is_re2_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Matches buildkit's directive syntax: `#`, whitespace, then
/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let after = rest[name_len..].trim_start_matches(is_re2_space);
    let after = after.strip_prefix('=')?;
    let value = after.trim_matches(is_re2_space);
    if !value.is_empty() {
        return Some((name, value));
    }
    // Only blanks after `=`: the lazy `(.+?)` still takes one of them.
    let last = after.char_indices().last()?.0;
    Some((name, &after[last..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Scanned) -> Vec<(&str, usize)> {
        s.lines.iter().map(|l| (l.text.as_str(), l.start)).collect()
    }

    #[test]
    fn continuation_keeps_indentation_of_later_lines() {
        let s = scan(
            "FROM a\n  RUN apt-get update && \\\n    apt-get install -y x\n",
            '\\',
            true,
        )
        .unwrap();
        assert_eq!(
            texts(&s),
            vec![
                ("FROM a", 1),
                ("RUN apt-get update &&     apt-get install -y x", 2)
            ]
        );
    }

    #[test]
    fn escaped_escape_does_not_continue() {
        let s = scan("RUN echo \\\\\nRUN b", '\\', true).unwrap();
        assert_eq!(texts(&s), vec![("RUN echo \\\\", 1), ("RUN b", 2)]);
    }

    #[test]
    fn continuation_with_trailing_blanks_and_crlf() {
        let s = scan("RUN a \\  \r\n b\r\n", '\\', true).unwrap();
        assert_eq!(texts(&s), vec![("RUN a  b", 1)]);
    }

    #[test]
    fn directive_forms() {
        assert_eq!(directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(directive("#escape = \\ "), Some(("escape", "\\")));
        assert_eq!(
            directive("# syntax=docker/dockerfile:1"),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(directive("# a comment"), None);
        assert_eq!(directive("# 1x=y"), None);
    }

    #[test]
    fn directives_end_at_first_other_line() {
        let s = scan("# comment\n# escape=`\nFROM a\n", '\\', true).unwrap();
        assert_eq!(s.escape, '\\');
        let s = scan("# escape=`\n\n# syntax=x\nFROM a\n", '\\', true).unwrap();
        assert_eq!(s.escape, '`');
        assert_eq!(s.syntax, None);
    }

    #[test]
    fn bom_is_stripped() {
        let s = scan("\u{feff}# escape=`\nFROM a `\n  b", '\\', true).unwrap();
        assert_eq!(s.escape, '`');
        assert_eq!(texts(&s), vec![("FROM a   b", 2)]);
    }
}
