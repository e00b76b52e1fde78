//! The server's configuration: the YAML file ([`ServerConf`]) and the command
//! line ([`Opt`]).
//!
//! The file is strict: a key this version does not know, or a value of the
//! wrong type, is an error that names the key, so a typo never silently falls
//! back to a default.

use clap::Parser;
use log::debug;
use pingora_error::{Error, ErrorType::*, OrErr, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs;

/// How many times a retry-able upstream error is retried by default.
const DEFAULT_MAX_RETRIES: usize = 16;

/// Process-wide settings read from the YAML configuration file.
///
/// Every key is optional; a missing key takes the value of
/// [`ServerConf::default()`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConf {
    /// Version of the configuration format.
    pub version: usize,
    /// Run the process in the background (see also `-d`).
    pub daemon: bool,
    /// When daemonized, stdout and stderr (and so the log) are appended to
    /// this file instead of being discarded.
    pub error_log: Option<String>,
    /// Where a daemonized process writes its process id.
    pub pid_file: String,
    /// The Unix socket that the old and the new process use to hand listening
    /// sockets over during a zero downtime upgrade.
    pub upgrade_sock: String,
    /// The user a daemonized process switches to after it has started.
    pub user: Option<String>,
    /// The group a daemonized process switches to after it has started.
    pub group: Option<String>,
    /// Worker threads of **each** service; services do not share threads.
    pub threads: usize,
    /// Accept tasks per listening socket, to accept in parallel.
    pub listener_tasks_per_fd: usize,
    /// `true`: each service gets one work-stealing runtime; `false`: each
    /// worker thread runs its own single-threaded runtime.
    pub work_stealing: bool,
    /// CA file for TLS verification; `None` uses the TLS library's default.
    pub ca_file: Option<String>,
    /// Seconds a server keeps accepting (and serving normally) after
    /// `SIGTERM`, before it stops accepting and drains (default 300). A
    /// second `SIGTERM` cuts it short. Not used by upgrades (`SIGQUIT`).
    pub grace_period_seconds: Option<u64>,
    /// The longest drain, in seconds, once a server stopped accepting after
    /// `SIGTERM` or a socket hand-over: requests in flight finish, idle
    /// connections close, then the process exits; work still running after
    /// this is cancelled (default 5).
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// IPv4 addresses that upstream connections bind to (unstable).
    pub client_bind_to_ipv4: Vec<String>,
    /// IPv6 addresses that upstream connections bind to (unstable).
    pub client_bind_to_ipv6: Vec<String>,
    /// Size of the upstream keep-alive connection pool (unstable).
    pub upstream_keepalive_pool_size: usize,
    /// Number of dedicated thread pools for establishing upstream
    /// connections (unstable).
    pub upstream_connect_offload_threadpools: Option<usize>,
    /// Threads in each upstream connection pool above (unstable).
    pub upstream_connect_offload_thread_per_pool: Option<usize>,
    /// Write TLS keys to the file named by `SSLKEYLOGFILE`, for debugging
    /// (unstable).
    pub upstream_debug_ssl_keylog: bool,
    /// The most retries of a retry-able upstream error per request.
    pub max_retries: usize,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            version: 0,
            daemon: false,
            error_log: None,
            pid_file: "/tmp/pingora.pid".to_string(),
            upgrade_sock: "/tmp/pingora_upgrade.sock".to_string(),
            user: None,
            group: None,
            threads: 1,
            listener_tasks_per_fd: 1,
            work_stealing: true,
            ca_file: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
            client_bind_to_ipv4: vec![],
            client_bind_to_ipv6: vec![],
            upstream_keepalive_pool_size: 128,
            upstream_connect_offload_threadpools: None,
            upstream_connect_offload_thread_per_pool: None,
            upstream_debug_ssl_keylog: false,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

/// Command line options of a pingora server.
///
/// `Opt::parse_args()` reads them from the process's arguments.
#[derive(Parser, Debug, Default, Clone, PartialEq, Eq)]
#[clap(name = "basic", long_about = None)]
pub struct Opt {
    /// Take the listening sockets over from a running old server.
    #[clap(short, long)]
    pub upgrade: bool,

    /// Run the server in the background.
    #[clap(short, long)]
    pub daemon: bool,

    /// Accepted and ignored, so that `cargo test -- --nocapture` does not
    /// make a server under test reject its command line.
    #[clap(long, hide = true)]
    pub nocapture: bool,

    /// Check the configuration and exit: `Server::bootstrap()` exits with 0
    /// when it is valid.
    #[clap(short, long)]
    pub test: bool,

    /// Path of the YAML configuration file (see `ServerConf`).
    #[clap(short, long)]
    pub conf: Option<String>,
}

impl Opt {
    /// Parse the current process's command line (exits with usage on error).
    pub fn parse_args() -> Self {
        Opt::parse()
    }

    /// Parse the given arguments; the first one is the program name.
    pub fn parse_from_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Opt::parse_from(args)
    }
}

