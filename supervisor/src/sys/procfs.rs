//! The one reader of `/proc/PID/stat`, for whoever needs a process's state,
//! parent, group or start time (the process actors, the leftover sweep, the
//! descendant tracker), so they agree on what a zombie is.

/// The fields of `/proc/PID/stat` the daemon uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z`, `X`, …
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    /// Clock ticks after boot: with the pid, a process's identity (pids are
    /// reused, start times are not).
    pub start_time: u64,
}

impl Stat {
    /// Not a zombie and not dead (`Z`, `X`, and `x` of old kernels).
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses a `/proc/PID/stat` line. The command name may hold spaces and
/// parentheses, so the fields are those after the last `)`: state (field 3),
/// ppid (4), pgrp (5), …, starttime (22).
pub fn parse_stat(line: &str) -> Option<Stat> {
    let (_, rest) = line.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The stat of `pid`; `None` once it is gone (or `/proc` is unreadable).
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every pid in `/proc` now; `None` if `/proc` cannot be read.
pub fn pids() -> Option<Vec<u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .collect(),
    )
}

/// True when some process of group `pgid` is not a zombie. Zombies answer
/// `killpg(pgid, 0)` until their parent reaps them; when orphaned members
/// are re-parented to an init that does not reap, the group would look alive
/// forever. Unreadable `/proc`: assume alive.
pub fn group_has_live_members(pgid: u32) -> bool {
    let Some(pids) = pids() else {
        return true;
    };
    pids.into_iter()
        .filter_map(stat)
        .any(|s| s.pgid == pgid && s.is_alive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_last_parenthesis_of_the_name() {
        let line = "42 (a (b) c) S 1 40 40 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 1,
                pgid: 40,
                start_time: 123456
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) Z"), None);
    }

    #[test]
    fn zombies_and_dead_processes_are_not_alive() {
        let with = |state| Stat {
            state,
            ppid: 1,
            pgid: 1,
            start_time: 0,
        };
        assert!(with('S').is_alive() && with('R').is_alive() && with('D').is_alive());
        assert!(!with('Z').is_alive() && !with('X').is_alive() && !with('x').is_alive());
    }

    #[test]
    fn this_process_reads_as_alive_in_its_group() {
        let me = std::process::id();
        let s = stat(me);
        assert!(s.is_some_and(|s| s.is_alive()), "{s:?}");
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        assert!(group_has_live_members(pgid));
    }
}
