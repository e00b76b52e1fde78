//! The table of listening sockets a server owns, keyed by listen address.
//!
//! Listeners look their address up here before binding and record the
//! sockets they bind, so that a zero downtime upgrade (a later addition) can
//! hand the whole table to the next process.

use std::collections::HashMap;
use std::os::unix::io::RawFd;

/// Listening file descriptors by the address string they were bound to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fds {
    map: HashMap<String, RawFd>,
}

impl Fds {
    /// An empty table.
    pub fn new() -> Self {
        Fds {
            map: HashMap::new(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
