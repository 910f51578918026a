//! The pure per-instance state machine: supervisord's process states, decided
//! without IO, actix or clock reads.
//!
//! [`Machine::on_event`] takes one [`Event`] (a request, or a fact the actor
//! observed), the current [`Policy`] and the time, and returns the
//! [`Effect`]s the actor must carry out, in order. Keeping every decision
//! here makes the whole policy testable row by row, and keeps the actor a
//! thin executor of effects.
//!
//! Only one timer is pending at a time; every [`Effect::SetTimer`] carries a
//! new generation and replaces the previous timer, and a [`Event::TimerFired`]
//! whose generation is not the armed one is ignored (a timer cancelled too
//! late can never act).
//!
//! # Transition table
//!
//! | State | Event | Next state | Effects |
//! |---|---|---|---|
//! | STOPPED, EXITED, FATAL | Start | STARTING | reset failures, restarts and FATAL reason; `Spawn` |
//! | BACKOFF | Start | STARTING | `CancelTimer`; reset as above; `Spawn` |
//! | STARTING | Start | STARTING | none: joins the pending start |
//! | RUNNING | Start | RUNNING | `Resolve(Started "already running")` |
//! | STOPPING | Start | STOPPING | remembered: starts (as a user start) once STOPPED |
//! | STARTING | Spawned | RUNNING if `starttime == 0` | `Resolve(Started)` |
//! | STARTING | Spawned | STARTING if `starttime > 0` | `SetTimer(starttime)` |
//! | STARTING | TimerFired (current) | RUNNING | failures = 0; `Resolve(Started)` |
//! | STARTING | SpawnFailed, Exited (any status) | BACKOFF if failures <= startretries | failures += 1; `KillRemnants` (after an exit); `SetTimer(1s·2^(failures-1), max 30s)`; `Resolve(StartFailed)` |
//! | STARTING | SpawnFailed, Exited (any status) | FATAL if failures > startretries | `KillRemnants` (after an exit); `Resolve(StartFailed "…, N attempts")` |
//! | BACKOFF | TimerFired (current) | STARTING | restarts += 1; `Spawn` |
//! | RUNNING | Exited, restart wanted, under the rate limit | STARTING | `KillRemnants`; restarts += 1; `Spawn` |
//! | RUNNING | Exited, restart wanted, `maxrestarts` used within `restartwindow` | FATAL | `KillRemnants`; "restarting too often" |
//! | RUNNING | Exited, no restart wanted | EXITED | `KillRemnants` |
//! | STARTING, RUNNING | Stop | STOPPING | `SignalGroup(stopsignal)`; `SetTimer(stoptime)`; a pending start resolves failed |
//! | STOPPING | TimerFired (current) | STOPPING | `KillGroup` (SIGKILL to the group) |
//! | STOPPING | Exited (leader) | STOPPING | `WatchGroup` (wait until the group is empty) |
//! | STOPPING | GroupGone (leader already exited) | STOPPED, or STARTING if a start was remembered | `CancelTimer`; `Resolve(Stopped)`; then as Start from STOPPED |
//! | STOPPING | Stop | STOPPING | joins; cancels a remembered start (`Resolve(StartFailed)`) |
//! | BACKOFF | Stop | STOPPED | `CancelTimer`; `Resolve(Stopped)` |
//! | STOPPED, EXITED, FATAL | Stop | unchanged | `Resolve(Stopped "not running")` |
//! | any | TimerFired (stale), Exited (other pid), GroupGone (not awaited) | unchanged | none |
//!
//! A restart is wanted when `autorestart` is `always`, or `unexpected` and
//! the exit was unexpected: an exit code not in `exitcodes`, or any death by
//! a signal. The rate limit allows `maxrestarts` automatic restarts within
//! any sliding `restartwindow`, so a program that dies at once with
//! `starttime: 0` is spawned `1 + maxrestarts` times. BACKOFF retries are
//! governed by `startretries` only: `startretries: 2` means 3 attempts.
//!
//! Every leader exit outside a stop is followed by `KillRemnants`: whatever
//! is left in its process group is SIGKILLed, so a restart never runs beside
//! the previous run's leftovers.
//!
//! Which `notify:` events a transition raises is decided here too, by
//! [`notifications`], from the states before and after an event; the actor
//! only sends what it returns.

use crate::config::{AutoRestart, NotifyEvent, ProgramConfig};
use crate::sys::exit::ExitStatus;
use proto::{ProcessState, Signal};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// First BACKOFF delay; doubled for each further failed start.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest BACKOFF delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The part of a program's config that drives decisions. Swapped whole by
/// `UpdatePolicy`; a timer already armed keeps its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub autorestart: AutoRestart,
    pub exitcodes: Vec<i32>,
    pub starttime: Duration,
    pub startretries: u32,
    pub stopsignal: Signal,
    pub stoptime: Duration,
    pub maxrestarts: u32,
    pub restartwindow: Duration,
}

impl Policy {
    /// The policy fields of `program`.
    pub fn of(program: &ProgramConfig) -> Self {
        Policy {
            autorestart: program.autorestart,
            exitcodes: program.exitcodes.clone(),
            starttime: program.starttime,
            startretries: program.startretries,
            stopsignal: program.stopsignal,
            stoptime: program.stoptime,
            maxrestarts: program.maxrestarts,
            restartwindow: program.restartwindow,
        }
    }

    /// An exit code in `exitcodes`; a death by signal never is.
    pub fn is_expected(&self, status: ExitStatus) -> bool {
        status.code().is_some_and(|c| self.exitcodes.contains(&c))
    }
}

/// Something that happened to the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A start was requested (user, autostart, or the start half of restart).
    Start,
    /// A stop was requested.
    Stop,
    /// The child requested by [`Effect::Spawn`] exists.
    Spawned { pid: u32 },
    /// [`Effect::Spawn`] failed; `error` names the path and the OS error.
    SpawnFailed { error: String },
    /// A child of ours ended (as reported by the Reaper).
    Exited { pid: u32, status: ExitStatus },
    /// The timer of generation `generation` expired.
    TimerFired { generation: u64 },
    /// No process of group `pgid` is left (answer to [`Effect::WatchGroup`]).
    GroupGone { pgid: u32 },
}

