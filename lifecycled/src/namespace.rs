//! The namespace of a request, from its `berth-namespace` header.

use berth_proto::{DEFAULT_NAMESPACE, NAMESPACE_HEADER};
use tonic::{Request, Status};

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

pub fn of<T>(req: &Request<T>) -> Result<String, Status> {
    let ns = match req.metadata().get(NAMESPACE_HEADER) {
        Some(v) => v
            .to_str()
            .map_err(|_| Status::invalid_argument("the namespace header is not text"))?
            .to_string(),
        None => DEFAULT_NAMESPACE.to_string(),
    };
    validate(&ns)?;
    Ok(ns)
}

/// Container and exec ids name directories too.
pub fn validate_id(what: &str, id: &str) -> Result<(), Status> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{what} id {id:?} is not valid: use letters, digits and '._-+'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_be_paths_are_refused() {
        for bad in ["", "..", "a/b", "../x", "a b"] {
            assert!(validate(bad).is_err(), "{bad:?}");
            assert!(validate_id("container", bad).is_err(), "{bad:?}");
        }
        assert!(validate("default").is_ok());
        assert!(validate_id("container", "web-1.a_b").is_ok());
    }
}
