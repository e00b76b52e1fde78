//! The server process: configuration, services, runtimes, signals and the
//! zero downtime upgrade.
//!
//! A [`Server`] owns any number of [`Service`]s. [`Server::run_forever()`]
//! starts each service on its own tokio runtime and then waits for a
//! shutdown signal:
//!
//! * `SIGQUIT`: graceful upgrade. The listening sockets are handed to a new
//!   process started with `-u` (over `upgrade_sock`, see `transfer_fd`);
//!   once it confirms, this process stops accepting and drains. When no new
//!   process takes the sockets, this one logs why and keeps serving;
//! * `SIGTERM`: graceful shutdown. The server keeps accepting for
//!   `grace_period_seconds` (so load balancers can notice it is going), then
//!   stops accepting, closes its listening sockets and drains;
//! * `SIGINT`: fast shutdown, runtimes are stopped at once.
//!
//! Draining: the [`ShutdownWatch`] turns `true`; apps answer requests in
//! flight (HTTP/1 with `Connection: close`), close idle keep-alive
//! connections after [`SHUTDOWN_IDLE_TIMEOUT`], background services return,
//! and the process exits as soon as every service is done, or after
//! `graceful_shutdown_timeout_seconds` at the latest.

pub mod configuration;
mod daemon;
mod fds;
pub(crate) mod runtime;
mod transfer_fd;

use async_trait::async_trait;
use log::{debug, error, info, warn};
use pingora_error::{Error, ErrorType, OkOrErr, OrErr, Result};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tokio::signal::unix;
use tokio::sync::{oneshot, watch, Mutex};
use tokio::time::Instant;

use crate::services::Service;
use configuration::{Opt, ServerConf};
pub use fds::Fds;
use runtime::Runtime;
use transfer_fd::HandoverListener;

/// Default seconds a `SIGTERM`ed server keeps accepting before it drains.
const EXIT_TIMEOUT: u64 = 60 * 5;
/// Default seconds a graceful shutdown gives in-flight work to finish.
const RUNTIME_SHUTDOWN_TIMEOUT: u64 = 5;

/// How long after taking over an old process's sockets the ones no service
/// claimed are closed.
const UNCLAIMED_SOCKET_DELAY: Duration = Duration::from_secs(3);

/// How long, once shutdown started, a connection between two requests
/// still waits for the next one: a client that already sends it is served
/// (with `Connection: close`) instead of racing the close. Idle connections
/// are closed after this.
pub const SHUTDOWN_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Turns `true` once the server starts to shut down (stops accepting).
///
/// Services and apps watch it to stop accepting, to close idle connections,
/// to tell clients to go away (HTTP/1 `Connection: close`, HTTP/2 `GOAWAY`)
/// and, for background services, to return.
pub type ShutdownWatch = watch::Receiver<bool>;

/// The listening sockets of this process, shared by all services.
pub type ListenFds = Arc<Mutex<Fds>>;

