//! Keeping released streams healthy while pooled, and vetting them before
//! reuse.

use crate::protocols::Stream;
use futures::FutureExt;
use log::debug;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// A pooled stream. The pool's idle watcher reads from it to notice the
/// upstream closing or talking; any completed read marks it disturbed, so a
/// stream whose watcher consumed (or hit the end of) data is never reused even
/// if it was checked out at the same moment.
#[derive(Debug)]
pub(crate) struct IdleStream {
    stream: Stream,
    disturbed: bool,
}

impl IdleStream {
    pub fn new(stream: Stream) -> Self {
        IdleStream {
            stream,
            disturbed: false,
        }
    }

    /// The stream, unless the idle watcher saw anything happen on it.
    pub fn into_undisturbed(self) -> Option<Stream> {
        if self.disturbed {
            debug!("pooled stream saw activity while idle, discarding it");
            None
        } else {
            Some(self.stream)
        }
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.stream).poll_read(cx, buf);
        if res.is_ready() {
            self.disturbed = true;
        }
        res
    }
}

/// What a non-blocking look at an idle socket found.
enum Probe {
    Idle,
    Gone,
    Unknown,
}

/// Peek at the socket without blocking or consuming anything.
fn probe_socket(fd: i32) -> Probe {
    use nix::errno::Errno;
    use nix::sys::socket::{recv, MsgFlags};
    let mut buf = [0u8; 1];
    match recv(fd, &mut buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Err(Errno::EAGAIN) => Probe::Idle,
        Err(Errno::ENOTSOCK) | Err(Errno::EBADF) => Probe::Unknown,
        Ok(0) => {
            debug!("idle upstream connection was closed");
            Probe::Gone
        }
        Ok(_) => {
            debug!("unexpected data on idle upstream connection");
            Probe::Gone
        }
        Err(e) => {
            debug!("idle upstream connection is broken: {e}");
            Probe::Gone
        }
    }
}

/// Whether an idle stream may be (re)used: the upstream has neither closed it
/// nor sent anything (an idle HTTP/1 server never speaks first).
pub(crate) fn test_reusable_stream(stream: &mut Stream) -> bool {
    match probe_socket(stream.id()) {
        Probe::Idle => true,
        Probe::Gone => false,
        // Not a socket (e.g. a test double): try one read without waiting.
        Probe::Unknown => {
            let mut buf = [0u8; 1];
            match stream.read(&mut buf).now_or_never() {
                None => true,
                Some(res) => {
                    debug!("idle stream not reusable: {res:?}");
                    false
                }
            }
        }
    }
}