/// Severity of a [`Effect::Log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// How waiting requests are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolve {
    /// Start waiters: ok, with this message (`started`, `already running`).
    Started(String),
    /// Start waiters: failed, with this reason.
    StartFailed(String),
    /// Stop waiters: ok, with this message (`stopped`, `not running`).
    Stopped(String),
}

/// What the actor must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Fork and exec the program; answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send the stop signal to the process group.
    SignalGroup { pgid: u32, signal: Signal },
    /// SIGKILL the process group (stoptime is up).
    KillGroup { pgid: u32 },
    /// The leader exited on its own: SIGKILL whatever is left in its group.
    KillRemnants { pgid: u32 },
    /// Arm the one timer (replacing any other); fire `TimerFired { generation }`.
    SetTimer { generation: u64, after: Duration },
    /// Disarm the timer.
    CancelTimer,
    /// Report `GroupGone { pgid }` once no process of the group is left.
    WatchGroup { pgid: u32 },
    /// One event-log line.
    Log(Level, String),
    /// Answer waiting requests.
    Resolve(Resolve),
}

/// One instance's state and counters.
#[derive(Debug, Clone)]
pub struct Machine {
    state: ProcessState,
    /// The live leader.
    pid: Option<u32>,
    /// The group of the current child; kept after the leader's exit while
    /// a stop waits for the group to empty.
    pgid: Option<u32>,
    /// When the current child was spawned.
    since: Option<Instant>,
    /// Failed starts since the last RUNNING or user start.
    failures: u32,
    /// Automatic respawns (policy restarts and BACKOFF retries).
    restarts: u32,
    /// When each policy restart inside the current window happened.
    restart_times: VecDeque<Instant>,
    /// Generation of the armed timer.
    timer: Option<u64>,
    next_generation: u64,
    /// A start arrived while STOPPING.
    start_pending: bool,
    last_exit: Option<ExitStatus>,
    /// Why it is in BACKOFF or FATAL.
    reason: Option<String>,
    /// While STOPPING: when the group gets SIGKILL (`stoptime` after the stop
    /// signal), or that it got it, for `status` and a waiting client
    /// (`SIGKILL in 7s`).
    kill: Option<Kill>,
}

