use crate::{expand, expand_words};

/// Variables for the tests: `A=apple`, `EMPTY=` (set, empty),
/// `SPACED=" x  y "`, `PATH=/usr/bin:/bin`, `FILE=archive.tar.gz`;
/// anything else unset.
fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some("apple".into()),
        "EMPTY" => Some(String::new()),
        "SPACED" => Some(" x  y ".into()),
        "PATH" => Some("/usr/bin:/bin".into()),
        "FILE" => Some("archive.tar.gz".into()),
        "1" => Some("first".into()),
        "ÄPFEL" => Some("äpfel".into()),
        _ => None,
    }
}

fn x(word: &str) -> String {
    match expand(word, &vars, '\\') {
        Ok(s) => s,
        Err(e) => panic!("{word}: {e}"),
    }
}

fn xerr(word: &str) -> String {
    match expand(word, &vars, '\\') {
        Ok(s) => panic!("{word} expanded to {s:?}"),
        Err(e) => {
            assert_eq!(e.line, 0);
            e.message
        }
    }
}

fn w(word: &str) -> Vec<String> {
    match expand_words(word, &vars, '\\') {
        Ok(v) => v,
        Err(e) => panic!("{word}: {e}"),
    }
}

#[test]
fn plain_and_braced_variables() {
    assert_eq!(x("$A"), "apple");
    assert_eq!(x("${A}"), "apple");
    assert_eq!(x("pre-${A}-post/$A.txt"), "pre-apple-post/apple.txt");
    assert_eq!(x("$Apple"), "");
    assert_eq!(x("${UNSET}x$UNSET"), "x");
    assert_eq!(x("$1 and $ÄPFEL"), "first and äpfel");
}

#[test]
fn lone_dollar_is_literal() {
    assert_eq!(x("$"), "$");
    assert_eq!(x("a$/b"), "a$/b");
    assert_eq!(x("cost: 5$"), "cost: 5$");
}

#[test]
fn default_forms() {
    assert_eq!(x("${UNSET:-dflt}"), "dflt");
    assert_eq!(x("${EMPTY:-dflt}"), "dflt");
    assert_eq!(x("${A:-dflt}"), "apple");
    assert_eq!(x("${UNSET-dflt}"), "dflt");
    assert_eq!(x("${EMPTY-dflt}"), "");
    assert_eq!(x("${A-dflt}"), "apple");
    assert_eq!(x("${UNSET:-}"), "");
}

#[test]
fn alternative_forms() {
    assert_eq!(x("${A:+alt}"), "alt");
    assert_eq!(x("${EMPTY:+alt}"), "");
    assert_eq!(x("${UNSET:+alt}"), "");
    assert_eq!(x("${A+alt}"), "alt");
    assert_eq!(x("${EMPTY+alt}"), "alt");
    assert_eq!(x("${UNSET+alt}"), "");
}

#[test]
fn nested_defaults() {
    assert_eq!(x("${UNSET:-${A}}"), "apple");
    assert_eq!(x("${UNSET:-${NOPE:-deep}}"), "deep");
    assert_eq!(x("${A:+<${A}>}"), "<apple>");
    assert_eq!(x("${UNSET:-\"quoted } brace\"}"), "quoted } brace");
    assert_eq!(x("${UNSET:-a\\}b}"), "a}b");
}

#[test]
fn required_forms() {
    assert_eq!(x("${A?}"), "apple");
    assert_eq!(x("${EMPTY?}"), "");
    assert_eq!(
        xerr("${UNSET?}"),
        "failed to process \"${UNSET?}\": UNSET: is not allowed to be unset"
    );
    assert_eq!(
        xerr("${UNSET?set it}"),
        "failed to process \"${UNSET?set it}\": UNSET: set it"
    );
    assert_eq!(
        xerr("${EMPTY:?}"),
        "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"
    );
    assert_eq!(x("${A:?x}"), "apple");
}

#[test]
fn escapes() {
    assert_eq!(x("\\$A"), "$A");
    assert_eq!(x("a\\ b"), "a b");
    assert_eq!(x("C:\\\\dir"), "C:\\dir");
    assert_eq!(x("\\\"x\\'"), "\"x'");
    // A trailing escape character is dropped.
    assert_eq!(x("abc\\"), "abc");
}

