//! The server process: configuration, services, runtimes and signals.
//!
//! A [`Server`] owns any number of [`Service`]s. [`Server::run_forever()`]
//! starts each service on its own tokio runtime and then waits for a
//! shutdown signal:
//!
//! * `SIGINT`: fast shutdown, runtimes are stopped at once;
//! * `SIGTERM`: graceful shutdown. The [`ShutdownWatch`] turns `true`, so
//!   listeners stop accepting and apps stop reusing connections; in-flight
//!   sessions get `grace_period_seconds` (a second signal cuts it short),
//!   then the runtimes get `graceful_shutdown_timeout_seconds` to stop;
//! * `SIGQUIT`: reserved for the zero downtime upgrade, which is not
//!   implemented yet; handled as a graceful shutdown.

pub mod configuration;
mod daemon;
mod fds;
pub(crate) mod runtime;

use async_trait::async_trait;
use log::{debug, error, info, warn};
use pingora_error::{Error, ErrorType, OkOrErr, OrErr, Result};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tokio::signal::unix;
use tokio::sync::{watch, Mutex};

use crate::services::Service;
use configuration::{Opt, ServerConf};
pub use fds::Fds;
use runtime::Runtime;

/// Default seconds in-flight sessions get after a graceful shutdown starts.
const EXIT_TIMEOUT: u64 = 60 * 5;
/// Default seconds the runtimes get to stop at the end of a graceful shutdown.
const RUNTIME_SHUTDOWN_TIMEOUT: u64 = 5;

/// Turns `true` once the server starts to shut down.
///
/// Services and apps watch it to stop accepting and to close connections
/// after the request in flight.
pub type ShutdownWatch = watch::Receiver<bool>;

/// The listening sockets of this process, shared by all services.
pub type ListenFds = Arc<Mutex<Fds>>;

/// Which kind of shutdown has been requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// Hand the listening sockets to a new process, then shut down
    /// gracefully. Socket hand-over is not implemented yet, so this is
    /// currently the same as [`Self::GracefulTerminate`].
    GracefulUpgrade,
    /// Stop accepting, give in-flight sessions
    /// [`ServerConf::grace_period_seconds`], then stop the runtimes within
    /// [`ServerConf::graceful_shutdown_timeout_seconds`].
    GracefulTerminate,
    /// Stop the runtimes immediately.
    FastShutdown,
}

/// A source of shutdown requests; [`UnixShutdownSignalWatch`] listens to
/// process signals, tests and embedders can provide their own.
#[async_trait]
pub trait ShutdownSignalWatch {
    /// Wait until a shutdown is requested and tell which kind.
    async fn recv(&self) -> ShutdownSignal;
}

/// Shutdown requests from Unix signals: `SIGQUIT` upgrade, `SIGTERM`
/// graceful, `SIGINT` fast.
pub struct UnixShutdownSignalWatch;

#[async_trait]
impl ShutdownSignalWatch for UnixShutdownSignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        fn listen(kind: unix::SignalKind, name: &str) -> Option<unix::Signal> {
            unix::signal(kind)
                .map_err(|e| error!("cannot listen to {name}: {e}"))
                .ok()
        }
        async fn next(sig: &mut Option<unix::Signal>) {
            match sig {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let mut quit = listen(unix::SignalKind::quit(), "SIGQUIT");
        let mut term = listen(unix::SignalKind::terminate(), "SIGTERM");
        let mut int = listen(unix::SignalKind::interrupt(), "SIGINT");
        tokio::select! {
            _ = next(&mut quit) => ShutdownSignal::GracefulUpgrade,
            _ = next(&mut term) => ShutdownSignal::GracefulTerminate,
            _ = next(&mut int) => ShutdownSignal::FastShutdown,
        }
    }
}

/// How [`Server::run()`] runs.
pub struct RunArgs {
    /// Where shutdown requests come from.
    pub shutdown_signal: Box<dyn ShutdownSignalWatch>,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            shutdown_signal: Box::new(UnixShutdownSignalWatch),
        }
    }
}

/// What bootstrapping decided.
#[derive(Debug, PartialEq, Eq)]
enum Bootstrap {
    /// Go on to [`Server::run()`].
    Ready,
    /// `-t`: the configuration is valid, the process should exit with 0.
    TestPassed,
}

