//! Instruction flags (`--from=build`), as buildkit's `BFlags` checks them:
//! each instruction declares the flags it knows; anything else is an
//! error, and so is a flag given twice or a string flag without a value.

use crate::suggest::with_suggestion;

/// What a declared flag holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--link`, `--link=true`, `--link=false`.
    Bool,
    /// `--from=x`; at most once.
    String,
    /// `--mount=x`; any number of times.
    Strings,
}

/// The flags an instruction was given, checked against its declarations.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// Flag name and its values, in the order first given.
    values: Vec<(String, Vec<String>)>,
}

impl Flags {
    /// Checks `args` (words like `--name=value`, as the parser extracted
    /// them) against `declared`.
    pub(crate) fn parse(args: &[String], declared: &[(&str, FlagKind)]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for arg in args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                // `--` ends the flags.
                return Ok(flags);
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(_, kind)) = declared.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = declared.iter().map(|(n, _)| *n).collect();
                return Err(with_suggestion(
                    format!("unknown flag: {name}"),
                    name,
                    &names,
                    true,
                ));
            };
            let seen = flags.values.iter().position(|(n, _)| n == name);
            if seen.is_some() && kind != FlagKind::Strings {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let value = match kind {
                FlagKind::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: {name}")),
                    None => "true".to_string(),
                    Some(v) => match v.to_lowercase().as_str() {
                        "true" => "true".to_string(),
                        "false" => "false".to_string(),
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag {name}, not: {v}"
                            ));
                        }
                    },
                },
                FlagKind::String | FlagKind::Strings => match value {
                    Some(v) => v.to_string(),
                    None => return Err(format!("missing a value on flag: {name}")),
                },
            };
            match seen {
                Some(i) => flags.values[i].1.push(value),
                None => flags.values.push((name.to_string(), vec![value])),
            }
        }
        Ok(flags)
    }

    /// A string flag's value; `None` when not given or given empty (Docker
    /// treats `--from=` as no `--from`).
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// Whether a bool flag was given as true.
    pub(crate) fn is_true(&self, name: &str) -> bool {
        self.values
            .iter()
            .any(|(n, v)| n == name && v.last().is_some_and(|v| v == "true"))
    }

    /// The names of the flags given, in order.
    pub(crate) fn used(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &[(&str, FlagKind)] = &[
        ("from", FlagKind::String),
        ("chown", FlagKind::String),
        ("link", FlagKind::Bool),
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_and_bools() {
        let f = Flags::parse(&args(&["--from=build", "--link"]), COPY).unwrap();
        assert_eq!(f.string("from").as_deref(), Some("build"));
        assert!(f.is_true("link"));
        let f = Flags::parse(&args(&["--link=FALSE", "--from="]), COPY).unwrap();
        assert!(!f.is_true("link"));
        assert_eq!(f.string("from"), None);
    }

    #[test]
    fn errors_as_docker_words_them() {
        let e = |a: &[&str]| Flags::parse(&args(a), COPY).unwrap_err();
        assert_eq!(
            e(&["--chwon=1"]),
            "unknown flag: chwon (did you mean chown?)"
        );
        assert_eq!(
            e(&["--from=a", "--from=b"]),
            "duplicate flag specified: from"
        );
        assert_eq!(e(&["--from"]), "missing a value on flag: from");
        assert_eq!(e(&["--link="]), "missing a value on flag: link");
        assert_eq!(
            e(&["--link=yes"]),
            "expecting boolean value for flag link, not: yes"
        );
    }
}
