//! Looking at processes through `/proc`, the way the tests judge the daemon.
//!
//! The tests never trust the daemon's own account of its children: they read
//! `/proc/PID/stat` (state, parent, process group, session) and
//! `/proc/PID/status` (signal masks, umask) themselves. A zombie counts as
//! dead here: it has exited, only its exit status is waiting to be reaped.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;

/// The fields of `/proc/PID/stat` the tests care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The executable name, as the kernel shows it (at most 15 bytes).
    pub comm: String,
    /// `R`, `S`, `D`, `Z` (zombie), `T`, `X` (dead), ...
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
}

impl ProcStat {
    /// Neither a zombie nor dead.
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses one `/proc/PID/stat` line. The name sits in parentheses and may
/// itself contain spaces and parentheses, so the fields after it are found
/// from the *last* `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_string();
    let mut rest = line.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgid = rest.next()?.parse().ok()?;
    let sid = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
        pgid,
        sid,
    })
}

/// The stat of `pid`, or `None` when it does not exist (any more).
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// True when `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.is_alive())
}

/// Every process visible in `/proc` (zombies included), in no set order.
/// Processes that vanish while we look are skipped.
pub fn all_processes() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The direct children of `pid` (zombies included).
pub fn children(pid: u32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.ppid == pid)
        .collect()
}

/// The live (non-zombie) direct children of `pid`.
pub fn live_children(pid: u32) -> Vec<ProcStat> {
    children(pid).into_iter().filter(|p| p.is_alive()).collect()
}

/// How many children of `pid` are zombies, i.e. exited and not reaped.
pub fn zombie_children(pid: u32) -> usize {
    children(pid).iter().filter(|p| !p.is_alive()).count()
}

/// Every descendant of `pid` (children, their children, ...), by parent links,
/// zombies included. `pid` itself is not in the list.
pub fn descendants(pid: u32) -> Vec<ProcStat> {
    descendants_in(&all_processes(), pid)
}

/// [`descendants`] over a snapshot, so that one scan serves several queries.
pub fn descendants_in(snapshot: &[ProcStat], pid: u32) -> Vec<ProcStat> {
    let mut found = Vec::new();
    let mut frontier: HashSet<u32> = HashSet::from([pid]);
    let mut seen: HashSet<u32> = HashSet::from([pid]);
    while !frontier.is_empty() {
        let next: Vec<&ProcStat> = snapshot
            .iter()
            .filter(|p| frontier.contains(&p.ppid) && !seen.contains(&p.pid))
            .collect();
        frontier = next.iter().map(|p| p.pid).collect();
        seen.extend(frontier.iter().copied());
        found.extend(next.into_iter().cloned());
    }
    found
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgid == pgid && p.is_alive())
        .map(|p| p.pid)
        .collect()
}

/// The live members of session `sid`.
pub fn session_members(sid: u32) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|p| p.sid == sid && p.is_alive())
        .map(|p| p.pid)
        .collect()
}

/// The value of one `Key:` line of `/proc/PID/status` (e.g. `SigBlk`,
/// `Umask`), trimmed.
pub fn status_field(pid: u32, key: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_in(&text, key)
}

/// [`status_field`] over text already read (e.g. a child's copy of its own
/// `/proc/self/status`).
pub fn status_field_in(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// A signal mask line of `/proc/PID/status` (`SigBlk`, `SigIgn`, ...) as bits.
pub fn signal_mask(pid: u32, key: &str) -> Option<u64> {
    u64::from_str_radix(&status_field(pid, key)?, 16).ok()
}

/// The bit of signal number `signo` in a `/proc` signal mask.
pub fn signal_bit(signo: i32) -> u64 {
    1u64 << (signo - 1)
}

/// The open file descriptors of `pid`.
pub fn fds(pid: u32) -> Option<BTreeSet<u32>> {
    let dir = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        dir.filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// What file descriptor `fd` of `pid` refers to (`/dev/null`, a path, `pipe:[..]`).
pub fn fd_target(pid: u32, fd: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The current working directory of `pid`.
pub fn cwd(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// The value of environment variable `name` in the environment `pid` was
/// started with (`/proc/PID/environ`).
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|b| *b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

/// The live processes whose environment has `name=value` (e.g. the
/// `TASKMASTER_SUPERVISOR` tag every child of a daemon carries).
pub fn with_env(name: &str, value: &str) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.is_alive() && environ_var(p.pid, name).as_deref() == Some(value))
        .collect()
}

/// User plus system CPU time `pid` has used, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: state is field 3, so utime (14) is the 12th here.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second, for [`cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    status_field(pid, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let s = parse_stat("42 (we (ird) name) S 1 42 40 0 -1 4194560 ...");
        assert_eq!(
            s,
            Some(ProcStat {
                pid: 42,
                comm: "we (ird) name".into(),
                state: 'S',
                ppid: 1,
                pgid: 42,
                sid: 40,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn sees_this_process_and_its_masks() {
        let me = std::process::id();
        let s = stat(me);
        assert!(s.as_ref().is_some_and(|s| s.is_alive() && s.pid == me));
        assert!(signal_mask(me, "SigBlk").is_some());
        assert!(fds(me).is_some_and(|f| f.contains(&0)));
        assert_eq!(signal_bit(1), 1);
        assert!(cpu_ticks(me).is_some());
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(environ_var(me, "PATH").is_some() || std::env::var_os("PATH").is_none());
        assert_eq!(signal_bit(10), 0x200);
    }

    #[test]
    fn finds_descendants_and_group_members() -> Result<(), std::io::Error> {
        use std::os::unix::process::CommandExt;
        // sh in its own group, with a grandchild `sleep`.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()?;
        let pid = child.id();
        let found = crate::wait_until(std::time::Duration::from_secs(5), || {
            descendants(pid).iter().any(|p| p.comm == "sleep")
        });
        let members = group_members(pid);
        // SAFETY-free cleanup: kill the whole group, then reap sh.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        assert!(found, "sleep never showed up under sh");
        assert!(members.contains(&pid) && members.len() == 2, "{members:?}");
        assert!(!is_alive(pid));
        Ok(())
    }
}
