//! taskmasterd as a library: configuration, actors, and [`run`].
//!
//! The binary (`main.rs`) only parses arguments, installs the event log and
//! signal handling, binds the control socket and calls into here, so tests can
//! drive the same code.

pub mod actors;
pub mod config;
