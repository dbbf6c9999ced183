//! Docker's query conventions: booleans as 1/true/0/false, and `filters` as
//! JSON in either of its two shapes ({"k":["v"]} or {"k":{"v":true}}).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use crate::error::{ApiError, Result};

pub type Params = HashMap<String, String>;

/// A boolean parameter as dockerd's `BoolValue` reads it: anything but
/// nothing, "0", "no", "false" or "none" (any case) is true (`all=True`,
/// `timestamps=on`).
pub fn go_bool(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

pub fn flag(q: &Params, k: &str) -> bool {
    q.get(k).is_some_and(|v| go_bool(v))
}

pub fn flag_or(q: &Params, k: &str, default: bool) -> bool {
    match q.get(k).map(String::as_str) {
        None | Some("") => default,
        Some(v) => go_bool(v),
    }
}

pub type Filters = BTreeMap<String, Vec<String>>;

pub fn filters(q: &Params) -> Result<Filters> {
    let Some(raw) = q.get("filters").filter(|s| !s.is_empty()) else {
        return Ok(Filters::new());
    };
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid filter: not a JSON object"))?;
    let mut out = Filters::new();
    for (k, vals) in obj {
        let list: Vec<String> = match vals {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, b)| b.as_bool().unwrap_or(false))
                .map(|(s, _)| s.clone())
                .collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filter for {k:?}"))),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

/// Refuses filter keys this endpoint does not know, as dockerd does.
pub fn only(f: &Filters, allowed: &[&str]) -> Result<()> {
    for k in f.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    Ok(())
}

/// `label` filters: `key` or `key=value`; all must match.
pub fn labels_match(labels: &BTreeMap<String, String>, wanted: Option<&Vec<String>>) -> bool {
    wanted
        .into_iter()
        .flatten()
        .all(|w| match w.split_once('=') {
            Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
            None => labels.contains_key(w.as_str()),
        })
}

/// A prune's label filters, as dockerd reads them: every `label` matches,
/// and not every `label!` does.
pub fn prune_labels_match(labels: &BTreeMap<String, String>, f: &Filters) -> bool {
    let excluded = f
        .get("label!")
        .is_some_and(|l| !l.is_empty() && labels_match(labels, Some(l)));
    labels_match(labels, f.get("label")) && !excluded
}

/// The 400 dockerd gives for a filter value it cannot take.
fn invalid_value(key: &str, vals: &[String]) -> ApiError {
    ApiError::bad_request(format!("invalid filter '{key}=[{}]'", vals.join(" ")))
}

/// A boolean filter as dockerd's `GetBoolOrDefault` reads it (prunes'
/// `dangling`): `true`/`1` or `false`/`0`, both or neither refused; absent
/// is `default`.
pub fn bool_or(f: &Filters, key: &str, default: bool) -> Result<bool> {
    let Some(vals) = f.get(key) else {
        return Ok(default);
    };
    if vals.is_empty() {
        return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
    }
    let yes = vals.iter().any(|v| v == "true" || v == "1");
    let no = vals.iter().any(|v| v == "false" || v == "0");
    match (yes, no) {
        (true, false) => Ok(true),
        (false, true) => Ok(false),
        _ => Err(invalid_value(key, vals)),
    }
}

/// `dangling` as dockerd's image and volume lists read it (Go's
/// `ExactMatch`, which an empty list passes): a `truthy` value wins, then
/// a `falsy` one; anything else is refused.
pub fn dangling(f: &Filters, truthy: &[&str], falsy: &[&str]) -> Result<Option<bool>> {
    let Some(vals) = f.get("dangling") else {
        return Ok(None);
    };
    let any = |set: &[&str]| vals.is_empty() || vals.iter().any(|v| set.contains(&v.as_str()));
    if any(truthy) {
        Ok(Some(true))
    } else if any(falsy) {
        Ok(Some(false))
    } else {
        Err(invalid_value("dangling", vals))
    }
}

/// A prune's (or list's) `until` filter: what was created before it. A
/// value that is no time is refused in dockerd's words.
pub fn until(f: &Filters) -> Result<Option<SystemTime>> {
    match f.get("until").and_then(|v| v.first()) {
        Some(u) => time("until", u).map_err(|_| {
            ApiError::bad_request(format!("failed to parse value as time or duration: {u:?}"))
        }),
        None => Ok(None),
    }
}

/// A time as Docker's API takes it in `since`, `until` and `until`
/// filters: unix seconds with an optional fraction, or (as dockerd's
/// GetTimestamp) RFC 3339 or a duration before now ("10m"). Empty is
/// unset; anything else that does not parse, or does not fit a clock, is a
/// 400 naming the parameter.
pub fn time(key: &str, raw: &str) -> Result<Option<SystemTime>> {
    let raw = raw.trim();
    let unix = crate::daemon::logs::parse_time(raw);
    if let Ok(t) = unix {
        return Ok(t);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(raw) {
        return Ok(Some(t));
    }
    // dockerd's GetTimestamp: a Go duration before now ("0" is the epoch,
    // read above as unix seconds; a negative one is a time to come).
    if let Ok(ns) = dockerfile::parse_go_duration(raw) {
        let d = std::time::Duration::from_nanos(ns.unsigned_abs());
        let t = if ns >= 0 {
            SystemTime::now().checked_sub(d)
        } else {
            SystemTime::now().checked_add(d)
        };
        if let Some(t) = t {
            return Ok(Some(t));
        }
    }
    let why = unix.err().unwrap_or_default();
    Err(ApiError::bad_request(format!(
        "invalid value for {key}: {why}"
    )))
}

/// `time` of a query parameter.
pub fn time_param(q: &Params, key: &str) -> Result<Option<SystemTime>> {
    match q.get(key) {
        Some(v) => time(key, v),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_dockerds_bool_value() {
        for t in ["1", "true", "True", "yes", "on", "abc", " 1 "] {
            assert!(go_bool(t), "{t:?}");
        }
        for f in ["", "0", "no", "NO", "false", "False", "none", " 0"] {
            assert!(!go_bool(f), "{f:?}");
        }
        let q: Params = [("stream".to_string(), "".to_string())].into();
        assert!(flag_or(&q, "stream", true), "empty keeps the default");
        assert!(!flag(&q, "stream"));
    }

    fn filters_of(pairs: &[(&str, &[&str])]) -> Filters {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn boolean_filters_refuse_what_they_cannot_read() {
        let f = filters_of(&[("dangling", &["1"])]);
        assert!(bool_or(&f, "dangling", false).unwrap());
        assert!(bool_or(&filters_of(&[]), "dangling", true).unwrap());
        assert!(!bool_or(&filters_of(&[("dangling", &["false"])]), "dangling", true).unwrap());
        for bad in [&["bogus"][..], &["true", "0"], &[]] {
            let e = bool_or(&filters_of(&[("dangling", bad)]), "dangling", true).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let e = bool_or(&filters_of(&[("dangling", &["bogus"])]), "dangling", true).unwrap_err();
        assert_eq!(e.message, "invalid filter 'dangling=[bogus]'");

        // Lists: a true value wins over anything else, an empty list is true.
        let images = |v: &[&str]| dangling(&filters_of(&[("dangling", v)]), &["true"], &["false"]);
        assert_eq!(images(&["bogus", "true"]).unwrap(), Some(true));
        assert_eq!(images(&["bogus", "false"]).unwrap(), Some(false));
        assert_eq!(images(&[]).unwrap(), Some(true));
        assert!(
            images(&["1"]).is_err(),
            "image lists take true and false only"
        );
        assert_eq!(
            dangling(&filters_of(&[]), &["true"], &["false"]).unwrap(),
            None
        );
    }

    #[test]
    fn times_parse_or_are_400() {
        assert!(time("since", "").unwrap().is_none());
        assert!(time("since", "1700000000.25").unwrap().is_some());
        assert!(time("until", "10m").unwrap().is_some());
        assert!(time("until", "2024-01-02T03:04:05Z").unwrap().is_some());
        for bad in ["9999999999999999999", "18446744073709551615", "soon"] {
            let e = time("since", bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains("since"), "{}", e.message);
        }
    }
}
