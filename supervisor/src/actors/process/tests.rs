//! ProcessActor against real processes, signals and files.
//!
//! Each test runs its own actix System with a Reaper. Reapers collect with
//! `waitpid(-1)`, so two running at once in one test binary would steal each
//! other's children: these tests are serialized by [`SERIAL`], which any
//! other test of this crate that runs a Reaper or waits for a child should
//! hold too. The test
//! process is made a child subreaper, like the daemon, so the orphaned
//! members of a killed process group are reaped and the group really empties.
//! Every process group a test sees is SIGKILLed by [`Cleanup`] on the way
//! out, pass or fail.

use super::*;
use crate::actors::reaper::Reaper;
use crate::config::AutoRestart;
use crate::sys::procfs::group_has_live_members;
use actix::Addr;
use nix::sys::signal::SigHandler;
use nix::sys::signal::killpg;
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Held by every test that runs a Reaper or waits for a child process.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

/// SIGKILLs every recorded process group when dropped.
#[derive(Default)]
struct Cleanup(Mutex<BTreeSet<u32>>);

impl Cleanup {
    fn track(&self, pgid: Option<u32>) {
        if let Some(p) = pgid {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(p);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pgid in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = pgroup::send(*pgid, Signal::Kill);
        }
    }
}

struct Harness {
    dir: TempDir,
    table: ChildTable,
    cleanup: Cleanup,
}

impl Harness {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        nix::sys::prctl::set_child_subreaper(true)?;
        Ok(Harness {
            dir: tempfile::tempdir()?,
            table: ChildTable::default(),
            cleanup: Cleanup::default(),
        })
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// A program with starttime 0 (tests opt into a starttime).
    fn program(&self, name: &str, cmd: &str) -> ProgramConfig {
        let mut p = ProgramConfig::with_defaults(name, cmd, &self.logs());
        p.starttime = Duration::ZERO;
        p
    }

