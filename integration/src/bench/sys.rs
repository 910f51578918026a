//! What the benchmark reads from the kernel, and how it times commands.
//!
//! Every figure is taken from outside the supervisor, the way a user would:
//! CPU time is `utime + stime` of `/proc/PID/stat` (clock ticks), memory is
//! `VmRSS` of `/proc/PID/status`, children come from
//! `/proc/PID/task/*/children`. Client commands are timed by the harness's
//! [`crate::run_with_timeout`]: spawn to exit, a blocking `wait` (no polling
//! granularity in the figure), a watchdog that kills the process group when
//! it overruns.

use crate::procfs;
pub use crate::procfs::{cpu_ticks, status_kib, ticks_per_second};

/// CPU seconds of `pid` so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_ticks(pid).map(|t| t as f64 / ticks_per_second() as f64)
}

/// Resident memory of `pid`, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

/// Peak resident memory of `pid`, MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0)
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> Option<u64> {
    procfs::status_field(pid, "Threads")?.parse().ok()
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> Option<usize> {
    procfs::fds(pid).map(|f| f.len())
}

/// Direct children of `pid` (zombies included), from every thread's
/// `children` file: one small read per thread instead of a scan of `/proc`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    found
}

/// Live (not zombie) children of `pid` whose command name is `comm`.
pub fn live_children_named(pid: u32, comm: &str) -> usize {
    children(pid)
        .into_iter()
        .filter_map(procfs::stat)
        .filter(|s| s.is_alive() && s.comm == comm)
        .count()
}

/// `CLOCK_MONOTONIC` now, in ns: the clock the `stamp` helper writes.
pub fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Raises `RLIMIT_NOFILE` (soft and, as root, hard) to `want`, bounded by
/// `fs.nr_open`; the daemons inherit it. Returns the soft limit in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(want);
    let want = want.min(nr_open);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if hard < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return want;
    }
    let soft_want = want.min(hard);
    if soft < soft_want && setrlimit(Resource::RLIMIT_NOFILE, soft_want, hard).is_ok() {
        return soft_want;
    }
    soft
}

/// A number from a `/proc/sys` file.
pub fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Answers one connection with an empty `HTTP/1.0 200 OK` and closes it,
/// after reading the request head (up to a blank line, 4 KiB or 1 s) so
/// that closing does not reset the connection under an unread request. A
/// connection closed without a word (a `tcp` probe) is left alone. Used by
/// the `listen` helper and the bench's shared health responder.
pub fn answer_http_ok(mut conn: std::net::TcpStream) -> std::io::Result<()> {
    use std::io::{Read, Write};
    conn.set_read_timeout(Some(std::time::Duration::from_secs(1)))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        let n = conn.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// Nearest-rank percentile `p` (0..=100) of `sorted`, which must be sorted.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The median of unsorted `values`.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(rss_mib(me).is_some_and(|m| m > 0.0));
        assert!(threads(me).is_some_and(|t| t >= 1));
    }
}
