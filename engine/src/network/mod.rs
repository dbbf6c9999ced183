//! Container networking on the standard CNI plugins (Debian's
//! containernetworking-plugins): the network namespace a container joins,
//! the plugin chain that wires it to a bridge, and the DNS server that
//! lets containers on a user-defined network find each other by name.

pub mod claim;
pub mod dns;
pub mod firewall;
pub mod relay;

pub use berth_cni as cni;
pub use berth_cni::netns;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("CNI plugin {plugin}: {message}")]
    Plugin { plugin: String, message: String },
    #[error(transparent)]
    Cni(#[from] berth_cni::CniError),
    #[error("invalid {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
