//! Handing listening sockets from a running (old) server process to its
//! replacement (new) during a zero downtime upgrade.
//!
//! The new process, started with `-u`, listens on the `upgrade_sock` path
//! with a `SOCK_SEQPACKET` Unix socket. On `SIGQUIT` the old process connects
//! to it and sends its socket table as one or more messages, each carrying
//! up to [`MAX_FDS_PER_MSG`] descriptors as `SCM_RIGHTS` ancillary data plus
//! the listen address of each, in the same order:
//!
//! ```text
//! batch: "PGFD" version:u8 last:u8 count:u16 { len:u16 address[len] } * count
//! ack:   "PGOK" total:u32
//! ```
//!
//! The new process answers with an ack naming how many sockets it took; the
//! old one only stops accepting once it has that ack, so a failed hand-over
//! never leaves the listening sockets without an owner. Sequenced packets
//! keep message boundaries, so a batch always arrives whole with its
//! descriptors. Integers are big-endian.

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::sys::socket::{
    accept4, bind, connect, listen, recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily,
    Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::time::TimeVal;
use pingora_error::{Error, ErrorType::InternalError, OrErr, Result};
use std::io::{IoSlice, IoSliceMut};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::Fds;

const MAGIC_BATCH: &[u8; 4] = b"PGFD";
const MAGIC_ACK: &[u8; 4] = b"PGOK";
const VERSION: u8 = 1;
/// Descriptors per message, well below the kernel's limit of 253.
pub(crate) const MAX_FDS_PER_MSG: usize = 64;
/// The largest batch message accepted.
const MAX_MSG: usize = 64 * 1024;
/// How often the old process retries connecting to a new one that is not
/// listening yet.
const CONNECT_RETRY_STEP: Duration = Duration::from_millis(100);
/// How long the new process waits for each message once the old one is
/// connected.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

fn err(context: String, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Box<Error> {
    Error::because(InternalError, context, e)
}

fn set_timeouts(fd: &OwnedFd, timeout: Duration) -> Result<()> {
    // a zero timeval means "block forever": never pass one
    let t = timeout.max(Duration::from_millis(1));
    let tv = TimeVal::from(libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    });
    setsockopt(fd, sockopt::ReceiveTimeout, &tv)
        .map_err(|e| err("cannot set SO_RCVTIMEO on the upgrade socket".into(), e))?;
    setsockopt(fd, sockopt::SendTimeout, &tv)
        .map_err(|e| err("cannot set SO_SNDTIMEO on the upgrade socket".into(), e))
}

fn seqpacket() -> Result<OwnedFd> {
    socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| err("cannot create the upgrade socket".into(), e))
}

/// Encode one batch of addresses (the descriptors travel beside it).
fn encode_batch(addrs: &[&str], last: bool) -> Result<Vec<u8>> {
    let mut msg = Vec::with_capacity(8 + addrs.iter().map(|a| a.len() + 2).sum::<usize>());
    msg.extend_from_slice(MAGIC_BATCH);
    msg.push(VERSION);
    msg.push(u8::from(last));
    let count = u16::try_from(addrs.len()).or_err(InternalError, "too many sockets in a batch")?;
    msg.extend_from_slice(&count.to_be_bytes());
    for a in addrs {
        let len = u16::try_from(a.len())
            .or_err_with(InternalError, || format!("listen address too long: {a}"))?;
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(a.as_bytes());
    }
    if msg.len() > MAX_MSG {
        return Error::e_explain(InternalError, "socket hand-over message too large");
    }
    Ok(msg)
}

