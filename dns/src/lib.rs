//! berth-dns: the names of containers on berthd's user-defined networks
//! (see the binary's documentation).

pub mod answer;
pub mod args;
pub mod records;
pub mod serve;
pub mod upstream;
pub mod zone;
