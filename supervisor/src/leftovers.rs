//! Leftovers of an earlier daemon: found by an environment tag, stopped
//! before anything new is spawned.
//!
//! No process may live on unsupervised when the daemon dies, even by
//! SIGKILL (which runs no code of ours). Two mechanisms share the work:
//!
//! 1. Each child is spawned with `PR_SET_PDEATHSIG(SIGKILL)` (see
//!    `actors/process/spawn.rs`): the kernel kills it the moment the daemon
//!    dies. That only reaches the direct child, not what it started.
//! 2. Each child also gets [`SUPERVISOR_ENV`]`=<tag>` and
//!    [`INSTANCE_ENV`]`=NAME:INDEX` in its environment, which its
//!    descendants inherit. At start, before spawning anything, the daemon
//!    scans `/proc/*/environ` for processes carrying its own tag
//!    ([`stop_leftovers`]) and stops them the way `stop` would: the
//!    program's `stopsignal` to their process groups, a short wait (the
//!    program's `stoptime`, at most [`GRACE_MAX`]), then SIGKILL. Each is
//!    logged.
//!
//! The tag is a hash of the canonical config path ([`Tag::for_config`]), so
//! daemons on different configs never touch each other's processes. The scan
//! runs only after the pidfile lock is held and the control socket is bound:
//! a second daemon on the same config fails before it could stop the first
//! one's children.
//!
//! Why not a state file of pids and start times: a grandchild that made its
//! own session or group, or was re-parented to init, is in no file, while it
//! does inherit the environment. Limits: a process that clears or replaces
//! its environment (`env -i`, some daemons) drops the tag, and
//! `/proc/PID/environ` shows the environment a process was started with.
//!
//! A group is signalled as a whole only when every live member carries the
//! tag; otherwise only the tagged processes are. Zombies count as gone (their
//! parent, not us, must reap them).

use crate::config::Config;
use crate::sys::{fnv, pgroup, procfs};
use nix::errno::Errno;
use proto::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable naming the daemon a process belongs to.
pub const SUPERVISOR_ENV: &str = "TASKMASTER_SUPERVISOR";
/// The environment variable naming the instance (`web:0`) a process belongs to.
pub const INSTANCE_ENV: &str = "TASKMASTER_INSTANCE";

/// The longest a leftover is given to obey its stop signal.
pub const GRACE_MAX: Duration = Duration::from_secs(2);
/// How long SIGKILLed leftovers may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// How often the scan checks whether the signalled leftovers are gone.
const POLL: Duration = Duration::from_millis(10);
/// Rounds of scan-and-stop: a leftover may fork new tagged processes (in a
/// new session) while it is being stopped.
const ROUNDS: usize = 3;

/// A daemon's identity, as put in its children's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    /// The tag of the daemon running the config file at `file`: FNV-1a 64 of
    /// its canonical path (symlinks resolved), in hex. FNV rather than std's
    /// hasher, whose output may change between Rust releases.
    pub fn for_config(file: &Path) -> Tag {
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        Tag(format!(
            "{:016x}",
            fnv::fnv1a64(canonical.as_os_str().as_bytes())
        ))
    }

    /// The value of [`SUPERVISOR_ENV`].
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `NAME=VALUE` environment entry.
    fn entry(&self) -> Vec<u8> {
        format!("{SUPERVISOR_ENV}={}", self.0).into_bytes()
    }
}

static INSTALLED: OnceLock<Tag> = OnceLock::new();

/// Makes `tag` the one every child of this process is spawned with. The
/// first call wins (one daemon per process); returns the installed tag.
pub fn install(tag: Tag) -> &'static Tag {
    INSTALLED.get_or_init(|| tag)
}

/// The installed tag, if any (unit tests run without one).
pub fn installed() -> Option<&'static Tag> {
    INSTALLED.get()
}

/// One process carrying the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub pid: u32,
    pub pgid: u32,
    /// Its [`INSTANCE_ENV`], if set.
    pub instance: Option<String>,
    /// Its command line, shortened, for the log.
    pub command: String,
}

/// What [`stop_leftovers`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Tagged processes found, over every round.
    pub found: usize,
    /// Of those, how many needed SIGKILL.
    pub killed: usize,
    /// Still alive at the end (unkillable, or not ours to signal).
    pub survivors: Vec<u32>,
}

