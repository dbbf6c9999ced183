//! Swarm mode, plugins: what a dockerd that is in no swarm and has no
//! managed plugins answers. Clients probe these (docker-py cleans up with
//! `leave_swarm(force=True)`, the CLI asks for nodes and services) and
//! expect Docker's answers, not a missing page.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiError;

pub(crate) const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// The swarm calls of a node outside any swarm.
pub async fn not_a_manager() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
}

/// POST /swarm/leave
pub async fn leave() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "This node is not part of a swarm",
    )
}

/// POST /swarm/init and /swarm/join: berth has no swarm mode to enter.
pub async fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "berth does not run swarm mode: this node stays out of any swarm",
    )
}

/// `info`'s Swarm: an inactive node.
pub fn info() -> Value {
    json!({
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "inactive",
        "ControlAvailable": false,
        "Error": "",
        "RemoteManagers": null,
    })
}
