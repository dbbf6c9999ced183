//! Variable substitution and word splitting, as Docker's shell lexer
//! (moby/buildkit frontend/dockerfile/shell/lex.go, `ProcessWord` and
//! `ProcessWords`) does them. Not a shell: no command substitution, no
//! globbing, no arithmetic; quotes and the escape character are removed,
//! `$name` and `${…}` forms substituted.
//!
//! Supported forms, each as buildkit has them: `$name`, `${name}`,
//! `${name:-word}` / `${name-word}` (default when empty-or-unset / unset),
//! `${name:+word}` / `${name+word}` (alternative when set-and-non-empty /
//! set), `${name:?msg}` / `${name?msg}` (error when empty-or-unset /
//! unset), `${name#pattern}` / `${name##pattern}` (remove the shortest /
//! longest matching prefix), `${name%pattern}` / `${name%%pattern}`
//! (suffix), `${name/pattern/repl}` / `${name//pattern/repl}` (replace the
//! first / every match). Anything else inside `${…}` is an error.

use crate::error::{Error, go_quote};
use crate::pattern;

/// Substitutes variables in `word` and removes its quotes and escapes, as
/// Docker's `ProcessWord` does for ENV, LABEL, COPY, WORKDIR, USER, … An
/// unset variable expands to nothing; `lookup` tells set (`Some`, maybe
/// empty) from unset (`None`). Errors have line 0: the caller knows the
/// instruction's line.
pub fn expand(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, Error> {
    Lexer::new(word, lookup, escape, Mode::default())
        .process()
        .map(|(w, _)| w)
        .map_err(|m| Error::new(0, wrap(word, &m)))
}

/// Like [`expand`], then splits the result into words on whitespace that
/// was neither quoted nor escaped, as Docker's `ProcessWords` does (for
/// EXPOSE). Whitespace that came out of a variable does split, as it
/// would in a shell; empty words are dropped.
pub fn expand_words(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, Error> {
    Lexer::new(word, lookup, escape, Mode::default())
        .process()
        .map(|(_, words)| words)
        .map_err(|m| Error::new(0, wrap(word, &m)))
}

/// Docker's wrapping of lexer errors.
fn wrap(word: &str, message: &str) -> String {
    format!("failed to process {}: {message}", go_quote(word))
}

/// The lexer's switches that Docker's parser (not the builder) uses, to
/// find heredocs: quotes and escapes kept, unset variables left as written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Mode {
    pub raw_quotes: bool,
    pub raw_escapes: bool,
    pub skip_unset: bool,
}

/// Words of `word` in a given [`Mode`]; `None` when the lexer fails.
pub(crate) fn words_with(word: &str, escape: char, mode: Mode) -> Option<Vec<String>> {
    let none = |_: &str| None;
    Lexer::new(word, &none, escape, mode)
        .process()
        .ok()
        .map(|(_, w)| w)
}

/// Words being assembled (buildkit's `wordsStruct`): characters that came
/// from the source or from variables split on whitespace, quoted text and
/// escaped characters never do.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

/// The scanner over one word.
struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    escape: char,
    mode: Mode,
}

type Lexed<T> = Result<T, String>;

impl<'a> Lexer<'a> {
    fn new(
        word: &str,
        lookup: &'a dyn Fn(&str) -> Option<String>,
        escape: char,
        mode: Mode,
    ) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            lookup,
            escape,
            mode,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process(&mut self) -> Lexed<(String, Vec<String>)> {
        let raw = self.mode.raw_escapes;
        self.process_stop_on(None, raw)
    }

    /// Reads up to `stop` (consumed) or the end; the text and its words.
    /// `raw_escapes` keeps escape characters in the text (for patterns).
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Lexed<(String, Vec<String>)> {
        let saved = self.mode.raw_escapes;
        self.mode.raw_escapes = raw_escapes;
        let result = self.stop_on(stop);
        self.mode.raw_escapes = saved;
        result
    }

    fn stop_on(&mut self, stop: Option<char>) -> Lexed<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.mode.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape character at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'…'`: everything literal, no escapes.
    fn process_single_quote(&mut self) -> Lexed<String> {
        let mut result = String::new();
        let open = self.next();
        if self.mode.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.mode.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"…"`: variables expand; the escape character escapes only `"`,
    /// `$` and itself, and is kept before anything else.
    fn process_double_quote(&mut self) -> Lexed<String> {
        let mut result = String::new();
        let open = self.next();
        if self.mode.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.mode.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.mode.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// The value of a variable; `None` when it is unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// `$name` or `${…}`, the `$` not yet consumed.
    fn process_dollar(&mut self) -> Lexed<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            // Docker says "unsupported modifier (\u{fffd})" here, reading
            // the end as a character; the missing brace is the real fault.
            return Err("syntax error: missing '}'".into());
        };
        match ch {
            '}' => Ok(match self.get(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.modifier(&name, ch),
            '/' => self.replace(&name),
            _ => Err(format!("unsupported modifier ({ch}) in substitution")),
        }
    }

    /// `${name:-word}` and the other forms with a word after the operator.
    fn modifier(&mut self, name: &str, first: char) -> Lexed<String> {
        let mut chs = first.to_string();
        let mut op = first;
        let null_is_unset = first == ':';
        if null_is_unset {
            // Docker reads on whatever follows, even the end.
            op = self.next().unwrap_or('\u{fffd}');
            chs.push(op);
        }
        let pattern_op = op == '#' || op == '%';
        if null_is_unset && pattern_op {
            return Err(format!("unsupported modifier ({chs}) in substitution"));
        }
        let word = self.word_until('}', pattern_op, "syntax error: missing '}'")?;
        let value = self.get(name);
        if self.mode.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match op {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => {
                if value.is_none() {
                    let m = if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    };
                    return Err(format!("{name}: {m}"));
                }
                if unset {
                    let m = if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    };
                    return Err(format!("{name}: {m}"));
                }
                Ok(value.unwrap_or_default())
            }
            '#' | '%' => {
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(p) => (true, p),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or_default();
                let tokens = pattern::compile(pat).map_err(|e| invalid_pattern(pat, &e))?;
                Ok(if op == '#' {
                    pattern::trim_prefix(&tokens, &value, greedy)
                } else {
                    pattern::trim_suffix(&tokens, &value, greedy)
                })
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn replace(&mut self, name: &str) -> Lexed<String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pat = self.word_until('/', true, "syntax error: missing '/' in ${}")?;
        let replacement = self.word_until('}', true, "syntax error: missing '}'")?;
        let value = self.get(name);
        if self.mode.skip_unset && value.is_none() {
            return Ok(format!("${{{name}/{pat}/{replacement}}}"));
        }
        let tokens = pattern::compile(&pat).map_err(|e| invalid_pattern(&pat, &e))?;
        // An unset variable is matched as the empty string (`*` matches it).
        let value = value.unwrap_or_default();
        Ok(pattern::replace(&tokens, &value, &replacement, all))
    }

    /// The word of a `${…}` form up to `stop`; at the end of input the
    /// error is `at_end`.
    fn word_until(&mut self, stop: char, raw_escapes: bool, at_end: &str) -> Lexed<String> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(at_end.into()),
            Err(e) => Err(e),
        }
    }

    /// A variable name: letters, digits and `_`; or digits only when it
    /// starts with one (`$1`); or one special parameter (`$@`, `$?`, …).
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| is_digit(c)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || is_digit(ch) || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

/// Go's `unicode.IsDigit` (decimal digits, any script).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

fn invalid_pattern(pat: &str, e: &str) -> String {
    format!("invalid pattern ({pat}) in substitution: {e}")
}