/// What to signal: a whole group, or one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Group(u32),
    Pid(u32),
}

/// One `/proc` entry, as much as the scan needs.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    pgid: u32,
    alive: bool,
}

/// Every live process (not this one) whose environment carries `tag`.
pub fn find(tag: &Tag) -> Vec<Leftover> {
    let me = std::process::id();
    let entry = tag.entry();
    all_procs()
        .into_iter()
        .filter(|p| p.alive && p.pid != me)
        .filter_map(|p| {
            let environ = std::fs::read(format!("/proc/{}/environ", p.pid)).ok()?;
            if !environ_has(&environ, &entry) {
                return None;
            }
            Some(Leftover {
                pid: p.pid,
                pgid: p.pgid,
                instance: environ_value(&environ, INSTANCE_ENV.as_bytes())
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                command: command_line(p.pid),
            })
        })
        .collect()
}

/// Stops every process left by an earlier daemon with this tag (see the
/// module doc), logging each. Blocks at most a few seconds per round; call
/// it before the actors start.
pub fn stop_leftovers(tag: &Tag, config: &Config) -> Report {
    let mut report = Report::default();
    let mut seen = BTreeSet::new();
    for _ in 0..ROUNDS {
        let found = find(tag);
        if found.is_empty() {
            break;
        }
        seen.extend(found.iter().map(|l| l.pid));
        stop_round(&found, config, &mut report);
    }
    report.found = seen.len();
    report.survivors = find(tag).into_iter().map(|l| l.pid).collect();
    if !report.survivors.is_empty() {
        tracing::error!(pids = ?report.survivors,
            "leftovers of an earlier taskmasterd are still alive after SIGKILL; they run unsupervised");
    } else if report.found > 0 {
        tracing::info!(
            found = report.found,
            killed = report.killed,
            "leftovers of an earlier taskmasterd stopped"
        );
    }
    report
}

/// Signals one round of leftovers and waits for them to go.
fn stop_round(found: &[Leftover], config: &Config, report: &mut Report) {
    let procs = all_procs();
    let tagged: BTreeSet<u32> = found.iter().map(|l| l.pid).collect();
    let my_group = nix::unistd::getpgrp().as_raw() as u32;
    let targets = plan_targets(&procs, &tagged, my_group);
    let now = Instant::now();
    // Per target: its signal and deadline, from the program it belongs to.
    let mut pending: BTreeMap<Target, Instant> = BTreeMap::new();
    for target in targets {
        let members: Vec<&Leftover> = found
            .iter()
            .filter(|l| match target {
                Target::Group(g) => l.pgid == g,
                Target::Pid(p) => l.pid == p,
            })
            .collect();
        let program = members
            .iter()
            .find_map(|l| l.instance.as_deref())
            .and_then(|i| i.rsplit_once(':').map(|(name, _)| name))
            .and_then(|name| config.programs.get(name));
        let (signal, grace) = match program {
            Some(p) => (p.stopsignal, p.stoptime.min(GRACE_MAX)),
            None => (Signal::Term, GRACE_MAX),
        };
        for l in &members {
            tracing::warn!(pid = l.pid, pgid = l.pgid, instance = l.instance.as_deref().unwrap_or("?"),
                command = %l.command, "leftover of an earlier taskmasterd: stopping it (SIG{signal})");
        }
        send(target, signal);
        pending.insert(target, now + grace);
    }
    // Wait for each to go; SIGKILL those past their deadline.
    let mut killed: BTreeMap<Target, Instant> = BTreeMap::new();
    while !pending.is_empty() || !killed.is_empty() {
        std::thread::sleep(POLL);
        let procs = all_procs();
        let now = Instant::now();
        pending.retain(|target, deadline| {
            if !target_alive(&procs, *target, &tagged) {
                return false;
            }
            if now >= *deadline {
                tracing::warn!(?target, "leftover did not stop in time: SIGKILL");
                send(*target, Signal::Kill);
                report.killed += count_members(&procs, *target, &tagged);
                killed.insert(*target, now + KILL_WAIT);
                return false;
            }
            true
        });
        killed.retain(|target, deadline| target_alive(&procs, *target, &tagged) && now < *deadline);
    }
}

