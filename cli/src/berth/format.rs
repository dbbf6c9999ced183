//! `--format`: Go templates as the Docker CLI takes them (`{{.ID}}`,
//! `{{json .}}`, `table {{.Names}}\t{{.Status}}`), rendered with gtmpl, and
//! tables aligned as Docker aligns them.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Value as G};
use serde_json::Value;

pub fn to_g(v: &Value) -> G {
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                G::from(i)
            } else if let Some(u) = n.as_u64() {
                G::from(u)
            } else {
                G::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(to_g).collect()),
        Value::Object(o) => {
            let mut m: HashMap<String, G> = o.iter().map(|(k, v)| (k.clone(), to_g(v))).collect();
            // Templates name Go struct fields, which differ from the JSON
            // keys in a few places (`{{.Server.APIVersion}}`).
            for (json_key, go_field) in GO_FIELDS {
                if let Some(v) = m.get(*json_key).cloned() {
                    m.entry(go_field.to_string()).or_insert(v);
                }
            }
            G::Object(m)
        }
    }
}

/// JSON key → Go field name, where the Docker CLI's structs differ.
const GO_FIELDS: &[(&str, &str)] = &[("ApiVersion", "APIVersion"), ("Id", "ID")];

fn is_go_alias(m: &HashMap<String, G>, k: &str) -> bool {
    GO_FIELDS
        .iter()
        .any(|(json_key, go_field)| *go_field == k && m.contains_key(*json_key))
}

fn from_g(v: &G) -> Value {
    match v {
        G::NoValue | G::Nil | G::Function(_) => Value::Null,
        G::Bool(b) => Value::Bool(*b),
        G::String(s) => Value::String(s.clone()),
        G::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        G::Array(a) => Value::Array(a.iter().map(from_g).collect()),
        G::Object(o) | G::Map(o) => {
            let mut m: Vec<(&String, &G)> = o.iter().filter(|(k, _)| !is_go_alias(o, k)).collect();
            m.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(m.into_iter().map(|(k, v)| (k.clone(), from_g(v))).collect())
        }
    }
}

fn s(args: &[G], i: usize) -> String {
    match args.get(i) {
        Some(G::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn json(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(
        args.first()
            .map(|a| from_g(a).to_string())
            .unwrap_or_default(),
    ))
}
fn join(args: &[G]) -> Result<G, FuncError> {
    let sep = s(args, 1);
    let items: Vec<String> = match args.first() {
        Some(G::Array(a)) => a
            .iter()
            .map(|v| match v {
                G::String(s) => s.clone(),
                o => o.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(G::String(items.join(&sep)))
}
fn split(args: &[G]) -> Result<G, FuncError> {
    Ok(G::Array(
        s(args, 0)
            .split(&s(args, 1))
            .map(|p| G::String(p.to_string()))
            .collect(),
    ))
}
fn lower(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(s(args, 0).to_lowercase()))
}
fn upper(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(s(args, 0).to_uppercase()))
}
fn title(args: &[G]) -> Result<G, FuncError> {
    let t = s(args, 0);
    let mut c = t.chars();
    Ok(G::String(match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }))
}
fn truncate(args: &[G]) -> Result<G, FuncError> {
    let t = s(args, 0);
    let n = match args.get(1) {
        Some(G::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        _ => t.len(),
    };
    Ok(G::String(t.chars().take(n).collect()))
}
fn pad(args: &[G]) -> Result<G, FuncError> {
    let t = s(args, 0);
    let n = |i: usize| match args.get(i) {
        Some(G::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        _ => 0,
    };
    Ok(G::String(format!(
        "{}{}{}",
        " ".repeat(n(1)),
        t,
        " ".repeat(n(2))
    )))
}

/// A compiled `--format`. `table` templates get a header row and aligned
/// columns, like the Docker CLI prints them.
pub struct Format {
    tmpl: Template,
    /// The template as plain text and `{{.Field.Path}}` references, when it
    /// is only that (every default table is): rendered without gtmpl, whose
    /// per-row conversion and clones dominate `ps -a` over many rows.
    simple: Option<Vec<Piece>>,
    table: bool,
    header: Option<String>,
}

enum Piece {
    Text(String),
    Field(Vec<String>),
}

/// `Names {{.ID}}\t{{ .Image }}` → pieces; None when anything else appears
/// (functions, pipes, actions, `{{.}}`).
fn simple_pieces(body: &str) -> Option<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let j = rest[i..].find("}}")?;
        let expr = rest[i + 2..i + j].trim();
        let path = expr.strip_prefix('.')?;
        let names: Vec<String> = path.split('.').map(str::to_string).collect();
        let plain =
            |n: &String| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !names.iter().all(plain) {
            return None;
        }
        out.push(Piece::Field(names));
        rest = &rest[i + j + 2..];
    }
    if rest.contains("}}") {
        return None;
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Some(out)
}

/// Renders simple pieces; None when a field is missing or not a scalar, so
/// that gtmpl gives its own answer (and its own error) for it.
fn render_simple(pieces: &[Piece], v: &Value) -> Option<String> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Field(path) => {
                let mut cur = v;
                for name in path {
                    cur = cur.as_object()?.get(name.as_str())?;
                }
                match cur {
                    Value::String(t) => s.push_str(t),
                    Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
                    Value::Number(n) if n.is_i64() || n.is_u64() => s.push_str(&n.to_string()),
                    // A list of words as Go prints a slice: `[a b c]`.
                    Value::Array(items) => {
                        let words: Option<Vec<String>> = items
                            .iter()
                            .map(|x| match x {
                                Value::String(t) => Some(t.clone()),
                                Value::Bool(b) => Some(b.to_string()),
                                Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                                _ => None,
                            })
                            .collect();
                        s.push('[');
                        s.push_str(&words?.join(" "));
                        s.push(']');
                    }
                    _ => return None,
                }
            }
        }
    }
    Some(s)
}

