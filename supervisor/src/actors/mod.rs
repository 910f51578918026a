//! The daemon's actors, one module each, all on the System arbiter.
//!
//! See `actors-design.md` at the repository root for the whole story.

pub mod blocking;
pub mod deps;
pub mod listener;
pub mod notifier;
pub mod process;
pub mod program;
pub mod reaper;
pub mod registry;
pub mod session;
