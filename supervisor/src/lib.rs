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
pub mod descendants;
pub mod eventlog;
pub mod leftovers;
pub mod output;
pub mod pidfile;
pub mod reload;
pub mod signals;
pub mod sys;

use actix::{Actor, Addr, System};
use actors::listener::Listener;
use actors::reaper::{ChildTable, Reaper};
use actors::registry::{Registry, RegistryInit, Reload, ReopenLogs, Shutdown};
use std::io;
use tokio_util::sync::CancellationToken;

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
/// Signal handlers are installed ([`signals::install`], normally already by
/// `main`) before any child is spawned: a signal that arrived before would
/// otherwise take its default action and kill us. Those received during
/// start-up are applied now, in order (a reload before a shutdown).
pub fn run(init: DaemonInit) -> io::Result<i32> {
    signals::install()?;
    let system = System::new();
    let ready = init.ready;
    let started: io::Result<()> = system.block_on(async move {
        let children = ChildTable::default();
        Reaper::new(children.clone())?.start();
        let accepting = CancellationToken::new();
        let registry = Registry::new(RegistryInit {
            config: init.config,
            children,
            accepting: accepting.clone(),
            event_log: init.event_log,
        })
        .start();
        Listener::new(
            init.listener,
            std::sync::Arc::new(init.token),
            registry.clone(),
            accepting,
        )?
        .start();
        actix::spawn(async move {
            let applied = signals::dispatch(|sig, meaning, count| match meaning {
                // A second SIGTERM/SIGINT forces the shutdown.
                signals::Meaning::Shutdown => {
                    for _ in 0..count.min(2) {
                        shutdown(&registry, &signals::name(sig));
                    }
                }
                // A burst of SIGHUPs is one reload: each reload is
                // synchronous in the Registry and reads the latest file.
                signals::Meaning::Reload => registry.do_send(Reload),
                signals::Meaning::ReopenLogs => registry.do_send(ReopenLogs),
                signals::Meaning::Ignore => {}
            })
            .await;
            if let Err(e) = applied {
                tracing::error!("signals can no longer be received: {e}");
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
