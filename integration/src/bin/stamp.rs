//! `stamp`: the benchmark's child process, which timestamps its own life.
//!
//! `stamp FILE [EXIT_AFTER_MS [CODE]]` reads the clocks as its very first
//! act, appends `start MONO_NS REAL_NS PID` to FILE, then either sleeps until killed, or waits
//! `EXIT_AFTER_MS`, appends `exit MONO_NS REAL_NS PID` and exits with `CODE`
//! (default 1). With `EXIT_AFTER_MS` = 0 it exits at once.
//!
//! `CLOCK_MONOTONIC` is one clock for every process on the machine, so the
//! gap between one run's `exit` line and the next run's `start` line is what
//! the supervisor took to notice the death and exec a replacement, measured
//! by the children themselves rather than by the supervisor. It is a Rust
//! binary (not a script) so that its own start-up is a fraction of a
//! millisecond and the figures measure the supervisor; the benchmark builds
//! it statically linked (no dynamic loader between `execve` and `main`),
//! see `bench.rs`. Each line is one
//! `write(2)` on an `O_APPEND` file, so several writers never interleave.
//!
//! Exit codes: CODE as asked; 2 on a usage error or when FILE cannot be
//! written (the benchmark notices the missing lines).

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

fn clock(id: libc::clockid_t) -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist
    // on Linux, and on failure `ts` stays zero, which the reader rejects.
    unsafe { libc::clock_gettime(id, &mut ts) };
    u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Both clocks, read back to back.
fn now() -> (u128, u128) {
    (clock(libc::CLOCK_MONOTONIC), clock(libc::CLOCK_REALTIME))
}

fn stamp(file: &mut std::fs::File, what: &str, (mono, real): (u128, u128)) -> std::io::Result<()> {
    let line = format!("{what} {mono} {real} {}\n", std::process::id());
    file.write_all(line.as_bytes())
}

fn main() {
    // Before parsing or opening anything: none of that is the supervisor's.
    let started = now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: stamp FILE [EXIT_AFTER_MS [CODE]]");
        std::process::exit(2);
    };
    let exit_after: Option<u64> = match args.get(1).map(|s| s.parse()) {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(_)) => {
            eprintln!("stamp: EXIT_AFTER_MS must be a whole number of milliseconds");
            std::process::exit(2);
        }
    };
    let code: i32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut file = match OpenOptions::new().append(true).create(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("stamp: cannot open {path}: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = stamp(&mut file, "start", started) {
        eprintln!("stamp: cannot write {path}: {e}");
        std::process::exit(2);
    }
    match exit_after {
        None => loop {
            // Until a signal ends it, as `sleep infinity` would.
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            if let Err(e) = stamp(&mut file, "exit", now()) {
                eprintln!("stamp: cannot write {path}: {e}");
                std::process::exit(2);
            }
            std::process::exit(code);
        }
    }
}
