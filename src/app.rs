//! Startup: templates and destinations prepared from the settings, the store opened, the HTTP
//! server bound and the delivery lanes started; graceful shutdown in the right order.

use crate::admin::AdminState;
use crate::config::{ConfigError, Settings};
use crate::destinations::{self, Destination, Shared};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::receiver::{self, ReceiverState};
use crate::render::{RenderError, Renderer};
use crate::store::Store;
use crate::telemetry::otlp::{Exporter, Tracer};
use crate::telemetry::MaskedRootSpan;
use crate::worker::{Wakers, Worker};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tracing_actix_web::TracingLogger;

/// Settings with their templates compiled and destinations built: what `serve`, `check` and
/// `render` all start from.
pub struct Prepared {
    /// The settings.
    pub settings: Settings,
    /// Compiled templates and `when` expressions.
    pub renderer: Arc<Renderer>,
    /// Built destinations, in configuration order.
    pub destinations: Vec<Arc<dyn Destination>>,
    /// The configuration file, read again on reload.
    pub config_path: std::path::PathBuf,
}

/// Compiles templates and `when` expressions and builds destinations. Errors name the
/// template file and line, or the configuration key and its line.
pub fn prepare(
    settings: Settings,
    config_path: &Path,
    config_text: &str,
) -> anyhow::Result<Prepared> {
    let mut renderer = Renderer::load(Path::new(&settings.templates.dir))?;
    let mut problems = crate::config::Problems::new(config_text);
    for (name, d) in &settings.destinations {
        for (key, template) in d.templates() {
            if let Err(e) = renderer.require(template) {
                problems.add(&format!("destinations.{name}.{key}"), e.to_string());
            }
        }
        for (key, source) in d.inline_templates() {
            if let Err(RenderError::Compile { message, .. }) =
                renderer.add_inline(name, &key, source)
            {
                problems.add(&format!("destinations.{name}.{key}"), message);
            }
        }
        if let Some(expression) = d.when() {
            if let Err(RenderError::Compile { message, .. }) =
                renderer.add_expression(name, expression)
            {
                problems.add(&format!("destinations.{name}.when"), message);
            }
        }
    }
    problems
        .finish(config_path)
        .map_err(|e: ConfigError| anyhow::anyhow!(e))?;
    let renderer = Arc::new(renderer);
    let shared = Shared::new(renderer.clone(), &settings).context("building the HTTP client")?;
    let destinations = destinations::build_all(&settings, &shared);
    Ok(Prepared {
        settings,
        renderer,
        destinations,
        config_path: config_path.to_path_buf(),
    })
}

/// What an instance does: receive hooks, deliver, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Receive hooks and deliver.
    #[default]
    All,
    /// Receive hooks only (health and metrics too); other instances deliver.
    Receiver,
    /// Deliver only; the HTTP listener serves health and metrics, not hooks.
    Worker,
}

impl Role {
    fn receives(self) -> bool {
        self != Self::Worker
    }
    fn delivers(self) -> bool {
        self != Self::Receiver
    }
}

/// A bound server, running lanes and the retention task.
pub struct Application {
    port: u16,
    server: Option<actix_web::dev::Server>,
    worker: Worker,
    retention: tokio::task::JoinHandle<()>,
    /// Limiter pruning and the sign-out epoch reader.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Assembles conversations from Smartsupp events.
    assembler: crate::receiver::Assembler,
    state: web::Data<ReceiverState>,
    admin: web::Data<AdminState>,
    store: Store,
    metrics: Arc<Metrics>,
    /// The trace exporter and its task, when `telemetry.otlp_endpoint` is set (read at start;
    /// a reload does not change it).
    exporter: Option<(Arc<Exporter>, tokio::task::JoinHandle<()>)>,
    role: Role,
    config_path: std::path::PathBuf,
    /// What a reload cannot change: the store URL and the listen address.
    fixed: (String, String),
}

/// How often retention runs while serving.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes what `store.retention` and `store.dead_retention` allow, now and every hour.
async fn retention_loop(store: Store, settings: crate::config::StoreSettings) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        every.tick().await;
        let rule = crate::store::admin::Retention::of(&settings, None);
        match store.purge(rule, false).await {
            Ok(p) if p.conversations > 0 => tracing::info!(
                conversations = p.conversations,
                deliveries = p.deliveries,
                "retention deleted old conversations"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention could not run; will try again"),
        }
    }
}

