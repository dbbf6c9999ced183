//! `berth network …` and `berth port`: Docker's network commands.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::client::q;
use super::system::{InspectArgs, confirm, inspect};
use super::{Ctx, for_each, format};

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectNetArgs),
    /// Remove one or more networks
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    ipam_opt: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Enable or disable IPv6 networking
    #[arg(long)]
    ipv6: bool,
    /// Create swarm routing-mesh network (a swarm's; refused here)
    #[arg(long)]
    ingress: bool,
    /// Control the network's scope
    #[arg(long)]
    scope: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    name: String,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(Args)]
pub struct InspectNetArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    ip6: Option<String>,
    /// Add link to another container
    #[arg(long)]
    link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    link_local_ip: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt")]
    driver_opt: Vec<String>,
    network: String,
    container: String,
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    force: bool,
    network: String,
    container: String,
}

fn kv(l: &[String]) -> BTreeMap<String, String> {
    l.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub async fn network(ctx: &Ctx, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => {
            if (!a.gateway.is_empty() || !a.ip_range.is_empty()) && a.subnet.is_empty() {
                bail!("invalid config: gateway and ip-range need a subnet (--subnet)");
            }
            // A gateway or range goes with the subnet of its family (one
            // IPv4 and, with --ipv6, one IPv6 subnet).
            let v6 = |x: &String| x.contains(':');
            let mut configs = Vec::new();
            for s in &a.subnet {
                let mut c = json!({"Subnet": s});
                if let Some(g) = a.gateway.iter().find(|g| v6(g) == v6(s)) {
                    c["Gateway"] = json!(g);
                }
                if let Some(r) = a.ip_range.iter().find(|r| v6(r) == v6(s)) {
                    c["IPRange"] = json!(r);
                }
                configs.push(c);
            }
            for g in a.gateway.iter().chain(&a.ip_range) {
                if !a.subnet.iter().any(|s| v6(s) == v6(g)) {
                    bail!("no matching subnet for {g}");
                }
            }
            let ipam =
                json!({"Driver": a.ipam_driver, "Config": configs, "Options": kv(&a.ipam_opt)});
            let body = json!({
                "Name": a.name, "Driver": a.driver, "Internal": a.internal,
                "Attachable": a.attachable, "EnableIPv6": a.ipv6, "IPAM": ipam,
                "Ingress": a.ingress, "Scope": a.scope.clone().unwrap_or_default(),
                "Options": kv(&a.opt), "Labels": kv(&a.label), "CheckDuplicate": true,
            });
            let v = ctx.client.post("/networks/create", Some(&body)).await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkCmd::Ls(a) => {
            let mut path = "/networks".to_string();
            if !a.filter.is_empty() {
                path.push_str(&format!("?filters={}", q(&super::filters_json(&a.filter)?)));
            }
            let v = ctx.client.get(&path).await?;
            let nets = v.as_array().cloned().unwrap_or_default();
            let id = |n: &Value| {
                let id = n["Id"].as_str().unwrap_or("").to_string();
                if a.no_trunc {
                    id
                } else {
                    id.chars().take(12).collect()
                }
            };
            if a.quiet {
                for n in &nets {
                    println!("{}", id(n));
                }
                return Ok(0);
            }
            let rows: Vec<Value> = nets
                .iter()
                .map(|n| {
                    let labels = format::labels(&n["Labels"]);
                    json!({"ID": id(n), "Name": n["Name"], "Driver": n["Driver"],
                        "Scope": n["Scope"], "IPv6": n["EnableIPv6"], "Internal": n["Internal"],
                        "Labels": labels, "CreatedAt": n["Created"]})
                })
                .collect();
            let fmt = format::template(
                a.format.as_deref(),
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
            );
            let header = |f: &str| match f {
                "ID" => "NETWORK ID".to_string(),
                f => format::header(f),
            };
            format::parse(&fmt, &header)?.print(&rows)?;
            Ok(0)
        }
        NetworkCmd::Inspect(a) => {
            inspect(ctx, InspectArgs::new(a.format, a.names), Some("network")).await
        }
        NetworkCmd::Rm(a) => {
            for_each(&a.names, false, |n| async move {
                match ctx
                    .client
                    .json(Method::DELETE, &format!("/networks/{}", q(&n)), None)
                    .await
                {
                    Err(super::client::Error::Daemon { status: 404, .. }) if a.force => Ok(()),
                    Err(e) => Err(e.into()),
                    Ok(_) => Ok(()),
                }
            })
            .await
        }
        NetworkCmd::Prune(a) => {
            if !a.force
                && !confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ",
                )?
            {
                return Ok(0);
            }
            let v = ctx
                .client
                .post(
                    &format!(
                        "/networks/prune?filters={}",
                        q(&super::filters_json(&a.filter)?)
                    ),
                    None,
                )
                .await?;
            let deleted = v["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in &deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
            }
            Ok(0)
        }
        NetworkCmd::Connect(a) => {
            let mut ep =
                json!({"Aliases": a.alias, "Links": a.link, "DriverOpts": kv(&a.driver_opt)});
            if a.ip.is_some() || a.ip6.is_some() || !a.link_local_ip.is_empty() {
                ep["IPAMConfig"] = json!({
                    "IPv4Address": a.ip.clone().unwrap_or_default(),
                    "IPv6Address": a.ip6.clone().unwrap_or_default(),
                    "LinkLocalIPs": a.link_local_ip,
                });
            }
            let body = json!({"Container": a.container, "EndpointConfig": ep});
            ctx.client
                .post(&format!("/networks/{}/connect", q(&a.network)), Some(&body))
                .await?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            ctx.client
                .post(
                    &format!("/networks/{}/disconnect", q(&a.network)),
                    Some(&body),
                )
                .await?;
            Ok(0)
        }
    }
}

#[derive(Args)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

/// `berth port`: the host addresses of a container's published ports.
pub async fn port(ctx: &Ctx, a: PortArgs) -> Result<i32> {
    let v = ctx
        .client
        .get(&format!("/containers/{}/json", q(&a.container)))
        .await?;
    let ports = v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for (p, bindings) in &ports {
        if want.as_ref().is_some_and(|w| w != p) {
            continue;
        }
        for b in bindings.as_array().into_iter().flatten() {
            found = true;
            let addr = super::join_host_port(
                b["HostIp"].as_str().unwrap_or(""),
                b["HostPort"].as_str().unwrap_or(""),
            );
            if want.is_some() {
                println!("{addr}");
            } else {
                println!("{p} -> {addr}");
            }
        }
    }
    if let (Some(w), false) = (&want, found) {
        bail!("Error: No public port '{w}' published for {}", a.container);
    }
    Ok(0)
}
