//! `listen`: the readiness benchmark's program, a listener that becomes
//! ready late.
//!
//! `listen PORT [DELAY_MS]` waits DELAY_MS (default 0), binds
//! `127.0.0.1:PORT`, then until killed answers every connection with an
//! empty `HTTP/1.0 200 OK` and closes it: a `tcp` probe sees the port open
//! exactly DELAY_MS after the spawn (plus the bind), an `http` probe gets a
//! 2xx. A Rust binary rather than `python3 -m http.server` so that a
//! thousand copies cost a thousand small processes (one thread, ~1 MiB
//! each), not a thousand interpreters: the benchmark then measures the
//! daemon's probing, not the programs' start-up.
//!
//! Exit codes: 2 on a usage error or when the port cannot be bound (the
//! daemon sees the start fail).

use integration::bench::sys::answer_http_ok;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: Option<u16> = args.first().and_then(|s| s.parse().ok());
    let delay: Option<u64> = match args.get(1) {
        None => Some(0),
        Some(s) => s.parse().ok(),
    };
    let (Some(port), Some(delay)) = (port, delay) else {
        eprintln!("usage: listen PORT [DELAY_MS]");
        std::process::exit(2);
    };
    std::thread::sleep(Duration::from_millis(delay));
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen: cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(2);
        }
    };
    // One client's trouble (a reset, a slow sender) is its own.
    for conn in listener.incoming().flatten() {
        let _ = answer_http_ok(conn);
    }
}
