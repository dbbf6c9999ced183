//! The berth side of bench/images.sh: pulls an image from a local registry
//! into fresh stores and times it.
//!
//! ```text
//! images_bench --work DIR --reference HOST:PORT/REPO:TAG
//! ```
//! prints `key=seconds` lines: `pull` (download and verify only), `unpack`
//! (the layers of that pull), and `pull_unpack` (a second fresh pull that
//! unpacks each layer as it arrives, as `docker pull` does).

use std::path::PathBuf;
use std::time::Instant;

use imagestore::{RegistryOptions, Store};

fn usage() -> ! {
    eprintln!("usage: images_bench --work DIR --reference HOST:PORT/REPO:TAG");
    std::process::exit(2)
}

fn main() {
    let mut work: Option<PathBuf> = None;
    let mut reference: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--work" => work = args.next().map(PathBuf::from),
            "--reference" => reference = args.next(),
            _ => usage(),
        }
    }
    let (Some(work), Some(reference)) = (work, reference) else {
        usage()
    };
    let host = reference.split('/').next().unwrap_or_default().to_string();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("images_bench: starting the runtime: {e}");
            std::process::exit(1)
        }
    };
    let res = rt.block_on(async {
        let mut opts = RegistryOptions {
            insecure: vec![host],
            ..Default::default()
        };

        opts.unpack = false;
        let store = Store::open(&work.join("separate"))?;
        let t = Instant::now();
        pull(&store, &reference, &opts).await?;
        println!("pull={:.3}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s = store.clone();
        let r = reference.clone();
        tokio::task::spawn_blocking(move || s.unpack("bench", &r))
            .await
            .map_err(|_| imagestore::Error::TaskFailed {
                what: "unpack".into(),
            })??;
        println!("unpack={:.3}", t.elapsed().as_secs_f64());

        opts.unpack = true;
        let store = Store::open(&work.join("together"))?;
        let t = Instant::now();
        pull(&store, &reference, &opts).await?;
        println!("pull_unpack={:.3}", t.elapsed().as_secs_f64());
        Ok::<(), imagestore::Error>(())
    });
    if let Err(e) = res {
        eprintln!("images_bench: {}", e.chain());
        std::process::exit(1);
    }
}

async fn pull(store: &Store, reference: &str, opts: &RegistryOptions) -> imagestore::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    // Progress is drained as the engine would, so that it costs what it costs.
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    store.pull("bench", reference, None, opts, tx).await?;
    let _ = drain.await;
    Ok(())
}
