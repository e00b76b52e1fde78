//! Running the server in the background: fork, new session, pid file, log
//! redirection and dropping privileges to the configured user and group.

use log::{debug, info};
use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, setgid, setsid, setuid, ForkResult, Group, User};
use pingora_error::{Error, ErrorType::*, OkOrErr, OrErr, Result};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, OwnedFd};
use std::path::Path;

use super::configuration::ServerConf;

/// Keep a previous pid file as `<path>.old` rather than silently overwrite it.
fn move_old_pid(path: &str) {
    if Path::new(path).exists() {
        let old = format!("{path}.old");
        if let Err(e) = std::fs::rename(path, &old) {
            log::warn!("could not rename old pid file {path} to {old}: {e}");
        }
    }
}

/// The uid/gid (and the user name for supplementary groups) to switch to.
struct Identity {
    user: Option<(CString, nix::unistd::Uid, nix::unistd::Gid)>,
    group: Option<nix::unistd::Gid>,
}

fn lookup_identity(conf: &ServerConf) -> Result<Identity> {
    let user = match conf.user.as_deref() {
        Some(name) => {
            let u = User::from_name(name)
                .or_err_with(InternalError, || format!("cannot look up user {name}"))?
                .or_err_with(InternalError, || format!("user {name} does not exist"))?;
            let cname = CString::new(name)
                .or_err_with(InternalError, || format!("invalid user name {name}"))?;
            Some((cname, u.uid, u.gid))
        }
        None => None,
    };
    let group = match conf.group.as_deref() {
        Some(name) => Some(
            Group::from_name(name)
                .or_err_with(InternalError, || format!("cannot look up group {name}"))?
                .or_err_with(InternalError, || format!("group {name} does not exist"))?
                .gid,
        ),
        None => None,
    };
    Ok(Identity { user, group })
}

/// Check that the configured user and group exist (for `-t`).
pub(crate) fn check_identity(conf: &ServerConf) -> Result<()> {
    lookup_identity(conf).map(|_| ())
}

/// Detach the process from its terminal and continue in a grandchild.
///
/// Everything that can fail for a reason the operator must fix (pid file,
/// error log, unknown user) is checked before forking, so the foreground
/// command fails with the reason. Must be called before any thread is
/// started: only the calling thread survives a fork.
///
/// `owned_paths` are files this process created as root that must stay
/// usable after the switch to `user` (the `-u` upgrade socket, which the
/// old process connects to): they are handed to that user too.
pub(crate) fn daemonize(conf: &ServerConf, owned_paths: &[&str]) -> Result<()> {
    let identity = lookup_identity(conf)?;
    let error_log = match conf.error_log.as_deref() {
        Some(path) => Some(
            OpenOptions::new()
                .append(true)
                .create(true)
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .or_err_with(FileOpenError, || format!("cannot open error_log {path}"))?,
        ),
        None => None,
    };
    let dev_null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .or_err(FileOpenError, "cannot open /dev/null")?;
    move_old_pid(&conf.pid_file);
    let mut pid_file = File::create(&conf.pid_file).or_err_with(FileCreateError, || {
        format!("cannot create pid_file {}", conf.pid_file)
    })?;

    info!("daemonizing, pid file {}", conf.pid_file);
    let ready = detach()?;

    // SAFETY: umask only changes the process file mode mask
    unsafe { libc::umask(0o007) };
    writeln!(pid_file, "{}", std::process::id()).or_err_with(FileWriteError, || {
        format!("cannot write pid_file {}", conf.pid_file)
    })?;

    redirect(dev_null.as_raw_fd(), libc::STDIN_FILENO)?;
    if let Some(log) = &error_log {
        redirect(log.as_raw_fd(), libc::STDOUT_FILENO)?;
        redirect(log.as_raw_fd(), libc::STDERR_FILENO)?;
    }
    std::env::set_current_dir("/").or_err(InternalError, "cannot chdir to /")?;
    drop_privileges(&identity, &pid_file, owned_paths)?;
    ready.ready();
    debug!("daemonized");
    Ok(())
}

