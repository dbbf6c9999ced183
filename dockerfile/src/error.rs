//! The crate's one error type.

/// A Dockerfile Docker's classic builder would refuse, or a word its
/// variable substitution cannot process. `message` is worded as Docker
/// words it (first letter lowercased), so the client sees what it would
/// see from dockerd.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.line, .message))]
pub struct Error {
    /// The 1-based line where the instruction at fault starts. 0 when no
    /// line is known: [`expand`](crate::expand) sees only a word, so its
    /// caller, who knows the instruction, should set it.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Error {
    /// An error at `line` (1-based; 0 for "not known").
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        Error {
            line,
            message: message.into(),
        }
    }
}

/// Docker's "dockerfile parse error on line N: …"; only the message when
/// no line is known (rather than a misleading "line 0").
fn render(line: &usize, message: &str) -> String {
    if *line == 0 {
        message.to_string()
    } else {
        format!("dockerfile parse error on line {line}: {message}")
    }
}

/// A string quoted as Go's `%q` does for the strings Dockerfiles hold, so
/// messages that quote input read as Docker's do.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line() {
        assert_eq!(
            Error::new(3, "unknown instruction: FOO").to_string(),
            "dockerfile parse error on line 3: unknown instruction: FOO"
        );
        assert_eq!(Error::new(0, "bad").to_string(), "bad");
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\td"), "\"a\\\"b\\\\c\\td\"");
        assert_eq!(go_quote("x\u{1}"), "\"x\\x01\"");
    }
}
