//! `supervisor::run` in-process, shut down from outside: the daemon binds
//! port 0, runs one `sleep` program, answers `status` over the real control
//! protocol, and when the injected shutdown resolves, stops its child and
//! returns 0. No signal is involved: the control future is the test's.

use proto::{Client, ProcessState, Request, Response, StatusRequest};
use std::time::{Duration, Instant};
use supervisor::{DaemonInit, auth, config};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SOON: Duration = Duration::from_secs(30);

fn status(client: &mut Client) -> Result<Vec<proto::ProcessInfo>, Box<dyn std::error::Error>> {
    match client.call(&Request::from(StatusRequest::default()))? {
        Response::Status(infos) => Ok(infos),
        other => Err(format!("status answered {other:?}").into()),
    }
}

#[test]
fn run_serves_until_the_injected_shutdown_then_stops_its_children_and_returns_0() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("taskmaster.yaml");
    std::fs::write(
        &file,
        "server:\n  listen: 127.0.0.1:0\nprograms:\n  nap:\n    cmd: sleep 1000\n    starttime: 0\n",
    )?;
    let config = config::load(&file)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let token = auth::Token::load_or_create(&config.server.token_file)?;
    let secret = std::fs::read_to_string(&config.server.token_file)?;
    let secret = secret.trim().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = std::thread::spawn(move || {
        supervisor::run(
            DaemonInit {
                config,
                listener,
                token,
                event_log: None,
                ready: None,
            },
            |daemon| async move {
                // A dropped sender shuts down too: the test never leaks it.
                let _ = stopped.await;
                daemon.shutdown("test");
            },
        )
    });

    let result = (|| -> Result<u32, Box<dyn std::error::Error>> {
        let mut client = Client::connect(&addr, &secret, SOON)?;
        let deadline = Instant::now() + SOON;
        loop {
            let infos = status(&mut client)?;
            if let Some(pid) = infos
                .iter()
                .find(|i| i.name == "nap:0" && i.state == ProcessState::Running)
                .and_then(|i| i.pid)
            {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(format!("nap:0 never RUNNING: {infos:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })();
    let _ = stop.send(());
    let code = daemon.join().map_err(|_| "run panicked")??;
    let pid = result?;
    assert_eq!(code, 0, "run's exit code");
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
    assert!(gone, "the child {pid} outlived run");
    Ok(())
}
