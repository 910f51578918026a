//! The target grammar of the control language: `all`, `NAME` or `NAME:INDEX`.
//!
//! One parser for the client (which rejects a malformed target as a usage
//! error before it reaches the wire), the daemon (which resolves targets
//! against the running config) and the config validator (which keeps program
//! names out of the grammar's way: `all` is reserved and `:` separates the
//! index). Targets stay plain strings on the wire, so `nc` scripts keep
//! working; [`Target`] is what both ends make of them.

use std::fmt;
use std::str::FromStr;

/// The word that selects every program.
pub const ALL: &str = "all";

/// What a target selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `all`: every instance of every program.
    All,
    /// `NAME`: every instance of one program.
    Program(String),
    /// `NAME:INDEX`: one instance.
    Instance(String, u32),
}

impl Target {
    /// Whether a program name would collide with `all` (in any case, so
    /// that `ALL` in a config is not mistaken for a typo of `all`).
    pub fn is_reserved(name: &str) -> bool {
        name.eq_ignore_ascii_case(ALL)
    }

    /// The program a target names, `None` for [`Target::All`].
    pub fn program(&self) -> Option<&str> {
        match self {
            Target::All => None,
            Target::Program(name) | Target::Instance(name, _) => Some(name),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str(ALL),
            Target::Program(name) => f.write_str(name),
            Target::Instance(name, index) => write!(f, "{name}:{index}"),
        }
    }
}

/// A string that is not a target; its message names the text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad target {text:?}: {reason} (expected NAME, NAME:INDEX or all)")]
pub struct BadTarget {
    pub text: String,
    pub reason: &'static str,
}

impl FromStr for Target {
    type Err = BadTarget;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason| BadTarget {
            text: text.to_string(),
            reason,
        };
        if text == ALL {
            return Ok(Target::All);
        }
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => (name, Some(index)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(bad("a name has no spaces"));
        }
        match index {
            None => Ok(Target::Program(name.to_string())),
            Some(index) => {
                // Digits only: `u32::from_str` would also take `+1`.
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the index after ':' must be a number"));
                }
                let index = index
                    .parse::<u32>()
                    .map_err(|_| bad("the index after ':' is too large"))?;
                Ok(Target::Instance(name.to_string(), index))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse_and_display_back() {
        for (text, target) in [
            ("all", Target::All),
            ("web", Target::Program("web".into())),
            ("web:3", Target::Instance("web".into(), 3)),
        ] {
            assert_eq!(text.parse::<Target>(), Ok(target.clone()));
            assert_eq!(target.to_string(), text);
        }
        assert_eq!("ALL".parse(), Ok(Target::Program("ALL".into())));
        assert!(Target::is_reserved("ALL"));
        assert!(!Target::is_reserved("web"));
    }

    #[test]
    fn malformed_targets_say_what_is_wrong() {
        for (text, reason) in [
            ("web:", "must be a number"),
            ("web:x", "must be a number"),
            ("web:-1", "must be a number"),
            ("web:+1", "must be a number"),
            ("a:b:1", "must be a number"),
            (":0", "name is empty"),
            ("", "name is empty"),
            ("a b", "no spaces"),
            ("web:99999999999", "too large"),
        ] {
            let Err(e) = text.parse::<Target>() else {
                panic!("{text:?} parsed");
            };
            let e = e.to_string();
            assert!(e.starts_with(&format!("bad target {text:?}: ")), "{e}");
            assert!(e.contains(reason), "{text}: {e}");
        }
    }
}
