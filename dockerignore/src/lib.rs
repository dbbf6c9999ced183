//! .dockerignore files as Docker reads them.
//!
//! The rules follow the docker CLI's `ReadDockerignore` (moby's
//! `patternmatcher/ignorefile.ReadAll`) for reading the file and moby's
//! `patternmatcher` for matching, so a build context sent by berth holds the
//! same files as one sent by `docker build`:
//!
//! * One pattern a line. Lines starting with `#` are comments; then each line
//!   is trimmed and blank lines are skipped. A leading `!` makes an exception
//!   that re-includes what it matches.
//! * A pattern is cleaned like Go's `filepath.Clean` and a leading `/` is
//!   dropped, so `/foo`, `./foo` and `foo/` all mean `foo` at the context
//!   root.
//! * The glob syntax is Go's `filepath.Match` (`*`, `?`, `[...]` with `^`
//!   negation, `\` escapes) plus `**`, which matches any number of path
//!   segments.
//! * A pattern matches a path when it matches the path itself or one of the
//!   path's parent directories, and the last pattern that matches decides.
//!
//! ```
//! # fn main() -> Result<(), dockerignore::Error> {
//! let patterns = dockerignore::Patterns::parse("docs\n!docs/keep.md\n")?;
//! assert!(patterns.excludes("docs/other.md"));
//! assert!(!patterns.excludes("docs/keep.md"));
//! assert!(patterns.may_include_below("docs"));
//! # Ok(())
//! # }
//! ```

use std::iter::Peekable;
use std::str::Chars;

/// Why a `.dockerignore` could not be read. The messages name the line (as
/// counted in the file, comments and blank lines included) so that the user
/// can find the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `!` with nothing after it: Docker refuses it rather than guessing.
    #[error(".dockerignore line {line}: \"!\": illegal exclusion pattern, '!' needs a pattern")]
    BareExclamation {
        /// 1-based line number.
        line: usize,
    },
    /// The pattern is not valid glob syntax.
    #[error(".dockerignore line {line}: {pattern:?}: {kind}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The line as written, trimmed.
        pattern: String,
        /// What is wrong with it.
        kind: SyntaxError,
    },
}

/// What is wrong with a glob. Go's `filepath.Match` rejects the same
/// patterns (it reports all of them as one "syntax error in pattern").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// A `[` without its `]`.
    #[error("unterminated character class")]
    UnterminatedClass,
    /// `[]` or `[^]`: a literal `]` has to be escaped as `\]`.
    #[error("empty character class")]
    EmptyClass,
    /// A `-` or `]` where a class character was expected, as in `[a-]` or
    /// `[-a]`; escape it with `\` to mean the character itself.
    #[error("bad character range")]
    BadRange,
    /// A `\` at the end of the pattern escapes nothing.
    #[error("trailing backslash")]
    TrailingBackslash,
}

/// The patterns of a `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