impl Application {
    /// Opens the store, recovers leases left by a crash, binds the listener and starts the
    /// delivery lanes, as far as `role` asks.
    pub async fn build(prepared: Prepared, role: Role) -> anyhow::Result<Self> {
        let Prepared {
            settings,
            renderer,
            destinations,
            config_path,
        } = prepared;
        let store = Store::open(&settings.store.url, settings.store.pool_size)
            .await
            .context("opening the store")?;
        for destination in &destinations {
            destination.attach(&store);
        }
        let recovered = store.recover().await.context("recovering leases")?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "deliveries in flight at the last stop are due again"
            );
        }
        let exporter = Tracer::from_settings(&settings.telemetry)
            .context("starting the trace exporter")?
            .map(|e| {
                let e = Arc::new(e);
                (e.clone(), e.spawn())
            });
        let tracer = exporter.as_ref().map(|(e, _)| e.tracer());
        let names: Vec<String> = settings.destinations.keys().cloned().collect();
        let metrics = Arc::new(Metrics::new(&names));
        let wakers = Wakers::new(&names);
        let limiter = Arc::new(Limiter::default());
        let state = web::Data::new(ReceiverState::new(
            &settings,
            store.clone(),
            renderer,
            metrics.clone(),
            wakers.clone(),
            limiter.clone(),
            tracer.clone(),
        ));
        let admin = web::Data::new(AdminState::new(
            &settings,
            destinations.clone(),
            wakers.clone(),
            store.clone(),
            metrics.clone(),
            limiter.clone(),
            role.delivers(),
        ));
        let background = vec![
            Limiter::prune_every_minute(limiter),
            AdminState::follow_sign_outs(admin.clone()).await,
        ];
        let listener = std::net::TcpListener::bind(&settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let http_workers = settings
            .server
            .http_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        // actix counts connections per worker.
        let per_worker = settings
            .server
            .max_connections
            .div_ceil(http_workers)
            .max(1);
        let app_state = state.clone();
        let admin_state = admin.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<MaskedRootSpan>::new())
                .app_data(app_state.clone())
                .app_data(admin_state.clone())
                .configure(|cfg| receiver::routes(cfg, role.receives()))
                .configure(crate::admin::routes)
        })
        .disable_signals()
        .workers(http_workers)
        .max_connections(per_worker)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        let retention = tokio::spawn(retention_loop(store.clone(), settings.store.clone()));
        let lanes = if role.delivers() {
            destinations
        } else {
            Vec::new()
        };
        let worker = Worker::start(
            store.clone(),
            lanes,
            &settings,
            metrics.clone(),
            &wakers,
            tracer,
        );
        let assembler = crate::receiver::Assembler::start(state.clone());
        tracing::info!(listen = %settings.server.listen, port, role = ?role, "deskbridge is listening");
        Ok(Self {
            port,
            server: Some(server),
            worker,
            retention,
            background,
            assembler,
            state,
            admin,
            store,
            metrics,
            exporter,
            role,
            config_path,
            fixed: (settings.store.url.clone(), settings.server.listen.clone()),
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests,
    /// stops the lanes (finishing or releasing in-flight deliveries) and returns.
    /// SIGHUP reloads the configuration and templates meanwhile.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let server = self.server.take().context("the server already ran")?;
        let handle = server.handle();
        let server = tokio::spawn(server);
        let mut hangups = hangups();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(()) = next_hangup(&mut hangups) => match self.reload().await {
                    Ok(()) => tracing::info!(config = %self.config_path.display(), "configuration reloaded"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "reload refused; the running configuration stays"),
                },
            }
        }
        tracing::info!("shutting down: no new hooks, finishing deliveries in flight");
        handle.stop(true).await;
        self.retention.abort();
        self.assembler.stop();
        for task in &self.background {
            task.abort();
        }
        let served = server.await;
        self.worker.shutdown().await;
        if let Some((exporter, task)) = self.exporter.take() {
            exporter.flush().await;
            task.abort();
        }
        tracing::info!("stopped");
        served.context("server task")?.context("server")
    }

    /// Reads the configuration file again; when it and its templates are valid, swaps them in:
    /// the receiver takes the new routing at once, new lanes start, and the old lanes finish
    /// what they have in flight. The store and the listen address stay as they were.
    pub async fn reload(&mut self) -> anyhow::Result<()> {
        let (settings, text) = crate::config::load(&self.config_path)?;
        let prepared = prepare(settings, &self.config_path, &text)?;
        let Prepared {
            settings,
            renderer,
            destinations,
            ..
        } = prepared;
        if (settings.store.url.as_str(), settings.server.listen.as_str())
            != (self.fixed.0.as_str(), self.fixed.1.as_str())
        {
            tracing::warn!(
                "store.url and server.listen take effect at the next start, not on reload"
            );
        }
        for destination in &destinations {
            destination.attach(&self.store);
        }
        let names: Vec<String> = settings.destinations.keys().cloned().collect();
        self.metrics.ensure(&names);
        let wakers = Wakers::new(&names);
        self.state.replace(&settings, renderer, wakers.clone());
        self.admin
            .replace(&settings, destinations.clone(), wakers.clone());
        let lanes = if self.role.delivers() {
            destinations
        } else {
            Vec::new()
        };
        let new = Worker::start(
            self.store.clone(),
            lanes,
            &settings,
            self.metrics.clone(),
            &wakers,
            self.exporter.as_ref().map(|(e, _)| e.tracer()),
        );
        std::mem::replace(&mut self.worker, new).shutdown().await;
        self.retention.abort();
        self.retention = tokio::spawn(retention_loop(self.store.clone(), settings.store.clone()));
        Ok(())
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The next SIGHUP; never, where there are none.
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