/// Decode a batch: `(last, addresses)`.
fn decode_batch(msg: &[u8]) -> Result<(bool, Vec<String>)> {
    fn bad<T>(why: &str) -> Result<T> {
        Error::e_explain(
            InternalError,
            format!("malformed socket hand-over message: {why}"),
        )
    }
    if msg.len() < 8 || &msg[..4] != MAGIC_BATCH {
        return bad("not a hand-over message (wrong magic)");
    }
    if msg[4] != VERSION {
        return bad(&format!("version {} is not {VERSION}", msg[4]));
    }
    let last = match msg[5] {
        0 => false,
        1 => true,
        _ => return bad("invalid last flag"),
    };
    let count = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let mut rest = &msg[8..];
    let mut addrs = Vec::with_capacity(count);
    for _ in 0..count {
        if rest.len() < 2 {
            return bad("truncated address length");
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        if rest.len() < len {
            return bad("truncated address");
        }
        let Ok(addr) = std::str::from_utf8(&rest[..len]) else {
            return bad("address is not UTF-8");
        };
        addrs.push(addr.to_string());
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return bad("trailing bytes");
    }
    Ok((last, addrs))
}

/// The new process's end: a listening Unix socket at `upgrade_sock` that
/// the old process connects to.
#[derive(Debug)]
pub(crate) struct HandoverListener {
    sock: OwnedFd,
    path: String,
    /// (device, inode) of the socket file we created, so that only our own
    /// file is ever removed.
    file_id: Option<(u64, u64)>,
}

impl HandoverListener {
    /// Listen at `path`, replacing a stale socket file left there.
    pub(crate) fn bind(path: &str) -> Result<Self> {
        let addr =
            UnixAddr::new(path).map_err(|e| err(format!("invalid upgrade_sock path {path}"), e))?;
        match std::fs::remove_file(path) {
            Ok(()) => debug!("removed stale upgrade socket {path}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Error::e_because(InternalError, format!("cannot remove {path}"), e),
        }
        let sock = seqpacket()?;
        bind(sock.as_raw_fd(), &addr)
            .map_err(|e| err(format!("cannot bind the upgrade socket {path}"), e))?;
        listen(&sock, Backlog::new(8).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| err(format!("cannot listen on the upgrade socket {path}"), e))?;
        // only this user (and root) may connect and hand sockets over
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .or_err_with(InternalError, || format!("cannot set the mode of {path}"))?;
        let file_id = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        info!("waiting for the listening sockets of the old process on {path}");
        Ok(HandoverListener {
            sock,
            path: path.to_string(),
            file_id,
        })
    }

    /// The socket file's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Wait up to `within` for the old process, take its sockets and
    /// acknowledge them.
    pub(crate) fn receive(self, within: Duration) -> Result<Fds> {
        let conn = self.accept(within)?;
        check_peer(&conn)?;
        set_timeouts(&conn, MESSAGE_TIMEOUT)?;
        let mut fds = Fds::new();
        let mut total: u32 = 0;
        loop {
            let (last, batch) = recv_batch(&conn)?;
            for (addr, fd) in batch {
                debug!("received listening socket {addr} (fd {})", fd.as_raw_fd());
                if let Some(old) = fds.get(&addr).copied() {
                    // SAFETY: `old` came from `into_raw_fd` below and is
                    // owned by nothing else
                    drop(unsafe { OwnedFd::from_raw_fd(old) });
                }
                fds.add(addr, fd.into_raw_fd());
                total = total.saturating_add(1);
            }
            if last {
                break;
            }
        }
        let mut ack = Vec::with_capacity(8);
        ack.extend_from_slice(MAGIC_ACK);
        ack.extend_from_slice(&total.to_be_bytes());
        if let Err(e) = sendmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &[IoSlice::new(&ack)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            // keep what was received: the old process will keep serving too
            warn!("cannot acknowledge the received sockets: {e}");
        }
        info!("received {total} listening socket(s) from the old process");
        Ok(fds)
    }

    fn accept(&self, within: Duration) -> Result<OwnedFd> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Error::e_explain(
                    InternalError,
                    format!(
                        "no running server handed its listening sockets over {} within {}s \
                         (send SIGQUIT to the old process once this one is started)",
                        self.path,
                        within.as_secs()
                    ),
                );
            }
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd, for the duration of the call
            let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
            if ready < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Error::e_because(InternalError, "poll() on the upgrade socket failed", e);
            }
            if ready == 0 {
                continue;
            }
            match accept4(self.sock.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor that nothing owns
                Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(Errno::EINTR | Errno::EAGAIN | Errno::ECONNABORTED) => continue,
                Err(e) => return Err(err("accept() on the upgrade socket failed".into(), e)),
            }
        }
    }
}

impl Drop for HandoverListener {
    fn drop(&mut self) {
        let ours = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file_id {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!("cannot remove the upgrade socket {}: {e}", self.path);
            }
        }
    }
}

