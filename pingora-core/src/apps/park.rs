//! Parking idle HTTP/1 keep-alive connections.
//!
//! A kept-alive connection that has waited [`PARK_AFTER`] for its next request is unlikely to
//! get one soon, yet its task and its runtime registration (~0.5 KiB together) would stay for
//! the whole keep-alive timeout. So it is parked: its task ends, its socket leaves the runtime,
//! and what it needs to be served again (the socket, its keep-alive deadline, the settings
//! carried to the next request, its count in the service's connection tracker) waits in a
//! compact entry of the service's [`ParkLot`]. One epoll instance, registered once with the
//! runtime, watches all parked sockets; when one turns readable (and is not at its end) the lot
//! spawns a fresh task that serves the request exactly as the old task would have. A sweep
//! every [`SWEEP_EVERY`] closes the connections past their deadline, and at shutdown the lot
//! closes them all after the same grace as unparked idle connections get
//! ([`SHUTDOWN_IDLE_TIMEOUT`]).
//!
//! Only plain TCP and Unix connections with nothing buffered are parked (TLS state, HTTP/2
//! connections and bytes put back on a stream cannot be kept in an entry).

use log::{debug, error};
use parking_lot::Mutex;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

use super::HttpPersistentSettings;
use crate::protocols::l4::stream::{ParkedSocket, Stream as L4Stream};
use crate::protocols::Stream;
use crate::server::runtime::current_handle;
use crate::server::{ShutdownWatch, SHUTDOWN_IDLE_TIMEOUT};
use crate::services::listening::ConnGuard;

/// How long a kept-alive connection waits for its next request in its own task before it is
/// parked. Well above the gaps between the requests of a busy client (milliseconds), so a
/// busy connection is never parked and pays nothing for parking (its wait has a timer anyway:
/// this one replaces the keep-alive timer while it is the sooner); short enough that idle
/// connections give their memory back quickly. A resume costs a task spawn and four
/// `epoll_ctl` calls, nothing next to half a second of idleness.
pub(super) const PARK_AFTER: Duration = Duration::from_millis(500);
/// How often the lot closes parked connections past their keep-alive deadline.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A connection is parked only when it may stay idle at least this much longer, so that the
/// sweep's lateness (up to [`SWEEP_EVERY`]) stays small next to its keep-alive timeout.
pub(super) const MIN_PARKED: Duration = SWEEP_EVERY;
/// Events taken from the lot's epoll instance per call.
const EVENTS_PER_WAIT: usize = 256;

/// What a connection carries to its next request: `None` before its first request, then the
/// settings the last session handed over.
pub(super) type Carried = Option<Option<HttpPersistentSettings>>;

/// A connection of a listening service, as its task holds it: its count in the service's
/// connection tracker, which goes with it when it is parked. (Internal: only the listening
/// service makes one.)
#[doc(hidden)]
#[derive(Debug)]
pub struct ServiceConn {
    guard: Option<ConnGuard>,
}

impl ServiceConn {
    /// A connection counted by `guard`.
    pub(crate) fn new(guard: ConnGuard) -> Self {
        ServiceConn { guard: Some(guard) }
    }

    /// A connection served outside of a listening service: never parked.
    pub(super) fn detached() -> Self {
        ServiceConn { guard: None }
    }

    /// Whether this connection could be parked: it belongs to a listening service and is a
    /// plain socket.
    pub(super) fn can_park(&self, stream: &Stream) -> bool {
        self.guard.is_some() && stream.as_any().is::<L4Stream>()
    }
}

/// The outcome of [`park`].
pub(super) enum Parking {
    /// The lot has the connection now.
    Parked,
    /// The connection stays with the caller (the lot is closed, or the stream has state that
    /// parking would lose).
    Kept(Stream),
    /// The connection was lost on the way (its socket could not be taken out of the runtime
    /// or put back): it is closed.
    Closed,
}

