//! The daemon's life: take the data root, replay the log, serve, stop cleanly.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::actors::event_log::{append, Drain, EventLog, DEFAULT_SNAPSHOT_EVERY};
use crate::actors::image_service::ImageService;
use crate::api::{listen, Api, ApiContext};
use crate::buildinfo;
use crate::config::{Config, SharedConfig};
use crate::drivers::storage::{Driver, LayerStore};
use crate::error::{Context, Error, Result};
use crate::events::projection::Projection;
use crate::events::Event;
use crate::hostinfo::HostInfo;
use crate::registry::RegistrySettings;
use crate::store::blobs::BlobStore;
use crate::store::eventlog::EventStore;
use crate::store::lock::DataRootLock;

/// How long in-flight requests get to finish on SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `args`: berthd's command line, parsed again with daemon.json at each
/// SIGHUP.
pub fn run(config: Config, args: Vec<std::ffi::OsString>) -> Result<()> {
    // One TLS provider for everything (the API listeners and the registry client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    make_dir(&config.data_root, 0o711)?;
    make_dir(&config.exec_root, 0o700)?;
    let _lock = DataRootLock::acquire(&config.data_root)?;
    crate::spool::sweep(&config.data_root.join("tmp"));
    if let Some(pidfile) = &config.pidfile {
        std::fs::write(pidfile, std::process::id().to_string())
            .context(format_args!("writing pid file {}", pidfile.display()))?;
    }
    let result = actix::System::new().block_on(serve(config.clone(), args));
    if let Some(pidfile) = &config.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    result
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .context(format_args!("creating {}", path.display()))
}

async fn serve(config: Config, args: Vec<std::ffi::OsString>) -> Result<()> {
    // Bind first: a bad -H or a busy port fails before anything is written.
    let listeners = listen::bind_all(&config.hosts, config.tls.as_ref(), config.group.as_deref())?;
    let metrics_listener = match &config.metrics_addr {
        Some(addr) => Some(crate::api::metrics::bind(addr).await?),
        None => None,
    };

    let started = Instant::now();
    let log_path = config.data_root.join("events");
    let (store, replayed) = tokio::task::spawn_blocking(move || {
        let store = EventStore::open(&log_path)?;
        let replayed = store.replay()?;
        Ok::<_, Error>((store, replayed))
    })
    .await
    .context("opening the event log")??;
    info!(
        events = replayed.events_replayed,
        snapshot = ?replayed.snapshot_seq,
        last_seq = replayed.last_seq,
        dropped = ?replayed.dropped,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "event log replayed"
    );
    crate::metrics::REPLAY_MICROS.store(
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );

    let projection = Projection::default();
    let events = EventLog::new(
        Arc::new(store),
        replayed,
        projection.clone(),
        DEFAULT_SNAPSHOT_EVERY,
    )
    .with_retention(config.events_retention)
    .start();
    if projection.current().engine.id.is_none() {
        append(
            &events,
            Event::EngineInitialized {
                id: new_engine_id()?,
            },
        )
        .await?;
    }
    append(
        &events,
        Event::DaemonStarted {
            version: buildinfo::VERSION.into(),
            pid: std::process::id(),
        },
    )
    .await?;

    let layers_root = config.data_root.join(&config.storage_driver);
    let driver = if config.storage_driver == "vfs" {
        Driver::Vfs
    } else {
        Driver::Overlay2
    };
    let remap = match &config.userns_remap {
        Some(spec) => {
            // The remapped root walks through both roots to its rootfs and
            // /etc files (dockerd chmods its root 0711 too).
            for dir in [&config.data_root, &config.exec_root] {
                crate::drivers::userns::allow_traversal(dir)?;
            }
            Some(Arc::new(crate::drivers::userns::setup(spec)?))
        }
        None => None,
    };
    let layers = Arc::new(LayerStore::open(&layers_root, driver)?.with_remap(remap)?);
    let blobs = Arc::new(BlobStore::open(&config.data_root)?);
    let layers_files = Arc::clone(&layers);
    let settings = RegistrySettings::from_config(&config);
    let images = ImageService::new(
        settings,
        Arc::clone(&layers),
        Arc::clone(&blobs),
        events.clone(),
        projection.clone(),
    )
    .start();
    // What a killed daemon left half done, before the networks count the
    // running containers.
    crate::actors::container::Leftovers {
        events: events.clone(),
        layers: Arc::clone(&layers),
        exec_root: config.exec_root.clone(),
        containers_dir: config.data_root.join("containers"),
    }
    .settle(&projection.current())
    .await;
    let network = crate::actors::network_controller::NetworkController::new(
        events.clone(),
        projection.clone(),
        crate::drivers::network::NetDriver::new(&config.data_root, &config.exec_root)?,
        &config.data_root,
        crate::actors::network_controller::DefaultBridge {
            bip: config.bip.clone(),
            ipv6: config.ipv6,
            fixed_cidr_v6: config.fixed_cidr_v6.clone(),
        },
        &config.default_address_pools,
    )?
    .start();
    network
        .send(crate::actors::network_controller::Init)
        .await
        .map_err(|e| Error::internal(format!("setting up the networks: {e}")))?
        .map_err(|e| e.context("setting up the networks"))?;
    let volumes = crate::actors::volume_service::VolumeService::new(
        events.clone(),
        projection.clone(),
        &config.data_root,
        layers.remap().map(|r| r.root()),
    )?
    .start();
    let execs = crate::containers::exec::ExecRegistry::default();
    // Shared with every container's actor: a reload changes it for all.
    let runtimes = crate::actors::container::RuntimeCommand::new(&config)?;
    let containers = crate::actors::container_service::ContainerService::new(
        Arc::clone(&layers),
        Arc::clone(&blobs),
        events.clone(),
        projection.clone(),
        &config.data_root,
        &config.exec_root,
        runtimes.clone(),
        execs.clone(),
        network.clone(),
        images.clone(),
        volumes.clone(),
    )
    .start();
    containers
        .send(crate::actors::container_service::Restore)
        .await
        .map_err(|e| Error::internal(format!("restoring the containers: {e}")))?;

    let host = Arc::new(HostInfo::gather(&config.data_root));
    let shared = SharedConfig::new(config.clone());
    let ctx = ApiContext {
        projection: projection.clone(),
        events: events.clone(),
        images: images.clone(),
        containers,
        network,
        volumes,
        storage: Arc::new(crate::containers::storage::ContainerStorage::new(
            layers,
            &config.data_root,
            &config.exec_root,
        )),
        image_files: Arc::new(crate::images::files::ImageFiles::new(blobs, layers_files)),
        host: Arc::clone(&host),
        execs,
        config: shared.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::api::metrics::serve(
            listener,
            ctx.clone(),
            stop_rx.clone(),
        ));
    }
    let api = Api::new(ctx);
    let server = tokio::spawn(listen::serve(listeners, api, stop_rx, SHUTDOWN_GRACE));
    info!(version = buildinfo::VERSION, id = ?projection.current().engine.id, "berthd is ready");
    // The start's code (replay, RocksDB's open, the flags) is not needed
    // again: out of RSS it goes; what serving uses faults back in from the
    // page cache.
    tokio::task::spawn_blocking(berth_shim::pages::shed_code_pages);

    let reload = Reload {
        args,
        config: shared,
        runtimes,
        images,
        events: events.clone(),
        hostname: host.hostname.clone(),
    };
    wait_for_stop_signal(&reload).await?;
    info!("stopping: no new connections; finishing requests in flight");
    let _ = stop_tx.send(true);
    let _ = server.await;
    append(
        &events,
        Event::DaemonStopped {
            pid: std::process::id(),
        },
    )
    .await?;
    let _ = events.send(Drain).await;
    info!("stopped");
    Ok(())
}

