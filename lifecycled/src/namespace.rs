//! The namespace of a request, from its `berth-namespace` header.

pub use berth_proto::names::{validate, validate_id};
use berth_proto::{DEFAULT_NAMESPACE, NAMESPACE_HEADER};
use tonic::{Request, Status};

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
