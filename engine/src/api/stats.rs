//! GET /containers/{id}/stats: the cgroup figures the shim reads, in
//! Docker's JSON shape so that `docker stats` and the SDKs render them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};

use super::State;
use super::query::{Params, flag, flag_or};
use crate::daemon::Daemon;
use crate::error::Result;

/// Between the two samples of a one-off answer: enough for a CPU figure,
/// far less than the second Docker makes a client wait.
const PRE_SAMPLE: Duration = Duration::from_millis(100);
/// Between two objects of a stream, as Docker's.
const INTERVAL: Duration = Duration::from_secs(1);

pub async fn stats(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    let (id, name, running, net_pid) = {
        let c = e.c.lock().await;
        // Docker reports the interfaces of a container's own namespace.
        let own_net = crate::daemon::netsetup::uses_networks(&c) && c.state.pid > 0;
        (
            c.id.clone(),
            format!("/{}", c.name),
            c.is_running(),
            own_net.then_some(c.state.pid),
        )
    };
    let to_docker =
        move |id: &str, name: &str, now: Option<&pb::Stats>, pre: Option<&pb::Stats>| {
            let mut v = to_docker(id, name, now, pre);
            if now.is_some()
                && let Some(n) = net_pid.and_then(networks)
            {
                v["networks"] = n;
            }
            v
        };
    let stream = flag_or(&q, "stream", true);
    let one_shot = flag(&q, "one-shot");
    let json_response = |v: Value| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{v}\n"),
        )
            .into_response()
    };
    if !running {
        return Ok(json_response(to_docker(&id, &name, None, None)));
    }
    if !stream {
        let first = sample(&d, &id).await;
        if one_shot {
            return Ok(json_response(to_docker(&id, &name, first.as_ref(), None)));
        }
        tokio::time::sleep(PRE_SAMPLE).await;
        let now = sample(&d, &id).await;
        return Ok(json_response(to_docker(
            &id,
            &name,
            now.as_ref(),
            first.as_ref(),
        )));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<String, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut prev: Option<pb::Stats> = None;
        loop {
            let Some(now) = sample(&d, &id).await else {
                // The task is gone: one last zeroed object, as Docker ends.
                let _ = tx
                    .send(Ok(format!("{}\n", to_docker(&id, &name, None, None))))
                    .await;
                return;
            };
            let v = to_docker(&id, &name, Some(&now), prev.as_ref());
            if tx.send(Ok(format!("{v}\n"))).await.is_err() {
                return;
            }
            prev = Some(now);
            tokio::time::sleep(INTERVAL).await;
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}

/// Docker's `networks`: the counters of each interface but loopback in the
/// network namespace of `pid`, from /proc/<pid>/net/dev.
fn networks(pid: u32) -> Option<Value> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> Option<Value> {
    let mut out = serde_json::Map::new();
    // Two header lines, then "name: rx(8 fields) tx(8 fields)".
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// MemTotal of /proc/meminfo in bytes.
fn host_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    })
}

async fn sample(d: &Daemon, id: &str) -> Option<pb::Stats> {
    d.lc.tasks()
        .stats(d.lc.req(api::ContainerRequest { id: id.to_string() }))
        .await
        .ok()
        .map(|r| r.into_inner())
}

fn rfc3339(t: Option<&prost_types::Timestamp>) -> String {
    match t {
        Some(t) if t.seconds > 0 => {
            let at = std::time::UNIX_EPOCH
                + Duration::new(t.seconds as u64, t.nanos.clamp(0, 999_999_999) as u32);
            humantime::format_rfc3339_nanos(at).to_string()
        }
        _ => "0001-01-01T00:00:00Z".into(),
    }
}

fn cpu(s: Option<&pb::Stats>) -> Value {
    let Some(s) = s else {
        return json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        });
    };
    let mut usage = json!({
        "total_usage": s.cpu_usage_total,
        "usage_in_kernelmode": s.cpu_usage_kernel,
        "usage_in_usermode": s.cpu_usage_user,
    });
    if !s.cpu_usage_per_cpu.is_empty() {
        usage["percpu_usage"] = json!(s.cpu_usage_per_cpu);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_cpu_usage,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": s.cpu_periods,
            "throttled_periods": s.cpu_throttled_periods,
            "throttled_time": s.cpu_throttled_time,
        },
    })
}