/// Park `stream` in the lot of its service (made on first use, serving `app`). `idle_left`:
/// how much longer it may stay idle (`None`: no limit). On success `carried` is taken.
pub(super) fn park<T>(
    app: &Arc<T>,
    shutdown: &ShutdownWatch,
    conn: &mut ServiceConn,
    stream: Stream,
    carried: &mut Carried,
    idle_left: Option<Duration>,
) -> Parking
where
    T: super::HttpServerApp + Send + Sync + 'static,
{
    let Some(guard) = conn.guard.as_ref() else {
        return Parking::Kept(stream);
    };
    let plain = stream
        .as_any()
        .downcast_ref::<L4Stream>()
        .is_some_and(L4Stream::parkable);
    if !plain {
        return Parking::Kept(stream);
    }
    let Some(lot) = guard
        .tracker()
        .park_lot(|| ParkLot::start(app.clone(), shutdown.clone()))
    else {
        return Parking::Kept(stream);
    };
    let Ok(l4) = stream.into_any().downcast::<L4Stream>() else {
        // cannot happen: the type was checked above, and the stream is gone either way
        return Parking::Closed;
    };
    let sock = match l4.into_parked() {
        Ok(sock) => sock,
        Err(e) => {
            debug!("could not park an idle connection: {e}");
            return Parking::Closed;
        }
    };
    let Some(guard) = conn.guard.take() else {
        // cannot happen: checked at the top
        return Parking::Closed;
    };
    let entry = Entry {
        sock,
        deadline_ms: idle_left.map_or(u64::MAX, |left| lot.deadline(left)),
        carried: carried.take(),
        guard,
    };
    match lot.insert(entry) {
        Ok(()) => Parking::Parked,
        Err(entry) => {
            conn.guard = Some(entry.guard);
            *carried = entry.carried;
            match L4Stream::from_parked(entry.sock) {
                Ok(s) => Parking::Kept(Box::new(s)),
                Err(e) => {
                    debug!("could not take back an idle connection: {e}");
                    Parking::Closed
                }
            }
        }
    }
}

/// A parked connection.
struct Entry {
    sock: ParkedSocket,
    /// Milliseconds since the lot's epoch; `u64::MAX`: no limit.
    deadline_ms: u64,
    carried: Carried,
    guard: ConnGuard,
}

/// A parked connection whose client sent something: what its new task needs.
pub(super) struct Resumed {
    pub(super) sock: ParkedSocket,
    pub(super) carried: Carried,
    pub(super) guard: ConnGuard,
}

/// Starts the task serving a resumed connection.
type Resume = Box<dyn Fn(Resumed) + Send + Sync>;

/// The parked connections of one listening service (see the module documentation).
pub(crate) struct ParkLot {
    epoll: AsyncFd<OwnedFd>,
    table: Mutex<Table>,
    epoch: Instant,
    resume: Resume,
    shutdown: ShutdownWatch,
}

