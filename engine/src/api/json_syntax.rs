//! A request body that is not JSON, told in the words of Go's
//! encoding/json, as dockerd answers: clients and test suites match on
//! "invalid character 'i' looking for beginning of object key string" and
//! "unexpected EOF", not on serde's "key must be a string at line 1 column 2".
//!
//! Go's decoder reads the first value of the body; this walks it with the
//! same states as Go's scanner and names the first byte that cannot follow.

/// Go's message for the first syntax error in `body`'s first JSON value;
/// `None` when that value is well-formed (its content may still be wrong).
pub fn go_message(body: &[u8]) -> Option<String> {
    let mut s = Scanner {
        b: body,
        i: 0,
        depth: 0,
    };
    match s.value() {
        // Nesting past serde's limit is left to serde to refuse: walking
        // it here would take the stack a caller chose.
        Ok(()) | Err(Stop::TooDeep) => None,
        Err(Stop::Eof) => Some("unexpected EOF".into()),
        Err(Stop::Invalid(c, context)) => {
            Some(format!("invalid character {} {context}", quote_char(c)))
        }
    }
}

/// serde_json's recursion limit: deeper bodies are refused by it.
const MAX_DEPTH: usize = 128;

enum Stop {
    Eof,
    TooDeep,
    Invalid(u8, String),
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

type Step = Result<(), Stop>;

impl Scanner<'_> {
    fn peek(&mut self) -> Result<u8, Stop> {
        self.b.get(self.i).copied().ok_or(Stop::Eof)
    }

    fn next(&mut self) -> Result<u8, Stop> {
        let c = self.peek()?;
        self.i += 1;
        Ok(c)
    }

    /// The next byte that is not space, not taken.
    fn after_space(&mut self) -> Result<u8, Stop> {
        while let Some(c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                return Ok(*c);
            }
            self.i += 1;
        }
        Err(Stop::Eof)
    }

    fn value(&mut self) -> Step {
        let c = self.after_space()?;
        self.i += 1;
        if matches!(c, b'{' | b'[') {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(Stop::TooDeep);
            }
        }
        let step = match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(c),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Err(invalid(c, "looking for beginning of value")),
        };
        if matches!(c, b'{' | b'[') {
            self.depth -= 1;
        }
        step
    }

    fn object(&mut self) -> Step {
        if self.after_space()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            match self.after_space()? {
                b'"' => {
                    self.i += 1;
                    self.string()?;
                }
                c => return Err(invalid(c, "looking for beginning of object key string")),
            }
            match self.after_space()? {
                b':' => self.i += 1,
                c => return Err(invalid(c, "after object key")),
            }
            self.value()?;
            match self.after_space()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                c => return Err(invalid(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Step {
        if self.after_space()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            match self.after_space()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                c => return Err(invalid(c, "after array element")),
            }
        }
    }

    /// After the opening quote.
    fn string(&mut self) -> Step {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let h = self.next()?;
                            if !h.is_ascii_hexdigit() {
                                return Err(invalid(h, "in \\u hexadecimal character escape"));
                            }
                        }
                    }
                    c => return Err(invalid(c, "in string escape code")),
                },
                c if c < 0x20 => return Err(invalid(c, "in string literal")),
                _ => {}
            }
        }
    }

    /// After the first byte (`-` or a digit). A number ends at the first
    /// byte that cannot continue it, or at the end of the body (Go's
    /// decoder takes a number the body ends with).
    fn number(&mut self, first: u8) -> Step {
        let digits = |s: &mut Self| {
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
        };
        let first = if first == b'-' {
            match self.next()? {
                c @ b'0'..=b'9' => c,
                c => return Err(invalid(c, "in numeric literal")),
            }
        } else {
            first
        };
        if first != b'0' {
            digits(self);
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            match self.next()? {
                b'0'..=b'9' => digits(self),
                c => return Err(invalid(c, "after decimal point in numeric literal")),
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in exponent of numeric literal"));
            }
            digits(self);
        }
        Ok(())
    }

    /// After the first letter of `word`.
    fn literal(&mut self, word: &str) -> Step {
        for want in word.bytes().skip(1) {
            let c = self.next()?;
            if c != want {
                return Err(invalid(
                    c,
                    &format!("in literal {word} (expecting '{}')", want as char),
                ));
            }
        }
        Ok(())
    }
}

fn invalid(c: u8, context: &str) -> Stop {
    Stop::Invalid(c, context.to_string())
}

/// Go's quoteChar: the byte as a rune in single quotes, escaped as
/// strconv.Quote escapes it.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        b'\n' => r"'\n'".into(),
        b'\r' => r"'\r'".into(),
        b'\t' => r"'\t'".into(),
        0x07 => r"'\a'".into(),
        0x08 => r"'\b'".into(),
        0x0c => r"'\f'".into(),
        0x0b => r"'\v'".into(),
        b'\\' => r"'\\'".into(),
        c if c < 0x20 || c == 0x7f => format!(r"'\x{c:02x}'"),
        c if c < 0x80 => format!("'{}'", c as char),
        // Go makes a rune of the byte: U+0080..U+00FF.
        c if c < 0xa0 => format!(r"'\u{:04x}'", c),
        c => format!("'{}'", char::from(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::go_message;

    fn msg(b: &str) -> String {
        go_message(b.as_bytes()).unwrap_or_else(|| "ok".into())
    }

    #[test]
    fn messages_are_gos() {
        // Each as Go 1.19's json.NewDecoder(r).Decode(&v) says it.
        let cases = [
            (
                "{invalid json",
                "invalid character 'i' looking for beginning of object key string",
            ),
            (r#"{"a":"#, "unexpected EOF"),
            (r#"{"a" 1}"#, "invalid character '1' after object key"),
            (
                r#"{"a":1 "b":2}"#,
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "nope",
                "invalid character 'o' in literal null (expecting 'u')",
            ),
            ("tru", "unexpected EOF"),
            ("x", "invalid character 'x' looking for beginning of value"),
            (r#"{"a":-x}"#, "invalid character 'x' in numeric literal"),
            (
                r#"{"a":1.}"#,
                "invalid character '}' after decimal point in numeric literal",
            ),
            (
                r#"{"a":1e}"#,
                "invalid character '}' in exponent of numeric literal",
            ),
            (
                "{\"a\":\"\\q\"}",
                "invalid character 'q' in string escape code",
            ),
            (
                "{\"a\":\"\\u12g4\"}",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            (
                "{\"a\":\"x\ny\"}",
                "invalid character '\\n' in string literal",
            ),
            (
                "{'a':1}",
                "invalid character '\\'' looking for beginning of object key string",
            ),
            (
                "{\u{1}}",
                "invalid character '\\x01' looking for beginning of object key string",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(msg(body), want, "{body:?}");
        }
    }

    #[test]
    fn well_formed_first_values_pass() {
        for body in [
            "{}",
            " {\"a\": [1, -0.5e+3, \"\\u00e9\", true, false, null, {}]} ",
            "[]",
            "12",
            // Go's decoder reads the first value only.
            "{} trailing",
        ] {
            assert_eq!(msg(body), "ok", "{body:?}");
        }
        // Nesting a caller chose does not take the stack: past serde's limit
        // the walk stops (and serde refuses the body).
        let deep = "[".repeat(1 << 20);
        assert_eq!(msg(&deep), "ok");
        let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(msg(&nested), "ok");
        assert_eq!(
            msg(&format!("{}x", "[".repeat(100))),
            "invalid character 'x' looking for beginning of value"
        );
    }
}
