//! Thin, safe wrappers over the operating system that several parts of the
//! daemon share.

pub mod exit;
pub mod fd_reserve;
pub mod fnv;
pub mod fsafe;
pub mod pgroup;
pub mod procfs;
