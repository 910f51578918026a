//! taskmasterd as a library: configuration, actors, and [`run`].
//!
//! The binary (`main.rs`) parses arguments, loads the config, opens the event
//! log, reads the token and binds the control socket (everything that can fail
//! at start, so failures end the start with a message and exit 1), then hands
//! over to [`run`], which owns the actor System until shutdown.

pub mod actors;
pub mod auth;
pub mod config;
pub mod eventlog;

use actix::{Actor, Addr, System};
use actors::reaper::{ChildTable, Reaper};
use actors::registry::{Registry, RegistryInit, Shutdown};
use std::io;
use tokio::signal::unix::{SignalKind, signal};

/// Everything [`run`] needs, prepared by the caller.
#[derive(Debug)]
pub struct DaemonInit {
    pub config: config::Config,
    pub listener: std::net::TcpListener,
    pub token: auth::Token,
    pub event_log: Option<eventlog::EventLog>,
}

/// Runs the daemon until it is shut down (SIGTERM, SIGINT, or a client's
/// `shutdown`), and returns the process exit code.
///
/// Signal handlers are installed before any child is spawned: a signal that
/// arrived before would otherwise take its default action and kill us.
pub fn run(init: DaemonInit) -> io::Result<i32> {
    let system = System::new();
    let started: io::Result<()> = system.block_on(async move {
        let children = ChildTable::default();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
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
                    Some(()) = hup.recv() => {
                        tracing::warn!("SIGHUP received: reload is not supported by this build yet");
                    }
                    else => break,
                }
            }
        });
        Ok(())
    });
    started?;
    system.run_with_code()
}

fn shutdown(registry: &Addr<Registry>, signal: &str) {
    tracing::info!(signal, "shutdown requested");
    registry.do_send(Shutdown);
}