/// The SIGKILL of a stop: due at an instant, or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    At(Instant),
    Sent,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    /// A never-started instance: STOPPED.
    pub fn new() -> Self {
        Machine {
            state: ProcessState::Stopped,
            pid: None,
            pgid: None,
            since: None,
            failures: 0,
            restarts: 0,
            restart_times: VecDeque::new(),
            timer: None,
            next_generation: 1,
            start_pending: false,
            last_exit: None,
            reason: None,
            kill: None,
        }
    }

    pub fn state(&self) -> ProcessState {
        self.state
    }

    /// The live leader's pid.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The process group that may still have members.
    pub fn pgid(&self) -> Option<u32> {
        self.pgid
    }

    /// Automatic respawns since the last user start.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// How the last child ended.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    /// Exit code of the last exit (None if killed by a signal or never exited).
    pub fn exitcode(&self) -> Option<i32> {
        self.last_exit.and_then(ExitStatus::code)
    }

    /// Age of the current child (zero when there is none).
    pub fn uptime(&self, now: Instant) -> Duration {
        self.since
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default()
    }

    /// The status line's description.
    pub fn describe(&self, now: Instant) -> String {
        match self.state {
            ProcessState::Stopping if self.kill.is_some() => {
                let kill = match self.kill {
                    // Whole seconds, rounded up: a countdown, not a measure.
                    Some(Kill::At(at)) if at > now => {
                        format!("SIGKILL in {}s", (at - now).as_secs_f64().ceil())
                    }
                    _ => "SIGKILL sent".to_string(),
                };
                match (self.pid, self.pgid) {
                    (Some(pid), _) => format!("pid {pid}, stopping, {kill}"),
                    (None, Some(pgid)) => {
                        format!("waiting for process group {pgid} to exit, {kill}")
                    }
                    (None, None) => format!("stopping, {kill}"),
                }
            }
            ProcessState::Starting | ProcessState::Running | ProcessState::Stopping => {
                match (self.pid, self.pgid) {
                    (Some(pid), _) => format!("pid {pid}, uptime {}", hms(self.uptime(now))),
                    (None, Some(pgid)) => {
                        format!("waiting for process group {pgid} to exit")
                    }
                    (None, None) => "starting".into(),
                }
            }
            ProcessState::Backoff | ProcessState::Fatal => self.reason.clone().unwrap_or_default(),
            ProcessState::Stopped | ProcessState::Exited => match self.last_exit {
                Some(status) => status.to_string(),
                None => "Not started".into(),
            },
        }
    }

    /// Decides what `ev` means now.
    pub fn on_event(&mut self, ev: Event, policy: &Policy, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        match ev {
            Event::Start => self.on_start(&mut fx),
            Event::Stop => self.on_stop(policy, now, &mut fx),
            Event::Spawned { pid } => {
                if self.state == ProcessState::Starting && self.pid.is_none() {
                    self.pid = Some(pid);
                    self.pgid = Some(pid);
                    self.since = Some(now);
                    fx.push(Effect::Log(Level::Info, "spawned".into()));
                    if policy.starttime.is_zero() {
                        self.enter_running(&mut fx);
                    } else {
                        let after = policy.starttime;
                        fx.push(self.arm(after));
                    }
                }
            }
            Event::SpawnFailed { error } => {
                if self.state == ProcessState::Starting && self.pid.is_none() {
                    let cause = format!("spawn error: {error}");
                    fx.push(Effect::Log(Level::Error, cause.clone()));
                    self.failed_start(cause.clone(), cause, policy, &mut fx);
                }
            }
            Event::Exited { pid, status } => {
                if self.pid == Some(pid) {
                    self.on_exit(status, policy, now, &mut fx);
                }
            }
            Event::TimerFired { generation } => {
                if self.timer == Some(generation) {
                    self.timer = None;
                    self.on_timer(policy, &mut fx);
                }
            }
            Event::GroupGone { pgid } => {
                if self.state == ProcessState::Stopping
                    && self.pid.is_none()
                    && self.pgid == Some(pgid)
                {
                    self.disarm(&mut fx);
                    self.pgid = None;
                    self.state = ProcessState::Stopped;
                    fx.push(Effect::Log(Level::Info, "stopped".into()));
                    fx.push(Effect::Resolve(Resolve::Stopped("stopped".into())));
                    if std::mem::take(&mut self.start_pending) {
                        self.on_start(&mut fx);
                    }
                }
            }
        }
        fx
    }

    fn on_start(&mut self, fx: &mut Vec<Effect>) {
        match self.state {
            ProcessState::Stopped
            | ProcessState::Exited
            | ProcessState::Fatal
            | ProcessState::Backoff => {
                self.disarm(fx);
                self.failures = 0;
                self.restarts = 0;
                self.restart_times.clear();
                self.reason = None;
                self.spawn(fx);
            }
            ProcessState::Starting => {}
            ProcessState::Running => {
                fx.push(Effect::Resolve(Resolve::Started("already running".into())));
            }
            ProcessState::Stopping => self.start_pending = true,
        }
    }

    fn on_stop(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        match self.state {
            ProcessState::Starting | ProcessState::Running => {
                if self.state == ProcessState::Starting {
                    fx.push(Effect::Resolve(Resolve::StartFailed(
                        "stop requested before it reached RUNNING".into(),
                    )));
                }
                self.state = ProcessState::Stopping;
                self.kill = Some(Kill::At(now + policy.stoptime));
                let signal = policy.stopsignal;
                fx.push(Effect::Log(
                    Level::Info,
                    format!("stop requested (SIG{signal})"),
                ));
                if let Some(pgid) = self.pgid {
                    fx.push(Effect::SignalGroup { pgid, signal });
                }
                fx.push(self.arm(policy.stoptime));
            }
            ProcessState::Backoff => {
                self.disarm(fx);
                self.state = ProcessState::Stopped;
                fx.push(Effect::Log(Level::Info, "stopped".into()));
                fx.push(Effect::Resolve(Resolve::Stopped("stopped".into())));
            }
            ProcessState::Stopping => {
                if std::mem::take(&mut self.start_pending) {
                    fx.push(Effect::Resolve(Resolve::StartFailed(
                        "stop requested before it started".into(),
                    )));
                }
            }
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal => {
                fx.push(Effect::Resolve(Resolve::Stopped("not running".into())));
            }
        }
    }

    fn on_exit(&mut self, status: ExitStatus, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        self.pid = None;
        self.since = None;
        self.last_exit = Some(status);
        match self.state {
            ProcessState::Starting => {
                self.disarm(fx);
                fx.push(Effect::Log(
                    Level::Info,
                    format!("exited: {status} (during starttime)"),
                ));
                self.kill_remnants(fx);
                let cause = match status {
                    ExitStatus::Code(c) => format!("exited with status {c} during starttime"),
                    ExitStatus::Signaled { .. } => format!("{status} during starttime"),
                };
                let fatal = format!("exited too quickly ({status})");
                self.failed_start(cause, fatal, policy, fx);
            }
            ProcessState::Running => {
                let expected = policy.is_expected(status);
                let word = if expected { "expected" } else { "unexpected" };
                fx.push(Effect::Log(
                    Level::Info,
                    format!("exited: {status} ({word})"),
                ));
                self.kill_remnants(fx);
                let restart = match policy.autorestart {
                    AutoRestart::Always => true,
                    AutoRestart::Unexpected => !expected,
                    AutoRestart::Never => false,
                };
                if !restart {
                    self.state = ProcessState::Exited;
                    return;
                }
                while let Some(&t) = self.restart_times.front() {
                    if now.saturating_duration_since(t) >= policy.restartwindow {
                        self.restart_times.pop_front();
                    } else {
                        break;
                    }
                }
                if self.restart_times.len() >= policy.maxrestarts as usize {
                    let why = format!(
                        "restarting too often: {} restarts in {}",
                        policy.maxrestarts,
                        secs(policy.restartwindow)
                    );
                    self.fatal(why, fx);
                } else {
                    self.restart_times.push_back(now);
                    self.restarts += 1;
                    self.spawn(fx);
                }
            }
            ProcessState::Stopping => {
                fx.push(Effect::Log(
                    Level::Info,
                    format!("exited: {status} (stopping)"),
                ));
                if let Some(pgid) = self.pgid {
                    fx.push(Effect::WatchGroup { pgid });
                }
            }
            // No child exists in these states; `pid` was already None.
            ProcessState::Stopped
            | ProcessState::Backoff
            | ProcessState::Exited
            | ProcessState::Fatal => {}
        }
    }

    fn on_timer(&mut self, policy: &Policy, fx: &mut Vec<Effect>) {
        match self.state {
            ProcessState::Starting => self.enter_running(fx),
            ProcessState::Backoff => {
                self.restarts += 1;
                self.spawn(fx);
            }
            ProcessState::Stopping => {
                if let Some(pgid) = self.pgid {
                    fx.push(Effect::Log(
                        Level::Warn,
                        format!("killed after stoptime ({})", secs(policy.stoptime)),
                    ));
                    fx.push(Effect::KillGroup { pgid });
                    self.kill = Some(Kill::Sent);
                }
            }
            ProcessState::Stopped
            | ProcessState::Running
            | ProcessState::Exited
            | ProcessState::Fatal => {}
        }
    }

    fn spawn(&mut self, fx: &mut Vec<Effect>) {
        self.state = ProcessState::Starting;
        self.pid = None;
        self.since = None;
        fx.push(Effect::Spawn);
    }

    fn enter_running(&mut self, fx: &mut Vec<Effect>) {
        self.state = ProcessState::Running;
        self.failures = 0;
        self.reason = None;
        fx.push(Effect::Log(Level::Info, "entered RUNNING".into()));
        fx.push(Effect::Resolve(Resolve::Started("started".into())));
    }

    /// `cause` explains one failure; `fatal_cause` prefixes the FATAL reason.
    fn failed_start(
        &mut self,
        cause: String,
        fatal_cause: String,
        policy: &Policy,
        fx: &mut Vec<Effect>,
    ) {
        self.failures += 1;
        if self.failures > policy.startretries {
            let n = self.failures;
            let why = format!(
                "{fatal_cause}, {n} attempt{}",
                if n == 1 { "" } else { "s" }
            );
            self.fatal(why, fx);
            return;
        }
        let delay = backoff_delay(self.failures);
        let reason = format!("{cause} (retrying in {})", secs(delay));
        self.state = ProcessState::Backoff;
        self.reason = Some(reason.clone());
        fx.push(Effect::Log(
            Level::Info,
            format!("BACKOFF: retry in {}", secs(delay)),
        ));
        fx.push(self.arm(delay));
        fx.push(Effect::Resolve(Resolve::StartFailed(reason)));
    }

    fn fatal(&mut self, why: String, fx: &mut Vec<Effect>) {
        self.disarm(fx);
        self.state = ProcessState::Fatal;
        self.reason = Some(why.clone());
        fx.push(Effect::Log(Level::Warn, format!("FATAL: {why}")));
        fx.push(Effect::Resolve(Resolve::StartFailed(why)));
    }

    fn kill_remnants(&mut self, fx: &mut Vec<Effect>) {
        if let Some(pgid) = self.pgid.take() {
            fx.push(Effect::KillRemnants { pgid });
        }
    }

    fn arm(&mut self, after: Duration) -> Effect {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.timer = Some(generation);
        Effect::SetTimer { generation, after }
    }

    fn disarm(&mut self, fx: &mut Vec<Effect>) {
        if self.timer.take().is_some() {
            fx.push(Effect::CancelTimer);
        }
    }
}