/// Groups whose live members all carry the tag are signalled whole; in any
/// other group only the tagged processes are. Never our own group or init's.
fn plan_targets(procs: &[Proc], tagged: &BTreeSet<u32>, my_group: u32) -> Vec<Target> {
    let mut groups: BTreeMap<u32, Vec<&Proc>> = BTreeMap::new();
    for p in procs.iter().filter(|p| p.alive) {
        groups.entry(p.pgid).or_default().push(p);
    }
    let mut targets = BTreeSet::new();
    for p in procs.iter().filter(|p| tagged.contains(&p.pid)) {
        let whole = p.pgid > 1
            && p.pgid != my_group
            && groups
                .get(&p.pgid)
                .is_some_and(|members| members.iter().all(|m| tagged.contains(&m.pid)));
        targets.insert(if whole {
            Target::Group(p.pgid)
        } else {
            Target::Pid(p.pid)
        });
    }
    targets.into_iter().collect()
}

fn target_alive(procs: &[Proc], target: Target, tagged: &BTreeSet<u32>) -> bool {
    count_members(procs, target, tagged) > 0
}

fn count_members(procs: &[Proc], target: Target, tagged: &BTreeSet<u32>) -> usize {
    procs
        .iter()
        .filter(|p| p.alive)
        .filter(|p| match target {
            // Members that joined later are untagged only if they cleared
            // their environment; they go with the group either way.
            Target::Group(g) => p.pgid == g,
            Target::Pid(pid) => p.pid == pid && tagged.contains(&pid),
        })
        .count()
}

fn send(target: Target, signal: Signal) {
    let result = match target {
        Target::Group(g) => pgroup::send(g, signal),
        Target::Pid(p) => pgroup::send_pid(p, signal),
    };
    if let Err(e) = result
        && e != Errno::ESRCH
    {
        tracing::error!(?target, signal = %signal, error = %e, "cannot signal a leftover");
    }
}

/// Every process in `/proc` with its group and whether it is alive (not a
/// zombie).
fn all_procs() -> Vec<Proc> {
    procfs::pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let stat = procfs::stat(pid)?;
            Some(Proc {
                pid,
                pgid: stat.pgid,
                alive: stat.is_alive(),
            })
        })
        .collect()
}

/// True when the NUL-separated `environ` holds exactly `entry`.
fn environ_has(environ: &[u8], entry: &[u8]) -> bool {
    environ.split(|b| *b == 0).any(|e| e == entry)
}

/// The value of `name` in a NUL-separated `environ`.
fn environ_value<'a>(environ: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    environ.split(|b| *b == 0).find_map(|e| {
        let rest = e.strip_prefix(name)?;
        rest.strip_prefix(b"=")
    })
}

