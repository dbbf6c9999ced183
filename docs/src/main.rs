//! `berth-docs man DIR`: writes the man pages of berth's commands into DIR
//! (section 1 for the clients, 8 for the daemons and the runtime), made with
//! clap_mangen from the very definitions that parse each command line, so
//! that `--help`, the completions and the man pages cannot disagree. Each
//! subcommand gets a page of its own (`berth-run.1`), as Docker's do.
//! scripts/install runs it; it is not installed itself.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match args.as_slice() {
        [verb, dir] if verb == "man" => Path::new(dir).to_path_buf(),
        _ => anyhow::bail!("usage: berth-docs man DIR"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = [
        (berth_cli::berth::Cli::command(), "1"),
        (berth_cli::ctr::Cli::command(), "1"),
        (berth_engine::args::Args::command(), "8"),
        (berth_lifecycled::args::Args::command(), "8"),
        (berth_runtime::cli::command("berth-runtime"), "8"),
        (berth_dns::args::Args::command(), "8"),
    ];
    let mut written = 0;
    for (cmd, section) in pages {
        written += write_pages(&dir, cmd, section)?;
    }
    println!("{written} man pages in {}", dir.display());
    Ok(())
}

/// Writes the page of `cmd` and, below it, one for each subcommand
/// (`name-sub.section`); returns how many.
fn write_pages(dir: &Path, cmd: clap::Command, section: &str) -> anyhow::Result<usize> {
    let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    let name = cmd.get_name().to_string();
    let mut n = 0;
    let mut stack = vec![(name, cmd)];
    while let Some((name, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() == "help" {
                continue;
            }
            let sub_name = format!("{name}-{}", sub.get_name());
            // clap takes static names (no "string" feature); this short
            // run leaks a few dozen bytes per page.
            let leaked: &'static str = Box::leak(sub_name.clone().into_boxed_str());
            stack.push((sub_name, sub.clone().name(leaked)));
        }
        let path = dir.join(format!("{name}.{section}"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .section(section)
            .render(&mut out)
            .with_context(|| format!("rendering {name}"))?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        n += 1;
    }
    Ok(n)
}
