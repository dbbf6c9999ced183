//! Device rules as the cgroup v1 devices controller keeps them: a default
//! (allow or deny everything) and exceptions to it, each a device pattern
//! with some of r/w/m. A container's rules are folded into that state, the
//! cgroup's current state is read back from `devices.list`, and only the
//! writes that take one to the other are made, so that an update which
//! keeps the rules never denies, even for a moment, what the container is
//! using (writing the whole list again starts with "deny everything").

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

const READ: u8 = 1;
const WRITE: u8 = 2;
const MKNOD: u8 = 4;

/// r, w and m as bits. Other letters are ignored, as runc ignores them
/// (runc's own tests write `rwa`); the kernel would refuse them (EINVAL).
fn access_bits(access: &str) -> u8 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => 0,
        }
    })
}

fn access_text(bits: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// A device pattern: type `c` or `b`, major and minor (`None` is `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pattern {
    typ: char,
    major: Option<i64>,
    minor: Option<i64>,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |x: Option<i64>| x.map_or("*".to_string(), |v| v.to_string());
        write!(f, "{} {}:{}", self.typ, n(self.major), n(self.minor))
    }
}

/// One write to the controller: `devices.allow` or `devices.deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub allow: bool,
    pub line: String,
}

impl Write {
    pub fn file(&self) -> &'static str {
        if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    default_allow: bool,
    exceptions: BTreeMap<Pattern, u8>,
}

impl Rules {
    /// Everything allowed, as a new cgroup starts under an unrestricted parent.
    pub fn allow_all() -> Self {
        Rules {
            default_allow: true,
            exceptions: BTreeMap::new(),
        }
    }

    /// The state `rules` leave, applied in order on top of `self`.
    pub fn with(mut self, rules: &[LinuxDeviceCgroup]) -> Result<Self, String> {
        for r in rules {
            self.apply(r)?;
        }
        Ok(self)
    }

    fn apply(&mut self, rule: &LinuxDeviceCgroup) -> Result<(), String> {
        let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::C | LinuxDeviceType::U => Some('c'),
            LinuxDeviceType::B => Some('b'),
            LinuxDeviceType::P => {
                return Err("device rule of type p (a fifo) cannot be a cgroup rule".into());
            }
        };
        let Some(typ) = typ else {
            // `a` resets: everything allowed or denied, no exceptions left.
            self.default_allow = rule.allow();
            self.exceptions.clear();
            return Ok(());
        };
        let bits = access_bits(rule.access().as_deref().unwrap_or("rwm"));
        if bits == 0 {
            return Ok(());
        }
        let pattern = Pattern {
            typ,
            major: rule.major().filter(|m| *m >= 0),
            minor: rule.minor().filter(|m| *m >= 0),
        };
        if rule.allow() == self.default_allow {
            self.remove(pattern, bits)
        } else {
            *self.exceptions.entry(pattern).or_insert(0) |= bits;
            Ok(())
        }
    }

    /// Takes `bits` away from the exception for exactly `pattern`. The
    /// kernel matches exceptions exactly: a rule for one device does not
    /// punch a hole in a wildcard exception covering it, it is silently
    /// ignored; that is refused here instead of letting the container keep
    /// an access its rules say it does not have.
    fn remove(&mut self, pattern: Pattern, bits: u8) -> Result<(), String> {
        let wider = [
            Pattern {
                major: None,
                ..pattern
            },
            Pattern {
                minor: None,
                ..pattern
            },
            Pattern {
                major: None,
                minor: None,
                ..pattern
            },
        ];
        for w in wider.into_iter().filter(|w| *w != pattern) {
            let held = self.exceptions.get(&w).copied().unwrap_or(0);
            if held & bits != 0 {
                return Err(format!(
                    "device rule {pattern} {} cannot be expressed on cgroup v1: the rule {w} {} before it covers that device, and v1 cannot take part of a wildcard rule back",
                    access_text(bits),
                    access_text(held)
                ));
            }
        }
        if let Some(held) = self.exceptions.get_mut(&pattern) {
            *held &= !bits;
            if *held == 0 {
                self.exceptions.remove(&pattern);
            }
        }
        Ok(())
    }

    /// The state a `devices.list` shows. It lists what is allowed; in
    /// allow-by-default mode it shows only `a *:* rwm`, whatever is denied.
    pub fn from_list(list: &str) -> Self {
        let mut rules = Rules {
            default_allow: false,
            exceptions: BTreeMap::new(),
        };
        for line in list.lines() {
            let mut parts = line.split_whitespace();
            let (Some(typ), Some(numbers), Some(access)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let typ = typ.chars().next().unwrap_or('a');
            if typ == 'a' {
                rules = Rules::allow_all();
                continue;
            }
            let (major, minor) = numbers.split_once(':').unwrap_or(("*", "*"));
            let pattern = Pattern {
                typ,
                major: major.parse().ok(),
                minor: minor.parse().ok(),
            };
            *rules.exceptions.entry(pattern).or_insert(0) |= access_bits(access);
        }
        rules
    }

    /// The writes that take a cgroup in state `self` to `target`, none when
    /// they agree. Going to or from allow-by-default needs the resetting
    /// `a` write (and a `devices.list` in that mode does not show what it
    /// denies, so from it the reset is always made). Otherwise, access is
    /// granted before any is taken away.
    pub fn transition(&self, target: &Rules) -> Vec<Write> {
        let mut writes = Vec::new();
        let empty = BTreeMap::new();
        let current = if self.default_allow || self.default_allow != target.default_allow {
            writes.push(Write {
                allow: target.default_allow,
                line: "a *:* rwm".into(),
            });
            &empty
        } else {
            &self.exceptions
        };
        for (pattern, bits) in &target.exceptions {
            let gained = bits & !current.get(pattern).copied().unwrap_or(0);
            if gained != 0 {
                writes.push(Write {
                    allow: !target.default_allow,
                    line: format!("{pattern} {}", access_text(gained)),
                });
            }
        }
        for (pattern, bits) in current {
            let dropped = bits & !target.exceptions.get(pattern).copied().unwrap_or(0);
            if dropped != 0 {
                writes.push(Write {
                    allow: target.default_allow,
                    line: format!("{pattern} {}", access_text(dropped)),
                });
            }
        }
        writes
    }
}