/// dockerd leaves out a zero count and an unlimited limit ("max" reads 0).
fn pids_stats(s: &pb::Stats) -> Value {
    let mut v = serde_json::Map::new();
    if s.pids_current > 0 {
        v.insert("current".into(), json!(s.pids_current));
    }
    if s.pids_limit > 0 && s.pids_limit != u64::MAX {
        v.insert("limit".into(), json!(s.pids_limit));
    }
    Value::Object(v)
}

fn blkio(entries: &[pb::BlkioEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|b| json!({"major": b.major, "minor": b.minor, "op": b.op, "value": b.value}))
            .collect(),
    )
}

/// Docker's `types.StatsJSON` from a sample and the one before it.
pub fn to_docker(id: &str, name: &str, now: Option<&pb::Stats>, pre: Option<&pb::Stats>) -> Value {
    let memory = match now {
        Some(s) => json!({
            "usage": s.memory_usage,
            "max_usage": s.memory_max_usage,
            // No limit reads as the cgroup's "max"; Docker shows the host's
            // memory then.
            "limit": host_memory().map_or(s.memory_limit, |m| s.memory_limit.min(m)),
            "stats": s.memory_stats,
        }),
        None => json!({}),
    };
    // The scheduler's lists: cgroup v1 reads them ([] without CFQ or BFQ),
    // v2 has none (null), as dockerd answers on each.
    let v1 = now.is_some_and(|s| s.memory_stats.contains_key("hierarchical_memory_limit"));
    let sched = if v1 { json!([]) } else { Value::Null };
    json!({
        "id": id,
        "name": name,
        "read": rfc3339(now.and_then(|s| s.read_at.as_ref())),
        "preread": rfc3339(pre.and_then(|s| s.read_at.as_ref())),
        "num_procs": 0,
        "pids_stats": now.map(pids_stats).unwrap_or(json!({})),
        "blkio_stats": {
            "io_service_bytes_recursive": now.map(|s| blkio(&s.blkio_io_service_bytes)),
            "io_serviced_recursive": now.map(|s| blkio(&s.blkio_io_serviced)),
            "io_queue_recursive": sched,
            "io_service_time_recursive": sched,
            "io_wait_time_recursive": sched,
            "io_merged_recursive": sched,
            "io_time_recursive": sched,
            "sectors_recursive": sched,
        },
        "storage_stats": {},
        "cpu_stats": cpu(now),
        "precpu_stats": cpu(pre),
        "memory_stats": memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_from_net_dev_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      656       8    3    4    0     0       0          0
";
        let n = parse_net_dev(text).expect("eth0");
        assert_eq!(n["eth0"]["rx_bytes"], 1296);
        assert_eq!(n["eth0"]["rx_dropped"], 2);
        assert_eq!(n["eth0"]["tx_packets"], 8);
        assert_eq!(n["eth0"]["tx_dropped"], 4);
        assert!(n.get("lo").is_none());
        assert!(
            parse_net_dev(text.lines().take(3).collect::<Vec<_>>().join("\n").as_str()).is_none()
        );
    }

    #[test]
    fn docker_shape() {
        let now = pb::Stats {
            read_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            cpu_usage_total: 2_000,
            system_cpu_usage: 10_000,
            online_cpus: 2,
            memory_usage: 4096,
            memory_limit: 1 << 30,
            pids_current: 3,
            blkio_io_service_bytes: vec![pb::BlkioEntry {
                major: 8,
                minor: 0,
                op: "read".into(),
                value: 512,
            }],
            ..Default::default()
        };
        let v = to_docker("abc", "/web", Some(&now), None);
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 2000);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["memory_stats"]["limit"], 1u64 << 30);
        assert_eq!(v["pids_stats"]["current"], 3);
        assert_eq!(
            v["blkio_stats"]["io_service_bytes_recursive"][0]["op"],
            "read"
        );
        assert_eq!(v["read"], "2023-11-14T22:13:20.000000005Z");
        assert_eq!(v["preread"], "0001-01-01T00:00:00Z");
        let stopped = to_docker("abc", "/web", None, None);
        assert_eq!(stopped["memory_stats"], json!({}));
    }
}
