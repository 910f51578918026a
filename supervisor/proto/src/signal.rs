//! Signal names as they travel on the wire and appear in configs.
//!
//! Kept as a plain enum so that this crate needs no `nix`; the daemon converts
//! to `nix::sys::signal::Signal` at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A signal a user may name (`TERM`, `SIGTERM`, `term` are all accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Alrm,
    Cont,
    Stop,
    Tstp,
    Ttin,
    Ttou,
    Winch,
}

impl Signal {
    /// Every signal, in the order `help` lists them.
    pub const ALL: [Signal; 14] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Kill,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Term,
        Signal::Alrm,
        Signal::Cont,
        Signal::Stop,
        Signal::Tstp,
        Signal::Ttin,
        Signal::Ttou,
        Signal::Winch,
    ];

    /// The signals allowed as a program's `stopsignal`.
    pub const STOP_SIGNALS: [Signal; 7] = [
        Signal::Term,
        Signal::Int,
        Signal::Quit,
        Signal::Hup,
        Signal::Kill,
        Signal::Usr1,
        Signal::Usr2,
    ];

    /// The name without `SIG`, upper case (`TERM`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "HUP",
            Signal::Int => "INT",
            Signal::Quit => "QUIT",
            Signal::Kill => "KILL",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
            Signal::Term => "TERM",
            Signal::Alrm => "ALRM",
            Signal::Cont => "CONT",
            Signal::Stop => "STOP",
            Signal::Tstp => "TSTP",
            Signal::Ttin => "TTIN",
            Signal::Ttou => "TTOU",
            Signal::Winch => "WINCH",
        }
    }

    /// The Linux signal number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Kill => 9,
            Signal::Usr1 => 10,
            Signal::Usr2 => 12,
            Signal::Term => 15,
            Signal::Alrm => 14,
            Signal::Cont => 18,
            Signal::Stop => 19,
            Signal::Tstp => 20,
            Signal::Ttin => 21,
            Signal::Ttou => 22,
            Signal::Winch => 28,
        }
    }

    /// `SIGTERM`-style name for any Linux signal number, for "killed by SIGX".
    pub fn describe_number(n: i32) -> String {
        match Signal::ALL.iter().find(|s| s.number() == n) {
            Some(s) => format!("SIG{}", s.name()),
            None => match n {
                4 => "SIGILL".into(),
                5 => "SIGTRAP".into(),
                6 => "SIGABRT".into(),
                7 => "SIGBUS".into(),
                8 => "SIGFPE".into(),
                11 => "SIGSEGV".into(),
                13 => "SIGPIPE".into(),
                24 => "SIGXCPU".into(),
                25 => "SIGXFSZ".into(),
                31 => "SIGSYS".into(),
                _ => format!("signal {n}"),
            },
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a signal we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown signal {0:?} (expected one of HUP, INT, QUIT, KILL, USR1, USR2, TERM, ALRM, CONT, STOP, TSTP, TTIN, TTOU, WINCH)"
)]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::ALL
            .iter()
            .copied()
            .find(|sig| sig.name() == bare)
            .ok_or_else(|| UnknownSignal(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_sig_prefix_any_case() {
        assert_eq!("TERM".parse::<Signal>(), Ok(Signal::Term));
        assert_eq!("SIGusr1".parse::<Signal>(), Ok(Signal::Usr1));
        assert_eq!("kill".parse::<Signal>(), Ok(Signal::Kill));
        assert!("FOO".parse::<Signal>().is_err());
        assert!("SIG".parse::<Signal>().is_err());
    }

    #[test]
    fn names_round_trip_and_numbers_are_linux() {
        for s in Signal::ALL {
            assert_eq!(s.name().parse::<Signal>(), Ok(s));
        }
        assert_eq!(Signal::Term.number(), 15);
        assert_eq!(Signal::describe_number(9), "SIGKILL");
        assert_eq!(Signal::describe_number(11), "SIGSEGV");
    }
}