    fn stdout_of(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}-0.stdout.log"))
    }

    fn stderr_of(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}-0.stderr.log"))
    }

    fn actor(&self, program: ProgramConfig) -> Addr<ProcessActor> {
        ProcessActor::new(InstanceContext {
            program: Arc::new(program),
            index: 0,
            children: self.table.clone(),
            events: None,
            secret_env: Default::default(),
            hooks: Default::default(),
        })
        .start()
    }

    async fn info(&self, addr: &Addr<ProcessActor>) -> Result<ProcessInfo, actix::MailboxError> {
        let info = addr.send(GetInfo).await?;
        self.cleanup.track(info.pid);
        Ok(info)
    }

    /// Polls the instance until `cond` holds; the last info either way.
    async fn info_until(
        &self,
        addr: &Addr<ProcessActor>,
        timeout: Duration,
        cond: impl Fn(&ProcessInfo) -> bool,
    ) -> Result<ProcessInfo, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.info(addr).await?;
            if cond(&info) {
                return Ok(info);
            }
            if Instant::now() >= deadline {
                return Err(format!("condition not met within {timeout:?}; last: {info:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Runs `test` in a fresh System, one test at a time.
fn run<F, Fut>(test: F) -> TestResult
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let harness = Arc::new(Harness::new()?);
    let h = Arc::clone(&harness);
    actix_rt::System::new().block_on(async move {
        Reaper::new(h.table.clone())?.start();
        test(h).await
    })
}

/// Polls a condition (no actor involved) until it holds or time is up.
async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn file_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn clean_exit_with_starttime_zero_under_unexpected_is_exited() -> TestResult {
    run(|h| async move {
        let addr = h.actor(h.program("ok", "sh -c 'exit 0'"));
        let outcome = addr.send(Start).await?;
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.message, "started");
        let info = h
            .info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        assert_eq!(info.exitcode, Some(0));
        assert_eq!(info.description, "exit status 0");
        assert_eq!(info.restarts, 0);
        assert_eq!(info.pid, None);
        Ok(())
    })
}

#[test]
fn killed_process_is_running_again_within_50ms() -> TestResult {
    run(|h| async move {
        let addr = h.actor(h.program("sleeper", "sleep 30"));
        assert!(addr.send(Start).await?.ok);
        let first = h.info(&addr).await?;
        let Some(pid) = first.pid else {
            return Err("no pid while RUNNING".into());
        };
        assert_eq!(first.state, ProcessState::Running);
        assert!(
            first
                .description
                .starts_with(&format!("pid {pid}, uptime 0:00:0"))
        );
        let killed_at = Instant::now();
        nix::sys::signal::kill(Pid::from_raw(pid as i32), NixSignal::SIGKILL)?;
        let again = h
            .info_until(&addr, 5 * SECOND, |i| {
                i.state == ProcessState::Running && i.pid.is_some_and(|p| p != pid)
            })
            .await?;
        let took = killed_at.elapsed();
        assert!(took < Duration::from_millis(50), "restart took {took:?}");
        assert_eq!(again.restarts, 1);
        assert_eq!(again.exitcode, None, "killed by a signal: no exit code");
        assert!(addr.send(Stop).await?.ok);
        Ok(())
    })
}

#[test]
fn dying_program_is_fatal_after_three_attempts_with_its_output() -> TestResult {
    run(|h| async move {
        let mut p = h.program("crash", "sh -c 'echo starting; echo boom >&2; exit 3'");
        p.startretries = 2;
        p.starttime = SECOND;
        let addr = h.actor(p);
        let outcome = addr.send(Start).await?;
        assert!(!outcome.ok);
        assert_eq!(outcome.state, ProcessState::Backoff);
        assert_eq!(
            outcome.message,
            "exited with status 3 during starttime (retrying in 1s)"
        );
        assert_eq!(outcome.output_tail, vec!["boom"]);
        let info = h
            .info_until(&addr, 10 * SECOND, |i| i.state == ProcessState::Fatal)
            .await?;
        assert_eq!(
            info.description,
            "exited too quickly (exit status 3), 3 attempts"
        );
        assert_eq!(info.exitcode, Some(3));
        assert_eq!(file_text(&h.stderr_of("crash")), "boom\n".repeat(3));
        assert_eq!(file_text(&h.stdout_of("crash")), "starting\n".repeat(3));
        Ok(())
    })
}

#[test]
fn stop_escalates_to_sigkill_and_waits_for_the_whole_group() -> TestResult {
    run(|h| async move {
        let mut p = h.program(
            "stubborn",
            "sh -c 'trap \"\" TERM; sleep 60 & echo ready; wait'",
        );
        p.stoptime = Duration::from_millis(300);
        let addr = h.actor(p);
        assert!(addr.send(Start).await?.ok);
        let info = h.info(&addr).await?;
        let Some(pgid) = info.pid else {
            return Err("no pid".into());
        };
        let out = h.stdout_of("stubborn");
        assert!(wait_until(5 * SECOND, || file_text(&out).contains("ready")).await);
        let asked = Instant::now();
        let outcome = addr.send(Stop).await?;
        let took = asked.elapsed();
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.state, ProcessState::Stopped);
        assert!(took >= Duration::from_millis(300), "stopped after {took:?}");
        assert!(took < 3 * SECOND, "stopped after {took:?}");
        assert_eq!(
            killpg(Pid::from_raw(pgid as i32), None),
            Err(Errno::ESRCH),
            "group gone"
        );
        let info = h.info(&addr).await?;
        assert_eq!(info.state, ProcessState::Stopped);
        assert_eq!(info.description, "killed by SIGKILL");
        // Stopping a stopped instance is a no-op.
        let again = addr.send(Stop).await?;
        assert!(again.ok);
        assert_eq!(again.message, "not running");
        Ok(())
    })
}

#[test]
fn polite_stop_uses_the_stop_signal() -> TestResult {
    run(|h| async move {
        let mut p = h.program("polite", "sleep 30");
        p.stopsignal = Signal::Int;
        let addr = h.actor(p);
        assert!(addr.send(Start).await?.ok);
        h.info(&addr).await?;
        let outcome = addr.send(Stop).await?;
        assert!(outcome.ok);
        let info = h.info(&addr).await?;
        assert_eq!(info.description, "killed by SIGINT");
        Ok(())
    })
}