async fn wait_for_stop_signal(reload: &Reload) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM"); return Ok(()) }
            _ = int.recv() => { info!("SIGINT"); return Ok(()) }
            _ = hup.recv() => reload.run().await,
        }
    }
}

/// What SIGHUP needs: the command line and where each live setting lives.
struct Reload {
    args: Vec<std::ffi::OsString>,
    config: SharedConfig,
    runtimes: crate::actors::container::RuntimeCommand,
    images: actix::Addr<ImageService>,
    events: actix::Addr<crate::actors::event_log::EventLog>,
    hostname: String,
}

impl Reload {
    /// Reads daemon.json again and applies what dockerd applies live; on any
    /// error the running configuration stays as it was (and says why).
    async fn run(&self) {
        let current = self.config.get();
        info!(file = %current.config_file.display(), "got signal to reload configuration");
        let reloaded = match current.reloaded(&self.args) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "configuration not reloaded; the running one stays");
                return;
            }
        };
        for key in &reloaded.restart_needed {
            warn!(
                key,
                "daemon.json: this key's new value takes effect when berthd restarts"
            );
        }
        let next = reloaded.config;
        crate::logging::set_level(next.effective_log_level());
        self.runtimes.reload(&next);
        let settings = RegistrySettings::from_config(&next);
        if let Err(e) = self
            .images
            .send(crate::actors::image_service::UpdateRegistrySettings(
                settings,
            ))
            .await
        {
            error!(error = %e, "reload: the image service did not take the registry settings");
        }
        let attributes = next.reload_attributes(&self.hostname);
        info!(
            debug = next.debug,
            log_level = %next.log_level,
            registry_mirrors = ?next.registry_mirrors,
            insecure_registries = ?next.insecure_registries,
            labels = ?next.labels,
            default_runtime = %next.default_runtime,
            max_concurrent_downloads = next.max_concurrent_downloads,
            max_concurrent_uploads = next.max_concurrent_uploads,
            "reloaded configuration"
        );
        self.config.set(next);
        if let Err(e) = append(&self.events, Event::DaemonReloaded { attributes }).await {
            warn!(error = %e, "recording the reload");
        }
    }
}

/// A random UUID (v4) from the kernel's generator.
fn new_engine_id() -> Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}
