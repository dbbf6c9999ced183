use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use berth_engine::args::Args;

use berth_engine::config::{self, Config};
use berth_engine::daemon::Daemon;
use berth_engine::hosts;

fn effective(args: &Args) -> anyhow::Result<Config> {
    let explicit =
        std::env::args().any(|a| a == "--config-file" || a.starts_with("--config-file="));
    let file = match std::fs::read_to_string(&args.config_file) {
        Ok(text) => config::parse_file(&args.config_file, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => config::File::default(),
        Err(source) => {
            return Err(config::ConfigError::Read {
                path: args.config_file.clone(),
                source,
            }
            .into());
        }
    };
    if !args.hosts.is_empty() && file.hosts.as_ref().is_some_and(|h| !h.is_empty()) {
        anyhow::bail!(
            "the following directives are specified both as a flag and in the configuration file: hosts: (from flag: {:?}, from file: {:?})",
            args.hosts,
            file.hosts.unwrap_or_default()
        );
    }
    let hosts = if !args.hosts.is_empty() {
        args.hosts.clone()
    } else {
        file.hosts
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| vec!["unix:///run/berth/berthd.sock".into()])
    };
    for h in &hosts {
        hosts::parse(h).map_err(|e| anyhow::anyhow!("-H {e}"))?;
    }
    // tcp:// is root on this host for whoever reaches the port: it needs
    // mutual TLS, or the operator's explicit --tls=false.
    let tcp = hosts.iter().any(|h| h.starts_with("tcp://"));
    let tls_flag = args.tls.or(file.tls);
    let verify = args.tlsverify.or(file.tlsverify).unwrap_or(false);
    let tls_dir = PathBuf::from("/etc/berth/tls");
    let files = berth_engine::tls::TlsFiles {
        ca: args
            .tlscacert
            .clone()
            .or(file.tlscacert.clone())
            .unwrap_or_else(|| tls_dir.join("ca.pem")),
        cert: args
            .tlscert
            .clone()
            .or(file.tlscert.clone())
            .unwrap_or_else(|| tls_dir.join("cert.pem")),
        key: args
            .tlskey
            .clone()
            .or(file.tlskey.clone())
            .unwrap_or_else(|| tls_dir.join("key.pem")),
    };
    let tls = if !tcp {
        None
    } else if verify {
        Some((files, true))
    } else if tls_flag == Some(false) {
        None
    } else {
        anyhow::bail!(
            "refusing to listen on a tcp:// host without --tlsverify: anyone who can reach it would be root on this machine. Use --tlsverify with --tlscacert, --tlscert and --tlskey, or pass --tls=false to serve it in the clear anyway"
        );
    };
    let log_level = args
        .log_level
        .clone()
        .or(file.log_level.clone())
        .unwrap_or_else(|| "info".into());
    Ok(Config {
        data_root: args
            .data_root
            .clone()
            .or(file.data_root)
            .unwrap_or_else(|| "/var/lib/berth/engine".into()),
        exec_root: args
            .exec_root
            .clone()
            .or(file.exec_root)
            .unwrap_or_else(|| "/run/berth/engine".into()),
        hosts,
        debug: args.debug || file.debug.unwrap_or(false),
        log_level,
        live_restore: args.live_restore.or(file.live_restore).unwrap_or(true),
        default_runtime: args
            .default_runtime
            .clone()
            .or(file.default_runtime)
            .unwrap_or_else(|| "berth-runtime".into()),
        log_driver: file.log_driver.unwrap_or_else(|| "json-file".into()),
        log_opts: file.log_opts.unwrap_or_default(),
        insecure_registries: file.insecure_registries.unwrap_or_default(),
        registry_mirrors: file.registry_mirrors.unwrap_or_default(),
        group: args
            .group
            .clone()
            .or(file.group)
            .unwrap_or_else(|| "berth".into()),
        lifecycled: args
            .lifecycled
            .clone()
            .or(file.containerd)
            .unwrap_or_else(|| "/run/berth/lifecycled.sock".into()),
        cgroup_parent: file.cgroup_parent.unwrap_or_else(|| "berth".into()),
        labels: file.labels.unwrap_or_default(),
        dns: file.dns.unwrap_or_default(),
        dns_search: file.dns_search.unwrap_or_default(),
        shutdown_timeout: file.shutdown_timeout.unwrap_or(15),
        host_gateway_ip: file.host_gateway_ip,
        bip6: config::bridge_ipv6(file.ipv6, file.fixed_cidr_v6.as_deref())
            .map_err(|e| anyhow::anyhow!(e))?,
        bridge: file.bridge,
        bip: file.bip,
        default_address_pools: file.default_address_pools.unwrap_or_default(),
        tls,
        authorization: file.authorization.unwrap_or_default(),
        api_idle_timeout: match &file.api_idle_timeout {
            Some(t) => config::idle_timeout(t).map_err(|e| anyhow::anyhow!(e))?,
            None => std::time::Duration::from_secs(60),
        },
        api_connections_per_caller: file.api_connections_per_caller.unwrap_or(256) as usize,
        authorization_plugins: if args.authorization_plugins.is_empty() {
            file.authorization_plugins.unwrap_or_default()
        } else {
            args.authorization_plugins.clone()
        },
        plugin_dirs: file.plugin_dirs.unwrap_or_else(|| {
            berth_engine::daemon::plugins::legacy::DEFAULT_DIRS
                .map(PathBuf::from)
                .to_vec()
        }),
    })
}