impl Patterns {
    /// Reads the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Patterns, Error> {
        let mut patterns = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            // Editors on Windows save a byte order mark; Docker drops it too.
            let raw = if index == 0 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            // As in Docker the comment test comes before trimming, so
            // "  #x" is a pattern for a file named "#x". Trimming also
            // removes the '\r' of a "\r\n" line end.
            if raw.starts_with('#') {
                continue;
            }
            let written = raw.trim();
            if written.is_empty() {
                continue;
            }
            let (exception, glob) = match written.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, written),
            };
            if glob.is_empty() {
                return Err(Error::BareExclamation { line });
            }
            let syntax = |kind| Error::Syntax {
                line,
                pattern: written.to_string(),
                kind,
            };
            let cleaned = clean(glob);
            let relative = match cleaned.strip_prefix('/') {
                Some(rest) => rest,
                None => &cleaned,
            };
            patterns.push(Pattern {
                exception,
                segments: compile(relative).map_err(syntax)?,
            });
        }
        Ok(Patterns { patterns })
    }

    /// True when there are no patterns, so nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern is an exception (`!...`). Without exceptions
    /// an excluded directory can be skipped whole.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left
    /// out of the build context: the last pattern matching it or one of its
    /// parent directories decides, and an exception re-includes.
    pub fn excludes(&self, path: &str) -> bool {
        let path = split_path(path);
        self.patterns
            .iter()
            .rev()
            .find(|p| p.matches_or_parent_matches(&path))
            .is_some_and(|p| !p.exception)
    }

    /// Whether some path strictly below the directory `dir` may end up in
    /// the context. A walker asks this for an excluded directory to learn
    /// whether it must descend into it (as the docker CLI does) or can skip
    /// it whole.
    ///
    /// False is a promise that everything below `dir` is excluded; true
    /// only means "maybe", so walking is needed. Only an exception that
    /// comes after the last pattern excluding `dir` can bring a file back,
    /// and only if it can match a path below `dir`; unlike the docker CLI's
    /// prefix test, this also sees wildcard exceptions like `!**/keep.md`.
    /// When `dir` itself is not excluded the answer is true.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = split_path(dir);
        let decisive = self
            .patterns
            .iter()
            .rposition(|p| p.matches_or_parent_matches(&dir));
        match decisive {
            Some(index) if !self.patterns[index].exception => self.patterns[index + 1..]
                .iter()
                .any(|p| p.exception && p.reach(&dir).pattern_left),
            _ => true,
        }
    }
}

/// One line of the file, compiled.
#[derive(Debug, Clone)]
struct Pattern {
    exception: bool,
    segments: Vec<Segment>,
}

/// What a pattern's path shows about how it matches a path.
struct Reach {
    /// `whole[k]`: the pattern matches the first `k` segments of the path.
    whole: Vec<bool>,
    /// The whole path matches a proper prefix of the pattern, so the rest
    /// of the pattern may match something below the path.
    pattern_left: bool,
}

impl Pattern {
    /// moby's `MatchesOrParentMatches`: the path itself or one of its
    /// parent directories matches. The root (an empty path) is only
    /// matched by itself.
    fn matches_or_parent_matches(&self, path: &[Vec<char>]) -> bool {
        let whole = self.reach(path).whole;
        if path.is_empty() {
            whole[0]
        } else {
            whole[1..].iter().any(|&m| m)
        }
    }

    /// Matches the pattern against every prefix of `path` at once.
    ///
    /// This is dynamic programming over (pattern segment, path segment)
    /// rather than recursive backtracking, so patterns with many `**`
    /// stay linear in the pattern times the path length.
    fn reach(&self, path: &[Vec<char>]) -> Reach {
        // row[d]: the pattern segments seen so far match path[..d].
        let mut row = vec![false; path.len() + 1];
        row[0] = true;
        let mut pattern_left = false;
        for segment in &self.segments {
            pattern_left |= row[path.len()];
            let mut next = vec![false; path.len() + 1];
            match segment {
                Segment::Globstar => {
                    let mut seen = false;
                    for (d, reached) in row.iter().enumerate() {
                        seen |= *reached;
                        next[d] = seen;
                    }
                }
                Segment::Glob(glob) => {
                    for (d, name) in path.iter().enumerate() {
                        next[d + 1] = row[d] && glob_matches(glob, name);
                    }
                }
            }
            row = next;
        }
        Reach {
            whole: row,
            pattern_left,
        }
    }
}

/// A path segment of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `**`: any number of path segments, none included.
    Globstar,
    /// A glob for one name.
    Glob(Vec<Token>),
}

/// One element of a glob for a single name.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `?`
    Any,
    /// `*`
    Star,
    /// `[...]`
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether a single-character token matches `c`.
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(expected) => *expected == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// Splits a path into names. Empty and `.` names are dropped so that
/// `a//b`, `./a/b` and `a/b/` are all `a/b`.
fn split_path(path: &str) -> Vec<Vec<char>> {
    path.split('/')
        .filter(|name| !name.is_empty() && *name != ".")
        .map(|name| name.chars().collect())
        .collect()
}

