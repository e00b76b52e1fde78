//! Looking at processes that are not necessarily our children (daemons).

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Whether `pid` exited: no such process, or a zombie nobody reaped yet
/// (daemons are not our children).
pub fn gone(pid: Pid) -> bool {
    if kill(pid, None).is_err() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