#[test]
fn env_cwd_and_umask_are_applied() -> TestResult {
    run(|h| async move {
        let work = h.dir.path().join("work");
        std::fs::create_dir(&work)?;
        let mut p = h.program(
            "envy",
            "sh -c 'echo \"FOO=$FOO\"; pwd; grep Umask: /proc/self/status; command -v sh'",
        );
        p.env.insert("FOO".into(), "bar baz".into());
        p.workingdir = Some(work.clone());
        p.umask = Some(0o027);
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p);
        assert!(addr.send(Start).await?.ok);
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        let out = file_text(&h.stdout_of("envy"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[0], "FOO=bar baz");
        assert_eq!(Path::new(lines[1]), work.canonicalize()?);
        assert_eq!(lines[2], "Umask:\t0027");
        // PATH came from the daemon's environment (merged, not replaced).
        assert!(lines[3].ends_with("/sh"), "{out}");
        Ok(())
    })
}

#[test]
fn child_sees_only_stdio_descriptors() -> TestResult {
    run(|h| async move {
        // A descriptor the daemon leaks (no CLOEXEC) must not reach the child.
        let leaked = nix::unistd::dup(std::io::stderr().as_fd())?;
        let leaked_no = leaked.as_raw_fd();
        let p = h.program("fds", "sh -c 'ls /proc/$$/fd'");
        let addr = h.actor(p);
        let started = addr.send(Start).await;
        drop(leaked);
        assert!(started?.ok);
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        let out = file_text(&h.stdout_of("fds"));
        let fds: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fds, vec!["0", "1", "2"], "leaked fd was {leaked_no}");
        Ok(())
    })
}

#[test]
fn output_is_captured_byte_for_byte_and_followed() -> TestResult {
    run(|h| async move {
        let mut p = h.program(
            "bytes",
            "sh -c 'printf \"ok\\377\\376\\n\"; printf \"err\\n\" >&2; read x; echo late'",
        );
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p);
        // stdin is /dev/null: `read` returns at once and the program goes on.
        assert!(addr.send(Start).await?.ok);
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        let out = h.stdout_of("bytes");
        assert!(wait_until(5 * SECOND, || file_text(&out).contains("late")).await);
        assert_eq!(std::fs::read(&out)?, b"ok\xff\xfe\nlate\n");
        assert_eq!(std::fs::read(h.stderr_of("bytes"))?, b"err\n");
        let tail = addr
            .send(Tail {
                stream: OutputStream::Stdout,
                lines: 1,
                follow: false,
            })
            .await?;
        let Ok((reply, None)) = tail else {
            return Err(format!("unexpected tail answer {tail:?}").into());
        };
        assert_eq!(reply.lines, vec!["late"]);
        assert_eq!(reply.name, "bytes:0");
        assert_eq!(Path::new(&reply.path), out);
        Ok(())
    })
}

#[test]
fn tail_follow_receives_new_output_and_discarded_streams_are_refused() -> TestResult {
    run(|h| async move {
        let mut p = h.program(
            "talker",
            "sh -c 'echo first; while read line; do :; done; sleep 30'",
        );
        p.stderr = OutputTarget::Discard;
        p.stdout = OutputTarget::File(h.dir.path().join("talker.out"));
        let addr = h.actor(p);
        let refused = addr
            .send(Tail {
                stream: OutputStream::Stderr,
                lines: 5,
                follow: false,
            })
            .await?;
        assert_eq!(
            refused.err(),
            Some((
                ErrorKind::Failed,
                "talker:0 stderr is discarded (stderr: null)".to_string()
            ))
        );
        let tail = addr
            .send(Tail {
                stream: OutputStream::Stdout,
                lines: 5,
                follow: true,
            })
            .await?;
        let Ok((reply, Some(mut follower))) = tail else {
            return Err(format!("unexpected tail answer {tail:?}").into());
        };
        assert!(reply.lines.is_empty(), "nothing written yet");
        assert!(addr.send(Start).await?.ok);
        h.info(&addr).await?;
        let chunk = tokio::time::timeout(5 * SECOND, follower.recv()).await??;
        assert_eq!(&chunk.bytes[..], b"first\n");
        assert!(addr.send(Stop).await?.ok);
        Ok(())
    })
}