/// BACKOFF delay after the `failures`-th failed start: 1 s, doubling, ≤ 30 s.
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// The `notify:` events one [`Machine::on_event`] raised, in the order they
/// are sent, each with the exit status its notice reports. `before` and
/// `after` are the states around the event, `exit` the status it carried (an
/// [`Event::Exited`]), `last_exit` the machine's last leader exit after it.
///
/// An exit is unexpected when the instance was STARTING or RUNNING (not
/// stopping) and the status is not in `exitcodes`. Entering RUNNING, FATAL,
/// BACKOFF, EXITED or STOPPED raises that state's event; a restart (STOPPING
/// straight to STARTING: the group went away and the remembered start began)
/// raises STOPPED. A STOPPED notice reports the leader's exit, which came
/// before the group was gone; a STARTED one reports none.
pub fn notifications(
    before: ProcessState,
    after: ProcessState,
    exit: Option<ExitStatus>,
    last_exit: Option<ExitStatus>,
    policy: &Policy,
) -> Vec<(NotifyEvent, Option<ExitStatus>)> {
    let mut happened = Vec::with_capacity(2);
    if let Some(status) = exit
        && matches!(before, ProcessState::Starting | ProcessState::Running)
        && !policy.is_expected(status)
    {
        happened.push(NotifyEvent::UnexpectedExit);
    }
    let entered = match (before, after) {
        (b, a) if b == a => None,
        (_, ProcessState::Running) => Some(NotifyEvent::Started),
        (_, ProcessState::Fatal) => Some(NotifyEvent::Fatal),
        (_, ProcessState::Backoff) => Some(NotifyEvent::Backoff),
        (_, ProcessState::Exited) => Some(NotifyEvent::Exited),
        (_, ProcessState::Stopped) => Some(NotifyEvent::Stopped),
        (ProcessState::Stopping, ProcessState::Starting) => Some(NotifyEvent::Stopped),
        _ => None,
    };
    happened.extend(entered);
    happened
        .into_iter()
        .map(|event| {
            let reported = match event {
                NotifyEvent::Started => None,
                NotifyEvent::Stopped => last_exit,
                _ => exit,
            };
            (event, reported)
        })
        .collect()
}

