//! Durations as Go's `time.ParseDuration` reads them, with its error words:
//! dockerd reads every duration a client sends this way (`until` filters,
//! log options), so berthd takes the same spellings (`1h30m`, `1.5s`,
//! `-5m`) and refuses the others as dockerd does.

/// Nanoseconds, negative for a leading `-`; the error is Go's text.
pub fn parse(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let whole = &s[..digits];
        s = &s[digits..];
        let mut v: u64 = 0;
        for b in whole.bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        let mut frac = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            frac = &rest[..n];
            s = &rest[n..];
            if whole.is_empty() && frac.is_empty() {
                return Err(invalid());
            }
        } else if whole.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let (u, rest) = s.split_at(unit_len);
        s = rest;
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        let mut part = v
            .checked_mul(unit)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(invalid)?;
        if !frac.is_empty() {
            // Go keeps the digits a u64 holds and scales by them.
            let (mut f, mut scale) = (0u64, 1f64);
            for b in frac.bytes() {
                match f
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                {
                    Some(n) if n <= 1 << 63 => {
                        f = n;
                        scale *= 10.0;
                    }
                    _ => break,
                }
            }
            part = part
                .checked_add((f as f64 * (unit as f64 / scale)) as u64)
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(part)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(invalid)?;
    }
    if neg {
        // 1 << 63 itself is i64::MIN, as in Go.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// A duration that cannot be negative (timeouts, intervals).
pub fn parse_positive(s: &str) -> Result<std::time::Duration, String> {
    let ns = parse(s)?;
    u64::try_from(ns)
        .map(std::time::Duration::from_nanos)
        .map_err(|_| format!("time: invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spellings_parse() {
        let ok = |s, ns| assert_eq!(parse(s), Ok(ns), "{s}");
        ok("0", 0);
        ok("1h30m", 5_400_000_000_000);
        ok("1.5s", 1_500_000_000);
        ok(".5ms", 500_000);
        ok("2.h", 7_200_000_000_000);
        ok("-5m", -300_000_000_000);
        ok("+10us", 10_000);
        ok("3µs", 3_000);
        ok("100ns", 100);
        ok("-9223372036854775808ns", i64::MIN);
        ok("9223372036854775807ns", i64::MAX);
    }

    #[test]
    fn the_rest_is_refused_in_gos_words() {
        let err = |s: &str, want: &str| assert_eq!(parse(s).unwrap_err(), want, "{s}");
        err("", r#"time: invalid duration """#);
        err("bogus", r#"time: invalid duration "bogus""#);
        err(
            "1600000000",
            r#"time: missing unit in duration "1600000000""#,
        );
        err(
            "2020-01-01",
            r#"time: unknown unit "-" in duration "2020-01-01""#,
        );
        err("1d", r#"time: unknown unit "d" in duration "1d""#);
        err(".s", r#"time: invalid duration ".s""#);
        err("1 h", r#"time: unknown unit " h" in duration "1 h""#);
        err(
            "9223372036854775808ns",
            r#"time: invalid duration "9223372036854775808ns""#,
        );
        err(
            "99999999999999999999h",
            r#"time: invalid duration "99999999999999999999h""#,
        );
        assert!(parse_positive("-1s").is_err());
        assert_eq!(
            parse_positive("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
    }
}