#[test]
fn quotes_are_removed() {
    assert_eq!(x("'$A'"), "$A");
    assert_eq!(x("\"$A\""), "apple");
    assert_eq!(x("\"a b\"'c d'e"), "a bc de");
    assert_eq!(x("'it''s'"), "its");
    assert_eq!(x("\"it's\""), "it's");
    assert_eq!(x("'a\\b'"), "a\\b");
}

#[test]
fn escapes_inside_double_quotes() {
    assert_eq!(x("\"a\\\"b\""), "a\"b");
    assert_eq!(x("\"\\$A\""), "$A");
    assert_eq!(x("\"\\\\\""), "\\");
    // Before anything else the escape character stays.
    assert_eq!(x("\"a\\nb\""), "a\\nb");
}

#[test]
fn backtick_escape() {
    let tick = |w: &str| expand(w, &vars, '`').unwrap();
    assert_eq!(tick("C:\\$A"), "C:\\apple");
    assert_eq!(tick("`$A"), "$A");
    assert_eq!(tick("\"a`\"b\""), "a\"b");
}

#[test]
fn syntax_errors() {
    assert_eq!(
        xerr("${}"),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        xerr("${:-x}"),
        "failed to process \"${:-x}\": syntax error: bad substitution"
    );
    assert_eq!(
        xerr("${A"),
        "failed to process \"${A\": syntax error: missing '}'"
    );
    assert_eq!(
        xerr("${A:-x"),
        "failed to process \"${A:-x\": syntax error: missing '}'"
    );
    assert_eq!(
        xerr("${"),
        "failed to process \"${\": syntax error: missing '}'"
    );
    assert_eq!(
        xerr("'open"),
        "failed to process \"'open\": unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        xerr("\"open"),
        "failed to process \"\\\"open\": unexpected end of statement while looking for matching double-quote"
    );
}

#[test]
fn unknown_modifiers_are_errors() {
    assert_eq!(
        xerr("${A^x}"),
        "failed to process \"${A^x}\": unsupported modifier (^) in substitution"
    );
    assert_eq!(
        xerr("${A:x}"),
        "failed to process \"${A:x}\": unsupported modifier (:x) in substitution"
    );
    assert_eq!(
        xerr("${A:#x}"),
        "failed to process \"${A:#x}\": unsupported modifier (:#) in substitution"
    );
}

#[test]
fn prefix_and_suffix_removal() {
    assert_eq!(x("${PATH#*:}"), "/bin");
    assert_eq!(x("${PATH##*/}"), "bin");
    assert_eq!(x("${FILE%.*}"), "archive.tar");
    assert_eq!(x("${FILE%%.*}"), "archive");
    assert_eq!(x("${FILE#nomatch}"), "archive.tar.gz");
    assert_eq!(x("${FILE%.t?r.gz}"), "archive");
    assert_eq!(x("${UNSET%x}"), "");
}

#[test]
fn replacement() {
    assert_eq!(x("${PATH/:/;}"), "/usr/bin;/bin");
    assert_eq!(x("${PATH//\\//|}"), "|usr|bin:|bin");
    assert_eq!(x("${A/p*/P}"), "aP");
    assert_eq!(x("${A//p/}"), "ale");
    assert_eq!(
        xerr("${A/x}"),
        "failed to process \"${A/x}\": syntax error: missing '/' in ${}"
    );
}

#[test]
fn words_split_on_unquoted_whitespace() {
    assert_eq!(w("80/tcp  443"), vec!["80/tcp", "443"]);
    assert_eq!(w("\"a b\" c\\ d 'e f'"), vec!["a b", "c d", "e f"]);
    // Whitespace out of a variable splits, as in a shell.
    assert_eq!(w("$SPACED"), vec!["x", "y"]);
    assert_eq!(w("\"$SPACED\""), vec![" x  y "]);
    assert_eq!(w("pre$SPACED"), vec!["pre", "x", "y"]);
    assert!(w("").is_empty());
    assert!(w("$UNSET").is_empty());
}

#[test]
fn expand_keeps_inner_whitespace_words_do_not() {
    assert_eq!(x("  a   b  "), "  a   b  ");
    assert_eq!(w("  a   b  "), vec!["a", "b"]);
    assert_eq!(x("$SPACED"), " x  y ");
}
