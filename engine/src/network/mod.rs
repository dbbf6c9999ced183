//! Container networking on the standard CNI plugins (Debian's
//! containernetworking-plugins): the network namespace a container joins,
//! the plugin chain that wires it to a bridge, and the DNS server that
//! lets containers on a user-defined network find each other by name.

pub mod bridges;
pub mod claim;
pub mod dns;
pub mod firewall;
pub mod parent;
pub mod relay;
pub mod sandbox;

pub use berth_cni as cni;

/// A MAC address as Go's `net.ParseMAC` takes a 48-bit one: six hex
/// pairs separated by `:` or `-`.
pub fn is_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An interface name as the kernel takes it (up to 15 characters) with
/// nothing an `ip` argument, a path under /sys or an iptables rule (`+`)
/// could read otherwise.
pub fn is_interface_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 15
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}
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
