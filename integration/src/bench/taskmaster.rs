//! taskmaster under the benchmark: a [`TestDaemon`] (its own temporary
//! directory, control socket on port 0, everything it started SIGKILLed on
//! `Drop`) plus one persistent control connection for cheap status polls.
//!
//! The binaries are the e2e harness's ([`crate::bins`]): `TASKMASTERD_BIN` /
//! `TASKMASTERCTL_BIN`, or a `cargo build` of the release profile when the
//! bench itself is a release build (a no-op when they are fresh).

use super::fleet::Fleet;
use super::{BenchError, CALL_TIMEOUT, Daemon, Impl, Instance, Launcher};
use crate::{CmdOutput, run_with_timeout};
use crate::{DaemonBuilder, TestDaemon, bins};
use nix::sys::signal::Signal;
use proto::{Client, Request, Response, StartRequest, StatusRequest};
use std::cell::RefCell;
use std::process::Command;
use std::time::Duration;

/// Starts `taskmasterd`.
#[derive(Debug, Default)]
pub struct TaskmasterLauncher;

impl Launcher for TaskmasterLauncher {
    fn kind(&self) -> Impl {
        Impl::Taskmaster
    }

    fn launch(&self, fleet: &Fleet, up_within: Duration) -> Result<Box<dyn Daemon>, BenchError> {
        let daemon = DaemonBuilder::new()?
            .config(&fleet.taskmaster_yaml())
            .start()?;
        // Not `daemon.client()`: its 5 s handshake bound is too short for a
        // daemon busy spawning thousands of children.
        let client = Client::connect(daemon.addr(), &daemon.token()?, up_within)?;
        client.set_read_timeout(Some(CALL_TIMEOUT))?;
        Ok(Box::new(Taskmaster {
            client: RefCell::new(client),
            daemon,
        }))
    }
}

/// A running `taskmasterd`.
#[derive(Debug)]
pub struct Taskmaster {
    client: RefCell<Client>,
    daemon: TestDaemon,
}

impl Taskmaster {
    fn call(&self, request: &Request) -> Result<Response, BenchError> {
        match self.client.borrow_mut().call(request)? {
            Response::Error(e) => Err(BenchError::Failed(format!(
                "taskmasterd refused {request:?}: {:?}: {}",
                e.kind, e.message
            ))),
            reply => Ok(reply),
        }
    }

    fn ctl(&self, args: &[&str]) -> Result<CmdOutput, BenchError> {
        let mut cmd = Command::new(bins::taskmasterctl()?);
        cmd.arg("--server")
            .arg(self.daemon.addr())
            .arg("--token-file")
            .arg(self.daemon.token_path())
            .args(args)
            .current_dir(self.daemon.dir())
            .env("NO_COLOR", "1");
        let out = run_with_timeout(cmd, CALL_TIMEOUT)?;
        if out.code != Some(0) {
            return Err(BenchError::Failed(format!(
                "taskmasterctl {} exited {:?}: {}",
                args.join(" "),
                out.code,
                out.stderr.trim()
            )));
        }
        Ok(out)
    }
}

impl Daemon for Taskmaster {
    fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    fn status(&self) -> Result<Vec<Instance>, BenchError> {
        match self.call(&Request::Status(StatusRequest { targets: vec![] }))? {
            Response::Status(list) => Ok(list
                .into_iter()
                .map(|p| Instance {
                    program: p.program,
                    index: p.index,
                    state: p.state.name().to_string(),
                    pid: p.pid,
                })
                .collect()),
            other => Err(BenchError::Failed(format!("status answered {other:?}"))),
        }
    }

    fn status_of(&self, target: &str) -> Option<Result<(), BenchError>> {
        Some(
            self.call(&Request::Status(StatusRequest {
                targets: vec![target.to_string()],
            }))
            .map(drop),
        )
    }

    fn start_program(&self, program: &str) -> Result<(), BenchError> {
        self.call(&Request::Start(StartRequest {
            targets: vec![program.to_string()],
            wait: false,
        }))
        .map(drop)
    }

    fn cli_status(&self) -> Result<CmdOutput, BenchError> {
        self.ctl(&["status", "--json"])
    }

    fn cli(&self, args: &[&str]) -> Option<Result<CmdOutput, BenchError>> {
        Some(self.ctl(args))
    }

    fn cli_stop_all(&self) -> Result<CmdOutput, BenchError> {
        self.ctl(&["stop", "all"])
    }

    fn reload(&mut self, fleet: &Fleet) -> Result<(), BenchError> {
        let path = self.daemon.config_path();
        std::fs::write(&path, fleet.taskmaster_yaml())
            .map_err(|e| BenchError::io(format!("cannot write {}", path.display()), e))?;
        self.daemon.signal(Signal::SIGHUP)?;
        Ok(())
    }

    fn log_tail(&self, n: usize) -> String {
        super::last_lines(&self.daemon.event_log(), n)
    }
}
