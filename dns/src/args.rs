//! berth-dns's command line (also its man page, made by berth-docs).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth-dns",
    version,
    about = "Serves the names of containers on berthd's user-defined networks on each network's gateway",
    long_about = "Serves the names of containers on berthd's user-defined networks on each \
        network's gateway, and forwards other names to the host's resolvers.\n\n\
        The config directory holds one file per network, named by its id: the first line \
        lists the addresses to listen on (comma-separated), then `internal` for a network \
        with no way out; each further line is a container as `id ipv4 ipv6 name,name…` and, \
        for legacy links, `alias@id,…` answered to that container alone. Only containers on \
        a network are answered, and only with the names on the networks they are on; other \
        names are forwarded only for containers on a network with a way out. With --netns-dir, each container is answered at \
        127.0.0.11 inside its own network namespace as well (as from its addresses). \
        SIGHUP reads the directory again \
        (listeners of unchanged addresses are kept); SIGTERM stops the server. berthd starts \
        and signals it; it is not meant to be run by hand except to try it."
)]
pub struct Args {
    /// The directory of network files; the pid file (server.pid) goes there too.
    #[arg(long)]
    pub config: PathBuf,
    /// The port to listen on.
    #[arg(short, long, default_value_t = 53)]
    pub port: u16,
    /// Where the host's resolvers are read from (its `nameserver` lines).
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// Forward to this server (address:port) instead of the resolv.conf's;
    /// repeatable.
    #[arg(long = "upstream", value_name = "ADDR:PORT")]
    pub upstreams: Vec<SocketAddr>,
    /// Where the containers' network namespaces are held, one file per
    /// container named by its id: each container with a record is also
    /// answered at 127.0.0.11 inside its namespace, as Docker's embedded
    /// DNS is (for software configured with that address).
    #[arg(long, value_name = "DIR")]
    pub netns_dir: Option<PathBuf>,
    /// Stay in the foreground; by default the server detaches once it
    /// listens, and its start command returns.
    #[arg(long)]
    pub foreground: bool,
    /// error, warn, info, debug or trace (to stderr).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}
