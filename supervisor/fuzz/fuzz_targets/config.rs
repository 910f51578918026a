//! Fuzz target: the config reader, from a file's bytes to the verdict of
//! `taskmasterd --check` (`config::parse_bytes`: everything `config::load`
//! does once the file is read).
//!
//! Any bytes give a `Config` or at least one problem to print: never a
//! panic, a hang (libFuzzer's `-timeout`) or runaway memory
//! (`-rss_limit_mb`). An accepted config asks for no more instances than
//! `server.max_processes`. The file name is only used in messages and to
//! resolve relative paths, in a directory that does not exist, so
//! validation looks at nothing on disk beyond what `--check` would (a
//! `stat` of the paths the config names, user names).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/nonexistent/taskmaster-fuzz/taskmaster.yaml");
    match supervisor::config::parse_bytes(data, file) {
        Ok(config) => {
            let processes: u64 = config
                .programs
                .values()
                .map(|p| u64::from(p.numprocs))
                .sum();
            assert!(
                processes <= u64::from(config.server.max_processes),
                "{processes} instances accepted over max_processes {}",
                config.server.max_processes
            );
            for warning in &config.warnings {
                assert!(!warning.to_string().is_empty(), "an empty warning");
            }
        }
        Err(e) => {
            let lines = e.lines();
            assert!(!lines.is_empty(), "a refused config names no problem");
            assert!(lines.iter().all(|l| !l.is_empty()), "an empty problem line");
        }
    }
});
