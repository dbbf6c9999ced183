//! Chaos: counting containers with restart policies, clients running a mix
//! of operations in parallel, and a seeded schedule of SIGKILLs of berthd,
//! berth-lifecycled and shims. Afterwards every container must be in one
//! truthful state, nothing may be left without an owner, no line a
//! container wrote may be missing from its log, and every container must be
//! removable. The schedule is reproducible from the printed seed
//! (`BERTH_CHAOS_SEED`); `BERTH_CHAOS_SECS` and `BERTH_CHAOS_CONTAINERS`
//! size it (bench/soak.sh runs it for half an hour with 50 containers);
//! `BERTH_CHAOS_PAUSE=0` leaves pause/unpause out of the client mix.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::invariants;
use integration_tests::registry::Registry;
use integration_tests::stack::{Out, Stack};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A call that takes longer than this hangs, whatever died meanwhile.
const HANG: Duration = Duration::from_secs(60);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `berth` client that threads can share (the stack itself stays with
/// the thread that kills and restarts its daemons).
#[derive(Clone)]
struct Client {
    host: String,
    config: PathBuf,
    tally: Arc<Tally>,
    /// An image on the test's registry with a layer of its own, so that
    /// each pull downloads and unpacks.
    remote: String,
}

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    failed: AtomicU64,
    /// Pulls that completed (each downloaded and unpacked a layer).
    pulls: AtomicU64,
    hangs: Mutex<Vec<String>>,
    ids: Mutex<BTreeSet<String>>,
}

impl Client {
    fn berth(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(integration_tests::bin("berth"));
        cmd.env("BERTH_HOST", &self.host)
            .env("BERTH_CONFIG", &self.config)
            .env_remove("DOCKER_HOST")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let child = cmd.spawn().expect("starting berth");
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(HANG) {
            Ok(Ok(o)) => Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            },
            _ => {
                // SAFETY: kill(2) on the pid of the client we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                self.tally
                    .hangs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("berth {} took over {HANG:?}", args.join(" ")));
                Out {
                    code: -1,
                    stdout: String::new(),
                    stderr: "hung".into(),
                }
            }
        };
        self.tally.calls.fetch_add(1, Ordering::Relaxed);
        if out.code != 0 {
            self.tally.failed.fetch_add(1, Ordering::Relaxed);
        }
        if t0.elapsed() > HANG {
            self.tally
                .hangs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("berth {} took {:?}", args.join(" "), t0.elapsed()));
        }
        out
    }

    fn note(&self, id: &str) {
        let id = id.trim();
        if id.len() == 64 {
            self.tally
                .ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_string());
        }
    }
}

const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); usleep 50000; done";

/// One kind of client, looping until `stop`.
fn client_loop(c: Client, kind: usize, seed: u64, stop: Arc<AtomicBool>) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        match kind {
            0 => {
                c.berth(&["run", "--rm", "--label", "chaos=rm", "busybox", "true"]);
            }
            1 => {
                c.berth(&["ps", "-a"]);
            }
            2 => {
                let out = c.berth(&[
                    "run",
                    "-d",
                    "--label",
                    "chaos=life",
                    "-p",
                    "127.0.0.1::80",
                    "busybox",
                    "sleep",
                    "30",
                ]);
                let id = out.stdout.trim().to_string();
                c.note(&id);
                if out.code == 0 {
                    c.berth(&["stop", "-t", "1", &id]);
                    c.berth(&["rm", &id]);
                }
            }
            3 => {
                c.berth(&["exec", "count0", "true"]);
            }
            4 => {
                c.berth(&["pause", "count1"]);
                std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
                c.berth(&["unpause", "count1"]);
            }
            5 => {
                c.berth(&["network", "connect", "chaosnet", "netc"]);
                c.berth(&["network", "disconnect", "chaosnet", "netc"]);
            }
            6 => {
                let name = format!("chaosvol{}", rng.random_range(0..4));
                c.berth(&["volume", "create", &name]);
                c.berth(&["volume", "rm", &name]);
            }
            _ => {
                // Kills land inside pulls, unpacks and commits.
                if c.berth(&["pull", &c.remote]).code == 0 {
                    c.tally.pulls.fetch_add(1, Ordering::Relaxed);
                }
                c.berth(&["run", "--rm", &c.remote, "cat", "/own"]);
                c.berth(&["rmi", &c.remote]);
                c.berth(&["commit", "netc", "chaos/snap:1"]);
                c.berth(&["rmi", "chaos/snap:1"]);
                c.berth(&["image", "prune", "-f"]);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
    }
}