/// Accept sockets only from a process of the same user, or root: the
/// socket file's mode already says so, this also covers a file whose mode
/// was changed.
fn check_peer(conn: &OwnedFd) -> Result<()> {
    let cred = nix::sys::socket::getsockopt(conn, sockopt::PeerCredentials).map_err(|e| {
        err(
            "cannot identify the process on the upgrade socket".into(),
            e,
        )
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() != me && cred.uid() != 0 {
        return Error::e_explain(
            InternalError,
            format!(
                "refusing sockets from process {} of user {} (this process runs as {me})",
                cred.pid(),
                cred.uid()
            ),
        );
    }
    Ok(())
}

/// Receive one batch; the descriptors are owned until handed to the table.
fn recv_batch(conn: &OwnedFd) -> Result<(bool, Vec<(String, OwnedFd)>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS_PER_MSG]);
    let (bytes, flags, mut fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| match e {
            Errno::EAGAIN => err(
                "the old process stopped sending its sockets".into(),
                "timed out",
            ),
            e => err("cannot receive sockets from the old process".into(), e),
        })?;
        let mut fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel installed these descriptors for us
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        (msg.bytes, msg.flags, fds)
    };
    if bytes == 0 {
        return Error::e_explain(
            InternalError,
            "the old process closed the upgrade socket before sending all sockets",
        );
    }
    if flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
        return Error::e_explain(InternalError, "a socket hand-over message was truncated");
    }
    let (last, addrs) = decode_batch(&buf[..bytes])?;
    if addrs.len() != fds.len() {
        return Error::e_explain(
            InternalError,
            format!(
                "socket hand-over message names {} sockets but carries {}",
                addrs.len(),
                fds.len()
            ),
        );
    }
    // keep the order: the n-th address goes with the n-th descriptor
    let batch = addrs.into_iter().zip(fds.drain(..)).collect();
    Ok((last, batch))
}

/// Connect to the new process at `path`, retrying while it is not listening
/// yet, for up to `within`.
fn connect_new(path: &str, within: Duration) -> Result<OwnedFd> {
    let addr =
        UnixAddr::new(path).map_err(|e| err(format!("invalid upgrade_sock path {path}"), e))?;
    let deadline = Instant::now() + within;
    loop {
        let sock = seqpacket()?;
        match connect(sock.as_raw_fd(), &addr) {
            Ok(()) => return Ok(sock),
            Err(e @ (Errno::ENOENT | Errno::ECONNREFUSED | Errno::EAGAIN)) => {
                if Instant::now() >= deadline {
                    return Err(err(
                        format!(
                            "no new process is listening on {path} (start it with -u before \
                             sending SIGQUIT); gave up after {}s",
                            within.as_secs()
                        ),
                        e,
                    ));
                }
                std::thread::sleep(CONNECT_RETRY_STEP);
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(err(
                    format!("cannot connect to the new process at {path}"),
                    e,
                ))
            }
        }
    }
}

/// Send `sockets` to the new process listening at `path` and wait for its
/// acknowledgement. Blocking. `connect_within` bounds the wait for the new
/// process to listen, `ack_within` the exchange after that. Returns how many
/// sockets the new process took.
pub(crate) fn send_fds(
    sockets: &[(String, RawFd)],
    path: &str,
    connect_within: Duration,
    ack_within: Duration,
) -> Result<usize> {
    let conn = connect_new(path, connect_within)?;
    set_timeouts(&conn, ack_within)?;
    let chunks: Vec<_> = sockets.chunks(MAX_FDS_PER_MSG).collect();
    let n_chunks = chunks.len().max(1);
    for i in 0..n_chunks {
        let chunk: &[(String, RawFd)] = chunks.get(i).copied().unwrap_or(&[]);
        let addrs: Vec<&str> = chunk.iter().map(|(a, _)| a.as_str()).collect();
        let raw: Vec<RawFd> = chunk.iter().map(|(_, fd)| *fd).collect();
        let msg = encode_batch(&addrs, i + 1 == n_chunks)?;
        let rights = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
        let sent = sendmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &[IoSlice::new(&msg)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| {
            err(
                format!("cannot send sockets to the new process at {path}"),
                e,
            )
        })?;
        if sent != msg.len() {
            return Error::e_explain(InternalError, "a socket hand-over message was cut short");
        }
    }
    let mut ack = [0u8; 8];
    let mut iov = [IoSliceMut::new(&mut ack)];
    let got = recvmsg::<()>(conn.as_raw_fd(), &mut iov, None, MsgFlags::empty())
        .map_err(|e| {
            err(
                format!("the new process at {path} did not acknowledge the sockets"),
                e,
            )
        })?
        .bytes;
    if got != ack.len() || &ack[..4] != MAGIC_ACK {
        return Error::e_explain(
            InternalError,
            format!("the new process at {path} did not acknowledge the sockets (got {got} bytes)"),
        );
    }
    let taken = u32::from_be_bytes([ack[4], ack[5], ack[6], ack[7]]) as usize;
    if taken != sockets.len() {
        return Error::e_explain(
            InternalError,
            format!("the new process took {taken} of {} sockets", sockets.len()),
        );
    }
    Ok(taken)
}