/// Go's `filepath.Clean` for '/'-separated paths: collapses repeated
/// slashes, drops `.` and resolves `..` lexically. Docker cleans each
/// pattern this way before compiling it.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut names: Vec<&str> = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => match names.last() {
                Some(&last) if last != ".." => {
                    names.pop();
                }
                // `..` above the root is the root.
                _ if rooted => {}
                _ => names.push(".."),
            },
            _ => names.push(name),
        }
    }
    let joined = names.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Compiles a cleaned, relative pattern into path segments.
fn compile(pattern: &str) -> Result<Vec<Segment>, SyntaxError> {
    // "." (from ".", "./" or "/") names the context root only.
    if pattern == "." {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    for tokens in tokenize(pattern)? {
        match tokens.as_slice() {
            // Only left by a pattern of "/" alone.
            [] => {}
            [Token::Star, Token::Star] => segments.push(Segment::Globstar),
            // `**.md` is `**/*.md`: it is how Docker (a suffix match) treats
            // a leading `**` glued to a name, and what such a pattern means.
            [Token::Star, Token::Star, rest @ ..] => {
                segments.push(Segment::Globstar);
                let mut glob = vec![Token::Star];
                glob.extend_from_slice(rest);
                segments.push(Segment::Glob(glob));
            }
            _ => segments.push(Segment::Glob(tokens)),
        }
    }
    // A trailing `**` matches everything below the directory but, as in
    // Docker, not the directory itself: `docs/**` leaves an empty `docs`.
    // `**` alone matches everything.
    if segments.len() > 1 && segments.last() == Some(&Segment::Globstar) {
        segments.push(Segment::Glob(vec![Token::Star]));
    }
    Ok(segments)
}

/// Splits a pattern on `/` into the tokens of each name, checking the
/// syntax as Go's `filepath.Match` does. An unescaped `*` stays a
/// [`Token::Star`] and an escaped one becomes a character, so `\*\*` is
/// never a globstar.
fn tokenize(pattern: &str) -> Result<Vec<Vec<Token>>, SyntaxError> {
    let mut names = vec![Vec::new()];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            '/' => None,
            '*' => Some(Token::Star),
            '?' => Some(Token::Any),
            '[' => Some(parse_class(&mut chars)?),
            '\\' => match chars.next() {
                None => return Err(SyntaxError::TrailingBackslash),
                Some('/') => None,
                Some(escaped) => Some(Token::Char(escaped)),
            },
            other => Some(Token::Char(other)),
        };
        match (token, names.last_mut()) {
            (Some(token), Some(name)) => name.push(token),
            _ => names.push(Vec::new()),
        }
    }
    Ok(names)
}

/// Parses a character class after its `[`, with Go's rules: `^` first
/// negates (`!` does not), `]` closes only after at least one character,
/// and `-` and `]` must be escaped to stand for themselves.
fn parse_class(chars: &mut Peekable<Chars<'_>>) -> Result<Token, SyntaxError> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        if chars.peek() == Some(&']') {
            if ranges.is_empty() {
                return Err(SyntaxError::EmptyClass);
            }
            chars.next();
            return Ok(Token::Class { negated, ranges });
        }
        let lo = class_char(chars)?;
        let hi = match chars.next_if_eq(&'-') {
            Some(_) => class_char(chars)?,
            None => lo,
        };
        ranges.push((lo, hi));
    }
}

/// One character of a class, possibly escaped.
fn class_char(chars: &mut Peekable<Chars<'_>>) -> Result<char, SyntaxError> {
    match chars.next() {
        None => Err(SyntaxError::UnterminatedClass),
        Some('-' | ']') => Err(SyntaxError::BadRange),
        Some('\\') => chars.next().ok_or(SyntaxError::UnterminatedClass),
        Some(c) => Ok(c),
    }
}