#[test]
fn missing_binary_fails_the_start_with_the_os_error_and_backs_off() -> TestResult {
    run(|h| async move {
        let mut p = h.program("ghost", "/nonexistent/prog --flag");
        p.starttime = SECOND;
        let addr = h.actor(p);
        let outcome = addr.send(Start).await?;
        assert!(!outcome.ok);
        assert_eq!(outcome.state, ProcessState::Backoff);
        assert_eq!(
            outcome.message,
            "spawn error: /nonexistent/prog: No such file or directory (os error 2) (retrying in 1s)"
        );
        let info = h.info(&addr).await?;
        assert_eq!(info.state, ProcessState::Backoff);
        assert_eq!(info.description, outcome.message);
        let stopped = addr.send(Stop).await?;
        assert!(stopped.ok);
        assert_eq!(h.info(&addr).await?.state, ProcessState::Stopped);
        Ok(())
    })
}

#[test]
fn bad_working_directory_and_unopenable_log_are_spawn_errors() -> TestResult {
    run(|h| async move {
        let mut p = h.program("lost", "sleep 30");
        p.workingdir = Some(h.dir.path().join("nowhere"));
        p.startretries = 0;
        let addr = h.actor(p);
        let outcome = addr.send(Start).await?;
        assert_eq!(outcome.state, ProcessState::Fatal);
        assert!(
            outcome.message.starts_with(&format!(
                "spawn error: working directory {}: No such file or directory",
                h.dir.path().join("nowhere").display()
            )),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.ends_with(", 1 attempt"),
            "{}",
            outcome.message
        );

        let mut p = h.program("nolog", "sleep 30");
        p.stdout = OutputTarget::File(h.dir.path().join("missing-dir/out.log"));
        p.startretries = 0;
        let addr = h.actor(p);
        let outcome = addr.send(Start).await?;
        assert_eq!(outcome.state, ProcessState::Fatal);
        assert!(
            outcome
                .message
                .contains("cannot write programs.nolog stdout")
                && outcome.message.contains("No such file or directory"),
            "{}",
            outcome.message
        );
        Ok(())
    })
}

#[test]
fn concurrent_starts_share_one_spawn_and_restart_replaces_the_child() -> TestResult {
    run(|h| async move {
        let mut p = h.program("pair", "sh -c 'echo spawned; exec sleep 30'");
        p.starttime = Duration::from_millis(200);
        let addr = h.actor(p);
        let (a, b) = futures::join!(addr.send(Start), addr.send(Start));
        let (a, b) = (a?, b?);
        assert!(a.ok && b.ok, "{a:?} {b:?}");
        assert_eq!(a.message, "started");
        assert_eq!(a, b);
        let first = h.info(&addr).await?;
        let out = h.stdout_of("pair");
        assert!(wait_until(5 * SECOND, || file_text(&out) == "spawned\n").await);
        let again = addr.send(Start).await?;
        assert!(again.ok);
        assert_eq!(again.message, "already running");

        let restarted = addr.send(Restart).await?;
        assert!(restarted.ok, "{restarted:?}");
        assert_eq!(restarted.state, ProcessState::Running);
        let second = h.info(&addr).await?;
        assert!(second.pid.is_some() && second.pid != first.pid);
        assert_eq!(
            killpg(Pid::from_raw(first.pid.unwrap_or(0) as i32), None),
            Err(Errno::ESRCH),
            "the old group is gone before the new child runs"
        );
        assert_eq!(file_text(&out), "spawned\nspawned\n");
        assert!(addr.send(Stop).await?.ok);
        Ok(())
    })
}

#[test]
fn signals_reach_the_group_only_while_alive() -> TestResult {
    run(|h| async move {
        let mut p = h.program(
            "sig",
            "sh -c 'trap \"echo got-usr1\" USR1; echo ready; while :; do sleep 0.01; done'",
        );
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p);
        let refused = addr.send(SendSignal(Signal::Usr1)).await?;
        assert!(!refused.ok);
        assert_eq!(refused.message, "not running");
        assert!(addr.send(Start).await?.ok);
        h.info(&addr).await?;
        let out = h.stdout_of("sig");
        assert!(wait_until(5 * SECOND, || file_text(&out).contains("ready")).await);
        let sent = addr.send(SendSignal(Signal::Usr1)).await?;
        assert!(sent.ok, "{sent:?}");
        assert!(wait_until(5 * SECOND, || file_text(&out).contains("got-usr1")).await);
        assert!(addr.send(Stop).await?.ok);
        Ok(())
    })
}

