//! HEALTHCHECK, as buildkit's `parseHealthcheck` reads it, and the Go
//! durations its options take (`time.ParseDuration`: `1m30s`, `500ms`,
//! `1.5h`).

use crate::Healthcheck;
use crate::error::go_quote;
use crate::flags::{FlagKind, Flags};

/// Docker's `container.MinimumDuration`: a non-zero interval below it is
/// refused (1ms).
const MINIMUM_NS: i64 = 1_000_000;

/// The options HEALTHCHECK CMD knows.
const OPTIONS: &[(&str, FlagKind)] = &[
    ("interval", FlagKind::String),
    ("timeout", FlagKind::String),
    ("start-period", FlagKind::String),
    ("start-interval", FlagKind::String),
    ("retries", FlagKind::String),
];

/// HEALTHCHECK from its node's arguments (`args[0]` the type) and flags;
/// `None` for `HEALTHCHECK NONE`.
pub(crate) fn parse(
    args: &[String],
    json: bool,
    flags: &[String],
) -> Result<Option<Healthcheck>, String> {
    let Some(typ) = args.first() else {
        return Err("HEALTHCHECK requires at least one argument".into());
    };
    let typ = typ.to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        // Docker does not look at the options of NONE.
        return Ok(None);
    }
    let flags = Flags::parse(flags, OPTIONS)?;
    if typ != "CMD" {
        return Err(format!(
            "unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    if rest.is_empty() {
        return Err("missing command after HEALTHCHECK CMD".into());
    }
    let test = if json {
        std::iter::once("CMD".to_string())
            .chain(rest.iter().cloned())
            .collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let retries = match flags.string("retries") {
        None => 0,
        Some(v) => {
            let n = parse_int32(&v)?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            n
        }
    };
    Ok(Some(Healthcheck {
        test,
        interval_ns: interval(&flags, "interval")?,
        timeout_ns: interval(&flags, "timeout")?,
        start_period_ns: interval(&flags, "start-period")?,
        start_interval_ns: interval(&flags, "start-interval")?,
        retries,
    }))
}

/// `parseOptInterval`: 0 when not given; else a duration of 0 or at least
/// 1ms.
fn interval(flags: &Flags, name: &str) -> Result<i64, String> {
    let Some(v) = flags.string(name) else {
        return Ok(0);
    };
    let d = parse_duration(&v)?;
    if d != 0 && d < MINIMUM_NS {
        return Err(format!(
            "interval {} cannot be less than 1ms",
            go_quote(name)
        ));
    }
    Ok(d)
}

/// Go's `strconv.ParseInt(s, 10, 32)`, with its error messages.
fn parse_int32(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<i32>().map(i64::from).map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(s)
        )
    })
}

/// Go's time.Duration.String(): "0s", "1.5ms", "5s", "1m30s", "1h0m0s".
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let with_fraction = |whole: u64, frac: u64, digits: usize| {
        if frac == 0 {
            whole.to_string()
        } else {
            let f = format!("{frac:0digits$}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    if u < 1_000_000_000 {
        let (unit, div, digits) = match u {
            0..1_000 => ("ns", 1, 0),
            1_000..1_000_000 => ("µs", 1_000, 3),
            _ => ("ms", 1_000_000, 6),
        };
        return format!("{sign}{}{unit}", with_fraction(u / div, u % div, digits));
    }
    let (h, rest) = (u / 3_600_000_000_000, u % 3_600_000_000_000);
    let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let secs = with_fraction(rest / 1_000_000_000, rest % 1_000_000_000, 9);
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: an optional sign, then one
/// or more decimal numbers each with a unit (`ns`, `us`/`µs`/`μs`, `ms`,
/// `s`, `m`, `h`); a lone `0` needs no unit.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Nanoseconds, accumulated without overflow (Go's limit is i64).
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after) = rest.strip_prefix('.') {
            let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after[..frac_len];
            rest = &after[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {}", go_quote(s))),
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ));
            }
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(per).ok_or_else(invalid)?;
        // The fraction, to nanosecond precision (Go truncates the rest).
        let mut scale = per;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(negative) {
            return Err(invalid());
        }
    }
    let total = total as i128;
    let signed = if negative { -total } else { total };
    i64::try_from(signed).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_gos() {
        for (ns, text) in [
            (0, "0s"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500_000, "1.5ms"),
            (200_000_000, "200ms"),
            (250, "250ns"),
            (2_000, "2µs"),
        ] {
            assert_eq!(format_duration(ns), text, "{ns}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("10µs"), Ok(10_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("-9223372036854775808ns"), Ok(i64::MIN));
    }

    #[test]
    fn go_duration_errors() {
        // What an `until` filter's timestamp is, read as a duration.
        assert_eq!(
            parse_duration("2020-01-01").unwrap_err(),
            "time: unknown unit \"-\" in duration \"2020-01-01\""
        );
        assert_eq!(
            parse_duration("9223372036854775808ns").unwrap_err(),
            "time: invalid duration \"9223372036854775808ns\""
        );
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_duration("1d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse_duration("").unwrap_err(),
            "time: invalid duration \"\""
        );
        assert_eq!(
            parse_duration("s").unwrap_err(),
            "time: invalid duration \"s\""
        );
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn int32() {
        assert_eq!(parse_int32("+3"), Ok(3));
        assert!(parse_int32("3x").unwrap_err().ends_with("invalid syntax"));
        assert!(
            parse_int32("99999999999")
                .unwrap_err()
                .ends_with("value out of range")
        );
    }
}
