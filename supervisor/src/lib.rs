//! taskmasterd as a library: configuration, actors, and [`run`].
//!
//! The binary (`main.rs`) parses arguments, loads the config, opens the event
//! log, reads the token and binds the control socket (everything that can fail
//! at start, so failures end the start with a message and exit 1), then hands
//! over to [`run`], which owns the actor System until shutdown. The signals
//! are `main`'s: it installs their handlers first and gives [`run`] the
//! future that applies them, so a test can run the daemon in-process and
//! shut it down itself.

pub mod actors;
pub mod auth;
pub mod config;
pub mod daemonize;
pub mod descendants;
pub mod eventlog;
pub mod leftovers;
pub mod output;
pub mod pidfile;
pub mod probe;
pub mod reload;
pub mod signals;
pub mod sys;

use actix::{Actor, Addr, System};
use actors::listener::Listener;
use actors::reaper::{ChildTable, Reaper};
use actors::registry::{Registry, RegistryInit, Reload, ReopenLogs, Shutdown};
use std::future::Future;
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

/// A running daemon, as its control future sees it: what the outside (the
/// signals in `main`, or a test) may ask of it.
#[derive(Clone, Debug)]
pub struct Daemon {
    registry: Addr<Registry>,
}

impl Daemon {
    /// Stops every program, then the daemon; asked again while stopping, it
    /// forces the stop. `why` is logged (the signal's name, say).
    pub fn shutdown(&self, why: &str) {
        tracing::info!(signal = why, "shutdown requested");
        self.registry.do_send(Shutdown);
    }

    /// Rereads the config and applies it (SIGHUP).
    pub fn reload(&self) {
        self.registry.do_send(Reload);
    }

    /// Reopens the event log and every output file (SIGUSR2).
    pub fn reopen_logs(&self) {
        self.registry.do_send(ReopenLogs);
    }
}

/// Runs the daemon until it is shut down (by `control`, or a client's
/// `shutdown`), and returns the process exit code.
///
/// Shutdown comes from outside, mini-redis style: once the actors are up,
/// `control` is given a [`Daemon`] and the future it returns runs on the
/// actor thread. `main` passes [`signals::dispatch`] wired to it (SIGTERM and
/// SIGINT shut down, a second one forces, SIGHUP reloads, SIGUSR2 reopens the
/// logs; signals received during start-up are applied then, in order); a test
/// passes a future that calls [`Daemon::shutdown`] when it is told to.
///
/// The caller installs the signal handlers ([`signals::install`]) before
/// calling, before any child exists: a signal that arrived earlier would
/// otherwise take its default action and kill us.
pub fn run<F, Fut>(init: DaemonInit, control: F) -> io::Result<i32>
where
    F: FnOnce(Daemon) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
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
        actix::spawn(control(Daemon { registry }));
        Ok(())
    });
    started?;
    if let Some(mut ready) = ready {
        use std::io::Write;
        // The launcher may be gone already; nothing to do about it then.
        let _ = ready.write_all(b"ready\n");
    }
    let code = system.run_with_code();
    // The notify sockets' directory, if a `notify:` probe made it.
    probe::notify::remove_runtime_dir();
    code
}
