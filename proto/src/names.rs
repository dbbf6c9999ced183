//! The names a berth daemon turns into directories, files and arguments of
//! the runtime's command line: namespaces and container/exec ids. Checked
//! the same way wherever one arrives (lifecycled's API, the shim's Host).

use tonic::Status;

/// Namespaces name directories: letters, digits, `.`, `_`, `-`, and not only dots.
pub fn validate(ns: &str) -> Result<(), Status> {
    let ok = !ns.is_empty()
        && ns.len() <= 76
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !ns.chars().all(|c| c == '.');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "namespace {ns:?} is not valid: use letters, digits, '.', '_' and '-'"
        )))
    }
}

/// Container and exec ids name directories and are the runtime's
/// arguments: they start with a letter or digit (never a flag, never a
/// dot-name), as containerd's identifiers do.
pub fn validate_id(what: &str, id: &str) -> Result<(), Status> {
    let ok = id.len() <= 128
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{what} id {id:?} is not valid: use letters, digits and '._-+', starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_be_paths_or_flags_are_refused() {
        for bad in ["", "..", "a/b", "../x", "a b"] {
            assert!(validate(bad).is_err(), "{bad:?}");
            assert!(validate_id("container", bad).is_err(), "{bad:?}");
        }
        for bad in ["-h", "--root", ".hidden", "_x", "+1"] {
            assert!(validate_id("container", bad).is_err(), "{bad:?}");
        }
        assert!(validate("default").is_ok());
        assert!(validate_id("container", "web-1.a_b").is_ok());
    }
}
