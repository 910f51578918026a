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
//! late can never act). A state with two deadlines (STARTING with a ready
//! probe and an explicit `starttime`) arms the nearer one and re-arms for the
//! other when it fires. A current timer that fires counts as its deadline
//! reached, even if the clock read a hair earlier.
//!
//! # Readiness
//!
//! Without `ready`, STARTING becomes RUNNING once the child has lived
//! `starttime`. With `ready`, it becomes RUNNING when the actor reports that
//! the probe succeeded ([`Event::Ready`]), and not before `starttime` has
//! passed if `starttime` was written too. The probe starts at the spawn
//! ([`Effect::StartReadyProbe`]) and stops when the state moves on
//! ([`Effect::StopProbes`]). Still not ready `timeout` after the spawn
//! (extended by `EXTEND_TIMEOUT_USEC=`), the start failed: the group is
//! stopped like a user stop (stop signal, SIGKILL after `stoptime`) and,
//! once it is gone, the instance goes to BACKOFF with the reason `not ready
//! after 60s (tcp 127.0.0.1:5433: connection refused)`, the last probe
//! error the actor passed in ([`Event::NotReady`]), counted like an early
//! exit (`startretries`, then FATAL).
//!
//! Once RUNNING, `health` probes run ([`Effect::StartHealth`]); the machine
//! counts consecutive failures, and at `failures` the instance is restarted:
//! stopped (stop signal, then SIGKILL after `stoptime`) and, once the group
//! is gone, spawned again through the rate limit (`maxrestarts` within
//! `restartwindow`, else FATAL "restarting too often"), whatever
//! `autorestart` says: a failed health check is a restart request, not an
//! exit. A `watchdog` is the same with no `WATCHDOG=1` for that long. A
//! start or stop that arrives during such a stop joins it: a start waits for
//! the outcome of the retry, a stop makes it a plain stop.
//!
//! `before_start`, when set, runs before every spawn
//! ([`Effect::RunBeforeStart`]); STARTING has no child until it reports
//! ([`Event::BeforeStartDone`]); its failure is a failed start; a stop in the
//! meantime cancels it ([`Effect::CancelBeforeStart`]) and is STOPPED at once.
//!
//! Probe results, notify messages and health results carry the pid of the
//! child they are about; one about another child is ignored.
//!
//! # Transition table
//!
//! | State | Event | Next state | Effects |
//! |---|---|---|---|
//! | STOPPED, EXITED, FATAL | Start | STARTING | reset failures, restarts and FATAL reason; `Spawn` (`RunBeforeStart` first with `before_start`) |
//! | BACKOFF | Start | STARTING | `CancelTimer`; reset as above; `Spawn` (or `RunBeforeStart`) |
//! | STARTING | Start | STARTING | none: joins the pending start |
//! | RUNNING | Start | RUNNING | `Resolve(Started "already running")` |
//! | STOPPING (user stop) | Start | STOPPING | remembered: starts (as a user start) once STOPPED |
//! | STOPPING (not ready, unhealthy) | Start | STOPPING | none: joins the retry that follows |
//! | STARTING (before_start running) | BeforeStartDone ok | STARTING | `Spawn` |
//! | STARTING (before_start running) | BeforeStartDone failed | BACKOFF or FATAL | as a failed spawn: "before_start failed: …" |
//! | STARTING (before_start running) | Stop | STOPPED | `Resolve(StartFailed)`; `CancelBeforeStart`; `Resolve(Stopped)` |
//! | STARTING | Spawned, no `ready` | RUNNING if `starttime == 0`, else STARTING | `Resolve(Started)`, or `SetTimer(starttime)` |
//! | STARTING | Spawned, `ready` | STARTING | `StartReadyProbe`; `SetTimer(nearer of timeout and explicit starttime)` |
//! | STARTING | TimerFired (current), every wait over | RUNNING | failures = 0; `Resolve(Started)`; `StartHealth` with `health`; `SetTimer(watchdog)` with `watchdog` |
//! | STARTING | TimerFired (current), starttime over, probe not yet ok | STARTING | `SetTimer(rest of timeout)` |
//! | STARTING | Ready (the probe succeeded) | RUNNING if starttime is over (or not explicit), else STARTING | `StopProbes`; as above, or `SetTimer(rest of starttime)` |
//! | STARTING | NotReady (a probe failed) | STARTING | none: the error is kept for the reason |
//! | STARTING | ExtendTimeout | STARTING | the ready deadline is at least now + the extension; `SetTimer` (nearer deadline) |
//! | STARTING | TimerFired (current), ready timeout over | STOPPING (not ready) | `StopProbes`; `SignalGroup(stopsignal)`; `SetTimer(stoptime)` |
//! | STARTING | SpawnFailed, Exited (any status) | BACKOFF if failures <= startretries | failures += 1; `StopProbes` (if probing); `KillRemnants` (after an exit); `SetTimer(1s·2^(failures-1), max 30s)`; `Resolve(StartFailed)` |
//! | STARTING | SpawnFailed, Exited (any status) | FATAL if failures > startretries | `KillRemnants` (after an exit); `Resolve(StartFailed "…, N attempts")` |
//! | BACKOFF | TimerFired (current) | STARTING | restarts += 1; `Spawn` (or `RunBeforeStart`) |
//! | RUNNING | Exited, restart wanted, under the rate limit | STARTING | `StopProbes` (if probing); `KillRemnants`; restarts += 1; `Spawn` |
//! | RUNNING | Exited, restart wanted, `maxrestarts` used within `restartwindow` | FATAL | `KillRemnants`; "restarting too often" |
//! | RUNNING | Exited, no restart wanted | EXITED | `KillRemnants` |
//! | RUNNING | Health failed, fewer than `failures` in a row | RUNNING | logged; the failure is shown in `status` |
//! | RUNNING | Health ok | RUNNING | the count of failures is reset |
//! | RUNNING | Health failed `failures` times in a row | STOPPING (unhealthy) | `StopProbes`; `SignalGroup(stopsignal)`; `SetTimer(stoptime)` |
//! | RUNNING | Watchdog (`WATCHDOG=1`) | RUNNING | remembered; the watchdog timer is re-armed when it fires |
//! | RUNNING | TimerFired (current: watchdog), fed within `watchdog` | RUNNING | `SetTimer(rest of watchdog)` |
//! | RUNNING | TimerFired (current: watchdog), not fed for `watchdog` | STOPPING (unhealthy) | as a failed health check |
//! | STARTING, RUNNING | Stop | STOPPING | `StopProbes` (if probing); `SignalGroup(stopsignal)`; `SetTimer(stoptime)`; a pending start resolves failed |
//! | STOPPING | TimerFired (current) | STOPPING | `KillGroup` (SIGKILL to the group) |
//! | STOPPING | Exited (leader) | STOPPING | `WatchGroup` (wait until the group is empty) |
//! | STOPPING (user stop) | GroupGone (leader already exited) | STOPPED, or STARTING if a start was remembered | `CancelTimer`; `Resolve(Stopped)`; then as Start from STOPPED |
//! | STOPPING (not ready) | GroupGone | BACKOFF or FATAL | `CancelTimer`; as a failed start, with the not-ready reason |
//! | STOPPING (unhealthy) | GroupGone | STARTING, or FATAL over the rate limit | `CancelTimer`; restarts += 1; `Spawn` (or "restarting too often") |
//! | STOPPING | Stop | STOPPING (user stop) | joins; cancels a remembered start, and answers a start waiting for a retry (`Resolve(StartFailed)`) |
//! | BACKOFF | Stop | STOPPED | `CancelTimer`; `Resolve(Stopped)` |
//! | STOPPED, EXITED, FATAL | Stop | unchanged | `Resolve(Stopped "not running")` |
//! | STARTING, RUNNING | PolicyChanged (`ready`, `health`, `watchdog` changed) | re-decided | the probes restart under the new policy (`StopProbes`, `StartReadyProbe`/`StartHealth`), deadlines counted from the spawn; the watchdog re-armed or disarmed |
//! | any | TimerFired (stale), Exited (other pid), GroupGone (not awaited), a probe result or notify message about another child | unchanged | none |
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

