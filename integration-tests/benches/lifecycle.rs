//! berth-lifecycled and its shims, measured (run by bench/lifecycle.sh):
//!   - the create + start + wait + delete latency of one task through
//!     lifecycled, beside the bare runtime's own `run` cycle of the same bundle;
//!   - the memory of one idle shim (RSS, and PSS: its share of pages common to
//!     all shims);
//!   - lifecycled's RSS with 100 running containers.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_proto::lifecycle::v1 as api;
use integration_tests::lifecycled::Lifecycled;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Asks the kernel to drop the file's pages from the page cache (those no
/// process maps; written back first, a dirty page is not dropped).
fn drop_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.sync_all();
        // SAFETY: posix_fadvise on a descriptor we own, with plain integers.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let path = if key == "Pss:" {
        format!("/proc/{pid}/smaps_rollup")
    } else {
        format!("/proc/{pid}/status")
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let l = Lifecycled::start(&[]);
    let c = l.client("bench").await;
    let rootfs_parent = l.dir.path();

    // The bare runtime on the same bundle: a bundle dir with its own rootfs.
    let runtime = std::env::var("BERTH_RUNTIME").expect("set by bench/lifecycle.sh");
    let bundle = rootfs_parent.join("bundle");
    testsupport::make_rootfs(&bundle.join("rootfs"));
    let mut spec = specgen::defaults::spec(&["true".into()], false);
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/bare", l.cgroup_parent));
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    let rt_root = rootfs_parent.join("bare-root");
    // The same three runtime commands the shim runs, called directly.
    let mut bare_steps = Vec::new();
    for i in 0..runs {
        let id = format!("steps{i}");
        let rt = |args: &[&str]| {
            std::process::Command::new(&runtime)
                .arg("--root")
                .arg(&rt_root)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
        };
        let t = Instant::now();
        assert!(rt(&["create", "--bundle", bundle.to_str().unwrap(), &id]).success());
        let pid: i32 = {
            let out = std::process::Command::new(&runtime)
                .arg("--root")
                .arg(&rt_root)
                .args(["state", &id])
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["pid"]
                .as_i64()
                .unwrap() as i32
        };
        assert!(rt(&["start", &id]).success());
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(rt(&["delete", &id]).success());
        bare_steps.push(t.elapsed());
    }
    let mut bare = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        let st = std::process::Command::new(&runtime)
            .arg("--root")
            .arg(&rt_root)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("bare{i}"))
            .status()
            .unwrap();
        bare.push(t.elapsed());
        assert!(st.success());
    }

    // The same cycle through lifecycled, with a container record made once.
    c.create_container("cycle", "", &["true"], rootfs_parent)
        .await
        .unwrap();
    let mut through = Vec::new();
    let mut steps = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        let t = Instant::now();
        c.tasks()
            .create(c.req(api::CreateTaskRequest {
                container_id: "cycle".into(),
                stdio: None,
            }))
            .await
            .unwrap();
        steps[0].push(t.elapsed());
        c.tasks().start(c.process("cycle", "")).await.unwrap();
        steps[1].push(t.elapsed());
        c.tasks().wait(c.process("cycle", "")).await.unwrap();
        steps[2].push(t.elapsed());
        c.tasks().delete(c.process("cycle", "")).await.unwrap();
        steps[3].push(t.elapsed());
        through.push(t.elapsed());
    }
    let steps: Vec<f64> = steps
        .into_iter()
        .map(|v| median(v).as_secs_f64() * 1e3)
        .collect();

    // 100 running containers. First the shim binary's page cache is
    // dropped (its cycle shims have exited), so that it is read back as
    // exec reads an installed binary: how a binary came into the page
    // cache sets its folio sizes, and a fault maps a whole folio (one just
    // written by the build showed 0.2 MiB more text resident per shim).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let shim_bin = std::env::var("BERTH_SHIM").expect("set by bench/lifecycle.sh");
    drop_page_cache(Path::new(&shim_bin));
    let n = 100;
    for i in 0..n {
        let id = format!("idle{i}");
        c.create_container(
            &id,
            "",
            &["sh", "-c", "while true; do sleep 10; done"],
            rootfs_parent,
        )
        .await
        .unwrap();
        c.tasks()
            .create(c.req(api::CreateTaskRequest {
                container_id: id.clone(),
                stdio: None,
            }))
            .await
            .unwrap();
        c.tasks().start(c.process(&id, "")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shim_pid = |id: &str| -> u32 {
        std::fs::read_to_string(l.task_dir("bench", id).join("shim.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let shim = shim_pid("idle0");
    let shim_rss = status_kb(shim, "VmRSS:");
    let shim_pss = status_kb(shim, "Pss:");
    let shim_anon = status_kb(shim, "RssAnon:");
    let total_pss: u64 = (0..n)
        .map(|i| status_kb(shim_pid(&format!("idle{i}")), "Pss:"))
        .sum();
    let lc = l.pid().unwrap();
    let lc_rss = status_kb(lc, "VmRSS:");

    let (b, s, t) = (median(bare), median(bare_steps), median(through));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let name = Path::new(&runtime)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    println!("task cycle (create+start+wait+delete of /bin/true), median of {runs}:");
    println!(
        "  bare {name} run:                        {:>8.2} ms",
        ms(b)
    );
    println!(
        "  bare {name} create, start, delete:      {:>8.2} ms",
        ms(s)
    );
    println!(
        "  through lifecycled (shim + the same):   {:>8.2} ms  (adds {:.2} ms to the three commands, {:.2} ms to run)",
        ms(t),
        ms(t) - ms(s),
        ms(t) - ms(b)
    );
    println!(
        "  through lifecycled, cumulative: created {:.2}, started {:.2}, exited {:.2}, deleted {:.2} ms",
        steps[0], steps[1], steps[2], steps[3]
    );
    println!(
        "idle shim: RSS {:.2} MiB (anonymous {:.2} MiB), PSS {:.2} MiB; 100 shims together PSS {:.1} MiB",
        shim_rss as f64 / 1024.0,
        shim_anon as f64 / 1024.0,
        shim_pss as f64 / 1024.0,
        total_pss as f64 / 1024.0
    );
    println!(
        "lifecycled with {n} running containers: RSS {:.2} MiB",
        lc_rss as f64 / 1024.0
    );
    println!(
        "goals: shim <= 2 MiB RSS (containerd's Go shim 11 MB, Rust runc-shim 3.45 MB); lifecycled adds <= 5 ms"
    );

    for i in 0..n {
        let id = format!("idle{i}");
        let _ = c
            .tasks()
            .kill(c.req(api::KillRequest {
                container_id: id.clone(),
                exec_id: String::new(),
                signal: 9,
                all: false,
            }))
            .await;
        let _ = c.tasks().wait(c.process(&id, "")).await;
        let _ = c.tasks().delete(c.process(&id, "")).await;
    }
}
