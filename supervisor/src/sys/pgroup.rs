//! Signals to process groups and single processes, by the wire's
//! [`proto::Signal`] (converted here, the one place that knows nix's).

use nix::errno::Errno;
use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::Pid;
use proto::Signal;

fn to_nix(signal: Signal) -> Result<NixSignal, Errno> {
    NixSignal::try_from(signal.number())
}

fn to_pid(id: u32) -> Result<Pid, Errno> {
    i32::try_from(id)
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .ok_or(Errno::EINVAL)
}

/// `killpg(pgid, signal)`.
pub fn send(pgid: u32, signal: Signal) -> Result<(), Errno> {
    killpg(to_pid(pgid)?, to_nix(signal)?)
}

/// `kill(pid, signal)`.
pub fn send_pid(pid: u32, signal: Signal) -> Result<(), Errno> {
    kill(to_pid(pid)?, to_nix(signal)?)
}

/// True while any process of group `pgid` exists, zombies included (EPERM
/// means it exists). See [`crate::sys::procfs::group_has_live_members`] for
/// the zombie-aware check.
pub fn alive(pgid: u32) -> bool {
    let Ok(pgid) = to_pid(pgid) else {
        return false;
    };
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}
