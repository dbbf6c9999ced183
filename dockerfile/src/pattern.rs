//! The shell patterns of `${name#pattern}`, `${name%pattern}` and
//! `${name/pattern/replacement}`, as buildkit reads them
//! (`convertShellPatternToRegex`): `*` any run of characters, `?` any one
//! character, `\*` `\?` `\\` the character itself, `\}` and `\/` the
//! character (the backslash only kept it from ending the `${…}`); no
//! bracket expressions. buildkit compiles them to regular expressions; a
//! direct matcher gives the same shortest/longest matches without one.

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// `*`
    Star,
    /// `?`
    Any,
    /// A literal character.
    Lit(char),
}

/// Reads a pattern. Its escape character is always `\`, whatever the
/// Dockerfile's escape directive says (as in buildkit).
pub(crate) fn compile(pattern: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => match chars.peek() {
                Some('}' | '/') => {}
                _ => match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => toks.push(Tok::Lit(e)),
                    other => {
                        let shown = other.unwrap_or('\u{fffd}');
                        return Err(format!("invalid escape '\\{shown}'"));
                    }
                },
            },
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Whether `toks` matches all of `s`.
fn matches(toks: &[Tok], s: &[char]) -> bool {
    let (mut t, mut i) = (0, 0);
    // Where to resume after the last `*`: token after it, string position.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(t) {
            Some(Tok::Any) => {
                t += 1;
                i += 1;
            }
            Some(Tok::Lit(c)) if *c == s[i] => {
                t += 1;
                i += 1;
            }
            Some(Tok::Star) => {
                star = Some((t + 1, i));
                t += 1;
            }
            _ => match star {
                Some((after, from)) => {
                    t = after;
                    i = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    toks[t..].iter().all(|k| *k == Tok::Star)
}

/// `${name#pattern}` (shortest) and `${name##pattern}` (`greedy`,
/// longest): `value` without the prefix the pattern matches, if any.
pub(crate) fn trim_prefix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut ends: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new((0..=n).rev())
    } else {
        Box::new(0..=n)
    };
    match ends.find(|&e| matches(toks, &chars[..e])) {
        Some(e) => chars[e..].iter().collect(),
        None => value.to_string(),
    }
}

/// `${name%pattern}` (shortest) and `${name%%pattern}` (`greedy`,
/// longest): `value` without the suffix the pattern matches, if any.
pub(crate) fn trim_suffix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut starts: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new(0..=n)
    } else {
        Box::new((0..=n).rev())
    };
    match starts.find(|&s| matches(toks, &chars[s..])) {
        Some(s) => chars[..s].iter().collect(),
        None => value.to_string(),
    }
}

/// The leftmost match at or after `from`, longest at that position.
fn find(toks: &[Tok], chars: &[char], from: usize) -> Option<(usize, usize)> {
    (from..=chars.len()).find_map(|start| {
        (start..=chars.len())
            .rev()
            .find(|&end| matches(toks, &chars[start..end]))
            .map(|end| (start, end))
    })
}

/// `${name/pattern/replacement}` (first match) and
/// `${name//pattern/replacement}` (`all`, every match, as Go's
/// `ReplaceAllString` walks them: an empty match right after a match is
/// not replaced).
pub(crate) fn replace(toks: &[Tok], value: &str, replacement: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    if !all {
        return match find(toks, &chars, 0) {
            Some((a, b)) => {
                let mut out: String = chars[..a].iter().collect();
                out.push_str(replacement);
                out.extend(&chars[b..]);
                out
            }
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= chars.len() {
        let Some((a, b)) = find(toks, &chars, search) else {
            break;
        };
        out.extend(&chars[last_end..a]);
        if b > last_end || a == 0 {
            out.push_str(replacement);
        }
        last_end = b;
        search = if search + 1 > b { search + 1 } else { b };
    }
    out.extend(&chars[last_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Tok> {
        compile(s).unwrap()
    }

    #[test]
    fn prefix_and_suffix() {
        assert_eq!(trim_prefix(&p("*/"), "a/b/c", false), "b/c");
        assert_eq!(trim_prefix(&p("*/"), "a/b/c", true), "c");
        assert_eq!(trim_suffix(&p(".*"), "f.tar.gz", false), "f.tar");
        assert_eq!(trim_suffix(&p(".*"), "f.tar.gz", true), "f");
        assert_eq!(trim_prefix(&p("x"), "abc", false), "abc");
    }

    #[test]
    fn replacements() {
        assert_eq!(replace(&p("o"), "foo boo", "0", false), "f0o boo");
        assert_eq!(replace(&p("o"), "foo boo", "0", true), "f00 b00");
        assert_eq!(replace(&p("b*"), "abcbd", "X", false), "aX");
        assert_eq!(replace(&p("*"), "", "x", false), "x");
    }

    #[test]
    fn escapes() {
        assert_eq!(p("\\*a"), vec![Tok::Lit('*'), Tok::Lit('a')]);
        assert_eq!(p("a\\}"), vec![Tok::Lit('a'), Tok::Lit('}')]);
        assert_eq!(compile("\\x").unwrap_err(), "invalid escape '\\x'");
    }
}