/// Held by the daemon until it is ready; the foreground process waits for
/// it, so that the command that started the daemon returns only once the
/// pid file is written (what service managers such as systemd's
/// `Type=forking` expect), and fails when the daemon failed to start.
struct ReadySignal(OwnedFd);

impl ReadySignal {
    /// Tell the foreground process to exit with success.
    fn ready(self) {
        let mut f = File::from(self.0);
        if let Err(e) = f.write_all(&[0]) {
            log::warn!("cannot tell the foreground process the daemon is ready: {e}");
        }
    }
}

/// Fork twice with a `setsid()` between, so the survivor is in a new session
/// and can never reacquire a controlling terminal. The intermediate process
/// exits at once; the original one waits for the survivor's
/// [`ReadySignal`] and exits with 0, or with 1 if the survivor gave up.
fn detach() -> Result<ReadySignal> {
    let (ready_r, ready_w) =
        pipe2(OFlag::O_CLOEXEC).or_err(InternalError, "cannot create a pipe")?;
    // SAFETY: no other thread runs at this point (see `daemonize`), so the
    // child is a complete copy of the process.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            drop(ready_w);
            let mut byte = [1u8];
            let mut r = File::from(ready_r);
            let code = loop {
                match r.read(&mut byte) {
                    Ok(1) if byte[0] == 0 => break 0,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // end of file: the daemon exited before it was ready
                    _ => break 1,
                }
            };
            // SAFETY: _exit skips destructors and atexit handlers, which
            // belong to the daemon now.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Child) => drop(ready_r),
        Err(e) => return Error::e_because(InternalError, "fork() failed", e),
    }
    setsid().or_err(InternalError, "setsid() failed")?;
    // SAFETY: as above, a single thread
    match unsafe { fork() } {
        // SAFETY: as above
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        Err(e) => return Error::e_because(InternalError, "fork() failed", e),
    }
    Ok(ReadySignal(ready_w))
}

fn redirect(from: i32, to: i32) -> Result<()> {
    // SAFETY: both descriptors are open; dup2 atomically replaces `to`
    if unsafe { libc::dup2(from, to) } < 0 {
        return Error::e_because(
            InternalError,
            format!("dup2({from}, {to}) failed"),
            std::io::Error::last_os_error(),
        );
    }
    Ok(())
}

/// Switch to the configured user and group; only a process started as root
/// can, others keep their identity.
fn drop_privileges(id: &Identity, pid_file: &File, owned_paths: &[&str]) -> Result<()> {
    if id.user.is_none() && id.group.is_none() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        info!("not started as root: user and group settings do not apply");
        return Ok(());
    }
    let user_gid = id.user.as_ref().map(|u| u.2);
    if let Some((_, uid, _)) = &id.user {
        std::os::unix::fs::fchown(
            pid_file,
            Some(uid.as_raw()),
            id.group.or(user_gid).map(|g| g.as_raw()),
        )
        .or_err(InternalError, "cannot chown pid file")?;
        for path in owned_paths {
            std::os::unix::fs::chown(
                path,
                Some(uid.as_raw()),
                id.group.or(user_gid).map(|g| g.as_raw()),
            )
            .or_err_with(InternalError, || format!("cannot chown {path}"))?;
        }
    }
    if let Some((name, _, gid)) = &id.user {
        // SAFETY: name is a valid NUL terminated string
        if unsafe { libc::initgroups(name.as_ptr(), gid.as_raw()) } != 0 {
            return Error::e_because(
                InternalError,
                "initgroups() failed",
                std::io::Error::last_os_error(),
            );
        }
    }
    if let Some(gid) = id.group.or(user_gid) {
        setgid(gid).or_err(InternalError, "setgid() failed")?;
    }
    if let Some((_, uid, _)) = &id.user {
        setuid(*uid).or_err(InternalError, "setuid() failed")?;
    }
    Ok(())
}
