//! Request bodies as dockerd decodes them: a JSON object (serde would also
//! take a struct from an array), and a wrong type is a 400 naming the
//! field.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, Result};

/// The body decoded as `T`; `what` names it in the error.
pub fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(format!(
            "invalid {what}: expected a JSON object"
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        ApiError::bad_request(if at.is_empty() || at == "." {
            format!("invalid {what}: {inner}")
        } else {
            format!("invalid {what}: field {at}: {inner}")
        })
    })
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
        let e = super::json::<B>(br#"{"Memory": "abc"}"#, "body").unwrap_err();
        assert!(e.message.contains("field Memory"), "{}", e.message);
    }
}
