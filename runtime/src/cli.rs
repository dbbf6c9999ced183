//! The command line, following runc's so that a shim or engine that drives runc
//! can drive berth-runtime with the same arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

#[derive(Debug, Parser)]
#[command(
    name = "berth-runtime",
    version = env!("CARGO_PKG_VERSION"),
    about = "berth's OCI runtime: creates and runs containers from OCI bundles, with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version, commit, spec and libseccomp versions
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    pub version: (),
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Directory for the state of containers
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Write logs and errors to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the log: text or json
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Manage cgroups through systemd (not supported by berth-runtime)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: its process exists and waits for `start`
    Create(CreateArgs),
    /// Start the user process of a created container
    Start(IdArg),
    /// Create and start a container, and wait for it unless --detach
    Run(RunArgs),
    /// Print the state of a container as JSON
    State(IdArg),
    /// Send a signal to the container's init process (or all its processes)
    Kill(KillArgs),
    /// Delete a container and everything it holds
    Delete(DeleteArgs),
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// List the processes running inside a container
    Ps(PsArgs),
    /// Show a container's resource usage (and OOM kills) as JSON lines, every --interval
    Events(EventsArgs),
    /// List containers started under --root
    List(ListArgs),
    /// Print what this runtime supports, as JSON
    Features,
    /// Write a default config.json into a bundle
    Spec(SpecArgs),
    /// Freeze all processes of a container
    Pause(IdArg),
    /// Thaw a paused container
    Resume(IdArg),
    /// Change the resource limits of a running container
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id
    pub id: String,
}

#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to which the pseudoterminal master is sent (SCM_RIGHTS)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's process id to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Pass N more file descriptors (3 .. 3+N-1) to the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not give the container a new session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container has started instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal all processes of the container
    #[arg(short, long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name (TERM, SIGKILL) or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first; succeed quietly if it does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// JSON file with the process to run (runtime-spec `process`)
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the new process's id to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Allocate a pseudoterminal
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to which the pseudoterminal master is sent
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// User to run as: UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the process
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privileges on the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass N more file descriptors to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec into a paused container (the process runs once it is resumed)
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container's:
    /// [<controller>:]<path>, repeatable
    #[arg(long = "cgroup")]
    pub cgroups: Vec<String>,
    /// Container id
    pub id: String,
    /// Command and arguments (when --process is not given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format: table or json
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Container id
    pub id: String,
    /// Options for ps(1)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the stats once, then exit
    #[arg(long)]
    pub stats: bool,
    /// Time between stats (5s, 1s, 100ms, …)
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: table or json
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print only the ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Directory in which to write config.json
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a spec for a container run by an unprivileged user
    #[arg(long = "rootless", id = "spec_rootless")]
    pub rootless: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// JSON file with runtime-spec linux.resources, or - for stdin
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes, or with a unit (50M, 1g), -1 for none
    #[arg(long, value_parser = ram_in_bytes, allow_negative_numbers = true)]
    pub memory: Option<i64>,
    /// Memory plus swap limit (bytes or with a unit), -1 for unlimited swap
    #[arg(long, value_parser = ram_in_bytes, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit (bytes or with a unit)
    #[arg(long, value_parser = ram_in_bytes, allow_negative_numbers = true)]
    pub memory_reservation: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds, -1 for none
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU realtime period in microseconds
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed (cpuset), e.g. 0-1
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed (cpuset)
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes, -1 for none
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Container id
    pub id: String,
}

/// What `-v`/`--version` print after the name, in runc's layout: the
/// version, the commit (when the build was given one), the runtime-spec
/// version and the libseccomp in use.
pub fn version_text() -> String {
    let seccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "version {}\ncommit: {}\nspec: {}\nlibseccomp: {seccomp}",
        env!("CARGO_PKG_VERSION"),
        option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
        crate::container::OCI_VERSION,
    )
}

