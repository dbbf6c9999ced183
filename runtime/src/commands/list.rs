//! `list`: every container under --root.

use std::fs;

use crate::cli::{GlobalOpts, ListArgs};
use crate::container::Container;
use crate::error::{Error, Result};

pub fn run(g: &GlobalOpts, a: &ListArgs) -> Result<i32> {
    let mut containers = Vec::new();
    match fs::read_dir(&g.root) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Ok(c) = Container::load(&g.root, &name) {
                    containers.push(c);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading", &g.root, e)),
    }
    containers.sort_by(|a, b| a.state.created.cmp(&b.state.created));
    if a.quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<_> = containers.iter().map(|c| c.oci_state(c.status())).collect();
            println!("{}", serde_json::Value::Array(v));
        }
        "table" => {
            let rows: Vec<[String; 6]> = containers
                .iter()
                .map(|c| {
                    let st = c.status();
                    let pid = if st == crate::container::Status::Stopped {
                        0
                    } else {
                        c.state.pid
                    };
                    [
                        c.id().to_string(),
                        pid.to_string(),
                        st.as_str().to_string(),
                        c.state.bundle.display().to_string(),
                        c.state.created.clone(),
                        c.state.owner.clone(),
                    ]
                })
                .collect();
            print_table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], &rows);
        }
        other => {
            return Err(Error::Invalid(format!(
                "invalid format {other:?}: use table or json"
            )));
        }
    }
    Ok(0)
}

/// Columns padded as Go's tabwriter pads them for runc (minimum 12, gap 3).
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.len().max(9));
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}", c, w = widths[i] + 3));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect());
    }
}