/// A pingora server process.
///
/// One per process; it holds independent services, parses the command
/// line and configuration, and handles signals.
pub struct Server {
    services: Vec<Box<dyn Service>>,
    listen_fds: Option<ListenFds>,
    shutdown_watch: watch::Sender<bool>,
    // kept so that sending on `shutdown_watch` never fails for lack of receivers
    shutdown_recv: ShutdownWatch,
    /// The configuration in force.
    pub configuration: Arc<ServerConf>,
    /// The command line options, when given.
    pub options: Option<Opt>,
}

impl Server {
    /// Create a server from command line options.
    ///
    /// With `opt.conf` set the file is loaded (and must be valid), otherwise
    /// the defaults are used; `-d` overrides the file.
    pub fn new(opt: impl Into<Option<Opt>>) -> Result<Server> {
        let opt = opt.into();
        let conf = match &opt {
            Some(o) if o.conf.is_some() => ServerConf::load_yaml_with_opt_override(o)?,
            Some(o) => ServerConf::new_with_opt_override(o).or_err(
                ErrorType::ReadError,
                "cannot generate the default configuration",
            )?,
            None => ServerConf::new().or_err(
                ErrorType::ReadError,
                "cannot generate the default configuration",
            )?,
        };
        Ok(Self::build(opt, conf))
    }

    /// Create a server from a configuration built by the caller.
    ///
    /// A configuration file named in `opt` is ignored (with a warning); the
    /// other options still apply.
    pub fn new_with_opt_and_conf(raw_opt: impl Into<Option<Opt>>, mut conf: ServerConf) -> Server {
        let opt = raw_opt.into();
        if let Some(o) = &opt {
            if let Some(path) = &o.conf {
                warn!("ignoring configuration file {path}: a configuration was given directly");
            }
            conf.merge_with_opt(o);
        }
        Self::build(opt, conf)
    }

    fn build(options: Option<Opt>, conf: ServerConf) -> Server {
        let (tx, rx) = watch::channel(false);
        Server {
            services: vec![],
            listen_fds: None,
            shutdown_watch: tx,
            shutdown_recv: rx,
            configuration: Arc::new(conf),
            options,
        }
    }

    /// Add a service to run.
    pub fn add_service(&mut self, service: impl Service + 'static) {
        self.services.push(Box::new(service));
    }

    /// Add several services to run.
    pub fn add_services(&mut self, services: Vec<Box<dyn Service>>) {
        self.services.extend(services);
    }

    /// Prepare to run.
    ///
    /// With `-t` it exits the process: 0 when the configuration is valid,
    /// 1 with the reason otherwise. It also exits with 1 when an option
    /// cannot be honoured (e.g. `-u`, not implemented yet).
    pub fn bootstrap(&mut self) {
        info!("bootstrap starting");
        debug!("{:#?}", self.options);
        match self.try_bootstrap() {
            Ok(Bootstrap::Ready) => info!("bootstrap done"),
            Ok(Bootstrap::TestPassed) => {
                info!("server test passed, exiting");
                std::process::exit(0);
            }
            Err(e) => {
                error!("bootstrap failed: {e}");
                eprintln!("bootstrap failed: {e}");
                std::process::exit(1);
            }
        }
    }

