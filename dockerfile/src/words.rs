//! Word splitting of instruction arguments, as buildkit's line parsers
//! (frontend/dockerfile/parser/line_parsers.go) do it.
//!
//! These splitters only find where words begin and end: quotes and escape
//! characters stay in the words, as in Docker. Docker removes them later,
//! when the builder runs each word through its variable substitution
//! (`expand`), and so must the caller: unquoting here, before the
//! expansion, would make `'$HOME'` expand and leave `"a\"b"` unbalanced.

/// Docker's `reWhitespace` (`[\t\v\f\r ]+`): the separator of
/// whitespace-delimited arguments and of the command from its arguments.
pub(crate) fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// `parseStringsWhitespaceDelimited`: `rest` split on runs of separators.
pub(crate) fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_separator)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `rest` split at its first run of separators (Go's
/// `reWhitespace.Split(rest, 2)`).
pub(crate) fn split_first_word(rest: &str) -> (&str, Option<&str>) {
    match rest.find(is_separator) {
        Some(i) => (&rest[..i], Some(rest[i..].trim_start_matches(is_separator))),
        None => (rest, None),
    }
}

/// `parseWords`: words split on unquoted, unescaped whitespace, with their
/// quotes and escape characters kept. The escape character escapes
/// anything outside quotes and inside double quotes; nothing inside single
/// quotes.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    // An escape character at the very end is dropped.
                    pos += 1;
                    continue;
                }
                // Outside quotes the escape and what it escapes are both
                // kept, even a quote or a blank.
                word.push(ch);
                pos += 1;
                word.push(chars[pos]);
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            word.push(chars[pos]);
            pos += 1;
            continue;
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `parseNameVal`, for ENV and LABEL: `key=value …` pairs, or the legacy
/// `KEY value with spaces` form (one key, the rest of the line its value).
/// `instruction` names the instruction in errors.
pub(crate) fn name_val(
    rest: &str,
    instruction: &str,
    escape: char,
) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        // Legacy form: split on whitespace, quotes or not.
        return match split_first_word(rest) {
            (key, Some(value)) => Ok(vec![(key.to_string(), value.to_string())]),
            (_, None) => Err(format!("{instruction} must have two arguments")),
        };
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "syntax error - can't find = in {}. Must be of the form: name=value",
                crate::error::go_quote(word)
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"A=1 B="two words" C=esc\ aped D='x y'"#, '\\'),
            vec!["A=1", r#"B="two words""#, r"C=esc\ aped", "D='x y'"]
        );
    }

    #[test]
    fn words_empty_quotes_are_a_word() {
        assert_eq!(parse_words(r#"A= "" B"#, '\\'), vec!["A=", r#""""#, "B"]);
    }

    #[test]
    fn words_escape_inside_double_but_not_single_quotes() {
        assert_eq!(
            parse_words(r#""a\" b" 'c\' d"#, '\\'),
            vec![r#""a\" b""#, r"'c\'", "d"]
        );
    }

    #[test]
    fn trailing_escape_is_dropped() {
        assert_eq!(parse_words("a b\\", '\\'), vec!["a", "b"]);
    }

    #[test]
    fn whitespace_split() {
        assert_eq!(whitespace_delimited("a \t b"), vec!["a", "b"]);
        assert!(whitespace_delimited("").is_empty());
        assert_eq!(split_first_word("K  v w"), ("K", Some("v w")));
    }
}