impl ParkLot {
    /// A lot whose resumed connections are served by `app`, driven by a task on the current
    /// runtime (which owns it). `None` (logged) when no epoll instance could be made.
    fn start<T>(app: Arc<T>, shutdown: ShutdownWatch) -> Option<Arc<ParkLot>>
    where
        T: super::HttpServerApp + Send + Sync + 'static,
    {
        let epoll = match new_epoll() {
            Ok(fd) => fd,
            Err(e) => {
                error!("idle connections will not be parked: {e}");
                return None;
            }
        };
        let resume_shutdown = shutdown.clone();
        let resume: Resume = Box::new(move |resumed| {
            let app = app.clone();
            let shutdown = resume_shutdown.clone();
            current_handle().spawn(super::serve_resumed(app, shutdown, resumed));
        });
        let lot = Arc::new(ParkLot {
            epoll,
            table: Mutex::new(Table::default()),
            epoch: Instant::now(),
            resume,
            shutdown,
        });
        tokio::spawn(drive(lot.clone()));
        Some(lot)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The deadline of a connection that may stay idle `left` longer.
    fn deadline(&self, left: Duration) -> u64 {
        let left = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        self.now_ms().saturating_add(left)
    }

    fn epfd(&self) -> RawFd {
        self.epoll.get_ref().as_raw_fd()
    }

    /// Put `entry` in the table and watch its socket; the entry comes back when the lot is
    /// closed or the socket cannot be watched.
    fn insert(&self, entry: Entry) -> Result<(), Entry> {
        let mut table = self.table.lock();
        if table.closed {
            return Err(entry);
        }
        let fd = entry.sock.raw_fd();
        let slot = table.vacant();
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: key(slot, fd),
        };
        // under the lock: the driver must not see the event before the entry is in its slot
        // SAFETY: both descriptors are open (owned by `self` and `entry`); `event` is valid
        if unsafe { libc::epoll_ctl(self.epfd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            debug!(
                "cannot watch a parked socket: {}",
                io::Error::last_os_error()
            );
            return Err(entry);
        }
        table.put(slot, entry);
        Ok(())
    }

    /// Take the ready connections out of the epoll instance and resume them. `true` when no
    /// more events are pending.
    fn drain(&self, events: &mut [libc::epoll_event]) -> bool {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: `events` has room for `max` events; a zero timeout never blocks
        let n = unsafe { libc::epoll_wait(self.epfd(), events.as_mut_ptr(), max, 0) };
        let Ok(n) = usize::try_from(n) else {
            let e = io::Error::last_os_error();
            // interrupted: the readiness is left set, so the driver comes back at once
            if e.kind() != io::ErrorKind::Interrupted {
                error!("waiting for parked connections failed: {e}");
            }
            return e.kind() != io::ErrorKind::Interrupted;
        };
        for event in &events[..n] {
            self.wake(event.u64);
        }
        n < events.len()
    }

    /// The socket of `key` turned readable (request bytes, end of stream or error).
    fn wake(&self, key: u64) {
        let (slot, fd) = unkey(key);
        let Some(entry) = self.table.lock().take(slot, fd) else {
            return;
        };
        // SAFETY: `fd` is open (owned by `entry`); a failure leaves a registration that the
        // socket's close or re-registration clears
        unsafe { libc::epoll_ctl(self.epfd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        // peeked, not read: the resumed task reads the request as any waiting connection does
        let mut first = 0u8;
        // SAFETY: `fd` is an open non-blocking socket; `first` has room for one byte
        let n = unsafe { libc::recv(fd, (&raw mut first).cast(), 1, libc::MSG_PEEK) };
        match usize::try_from(n) {
            // the client closed its idle connection: close ours without a task
            Ok(0) => drop(entry),
            Ok(_) => (self.resume)(Resumed {
                sock: entry.sock,
                carried: entry.carried,
                guard: entry.guard,
            }),
            Err(_) => {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    // nothing to read after all: back to waiting (closed if the lot is)
                    drop(self.insert(entry));
                } else {
                    debug!("read error on a parked connection: {e}");
                }
            }
        }
    }

    /// Close the connections past their deadline.
    fn sweep(&self) {
        let now = self.now_ms();
        let expired = self.table.lock().take_where(|e| e.deadline_ms <= now);
        if !expired.is_empty() {
            debug!("closing {} parked idle connection(s)", expired.len());
        }
        // outside the lock: closing sockets and counting them finished
        drop(expired);
    }

    /// Close every parked connection and refuse new ones.
    fn close_all(&self) {
        let all = {
            let mut table = self.table.lock();
            table.closed = true;
            table.take_where(|_| true)
        };
        if !all.is_empty() {
            debug!("shutting down: closing {} parked connection(s)", all.len());
        }
        drop(all);
    }
}

/// The lot's task: resumes connections whose sockets turn readable, sweeps expired ones, and
/// at shutdown closes them all after the grace idle connections get. Ends then (or when the
/// runtime stops), and with it the lot.
async fn drive(lot: Arc<ParkLot>) {
    let mut shutdown = lot.shutdown.clone();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    let mut close_at = (*shutdown.borrow_and_update())
        .then(|| tokio::time::Instant::now() + SHUTDOWN_IDLE_TIMEOUT);
    let mut next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
    loop {
        let wake_at = close_at.map_or(next_sweep, |at| at.min(next_sweep));
        tokio::select! {
            ready = lot.epoll.readable() => match ready {
                Ok(mut ready) => {
                    if lot.drain(&mut events) {
                        ready.clear_ready();
                    }
                }
                Err(e) => {
                    error!("parked connections cannot be watched: {e}");
                    break;
                }
            },
            changed = shutdown.changed(), if close_at.is_none() => {
                // a closed watch: the server is gone, nothing will ask for these connections
                if changed.is_err() || *shutdown.borrow_and_update() {
                    close_at = Some(tokio::time::Instant::now() + SHUTDOWN_IDLE_TIMEOUT);
                }
            }
            () = tokio::time::sleep_until(wake_at) => {
                if close_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
                    break;
                }
                lot.sweep();
                next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
            }
        }
    }
    lot.close_all();
}

fn new_epoll() -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: plain syscall; the descriptor is owned right away
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the `AsyncFd` owns the descriptor, which stays open and unchanged until it drops
    let registered = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
    Ok(registered?)
}

