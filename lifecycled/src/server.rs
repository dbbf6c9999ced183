//! Binding the socket and serving every service, health and reflection.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_proto::cri::v1::image_service_server::ImageServiceServer;
use berth_proto::cri::v1::runtime_service_server::RuntimeServiceServer;
use berth_proto::lifecycle::v1::{
    containers_server::ContainersServer, content_server::ContentServer,
    events_server::EventsServer, images_server::ImagesServer, snapshots_server::SnapshotsServer,
    tasks_server::TasksServer, version_server::VersionServer,
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::Config;
use crate::events::Bus;
use crate::service;
use crate::store::Store;
use crate::tasks::Tasks;

pub struct Options {
    pub address: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub config: Config,
    /// Where `config` came from, read again on SIGHUP (and whether it must
    /// exist, as at start).
    pub config_path: PathBuf,
    pub config_required: bool,
    pub debug: bool,
}

fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "{} is in use: is another berth-lifecycled running?",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(l)
}

/// Unmounts and removes what a killed lifecycled left mounted for a call.
fn clear_scratch(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        if let Err(err) = std::fs::remove_dir(&p) {
            tracing::warn!("removing {}: {err}", p.display());
        }
    }
}

/// How long calls may go on after the shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves until `shutdown` resolves. Containers are left running.
pub async fn serve(opts: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    for d in [&opts.root, &opts.state] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let listener = bind(&opts.address)?;
    let store = Arc::new(Store::open(&opts.root).context("opening the container store")?);
    let images = imagestore::Store::open(&opts.root).context("opening the image store")?;
    let scratch = opts.state.join("scratch");
    clear_scratch(&scratch);
    let events = Bus::default();
    let tasks = Arc::new(Tasks::new(
        opts.config,
        opts.state.clone(),
        store.clone(),
        images.clone(),
        events.clone(),
        opts.debug,
    ));
    // The CRI follows exits before the tasks are restored, so that those
    // which happened while we were away are recorded too.
    let cri = crate::cri::Cri::new(tasks.clone(), store.clone(), images.clone(), &opts.state)
        .context("setting up the CRI's state")?;
    cri.follow_exits(&events);
    let streaming = crate::cri::streaming::start(cri.clone())
        .await
        .context("starting the CRI's streaming server")?;
    tracing::info!("CRI streaming server on {streaming}");
    tasks.restore().await;
    // SIGHUP reads the configuration file again: the runtime table and the
    // default runtime apply to tasks created from then on.
    let reloading = tasks.clone();
    let (path, required) = (opts.config_path.clone(), opts.config_required);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match Config::load(&path, required) {
                Ok(new) => {
                    let fixed = reloading.reload(new);
                    if fixed.is_empty() {
                        tracing::info!("reloaded {}", path.display());
                    } else {
                        tracing::warn!(
                            "reloaded {}; changed keys that take effect only when lifecycled restarts: {}",
                            path.display(),
                            fixed.join(", ")
                        );
                    }
                }
                Err(e) => tracing::error!("reload: {e}; the configuration in use stays"),
            }
        }
    });

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<VersionServer<service::version::Service>>()
        .await;
    health
        .set_serving::<ContainersServer<service::containers::Service>>()
        .await;
    health
        .set_serving::<TasksServer<service::tasks::Service>>()
        .await;
    health
        .set_serving::<EventsServer<service::events::Service>>()
        .await;
    health
        .set_serving::<ImagesServer<service::images::Service>>()
        .await;
    health
        .set_serving::<SnapshotsServer<service::snapshots::Service>>()
        .await;
    health
        .set_serving::<ContentServer<service::content::Service>>()
        .await;
    health
        .set_serving::<ImageServiceServer<service::cri_images::Service>>()
        .await;
    health
        .set_serving::<RuntimeServiceServer<service::cri_runtime::Service>>()
        .await;
    // The descriptor set also holds the shim's service, which this socket
    // does not serve: reflection lists exactly what is served here.
    use tonic::server::NamedService;
    let served = [
        VersionServer::<service::version::Service>::NAME,
        ContainersServer::<service::containers::Service>::NAME,
        ImagesServer::<service::images::Service>::NAME,
        SnapshotsServer::<service::snapshots::Service>::NAME,
        ContentServer::<service::content::Service>::NAME,
        TasksServer::<service::tasks::Service>::NAME,
        EventsServer::<service::events::Service>::NAME,
        ImageServiceServer::<service::cri_images::Service>::NAME,
        RuntimeServiceServer::<service::cri_runtime::Service>::NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let reflection = || {
        served
            .into_iter()
            .fold(tonic_reflection::server::Builder::configure(), |b, name| {
                b.with_service_name(name)
            })
            .register_encoded_file_descriptor_set(berth_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(berth_proto::cri::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // Both versions, as grpc-go serves them: grpcurl asks v1 first, Python's
    // grpcio-reflection and older tools only v1alpha.
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection")?;
    let reflection = reflection().build_v1().context("building reflection")?;

    // The CRI alone on a socket of its own, if asked for.
    let cri_socket = match &tasks.config().cri.address {
        Some(path) => {
            let listener = bind(path)?;
            let (cri_health, cri_health_service) = tonic_health::server::health_reporter();
            cri_health
                .set_serving::<ImageServiceServer<service::cri_images::Service>>()
                .await;
            cri_health
                .set_serving::<RuntimeServiceServer<service::cri_runtime::Service>>()
                .await;
            let cri_reflection = [
                ImageServiceServer::<service::cri_images::Service>::NAME,
                RuntimeServiceServer::<service::cri_runtime::Service>::NAME,
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
            ]
            .into_iter()
            .fold(tonic_reflection::server::Builder::configure(), |b, name| {
                b.with_service_name(name)
            })
            .register_encoded_file_descriptor_set(berth_proto::cri::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building reflection")?;
            let router = tonic::transport::Server::builder()
                .add_service(cri_health_service)
                .add_service(cri_reflection)
                .add_service(ImageServiceServer::new(service::cri_images::Service {
                    images: images.clone(),
                    registry: tasks.config().cri.registry.clone(),
                }))
                .add_service(RuntimeServiceServer::new(service::cri_runtime::Service {
                    cri: cri.clone(),
                }));
            tracing::info!("serving the CRI on {}", path.display());
            let shown = path.display().to_string();
            let task = tokio::spawn(async move {
                if let Err(e) = router
                    .serve_with_incoming(UnixListenerStream::new(listener))
                    .await
                {
                    tracing::error!("serving the CRI on {shown}: {e}");
                }
            });
            Some((task, path.clone()))
        }
        None => None,
    };

    tracing::info!("serving on {}", opts.address.display());
    // The socket is bound and the services built: ready, for systemd
    // (Type=notify in berth-lifecycled.service).
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("telling systemd we are ready: {e}");
    }
    // Event subscribers (berthd) never end their streams: after the signal,
    // in-flight calls get a moment to finish, then we leave regardless.
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };
    let serving = tonic::transport::Server::builder()
        .initial_stream_window_size(berth_proto::STREAM_WINDOW)
        .initial_connection_window_size(berth_proto::CONNECTION_WINDOW)
        .max_frame_size(berth_proto::MAX_FRAME)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(VersionServer::new(service::version::Service::new(
            tasks.clone(),
        )))
        .add_service(ContainersServer::new(service::containers::Service {
            store: store.clone(),
            images: images.clone(),
            tasks: tasks.clone(),
            events: events.clone(),
        }))
        .add_service(ImagesServer::new(service::images::Service {
            images: images.clone(),
            containers: store.clone(),
        }))
        .add_service(SnapshotsServer::new(service::snapshots::Service {
            images: images.clone(),
            containers: store,
            tasks: tasks.clone(),
            scratch,
            mounting: Default::default(),
        }))
        .add_service(ImageServiceServer::new(service::cri_images::Service {
            images: images.clone(),
            registry: tasks.config().cri.registry.clone(),
        }))
        .add_service(RuntimeServiceServer::new(service::cri_runtime::Service {
            cri,
        }))
        .add_service(ContentServer::new(service::content::Service { images }))
        .add_service(TasksServer::new(service::tasks::Service(tasks)))
        .add_service(EventsServer::new(service::events::Service(events)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown);
    let result = tokio::select! {
        r = serving => r.context("serving"),
        _ = async {
            if stopping.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::info!("leaving the streams still open after {SHUTDOWN_GRACE:?}");
            Ok(())
        }
    };
    let _ = std::fs::remove_file(&opts.address);
    if let Some((task, path)) = cri_socket {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    result
}