    fn try_bootstrap(&mut self) -> Result<Bootstrap> {
        let conf = self.configuration.as_ref().clone().validate()?;
        if self.options.as_ref().is_some_and(|o| o.test) {
            debug!("configuration under test: {conf:?}");
            return Ok(Bootstrap::TestPassed);
        }
        if self.options.as_ref().is_some_and(|o| o.upgrade) {
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "zero downtime upgrade (-u) is not supported yet: listening sockets \
                     cannot be received from the old process over {}",
                    conf.upgrade_sock
                ),
            );
        }
        self.listen_fds = Some(Arc::new(Mutex::new(Fds::new())));
        Ok(Bootstrap::Ready)
    }

    /// Run with the Unix signal handlers until shut down, then exit the
    /// process with 0.
    pub fn run_forever(self) -> ! {
        info!("server starting");
        self.run(RunArgs::default());
        info!("all runtimes exited, exiting now");
        std::process::exit(0)
    }

    /// Run until `run_args.shutdown_signal` asks to stop and every runtime
    /// has stopped.
    ///
    /// With `daemon` set the process forks first: call this before starting
    /// any thread of your own. A daemonization failure exits the process
    /// with 1.
    pub fn run(mut self, run_args: RunArgs) {
        let conf = self.configuration.clone();
        if conf.daemon {
            // the shared timer thread does not survive fork(): let it restart
            pingora_timeout::fast_timeout::pause_for_fork();
            let daemonized = daemon::daemonize(&conf);
            pingora_timeout::fast_timeout::unpause();
            if let Err(e) = daemonized {
                error!("cannot daemonize: {e}");
                eprintln!("cannot daemonize: {e}");
                std::process::exit(1);
            }
        }
        if self.listen_fds.is_none() {
            // run() without bootstrap(): the process still owns a socket table
            self.listen_fds = Some(Arc::new(Mutex::new(Fds::new())));
        }

        let mut runtimes = Vec::with_capacity(self.services.len());
        for service in std::mem::take(&mut self.services) {
            let threads = service.threads().unwrap_or(conf.threads);
            match self.start_service(service, threads) {
                Ok(rt) => runtimes.push(rt),
                Err(e) => {
                    error!("{e}");
                    // keep going: the other services still serve, and the
                    // signal handling below shuts everything down cleanly
                }
            }
        }

        let shutdown_type = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(self.main_loop(run_args)),
            Err(e) => {
                error!("cannot create the server runtime, shutting down: {e}");
                ShutdownSignal::FastShutdown
            }
        };

        let timeout = match shutdown_type {
            ShutdownSignal::FastShutdown => Duration::ZERO,
            _ => Duration::from_secs(
                conf.graceful_shutdown_timeout_seconds
                    .unwrap_or(RUNTIME_SHUTDOWN_TIMEOUT),
            ),
        };
        info!("stopping {} service runtime(s)", runtimes.len());
        let stops: Vec<_> = runtimes
            .into_iter()
            .map(|rt| thread::spawn(move || rt.shutdown_timeout(timeout)))
            .collect();
        for stop in stops {
            if stop.join().is_err() {
                error!("a service runtime panicked while shutting down");
            }
        }
    }

    fn start_service(&self, mut service: Box<dyn Service>, threads: usize) -> Result<Runtime> {
        let name = service.name().to_string();
        let rt = Runtime::new(&name, threads, self.configuration.work_stealing)
            .or_err_with(ErrorType::InternalError, || {
                format!("cannot create the runtime of service {name}")
            })?;
        let fds = self.listen_fds.clone();
        let shutdown = self.shutdown_recv.clone();
        let per_fd = self.configuration.listener_tasks_per_fd;
        rt.handle().spawn(async move {
            service.start_service(fds, shutdown, per_fd).await;
            info!("service {name} exited");
        });
        Ok(rt)
    }

    /// Wait for the shutdown request, broadcast it and sit out the grace
    /// period. Returns the kind of shutdown to finish with.
    async fn main_loop(&self, run_args: RunArgs) -> ShutdownSignal {
        let signal = run_args.shutdown_signal.recv().await;
        match signal {
            ShutdownSignal::FastShutdown => {
                info!("fast shutdown requested (SIGINT), exiting");
                return signal;
            }
            ShutdownSignal::GracefulTerminate => {
                info!("graceful shutdown requested (SIGTERM)");
            }
            ShutdownSignal::GracefulUpgrade => {
                warn!(
                    "upgrade requested (SIGQUIT) but socket hand-over is not implemented yet: \
                     shutting down gracefully without handing sockets over"
                );
            }
        }
        self.broadcast_shutdown();
        let grace = self
            .configuration
            .grace_period_seconds
            .unwrap_or(EXIT_TIMEOUT);
        info!("graceful shutdown: grace period of {grace}s starts");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(grace)) => {
                info!("graceful shutdown: grace period ends");
                signal
            }
            next = run_args.shutdown_signal.recv() => {
                info!("graceful shutdown: cut short by {next:?}");
                next
            }
        }
    }

    fn broadcast_shutdown(&self) {
        match self.shutdown_watch.send(true) {
            Ok(()) => info!("graceful shutdown broadcast"),
            Err(e) => error!("graceful shutdown broadcast failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