use crate::config::{AutoRestart, NotifyEvent, Probe, ProgramConfig};
use crate::sys::exit::ExitStatus;
use proto::{ProcessState, Signal};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// First BACKOFF delay; doubled for each further failed start.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest BACKOFF delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest `STATUS=` text kept, in characters; longer is cut (with `…`).
pub const STATUS_TEXT_MAX: usize = 200;

/// The part of a program's config that drives decisions. Swapped whole by
/// `UpdatePolicy`; a timer already armed keeps its deadline, except that a
/// change of `ready`, `health` or `watchdog` is applied at once
/// ([`Event::PolicyChanged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub autorestart: AutoRestart,
    pub exitcodes: Vec<i32>,
    pub starttime: Duration,
    pub startretries: u32,
    pub stopsignal: Signal,
    pub stoptime: Duration,
    pub maxrestarts: u32,
    pub restartwindow: Duration,
    /// `ready:`'s probe and timeout; `None`: alive for `starttime` is ready.
    /// (Its `interval` is the actor's business.)
    pub ready: Option<ReadyPolicy>,
    /// `starttime` was written: with `ready`, RUNNING also waits for it.
    pub starttime_explicit: bool,
    /// `health:`'s probe and failure count.
    pub health: Option<HealthPolicy>,
    /// `watchdog:`: the longest silence between two `WATCHDOG=1`.
    pub watchdog: Option<Duration>,
    /// `before_start:` is set: every spawn runs it first.
    pub before_start: bool,
}

/// What the machine needs of `ready:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyPolicy {
    /// Named in the status line and the failure reason.
    pub probe: Probe,
    /// From the spawn to the moment the start failed.
    pub timeout: Duration,
}

