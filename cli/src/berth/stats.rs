//! `berth stats`: CPU, memory, block I/O and pids of containers, computed
//! from the engine's figures as the Docker CLI computes them.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::client::q;
use super::{Ctx, format, human_size, short_id};

#[derive(Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

const DEFAULT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

pub async fn stats(ctx: &Ctx, a: StatsArgs) -> Result<i32> {
    let fmt = format::template(a.format.as_deref(), DEFAULT);
    let f = format::parse(&fmt, &header)?;
    let names: Vec<String> = if a.containers.is_empty() {
        let list = ctx
            .client
            .get(&format!("/containers/json?all={}", a.all as u8))
            .await?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    } else {
        a.containers.clone()
    };
    loop {
        let answers = futures::future::join_all(names.iter().map(|n| async move {
            let path = format!("/containers/{}/stats?stream=0", q(n));
            ctx.client.get(&path).await
        }))
        .await;
        let mut rows = Vec::new();
        for r in answers {
            match r {
                Ok(v) => rows.push(row(&v, a.no_trunc)),
                // Named on the command line: its error is the answer.
                Err(e) if !a.containers.is_empty() => return Err(e.into()),
                // Listed, and removed meanwhile.
                Err(_) => {}
            }
        }
        if a.no_stream {
            f.print(&rows)?;
            return Ok(0);
        }
        // Repaint in place, as Docker's streaming table does.
        print!("\x1b[2J\x1b[H");
        f.print(&rows)?;
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    }
}

fn header(field: &str) -> String {
    match field {
        "ID" | "Container" => "CONTAINER ID".into(),
        "Name" => "NAME".into(),
        "CPUPerc" => "CPU %".into(),
        "MemUsage" => "MEM USAGE / LIMIT".into(),
        "MemPerc" => "MEM %".into(),
        "NetIO" => "NET I/O".into(),
        "BlockIO" => "BLOCK I/O".into(),
        "PIDs" => "PIDS".into(),
        f => format::header(f),
    }
}

/// Docker's binary sizes for memory ("1.5MiB").
fn binary_size(v: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let (mut v, mut i) = (v, 0);
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", trim_float(v), UNITS[i])
}

/// `%.4g` as Go prints it for sizes: up to 4 significant digits, no
/// trailing zeros.
fn trim_float(v: f64) -> String {
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The row of one container: CPU over the interval between the two samples
/// the engine sent, memory without the page cache it can drop.
fn row(v: &Value, no_trunc: bool) -> Value {
    let id = v["id"].as_str().unwrap_or("");
    let cpu = &v["cpu_stats"];
    let pre = &v["precpu_stats"];
    let cpu_delta = num(&cpu["cpu_usage"]["total_usage"]) - num(&pre["cpu_usage"]["total_usage"]);
    let sys_delta = num(&cpu["system_cpu_usage"]) - num(&pre["system_cpu_usage"]);
    let cpus = match num(&cpu["online_cpus"]) {
        0.0 => cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .map(|a| a.len() as f64)
            .unwrap_or(1.0),
        n => n,
    };
    let cpu_perc = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = &v["memory_stats"];
    let usage = num(&mem["usage"]);
    let cache = [
        &mem["stats"]["total_inactive_file"],
        &mem["stats"]["inactive_file"],
    ]
    .into_iter()
    .find_map(|x| x.as_f64())
    .filter(|c| *c < usage)
    .unwrap_or(0.0);
    let used = usage - cache;
    let limit = num(&mem["limit"]);
    let mem_perc = if limit > 0.0 {
        used / limit * 100.0
    } else {
        0.0
    };
    let (mut read, mut write) = (0.0, 0.0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += num(&e["value"]),
            Some("write") => write += num(&e["value"]),
            _ => {}
        }
    }
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in v["networks"].as_object().into_iter().flatten() {
        rx += num(&n.1["rx_bytes"]);
        tx += num(&n.1["tx_bytes"]);
    }
    let name = v["name"].as_str().unwrap_or("").trim_start_matches('/');
    json!({
        "ID": if no_trunc { id.to_string() } else { short_id(id) },
        "Container": if no_trunc { id.to_string() } else { short_id(id) },
        "Name": name,
        "CPUPerc": format!("{cpu_perc:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(used), binary_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
        "BlockIO": format!("{} / {}", human_size(read), human_size(write)),
        "PIDs": num(&v["pids_stats"]["current"]).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_computed_as_dockers() {
        let v = json!({
            "id": "0123456789abcdef0123", "name": "/web", "read": "2026-11-22T10:00:00Z",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 3145728u64, "limit": 1073741824u64, "stats": {"total_inactive_file": 1048576}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"op": "Read", "value": 1500}, {"op": "write", "value": 2000}]},
            "pids_stats": {"current": 4},
        });
        let r = row(&v, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "2MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.20%");
        assert_eq!(r["BlockIO"], "1.5kB / 2kB");
        assert_eq!(r["NetIO"], "0B / 0B");
        assert_eq!(r["PIDs"], "4");
        let stopped = row(
            &json!({"id": "x", "name": "/s", "read": "0001-01-01T00:00:00Z"}),
            false,
        );
        assert_eq!(
            (stopped["CPUPerc"].as_str(), stopped["MemUsage"].as_str()),
            (Some("0.00%"), Some("0B / 0B"))
        );
    }
}