/// A labels object as `ls` tables show it: `k=v,k2=v2`.
pub fn labels(v: &Value) -> String {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `--format` as Docker reads it: empty or "table" is the command's own
/// table, "json" an object per line, anything else a template.
pub fn template(format: Option<&str>, table: &str) -> String {
    match format {
        None | Some("") | Some("table") => table.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    }
}

/// What Go's template lexer refuses inside `{{ }}`, refused before gtmpl
/// sees it: gtmpl's lexer thread never ends on an action left open after
/// whitespace (`{{ .ID `, so the command hung) and panics on a multi-byte
/// character outside quotes. Go's messages, with the line (`1: unclosed
/// action`).
fn check_actions(body: &str) -> std::result::Result<(), String> {
    let line_at = |i: usize| 1 + body[..i].matches('\n').count();
    let mut rest = 0;
    while let Some(open) = body[rest..].find("{{").map(|i| rest + i) {
        let mut chars = body[open + 2..].char_indices().peekable();
        let mut closed = None;
        while let Some((i, c)) = chars.next() {
            let at = open + 2 + i;
            match c {
                '}' if body[at..].starts_with("}}") => {
                    closed = Some(at + 2);
                    break;
                }
                '"' | '\'' | '`' => {
                    // Quoted: anything goes but the quote's end (and, but
                    // in raw strings, a newline).
                    let mut escaped = false;
                    let mut ended = false;
                    for (_, q) in chars.by_ref() {
                        if c != '`' && q == '\n' {
                            break;
                        }
                        if escaped {
                            escaped = false;
                        } else if q == '\\' && c != '`' {
                            escaped = true;
                        } else if q == c {
                            ended = true;
                            break;
                        }
                    }
                    if !ended {
                        return Err(format!("{}: unterminated quoted string", line_at(at)));
                    }
                }
                '/' if body[at..].starts_with("/*") => {
                    let Some(end) = body[at..].find("*/") else {
                        return Err(format!("{}: unclosed comment", line_at(at)));
                    };
                    while chars
                        .peek()
                        .is_some_and(|(j, _)| open + 2 + j < at + end + 2)
                    {
                        chars.next();
                    }
                }
                ' ' | '\t' | '\r' | '\n' => {}
                c if c.is_ascii() && !c.is_ascii_control() => {}
                c => {
                    return Err(format!(
                        "{}: unrecognized character in action: U+{:04X}",
                        line_at(at),
                        c as u32
                    ));
                }
            }
        }
        match closed {
            Some(end) => rest = end,
            None => return Err(format!("{}: unclosed action", line_at(open))),
        }
    }
    Ok(())
}

pub fn parse(format: &str, header_of: &dyn Fn(&str) -> String) -> Result<Format> {
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start().to_string()),
        None => (false, format.to_string()),
    };
    let body = body.replace("\\t", "\t").replace("\\n", "\n");
    let mut tmpl = Template::default();
    tmpl.add_funcs(&[
        ("json", json as gtmpl_value::Func),
        ("join", join),
        ("split", split),
        ("lower", lower),
        ("upper", upper),
        ("title", title),
        ("truncate", truncate),
        ("pad", pad),
    ]);
    check_actions(&body).map_err(|e| anyhow!("template parsing error: template: :{e}"))?;
    tmpl.parse(body.clone())
        .map_err(|e| anyhow!("template parsing error: {e}"))?;
    // The header: each {{.Field}} of the template named as Docker names it.
    let header = table.then(|| {
        let mut h = String::new();
        let mut rest = body.as_str();
        while let Some(i) = rest.find("{{") {
            h.push_str(&rest[..i]);
            let Some(j) = rest[i..].find("}}") else { break };
            let expr = rest[i + 2..i + j].trim();
            let field = expr
                .trim_start_matches('.')
                .split_whitespace()
                .next()
                .unwrap_or("");
            h.push_str(&header_of(field));
            rest = &rest[i + j + 2..];
        }
        h.push_str(rest);
        h
    });
    Ok(Format {
        tmpl,
        simple: simple_pieces(&body),
        table,
        header,
    })
}