/// Help in runc's layout (urfave/cli's NAME/USAGE/COMMANDS/OPTIONS), which
/// scripts written against runc read.
const ROOT_HELP: &str = "NAME:\n   {bin} - {about}\n\nUSAGE:\n   {usage}\n\nCOMMANDS:\n{subcommands}\n\nGLOBAL OPTIONS:\n{options}\n";

/// The clap definition as run: named after how the binary was invoked (so
/// that installed as `runc` it says `runc`, as runc's tests and tools
/// expect), with the version text known only at run time.
pub fn command(name: &str) -> clap::Command {
    use clap::CommandFactory;
    // Leaked once per process: clap takes static strs without its "string"
    // feature, and they live as long as the process anyway.
    let text: &'static str = Box::leak(version_text().into_boxed_str());
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    Cli::command()
        .name(name)
        .bin_name(name)
        .version(text)
        .help_template(ROOT_HELP)
        .mut_subcommands(move |c| {
            let text = format!(
                "NAME:\n   {name} {} - {{about}}\n\nUSAGE:\n   {{usage}}\n\nOPTIONS:\n{{options}}\n",
                c.get_name()
            );
            c.help_template(&*Box::leak(text.into_boxed_str()))
        })
}

/// Parses the command line. An unknown command gets runc's answer.
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let invoked = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "berth-runtime".into());
    let matches = match command(&invoked).try_get_matches() {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            let topic = e
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!("No help topic for '{topic}'");
            std::process::exit(3);
        }
        Err(e) => e.exit(),
    };
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// A size as runc's `update` takes it (Docker's RAMInBytes): bytes, or a
/// number with a binary unit (`k`, `m`, `g`, `t`, `p`, any case, an
/// optional `b`/`ib`), `1.5g` included; `-1` means no limit.
pub fn ram_in_bytes(s: &str) -> std::result::Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let bytes = n * mult;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_take_runcs_units_and_minus_one() {
        for (s, want) in [
            ("1024", 1024),
            ("50M", 50 << 20),
            ("50m", 50 << 20),
            ("1g", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("2kb", 2048),
            ("-1", -1),
        ] {
            assert_eq!(ram_in_bytes(s), Ok(want), "{s}");
        }
        for bad in ["", "x", "5q", "-2", "1e999g"] {
            assert!(ram_in_bytes(bad).is_err(), "{bad}");
        }
        let cli = Cli::try_parse_from([
            "berth-runtime",
            "update",
            "--memory",
            "50M",
            "--cpu-quota",
            "-1",
            "--pids-limit",
            "-1",
            "id",
        ])
        .expect("parses");
        let Command::Update(u) = cli.command else {
            panic!("not update");
        };
        assert_eq!(
            (u.memory, u.cpu_quota, u.pids_limit),
            (Some(50 << 20), Some(-1), Some(-1))
        );
    }

    #[test]
    fn parses_what_containerd_passes() {
        let cli = Cli::try_parse_from([
            "berth-runtime",
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "id1",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Create(ref a) if a.id == "id1"));
        let cli = Cli::try_parse_from(["berth-runtime", "--root", "/r", "delete", "--force", "x"])
            .unwrap();
        assert!(matches!(cli.command, Command::Delete(ref a) if a.force));
        let cli = Cli::try_parse_from(["berth-runtime", "kill", "--all", "x", "9"]).unwrap();
        assert!(matches!(cli.command, Command::Kill(ref a) if a.all && a.signal == "9"));
        let cli = Cli::try_parse_from([
            "berth-runtime",
            "exec",
            "--process",
            "/p.json",
            "--detach",
            "--pid-file",
            "/p",
            "x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Exec(ref a) if a.detach && a.command.is_empty()));
        let cli =
            Cli::try_parse_from(["berth-runtime", "exec", "x", "sh", "-c", "echo hi"]).unwrap();
        assert!(
            matches!(cli.command, Command::Exec(ref a) if a.command == ["sh", "-c", "echo hi"])
        );
    }
}
