//! The journald log driver, as Docker's: the fields each entry of a
//! container carries (the shim sends them), and `logs` read back from the
//! journal. Reading goes through `journalctl`, the journal's own reader,
//! so berthd links no libsystemd and reads every journal format the host's
//! systemd writes.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::container::Container;
use super::logs::{Line, Options};

/// The log options the journald driver takes (`mode` and `max-buffer-size`
/// are every driver's).
pub const OPTIONS: &[&str] = &[
    "tag",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "mode",
    "max-buffer-size",
];

/// Checks the options a container or daemon.json gives the driver.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in opts {
        if !OPTIONS.contains(&k.as_str()) {
            return Err(format!("unknown log opt '{k}' for journald log driver"));
        }
        if matches!(k.as_str(), "labels-regex" | "env-regex") {
            regex::Regex::new(v).map_err(|e| format!("invalid log opt {k}: {e}"))?;
        }
    }
    if let Some(t) = opts.get("tag") {
        check_tag(t)?;
    }
    Ok(())
}

/// The fields of every entry of `c`: CONTAINER_ID (12), CONTAINER_ID_FULL,
/// CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (the `tag` option,
/// the short id by default), IMAGE_NAME, and the labels and environment
/// variables the options name, keyed as journald keys are (upper case, `_`).
pub fn fields(
    c: &Container,
    opts: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let tag = tag(c, opts)?;
    let mut out = BTreeMap::from([
        ("CONTAINER_ID".to_string(), c.short_id().to_string()),
        ("CONTAINER_ID_FULL".to_string(), c.id.clone()),
        ("CONTAINER_NAME".to_string(), c.name.clone()),
        ("CONTAINER_TAG".to_string(), tag.clone()),
        ("IMAGE_NAME".to_string(), c.config.image.clone()),
        ("SYSLOG_IDENTIFIER".to_string(), tag),
    ]);
    out.extend(extra_attributes(c, opts, journal_key)?);
    out.retain(|k, _| !k.is_empty());
    Ok(out)
}

/// The container's labels and environment variables the log options name
/// (`labels`, `env`: lists; `labels-regex`, `env-regex`: patterns), named
/// by `key`: what dockerd's drivers add to each entry. Where a label and a
/// variable meet, the variable wins.
pub fn extra_attributes(
    c: &Container,
    opts: &BTreeMap<String, String>,
    key: fn(&str) -> String,
) -> Result<BTreeMap<String, String>, String> {
    let env: BTreeMap<&str, &str> = c
        .config
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .collect();
    let labels: BTreeMap<&str, &str> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    for (list, regex, from) in [
        ("labels", "labels-regex", &labels),
        ("env", "env-regex", &env),
    ] {
        if let Some(names) = opts.get(list) {
            for name in names.split(',') {
                if let Some(v) = from.get(name) {
                    out.insert(key(name), v.to_string());
                }
            }
        }
        if let Some(re) = opts.get(regex).filter(|r| !r.is_empty()) {
            let re = regex::Regex::new(re).map_err(|e| format!("invalid log opt {regex}: {e}"))?;
            for (k, v) in from.iter().filter(|(k, _)| re.is_match(k)) {
                out.insert(key(k), v.to_string());
            }
        }
    }
    Ok(out)
}

/// The `attrs` of every entry of `c`'s json-file log, as dockerd's driver
/// makes them: the named labels and variables, and `tag` when the options
/// ask one (no default there).
pub fn json_file_attrs(
    c: &Container,
    opts: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut attrs = extra_attributes(c, opts, str::to_string)?;
    if let Some(t) = opts.get("tag") {
        let tag = expand_tag(t, &|field| template_field(c, field))?;
        if !tag.is_empty() {
            attrs.insert("tag".into(), tag);
        }
    }
    Ok(attrs)
}

/// A label or variable name as a journal field name, as Docker makes it:
/// letters upper-cased, anything else but digits `_`, leading `_` dropped.
fn journal_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        };
        if !(out.is_empty() && c == '_') {
            out.push(c);
        }
    }
    out
}

/// The `tag` option expanded for `c` (Docker's default: the short id).
pub fn tag(c: &Container, opts: &BTreeMap<String, String>) -> Result<String, String> {
    match opts.get("tag") {
        Some(t) => expand_tag(t, &|field| template_field(c, field)),
        None => Ok(c.short_id().to_string()),
    }
}