impl Format {
    /// Whether rendering may read the top-level field `name`: exact for plain
    /// templates, always true for the ones gtmpl runs (`{{json .}}` reads all).
    pub fn uses(&self, name: &str) -> bool {
        match &self.simple {
            Some(pieces) => pieces.iter().any(
                |p| matches!(p, Piece::Field(path) if path.first().is_some_and(|f| f == name)),
            ),
            None => true,
        }
    }

    pub fn render(&self, v: &Value) -> Result<String> {
        if let Some(s) = self.simple.as_deref().and_then(|p| render_simple(p, v)) {
            return Ok(s);
        }
        self.tmpl
            .render(&Context::from(to_g(v)))
            .map_err(|e| anyhow!("template: {e}"))
    }

    /// Renders every row; aligns columns when it is a table.
    pub fn print(&self, rows: &[Value]) -> Result<()> {
        let mut lines = Vec::new();
        if let Some(h) = &self.header {
            lines.push(h.clone());
        }
        for r in rows {
            lines.push(self.render(r)?);
        }
        if self.table {
            print!("{}", align(&lines));
        } else {
            for l in lines {
                println!("{l}");
            }
        }
        Ok(())
    }
}

/// Go's tabwriter as the Docker CLI configures it for its tables: cells
/// padded by 3, and at least 10 wide with the padding.
pub fn align(lines: &[String]) -> String {
    align_to(lines, 10)
}

