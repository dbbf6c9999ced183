use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use berth_shim::{Options, launch};

const USAGE: &str =
    "usage: berth-shim start --id ID --namespace NS --state-dir DIR --socket PATH [--debug]

Started by berth-lifecycled, once per container (a pod's containers are
served by their sandbox's shim, asked over berth.shim.v1 Host). `start`
detaches a shim process (its own session, re-parented away from the caller),
waits until it serves berth.shim.v1 on PATH, prints PATH and exits. The shim
writes PATH into DIR/address so that a restarted lifecycled finds it again.";

fn parse() -> Result<(String, Options)> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut mode = None;
    let (mut id, mut namespace, mut state_dir, mut socket) = (None, None, None, None);
    let mut debug = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("id") => id = Some(p.value()?.string()?),
            Long("namespace") => namespace = Some(p.value()?.string()?),
            Long("state-dir") => state_dir = Some(PathBuf::from(p.value()?)),
            Long("socket") => socket = Some(PathBuf::from(p.value()?)),
            Long("debug") => debug = true,
            Long("help") | Short('h') => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Long("version") => {
                println!("berth-shim {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            Value(v) if mode.is_none() => mode = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let Some(mode) = mode else { bail!("{USAGE}") };
    fn need<T>(v: Option<T>, name: &str) -> Result<T> {
        v.with_context(|| format!("--{name} is required\n{USAGE}"))
    }

    Ok((
        mode,
        Options {
            id: need(id, "id")?,
            namespace: need(namespace, "namespace")?,
            state_dir: need(state_dir, "state-dir")?,
            socket: need(socket, "socket")?,
            debug,
        },
    ))
}

fn main() {
    let result = parse().and_then(|(mode, opts)| match mode.as_str() {
        "start" => launch::start(&opts),
        other => bail!("unknown mode {other:?}\n{USAGE}"),
    });
    if let Err(e) = result {
        eprintln!("berth-shim: {e:#}");
        std::process::exit(1);
    }
}
