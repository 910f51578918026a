//! taskmasterd as a library: configuration, actors, and [`run`].
//!
//! The binary (`main.rs`) parses arguments, loads the config, opens the event
//! log, reads the token and binds the control socket (everything that can fail
//! at start, so failures end the start with a message and exit 1), then hands
//! over to [`run`], which owns the actor System until shutdown.

pub mod actors;
pub mod auth;
pub mod config;
pub mod daemonize;
pub mod eventlog;
pub mod leftovers;
pub mod pidfile;
pub mod reload;

use actix::{Actor, Addr, System};
use actors::reaper::{ChildTable, Reaper};
use actors::registry::{Registry, RegistryInit, Reload, ReopenLogs, Shutdown};
use std::io;
use tokio::signal::unix::{SignalKind, signal};

/// Everything [`run`] needs, prepared by the caller.
#[derive(Debug)]
pub struct DaemonInit {
    pub config: config::Config,
    pub listener: std::net::TcpListener,
    pub token: auth::Token,
    pub event_log: Option<eventlog::EventLog>,
    /// Told `ready` once the actors are up (the `--daemonize` launcher waits
    /// on it, so `taskmasterd -d && taskmasterctl status` always works).
    pub ready: Option<std::fs::File>,
}

/// Runs the daemon until it is shut down (SIGTERM, SIGINT, or a client's
/// `shutdown`), and returns the process exit code. SIGHUP reloads the config,
/// SIGUSR2 reopens every log file, a second SIGTERM/SIGINT forces the stop.
///
/// Signal handlers are installed before any child is spawned: a signal that
/// arrived before would otherwise take its default action and kill us.
pub fn run(init: DaemonInit) -> io::Result<i32> {
    let system = System::new();
    let ready = init.ready;
    let started: io::Result<()> = system.block_on(async move {
        let children = ChildTable::default();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        Reaper::new(children.clone())?.start();
        let registry = Registry::new(RegistryInit {
            config: init.config,
            children,
            listener: init.listener,
            token: std::sync::Arc::new(init.token),
            event_log: init.event_log,
        })
        .start();
        actix::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = term.recv() => shutdown(&registry, "SIGTERM"),
                    Some(()) = int.recv() => shutdown(&registry, "SIGINT"),
                    // tokio coalesces a burst of SIGHUPs into one wake-up, and
                    // each reload is synchronous in the Registry: a burst is
                    // one or a few reloads, never interleaved ones.
                    Some(()) = hup.recv() => registry.do_send(Reload),
                    Some(()) = usr2.recv() => registry.do_send(ReopenLogs),
                    else => break,
                }
            }
        });
        Ok(())
    });
    started?;
    if let Some(mut ready) = ready {
        use std::io::Write;
        // The launcher may be gone already; nothing to do about it then.
        let _ = ready.write_all(b"ready\n");
    }
    system.run_with_code()
}

fn shutdown(registry: &Addr<Registry>, signal: &str) {
    tracing::info!(signal, "shutdown requested");
    registry.do_send(Shutdown);
}