/// `H:MM:SS`.
pub fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// `10s`, `0.3s`: durations as the config writes them.
pub fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProcessState::*;

    const PID: u32 = 100;

    fn policy() -> Policy {
        Policy {
            autorestart: AutoRestart::Unexpected,
            exitcodes: vec![0],
            starttime: Duration::from_secs(1),
            startretries: 2,
            stopsignal: Signal::Term,
            stoptime: Duration::from_secs(10),
            maxrestarts: 3,
            restartwindow: Duration::from_secs(5),
        }
    }

    /// Effects without the log lines, which have their own test.
    fn acts(fx: Vec<Effect>) -> Vec<Effect> {
        fx.into_iter()
            .filter(|e| !matches!(e, Effect::Log(..)))
            .collect()
    }

    fn armed_generation(fx: &[Effect]) -> Option<u64> {
        fx.iter().find_map(|e| match e {
            Effect::SetTimer { generation, .. } => Some(*generation),
            _ => None,
        })
    }

    /// A machine driven into `state` with the default policy; returns the
    /// generation of its armed timer, if any.
    fn machine_in(state: ProcessState, t0: Instant) -> (Machine, Option<u64>) {
        let p = policy();
        let mut m = Machine::new();
        let mut generation = None;
        let feed = |m: &mut Machine, generation: &mut Option<u64>, e: Event| {
            let fx = m.on_event(e, &p, t0);
            if let Some(g) = armed_generation(&fx) {
                *generation = Some(g);
            }
        };
        match state {
            Stopped => {}
            Starting => {
                feed(&mut m, &mut generation, Event::Start);
                feed(&mut m, &mut generation, Event::Spawned { pid: PID });
            }
            Running => {
                feed(&mut m, &mut generation, Event::Start);
                feed(&mut m, &mut generation, Event::Spawned { pid: PID });
                let g = generation.unwrap_or(0);
                feed(&mut m, &mut generation, Event::TimerFired { generation: g });
            }
            Backoff => {
                feed(&mut m, &mut generation, Event::Start);
                feed(&mut m, &mut generation, Event::Spawned { pid: PID });
                feed(&mut m, &mut generation, exited(1));
            }
            Stopping => {
                (m, generation) = machine_in(Running, t0);
                feed(&mut m, &mut generation, Event::Stop);
            }
            Exited => {
                (m, generation) = machine_in(Running, t0);
                feed(&mut m, &mut generation, exited(0));
            }
            Fatal => {
                let mut q = policy();
                q.startretries = 0;
                m.on_event(Event::Start, &q, t0);
                m.on_event(Event::SpawnFailed { error: "x".into() }, &q, t0);
            }
        }
        assert_eq!(m.state(), state, "setup reached the wanted state");
        (m, generation)
    }

    fn exited(code: i32) -> Event {
        Event::Exited {
            pid: PID,
            status: ExitStatus::Code(code),
        }
    }

    fn killed(signal: i32) -> Event {
        Event::Exited {
            pid: PID,
            status: ExitStatus::Signaled {
                signal,
                core_dumped: false,
            },
        }
    }

    fn started(msg: &str) -> Effect {
        Effect::Resolve(Resolve::Started(msg.into()))
    }

    fn start_failed(msg: &str) -> Effect {
        Effect::Resolve(Resolve::StartFailed(msg.into()))
    }

    fn stopped(msg: &str) -> Effect {
        Effect::Resolve(Resolve::Stopped(msg.into()))
    }

    /// What to feed: a fixed event, or a timer firing with the armed generation.
    enum Feed {
        Ev(Event),
        ArmedTimer,
        StaleTimer,
    }

    #[test]
    fn transition_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (state, event, policy tweak, next state, effects without logs)
        type Tweak = fn(&mut Policy);
        let none: Tweak = |_| {};
        let rows: Vec<(ProcessState, Feed, Tweak, ProcessState, Vec<Effect>)> = vec![
            (
                Stopped,
                Feed::Ev(Event::Start),
                none,
                Starting,
                vec![Effect::Spawn],
            ),
            (
                Exited,
                Feed::Ev(Event::Start),
                none,
                Starting,
                vec![Effect::Spawn],
            ),
            (
                Fatal,
                Feed::Ev(Event::Start),
                none,
                Starting,
                vec![Effect::Spawn],
            ),
            (
                Backoff,
                Feed::Ev(Event::Start),
                none,
                Starting,
                vec![Effect::CancelTimer, Effect::Spawn],
            ),
            (Starting, Feed::Ev(Event::Start), none, Starting, vec![]),
            (
                Running,
                Feed::Ev(Event::Start),
                none,
                Running,
                vec![started("already running")],
            ),
            (Stopping, Feed::Ev(Event::Start), none, Stopping, vec![]),
            // Spawned: starttime 0 is RUNNING at once.
            (
                Starting,
                Feed::ArmedTimer,
                none,
                Running,
                vec![started("started")],
            ),
            (Starting, Feed::StaleTimer, none, Starting, vec![]),
            (
                Starting,
                Feed::Ev(exited(0)),
                none,
                Backoff,
                vec![
                    Effect::CancelTimer,
                    Effect::KillRemnants { pgid: PID },
                    Effect::SetTimer {
                        generation: 2,
                        after: s(1),
                    },
                    start_failed("exited with status 0 during starttime (retrying in 1s)"),
                ],
            ),
            (
                Starting,
                Feed::Ev(killed(9)),
                |p| p.startretries = 0,
                Fatal,
                vec![
                    Effect::CancelTimer,
                    Effect::KillRemnants { pgid: PID },
                    start_failed("exited too quickly (killed by SIGKILL), 1 attempt"),
                ],
            ),
            (
                Backoff,
                Feed::ArmedTimer,
                none,
                Starting,
                vec![Effect::Spawn],
            ),
            (Backoff, Feed::StaleTimer, none, Backoff, vec![]),
            (
                Running,
                Feed::Ev(exited(1)),
                none,
                Starting,
                vec![Effect::KillRemnants { pgid: PID }, Effect::Spawn],
            ),
            (
                Running,
                Feed::Ev(exited(0)),
                none,
                Exited,
                vec![Effect::KillRemnants { pgid: PID }],
            ),
            (
                Running,
                Feed::Ev(exited(0)),
                |p| p.autorestart = AutoRestart::Always,
                Starting,
                vec![Effect::KillRemnants { pgid: PID }, Effect::Spawn],
            ),
            (
                Running,
                Feed::Ev(exited(1)),
                |p| p.autorestart = AutoRestart::Never,
                Exited,
                vec![Effect::KillRemnants { pgid: PID }],
            ),
            (
                Running,
                Feed::Ev(exited(3)),
                |p| p.exitcodes = vec![0, 3],
                Exited,
                vec![Effect::KillRemnants { pgid: PID }],
            ),
            (
                Running,
                Feed::Ev(killed(15)),
                |p| p.exitcodes = vec![0, 15, 143],
                Starting,
                vec![Effect::KillRemnants { pgid: PID }, Effect::Spawn],
            ),
            (
                Running,
                Feed::Ev(exited(1)),
                |p| p.maxrestarts = 0,
                Fatal,
                vec![
                    Effect::KillRemnants { pgid: PID },
                    start_failed("restarting too often: 0 restarts in 5s"),
                ],
            ),
            (
                Running,
                Feed::Ev(Event::Exited {
                    pid: PID + 1,
                    status: ExitStatus::Code(1),
                }),
                none,
                Running,
                vec![],
            ),
            (
                Running,
                Feed::Ev(Event::Stop),
                |p| p.stopsignal = Signal::Int,
                Stopping,
                vec![
                    Effect::SignalGroup {
                        pgid: PID,
                        signal: Signal::Int,
                    },
                    Effect::SetTimer {
                        generation: 2,
                        after: s(10),
                    },
                ],
            ),
            (
                Starting,
                Feed::Ev(Event::Stop),
                none,
                Stopping,
                vec![
                    start_failed("stop requested before it reached RUNNING"),
                    Effect::SignalGroup {
                        pgid: PID,
                        signal: Signal::Term,
                    },
                    Effect::SetTimer {
                        generation: 2,
                        after: s(10),
                    },
                ],
            ),
            (
                Stopping,
                Feed::ArmedTimer,
                none,
                Stopping,
                vec![Effect::KillGroup { pgid: PID }],
            ),
            (
                Stopping,
                Feed::Ev(killed(15)),
                none,
                Stopping,
                vec![Effect::WatchGroup { pgid: PID }],
            ),
            // The group is not awaited until the leader has exited.
            (
                Stopping,
                Feed::Ev(Event::GroupGone { pgid: PID }),
                none,
                Stopping,
                vec![],
            ),
            (Stopping, Feed::Ev(Event::Stop), none, Stopping, vec![]),
            (
                Backoff,
                Feed::Ev(Event::Stop),
                none,
                Stopped,
                vec![Effect::CancelTimer, stopped("stopped")],
            ),
            (
                Stopped,
                Feed::Ev(Event::Stop),
                none,
                Stopped,
                vec![stopped("not running")],
            ),
            (
                Exited,
                Feed::Ev(Event::Stop),
                none,
                Exited,
                vec![stopped("not running")],
            ),
            (
                Fatal,
                Feed::Ev(Event::Stop),
                none,
                Fatal,
                vec![stopped("not running")],
            ),
            (Stopped, Feed::Ev(exited(0)), none, Stopped, vec![]),
            (
                Exited,
                Feed::Ev(Event::GroupGone { pgid: PID }),
                none,
                Exited,
                vec![],
            ),
            (
                Stopped,
                Feed::Ev(Event::Spawned { pid: 5 }),
                none,
                Stopped,
                vec![],
            ),
        ];
        for (i, (from, feed, tweak, to, want)) in rows.into_iter().enumerate() {
            let (mut m, generation) = machine_in(from, t0);
            let mut p = policy();
            tweak(&mut p);
            let ev = match feed {
                Feed::Ev(e) => e,
                Feed::ArmedTimer => Event::TimerFired {
                    generation: generation
                        .unwrap_or_else(|| panic!("row {i}: no armed timer in {from}")),
                },
                Feed::StaleTimer => Event::TimerFired { generation: 0 },
            };
            let label = format!("row {i}: {from} + {ev:?}");
            let got = acts(m.on_event(ev, &p, t0));
            assert_eq!(m.state(), to, "{label}");
            assert_eq!(got, want, "{label}");
        }
    }

    #[test]
    fn spawned_with_starttime_zero_is_running_at_once() {
        let t0 = Instant::now();
        let mut p = policy();
        p.starttime = Duration::ZERO;
        let mut m = Machine::new();
        assert_eq!(acts(m.on_event(Event::Start, &p, t0)), vec![Effect::Spawn]);
        let fx = acts(m.on_event(Event::Spawned { pid: 7 }, &p, t0));
        assert_eq!(fx, vec![started("started")]);
        assert_eq!(m.state(), Running);
        assert_eq!(m.pid(), Some(7));
    }

    #[test]
    fn spawned_with_starttime_arms_the_timer() {
        let t0 = Instant::now();
        let p = policy();
        let mut m = Machine::new();
        m.on_event(Event::Start, &p, t0);
        let fx = acts(m.on_event(Event::Spawned { pid: 7 }, &p, t0));
        assert_eq!(
            fx,
            vec![Effect::SetTimer {
                generation: 1,
                after: Duration::from_secs(1)
            }]
        );
        assert_eq!(m.state(), Starting);
    }

    #[test]
    fn spawn_failure_keeps_the_os_error_and_backs_off() {
        let t0 = Instant::now();
        let p = policy();
        let mut m = Machine::new();
        m.on_event(Event::Start, &p, t0);
        let err = "/nope: No such file or directory (os error 2)";
        let fx = m.on_event(Event::SpawnFailed { error: err.into() }, &p, t0);
        assert_eq!(m.state(), Backoff);
        assert!(fx.contains(&Effect::Log(Level::Error, format!("spawn error: {err}"))));
        assert!(fx.contains(&start_failed(&format!(
            "spawn error: {err} (retrying in 1s)"
        ))));
        assert_eq!(
            m.describe(t0),
            format!("spawn error: {err} (retrying in 1s)")
        );
    }

    /// Drives failed starts until FATAL; returns the backoff delays seen.
    fn fail_until_fatal(m: &mut Machine, p: &Policy, t0: Instant) -> (u32, Vec<Duration>) {
        let mut attempts = 0;
        let mut delays = Vec::new();
        let mut fx = m.on_event(Event::Start, p, t0);
        for pid in 1..100 {
            assert!(fx.contains(&Effect::Spawn), "attempt {pid} spawns");
            attempts += 1;
            m.on_event(Event::Spawned { pid }, p, t0);
            fx = m.on_event(
                Event::Exited {
                    pid,
                    status: ExitStatus::Code(2),
                },
                p,
                t0,
            );
            if m.state() == Fatal {
                break;
            }
            assert_eq!(m.state(), Backoff);
            let Some((generation, after)) = fx.iter().find_map(|e| match e {
                Effect::SetTimer { generation, after } => Some((*generation, *after)),
                _ => None,
            }) else {
                panic!("BACKOFF without timer");
            };
            delays.push(after);
            fx = m.on_event(Event::TimerFired { generation }, p, t0);
        }
        (attempts, delays)
    }

    #[test]
    fn startretries_two_means_three_attempts_then_fatal() {
        let t0 = Instant::now();
        let p = policy();
        let mut m = Machine::new();
        let (attempts, delays) = fail_until_fatal(&mut m, &p, t0);
        assert_eq!(attempts, 3);
        assert_eq!(delays, vec![Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(
            m.describe(t0),
            "exited too quickly (exit status 2), 3 attempts"
        );
        assert_eq!(m.exitcode(), Some(2));
        // A user start clears FATAL and the counter: three fresh attempts.
        let (again, _) = fail_until_fatal(&mut m, &p, t0);
        assert_eq!(again, 3);
    }

    #[test]
    fn backoff_delays_double_up_to_thirty_seconds() {
        let t0 = Instant::now();
        let mut p = policy();
        p.startretries = 8;
        let mut m = Machine::new();
        let (attempts, delays) = fail_until_fatal(&mut m, &p, t0);
        assert_eq!(attempts, 9);
        let want: Vec<Duration> = [1, 2, 4, 8, 16, 30, 30, 30]
            .into_iter()
            .map(Duration::from_secs)
            .collect();
        assert_eq!(delays, want);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn reaching_running_resets_the_failure_counter() {
        let t0 = Instant::now();
        let mut p = policy();
        p.startretries = 1;
        let mut m = Machine::new();
        m.on_event(Event::Start, &p, t0);
        m.on_event(Event::Spawned { pid: 1 }, &p, t0);
        let fx = m.on_event(exited_pid(1, 1), &p, t0);
        let generation = armed_generation(&fx).unwrap_or(0);
        m.on_event(Event::TimerFired { generation }, &p, t0);
        let fx = m.on_event(Event::Spawned { pid: 2 }, &p, t0);
        let generation = armed_generation(&fx).unwrap_or(0);
        m.on_event(Event::TimerFired { generation }, &p, t0);
        assert_eq!(m.state(), Running);
        // Crash after RUNNING: a policy restart, whose early death is the
        // first failure again, not the second.
        m.on_event(exited_pid(2, 1), &p, t0);
        assert_eq!(m.state(), Starting);
        m.on_event(Event::Spawned { pid: 3 }, &p, t0);
        m.on_event(exited_pid(3, 1), &p, t0);
        assert_eq!(m.state(), Backoff);
    }

    fn exited_pid(pid: u32, code: i32) -> Event {
        Event::Exited {
            pid,
            status: ExitStatus::Code(code),
        }
    }

    /// Counts spawns of a program that dies at once with starttime 0.
    fn spawns_until_settled(p: &Policy, step: Duration) -> (u32, Machine) {
        let mut t = Instant::now();
        let mut m = Machine::new();
        let mut fx = m.on_event(Event::Start, p, t);
        let mut spawns = 0;
        for pid in 1..100 {
            if !fx.contains(&Effect::Spawn) {
                break;
            }
            spawns += 1;
            m.on_event(Event::Spawned { pid }, p, t);
            assert_eq!(m.state(), Running);
            t += step;
            fx = m.on_event(exited_pid(pid, 1), p, t);
        }
        (spawns, m)
    }

    #[test]
    fn rate_limit_trips_at_maxrestarts_plus_one() {
        let mut p = policy();
        p.starttime = Duration::ZERO;
        let (spawns, m) = spawns_until_settled(&p, Duration::from_millis(10));
        assert_eq!(spawns, 1 + p.maxrestarts);
        assert_eq!(m.state(), Fatal);
        assert_eq!(m.restarts(), 3);
        assert_eq!(
            m.describe(Instant::now()),
            "restarting too often: 3 restarts in 5s"
        );
    }

    #[test]
    fn restarts_spread_wider_than_the_window_are_not_limited() {
        let mut p = policy();
        p.starttime = Duration::ZERO;
        p.maxrestarts = 2;
        p.restartwindow = Duration::from_secs(5);
        // One exit every 3 s: at most 2 restarts in any 5 s window.
        let (spawns, m) = spawns_until_settled(&p, Duration::from_secs(3));
        assert_eq!(spawns, 99, "never tripped");
        assert_eq!(m.state(), Starting);
    }

    #[test]
    fn expected_code_under_unexpected_is_exited_and_signal_death_is_unexpected() {
        let t0 = Instant::now();
        let p = policy();
        let (mut m, _) = machine_in(Running, t0);
        m.on_event(exited(0), &p, t0);
        assert_eq!(m.state(), Exited);
        assert_eq!(m.describe(t0), "exit status 0");
        assert_eq!(m.exitcode(), Some(0));

        let (mut m, _) = machine_in(Running, t0);
        let fx = m.on_event(killed(9), &p, t0);
        assert_eq!(m.state(), Starting);
        assert!(fx.contains(&Effect::Log(
            Level::Info,
            "exited: killed by SIGKILL (unexpected)".into()
        )));
        assert_eq!(m.exitcode(), None);
        assert_eq!(m.restarts(), 1);
    }

    #[test]
    fn stale_timers_are_ignored() {
        let t0 = Instant::now();
        let p = policy();
        // The starttime timer of the first child must not promote the second.
        let mut m = Machine::new();
        m.on_event(Event::Start, &p, t0);
        let fx = m.on_event(Event::Spawned { pid: 1 }, &p, t0);
        let first = armed_generation(&fx).unwrap_or(0);
        m.on_event(Event::Stop, &p, t0);
        m.on_event(Event::Start, &p, t0);
        m.on_event(exited_pid(1, 0), &p, t0);
        m.on_event(Event::GroupGone { pgid: 1 }, &p, t0);
        assert_eq!(m.state(), Starting);
        m.on_event(Event::Spawned { pid: 2 }, &p, t0);
        assert!(acts(m.on_event(Event::TimerFired { generation: first }, &p, t0)).is_empty());
        assert_eq!(m.state(), Starting);
        // A cancelled BACKOFF timer is stale too.
        let (mut m, generation) = machine_in(Backoff, t0);
        m.on_event(Event::Stop, &p, t0);
        let generation = generation.unwrap_or(0);
        assert!(acts(m.on_event(Event::TimerFired { generation }, &p, t0)).is_empty());
        assert_eq!(m.state(), Stopped);
    }

    #[test]
    fn stop_escalates_then_waits_for_the_group() {
        let t0 = Instant::now();
        let p = policy();
        let (mut m, _) = machine_in(Running, t0);
        let fx = m.on_event(Event::Stop, &p, t0);
        assert!(fx.contains(&Effect::Log(Level::Info, "stop requested (SIGTERM)".into())));
        let generation = armed_generation(&fx).unwrap_or(0);
        let fx = m.on_event(Event::TimerFired { generation }, &p, t0);
        assert_eq!(
            fx,
            vec![
                Effect::Log(Level::Warn, "killed after stoptime (10s)".into()),
                Effect::KillGroup { pgid: PID }
            ]
        );
        let fx = acts(m.on_event(killed(9), &p, t0));
        assert_eq!(fx, vec![Effect::WatchGroup { pgid: PID }]);
        assert_eq!(
            m.describe(t0),
            format!("waiting for process group {PID} to exit, SIGKILL sent")
        );
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, t0));
        assert_eq!(fx, vec![stopped("stopped")]);
        assert_eq!(m.state(), Stopped);
        assert_eq!(m.describe(t0), "killed by SIGKILL");
    }

    #[test]
    fn leader_exit_then_group_gone_before_stoptime_cancels_the_timer() {
        let t0 = Instant::now();
        let p = policy();
        let (mut m, _) = machine_in(Stopping, t0);
        m.on_event(killed(15), &p, t0);
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, t0));
        assert_eq!(fx, vec![Effect::CancelTimer, stopped("stopped")]);
    }

    #[test]
    fn start_while_stopping_is_a_restart_and_a_later_stop_cancels_it() {
        let t0 = Instant::now();
        let p = policy();
        let (mut m, _) = machine_in(Stopping, t0);
        m.on_event(Event::Start, &p, t0);
        m.on_event(killed(15), &p, t0);
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, t0));
        assert_eq!(
            fx,
            vec![Effect::CancelTimer, stopped("stopped"), Effect::Spawn]
        );
        assert_eq!(m.state(), Starting);

        let (mut m, _) = machine_in(Stopping, t0);
        m.on_event(Event::Start, &p, t0);
        let fx = acts(m.on_event(Event::Stop, &p, t0));
        assert_eq!(fx, vec![start_failed("stop requested before it started")]);
        m.on_event(killed(15), &p, t0);
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, t0));
        assert_eq!(fx, vec![Effect::CancelTimer, stopped("stopped")]);
        assert_eq!(m.state(), Stopped);
    }

    #[test]
    fn descriptions_and_counters() {
        let t0 = Instant::now();
        let p = policy();
        let m = Machine::new();
        assert_eq!(m.describe(t0), "Not started");
        assert_eq!(m.uptime(t0), Duration::ZERO);
        let (m, _) = machine_in(Running, t0);
        let later = t0 + Duration::from_secs(3723);
        assert_eq!(m.describe(later), format!("pid {PID}, uptime 1:02:03"));
        assert_eq!(m.uptime(later), Duration::from_secs(3723));
        let (mut m, _) = machine_in(Stopping, t0);
        m.on_event(exited(0), &p, t0);
        m.on_event(Event::GroupGone { pgid: PID }, &p, t0);
        assert_eq!(m.describe(t0), "exit status 0");
        assert_eq!(hms(Duration::from_secs(59)), "0:00:59");
        // STOPPING counts down to the SIGKILL (stoptime after the stop).
        let (mut m, _) = machine_in(Running, t0);
        m.on_event(Event::Stop, &p, t0);
        let killing = p.stoptime;
        assert_eq!(
            m.describe(t0 + Duration::from_millis(200)),
            format!(
                "pid {PID}, stopping, SIGKILL in {}s",
                (killing - Duration::from_millis(200)).as_secs_f64().ceil()
            )
        );
        assert_eq!(
            m.describe(t0 + killing),
            format!("pid {PID}, stopping, SIGKILL sent")
        );
        assert_eq!(secs(Duration::from_millis(300)), "0.3s");
    }

    #[test]
    fn log_lines_are_short_and_consistent() {
        let t0 = Instant::now();
        let mut p = policy();
        p.exitcodes = vec![0];
        let (mut m, _) = machine_in(Running, t0);
        let fx = m.on_event(exited(3), &p, t0);
        let logs: Vec<_> = fx
            .into_iter()
            .filter_map(|e| match e {
                Effect::Log(l, s) => Some((l, s)),
                _ => None,
            })
            .collect();
        assert_eq!(
            logs,
            vec![(Level::Info, "exited: exit status 3 (unexpected)".into())]
        );
        let (mut m, _) = machine_in(Starting, t0);
        let fx = m.on_event(exited(1), &p, t0);
        assert!(fx.contains(&Effect::Log(Level::Info, "BACKOFF: retry in 1s".into())));
    }

    #[test]
    fn notifications_follow_the_transition_table() {
        use NotifyEvent as N;
        let code = ExitStatus::Code;
        let sig = ExitStatus::Signaled {
            signal: 9,
            core_dumped: false,
        };
        let last = Some(code(3));
        type Row = (
            ProcessState,
            ProcessState,
            Option<ExitStatus>,
            Vec<(NotifyEvent, Option<ExitStatus>)>,
        );
        let rows: Vec<Row> = vec![
            // No change, no exit: nothing.
            (Running, Running, None, vec![]),
            (Stopped, Stopped, None, vec![]),
            // States entered.
            (Starting, Running, None, vec![(N::Started, None)]),
            (Backoff, Starting, None, vec![]),
            (Stopped, Starting, None, vec![]),
            (Backoff, Stopped, None, vec![(N::Stopped, last)]),
            (Stopping, Stopped, None, vec![(N::Stopped, last)]),
            (Starting, Fatal, None, vec![(N::Fatal, None)]),
            // A restart: the remembered start began once the group was gone.
            (Stopping, Starting, None, vec![(N::Stopped, last)]),
            // Exits: expected (code 0) or not (code 1, any signal).
            (
                Running,
                Exited,
                Some(code(0)),
                vec![(N::Exited, Some(code(0)))],
            ),
            (
                Running,
                Exited,
                Some(code(1)),
                vec![
                    (N::UnexpectedExit, Some(code(1))),
                    (N::Exited, Some(code(1))),
                ],
            ),
            (
                Running,
                Starting,
                Some(sig),
                vec![(N::UnexpectedExit, Some(sig))],
            ),
            (Running, Starting, Some(code(0)), vec![]),
            (
                Starting,
                Backoff,
                Some(code(1)),
                vec![
                    (N::UnexpectedExit, Some(code(1))),
                    (N::Backoff, Some(code(1))),
                ],
            ),
            (
                Running,
                Fatal,
                Some(code(1)),
                vec![
                    (N::UnexpectedExit, Some(code(1))),
                    (N::Fatal, Some(code(1))),
                ],
            ),
            // An exit during a stop is never unexpected.
            (Stopping, Stopping, Some(sig), vec![]),
            (Stopping, Stopped, Some(code(1)), vec![(N::Stopped, last)]),
        ];
        for (before, after, exit, want) in rows {
            assert_eq!(
                notifications(before, after, exit, last, &policy()),
                want,
                "{before} -> {after} with exit {exit:?}"
            );
        }
    }
}
