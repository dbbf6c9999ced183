//! `update`: new resource limits for a running container, from runtime-spec
//! `linux.resources` JSON (a file or stdin) and/or flags. As with runc, a zero
//! or absent value leaves that limit as it is.

use std::io::Read;

use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};

use crate::cgroups::Cgroup;
use crate::cli::{GlobalOpts, UpdateArgs};
use crate::container::{Container, Status};
use crate::error::{Error, Result};

pub fn run(g: &GlobalOpts, a: &UpdateArgs) -> Result<i32> {
    let mut c = Container::load(&g.root, &a.id)?;
    if c.status() == Status::Stopped {
        return Err(Error::BadState {
            id: c.id().into(),
            status: "stopped",
            action: "cannot update resources of a stopped container",
        });
    }
    let mut update = match &a.resources {
        None => json!({}),
        Some(p) => {
            let mut data = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut data)
                    .map_err(|e| Error::io("reading", "stdin", e))?;
            } else {
                data = std::fs::read_to_string(p).map_err(|e| Error::io("reading", p, e))?;
            }
            let r: LinuxResources = crate::spec::from_json(data.as_bytes(), true)
                .map_err(|e| Error::Invalid(format!("resources: {e}")))?;
            serde_json::to_value(r).map_err(|e| Error::Invalid(e.to_string()))?
        }
    };
    merge(&mut update, &flags_json(a));

    let linux = c
        .state
        .config
        .linux_mut()
        .get_or_insert_with(Default::default);
    let current = linux.resources().clone().unwrap_or_default();
    let mut merged = serde_json::to_value(current).map_err(|e| Error::Invalid(e.to_string()))?;
    merge(&mut merged, &update);
    let resources: LinuxResources =
        serde_json::from_value(merged).map_err(|e| Error::Invalid(format!("resources: {e}")))?;

    Cgroup::open(&c.state.cgroup_path)?.apply(&resources)?;
    linux.set_resources(Some(resources));
    c.save()?;
    Ok(0)
}

fn flags_json(a: &UpdateArgs) -> Value {
    let mut v = json!({});
    let mut set = |path: &[&str], val: Value| {
        let mut cur = &mut v;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur[*key] = val.clone();
            } else {
                if cur.get(*key).is_none() {
                    cur[*key] = json!({});
                }
                cur = &mut cur[*key];
            }
        }
    };
    if let Some(x) = a.memory {
        set(&["memory", "limit"], json!(x));
    }
    if let Some(x) = a.memory_swap {
        set(&["memory", "swap"], json!(x));
    }
    if let Some(x) = a.memory_reservation {
        set(&["memory", "reservation"], json!(x));
    }
    if let Some(x) = a.cpu_shares {
        set(&["cpu", "shares"], json!(x));
    }
    if let Some(x) = a.cpu_period {
        set(&["cpu", "period"], json!(x));
    }
    if let Some(x) = a.cpu_quota {
        set(&["cpu", "quota"], json!(x));
    }
    if let Some(x) = a.cpu_rt_period {
        set(&["cpu", "realtimePeriod"], json!(x));
    }
    if let Some(x) = a.cpu_rt_runtime {
        set(&["cpu", "realtimeRuntime"], json!(x));
    }
    if let Some(x) = &a.cpuset_cpus {
        set(&["cpu", "cpus"], json!(x));
    }
    if let Some(x) = &a.cpuset_mems {
        set(&["cpu", "mems"], json!(x));
    }
    if let Some(x) = a.pids_limit {
        set(&["pids", "limit"], json!(x));
    }
    if let Some(x) = a.blkio_weight {
        set(&["blockIO", "weight"], json!(x));
    }
    v
}

/// Deep merge where zero, empty and null values in `update` mean "unchanged".
fn merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match v {
                    Value::Null => {}
                    Value::Number(n) if n.as_f64() == Some(0.0) => {}
                    Value::String(s) if s.is_empty() => {}
                    Value::Object(_) => {
                        let slot = b.entry(k.clone()).or_insert_with(|| json!({}));
                        if !slot.is_object() {
                            *slot = json!({});
                        }
                        merge(slot, v);
                    }
                    Value::Array(a) if a.is_empty() => {}
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_unchanged_and_values_replace() {
        let mut base = json!({"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5}});
        merge(
            &mut base,
            &json!({"memory": {"limit": 0, "swap": 300}, "cpu": {"shares": 512}}),
        );
        assert_eq!(
            base,
            json!({"memory": {"limit": 100, "swap": 300}, "pids": {"limit": 5}, "cpu": {"shares": 512}})
        );
    }
}
