//! What a client may ask of the daemon.
//!
//! Targets are strings as typed by the user: `NAME` (all instances of a
//! program), `NAME:INDEX` (one instance) or `all`. The daemon resolves them and
//! answers [`crate::ErrorKind::UnknownTarget`] for a name it does not know.

use crate::Signal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One request frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Request {
    /// Must be the first frame of every connection.
    Hello(Hello),
    Status(StatusRequest),
    Start(StartRequest),
    Stop(StopRequest),
    Restart(RestartRequest),
    Signal(SignalRequest),
    Pid(PidRequest),
    Tail(TailRequest),
    Reload,
    Shutdown,
    Version,
    NotifyTest(NotifyTestRequest),
    /// The configured programs (supervisorctl's `avail`).
    Avail,
}

/// The handshake. The token is redacted from `Debug`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub token: String,
}

impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("protocol_version", &self.protocol_version)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `status [TARGET…]`; no target means every instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusRequest {
    #[serde(default)]
    pub targets: Vec<String>,
}

/// `start TARGET…`. With `wait`, the reply comes once every target is RUNNING
/// or has failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    pub targets: Vec<String>,
    #[serde(default = "yes")]
    pub wait: bool,
}

/// `stop TARGET…`. With `wait`, the reply comes once the processes are gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRequest {
    pub targets: Vec<String>,
    #[serde(default = "yes")]
    pub wait: bool,
}

/// `restart TARGET…`: stop, then start, with the waiting of both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRequest {
    pub targets: Vec<String>,
    #[serde(default = "yes")]
    pub wait: bool,
}

/// `signal SIG TARGET…`: deliver to each target's process group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRequest {
    pub signal: Signal,
    pub targets: Vec<String>,
}

/// `pid [TARGET]`; no target means the daemon's own pid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PidRequest {
    #[serde(default)]
    pub target: Option<String>,
}

/// Which output stream of an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    #[default]
    Stdout,
    Stderr,
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        })
    }
}

/// `tail [-f] [-n N] TARGET [stdout|stderr]`. The target must name one
/// instance, or a program with exactly one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailRequest {
    pub target: String,
    #[serde(default)]
    pub stream: OutputStream,
    #[serde(default = "ten")]
    pub lines: usize,
    #[serde(default)]
    pub follow: bool,
}

/// `notify-test PROGRAM`: send a test mail through that program's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyTestRequest {
    pub program: String,
}

fn yes() -> bool {
    true
}

fn ten() -> usize {
    10
}

macro_rules! into_request {
    ($($ty:ident => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for Request {
            fn from(r: $ty) -> Self {
                Request::$variant(r)
            }
        })*
    };
}

into_request! {
    Hello => Hello,
    StatusRequest => Status,
    StartRequest => Start,
    StopRequest => Stop,
    RestartRequest => Restart,
    SignalRequest => Signal,
    PidRequest => Pid,
    TailRequest => Tail,
    NotifyTestRequest => NotifyTest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_tagged_and_scriptable() {
        let json = serde_json::to_string(&Request::from(StatusRequest {
            targets: vec!["web".into()],
        }))
        .unwrap_or_default();
        assert_eq!(json, r#"{"type":"status","data":{"targets":["web"]}}"#);
        assert_eq!(
            serde_json::to_string(&Request::Reload).unwrap_or_default(),
            r#"{"type":"reload"}"#
        );
    }

    #[test]
    fn hand_written_requests_get_defaults() {
        let r: Request = serde_json::from_str(r#"{"type":"start","data":{"targets":["all"]}}"#)
            .unwrap_or(Request::Version);
        assert_eq!(
            r,
            Request::Start(StartRequest {
                targets: vec!["all".into()],
                wait: true
            })
        );
        let r: Request = serde_json::from_str(r#"{"type":"tail","data":{"target":"web:0"}}"#)
            .unwrap_or(Request::Version);
        assert_eq!(
            r,
            Request::Tail(TailRequest {
                target: "web:0".into(),
                stream: OutputStream::Stdout,
                lines: 10,
                follow: false
            })
        );
        let r: Request = serde_json::from_str(r#"{"type":"status"}"#).unwrap_or(Request::Version);
        assert!(
            matches!(r, Request::Version),
            "status needs its data object"
        );
    }

    #[test]
    fn token_never_in_debug() {
        let h = Hello {
            protocol_version: 1,
            token: "s3cr3t".into(),
        };
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }
}
