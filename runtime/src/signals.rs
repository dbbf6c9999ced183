//! Signal names and numbers as runc accepts them: `KILL`, `SIGKILL`, `9`,
//! and real-time signals by number or as `RTMIN+n`.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

pub fn parse(s: &str) -> Result<i32> {
    let unknown = || Error::Invalid(format!("unknown signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        // 0 checks that the process exists, as kill(1)'s.
        if n >= 0 && n <= libc::SIGRTMAX() {
            return Ok(n);
        }
        return Err(unknown());
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(off) = name.strip_prefix("RTMIN+") {
        let n: i32 = off.parse().map_err(|_| unknown())?;
        let sig = libc::SIGRTMIN() + n;
        return if sig <= libc::SIGRTMAX() {
            Ok(sig)
        } else {
            Err(unknown())
        };
    }
    if name == "RTMIN" {
        return Ok(libc::SIGRTMIN());
    }
    if name == "RTMAX" {
        return Ok(libc::SIGRTMAX());
    }
    Signal::from_str(&format!("SIG{name}"))
        .map(|s| s as i32)
        .map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
    }

    #[test]
    fn unknown_signals_are_refused() {
        for s in ["SIGNOPE", "-1", "999", "RTMIN+99", ""] {
            assert!(parse(s).is_err(), "{s:?} accepted");
        }
    }
}
