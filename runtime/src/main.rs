use std::io::Write;

use berth_runtime::{cli, dispatch, error, logging};

fn main() {
    let cli = cli::parse();
    let g = &cli.global;
    if let Err(e) = logging::init(g.log.as_deref(), g.log_format, g.debug) {
        eprintln!("berth-runtime: opening log {:?}: {e}", g.log);
        std::process::exit(1);
    }
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = failure(&cli.command, error::chain(&e));
            // With --log the caller (a shim) reads errors from that file, and our
            // stderr may be the container's: write only there.
            if g.log.is_some() {
                logging::error(&msg);
            } else if msg.starts_with("berth-runtime") {
                let _ = writeln!(std::io::stderr(), "{msg}");
            } else {
                let _ = writeln!(std::io::stderr(), "berth-runtime: {msg}");
            }
            // An exec that fails exits 255, as runc's does, apart from any
            // status the process it would have run could return.
            if matches!(cli.command, cli::Command::Exec(_)) {
                255
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}

/// A failed create, run or exec in runc's words, which shims and engines
/// show as the runtime's message ("OCI runtime create failed: runc create
/// failed: unable to start container process: exec: …"): ours names
/// berth-runtime where runc names itself; runc's exec names no runtime.
fn failure(command: &cli::Command, msg: String) -> String {
    match command {
        cli::Command::Create(_) => format!("berth-runtime create failed: {msg}"),
        cli::Command::Run(_) => format!("berth-runtime run failed: {msg}"),
        cli::Command::Exec(_) => format!("exec failed: {msg}"),
        _ => msg,
    }
}
