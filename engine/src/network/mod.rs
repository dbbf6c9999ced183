//! Container networking on the standard CNI plugins (Debian's
//! containernetworking-plugins): the network namespace a container joins,
//! the plugin chain that wires it to a bridge, and the DNS server that
//! lets containers on a user-defined network find each other by name.

pub mod claim;
pub mod cni;
pub mod dns;
pub mod firewall;
pub mod netns;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("CNI plugin {plugin}: {message}")]
    Plugin { plugin: String, message: String },
    #[error("CNI plugin {0} not found in {1}")]
    MissingPlugin(String, String),
    #[error("network namespace {path}: {source}")]
    Netns {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