/// The command line of `pid`, spaces for NULs, at most 200 bytes.
pub(crate) fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut text: String = String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ");
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::process::tests::SERIAL;
    use nix::sys::signal::{Signal as NixSignal, kill, killpg};
    use nix::unistd::Pid;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::sync::PoisonError;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn the_tag_is_a_stable_hash_of_the_canonical_path() -> TestResult {
        let dir = tempfile::tempdir()?;
        let real = dir.path().join("real.yaml");
        std::fs::write(&real, "programs: {}\n")?;
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&real, &link)?;
        let tag = Tag::for_config(&real);
        assert_eq!(tag, Tag::for_config(&link));
        assert_eq!(tag.as_str().len(), 16);
        assert_ne!(tag, Tag::for_config(&dir.path().join("other.yaml")));
        Ok(())
    }

    #[test]
    fn environ_entries_match_exactly() {
        let environ = b"PATH=/bin\0TASKMASTER_SUPERVISOR=abc\0TASKMASTER_INSTANCE=web:1\0";
        assert!(environ_has(environ, b"TASKMASTER_SUPERVISOR=abc"));
        assert!(!environ_has(environ, b"TASKMASTER_SUPERVISOR=ab"));
        assert!(!environ_has(
            b"X_TASKMASTER_SUPERVISOR=abc\0",
            b"TASKMASTER_SUPERVISOR=abc"
        ));
        assert_eq!(
            environ_value(environ, INSTANCE_ENV.as_bytes()),
            Some(&b"web:1"[..])
        );
        assert_eq!(environ_value(environ, b"TASKMASTER"), None);
    }

    fn procs(list: &[(u32, u32, bool)]) -> Vec<Proc> {
        list.iter()
            .map(|&(pid, pgid, alive)| Proc { pid, pgid, alive })
            .collect()
    }

    #[test]
    fn whole_groups_only_when_every_live_member_is_tagged() {
        let snapshot = procs(&[
            (10, 10, true),  // tagged group leader
            (11, 10, true),  // tagged member
            (12, 10, false), // untagged zombie: does not count
            (20, 20, true),  // untagged leader of a mixed group
            (21, 20, true),  // tagged member of it
            (30, 7, true),   // tagged, in our own group
            (40, 1, true),   // tagged, in init's group
        ]);
        let tagged = BTreeSet::from([10, 11, 21, 30, 40]);
        assert_eq!(
            plan_targets(&snapshot, &tagged, 7),
            vec![
                Target::Group(10),
                Target::Pid(21),
                Target::Pid(30),
                Target::Pid(40)
            ]
        );
        assert_eq!(count_members(&snapshot, Target::Group(10), &tagged), 2);
        assert_eq!(count_members(&snapshot, Target::Pid(20), &tagged), 0);
    }

    /// Kills what a test started, pass or fail, and reaps it.
    struct Started {
        tag: Tag,
        children: Vec<Child>,
    }

    impl Drop for Started {
        fn drop(&mut self) {
            for l in find(&self.tag) {
                let _ = kill(Pid::from_raw(l.pid as i32), NixSignal::SIGKILL);
            }
            for child in &mut self.children {
                let _ = killpg(Pid::from_raw(child.id() as i32), NixSignal::SIGKILL);
                let _ = child.wait();
            }
        }
    }

    fn start(cmd: &str, env: &[(&str, &str)]) -> std::io::Result<Child> {
        Command::new("sh")
            .args(["-c", cmd])
            .envs(env.iter().copied())
            .process_group(0)
            .spawn()
    }

    fn alive(pid: u32) -> bool {
        all_procs().iter().any(|p| p.pid == pid && p.alive)
    }

    #[test]
    fn stops_tagged_groups_and_strays_and_leaves_the_rest_alone() -> TestResult {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let tag = Tag(format!("test-{}-{nanos}", std::process::id()));
        let other = Tag(format!("other-{}-{nanos}", std::process::id()));
        let mut started = Started {
            tag: tag.clone(),
            children: Vec::new(),
        };
        let ours = [(SUPERVISOR_ENV, tag.as_str())];
        // A group of two, plus one that escaped to a session of its own.
        started
            .children
            .push(start("sleep 1000 & setsid sleep 1000 & wait", &ours)?);
        // A group that ignores its stop signal: needs the SIGKILL.
        started.children.push(start(
            "trap '' TERM; sleep 1000 & wait",
            &[(SUPERVISOR_ENV, tag.as_str()), (INSTANCE_ENV, "stubborn:0")],
        )?);
        let untagged = start("exec sleep 1000", &[])?;
        let foreign = start("exec sleep 1000", &[(SUPERVISOR_ENV, other.as_str())])?;
        let bystanders = [untagged.id(), foreign.id()];
        started.children.push(untagged);
        started.children.push(foreign);

        let deadline = Instant::now() + Duration::from_secs(10);
        while find(&tag).len() < 5 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        assert_eq!(find(&tag).len(), 5, "{:?}", find(&tag));
        let config = crate::config::parse(
            "programs:\n  stubborn:\n    cmd: x\n    stoptime: 0.2\n",
            Path::new("/nonexistent/tm.yaml"),
        )?;
        let began = Instant::now();
        let report = stop_leftovers(&tag, &config);
        assert_eq!(report.found, 5, "{report:?}");
        assert_eq!(report.killed, 2, "{report:?}");
        assert!(report.survivors.is_empty(), "{report:?}");
        assert!(find(&tag).is_empty());
        // The stubborn group's grace is its stoptime, not GRACE_MAX.
        assert!(began.elapsed() < GRACE_MAX, "took {:?}", began.elapsed());
        for pid in bystanders {
            assert!(alive(pid), "pid {pid} was not ours to stop");
        }
        Ok(())
    }
}