/// Go's tabwriter with padding 3 and cells at least `min_width` wide.
pub fn align_to(lines: &[String], min_width: usize) -> String {
    const PADDING: usize = 3;
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let width = (widths[i] + PADDING).max(min_width);
                line.push_str(&" ".repeat(width - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Docker's column titles for template fields.
pub fn header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedSince" => "CREATED".into(),
        "Names" => "NAMES".into(),
        "Repository" => "REPOSITORY".into(),
        "Mountpoint" => "MOUNTPOINT".into(),
        "json" => String::new(),
        f => {
            let mut out = String::new();
            for (i, c) in f.chars().enumerate() {
                if i > 0
                    && c.is_uppercase()
                    && !f[..f.char_indices().nth(i).map(|(b, _)| b).unwrap_or(0)]
                        .ends_with(|p: char| p.is_uppercase())
                {
                    out.push(' ');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by fuzz/run.sh (format_template): gtmpl hung on the first and
    /// panicked on the second; both are Go's parse errors now.
    #[test]
    fn templates_gtmpl_cannot_lex_are_refused_as_go_refuses_them() {
        let err = |t: &str| match parse(t, &header) {
            Ok(_) => panic!("{t:?} parsed"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err("{{ .ID "),
            "template parsing error: template: :1: unclosed action"
        );
        assert_eq!(
            err("\u{1a}{{\u{b}\u{1a}{{\u{b}"),
            "template parsing error: template: :1: unrecognized character in action: U+000B"
        );
        assert!(err("{{\u{85}").contains("U+0085"));
        assert!(err("a\n{{ \"x }}").contains(":2: unterminated quoted string"));
        // Quoted, anything goes; comments and trim markers are fine.
        parse("{{ \"\u{85} }}\" }}", &header).unwrap();
        parse("{{/* a comment }} */}}{{- .ID -}}", &header).unwrap();
    }

    #[test]
    fn docker_templates_render() {
        let f = parse("{{.ID}} {{.Names}}", &header).unwrap();
        assert_eq!(
            f.render(&json!({"ID": "abc", "Names": "web"})).unwrap(),
            "abc web"
        );
        let f = parse("{{json .Labels}}", &header).unwrap();
        assert_eq!(
            f.render(&json!({"Labels": {"b": "2", "a": "1"}})).unwrap(),
            r#"{"a":"1","b":"2"}"#
        );
        let f = parse("{{join .Args \",\"}} {{upper .S}}", &header).unwrap();
        assert_eq!(
            f.render(&json!({"Args": ["a", "b"], "S": "x"})).unwrap(),
            "a,b X"
        );
        let f = parse("{{.State.ExitCode}}", &header).unwrap();
        assert_eq!(f.render(&json!({"State": {"ExitCode": 3}})).unwrap(), "3");
        assert!(parse("{{.Unclosed", &header).is_err());
    }

    #[test]
    fn simple_templates_render_without_gtmpl_and_agree_with_it() {
        let v = json!({"ID": "abc", "N": 3, "B": true, "S": {"X": "y"}, "L": ["a"]});
        for (t, want) in [
            ("{{.ID}}\t{{ .N }} {{.B}}", "abc\t3 true"),
            ("x={{.S.X}}.", "x=y."),
        ] {
            let f = parse(t, &header).unwrap();
            assert_eq!(f.render(&v).unwrap(), want, "{t}");
            let gt = Format {
                simple: None,
                ..parse(t, &header).unwrap()
            };
            assert_eq!(gt.render(&v).unwrap(), want, "gtmpl: {t}");
        }
        // A list of words prints as Go prints a slice (`docker inspect -f
        // '{{.Config.Cmd}}'` gives `[sh -c x]`).
        let words = json!({"Cmd": ["sh", "-c", "x"], "None": []});
        let f = parse("{{.Cmd}} {{.None}}", &header).unwrap();
        assert_eq!(f.render(&words).unwrap(), "[sh -c x] []");
        // A missing field falls through to gtmpl's own error.
        assert!(parse("{{.Missing}}", &header).unwrap().render(&v).is_err());
        assert!(simple_pieces("{{json .}}").is_none());
        assert!(simple_pieces("{{.A | upper}}").is_none());
        assert!(simple_pieces("{{.A}}").is_some());
        let f = parse("table {{.ID}}\t{{.S.X}}", &header).unwrap();
        assert!(f.uses("ID") && f.uses("S") && !f.uses("X") && !f.uses("Names"));
        assert!(parse("{{json .}}", &header).unwrap().uses("Names"));
    }

    #[test]
    fn go_field_names_reach_json_keys() {
        let v = json!({"Server": {"ApiVersion": "1.43"}, "Id": "abc"});
        let f = parse("{{.Server.APIVersion}} {{.ID}} {{.Id}}", &header).unwrap();
        assert_eq!(f.render(&v).unwrap(), "1.43 abc abc");
        // The alias is not printed back by `json`.
        let f = parse("{{json .Server}}", &header).unwrap();
        assert_eq!(f.render(&v).unwrap(), r#"{"ApiVersion":"1.43"}"#);
    }

    #[test]
    fn tables_get_headers_and_alignment() {
        let f = parse("table {{.ID}}\t{{.Status}}", &header).unwrap();
        assert_eq!(f.header.as_deref(), Some("CONTAINER ID\tSTATUS"));
        assert_eq!(
            align(&["a\tbb".into(), "ccc\td".into()]),
            "a         bb\nccc       d\n"
        );
        assert_eq!(
            align(&["a-long-cell\tx".into(), "b\ty".into()]),
            "a-long-cell   x\nb             y\n"
        );
        assert_eq!(
            align_to(&["UID\tPID".into()], 20),
            format!("UID{}PID\n", " ".repeat(17))
        );
    }
}
