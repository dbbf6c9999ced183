//! The options of the log drivers that keep a file (json-file, local):
//! checked in dockerd's words, and read into the file's rotation.

use std::collections::BTreeMap;

/// The local driver's defaults (dockerd's): five files of 20 MiB, the
/// rotated ones gzipped.
const LOCAL_MAX_SIZE: u64 = 20 << 20;
const LOCAL_MAX_FILES: u32 = 5;

/// Go's `strconv.ParseBool`.
pub fn go_parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// How a file log rotates: at `max_size` bytes (0: never), keeping
/// `max_files` files, gzipping the rotated ones when `compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: u32,
    pub compress: bool,
}

/// The rotation `opts` give `driver`'s file: json-file keeps one file of
/// any size unless told otherwise, local its defaults. Options are
/// checked before (see [`check`]); one that does not read is the default.
pub fn rotation(driver: &str, opts: &BTreeMap<String, String>) -> Rotation {
    let local = driver == "local";
    let max_size = opts
        .get("max-size")
        .and_then(|v| crate::config::parse_size(v).ok())
        .unwrap_or(if local { LOCAL_MAX_SIZE } else { 0 });
    let max_files = opts
        .get("max-file")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if local { LOCAL_MAX_FILES } else { 1 });
    let compress = opts
        .get("compress")
        .and_then(|v| go_parse_bool(v))
        .unwrap_or(local);
    Rotation {
        max_size,
        max_files,
        compress: compress && max_files > 1,
    }
}

/// `opts` of the json-file or local driver, refused in dockerd's words
/// when one is unknown or does not read; other drivers' are not looked
/// at. `mode` and `max-buffer-size` are every driver's (dockerd takes them
/// before its driver looks).
pub fn check(driver: &str, opts: &BTreeMap<String, String>) -> Result<(), String> {
    let known: &[&str] = match driver {
        "json-file" => &[
            "max-size",
            "max-file",
            "compress",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "tag",
        ],
        "local" => &["max-size", "max-file", "compress"],
        _ => return Ok(()),
    };
    for (k, v) in opts {
        match k.as_str() {
            "mode" | "max-buffer-size" => {}
            k if !known.contains(&k) => {
                return Err(if driver == "local" {
                    format!("unknown log opt '{k}' for log driver local")
                } else {
                    format!("unknown log opt '{k}' for json-file log driver")
                });
            }
            "max-size" => {
                crate::config::parse_size(v).map_err(|_| {
                    format!("failed to initialize logging driver: invalid size: '{v}'")
                })?;
            }
            "max-file" => {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("invalid value for max-file: {v}"))?;
            }
            "compress" => {
                go_parse_bool(v)
                    .ok_or_else(|| format!("strconv.ParseBool: parsing {v:?}: invalid syntax"))?;
            }
            "labels-regex" | "env-regex" => {
                regex::Regex::new(v).map_err(|e| format!("invalid log opt {k}: {e}"))?;
            }
            _ => {}
        }
    }
    let r = rotation(driver, opts);
    // The shim gzips with the host's gzip.
    if r.compress && !on_path("gzip") {
        return Err(
            "compress needs gzip on the host (none on PATH): install it, or set compress=false"
                .into(),
        );
    }
    let asked = opts.get("compress").and_then(|v| go_parse_bool(v));
    match driver {
        "json-file" if asked == Some(true) && (r.max_files < 2 || r.max_size == 0) => Err(
            "compress cannot be true when max-file is less than 2 or max-size is not set".into(),
        ),
        "local" if asked != Some(false) && r.max_files < 2 => {
            Err("compression cannot be enabled when max file count is 1".into())
        }
        _ => Ok(()),
    }
}

/// Whether an executable `name` is in one of PATH's directories.
pub(crate) fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_driver_has_dockerds_defaults() {
        let none = opts(&[]);
        assert_eq!(
            rotation("json-file", &none),
            Rotation {
                max_size: 0,
                max_files: 1,
                compress: false
            }
        );
        assert_eq!(
            rotation("local", &none),
            Rotation {
                max_size: 20 << 20,
                max_files: 5,
                compress: true
            }
        );
        let r = rotation(
            "json-file",
            &opts(&[("max-size", "1k"), ("max-file", "3"), ("compress", "true")]),
        );
        assert_eq!(
            r,
            Rotation {
                max_size: 1024,
                max_files: 3,
                compress: true
            }
        );
        let r = rotation("local", &opts(&[("compress", "false")]));
        assert!(!r.compress);
    }

    #[test]
    fn options_are_refused_in_dockerds_words() {
        let refused =
            |driver: &str, pairs: &[(&str, &str)]| check(driver, &opts(pairs)).unwrap_err();
        assert_eq!(
            refused("local", &[("tag", "x")]),
            "unknown log opt 'tag' for log driver local"
        );
        assert_eq!(
            refused("json-file", &[("bogus", "x")]),
            "unknown log opt 'bogus' for json-file log driver"
        );
        assert_eq!(
            refused("json-file", &[("compress", "true")]),
            "compress cannot be true when max-file is less than 2 or max-size is not set"
        );
        assert_eq!(
            refused("local", &[("max-file", "1")]),
            "compression cannot be enabled when max file count is 1"
        );
        assert!(refused("local", &[("compress", "maybe")]).contains("ParseBool"));
        assert!(refused("json-file", &[("max-file", "0")]).contains("max-file"));
        assert!(
            check(
                "local",
                &opts(&[
                    ("max-file", "1"),
                    ("compress", "false"),
                    ("mode", "non-blocking")
                ])
            )
            .is_ok()
        );
        assert!(
            check(
                "json-file",
                &opts(&[("max-size", "1m"), ("max-file", "2"), ("compress", "1")])
            )
            .is_ok()
        );
        assert!(check("syslog", &opts(&[("anything", "x")])).is_ok());
    }
}