/// What the machine needs of `health:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Named in the log and the restart reason.
    pub probe: Probe,
    /// Consecutive failures that restart the instance (≥ 1).
    pub failures: u32,
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
            ready: program.ready.as_ref().map(|r| ReadyPolicy {
                probe: r.probe.clone(),
                timeout: r.timeout,
            }),
            starttime_explicit: program.starttime_explicit,
            health: program.health.as_ref().map(|h| HealthPolicy {
                probe: h.probe.clone(),
                failures: h.failures.max(1),
            }),
            watchdog: program.watchdog,
            before_start: program.before_start.is_some(),
        }
    }

    /// An exit code in `exitcodes`; a death by signal never is.
    pub fn is_expected(&self, status: ExitStatus) -> bool {
        status.code().is_some_and(|c| self.exitcodes.contains(&c))
    }

    /// Whether a start waits for `starttime` after the spawn: always without
    /// a ready probe, only when written with one.
    fn waits_for_starttime(&self) -> bool {
        !self.starttime.is_zero() && (self.ready.is_none() || self.starttime_explicit)
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
    /// `before_start` finished (answer to [`Effect::RunBeforeStart`]): ok,
    /// or why it failed (exit status or timeout, and its last lines).
    BeforeStartDone { result: Result<(), String> },
    /// The ready probe of child `pid` succeeded (or it sent `READY=1`).
    Ready { pid: u32 },
    /// One ready probe of child `pid` failed: why, short
    /// (`connection refused`), without the probe's name.
    NotReady { pid: u32, error: String },
    /// `EXTEND_TIMEOUT_USEC=`: child `pid` needs at least `by` from now.
    ExtendTimeout { pid: u32, by: Duration },
    /// One health probe of child `pid`: ok, or why it failed.
    Health {
        pid: u32,
        result: Result<(), String>,
    },
    /// `WATCHDOG=1` from child `pid`.
    Watchdog { pid: u32 },
    /// `STATUS=…` from child `pid`.
    StatusText { pid: u32, text: String },
    /// The policy was replaced (reload); `old` is the previous one.
    PolicyChanged { old: Box<Policy> },
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
    /// Run `before_start` (one at a time per program); answer with
    /// `BeforeStartDone`, then expect `Spawn`.
    RunBeforeStart,
    /// A stop came while `before_start` runs: abandon it (its group is
    /// killed); no `BeforeStartDone` is expected.
    CancelBeforeStart,
    /// Begin probing the current child for readiness every `interval`;
    /// report `Ready` once, `NotReady` for each failure.
    StartReadyProbe,
    /// Begin the health checks of the current child; report each as `Health`.
    StartHealth,
    /// Stop probing: cancel the loop and the probe in flight.
    StopProbes,
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

/// Why the instance is STOPPING.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum StopCause {
    /// Asked to (`stop`, `restart`, a reload, shutdown).
    #[default]
    Requested,
    /// Not ready in time: BACKOFF once the group is gone (the reason).
    NotReady(String),
    /// A failed health check or a starved watchdog: spawned again once the
    /// group is gone (why).
    Unhealthy(String),
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
    /// Generation of the armed timer, and its deadline.
    timer: Option<(u64, Instant)>,
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
    /// Why the current STOPPING began.
    stop_cause: StopCause,
    /// STARTING: `before_start` runs (since then); no child yet.
    hook: Option<Instant>,
    /// Probes were started and not stopped since.
    probing: bool,
    /// STARTING with a ready probe: what it waits for (`tcp 127.0.0.1:5433`),
    /// until the probe succeeds.
    waiting_for: Option<String>,
    /// STARTING with a ready probe: when the start fails.
    ready_deadline: Option<Instant>,
    /// STARTING: when `starttime` is over (`None`: no wait for it).
    starttime_at: Option<Instant>,
    /// The ready probe's last failure in this spawn.
    probe_error: Option<String>,
    /// RUNNING with `health`: the checks run.
    health_on: bool,
    /// Consecutive failed health checks, the threshold, the last failure.
    health_failures: u32,
    health_limit: u32,
    health_error: Option<String>,
    /// RUNNING with `watchdog`: the last `WATCHDOG=1` (or RUNNING's start).
    fed: Option<Instant>,
    /// The last `STATUS=` of this spawn.
    status_text: Option<String>,
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
            stop_cause: StopCause::Requested,
            hook: None,
            probing: false,
            waiting_for: None,
            ready_deadline: None,
            starttime_at: None,
            probe_error: None,
            health_on: false,
            health_failures: 0,
            health_limit: 0,
            health_error: None,
            fed: None,
            status_text: None,
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

    /// RUNNING: started and, with a ready probe, ready.
    pub fn is_ready(&self) -> bool {
        self.state == ProcessState::Running
    }

    /// The health verdict while RUNNING with `health`: `ok` until a check
    /// fails, `failing` after a failed one; `None` otherwise.
    pub fn health(&self) -> Option<&'static str> {
        (self.state == ProcessState::Running && self.health_on).then_some(
            if self.health_failures > 0 {
                "failing"
            } else {
                "ok"
            },
        )
    }

    /// The last `STATUS=` text of the current child.
    pub fn status_text(&self) -> Option<&str> {
        self.status_text.as_deref()
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
                let doing = match &self.stop_cause {
                    StopCause::Requested => "stopping".to_string(),
                    StopCause::NotReady(reason) => format!("stopping: {reason}"),
                    StopCause::Unhealthy(why) => format!("restarting: {why}"),
                };
                match (self.pid, self.pgid) {
                    (Some(pid), _) => format!("pid {pid}, {doing}, {kill}"),
                    (None, Some(pgid)) if self.stop_cause == StopCause::Requested => {
                        format!("waiting for process group {pgid} to exit, {kill}")
                    }
                    (None, Some(pgid)) => {
                        format!("{doing}, waiting for process group {pgid} to exit, {kill}")
                    }
                    (None, None) => format!("{doing}, {kill}"),
                }
            }
            ProcessState::Starting if self.pid.is_none() && self.hook.is_some() => {
                let ran = self
                    .hook
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or_default();
                format!("running before_start ({})", tenths(ran))
            }
            ProcessState::Starting if self.pid.is_some() && self.waiting_for.is_some() => {
                let probe = self.waiting_for.as_deref().unwrap_or_default();
                format!("waiting for {probe} ({})", tenths(self.uptime(now)))
            }
            ProcessState::Starting
                if self.pid.is_some()
                    && self.starttime_at.is_some()
                    && self.ready_deadline.is_some() =>
            {
                let of = self
                    .starttime_at
                    .zip(self.since)
                    .map(|(at, since)| at.saturating_duration_since(since))
                    .unwrap_or_default();
                format!(
                    "ready, waiting for starttime ({} of {})",
                    tenths(self.uptime(now)),
                    secs(of)
                )
            }
            ProcessState::Running if self.health_failures > 0 => {
                let pid = self.pid.map(|p| format!("pid {p}, ")).unwrap_or_default();
                format!(
                    "{pid}uptime {}, health failing ({} of {}): {}",
                    hms(self.uptime(now)),
                    self.health_failures,
                    self.health_limit,
                    self.health_error.as_deref().unwrap_or_default()
                )
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
            Event::Start => self.on_start(policy, now, &mut fx),
            Event::Stop => self.on_stop(policy, now, &mut fx),
            Event::Spawned { pid } => {
                if self.state == ProcessState::Starting && self.pid.is_none() && self.hook.is_none()
                {
                    self.on_spawned(pid, policy, now, &mut fx);
                }
            }
            Event::SpawnFailed { error } => {
                if self.state == ProcessState::Starting && self.pid.is_none() && self.hook.is_none()
                {
                    let cause = format!("spawn error: {error}");
                    fx.push(Effect::Log(Level::Error, cause.clone()));
                    self.failed_start(cause.clone(), cause, policy, now, &mut fx);
                }
            }
            Event::BeforeStartDone { result } => {
                if self.state == ProcessState::Starting && self.hook.take().is_some() {
                    match result {
                        Ok(()) => fx.push(Effect::Spawn),
                        Err(e) => {
                            let cause = format!("before_start failed: {e}");
                            fx.push(Effect::Log(Level::Error, cause.clone()));
                            self.failed_start(cause.clone(), cause, policy, now, &mut fx);
                        }
                    }
                }
            }
            Event::Exited { pid, status } => {
                if self.pid == Some(pid) {
                    self.on_exit(status, policy, now, &mut fx);
                }
            }
            Event::TimerFired { generation } => {
                if let Some((armed, at)) = self.timer
                    && armed == generation
                {
                    self.timer = None;
                    self.on_timer(policy, now.max(at), &mut fx);
                }
            }
            Event::GroupGone { pgid } => {
                if self.state == ProcessState::Stopping
                    && self.pid.is_none()
                    && self.pgid == Some(pgid)
                {
                    self.disarm(&mut fx);
                    self.pgid = None;
                    self.on_group_gone(policy, now, &mut fx);
                }
            }
            Event::Ready { pid } => {
                if self.awaits_probe(pid, policy) {
                    self.waiting_for = None;
                    self.stop_probes(&mut fx);
                    let after = tenths(self.uptime(now));
                    let probe = policy.ready.as_ref().map(|r| r.probe.to_string());
                    fx.push(Effect::Log(
                        Level::Info,
                        format!("ready after {after} ({})", probe.unwrap_or_default()),
                    ));
                    self.check_start(policy, now, &mut fx);
                }
            }
            Event::NotReady { pid, error } => {
                if self.awaits_probe(pid, policy) {
                    self.probe_error = Some(error);
                }
            }
            Event::ExtendTimeout { pid, by } => {
                if self.awaits_probe(pid, policy)
                    && let Some(deadline) = self.ready_deadline
                    && now + by > deadline
                {
                    self.ready_deadline = Some(now + by);
                    fx.push(Effect::Log(
                        Level::Info,
                        format!("start timeout extended to {} from now", secs(by)),
                    ));
                    self.check_start(policy, now, &mut fx);
                }
            }
            Event::Health { pid, result } => {
                if self.state == ProcessState::Running && self.pid == Some(pid) && self.health_on {
                    self.on_health(result, policy, now, &mut fx);
                }
            }
            Event::Watchdog { pid } => {
                if self.state == ProcessState::Running && self.pid == Some(pid) {
                    self.fed = Some(now);
                }
            }
            Event::StatusText { pid, text } => {
                if self.pid == Some(pid) {
                    self.status_text = Some(bounded(text));
                }
            }
            Event::PolicyChanged { old } => self.on_policy(&old, policy, now, &mut fx),
        }
        fx
    }

    fn on_start(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
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
                self.spawn(policy, now, fx);
            }
            ProcessState::Starting => {}
            ProcessState::Running => {
                fx.push(Effect::Resolve(Resolve::Started("already running".into())));
            }
            // A stop of our own (not ready, unhealthy) is followed by a
            // retry whose outcome the start waits for.
            ProcessState::Stopping => {
                if self.stop_cause == StopCause::Requested {
                    self.start_pending = true;
                }
            }
        }
    }

    fn on_spawned(&mut self, pid: u32, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        self.pid = Some(pid);
        self.pgid = Some(pid);
        self.since = Some(now);
        self.probe_error = None;
        self.status_text = None;
        fx.push(Effect::Log(Level::Info, "spawned".into()));
        self.starttime_at = policy.waits_for_starttime().then(|| now + policy.starttime);
        self.ready_deadline = policy.ready.as_ref().map(|r| now + r.timeout);
        self.waiting_for = policy.ready.as_ref().map(|r| r.probe.to_string());
        if policy.ready.is_some() {
            self.probing = true;
            fx.push(Effect::StartReadyProbe);
        }
        self.check_start(policy, now, fx);
    }

    /// STARTING with a child `pid` whose ready probe has not succeeded.
    fn awaits_probe(&self, pid: u32, policy: &Policy) -> bool {
        self.state == ProcessState::Starting
            && self.pid == Some(pid)
            && policy.ready.is_some()
            && self.waiting_for.is_some()
    }

    /// STARTING with a child: RUNNING when every wait is over, the start
    /// failed when the ready deadline passed, else the timer for the
    /// nearer deadline.
    fn check_start(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        let starttime = self.starttime_at.filter(|&at| now < at);
        let probe = if self.waiting_for.is_some() {
            self.ready_deadline
        } else {
            None
        };
        if starttime.is_none() && self.waiting_for.is_none() {
            self.disarm(fx);
            self.enter_running(policy, now, fx);
            return;
        }
        if let Some(deadline) = probe
            && now >= deadline
        {
            self.not_ready(policy, now, fx);
            return;
        }
        if let Some(at) = [starttime, probe].into_iter().flatten().min() {
            fx.push(self.arm(now, at - now));
        }
    }

    /// The ready deadline passed: stop the group; BACKOFF once it is gone.
    fn not_ready(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        let waited = self
            .ready_deadline
            .zip(self.since)
            .map(|(deadline, since)| deadline.saturating_duration_since(since))
            .unwrap_or_default();
        let waited = Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
        let last = match (&policy.ready, &self.probe_error) {
            (Some(r), Some(e)) => format!("{}: {e}", r.probe),
            (Some(r), None) => format!("{}: {}", r.probe, silence(&r.probe)),
            (None, _) => "no probe".to_string(),
        };
        let reason = format!("not ready after {} ({last})", secs(waited));
        fx.push(Effect::Log(Level::Warn, format!("{reason}; stopping it")));
        self.waiting_for = None;
        self.ready_deadline = None;
        self.starttime_at = None;
        self.stop_probes(fx);
        self.stop_cause = StopCause::NotReady(reason);
        self.begin_stop(policy, now, fx);
    }

    fn on_health(
        &mut self,
        result: Result<(), String>,
        policy: &Policy,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(health) = &policy.health else {
            return;
        };
        match result {
            Ok(()) => {
                if self.health_failures > 0 {
                    fx.push(Effect::Log(Level::Info, "health check passes again".into()));
                }
                self.health_failures = 0;
                self.health_error = None;
            }
            Err(e) => {
                self.health_failures += 1;
                self.health_limit = health.failures;
                let (n, of) = (self.health_failures, health.failures);
                let failure = format!("{}: {e}", health.probe);
                fx.push(Effect::Log(
                    Level::Warn,
                    format!("health check failed ({n} of {of}): {failure}"),
                ));
                self.health_error = Some(failure.clone());
                if n >= of {
                    let times = if n == 1 { "time" } else { "times in a row" };
                    let why = format!("health check failed {n} {times} ({failure})");
                    self.unhealthy(why, policy, now, fx);
                }
            }
        }
    }

    /// A failed health check or a starved watchdog: stop, then restart.
    fn unhealthy(&mut self, why: String, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        fx.push(Effect::Log(Level::Warn, format!("{why}: restarting")));
        self.leave_running(fx);
        self.stop_cause = StopCause::Unhealthy(why);
        self.begin_stop(policy, now, fx);
    }

    fn on_policy(&mut self, old: &Policy, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        match self.state {
            ProcessState::Starting if self.pid.is_some() => {
                if old.ready == policy.ready && old.starttime_explicit == policy.starttime_explicit
                {
                    return;
                }
                // Re-decided under the new `ready`, deadlines from the spawn.
                self.stop_probes(fx);
                let since = self.since.unwrap_or(now);
                self.ready_deadline = policy.ready.as_ref().map(|r| since + r.timeout);
                self.starttime_at = policy
                    .waits_for_starttime()
                    .then(|| since + policy.starttime);
                self.waiting_for = policy.ready.as_ref().map(|r| r.probe.to_string());
                if policy.ready.is_some() {
                    self.probing = true;
                    fx.push(Effect::StartReadyProbe);
                }
                self.check_start(policy, now, fx);
            }
            ProcessState::Running => {
                if old.health != policy.health {
                    self.stop_probes(fx);
                    self.start_health(policy, fx);
                }
                if old.watchdog != policy.watchdog {
                    match policy.watchdog {
                        Some(watchdog) => {
                            self.fed = Some(now);
                            fx.push(self.arm(now, watchdog));
                        }
                        None => {
                            self.fed = None;
                            self.disarm(fx);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_stop(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        match self.state {
            // No child yet: `before_start` runs.
            ProcessState::Starting if self.pgid.is_none() => {
                fx.push(Effect::Resolve(Resolve::StartFailed(
                    "stop requested before it reached RUNNING".into(),
                )));
                if self.hook.take().is_some() {
                    fx.push(Effect::CancelBeforeStart);
                }
                self.disarm(fx);
                self.state = ProcessState::Stopped;
                fx.push(Effect::Log(Level::Info, "stopped".into()));
                fx.push(Effect::Resolve(Resolve::Stopped("stopped".into())));
            }
            ProcessState::Starting | ProcessState::Running => {
                if self.state == ProcessState::Starting {
                    fx.push(Effect::Resolve(Resolve::StartFailed(
                        "stop requested before it reached RUNNING".into(),
                    )));
                }
                let signal = policy.stopsignal;
                fx.push(Effect::Log(
                    Level::Info,
                    format!("stop requested (SIG{signal})"),
                ));
                self.waiting_for = None;
                self.leave_running(fx);
                self.stop_cause = StopCause::Requested;
                self.begin_stop(policy, now, fx);
            }
            ProcessState::Backoff => {
                self.disarm(fx);
                self.state = ProcessState::Stopped;
                fx.push(Effect::Log(Level::Info, "stopped".into()));
                fx.push(Effect::Resolve(Resolve::Stopped("stopped".into())));
            }
            ProcessState::Stopping => {
                match std::mem::take(&mut self.stop_cause) {
                    StopCause::Requested => {}
                    StopCause::NotReady(_) => {
                        fx.push(Effect::Log(Level::Info, "stop requested".into()));
                        fx.push(Effect::Resolve(Resolve::StartFailed(
                            "stop requested before it reached RUNNING".into(),
                        )));
                    }
                    StopCause::Unhealthy(_) => {
                        fx.push(Effect::Log(Level::Info, "stop requested".into()));
                        fx.push(Effect::Resolve(Resolve::StartFailed(
                            "stop requested before it restarted".into(),
                        )));
                    }
                }
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

    /// The stop signal to the group, SIGKILL after `stoptime`.
    fn begin_stop(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        self.state = ProcessState::Stopping;
        self.kill = Some(Kill::At(now + policy.stoptime));
        if let Some(pgid) = self.pgid {
            fx.push(Effect::SignalGroup {
                pgid,
                signal: policy.stopsignal,
            });
        }
        fx.push(self.arm(now, policy.stoptime));
    }

    fn on_group_gone(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        match std::mem::take(&mut self.stop_cause) {
            StopCause::Requested => {
                self.state = ProcessState::Stopped;
                fx.push(Effect::Log(Level::Info, "stopped".into()));
                fx.push(Effect::Resolve(Resolve::Stopped("stopped".into())));
                if std::mem::take(&mut self.start_pending) {
                    self.on_start(policy, now, fx);
                }
            }
            StopCause::NotReady(reason) => {
                self.failed_start(reason.clone(), reason, policy, now, fx);
            }
            StopCause::Unhealthy(_) => self.policy_restart(policy, now, fx),
        }
    }

    fn on_exit(&mut self, status: ExitStatus, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        self.pid = None;
        self.since = None;
        self.last_exit = Some(status);
        match self.state {
            ProcessState::Starting => {
                self.disarm(fx);
                self.stop_probes(fx);
                let when = if self.waiting_for.take().is_some() {
                    "before it was ready"
                } else {
                    "during starttime"
                };
                fx.push(Effect::Log(
                    Level::Info,
                    format!("exited: {status} ({when})"),
                ));
                self.kill_remnants(fx);
                let cause = match status {
                    ExitStatus::Code(c) => format!("exited with status {c} {when}"),
                    ExitStatus::Signaled { .. } => format!("{status} {when}"),
                };
                let fatal = format!("exited too quickly ({status})");
                self.failed_start(cause, fatal, policy, now, fx);
            }
            ProcessState::Running => {
                let expected = policy.is_expected(status);
                let word = if expected { "expected" } else { "unexpected" };
                fx.push(Effect::Log(
                    Level::Info,
                    format!("exited: {status} ({word})"),
                ));
                self.leave_running(fx);
                self.disarm(fx);
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
                self.policy_restart(policy, now, fx);
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

    /// An automatic restart, unless `maxrestarts` were used within
    /// `restartwindow` (then FATAL).
    fn policy_restart(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
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
            self.spawn(policy, now, fx);
        }
    }

    fn on_timer(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        match self.state {
            ProcessState::Starting => {
                if self.pid.is_some() {
                    self.check_start(policy, now, fx);
                }
            }
            ProcessState::Backoff => {
                self.restarts += 1;
                self.spawn(policy, now, fx);
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
            // The watchdog: fed since it was armed, or starved.
            ProcessState::Running => {
                if let (Some(watchdog), Some(fed)) = (policy.watchdog, self.fed) {
                    let due = fed + watchdog;
                    if now >= due {
                        let why = format!("no WATCHDOG=1 for {}", secs(watchdog));
                        self.unhealthy(why, policy, now, fx);
                    } else {
                        fx.push(self.arm(now, due - now));
                    }
                }
            }
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal => {}
        }
    }

    /// STARTING with no child yet: `before_start` first when set.
    fn spawn(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        self.state = ProcessState::Starting;
        self.pid = None;
        self.since = None;
        self.waiting_for = None;
        self.starttime_at = None;
        self.ready_deadline = None;
        if policy.before_start {
            self.hook = Some(now);
            fx.push(Effect::RunBeforeStart);
        } else {
            fx.push(Effect::Spawn);
        }
    }

    fn enter_running(&mut self, policy: &Policy, now: Instant, fx: &mut Vec<Effect>) {
        self.state = ProcessState::Running;
        self.failures = 0;
        self.reason = None;
        self.starttime_at = None;
        self.ready_deadline = None;
        fx.push(Effect::Log(Level::Info, "entered RUNNING".into()));
        fx.push(Effect::Resolve(Resolve::Started("started".into())));
        self.start_health(policy, fx);
        if let Some(watchdog) = policy.watchdog {
            self.fed = Some(now);
            fx.push(self.arm(now, watchdog));
        }
    }

    fn start_health(&mut self, policy: &Policy, fx: &mut Vec<Effect>) {
        self.health_failures = 0;
        self.health_error = None;
        self.health_on = policy.health.is_some();
        if let Some(health) = &policy.health {
            self.health_limit = health.failures;
            self.probing = true;
            fx.push(Effect::StartHealth);
        }
    }

    /// Health checks and the watchdog end with RUNNING (and probes with
    /// STARTING).
    fn leave_running(&mut self, fx: &mut Vec<Effect>) {
        self.stop_probes(fx);
        self.health_on = false;
        self.health_failures = 0;
        self.health_error = None;
        self.fed = None;
    }

    fn stop_probes(&mut self, fx: &mut Vec<Effect>) {
        if std::mem::take(&mut self.probing) {
            fx.push(Effect::StopProbes);
        }
    }

    /// `cause` explains one failure; `fatal_cause` prefixes the FATAL reason.
    fn failed_start(
        &mut self,
        cause: String,
        fatal_cause: String,
        policy: &Policy,
        now: Instant,
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
        fx.push(self.arm(now, delay));
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

    fn arm(&mut self, now: Instant, after: Duration) -> Effect {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.timer = Some((generation, now + after));
        Effect::SetTimer { generation, after }
    }

    fn disarm(&mut self, fx: &mut Vec<Effect>) {
        if self.timer.take().is_some() {
            fx.push(Effect::CancelTimer);
        }
    }
}

/// What a ready probe that never failed in words was missing.
fn silence(probe: &Probe) -> &'static str {
    match probe {
        Probe::Notify => "no READY=1",
        Probe::Log(_) => "no line matched",
        Probe::Tcp { .. } | Probe::Http { .. } | Probe::Exec { .. } => "no answer",
    }
}

/// A `STATUS=` text, cut to [`STATUS_TEXT_MAX`] characters.
fn bounded(text: String) -> String {
    if text.chars().count() <= STATUS_TEXT_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(STATUS_TEXT_MAX).collect();
    cut.push('…');
    cut
}

/// `2.3s`: a measured wait, to the tenth.
pub fn tenths(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
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
            ready: None,
            starttime_explicit: false,
            health: None,
            watchdog: None,
            before_start: false,
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
            // Readiness: a start that was not ready in time, a failed
            // health check (stopping is no event; what follows is).
            (Starting, Stopping, None, vec![]),
            (Running, Stopping, None, vec![]),
            (Stopping, Backoff, None, vec![(N::Backoff, None)]),
            (Stopping, Fatal, None, vec![(N::Fatal, None)]),
        ];
        for (before, after, exit, want) in rows {
            assert_eq!(
                notifications(before, after, exit, last, &policy()),
                want,
                "{before} -> {after} with exit {exit:?}"
            );
        }
    }

    // ---- readiness, health, watchdog, before_start ----

    const TCP: &str = "tcp 127.0.0.1:5433";

    fn tcp() -> Probe {
        Probe::Tcp {
            host: "127.0.0.1".into(),
            port: 5433,
        }
    }

    /// The default policy with a tcp ready probe of `timeout` seconds.
    fn ready_policy(timeout: u64) -> Policy {
        let mut p = policy();
        p.ready = Some(ReadyPolicy {
            probe: tcp(),
            timeout: Duration::from_secs(timeout),
        });
        p
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn logs(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Log(_, s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Started and spawned under `p`: STARTING with child `PID`.
    fn spawned(p: &Policy, t0: Instant) -> (Machine, Vec<Effect>) {
        let mut m = Machine::new();
        m.on_event(Event::Start, p, t0);
        let fx = m.on_event(Event::Spawned { pid: PID }, p, t0);
        (m, fx)
    }

    fn fire(m: &mut Machine, fx: &[Effect], p: &Policy, now: Instant) -> Vec<Effect> {
        let generation = armed_generation(fx).unwrap_or(0);
        m.on_event(Event::TimerFired { generation }, p, now)
    }

    #[test]
    fn with_a_ready_probe_starting_waits_for_the_probe_not_for_starttime() {
        let t0 = Instant::now();
        let p = ready_policy(60);
        let (mut m, fx) = spawned(&p, t0);
        assert_eq!(
            acts(fx),
            vec![
                Effect::StartReadyProbe,
                Effect::SetTimer {
                    generation: 1,
                    after: Duration::from_secs(60),
                }
            ]
        );
        assert_eq!(m.state(), Starting);
        assert!(!m.is_ready());
        assert_eq!(
            m.describe(at(t0, 2300)),
            format!("waiting for {TCP} (2.3s)")
        );
        // A failed probe is kept for the reason, and changes nothing else.
        let fx = m.on_event(
            Event::NotReady {
                pid: PID,
                error: "connection refused".into(),
            },
            &p,
            at(t0, 2400),
        );
        assert!(fx.is_empty());
        // starttime (1 s, not written) is not waited for.
        let fx = m.on_event(Event::Ready { pid: PID }, &p, at(t0, 500));
        assert_eq!(
            acts(fx.clone()),
            vec![Effect::StopProbes, Effect::CancelTimer, started("started")]
        );
        assert_eq!(logs(&fx)[0], format!("ready after 0.5s ({TCP})"));
        assert_eq!(m.state(), Running);
        assert!(m.is_ready());
        assert_eq!(m.health(), None, "no health configured");
    }

    #[test]
    fn an_explicit_starttime_and_the_probe_must_both_pass_in_either_order() {
        let t0 = Instant::now();
        let mut p = ready_policy(10);
        p.starttime = Duration::from_secs(3);
        p.starttime_explicit = true;
        // starttime first: the timer is re-armed for the ready deadline.
        let (mut m, fx) = spawned(&p, t0);
        assert!(fx.contains(&Effect::SetTimer {
            generation: 1,
            after: Duration::from_secs(3)
        }));
        let fx = fire(&mut m, &fx, &p, at(t0, 3000));
        assert_eq!(
            acts(fx),
            vec![Effect::SetTimer {
                generation: 2,
                after: Duration::from_secs(7)
            }]
        );
        assert_eq!(m.state(), Starting);
        let fx = m.on_event(Event::Ready { pid: PID }, &p, at(t0, 4000));
        assert_eq!(
            acts(fx),
            vec![Effect::StopProbes, Effect::CancelTimer, started("started")]
        );
        assert_eq!(m.state(), Running);

        // The probe first: RUNNING waits for the rest of starttime.
        let (mut m, _) = spawned(&p, t0);
        let fx = m.on_event(Event::Ready { pid: PID }, &p, at(t0, 1000));
        assert_eq!(
            acts(fx.clone()),
            vec![
                Effect::StopProbes,
                Effect::SetTimer {
                    generation: 2,
                    after: Duration::from_secs(2)
                }
            ]
        );
        assert_eq!(
            m.describe(at(t0, 1500)),
            "ready, waiting for starttime (1.5s of 3s)"
        );
        let fx = fire(&mut m, &fx, &p, at(t0, 3000));
        assert_eq!(acts(fx), vec![started("started")]);
        assert_eq!(m.state(), Running);
    }

    #[test]
    fn not_ready_in_time_stops_the_group_then_backs_off_naming_the_probe_then_fatal() {
        let t0 = Instant::now();
        let p = ready_policy(2);
        let (mut m, fx) = spawned(&p, t0);
        m.on_event(
            Event::NotReady {
                pid: PID,
                error: "connection refused".into(),
            },
            &p,
            at(t0, 1900),
        );
        let reason = format!("not ready after 2s ({TCP}: connection refused)");
        let fx = fire(&mut m, &fx, &p, at(t0, 2000));
        assert_eq!(logs(&fx), vec![format!("{reason}; stopping it")]);
        assert_eq!(
            acts(fx),
            vec![
                Effect::StopProbes,
                Effect::SignalGroup {
                    pgid: PID,
                    signal: Signal::Term
                },
                Effect::SetTimer {
                    generation: 2,
                    after: Duration::from_secs(10)
                },
            ]
        );
        assert_eq!(m.state(), Stopping);
        assert_eq!(
            m.describe(at(t0, 2000)),
            format!("pid {PID}, stopping: {reason}, SIGKILL in 10s")
        );
        // The start is answered once the group is gone, with the reason.
        assert_eq!(
            acts(m.on_event(killed(15), &p, at(t0, 2100))),
            vec![Effect::WatchGroup { pgid: PID }]
        );
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, at(t0, 2100)));
        assert_eq!(
            fx,
            vec![
                Effect::CancelTimer,
                Effect::SetTimer {
                    generation: 3,
                    after: Duration::from_secs(1)
                },
                start_failed(&format!("{reason} (retrying in 1s)")),
            ]
        );
        assert_eq!(m.state(), Backoff);
        assert_eq!(m.describe(t0), format!("{reason} (retrying in 1s)"));
        // Counted like an early exit: startretries 2, three attempts.
        let mut fx = fx;
        for attempt in 2..=3 {
            let t = at(t0, 10_000 * attempt);
            let respawn = fire(&mut m, &fx, &p, t);
            assert!(respawn.contains(&Effect::Spawn));
            let up = m.on_event(Event::Spawned { pid: PID }, &p, t);
            let stop = fire(&mut m, &up, &p, t + Duration::from_secs(2));
            assert_eq!(m.state(), Stopping, "attempt {attempt}");
            m.on_event(killed(15), &p, t + Duration::from_secs(2));
            fx = m.on_event(
                Event::GroupGone { pgid: PID },
                &p,
                t + Duration::from_secs(2),
            );
            let _ = stop;
        }
        assert_eq!(m.state(), Fatal);
        assert_eq!(
            m.describe(t0),
            format!("not ready after 2s ({TCP}: no answer), 3 attempts"),
            "each spawn starts with no probe error"
        );
    }

    #[test]
    fn a_probe_that_never_answered_says_what_it_missed() {
        let t0 = Instant::now();
        for (probe, missed) in [
            (Probe::Notify, "notify: no READY=1"),
            (
                Probe::Log(crate::config::LogPattern(
                    regex::Regex::new("listening").unwrap_or_else(|_| unreachable!()),
                )),
                "log /listening/: no line matched",
            ),
        ] {
            let mut p = ready_policy(1);
            if let Some(r) = p.ready.as_mut() {
                r.probe = probe;
            }
            let (mut m, fx) = spawned(&p, t0);
            let fx = fire(&mut m, &fx, &p, at(t0, 1000));
            assert_eq!(
                logs(&fx),
                vec![format!("not ready after 1s ({missed}); stopping it")]
            );
        }
    }

    #[test]
    fn a_start_during_a_not_ready_stop_waits_for_the_retry_and_a_stop_makes_it_a_stop() {
        let t0 = Instant::now();
        let p = ready_policy(1);
        let (mut m, fx) = spawned(&p, t0);
        fire(&mut m, &fx, &p, at(t0, 1000));
        assert!(acts(m.on_event(Event::Start, &p, t0)).is_empty());
        m.on_event(killed(15), &p, t0);
        m.on_event(Event::GroupGone { pgid: PID }, &p, t0);
        assert_eq!(m.state(), Backoff, "the joined start was not a fresh start");

        let (mut m, fx) = spawned(&p, t0);
        fire(&mut m, &fx, &p, at(t0, 1000));
        let fx = acts(m.on_event(Event::Stop, &p, t0));
        assert_eq!(
            fx,
            vec![start_failed("stop requested before it reached RUNNING")]
        );
        assert_eq!(
            m.describe(t0),
            format!("pid {PID}, stopping, SIGKILL in 11s")
        );
        m.on_event(killed(15), &p, t0);
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, t0));
        assert_eq!(fx, vec![Effect::CancelTimer, stopped("stopped")]);
        assert_eq!(m.state(), Stopped);
    }

    #[test]
    fn dying_before_ready_is_an_early_exit_and_stops_the_probe() {
        let t0 = Instant::now();
        let p = ready_policy(60);
        let (mut m, _) = spawned(&p, t0);
        let fx = m.on_event(exited(1), &p, at(t0, 300));
        assert_eq!(
            acts(fx),
            vec![
                Effect::CancelTimer,
                Effect::StopProbes,
                Effect::KillRemnants { pgid: PID },
                Effect::SetTimer {
                    generation: 2,
                    after: Duration::from_secs(1)
                },
                start_failed("exited with status 1 before it was ready (retrying in 1s)"),
            ]
        );
        assert_eq!(m.state(), Backoff);
    }

    #[test]
    fn extend_timeout_moves_the_ready_deadline_and_never_shortens_it() {
        let t0 = Instant::now();
        let p = ready_policy(2);
        let (mut m, _) = spawned(&p, t0);
        let extend = |by| Event::ExtendTimeout {
            pid: PID,
            by: Duration::from_secs(by),
        };
        // Less than what is left: nothing.
        assert!(m.on_event(extend(1), &p, at(t0, 500)).is_empty());
        let fx = m.on_event(extend(3), &p, at(t0, 1500));
        assert_eq!(
            acts(fx.clone()),
            vec![Effect::SetTimer {
                generation: 2,
                after: Duration::from_secs(3)
            }]
        );
        assert_eq!(m.state(), Starting);
        let fx = fire(&mut m, &fx, &p, at(t0, 4500));
        assert_eq!(
            logs(&fx),
            vec![format!(
                "not ready after 4.5s ({TCP}: no answer); stopping it"
            )]
        );
    }

    #[test]
    fn results_about_another_child_or_state_are_ignored() {
        let t0 = Instant::now();
        let p = ready_policy(60);
        let (mut m, _) = spawned(&p, t0);
        let other = PID + 1;
        for ev in [
            Event::Ready { pid: other },
            Event::NotReady {
                pid: other,
                error: "x".into(),
            },
            Event::ExtendTimeout {
                pid: other,
                by: Duration::from_secs(99),
            },
            Event::Health {
                pid: PID,
                result: Err("x".into()),
            },
            Event::StatusText {
                pid: other,
                text: "x".into(),
            },
            Event::BeforeStartDone { result: Ok(()) },
        ] {
            assert!(m.on_event(ev.clone(), &p, t0).is_empty(), "{ev:?}");
        }
        assert_eq!(m.state(), Starting);
        assert_eq!(m.status_text(), None);
        // A READY=1 after RUNNING changes nothing.
        m.on_event(Event::Ready { pid: PID }, &p, t0);
        assert!(m.on_event(Event::Ready { pid: PID }, &p, t0).is_empty());
    }

    fn health_policy(failures: u32) -> Policy {
        let mut p = policy();
        p.starttime = Duration::ZERO;
        p.health = Some(HealthPolicy {
            probe: tcp(),
            failures,
        });
        p
    }

    fn health(result: Result<(), &str>) -> Event {
        Event::Health {
            pid: PID,
            result: result.map_err(str::to_string),
        }
    }

    #[test]
    fn consecutive_health_failures_restart_through_the_policy() {
        let t0 = Instant::now();
        let p = health_policy(3);
        let (mut m, fx) = spawned(&p, t0);
        assert_eq!(acts(fx), vec![started("started"), Effect::StartHealth]);
        assert_eq!(m.health(), Some("ok"));
        let fx = m.on_event(health(Err("connection refused")), &p, t0);
        assert_eq!(
            logs(&fx),
            vec![format!(
                "health check failed (1 of 3): {TCP}: connection refused"
            )]
        );
        assert!(acts(fx).is_empty());
        assert_eq!(m.health(), Some("failing"));
        assert_eq!(
            m.describe(at(t0, 12_000)),
            format!(
                "pid {PID}, uptime 0:00:12, health failing (1 of 3): {TCP}: connection refused"
            )
        );
        // A success resets the count.
        m.on_event(health(Err("x")), &p, t0);
        let fx = m.on_event(health(Ok(())), &p, t0);
        assert_eq!(logs(&fx), vec!["health check passes again".to_string()]);
        assert_eq!(m.health(), Some("ok"));
        m.on_event(health(Err("x")), &p, t0);
        m.on_event(health(Err("x")), &p, t0);
        assert_eq!(m.state(), Running);
        let fx = m.on_event(health(Err("HTTP 503")), &p, at(t0, 1000));
        let why = format!("health check failed 3 times in a row ({TCP}: HTTP 503)");
        assert!(logs(&fx).contains(&format!("{why}: restarting")));
        assert_eq!(
            acts(fx),
            vec![
                Effect::StopProbes,
                Effect::SignalGroup {
                    pgid: PID,
                    signal: Signal::Term
                },
                Effect::SetTimer {
                    generation: 1,
                    after: Duration::from_secs(10)
                },
            ]
        );
        assert_eq!(m.state(), Stopping);
        assert_eq!(m.health(), None);
        assert_eq!(
            m.describe(at(t0, 1000)),
            format!("pid {PID}, restarting: {why}, SIGKILL in 10s")
        );
        m.on_event(killed(15), &p, at(t0, 1100));
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, at(t0, 1100)));
        assert_eq!(fx, vec![Effect::CancelTimer, Effect::Spawn]);
        assert_eq!(m.state(), Starting);
        assert_eq!(m.restarts(), 1);
    }

    #[test]
    fn health_restarts_count_toward_the_rate_limit_whatever_autorestart_says() {
        let t0 = Instant::now();
        let mut p = health_policy(1);
        p.maxrestarts = 0;
        p.autorestart = AutoRestart::Never;
        let (mut m, _) = spawned(&p, t0);
        m.on_event(health(Err("HTTP 500")), &p, t0);
        assert_eq!(m.state(), Stopping);
        m.on_event(killed(15), &p, t0);
        let fx = acts(m.on_event(Event::GroupGone { pgid: PID }, &p, t0));
        assert_eq!(
            fx,
            vec![
                Effect::CancelTimer,
                start_failed("restarting too often: 0 restarts in 5s")
            ]
        );
        assert_eq!(m.state(), Fatal);

        let mut p = health_policy(1);
        p.autorestart = AutoRestart::Never;
        let (mut m, _) = spawned(&p, t0);
        m.on_event(health(Err("HTTP 500")), &p, t0);
        assert_eq!(
            m.describe(t0),
            format!(
                "pid {PID}, restarting: health check failed 1 time ({TCP}: HTTP 500), SIGKILL in 10s"
            )
        );
        m.on_event(killed(15), &p, t0);
        m.on_event(Event::GroupGone { pgid: PID }, &p, t0);
        assert_eq!(m.state(), Starting);
    }

    #[test]
    fn a_watchdog_not_fed_in_time_restarts_and_each_feed_pushes_it_back() {
        let t0 = Instant::now();
        let mut p = policy();
        p.starttime = Duration::ZERO;
        p.watchdog = Some(Duration::from_secs(2));
        let (mut m, fx) = spawned(&p, t0);
        assert_eq!(
            acts(fx.clone()),
            vec![
                started("started"),
                Effect::SetTimer {
                    generation: 1,
                    after: Duration::from_secs(2)
                }
            ]
        );
        assert!(
            m.on_event(Event::Watchdog { pid: PID }, &p, at(t0, 1500))
                .is_empty()
        );
        let fx = fire(&mut m, &fx, &p, at(t0, 2000));
        assert_eq!(
            acts(fx.clone()),
            vec![Effect::SetTimer {
                generation: 2,
                after: Duration::from_millis(1500)
            }]
        );
        let fx = fire(&mut m, &fx, &p, at(t0, 3500));
        assert_eq!(
            logs(&fx),
            vec!["no WATCHDOG=1 for 2s: restarting".to_string()]
        );
        assert_eq!(m.state(), Stopping);
        m.on_event(killed(15), &p, t0);
        m.on_event(Event::GroupGone { pgid: PID }, &p, t0);
        assert_eq!(m.state(), Starting);
    }

    #[test]
    fn before_start_runs_before_each_spawn_and_its_failure_is_a_failed_start() {
        let t0 = Instant::now();
        let mut p = policy();
        p.before_start = true;
        let mut m = Machine::new();
        assert_eq!(
            acts(m.on_event(Event::Start, &p, t0)),
            vec![Effect::RunBeforeStart]
        );
        assert_eq!(m.describe(at(t0, 500)), "running before_start (0.5s)");
        // No child until it is done.
        assert!(m.on_event(Event::Spawned { pid: PID }, &p, t0).is_empty());
        assert!(acts(m.on_event(Event::Start, &p, t0)).is_empty());
        let fx = m.on_event(
            Event::BeforeStartDone {
                result: Err("exit status 1: no database".into()),
            },
            &p,
            t0,
        );
        let reason = "before_start failed: exit status 1: no database (retrying in 1s)";
        assert!(fx.contains(&start_failed(reason)));
        assert_eq!(m.state(), Backoff);
        // The retry runs it again, and a success spawns.
        let fx = fire(&mut m, &fx, &p, at(t0, 1000));
        assert_eq!(acts(fx), vec![Effect::RunBeforeStart]);
        let fx = m.on_event(Event::BeforeStartDone { result: Ok(()) }, &p, t0);
        assert_eq!(fx, vec![Effect::Spawn]);
        m.on_event(Event::Spawned { pid: PID }, &p, t0);
        assert_eq!(m.pid(), Some(PID));
    }

    #[test]
    fn a_stop_while_before_start_runs_cancels_it_and_is_stopped_at_once() {
        let t0 = Instant::now();
        let mut p = policy();
        p.before_start = true;
        let mut m = Machine::new();
        m.on_event(Event::Start, &p, t0);
        let fx = acts(m.on_event(Event::Stop, &p, t0));
        assert_eq!(
            fx,
            vec![
                start_failed("stop requested before it reached RUNNING"),
                Effect::CancelBeforeStart,
                stopped("stopped"),
            ]
        );
        assert_eq!(m.state(), Stopped);
        // Its late answer is ignored.
        assert!(
            m.on_event(Event::BeforeStartDone { result: Ok(()) }, &p, t0)
                .is_empty()
        );
    }

    #[test]
    fn a_policy_change_starts_and_stops_probes_in_place() {
        let t0 = Instant::now();
        let plain = {
            let mut p = policy();
            p.starttime = Duration::ZERO;
            p
        };
        let checked = health_policy(3);
        let changed = |old: &Policy| Event::PolicyChanged {
            old: Box::new(old.clone()),
        };
        let (mut m, _) = spawned(&plain, t0);
        assert_eq!(
            acts(m.on_event(changed(&plain), &checked, t0)),
            vec![Effect::StartHealth]
        );
        assert_eq!(m.health(), Some("ok"));
        assert_eq!(
            acts(m.on_event(changed(&checked), &plain, t0)),
            vec![Effect::StopProbes]
        );
        assert_eq!(m.health(), None);
        let mut fed = plain.clone();
        fed.watchdog = Some(Duration::from_secs(5));
        assert_eq!(
            acts(m.on_event(changed(&plain), &fed, t0)),
            vec![Effect::SetTimer {
                generation: 1,
                after: Duration::from_secs(5)
            }]
        );
        assert_eq!(
            acts(m.on_event(changed(&fed), &plain, t0)),
            vec![Effect::CancelTimer]
        );
        // Unchanged readiness keys: nothing.
        assert!(m.on_event(changed(&plain), &plain, t0).is_empty());

        // STARTING under a ready probe that is removed: starttime decides,
        // counted from the spawn.
        let p = ready_policy(60);
        let (mut m, _) = spawned(&p, t0);
        let fx = acts(m.on_event(changed(&p), &policy(), at(t0, 2000)));
        assert_eq!(
            fx,
            vec![Effect::StopProbes, Effect::CancelTimer, started("started")]
        );
        assert_eq!(m.state(), Running);
    }

    #[test]
    fn status_text_is_kept_bounded_and_forgotten_at_the_next_spawn() {
        let t0 = Instant::now();
        let p = policy();
        let (mut m, _) = machine_in(Running, t0);
        m.on_event(
            Event::StatusText {
                pid: PID,
                text: "Processing 10 jobs".into(),
            },
            &p,
            t0,
        );
        assert_eq!(m.status_text(), Some("Processing 10 jobs"));
        let long = "x".repeat(10_000);
        m.on_event(
            Event::StatusText {
                pid: PID,
                text: long,
            },
            &p,
            t0,
        );
        assert_eq!(
            m.status_text().map(|t| t.chars().count()),
            Some(STATUS_TEXT_MAX + 1)
        );
        m.on_event(exited(1), &p, t0);
        m.on_event(Event::Spawned { pid: PID + 1 }, &p, t0);
        assert_eq!(m.status_text(), None);
    }
}