/// `rules` with only the access letters r, w and m kept (in that order),
/// as runc reads them; a rule left with no access is dropped. For the
/// consumers that would refuse other letters (the kernel's v1 files, the
/// eBPF program builder).
pub fn normalized(rules: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    rules
        .iter()
        .filter_map(|r| {
            let Some(access) = r.access() else {
                return Some(r.clone());
            };
            let bits = access_bits(access);
            if bits == 0 {
                return None;
            }
            let mut r = r.clone();
            r.set_access(Some(access_text(bits)));
            Some(r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: &str,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        serde_json::from_value(serde_json::json!({
            "allow": allow, "type": typ, "major": major, "minor": minor, "access": access,
        }))
        .unwrap()
    }

    fn lines(w: &[Write]) -> Vec<String> {
        w.iter()
            .map(|w| format!("{} {}", w.file(), w.line))
            .collect()
    }

    #[test]
    fn deny_after_deny_all_is_nothing_to_write_and_unknown_letters_are_ignored() {
        let target = Rules::allow_all()
            .with(&[
                rule(false, "a", None, None, "rwm"),
                rule(false, "c", Some(1), Some(11), "rwa"),
                rule(true, "c", Some(1), Some(3), "rwm"),
            ])
            .unwrap();
        let w = Rules::allow_all().transition(&target);
        assert_eq!(
            lines(&w),
            ["devices.deny a *:* rwm", "devices.allow c 1:3 rwm"]
        );
    }

    #[test]
    fn the_same_rules_again_write_nothing() {
        let target = Rules::allow_all()
            .with(&[
                rule(false, "a", None, None, "rwm"),
                rule(true, "c", Some(1), Some(3), "rwm"),
                rule(true, "c", Some(136), None, "rwm"),
                rule(true, "b", None, None, "m"),
            ])
            .unwrap();
        let list = "c 1:3 rwm\nc 136:* rwm\nb *:* m\n";
        assert_eq!(Rules::from_list(list), target);
        assert!(Rules::from_list(list).transition(&target).is_empty());
    }

    #[test]
    fn a_change_grants_before_it_takes_away() {
        let current = Rules::from_list("c 1:3 rwm\nc 1:5 rwm\n");
        let target = Rules::allow_all()
            .with(&[
                rule(false, "a", None, None, "rwm"),
                rule(true, "c", Some(1), Some(3), "rw"),
                rule(true, "c", Some(1), Some(9), "r"),
            ])
            .unwrap();
        assert_eq!(
            lines(&current.transition(&target)),
            [
                "devices.allow c 1:9 r",
                "devices.deny c 1:3 m",
                "devices.deny c 1:5 rwm"
            ]
        );
    }

    #[test]
    fn allow_by_default_resets_then_denies() {
        let target = Rules::allow_all()
            .with(&[rule(false, "b", Some(8), None, "rwm")])
            .unwrap();
        assert_eq!(
            lines(&Rules::from_list("a *:* rwm\n").transition(&target)),
            ["devices.allow a *:* rwm", "devices.deny b 8:* rwm"]
        );
    }

    #[test]
    fn a_hole_in_a_wildcard_is_refused() {
        let e = Rules::allow_all()
            .with(&[
                rule(false, "a", None, None, "rwm"),
                rule(true, "c", Some(136), None, "rwm"),
                rule(false, "c", Some(136), Some(2), "w"),
            ])
            .unwrap_err();
        assert!(e.contains("c 136:*"), "{e}");
    }

    #[test]
    fn normalized_keeps_rwm_in_order() {
        let n = normalized(&[
            rule(true, "c", Some(1), Some(3), "mwra"),
            rule(true, "c", Some(1), Some(5), "a"),
        ]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].access().as_deref(), Some("rwm"));
    }
}