/// The event key of a socket: its slot, and its descriptor to catch a stale event.
fn key(slot: u32, fd: RawFd) -> u64 {
    (u64::from(fd as u32) << 32) | u64::from(slot)
}

fn unkey(key: u64) -> (u32, RawFd) {
    (key as u32, (key >> 32) as u32 as RawFd)
}

/// The entries of a lot: a slab (a vector of slots with a free list through the empty ones),
/// so that an entry costs its size and an event finds it by index.
#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    /// The first empty slot, if any.
    free: Option<u32>,
    used: usize,
    /// Set at shutdown: no more entries.
    closed: bool,
}

enum Slot {
    Used(Entry),
    /// Empty, with the next empty slot.
    Free(Option<u32>),
}

impl Table {
    /// The slot the next [`Self::put`] fills.
    fn vacant(&self) -> u32 {
        self.free
            .unwrap_or_else(|| u32::try_from(self.slots.len()).unwrap_or(u32::MAX))
    }

    /// Fill the slot [`Self::vacant`] named.
    fn put(&mut self, slot: u32, entry: Entry) {
        let i = slot as usize;
        if i == self.slots.len() {
            self.slots.push(Slot::Used(entry));
        } else if let Some(Slot::Free(next)) = self.slots.get(i) {
            self.free = *next;
            self.slots[i] = Slot::Used(entry);
        }
        self.used += 1;
    }

    /// Take the entry of `slot` if it is the one of socket `fd`.
    fn take(&mut self, slot: u32, fd: RawFd) -> Option<Entry> {
        let i = slot as usize;
        match self.slots.get(i) {
            Some(Slot::Used(e)) if e.sock.raw_fd() == fd => {}
            _ => return None,
        }
        let taken = std::mem::replace(&mut self.slots[i], Slot::Free(self.free));
        self.free = Some(slot);
        self.used -= 1;
        let Slot::Used(entry) = taken else {
            return None;
        };
        self.shrink_if_empty();
        Some(entry)
    }

    /// Take the entries `pick` selects.
    fn take_where(&mut self, mut pick: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        let mut taken = Vec::new();
        for i in 0..self.slots.len() {
            if matches!(&self.slots[i], Slot::Used(e) if pick(e)) {
                if let Slot::Used(e) = std::mem::replace(&mut self.slots[i], Slot::Free(self.free))
                {
                    taken.push(e);
                }
                self.free = u32::try_from(i).ok();
                self.used -= 1;
            }
        }
        self.shrink_if_empty();
        taken
    }

    /// Give the memory of the slots back once the last entry left (after a burst of idle
    /// connections).
    fn shrink_if_empty(&mut self) {
        if self.used == 0 {
            self.slots = Vec::new();
            self.free = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for (slot, fd) in [(0, 0), (7, 3), (u32::MAX - 1, i32::MAX)] {
            assert_eq!(unkey(key(slot, fd)), (slot, fd));
        }
    }

    #[test]
    fn entries_are_small() {
        // the whole point of parking: far below a task and a registration (~0.5 KiB)
        assert!(
            std::mem::size_of::<Slot>() <= 64,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