#[test]
fn retire_stops_the_group_then_the_actor() -> TestResult {
    run(|h| async move {
        let addr = h.actor(h.program("old", "sleep 30"));
        assert!(addr.send(Start).await?.ok);
        let pid = h.info(&addr).await?.pid.unwrap_or(0);
        let outcome = addr.send(Retire).await?;
        assert!(outcome.ok);
        assert_eq!(outcome.state, ProcessState::Stopped);
        assert_eq!(killpg(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH));
        assert!(wait_until(5 * SECOND, || !addr.connected()).await);
        assert!(addr.send(GetInfo).await.is_err(), "actor is gone");
        Ok(())
    })
}

#[test]
fn update_policy_applies_to_the_next_decision() -> TestResult {
    run(|h| async move {
        let mut p = h.program("flip", "sh -c 'exit 1'");
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p.clone());
        assert!(addr.send(Start).await?.ok);
        let info = h
            .info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        assert_eq!(info.restarts, 0);
        // Now every exit is restarted, at most twice in the window.
        p.autorestart = AutoRestart::Always;
        p.maxrestarts = 2;
        addr.send(UpdatePolicy(Arc::new(p))).await?;
        assert!(addr.send(Start).await?.ok);
        let info = h
            .info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Fatal)
            .await?;
        assert_eq!(info.restarts, 2);
        assert_eq!(info.description, "restarting too often: 2 restarts in 5s");
        Ok(())
    })
}

#[test]
fn child_starts_with_no_blocked_or_ignored_signals() -> TestResult {
    run(|h| async move {
        // The daemon's thread blocks USR1 and its process ignores USR2; the
        // child must inherit neither (an ignored signal survives exec).
        let mut usr1 = nix::sys::signal::SigSet::empty();
        usr1.add(NixSignal::SIGUSR1);
        usr1.thread_block()?;
        // SAFETY: SIG_IGN installs no handler code; restored below.
        let old = unsafe { nix::sys::signal::signal(NixSignal::SIGUSR2, SigHandler::SigIgn)? };
        let mut p = h.program("sigs", "grep -E ^Sig(Blk|Ign): /proc/self/status");
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p);
        let started = addr.send(Start).await;
        usr1.thread_unblock()?;
        // SAFETY: puts back the disposition found above.
        unsafe { nix::sys::signal::signal(NixSignal::SIGUSR2, old)? };
        assert!(started?.ok);
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        let out = file_text(&h.stdout_of("sigs"));
        assert_eq!(
            out,
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
        );
        Ok(())
    })
}

#[test]
fn leftovers_of_a_leader_that_exited_on_its_own_are_killed() -> TestResult {
    run(|h| async move {
        let mut p = h.program("leaky", "sh -c 'sleep 30 & echo $!; exit 1'");
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p);
        assert!(addr.send(Start).await?.ok);
        h.info(&addr).await?;
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        let out = h.stdout_of("leaky");
        assert!(wait_until(5 * SECOND, || file_text(&out).ends_with('\n')).await);
        let leftover: i32 = file_text(&out).trim().parse()?;
        let gone = wait_until(5 * SECOND, || {
            nix::sys::signal::kill(Pid::from_raw(leftover), None) == Err(Errno::ESRCH)
        })
        .await;
        assert!(gone, "the background sleep {leftover} was killed");
        Ok(())
    })
}