/// Lines missing from a counter's log: each run counts 0, 1, 2, … and a
/// new run starts at 0 again; any other step lost (or repeated) a line.
fn log_faults(log: &str) -> (usize, Vec<String>) {
    let mut faults = Vec::new();
    let mut prev: Option<u64> = None;
    let mut n = 0;
    for line in log.lines() {
        n += 1;
        let Ok(v) = line.trim().parse::<u64>() else {
            faults.push(format!("line {n} is not a count: {line:?}"));
            continue;
        };
        let fine = match prev {
            None => v == 0,
            Some(p) => v == p + 1 || v == 0,
        };
        if !fine {
            faults.push(format!("line {n}: {v} follows {prev:?}"));
        }
        prev = Some(v);
    }
    (n, faults)
}

#[test]
fn nothing_is_lost_or_stuck_when_daemons_die_under_load() {
    let seed = env_u64("BERTH_CHAOS_SEED", rand::random::<u32>() as u64);
    let secs = env_u64("BERTH_CHAOS_SECS", 45);
    let counters = env_u64("BERTH_CHAOS_CONTAINERS", 6).max(2) as usize;
    eprintln!(
        "chaos: seed {seed}, {secs} s, {counters} counting containers (BERTH_CHAOS_SEED={seed} repeats the schedule)"
    );
    let mut s = Stack::start();
    s.load_busybox();
    let registry = Registry::start();
    let remote = format!("{}/chaos/own:1", registry.host);
    s.image_with_own_layer(&remote);
    s.berth(&["push", &remote]).ok();
    s.berth(&["rmi", &remote]).ok();
    let tally = Arc::new(Tally::default());
    let client = Client {
        host: s.host.clone(),
        config: s.dir.path().join("berth-cli"),
        tally: tally.clone(),
        remote: remote.clone(),
    };
    s.berth(&["network", "create", "chaosnet"]).ok();
    let mut names = BTreeSet::new();
    for i in 0..counters {
        let name = format!("count{i}");
        let id = s
            .berth(&[
                "run",
                "-d",
                "--name",
                &name,
                "--restart",
                "always",
                "busybox",
                "sh",
                "-c",
                COUNTER,
            ])
            .ok()
            .to_string();
        client.note(&id);
        names.insert(id);
    }
    let netc = s
        .berth(&["run", "-d", "--name", "netc", "busybox", "sleep", "3600"])
        .ok()
        .to_string();
    client.note(&netc);

    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // BERTH_CHAOS_PAUSE=0 leaves pause/unpause out of the mix.
    let pauses = env_u64("BERTH_CHAOS_PAUSE", 1) == 1;
    for kind in 0..8 {
        if kind == 4 && !pauses {
            continue;
        }
        let (c, stop) = (client.clone(), stop.clone());
        let seed = seed.wrapping_add(kind as u64 + 1);
        threads.push(std::thread::spawn(move || client_loop(c, kind, seed, stop)));
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut kills = (0u32, 0u32, 0u32);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.random_range(1000..4000)));
        let pause = Duration::from_millis(rng.random_range(0..500));
        match rng.random_range(0..10) {
            0..=3 => {
                s.kill9_berthd();
                std::thread::sleep(pause);
                s.spawn_berthd();
                kills.0 += 1;
            }
            4..=7 => {
                s.lc_mut().kill9();
                std::thread::sleep(pause);
                s.lc_mut().spawn();
                kills.1 += 1;
            }
            _ => {
                let pids: Vec<i32> = invariants::shim_processes(&s)
                    .into_iter()
                    .filter(|(_, id)| names.contains(id))
                    .map(|(pid, _)| pid)
                    .collect();
                if !pids.is_empty() {
                    let pid = pids[rng.random_range(0..pids.len())];
                    // SAFETY: kill(2) on a shim of this test's own stack.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    kills.2 += 1;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a client thread panicked");
    }
    let (calls, failed_during) = (
        tally.calls.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );

    // Once the daemons are back, everything works without restarting
    // anything else.
    let mut problems: Vec<String> = Vec::new();
    let after = |args: &[&str]| client.berth(args);
    let unpaused = after(&["unpause", "count1"]);
    if unpaused.code != 0 && !unpaused.stderr.contains("is not paused") {
        problems.push(format!(
            "unpause count1 after the chaos: {}",
            unpaused.stderr.trim()
        ));
    }
    let rm_gone = integration_tests::eventually(60, || {
        after(&["ps", "-aq", "--filter", "label=chaos=rm"])
            .stdout
            .trim()
            .is_empty()
    });
    if !rm_gone {
        problems.push(format!(
            "--rm containers are left: {}",
            after(&["ps", "-a", "--filter", "label=chaos=rm"]).stdout
        ));
        // What the daemons said about them.
        let left = after(&["ps", "-aq", "--no-trunc", "--filter", "label=chaos=rm"]).stdout;
        for id in left.split_whitespace() {
            let said = |log: &str| {
                log.lines()
                    .filter(|l| l.contains(id) && !l.contains("CNI "))
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            problems.push(format!(
                "about {id}:\n  berthd:\n{}\n  lifecycled:\n{}",
                said(&s.log()),
                said(&s.lc().log())
            ));
        }
    }
    let running = integration_tests::eventually(60, || {
        (0..counters).all(|i| {
            after(&["inspect", "-f", "{{.State.Status}}", &format!("count{i}")])
                .stdout
                .trim()
                == "running"
        })
    });
    if !running {
        problems.push(format!(
            "counting containers are not all running: {}",
            after(&["ps", "-a", "--filter", "name=count"]).stdout
        ));
    }
    let mut lines = 0;
    for i in 0..counters {
        let out = after(&["logs", &format!("count{i}")]);
        let (n, faults) = log_faults(&out.stdout);
        lines += n;
        if !faults.is_empty() {
            problems.push(format!(
                "count{i}'s log: {}",
                faults[..faults.len().min(5)].join("; ")
            ));
        }
    }
    let mut ever = tally.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for c in invariants::containers(&s).unwrap_or_default() {
        ever.insert(c.id);
    }
    let mut last = Vec::new();
    if !integration_tests::eventually(60, || {
        last = invariants::check(&s, &ever);
        last.is_empty()
    }) {
        problems.extend(last.iter().map(|l| format!("inconsistent: {l}")));
    }
    // Every container can be removed.
    for c in invariants::containers(&s).unwrap_or_default() {
        let out = after(&["rm", "-f", &c.id]);
        if out.code != 0 {
            problems.push(format!("cannot remove {}: {}", c.id, out.stderr.trim()));
        }
    }
    if !integration_tests::eventually(30, || {
        last = invariants::check(&s, &ever);
        last.is_empty()
    }) {
        problems.extend(last.iter().map(|l| format!("after removing all: {l}")));
    }
    let last_run = after(&["run", "--rm", "busybox", "echo", "ok"]);
    if last_run.stdout.trim() != "ok" {
        problems.push(format!("a last run --rm failed: {last_run:?}"));
    }
    // Pulls cut at any point left the store whole: the image pulls (or is
    // there) and its files are all in place.
    after(&["pull", &remote]);
    let last_pull = after(&["run", "--rm", &remote, "cat", "/own"]);
    if last_pull.stdout.trim() != "mine" {
        problems.push(format!("the pulled image does not run: {last_pull:?}"));
    }
    problems.extend(
        tally
            .hangs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned(),
    );
    eprintln!(
        "chaos: {calls} client calls ({failed_during} failed while daemons died, {} pulls done), kills: {} berthd, {} lifecycled, {} shims; {lines} log lines checked; {} problems",
        tally.pulls.load(Ordering::Relaxed),
        kills.0,
        kills.1,
        kills.2,
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "seed {seed}:\n  {}\n--- berthd:\n{}\n--- lifecycled:\n{}",
        problems.join("\n  "),
        invariants::tail(&s.log(), 80),
        invariants::tail(&s.lc().log(), 80)
    );
}

#[test]
fn a_counter_log_with_a_gap_is_caught() {
    assert!(log_faults("0\n1\n2\n0\n1\n").1.is_empty());
    assert_eq!(log_faults("0\n1\n3\n").1.len(), 1);
    assert_eq!(log_faults("0\n1\n1\n").1.len(), 1);
    assert_eq!(log_faults("5\n6\n").1.len(), 1);
}
