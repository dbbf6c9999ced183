//! Request bodies as dockerd decodes them: a JSON object (serde would also
//! take a struct from an array), and a wrong type is a 400 naming the
//! field.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, Result};

/// The body decoded as `T`; `what` names it in the error.
pub fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    let mut v = object(body, what)?;
    go_nulls(&mut v);
    typed(&v, what)
}

/// The body as a JSON object. No body, or one that is not JSON, is refused
/// in dockerd's words (Go's decoder's).
pub fn object(body: &[u8], what: &str) -> Result<Value> {
    if body.trim_ascii().is_empty() {
        return Err(ApiError::bad_request("got EOF while reading request body"));
    }
    if let Some(m) = super::json_syntax::go_message(body) {
        return Err(ApiError::bad_request(m));
    }
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(format!(
            "invalid {what}: expected a JSON object"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// `v` decoded as `T`, a wrong type a 400 naming the field.
pub fn typed<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        ApiError::bad_request(if at.is_empty() || at == "." {
            format!("invalid {what}: {inner}")
        } else {
            format!("invalid {what}: field {at}: {inner}")
        })
    })
}

/// The fields of Docker's API types that are maps: their keys are the
/// caller's, and a null value is an entry (Go's decoder keeps it).
const MAP_FIELDS: &[&str] = &[
    "Labels",
    "ExposedPorts",
    "Volumes",
    "Options",
    "DriverOpts",
    "Sysctls",
    "StorageOpt",
    "Tmpfs",
    "PortBindings",
    "EndpointsConfig",
    "Config",
    "Annotations",
];

/// Nulls read as Go's decoder reads them: a null field of a struct leaves
/// the field at its zero value, as if absent; a null value in a map is an
/// entry with the zero value of the map's type. Clients (docker-compose,
/// docker-py) send `null` for anything they leave unset.
pub fn go_nulls(v: &mut Value) {
    struct_nulls(v);
}

fn struct_nulls(v: &mut Value) {
    let Value::Object(o) = v else { return };
    o.retain(|_, x| !x.is_null());
    for (k, x) in o.iter_mut() {
        match x {
            Value::Object(_) if MAP_FIELDS.contains(&k.as_str()) => map_nulls(k, x),
            Value::Object(_) => struct_nulls(x),
            Value::Array(items) => items.iter_mut().for_each(struct_nulls),
            _ => {}
        }
    }
}

fn map_nulls(field: &str, v: &mut Value) {
    let Value::Object(o) = v else { return };
    for x in o.values_mut() {
        match x {
            Value::Null => {
                *x = match field {
                    "ExposedPorts" | "Volumes" | "EndpointsConfig" => {
                        Value::Object(Default::default())
                    }
                    "PortBindings" => Value::Array(Vec::new()),
                    _ => Value::String(String::new()),
                }
            }
            Value::Object(_) => struct_nulls(x),
            Value::Array(items) => items.iter_mut().for_each(struct_nulls),
            _ => {}
        }
    }
}

/// What a failed request's body is read (and dropped) up to before the
/// answer, as Go's HTTP server reads it.
const UNREAD_BODY_LIMIT: usize = 256 << 10;

/// Reads what is left of a body the answer did not need (bounded, as Go's
/// server): a client still sending a small upload then reads the error,
/// where a closed connection left the docker CLI with a broken pipe.
pub async fn drain_unread(body: &mut axum::body::BodyDataStream) {
    use futures::StreamExt;
    let read = async {
        let mut n = 0;
        while n < UNREAD_BODY_LIMIT {
            match body.next().await {
                Some(Ok(chunk)) => n += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read).await;
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "PascalCase")]
    struct B {
        #[allow(dead_code)]
        memory: i64,
    }

    #[test]
    fn objects_only_and_fields_named() {
        assert!(super::json::<B>(br#" {"Memory": 5}"#, "body").is_ok());
        assert!(super::json::<B>(b"[5]", "body").is_err());
        let e = super::json::<B>(b"{invalid json", "body").unwrap_err();
        assert_eq!(
            e.message,
            "invalid character 'i' looking for beginning of object key string"
        );
        let e = super::json::<B>(b" \n", "body").unwrap_err();
        assert_eq!(e.message, "got EOF while reading request body");
        let e = super::json::<B>(br#"{"Memory": "abc"}"#, "body").unwrap_err();
        assert!(e.message.contains("field Memory"), "{}", e.message);
    }

    #[test]
    fn nulls_read_as_gos_decoder_reads_them() {
        let mut v = serde_json::json!({
            "Healthcheck": {"Test": ["CMD", "true"], "StartPeriod": null},
            "Labels": {"a": null},
            "ExposedPorts": {"80/tcp": null},
            "HostConfig": {"Binds": null, "PortBindings": {"80/tcp": null}},
            "NetworkingConfig": {"EndpointsConfig": {"n": null, "m": {"Aliases": null}}},
            "Mounts": [{"Target": "/x", "VolumeOptions": null}],
        });
        super::go_nulls(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "Healthcheck": {"Test": ["CMD", "true"]},
                "Labels": {"a": ""},
                "ExposedPorts": {"80/tcp": {}},
                "HostConfig": {"PortBindings": {"80/tcp": []}},
                "NetworkingConfig": {"EndpointsConfig": {"n": {}, "m": {}}},
                "Mounts": [{"Target": "/x"}],
            })
        );
    }
}