/// Whether a `tag` option is a template berth can expand.
pub fn check_tag(t: &str) -> Result<(), String> {
    expand_tag(t, &|_| Some(String::new())).map(|_| ())
}

/// The value of a log tag template's `{{.Field}}` for `c`.
fn template_field(c: &Container, field: &str) -> Option<String> {
    let image = c.image_id.strip_prefix("sha256:").unwrap_or(&c.image_id);
    Some(match field {
        "ID" => c.short_id().to_string(),
        "FullID" => c.id.clone(),
        "Name" => c.name.clone(),
        "ImageID" => image.get(..12).unwrap_or(image).to_string(),
        "ImageFullID" => image.to_string(),
        "ImageName" => c.config.image.clone(),
        "DaemonName" => "berth".to_string(),
        "Hostname" => c.config.hostname.clone(),
        _ => return None,
    })
}

/// Expands a log tag template (`{{.Name}}/{{.ID}}`): the fields Docker's
/// templates offer, anything else in braces is refused.
fn expand_tag(t: &str, field: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("log tag {t:?}: unclosed action"))?;
        let action = after[..close].trim();
        let value = action
            .strip_prefix('.')
            .and_then(field)
            .ok_or_else(|| format!("log tag {t:?}: can't evaluate {action:?}"))?;
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `journalctl` asked for the entries of container `id` that `o` selects,
/// as JSON lines.
fn journalctl(id: &str, o: &Options, follow: bool, after: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("journalctl");
    cmd.args([
        "--no-pager",
        "--quiet",
        "--all",
        "--output=json",
        "--output-fields=MESSAGE,PRIORITY,CONTAINER_PARTIAL_MESSAGE",
    ]);
    let epoch = |t: SystemTime| {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("@{}.{:06}", d.as_secs(), d.subsec_micros())
    };
    if let Some(s) = o.since {
        cmd.arg(format!("--since={}", epoch(s)));
    }
    if let Some(u) = o.until {
        cmd.arg(format!("--until={}", epoch(u)));
    }
    match (after, o.tail) {
        (Some(c), _) => {
            cmd.arg(format!("--after-cursor={c}"));
        }
        (None, Some(n)) => {
            cmd.arg(format!("--lines={n}"));
        }
        (None, None) if follow => {
            cmd.arg("--lines=all");
        }
        (None, None) => {}
    }
    if follow {
        cmd.arg("--follow");
    }
    cmd.arg(format!("CONTAINER_ID_FULL={id}"));
    // Two matches of one field are either; one stream is one priority.
    match (o.stdout, o.stderr) {
        (true, false) => {
            cmd.arg("PRIORITY=6");
        }
        (false, true) => {
            cmd.arg("PRIORITY=3");
        }
        _ => {}
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// One journal entry of `journalctl -o json` as a log line, with its cursor.
fn parse_entry(text: &str) -> Option<(Line, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let cursor = v["__CURSOR"].as_str()?.to_string();
    let micros: u64 = v["__REALTIME_TIMESTAMP"].as_str()?.parse().ok()?;
    let at = UNIX_EPOCH + Duration::from_micros(micros);
    // A value that is not printable UTF-8 comes as an array of bytes.
    let bytes = |m: &serde_json::Value| -> Option<Vec<u8>> {
        match m {
            serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
            serde_json::Value::Array(a) => a.iter().map(|b| b.as_u64().map(|b| b as u8)).collect(),
            _ => None,
        }
    };
    let mut data = match &v["MESSAGE"] {
        serde_json::Value::Null => Vec::new(),
        m => bytes(m).or_else(|| m.as_array()?.first().and_then(bytes))?,
    };
    if v["CONTAINER_PARTIAL_MESSAGE"].as_str() != Some("true") {
        data.push(b'\n');
    }
    Some((
        Line {
            stderr: v["PRIORITY"].as_str() == Some("3"),
            data,
            time: humantime::format_rfc3339_nanos(at).to_string(),
            at,
            attrs: Vec::new(),
        },
        cursor,
    ))
}

/// Everything in the journal for `id` that `o` selects (after `cursor`
/// when given).
pub async fn read(
    id: &str,
    o: &Options,
    after: Option<&str>,
) -> Result<Vec<(Line, String)>, String> {
    if o.tail == Some(0) && after.is_none() {
        return Ok(Vec::new());
    }
    let out = journalctl(id, o, false, after)
        .stdout(Stdio::piped())
        .output()
        .await
        .map_err(|e| format!("reading the journal: journalctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "reading the journal: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_entry)
        .collect())
}

/// Asks journald to take in everything sent to it so far: what a stopped
/// container's shim sent last may still wait in the socket.
async fn sync() {
    let synced = tokio::process::Command::new("journalctl")
        .arg("--sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    if tokio::time::timeout(Duration::from_secs(5), synced)
        .await
        .is_err()
    {
        tracing::warn!("journalctl --sync did not answer in 5 s");
    }
}

/// Sends what the journal holds, then what comes, until `running` says the
/// container stopped: then journald is synced and what came last is read
/// after the last cursor seen, so the stream ends with the container's
/// last line.
pub fn follow(
    id: String,
    o: Options,
    mut running: tokio::sync::watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Line>, String> {
    let mut child = journalctl(&id, &o, true, None)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("reading the journal: journalctl: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("reading the journal: journalctl gave no output".into());
    };
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut cursor: Option<String> = None;
        let until = o.until.map(|u| {
            let wait = u.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::Instant::now() + wait
        });
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(text)) => {
                        if let Some((l, c)) = parse_entry(&text) {
                            cursor = Some(c);
                            if tx.send(l).await.is_err() {
                                break;
                            }
                        }
                    }
                    // journalctl ended on its own (journald gone): what
                    // it read is all there is.
                    _ => break,
                },
                _ = running.changed() => {
                    if *running.borrow_and_update() {
                        continue;
                    }
                    let _ = child.kill().await;
                    sync().await;
                    let rest = match &cursor {
                        Some(c) => read(&id, &Options { tail: None, ..o.clone() }, Some(c)).await,
                        None => read(&id, &o, None).await,
                    };
                    for (l, _) in rest.unwrap_or_default() {
                        if tx.send(l).await.is_err() {
                            break;
                        }
                    }
                    break;
                }
                _ = async { tokio::time::sleep_until(until.unwrap_or_else(tokio::time::Instant::now)).await }, if until.is_some() => break,
                _ = tx.closed() => break,
            }
        }
        let _ = child.kill().await;
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_as_docker_makes_them() {
        assert_eq!(journal_key("com.example.tier"), "COM_EXAMPLE_TIER");
        assert_eq!(journal_key("_private-x"), "PRIVATE_X");
        assert_eq!(journal_key("Path9"), "PATH9");
    }

    #[test]
    fn tags_expand_the_fields_docker_offers() {
        let f = |name: &str| match name {
            "Name" => Some("web".to_string()),
            "ID" => Some("0123456789ab".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_tag("{{.Name}}/{{ .ID }}", &f).unwrap(),
            "web/0123456789ab"
        );
        assert_eq!(expand_tag("plain", &f).unwrap(), "plain");
        assert!(expand_tag("{{.Nope}}", &f).is_err());
        assert!(expand_tag("{{.Name", &f).is_err());
    }

    #[test]
    fn options_of_other_drivers_are_refused() {
        let ok = BTreeMap::from([
            ("tag".to_string(), "{{.Name}}".to_string()),
            ("env-regex".to_string(), "^A".to_string()),
        ]);
        validate(&ok).unwrap();
        let bad = BTreeMap::from([("max-size".to_string(), "1m".to_string())]);
        assert_eq!(
            validate(&bad).unwrap_err(),
            "unknown log opt 'max-size' for journald log driver"
        );
        let re = BTreeMap::from([("labels-regex".to_string(), "(".to_string())]);
        assert!(validate(&re).is_err());
    }

    #[test]
    fn entries_become_lines_with_partials_unterminated() {
        let whole = r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":"hi","PRIORITY":"6"}"#;
        let (l, c) = parse_entry(whole).unwrap();
        assert_eq!(
            (l.data.as_slice(), l.stderr, c.as_str()),
            (&b"hi\n"[..], false, "c1")
        );
        assert_eq!(l.time, "2023-11-14T22:13:20.123456000Z");
        let cut = r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"1","MESSAGE":[104,0,105],"PRIORITY":"3","CONTAINER_PARTIAL_MESSAGE":"true"}"#;
        let (l, _) = parse_entry(cut).unwrap();
        assert_eq!((l.data.as_slice(), l.stderr), (&b"h\0i"[..], true));
        assert!(parse_entry("not json").is_none());
    }
}
