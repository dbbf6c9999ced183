//! Finding heredocs (`RUN <<EOF`), which the classic builder cannot run:
//! Docker's parser reads them and the classic builder then ignores their
//! bodies (a `RUN <<EOF` would run `sh -c '<<EOF'`), so they are refused.
//!
//! Detection follows buildkit's parser (`heredocsFromLine`): only RUN, COPY
//! and ADD in shell form (also as an ONBUILD trigger); the line is split
//! into words keeping quotes and escapes, and a word of the form
//! `[fd]<<[-]NAME` with a non-empty single-word NAME is a heredoc.

use crate::expand::{Mode, words_with};
use crate::node::Node;

/// Whether `node` (a whole line) opens a heredoc.
pub(crate) fn has_heredoc(node: &Node) -> bool {
    let effective = match (&node.sub, node.cmd.eq_ignore_ascii_case("onbuild")) {
        (Some(sub), true) => sub.as_ref(),
        _ => node,
    };
    let cmd = effective.cmd.to_lowercase();
    if !matches!(cmd.as_str(), "run" | "copy" | "add") || effective.json {
        return false;
    }
    if !node.original.contains("<<") {
        return false;
    }
    let raw = Mode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
    };
    // buildkit's parser lexes heredocs with `\` whatever the escape directive.
    let Some(words) = words_with(&node.original, '\\', raw) else {
        return false;
    };
    words.iter().any(|w| is_heredoc_word(w))
}

/// buildkit's `^(\d*)<<(-?)([^<]*)$` with a name that is one word.
pub(crate) fn is_heredoc_word(word: &str) -> bool {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let name = rest.strip_prefix('-').unwrap_or(rest);
    if name.is_empty() || name.contains('<') {
        return false;
    }
    let plain = Mode {
        skip_unset: true,
        ..Mode::default()
    };
    words_with(name, '\\', plain).is_some_and(|w| w.len() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        assert!(is_heredoc_word("<<EOF"));
        assert!(is_heredoc_word("<<-EOF"));
        assert!(is_heredoc_word("3<<\"END\""));
        assert!(!is_heredoc_word("a<<EOF"));
        assert!(!is_heredoc_word("<<"));
        assert!(!is_heredoc_word("<<<here"));
    }
}