/// Matches one name against a glob. `*` backtracks to the most recent
/// star only, which is enough because a star can absorb anything the
/// earlier ones could.
fn glob_matches(glob: &[Token], name: &[char]) -> bool {
    let (mut g, mut n) = (0, 0);
    // Where to resume after the last star: its next token and the name
    // position it has absorbed up to.
    let mut resume: Option<(usize, usize)> = None;
    while g < glob.len() || n < name.len() {
        match glob.get(g) {
            Some(Token::Star) => {
                resume = Some((g + 1, n));
                g += 1;
                continue;
            }
            Some(token) if n < name.len() && token.matches(name[n]) => {
                g += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match resume {
            Some((after_star, absorbed)) if absorbed < name.len() => {
                resume = Some((after_star, absorbed + 1));
                g = after_star;
                n = absorbed + 1;
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Patterns {
        Patterns::parse(text).expect("patterns should parse")
    }

    fn error(text: &str) -> String {
        match Patterns::parse(text) {
            Ok(patterns) => panic!("{text:?} parsed as {patterns:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Asserts which of `paths` the patterns exclude and which they keep.
    fn check(text: &str, excluded: &[&str], included: &[&str]) {
        let patterns = parse(text);
        for path in excluded {
            assert!(patterns.excludes(path), "{text:?} should exclude {path:?}");
        }
        for path in included {
            assert!(!patterns.excludes(path), "{text:?} should include {path:?}");
        }
    }

    // Reading the file.

    #[test]
    fn empty_file_excludes_nothing() {
        let patterns = parse("");
        assert!(patterns.is_empty());
        assert!(!patterns.has_exceptions());
        assert!(!patterns.excludes("Dockerfile"));
        assert!(!patterns.excludes("a/b/c"));
    }

    #[test]
    fn default_is_empty() {
        let patterns = Patterns::default();
        assert!(patterns.is_empty());
        assert!(!patterns.excludes("anything"));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let patterns = parse("# a comment\n\n   \n#*.md\n");
        assert!(patterns.is_empty());
        assert!(!patterns.excludes("README.md"));
    }

    #[test]
    fn indented_hash_is_a_pattern_as_in_docker() {
        check("  #notes", &["#notes"], &["notes"]);
    }

    #[test]
    fn crlf_line_ends() {
        check("a.txt\r\nb.txt\r\n", &["a.txt", "b.txt"], &["c.txt"]);
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        check("\u{feff}secret\n", &["secret"], &[]);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        check("  \tbuild  \n", &["build", "build/x"], &["builds"]);
    }

    #[test]
    fn leading_dot_slash_and_trailing_slash_mean_the_same() {
        for text in ["foo", "/foo", "./foo", "foo/", "./foo/", "//foo//"] {
            check(text, &["foo", "foo/bar"], &["foobar", "x/foo"]);
        }
    }

    #[test]
    fn patterns_are_cleaned_like_go() {
        check("a//b", &["a/b"], &["a"]);
        check("a/./b", &["a/b"], &["a"]);
        check("a/../b", &["b"], &["a", "a/b"]);
        check("/../c", &["c"], &[]);
    }

    #[test]
    fn clean_matches_go_filepath_clean() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("/", "/"),
            ("a/b/", "a/b"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("../a", "../a"),
            ("../../a/../b", "../../b"),
            ("/../a", "/a"),
            ("/a/b/../../..", "/"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn root_only_patterns_match_no_file() {
        for text in [".", "./", "/"] {
            check(text, &[], &["a", "a/b", "Dockerfile"]);
        }
    }

    #[test]
    fn dotdot_patterns_match_nothing_in_the_context() {
        check("../secret", &[], &["secret", "a/secret"]);
    }

    // Errors.

    #[test]
    fn bare_exclamation_is_an_error() {
        assert_eq!(
            Patterns::parse("a\n!\n").unwrap_err(),
            Error::BareExclamation { line: 2 }
        );
        assert_eq!(
            Patterns::parse("!   ").unwrap_err(),
            Error::BareExclamation { line: 1 }
        );
        assert!(error("!").starts_with(".dockerignore line 1: \"!\""));
    }

    #[test]
    fn unterminated_class_names_line_and_pattern() {
        assert_eq!(
            error("# comment\nok\n[a-\n"),
            ".dockerignore line 3: \"[a-\": unterminated character class"
        );
        assert_eq!(
            Patterns::parse("  [abc  ").unwrap_err(),
            Error::Syntax {
                line: 1,
                pattern: "[abc".to_string(),
                kind: SyntaxError::UnterminatedClass,
            }
        );
        assert!(error("[\\").ends_with("unterminated character class"));
    }

    #[test]
    fn bad_ranges_are_errors() {
        for text in ["[a-]", "[-a]", "[a-b-c]", "x/[z--]"] {
            assert!(
                error(text).ends_with(": bad character range"),
                "{text:?}: {}",
                error(text)
            );
        }
    }

    #[test]
    fn empty_classes_are_errors() {
        assert_eq!(
            error("[]"),
            ".dockerignore line 1: \"[]\": empty character class"
        );
        assert!(error("![^]x").ends_with("\"![^]x\": empty character class"));
        assert!(error("[]a]").ends_with("empty character class"));
    }

    #[test]
    fn trailing_backslash_is_an_error() {
        assert_eq!(
            error("ok\nfoo\\"),
            ".dockerignore line 2: \"foo\\\\\": trailing backslash"
        );
    }

    #[test]
    fn reversed_range_is_valid_and_matches_nothing() {
        // Go accepts `[z-a]`; it just never matches.
        check("[z-a]", &[], &["a", "m", "z"]);
    }

    // Globs within a name.

    #[test]
    fn literal_name_matches_itself_and_below() {
        check(
            "node_modules",
            &["node_modules", "node_modules/a/b.js"],
            &["node_modules2", "src/node_modules", "x_node_modules"],
        );
    }

    #[test]
    fn star_does_not_cross_slash() {
        check("*.md", &["README.md", ".md"], &["docs/x.md", "README.txt"]);
        check("docs/*.md", &["docs/x.md"], &["docs/a/x.md", "x.md"]);
    }

    #[test]
    fn star_matching_a_directory_excludes_its_contents() {
        check("*", &["a", "a/b/c", ".hidden"], &[]);
        check("*.d", &["conf.d/x.conf"], &["conf/x.d.bak"]);
        check("*/tmp", &["a/tmp", "a/tmp/x"], &["tmp", "a/b/tmp"]);
    }

    #[test]
    fn stars_backtrack() {
        check("*a*b", &["ab", "xaxb", "aab", "abab"], &["ba", "abx"]);
        check(
            "a*b*c",
            &["abc", "aXbYc", "abbc", "abcbc"],
            &["acb", "abcx"],
        );
        check("a**b", &["ab", "axxb"], &["a/b", "ax/yb"]);
    }

    #[test]
    fn question_mark_is_one_character() {
        check("?.txt", &["a.txt", "é.txt"], &[".txt", "ab.txt", "a/.txt"]);
        check("a?c", &["abc"], &["ac", "a/c"]);
    }

    #[test]
    fn character_classes_and_ranges() {
        check(
            "file[0-9a-c].txt",
            &["file0.txt", "file9.txt", "fileb.txt"],
            &["filed.txt", "file.txt", "file10.txt"],
        );
        check("[xyz]", &["x", "y", "z"], &["w", "xy"]);
    }

    #[test]
    fn caret_negates_a_class() {
        check("[^a-c]x", &["dx", "Ax", "-x"], &["ax", "bx", "cx", "x"]);
    }

    #[test]
    fn exclamation_in_a_class_is_literal_as_in_go() {
        check("[!a]", &["!", "a"], &["b"]);
    }

    #[test]
    fn escapes() {
        check("a\\*b", &["a*b"], &["axb", "ab"]);
        check("\\[x\\]", &["[x]"], &["x"]);
        check("[\\]\\-]", &["]", "-"], &["\\", "a"]);
        check("\\!important", &["!important"], &["important"]);
        check("a\\?", &["a?"], &["ab"]);
    }

    #[test]
    fn escaped_stars_are_not_a_globstar() {
        check("\\*\\*/x", &["**/x"], &["x", "a/x", "a/b/x"]);
    }

    // `**`.

    #[test]
    fn globstar_prefix_matches_at_any_depth_including_root() {
        check(
            "**/*.md",
            &["README.md", "docs/x.md", "a/b/c/d.md"],
            &["README.txt", "docs/x.mdx"],
        );
        check(
            "**/foo",
            &["foo", "a/foo", "a/b/foo", "a/foo/bar"],
            &["afoo"],
        );
    }

    #[test]
    fn globstar_suffix_matches_everything_below_only() {
        check(
            "docs/**",
            &["docs/a", "docs/a/b/c.md"],
            &["docs", "docsx/a", "a/docs/b"],
        );
    }

    #[test]
    fn globstar_middle_matches_zero_or_more_segments() {
        check(
            "a/**/b",
            &["a/b", "a/x/b", "a/x/y/b", "a/x/b/c"],
            &["a/xb", "b", "x/a/b", "a/b2"],
        );
        check(
            "a/**/b/**/c",
            &["a/b/c", "a/x/b/y/z/c", "a/b/b/c"],
            &["a/c", "a/b", "a/x/c"],
        );
    }

    #[test]
    fn globstar_alone_matches_everything() {
        check("**", &["a", "a/b", ".dockerignore"], &[]);
        check("**/**", &["a", "a/b/c"], &[]);
    }

    #[test]
    fn globstar_glued_to_a_name_matches_at_any_depth() {
        check("**.md", &["a.md", "x/y/a.md"], &["a.mdx"]);
        check("docs/**.md", &["docs/a.md", "docs/x/a.md"], &["a.md"]);
    }

    #[test]
    fn many_globstars_stay_fast() {
        let text = "**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/b";
        let deep = vec!["a"; 200].join("/");
        check(text, &[], &[&deep]);
    }

    // Exceptions and order.

    #[test]
    fn exception_re_includes() {
        check(
            "*.md\n!README.md",
            &["CHANGELOG.md"],
            &["README.md", "main.rs"],
        );
        assert!(parse("*.md\n!README.md").has_exceptions());
        assert!(!parse("*.md\nREADME.md").has_exceptions());
    }

    #[test]
    fn last_matching_pattern_wins() {
        check("!README.md\n*.md", &["README.md", "x.md"], &[]);
        check("*.md\n!README.md\nREADME.md", &["README.md"], &[]);
        check("*.md\n!*.md\n", &[], &["a.md"]);
    }

    #[test]
    fn exception_inside_an_excluded_directory() {
        check(
            "docs\n!docs/keep.md",
            &["docs", "docs/other.md", "docs/sub/keep.md"],
            &["docs/keep.md", "README.md"],
        );
    }

    #[test]
    fn exception_on_a_directory_re_includes_its_contents() {
        check(
            "*\n!src",
            &["target/debug/x", "README.md"],
            &["src", "src/main.rs", "src/a/b.rs"],
        );
        check("*\n!src\nsrc/*.bak", &["src/x.bak"], &["src/x.rs"]);
    }

    #[test]
    fn exception_with_spaces_and_doubled_exclamation() {
        check("*.log\n!  keep.log  ", &["x.log"], &["keep.log"]);
        // Only the first '!' marks an exception; the second is literal.
        check("*\n!!bang", &["bang"], &["!bang"]);
    }

    #[test]
    fn exception_patterns_are_cleaned_too() {
        check("docs\n!/docs/./keep.md/", &["docs/x"], &["docs/keep.md"]);
    }

    #[test]
    fn dockerfile_and_dockerignore_are_ordinary_files() {
        check(
            "*\n",
            &["Dockerfile", ".dockerignore", "sub/Dockerfile"],
            &[],
        );
        check(
            "Dockerfile\n.dockerignore",
            &["Dockerfile", ".dockerignore"],
            &["sub/Dockerfile", "Dockerfile.dev"],
        );
        check(
            "*\n!Dockerfile\n!.dockerignore",
            &["src"],
            &["Dockerfile", ".dockerignore"],
        );
    }

    #[test]
    fn path_is_read_leniently() {
        let patterns = parse("a/b");
        assert!(patterns.excludes("./a/b"));
        assert!(patterns.excludes("a//b/"));
        assert!(!patterns.excludes(""));
    }

    // may_include_below.

    #[test]
    fn may_include_below_without_exceptions_is_false() {
        let patterns = parse("node_modules\n*.log");
        assert!(!patterns.may_include_below("node_modules"));
        assert!(!patterns.may_include_below("node_modules/a"));
    }

    #[test]
    fn may_include_below_sees_an_exception_under_the_directory() {
        let patterns = parse("docs\n!docs/keep.md");
        assert!(patterns.may_include_below("docs"));
        assert!(!patterns.may_include_below("docs/sub"));
        let patterns = parse("docs\nother\n!docs/keep.md");
        assert!(!patterns.may_include_below("other"));
    }

    #[test]
    fn may_include_below_sees_wildcard_exceptions() {
        let patterns = parse("*\n!**/*.go");
        assert!(patterns.may_include_below("vendor"));
        assert!(patterns.may_include_below("vendor/a/b"));
        let patterns = parse("*\n!docs/*/keep");
        assert!(patterns.may_include_below("docs"));
        assert!(patterns.may_include_below("docs/a"));
        assert!(!patterns.may_include_below("docs/a/b"));
        assert!(!patterns.may_include_below("src"));
        let patterns = parse("docs\n!docs/**");
        assert!(patterns.may_include_below("docs"));
    }

    #[test]
    fn may_include_below_ignores_root_level_exceptions() {
        // `*.go` only names files at the root, never below `vendor`.
        let patterns = parse("*\n!*.go");
        assert!(!patterns.may_include_below("vendor"));
        assert!(!patterns.excludes("main.go"));
        assert!(patterns.excludes("vendor/x.go"));
    }

    #[test]
    fn may_include_below_ignores_exceptions_before_the_exclusion() {
        let patterns = parse("!docs/keep.md\ndocs");
        assert!(patterns.excludes("docs/keep.md"));
        assert!(!patterns.may_include_below("docs"));
    }

    #[test]
    fn may_include_below_a_directory_that_is_not_excluded_is_true() {
        let patterns = parse("*.md");
        assert!(patterns.may_include_below("src"));
        let patterns = parse("docs\n!docs");
        assert!(patterns.may_include_below("docs"));
    }

    #[test]
    fn may_include_below_agrees_with_excludes() {
        // Whenever it says no, every file below must really be excluded.
        let texts = [
            "docs\n!docs/keep.md",
            "*\n!**/*.go",
            "*\n!*.go",
            "!a/b\na",
            "a\n!a/*/c\na/x",
            "**/tmp\n!**/tmp/keep",
        ];
        let dirs = ["a", "a/x", "a/y", "docs", "docs/sub", "vendor", "x/tmp"];
        let files = ["keep.md", "b", "c", "x/c", "m.go", "keep", "q/keep"];
        for text in texts {
            let patterns = parse(text);
            for dir in dirs {
                if !patterns.excludes(dir) || patterns.may_include_below(dir) {
                    continue;
                }
                for file in files {
                    let path = format!("{dir}/{file}");
                    assert!(patterns.excludes(&path), "{text:?}: {path:?}");
                }
            }
        }
    }
}