/// Which kind of shutdown has been requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// Hand the listening sockets to a new process, then stop accepting and
    /// drain within [`ServerConf::graceful_shutdown_timeout_seconds`]. When
    /// the hand-over fails the server keeps running.
    GracefulUpgrade,
    /// Keep accepting for [`ServerConf::grace_period_seconds`], then stop
    /// accepting and drain within
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
    /// `-u`: where the old process will send its sockets.
    upgrade_listener: Option<HandoverListener>,
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
            upgrade_listener: None,
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
    /// 1 with the reason otherwise. With `-u` it starts listening on
    /// `upgrade_sock` for the old process's sockets, which [`Self::run()`]
    /// then waits for. Any failure exits the process with 1 and the reason.
    pub fn bootstrap(&mut self) {
        info!("bootstrap starting");
        debug!("{:#?}", self.options);
        match self.try_bootstrap() {
            Ok(Bootstrap::Ready) => info!("bootstrap done"),
            Ok(Bootstrap::TestPassed) => {
                info!("server test passed, exiting");
                eprintln!("configuration test passed");
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
            // also resolve what daemon mode would need, to report it now
            if conf.user.is_some() || conf.group.is_some() {
                daemon::check_identity(&conf)?;
            }
            debug!("configuration under test: {conf:?}");
            return Ok(Bootstrap::TestPassed);
        }
        if self.options.as_ref().is_some_and(|o| o.upgrade) {
            self.upgrade_listener = Some(HandoverListener::bind(&conf.upgrade_sock)?);
        }
        self.listen_fds = Some(Arc::new(Mutex::new(Fds::new())));
        Ok(Bootstrap::Ready)
    }

    /// Run with the Unix signal handlers until shut down, then exit the
    /// process with 0.
    pub fn run_forever(self) -> ! {
        info!("server starting");
        self.run_inner(RunArgs::default(), true);
        info!("all runtimes exited, exiting now");
        std::process::exit(0)
    }

    /// Run until `run_args.shutdown_signal` asks to stop and every service
    /// is done (or the drain timeout passed).
    ///
    /// With `daemon` set the process forks first: call this before starting
    /// any thread of your own. When started with `-u`, the services start
    /// once the old process handed its sockets over. A daemonization or
    /// hand-over failure exits the process with 1.
    pub fn run(self, run_args: RunArgs) {
        self.run_inner(run_args, false)
    }

    /// [`Self::run()`]; `unix_signals` installs the handlers of the Unix
    /// signals before any service starts, so that an early `SIGQUIT` or
    /// `SIGTERM` cannot kill the process with the default action.
    fn run_inner(mut self, run_args: RunArgs, unix_signals: bool) {
        let conf = self.configuration.clone();
        if conf.daemon {
            // the shared timer thread does not survive fork(): let it restart
            pingora_timeout::fast_timeout::pause_for_fork();
            let upgrade_sock = self.upgrade_listener.as_ref().map(|l| l.path());
            let daemonized = daemon::daemonize(&conf, upgrade_sock.as_slice());
            pingora_timeout::fast_timeout::unpause();
            if let Err(e) = daemonized {
                fail_exit("cannot daemonize", &e);
            }
        }
        let fds = self
            .listen_fds
            .get_or_insert_with(|| Arc::new(Mutex::new(Fds::new())))
            .clone();
        let mut upgraded = false;
        if let Some(listener) = self.upgrade_listener.take() {
            match listener.receive(fds::RECEIVE_TIMEOUT) {
                // no runtime runs yet: nothing else holds the lock
                Ok(received) => fds.blocking_lock().merge(received),
                Err(e) => fail_exit("upgrade failed", &e),
            }
            upgraded = true;
        }
        let main_rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                error!("cannot create the server runtime: {e}");
                std::process::exit(1);
            }
        };

        if unix_signals {
            main_rt.block_on(async {
                for kind in [
                    unix::SignalKind::quit(),
                    unix::SignalKind::terminate(),
                    unix::SignalKind::interrupt(),
                ] {
                    // the handler stays installed once registered
                    if let Err(e) = unix::signal(kind) {
                        error!("cannot handle signal {kind:?}: {e}");
                    }
                }
            });
        }
        let mut runtimes = Vec::with_capacity(self.services.len());
        let mut done = Vec::with_capacity(self.services.len());
        for service in std::mem::take(&mut self.services) {
            let threads = service.threads().unwrap_or(conf.threads);
            match self.start_service(service, threads) {
                Ok((rt, finished)) => {
                    runtimes.push(rt);
                    done.push(finished);
                }
                // keep going: the other services still serve, and the
                // signal handling below shuts everything down cleanly
                Err(e) => error!("{e}"),
            }
        }

        if upgraded {
            main_rt.spawn(close_unclaimed_sockets(fds));
        }
        let shutdown_type = main_rt.block_on(self.main_loop(&run_args));
        let timeout = match shutdown_type {
            ShutdownSignal::FastShutdown => Duration::ZERO,
            _ => config_secs(
                conf.graceful_shutdown_timeout_seconds
                    .unwrap_or(RUNTIME_SHUTDOWN_TIMEOUT),
            ),
        };
        let deadline = Instant::now() + timeout;
        if !timeout.is_zero() {
            info!("draining: waiting up to {timeout:?} for in-flight work");
            let waited = main_rt.block_on(async {
                tokio::select! {
                    _ = futures::future::join_all(done) => true,
                    _ = tokio::time::sleep_until(deadline) => false,
                    next = wait_for_fast(&run_args) => {
                        info!("drain cut short by {next:?}");
                        false
                    }
                }
            });
            if waited {
                info!("every service finished");
            } else {
                warn!("drain timeout: stopping services with work still in flight");
            }
        }
        // the hand-over thread (if still blocked) must not hold up the exit
        main_rt.shutdown_background();

        let left = deadline.saturating_duration_since(Instant::now());
        info!("stopping {} service runtime(s)", runtimes.len());
        let stops: Vec<_> = runtimes
            .into_iter()
            .map(|rt| thread::spawn(move || rt.shutdown_timeout(left)))
            .collect();
        for stop in stops {
            if stop.join().is_err() {
                error!("a service runtime panicked while shutting down");
            }
        }
    }

    /// Start `service` on its own runtime; the receiver resolves once the
    /// service returned (or its task ended in any other way).
    fn start_service(
        &self,
        mut service: Box<dyn Service>,
        threads: usize,
    ) -> Result<(Runtime, oneshot::Receiver<()>)> {
        let name = service.name().to_string();
        let rt = Runtime::new(&name, threads, self.configuration.work_stealing)
            .or_err_with(ErrorType::InternalError, || {
                format!("cannot create the runtime of service {name}")
            })?;
        let fds = self.listen_fds.clone();
        let shutdown = self.shutdown_recv.clone();
        let per_fd = self.configuration.listener_tasks_per_fd;
        let (finished, done) = oneshot::channel();
        rt.handle().spawn(async move {
            service.start_service(fds, shutdown, per_fd).await;
            info!("service {name} exited");
            let _ = finished.send(());
        });
        Ok((rt, done))
    }

    /// Wait for the shutdown request and carry out its first part: the
    /// grace period, or the socket hand-over. Returns the kind of shutdown
    /// to finish with; the listeners have stopped unless it is fast.
    async fn main_loop(&self, run_args: &RunArgs) -> ShutdownSignal {
        loop {
            match run_args.shutdown_signal.recv().await {
                ShutdownSignal::FastShutdown => {
                    info!("fast shutdown requested (SIGINT), exiting");
                    return ShutdownSignal::FastShutdown;
                }
                ShutdownSignal::GracefulTerminate => {
                    let grace = config_secs(
                        self.configuration
                            .grace_period_seconds
                            .unwrap_or(EXIT_TIMEOUT),
                    );
                    info!("graceful shutdown requested (SIGTERM): accepting for {grace:?} more");
                    tokio::select! {
                        _ = tokio::time::sleep(grace) => info!("grace period over"),
                        next = run_args.shutdown_signal.recv() => {
                            if next == ShutdownSignal::FastShutdown {
                                info!("grace period cut short by a fast shutdown");
                                return next;
                            }
                            info!("grace period cut short by {next:?}");
                        }
                    }
                    self.stop_accepting().await;
                    return ShutdownSignal::GracefulTerminate;
                }
                ShutdownSignal::GracefulUpgrade => {
                    info!(
                        "upgrade requested (SIGQUIT): handing the listening sockets over {}",
                        self.configuration.upgrade_sock
                    );
                    match self.hand_over(run_args).await {
                        Ok(Some(n)) => {
                            info!("the new process took {n} listening socket(s), draining");
                            self.stop_accepting().await;
                            return ShutdownSignal::GracefulUpgrade;
                        }
                        Ok(None) => return ShutdownSignal::FastShutdown,
                        Err(e) => {
                            error!("upgrade failed, this process keeps serving: {e}");
                        }
                    }
                }
            }
        }
    }

    /// Send the socket table to the new process. `Ok(None)` when a fast
    /// shutdown interrupted it.
    async fn hand_over(&self, run_args: &RunArgs) -> Result<Option<usize>> {
        let sockets = match &self.listen_fds {
            Some(fds) => fds.lock().await.entries(),
            None => vec![],
        };
        let path = self.configuration.upgrade_sock.clone();
        let send = tokio::task::spawn_blocking(move || {
            transfer_fd::send_fds(&sockets, &path, fds::CONNECT_TIMEOUT, fds::ACK_TIMEOUT)
        });
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => {
                    return sent
                        .or_err(ErrorType::InternalError, "the hand-over task failed")?
                        .map(Some);
                }
                next = run_args.shutdown_signal.recv() => {
                    if next == ShutdownSignal::FastShutdown {
                        info!("hand-over interrupted by a fast shutdown");
                        return Ok(None);
                    }
                    warn!("{next:?} ignored: a socket hand-over is in progress");
                }
            }
        }
    }

    /// Flip the shutdown watch (listeners stop accepting, apps drain) and
    /// close this process's copies of the listening sockets.
    async fn stop_accepting(&self) {
        match self.shutdown_watch.send(true) {
            Ok(()) => info!("stopped accepting; shutdown broadcast to all services"),
            Err(e) => error!("graceful shutdown broadcast failed: {e}"),
        }
        if let Some(fds) = &self.listen_fds {
            fds.lock().await.close_all();
        }
    }
}

/// Once the services had time to take their sockets, close those handed
/// over for addresses this process is not configured with.
async fn close_unclaimed_sockets(fds: ListenFds) {
    tokio::time::sleep(UNCLAIMED_SOCKET_DELAY).await;
    for addr in fds.lock().await.close_unadopted() {
        warn!("closing the socket of {addr} from the old process: no service here listens there");
    }
}

/// Resolve on a fast shutdown request; other requests are logged and
/// ignored (a shutdown is already under way).
async fn wait_for_fast(run_args: &RunArgs) -> ShutdownSignal {
    loop {
        let next = run_args.shutdown_signal.recv().await;
        if next == ShutdownSignal::FastShutdown {
            return next;
        }
        info!("{next:?} ignored: already shutting down");
    }
}

/// A duration from the configuration, capped (at ten years) so that
/// adding it to the current time cannot overflow.
fn config_secs(secs: u64) -> Duration {
    Duration::from_secs(secs.min(10 * 365 * 24 * 3600))
}

/// Log and print why the process cannot go on, and exit with 1.
fn fail_exit(what: &str, e: &Error) -> ! {
    error!("{what}: {e}");
    eprintln!("{what}: {e}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests;
