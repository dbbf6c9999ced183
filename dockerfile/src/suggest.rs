//! "(did you mean …?)" hints, as buildkit's util/suggest adds them to
//! unknown instructions and flags: the closest option by edit distance,
//! when it is closer than 3.

/// `message` with a hint naming the option closest to `value`, if one is
/// within distance 2. With `case_sensitive` false the comparison ignores
/// case and the hint takes the case `value` was written in.
pub(crate) fn with_suggestion(
    message: String,
    value: &str,
    options: &[&str],
    case_sensitive: bool,
) -> String {
    let val = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let opt = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if val == opt {
            // An exact match: the error is not about the name.
            return message;
        }
        let d = distance(&val, &opt);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                opt
            } else {
                match_case(&opt, value)
            });
        }
    }
    match best {
        Some(m) => format!("{message} (did you mean {m}?)"),
        None => message,
    }
}

/// `val` in the case of `orig` when `orig` is all lower or all upper case.
fn match_case(val: &str, orig: &str) -> String {
    if orig == orig.to_lowercase() {
        val.to_lowercase()
    } else if orig == orig.to_uppercase() {
        val.to_uppercase()
    } else {
        val.to_string()
    }
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_in_the_callers_case() {
        let opts = ["RUN", "ENV", "COPY"];
        assert_eq!(
            with_suggestion("unknown instruction: RUNN".into(), "RUNN", &opts, false),
            "unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            with_suggestion("x".into(), "cpy", &opts, false),
            "x (did you mean copy?)"
        );
        assert_eq!(with_suggestion("x".into(), "WHATEVER", &opts, false), "x");
    }

    #[test]
    fn levenshtein() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("chwon", "chown"), 2);
    }
}
