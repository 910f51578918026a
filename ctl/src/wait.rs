//! Waiting for instances to settle, by polling `status`: what `start` does
//! through BACKOFF (the daemon answers at the first failed attempt) and what
//! `reload --wait` does for the processes a reload restarted or added. Which
//! instances to wait for, and what their outcomes mean, is each verb's (see
//! `commands/start.rs` and `commands/reload.rs`).

use crate::run::{Context, Wait};
use proto::{Outcome, ProcessState, Response, StatusRequest};
use std::time::{Duration, Instant};

/// Between two looks at the processes waited for.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Polls `status` until every waited instance is RUNNING (with a pid
/// other than its old one) or failed (FATAL; STOPPED or EXITED too,
/// unless `down_is_done`), or `timeout` passed. Reports each new
/// BACKOFF (a failed attempt) on `err`.
pub fn settle(
    cx: &mut Context<'_>,
    mut waited: Vec<Waited>,
    timeout: Option<Duration>,
    down_is_done: bool,
) -> Vec<Outcome> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut done = Vec::new();
    let mut last: Vec<Option<ProcessState>> = vec![None; waited.len()];
    while !waited.is_empty() {
        if deadline.is_some_and(|d| Instant::now() >= d) || cx.interrupted() {
            let why = match timeout {
                Some(t) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    format!("timed out after {}s", t.as_secs_f64())
                }
                _ => "interrupted".to_string(),
            };
            for (w, state) in waited.drain(..).zip(last.drain(..)) {
                let state = state.unwrap_or(ProcessState::Starting);
                done.push(outcome(
                    &w.name,
                    false,
                    state,
                    format!("{why} waiting for RUNNING (still {})", state.name()),
                ));
            }
            break;
        }
        std::thread::sleep(WAIT_POLL);
        let targets = waited.iter().map(|w| w.name.clone()).collect();
        let infos = match cx.call(&StatusRequest { targets }.into(), Wait::Quick) {
            Ok(Response::Status(infos)) => infos,
            Ok(other) => {
                let why = match other {
                    Response::Error(e) => e.message,
                    other => format!("unexpected reply {other:?}"),
                };
                for w in waited.drain(..) {
                    done.push(outcome(&w.name, false, ProcessState::Stopped, why.clone()));
                }
                break;
            }
            Err(e) => {
                for w in waited.drain(..) {
                    done.push(outcome(
                        &w.name,
                        false,
                        ProcessState::Stopped,
                        e.to_string(),
                    ));
                }
                break;
            }
        };
        let mut i = 0;
        while i < waited.len() {
            let w = &mut waited[i];
            let Some(info) = infos.iter().find(|p| p.name == w.name) else {
                done.push(outcome(
                    &w.name,
                    false,
                    ProcessState::Stopped,
                    "removed".into(),
                ));
                waited.remove(i);
                last.remove(i);
                continue;
            };
            last[i] = Some(info.state);
            let ended = match info.state {
                ProcessState::Running if info.pid != w.old_pid => {
                    Some(outcome(&w.name, true, info.state, "started".into()))
                }
                ProcessState::Fatal => Some(outcome(
                    &w.name,
                    false,
                    info.state,
                    info.description.clone(),
                )),
                ProcessState::Stopped | ProcessState::Exited if w.old_pid.is_none() => {
                    Some(if down_is_done {
                        outcome(&w.name, true, info.state, "not started".into())
                    } else {
                        outcome(
                            &w.name,
                            false,
                            info.state,
                            format!("{} while starting", info.state.name()),
                        )
                    })
                }
                ProcessState::Backoff => {
                    // One BACKOFF per failed attempt; each retry counts
                    // as a restart. The first one seen may be the
                    // failure already reported.
                    if w.seen != Some(info.restarts) {
                        if w.seen.is_some() && !cx.json {
                            let _ = writeln!(
                                cx.err,
                                "{}: attempt failed: {}; retrying",
                                w.name, info.description
                            );
                        }
                        w.seen = Some(info.restarts);
                    }
                    None
                }
                _ => None,
            };
            if let Some(o) = ended {
                done.push(o);
                waited.remove(i);
                last.remove(i);
            } else {
                i += 1;
            }
        }
    }
    done
}

/// An instance `start` or `reload --wait` waits for.
#[derive(Debug)]
pub struct Waited {
    pub name: String,
    /// Its pid before a reload restarted it: RUNNING with this pid is the
    /// old process, not yet replaced.
    pub old_pid: Option<u32>,
    /// The restart count of the last BACKOFF seen (one per failed attempt).
    pub seen: Option<u32>,
}

impl Waited {
    /// A new instance (no old pid), no BACKOFF seen yet.
    pub fn new(name: String) -> Self {
        Self {
            name,
            old_pid: None,
            seen: None,
        }
    }
}

/// An outcome decided by the client (no output tail).
pub fn outcome(name: &str, ok: bool, state: ProcessState, message: String) -> Outcome {
    Outcome {
        name: name.to_string(),
        ok,
        state,
        message,
        output_tail: Vec::new(),
    }
}
