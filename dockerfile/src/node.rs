//! One logical line to a syntax node: the instruction word, its flags and
//! its arguments, split the way each instruction's line parser in
//! buildkit (parser.go `newNodeFromLine`, line_parsers.go) splits them.
//! What the arguments mean is the business of `instructions`.

use crate::words;

/// An instruction before its arguments are interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// The instruction word as written (`run`, `RUN`, `Foo`).
    pub cmd: String,
    /// Leading `--flag[=value]` words, quotes and escapes removed.
    pub flags: Vec<String>,
    /// The arguments, split by the instruction's line parser. ENV and
    /// LABEL give key, value, key, value, …
    pub args: Vec<String>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// ONBUILD's trigger.
    pub sub: Option<Box<Node>>,
    /// The whole line, as Docker keeps it in `Node.Original`.
    pub original: String,
}

/// Why a JSON-looking argument is not an exec-form array.
enum JsonError {
    /// Not JSON (or not an array): Docker reads the text as shell form.
    NotJson,
    /// A JSON array with something other than strings: an error.
    NotStringArray,
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Parses a logical line (`newNodeFromLine`).
pub(crate) fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let (cmd, flags, rest) = split_command(line, escape);
    let mut node = Node {
        cmd: cmd.to_string(),
        flags,
        args: Vec::new(),
        json: false,
        sub: None,
        original: line.to_string(),
    };
    match cmd.to_lowercase().as_str() {
        "add" | "copy" | "volume" => (node.args, node.json) = maybe_json_to_list(&rest)?,
        "cmd" | "entrypoint" | "run" | "shell" => (node.args, node.json) = maybe_json(&rest)?,
        "arg" => node.args = words::parse_words(&rest, escape),
        "env" | "label" => {
            let instruction = cmd.to_uppercase();
            for (k, v) in words::name_val(&rest, &instruction, escape)? {
                node.args.push(k);
                node.args.push(v);
            }
        }
        "expose" | "from" => node.args = words::whitespace_delimited(&rest),
        "healthcheck" => (node.args, node.json) = health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest];
        }
        "onbuild" if !rest.is_empty() => {
            let sub = node_from_line(&rest, escape)?;
            node.args.push(sub.cmd.clone());
            node.args.extend(sub.args.iter().cloned());
            node.sub = Some(Box::new(sub));
        }
        // No arguments; or an unknown instruction, refused later with its
        // line number.
        _ => {}
    }
    Ok(node)
}

/// `splitCommand`: the instruction word, the flags, and the rest (trimmed).
fn split_command(line: &str, escape: char) -> (&str, Vec<String>, String) {
    match words::split_first_word(line.trim()) {
        (cmd, Some(rest)) => {
            let (args, flags) = extract_builder_flags(rest, escape);
            (cmd, flags, args.trim().to_string())
        }
        (cmd, None) => (cmd, Vec::new(), String::new()),
    }
}

/// `extractBuilderFlags`: the leading words that start with `--` (quotes
/// and escapes removed), up to the first other word or a lone `--`; and
/// the text from that word on.
fn extract_builder_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let offset = |i: usize| chars.get(i).map_or(line.len(), |&(o, _)| o);
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = chars.get(pos).map_or('\0', |&(_, c)| c);
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            let next_is_dash = chars.get(pos + 1).is_some_and(|&(_, c)| c == '-');
            if ch != '-' || !next_is_dash {
                return (&line[offset(pos)..], words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[offset(pos)..], words);
                }
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
                pos += 1;
                continue;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
            }
            word.push(chars[pos].1);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
        }
        word.push(chars[pos].1);
        pos += 1;
    }
    ("", words)
}

/// `parseJSON`: a JSON array of strings.
fn parse_json(rest: &str) -> Result<Vec<String>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotJson);
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_str(rest).map_err(|_| JsonError::NotJson)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(JsonError::NotStringArray),
        })
        .collect()
}

/// `parseMaybeJSON` (RUN, CMD, ENTRYPOINT, SHELL): a JSON array of strings
/// is exec form; anything else that is not JSON is shell form, kept whole.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Ok(args) => Ok((args, true)),
        Err(JsonError::NotStringArray) => Err(NOT_STRING_ARRAY.into()),
        Err(JsonError::NotJson) => Ok((vec![rest.to_string()], false)),
    }
}

/// `parseMaybeJSONToList` (ADD, COPY, VOLUME): a JSON array of strings, or
/// whitespace-separated words.
fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        Ok(args) => Ok((args, true)),
        Err(JsonError::NotStringArray) => Err(NOT_STRING_ARRAY.into()),
        Err(JsonError::NotJson) => Ok((words::whitespace_delimited(rest), false)),
    }
}

/// `parseHealthConfig`: the type word (`CMD`, `NONE`), then the command as
/// RUN's would be.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let (typ, cmd) = rest.split_at(sep);
    let (cmd_args, json) = maybe_json(cmd.trim_start())?;
    let mut args = vec![typ.to_string()];
    args.extend(cmd_args);
    Ok((args, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_flags_and_rest() {
        let (cmd, flags, rest) =
            split_command("  COPY --from=build  --chown=\"a b\" src dst ", '\\');
        assert_eq!(cmd, "COPY");
        assert_eq!(flags, vec!["--from=build", "--chown=a b"]);
        assert_eq!(rest, "src dst");
    }

    #[test]
    fn double_dash_ends_flags() {
        let (_, flags, rest) = split_command("RUN --network=none -- --version", '\\');
        assert_eq!(flags, vec!["--network=none"]);
        assert_eq!(rest, "--version");
    }

    #[test]
    fn json_forms() {
        let n = node_from_line(r#"CMD ["echo", "a b"]"#, '\\').unwrap();
        assert!(n.json);
        assert_eq!(n.args, vec!["echo", "a b"]);
        let n = node_from_line("CMD [not json", '\\').unwrap();
        assert!(!n.json);
        assert_eq!(n.args, vec!["[not json"]);
        assert_eq!(
            node_from_line("CMD [1, 2]", '\\').unwrap_err(),
            NOT_STRING_ARRAY
        );
    }

    #[test]
    fn healthcheck_split() {
        let n = node_from_line(
            "HEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1",
            '\\',
        )
        .unwrap();
        assert_eq!(n.flags, vec!["--interval=5s"]);
        assert_eq!(n.args, vec!["CMD", "curl -f http://x/ || exit 1"]);
    }

    #[test]
    fn onbuild_keeps_trigger_node() {
        let n = node_from_line("ONBUILD RUN echo hi", '\\').unwrap();
        assert_eq!(n.args, vec!["RUN", "echo hi"]);
        assert_eq!(n.sub.unwrap().cmd, "RUN");
    }
}