#[test]
fn a_group_of_zombies_has_no_live_members() -> TestResult {
    // No Reaper runs here: the zombie must stay until reaped below.
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let own = nix::unistd::getpgrp().as_raw() as u32;
    assert!(group_has_live_members(own), "this test process is alive");
    let child = std::process::Command::new("true")
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + 5 * SECOND;
    while !std::fs::read_to_string(&stat)?.contains(") Z ") {
        assert!(Instant::now() < deadline, "child never became a zombie");
        std::thread::yield_now();
    }
    let pgid = Pid::from_raw(pid as i32);
    let zombie_answers = killpg(pgid, None);
    let live = group_has_live_members(pid);
    nix::sys::wait::waitpid(pgid, None)?;
    assert_eq!(zombie_answers, Ok(()), "a zombie still answers killpg");
    assert!(!live, "but it is not a live member");
    assert!(!pgroup::alive(pid));
    Ok(())
}

#[test]
fn child_carries_its_instance_name_in_its_environment() -> TestResult {
    run(|h| async move {
        let mut p = h.program("tagged", "sh -c 'echo \"[$TASKMASTER_INSTANCE]\"'");
        // A program cannot pose as another instance.
        p.env
            .insert(crate::leftovers::INSTANCE_ENV.into(), "web:9".into());
        p.autorestart = AutoRestart::Never;
        let addr = h.actor(p);
        assert!(addr.send(Start).await?.ok);
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        assert_eq!(file_text(&h.stdout_of("tagged")), "[tagged:0]\n");
        Ok(())
    })
}

#[test]
fn user_sets_groups_gid_and_uid_or_is_refused_when_not_root() -> TestResult {
    run(|h| async move {
        let mut p = h.program(
            "asuser",
            "sh -c 'grep -E \"^(Uid|Gid|Groups):\" /proc/self/status; echo \"$HOME $USER $LOGNAME\"'",
        );
        p.user = Some(crate::config::RunAs {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534, 4242],
            home: PathBuf::from("/nonexistent"),
        });
        p.autorestart = AutoRestart::Never;
        p.startretries = 0;
        let addr = h.actor(p);
        let outcome = addr.send(Start).await?;
        if !nix::unistd::geteuid().is_root() {
            assert!(!outcome.ok, "{outcome:?}");
            assert!(
                outcome.message.contains("cannot run as user nobody"),
                "{outcome:?}"
            );
            return Ok(());
        }
        assert!(outcome.ok, "{outcome:?}");
        h.info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Exited)
            .await?;
        let out = file_text(&h.stdout_of("asuser"));
        let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let lines: Vec<String> = out.lines().map(squeeze).collect();
        assert_eq!(
            lines,
            vec![
                "Uid: 65534 65534 65534 65534",
                "Gid: 65534 65534 65534 65534",
                "Groups: 4242 65534",
                "/nonexistent nobody nobody",
            ],
            "{out}"
        );
        Ok(())
    })
}

#[test]
fn shared_info_follows_every_event_like_get_info() -> TestResult {
    run(|h| async move {
        let actor = ProcessActor::new(InstanceContext {
            program: Arc::new(h.program("snap", "sleep 1000")),
            index: 0,
            children: h.table.clone(),
            events: None,
            secret_env: Default::default(),
            hooks: Default::default(),
        });
        let shared = actor.shared_info();
        let addr = actor.start();
        assert_eq!(
            shared.borrow().info(Instant::now()).state,
            ProcessState::Stopped
        );

        let outcome = addr.send(Start).await?;
        assert!(outcome.ok, "{outcome:?}");
        let info = h
            .info_until(&addr, 5 * SECOND, |i| i.state == ProcessState::Running)
            .await?;
        let snap = shared.borrow().info(Instant::now());
        assert_eq!(snap.name, "snap:0");
        assert_eq!(snap.program, "snap");
        assert_eq!(snap.state, ProcessState::Running);
        let pid = snap.pid.ok_or("running without a pid")?;
        assert_eq!(Some(pid), info.pid);
        // Same text as GetInfo (uptime may have ticked between the two).
        assert!(
            snap.description.starts_with(&format!("pid {pid}, uptime ")),
            "{snap:?}"
        );
        assert_eq!(shared.borrow().pid(), info.pid);

        let outcome = addr.send(Stop).await?;
        assert!(outcome.ok, "{outcome:?}");
        let snap = shared.borrow().info(Instant::now());
        assert_eq!(snap.state, ProcessState::Stopped);
        assert_eq!(snap.pid, None);
        assert_eq!(snap.description, addr.send(GetInfo).await?.description);
        Ok(())
    })
}