/// Whether `fd` is open (used by tests and sanity checks).
#[cfg(test)]
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn batch_round_trip_and_garbage() {
        let m = encode_batch(&["127.0.0.1:80", "/tmp/x.sock"], true).expect("encode");
        let (last, addrs) = decode_batch(&m).expect("decode");
        assert!(last);
        assert_eq!(addrs, vec!["127.0.0.1:80", "/tmp/x.sock"]);
        for cut in 0..m.len() {
            assert!(decode_batch(&m[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = m.clone();
        bad[0] = b'X';
        assert!(decode_batch(&bad).is_err());
        let mut extra = m.clone();
        extra.push(0);
        assert!(decode_batch(&extra).is_err());
    }

    #[test]
    fn sockets_travel_between_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("up.sock").display().to_string();
        // more sockets than fit in one message
        let listeners: Vec<std::net::TcpListener> = (0..MAX_FDS_PER_MSG + 3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let table: Vec<(String, RawFd)> = listeners
            .iter()
            .map(|l| (l.local_addr().expect("addr").to_string(), l.as_raw_fd()))
            .collect();
        let receiver = HandoverListener::bind(&path).expect("listen");
        let sender = {
            let table = table.clone();
            let path = path.clone();
            std::thread::spawn(move || {
                send_fds(
                    &table,
                    &path,
                    Duration::from_secs(5),
                    Duration::from_secs(5),
                )
            })
        };
        let fds = receiver.receive(Duration::from_secs(5)).expect("received");
        assert_eq!(sender.join().expect("thread").expect("sent"), table.len());
        assert_eq!(fds.len(), table.len());
        assert!(!std::path::Path::new(&path).exists(), "socket file removed");
        // each received descriptor is the same listening socket
        for (addr, old_fd) in &table {
            let fd = *fds.get(addr).expect("address present");
            assert_ne!(fd, *old_fd);
            // SAFETY: the received descriptor is owned by this test now
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            assert_eq!(l.local_addr().expect("addr").to_string(), *addr);
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            let (mut s, _) = l.accept().expect("accept on the received socket");
            s.write_all(b"ok").expect("write");
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).expect("read");
            assert_eq!(&buf, b"ok");
            drop(l);
            assert!(!is_open(fd));
        }
    }

    #[test]
    fn nobody_listening_is_reported_in_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("none.sock").display().to_string();
        let start = Instant::now();
        let e = send_fds(
            &[],
            &path,
            Duration::from_millis(300),
            Duration::from_secs(1),
        )
        .expect_err("nobody there");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(e.to_string().contains("no new process is listening"), "{e}");
    }

    #[test]
    fn receiver_times_out_without_old_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lonely.sock").display().to_string();
        let receiver = HandoverListener::bind(&path).expect("listen");
        let e = receiver
            .receive(Duration::from_millis(200))
            .expect_err("nobody sends");
        assert!(e.to_string().contains("SIGQUIT"), "{e}");
        assert!(!std::path::Path::new(&path).exists());
    }

    #[test]
    fn garbage_sender_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.sock").display().to_string();
        let receiver = HandoverListener::bind(&path).expect("listen");
        let conn = connect_new(&path, Duration::from_secs(1)).expect("connect");
        sendmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &[IoSlice::new(b"hello there")],
            &[],
            MsgFlags::empty(),
            None,
        )
        .expect("send");
        let e = receiver
            .receive(Duration::from_secs(2))
            .expect_err("garbage");
        assert!(e.to_string().contains("malformed"), "{e}");
        drop(conn);
    }
}