impl ServerConf {
    /// Read and validate the YAML file at `path`.
    ///
    /// Errors name the file, and for bad content the offending key.
    pub fn load_from_yaml<P>(path: P) -> Result<Self>
    where
        P: AsRef<std::path::Path> + std::fmt::Display,
    {
        let conf_str = fs::read_to_string(&path)
            .or_err_with(ReadError, || format!("unable to read conf file {path}"))?;
        debug!("conf file read from {path}");
        Self::from_yaml(&conf_str).map_err(|e| e.more_context(format!("conf file {path}")))
    }

    /// Load the file named by `opt.conf`, then apply the command line
    /// overrides (`-d`). Fails when `opt.conf` is `None`.
    pub fn load_yaml_with_opt_override(opt: &Opt) -> Result<Self> {
        let Some(path) = &opt.conf else {
            return Error::e_explain(ReadError, "no configuration file path specified");
        };
        let mut conf = Self::load_from_yaml(path)?;
        conf.merge_with_opt(opt);
        Ok(conf)
    }

    /// The default configuration (version 1).
    ///
    /// Returns an `Option` for API compatibility; it is always `Some`.
    pub fn new() -> Option<Self> {
        Some(ServerConf {
            version: 1,
            ..Default::default()
        })
    }

    /// [`Self::new()`] with the command line overrides of `opt` applied.
    pub fn new_with_opt_override(opt: &Opt) -> Option<Self> {
        let mut conf = Self::new()?;
        conf.merge_with_opt(opt);
        Some(conf)
    }

    /// Parse and validate a YAML document.
    ///
    /// An empty document gives the defaults.
    pub fn from_yaml(conf_str: &str) -> Result<Self> {
        // serde_yaml rejects a document with no content; treat it as "all defaults"
        let conf: ServerConf = if conf_str.trim().trim_start_matches("---").trim().is_empty() {
            ServerConf::default()
        } else {
            serde_yaml::from_str(conf_str)
                .or_err_with(ReadError, || "invalid server configuration")?
        };
        conf.validate()
    }

    /// Serialize to YAML, e.g. to write a starting configuration file.
    pub fn to_yaml(&self) -> String {
        // a struct of strings, integers, booleans and lists always serializes
        serde_yaml::to_string(self).expect("ServerConf is always serializable")
    }

    /// Check values that parse but cannot work.
    pub fn validate(self) -> Result<Self> {
        fn positive(name: &str, v: usize) -> Result<()> {
            if v == 0 {
                return Error::e_explain(
                    ReadError,
                    format!("invalid server configuration: {name} must be greater than 0"),
                );
            }
            Ok(())
        }
        positive("threads", self.threads)?;
        positive("listener_tasks_per_fd", self.listener_tasks_per_fd)?;
        if let Some(n) = self.upstream_connect_offload_threadpools {
            positive("upstream_connect_offload_threadpools", n)?;
        }
        if let Some(n) = self.upstream_connect_offload_thread_per_pool {
            positive("upstream_connect_offload_thread_per_pool", n)?;
        }
        if self.daemon && self.pid_file.is_empty() {
            return Error::e_explain(
                ReadError,
                "invalid server configuration: pid_file must not be empty when daemon is true",
            );
        }
        Ok(self)
    }

    /// Apply the command line overrides: `-d` turns daemon mode on.
    pub fn merge_with_opt(&mut self, opt: &Opt) {
        if opt.daemon {
            self.daemon = true;
        }
    }
}

#[cfg(test)]
mod tests;
