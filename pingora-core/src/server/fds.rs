//! The table of listening sockets a server owns, keyed by listen address.
//!
//! Listeners look their address up here before binding and record the
//! sockets they bind, so that a zero downtime upgrade can hand the whole
//! table to the next process (see `transfer_fd`).
//!
//! The table does not close its descriptors when dropped: the server closes
//! them with [`Fds::close_all()`] once it stops accepting. The listeners of
//! this crate record a duplicate of their socket, so closing the table never
//! closes a descriptor a listener still uses.

use pingora_error::Result;
use std::collections::{HashMap, HashSet};
use std::os::unix::io::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::transfer_fd;

/// How long [`Fds::get_from_sock()`] waits for the old process.
pub(crate) const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Fds::send_to_sock()`] waits for a new process to listen.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Fds::send_to_sock()`] waits for the new process to confirm.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Listening file descriptors by the address string they were bound to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fds {
    map: HashMap<String, RawFd>,
    /// Addresses a listener of this process uses.
    adopted: HashSet<String>,
}

impl Fds {
    /// An empty table.
    pub fn new() -> Self {
        Fds {
            map: HashMap::new(),
            adopted: HashSet::new(),
        }
    }

    /// Record that `fd` listens on `bind` (e.g. `0.0.0.0:80` or a socket path).
    pub fn add(&mut self, bind: String, fd: RawFd) {
        self.map.insert(bind, fd);
    }

    /// The socket listening on `bind`, if any.
    pub fn get(&self, bind: &str) -> Option<&RawFd> {
        self.map.get(bind)
    }

    /// How many sockets are recorded.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no socket is recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Split the table into parallel lists of addresses and descriptors, the
    /// form in which they travel over a Unix socket.
    pub fn serialize(&self) -> (Vec<String>, Vec<RawFd>) {
        self.map.iter().map(|(k, v)| (k.clone(), *v)).unzip()
    }

    /// Rebuild entries from parallel lists made by [`Self::serialize()`];
    /// extra items of the longer list are ignored.
    pub fn deserialize(&mut self, binds: Vec<String>, fds: Vec<RawFd>) {
        for (bind, fd) in binds.into_iter().zip(fds) {
            self.map.insert(bind, fd);
        }
    }

    /// Send every socket to a new process listening on the Unix socket
    /// `path` (started with `-u`) and wait for it to confirm; returns how
    /// many it took. Blocking.
    pub fn send_to_sock(&self, path: &str) -> Result<usize> {
        let sockets: Vec<(String, RawFd)> = self.map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        transfer_fd::send_fds(&sockets, path, CONNECT_TIMEOUT, ACK_TIMEOUT)
    }

    /// Listen on the Unix socket `path` and add the sockets a running old
    /// process sends there (on `SIGQUIT`). Blocking, for up to 30 seconds.
    pub fn get_from_sock(&mut self, path: &str) -> Result<()> {
        let received = transfer_fd::HandoverListener::bind(path)?.receive(RECEIVE_TIMEOUT)?;
        self.merge(received);
        Ok(())
    }

    /// Add the entries of `other`; on a clash, the descriptor of `other`
    /// wins and the replaced one is closed.
    pub(crate) fn merge(&mut self, other: Fds) {
        for (bind, fd) in other.map {
            if let Some(old) = self.map.insert(bind, fd) {
                if old != fd {
                    // SAFETY: the table owned `old` and no longer lists it
                    drop(unsafe { OwnedFd::from_raw_fd(old) });
                }
            }
        }
    }

    /// Note that a listener of this process listens on `bind`.
    pub(crate) fn mark_adopted(&mut self, bind: &str) {
        self.adopted.insert(bind.to_string());
    }

    /// Close the sockets no listener of this process took (handed over by
    /// an old process whose configuration had addresses this one lacks),
    /// so that clients are refused instead of waiting in a queue nobody
    /// accepts from. Returns their addresses.
    pub(crate) fn close_unadopted(&mut self) -> Vec<String> {
        let unused: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.adopted.contains(*k))
            .cloned()
            .collect();
        for bind in &unused {
            if let Some(fd) = self.map.remove(bind) {
                // SAFETY: the table owns its descriptors (module docs)
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        unused
    }

    /// The recorded `(address, descriptor)` pairs.
    pub(crate) fn entries(&self) -> Vec<(String, RawFd)> {
        self.map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Close every recorded descriptor and forget them all.
    ///
    /// Together with the listeners' own copies going away, this closes the
    /// listening sockets, so new connections are refused (unless another
    /// process took the sockets over).
    pub(crate) fn close_all(&mut self) {
        for (_, fd) in self.map.drain() {
            // SAFETY: the server owns the table's descriptors (see the
            // module documentation) and they are forgotten here
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn add_get_and_round_trip() {
        let mut fds = Fds::new();
        assert!(fds.is_empty());
        fds.add("127.0.0.1:80".into(), 3);
        fds.add("/tmp/a.sock".into(), 4);
        assert_eq!(fds.get("127.0.0.1:80"), Some(&3));
        assert_eq!(fds.get("nope"), None);
        let (binds, raw) = fds.serialize();
        let mut other = Fds::new();
        other.deserialize(binds, raw);
        assert_eq!(other, fds);
        assert_eq!(other.len(), 2);
    }

    #[test]
    fn unadopted_sockets_are_closed() {
        let used = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let unused_addr = unused.local_addr().expect("addr");
        let mut fds = Fds::new();
        fds.add("used".into(), used.as_raw_fd());
        fds.add("unused".into(), std::os::fd::IntoRawFd::into_raw_fd(unused));
        fds.mark_adopted("used");
        assert_eq!(fds.close_unadopted(), vec!["unused".to_string()]);
        assert_eq!(fds.len(), 1);
        assert!(std::net::TcpStream::connect(unused_addr).is_err());
        // the adopted one stays open
        assert_eq!(fds.get("used"), Some(&used.as_raw_fd()));
        // SAFETY: F_GETFD only reads the descriptor flags
        assert!(unsafe { libc::fcntl(used.as_raw_fd(), libc::F_GETFD) } >= 0);
    }
}