fn main() {
    // One malloc arena, not one per thread that allocates: a daemon that
    // sits idle between bursts kept the freed memory of every worker
    // thread's arena (lifecycled after 33 runs: 5.8 MiB of heap, 3.5 MiB
    // with one arena). On two to a few tokio workers the shared arena's
    // lock costs nothing measurable.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args = Args::parse();
    let cfg = match effective(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::exit(1);
        }
    };
    if args.validate {
        println!("configuration OK");
        return;
    }
    if let Err(e) = run(cfg, args) {
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}

/// The log filter for a configuration's debug and log-level.
fn log_filter(cfg: &Config) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    let level = if cfg.debug {
        "debug"
    } else {
        cfg.log_level.as_str()
    };
    let level = if level == "fatal" { "error" } else { level };
    Ok(tracing_subscriber::EnvFilter::try_new(format!(
        "{level},h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn"
    ))?)
}

fn run(cfg: Config, args: Args) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(log_filter(&cfg)?);
    // Colours only for a person at a terminal, not for the journal or a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        berth_engine::args::LogFormat::Json => registry.with(layer.json()).init(),
        berth_engine::args::LogFormat::Text => registry.with(layer).init(),
    }
    // Before anything is made: a missing passed socket is a start error.
    let activated = hosts::activated_sockets();
    let wanted: Vec<hosts::Host> = cfg
        .hosts
        .iter()
        .filter_map(|h| hosts::parse(h).ok())
        .collect();
    hosts::check_activated(&wanted, &activated).map_err(|e| anyhow::anyhow!(e))?;
    for d in [&cfg.data_root, &cfg.exec_root] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let hosts = wanted;
        let live_restore = cfg.live_restore;
        let d = Daemon::open(cfg)?;
        d.check_authz_plugins(&d.cfg.authorization_plugins)
            .map_err(|e| anyhow::anyhow!(e))?;
        if !berth_engine::daemon::plugins::logging::BUILTIN.contains(&d.cfg.log_driver.as_str()) {
            d.log_plugin(&d.cfg.log_driver).map_err(|why| {
                anyhow::anyhow!(
                    "log-driver {:?}: error looking up logging plugin: {why}",
                    d.cfg.log_driver
                )
            })?;
        }
        d.spawn_monitor();
        let restoring = d.clone();
        tokio::spawn(async move { restoring.restore_plugins().await });
        // SIGHUP reads the configuration again, as dockerd does: the keys
        // that can change live take effect, the others are named.
        let reloading = d.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let new = match effective(&args) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("reload: {e:#}; the configuration in use stays");
                        continue;
                    }
                };
                match log_filter(&new) {
                    Ok(f) => {
                        if let Err(e) = filter_handle.reload(f) {
                            tracing::error!("reload: log level: {e}");
                        }
                    }
                    Err(e) => tracing::error!("reload: log level: {e:#}"),
                }
                if let Err(e) = reloading.check_authz_plugins(&new.authorization_plugins) {
                    tracing::error!("reload: {e}; the configuration in use stays");
                    continue;
                }
                let fixed = reloading.reload(&new);
                if fixed.is_empty() {
                    tracing::info!("reloaded the configuration");
                } else {
                    tracing::warn!(
                        "reloaded the configuration; changed keys that take effect only when berthd restarts: {}",
                        fixed.join(", ")
                    );
                }
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("signal handler");
            let mut int = signal(SignalKind::interrupt()).expect("signal handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop_tx.send(());
        });
        // Ready for systemd (Type=notify) once every listener is up.
        berth_engine::server::serve(
            d.clone(),
            hosts,
            activated,
            hosts::notify_ready,
            async move {
                let _ = stop_rx.await;
            },
        )
        .await?;
        if live_restore {
            tracing::info!("stopping; live-restore leaves containers running");
        } else {
            tracing::info!("stopping containers (live-restore is off)");
            let timeout = d.cfg.shutdown_timeout as i64;
            let jobs = d.all().into_iter().map(|e| {
                let d = d.clone();
                async move {
                    let _ = d.stop(&e, Some(timeout), None).await;
                }
            });
            futures::future::join_all(jobs).await;
            d.stop_plugins().await;
        }
        d.bridge_deletions.settle().await;
        // The name server outlives berthd only for containers still running.
        d.dns.stop_if_idle();
        Ok(())
    })
}
