//! How a remote command ended, as the client reads it from the error
//! stream: a `metav1.Status` object in JSON (protocol v4 and later), or the
//! error's text alone (earlier versions, which cannot carry an exit code).

use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    /// The command ran and exited with this non-zero status.
    Exited {
        code: i32,
        cmd: Vec<String>,
    },
    /// It could not run, or the stream broke.
    Failed(String),
}

impl Outcome {
    /// The bytes for the error stream under `version` (1 to 5), or none.
    pub fn encode(&self, version: u8) -> Option<Vec<u8>> {
        if version >= 4 {
            return Some(self.json().to_string().into_bytes());
        }
        match self {
            Outcome::Success => None,
            Outcome::Exited { .. } | Outcome::Failed(_) => Some(self.message().into_bytes()),
        }
    }

    fn message(&self) -> String {
        match self {
            Outcome::Success => String::new(),
            Outcome::Exited { code, cmd } => format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            Outcome::Failed(e) => format!("Internal error occurred: {e}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::Exited { code, .. } => json!({
                "metadata": {},
                "status": "Failure",
                "message": self.message(),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Failed(e) => json!({
                "metadata": {},
                "status": "Failure",
                "message": self.message(),
                "reason": "InternalError",
                "details": {"causes": [{"message": e}]},
                "code": 500,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_travel_as_kubectl_reads_them() {
        let o = Outcome::Exited {
            code: 3,
            cmd: vec!["sh".into(), "-c".into(), "exit 3".into()],
        };
        let v: serde_json::Value =
            serde_json::from_slice(&o.encode(4).expect("json")).expect("valid json");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert_eq!(
            Outcome::Success.encode(5).expect("json"),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(Outcome::Success.encode(3), None);
        assert!(
            String::from_utf8(o.encode(2).expect("text"))
                .expect("utf-8")
                .ends_with("exit code 3")
        );
    }
}
