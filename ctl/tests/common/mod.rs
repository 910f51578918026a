//! Test kit shared by the `taskmasterctl` integration tests: a fake daemon
//! speaking the real JSON-lines protocol on 127.0.0.1:0, and a runner for the
//! real binary that never hangs a test (deadline, SIGKILL on drop).

#![allow(dead_code)] // each test file uses its own part of the kit

use proto::{
    Done, ErrorKind, ErrorReply, Outcome, PidEntry, ProcessInfo, ProcessState, ReloadSummary,
    Request, Response, TailChunk, TailReply, VersionInfo, Welcome,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "s3cret-token";
pub const DAEMON_PID: u32 = 4242;

type Handler = dyn Fn(&Request) -> Vec<Response> + Send + Sync;

/// A daemon that answers from a handler and records every request after the
/// hello. A follow `tail` is answered and then the connection is closed, the
/// way the real daemon ends a stream when the process goes away (except for
/// target `endless`).
pub struct FakeDaemon {
    pub addr: String,
    pub dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<Request>>>,
    /// Open connections, cut on drop like a dying daemon would.
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDaemon {
    pub fn start(handler: impl Fn(&Request) -> Vec<Response> + Send + Sync + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .to_string();
        std::fs::write(dir.path().join("taskmasterd.token"), format!("{TOKEN}\n"))
            .unwrap_or_else(|e| panic!("write token: {e}"));
        std::fs::write(
            dir.path().join("taskmaster.yaml"),
            format!("server:\n  listen: \"{addr}\"\nprograms: {{}}\n"),
        )
        .unwrap_or_else(|e| panic!("write config: {e}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (requests, stop, conns) = (requests.clone(), stop.clone(), conns.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if let (Ok(mut c), Ok(clone)) = (conns.lock(), conn.try_clone()) {
                        c.push(clone);
                    }
                    let (requests, handler) = (requests.clone(), handler.clone());
                    std::thread::spawn(move || {
                        let end = conn.try_clone();
                        let _ = serve(conn, &requests, &*handler);
                        // Really closed, though `conns` holds a clone.
                        if let Ok(c) = end {
                            let _ = c.shutdown(std::net::Shutdown::Both);
                        }
                    });
                }
            })
        };
        Self {
            addr,
            dir,
            requests,
            conns,
            stop,
            thread: Some(thread),
        }
    }

    /// The config file pointing at this daemon (token file next to it).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("taskmaster.yaml")
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(conns) = self.conns.lock() {
            for c in conns.iter() {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn serve(conn: TcpStream, requests: &Mutex<Vec<Request>>, handler: &Handler) -> io::Result<()> {
    let mut writer = conn.try_clone()?;
    let mut reply = |r: &Response| -> io::Result<()> {
        let mut line = serde_json::to_vec(r)?;
        line.push(b'\n');
        writer.write_all(&line)
    };
    let mut lines = BufReader::new(conn).lines();
    match lines
        .next()
        .transpose()?
        .map(|l| serde_json::from_str::<Request>(&l))
    {
        Some(Ok(Request::Hello(h))) if h.token == TOKEN => reply(&Response::Welcome(Welcome {
            protocol_version: proto::PROTOCOL_VERSION,
            daemon_version: "9.9.9-fake".into(),
            daemon_pid: DAEMON_PID,
        }))?,
        _ => return reply(&Response::error(ErrorKind::Auth, "bad token")),
    }
    for line in lines {
        let request: Request = match serde_json::from_str(&line?) {
            Ok(r) => r,
            Err(e) => {
                reply(&Response::error(ErrorKind::BadRequest, e.to_string()))?;
                continue;
            }
        };
        if let Ok(mut r) = requests.lock() {
            r.push(request.clone());
        }
        for response in handler(&request) {
            reply(&response)?;
        }
        // `endless` is a stream that only the client can end (Ctrl-C).
        let ends = matches!(&request, Request::Tail(t) if t.follow && t.target != "endless");
        if ends || request == Request::Shutdown {
            return Ok(());
        }
    }
    Ok(())
}

pub fn info(program: &str, index: u32, state: ProcessState, pid: Option<u32>) -> ProcessInfo {
    let description = match pid {
        Some(p) => format!("pid {p}, uptime 0:00:12"),
        None => "exited too quickly".into(),
    };
    ProcessInfo {
        name: format!("{program}:{index}"),
        program: program.into(),
        index,
        state,
        pid,
        uptime_s: if pid.is_some() { 12.5 } else { 0.0 },
        exitcode: None,
        restarts: 0,
        description,
        ready: false,
        health: None,
        status_text: None,
    }
}

/// A plausible daemon: `web` (2 instances) and `worker` (FATAL); target
/// `nope` is unknown; starting `bad` fails with output.
pub fn standard(request: &Request) -> Vec<Response> {
    let unknown = |targets: &[String]| targets.iter().any(|t| t.starts_with("nope"));
    let outcome = |name: &str, ok: bool, message: &str, tail: &[&str]| Outcome {
        name: name.into(),
        ok,
        state: if ok {
            ProcessState::Running
        } else {
            ProcessState::Fatal
        },
        message: message.into(),
        output_tail: tail.iter().map(|s| s.to_string()).collect(),
    };
    let reply = match request {
        Request::Status(s) if unknown(&s.targets) => {
            Response::error(ErrorKind::UnknownTarget, "no such program: nope")
        }
        Request::Status(_) => Response::Status(vec![
            info("web", 0, ProcessState::Running, Some(1234)),
            info("web", 1, ProcessState::Running, Some(1235)),
            info("worker", 0, ProcessState::Fatal, None),
        ]),
        Request::Start(s) if s.targets.iter().any(|t| t == "bad") => {
            Response::Outcomes(vec![outcome(
                "bad:0",
                false,
                "exited too quickly (exit status 1)",
                &["starting", "panic: no config"],
            )])
        }
        Request::Start(s) => Response::Outcomes(
            s.targets
                .iter()
                .map(|t| outcome(&format!("{t}:0"), true, "started", &[]))
                .collect(),
        ),
        Request::Stop(s) => Response::Outcomes(
            s.targets
                .iter()
                .map(|t| outcome(&format!("{t}:0"), true, "stopped", &[]))
                .collect(),
        ),
        Request::Restart(s) => Response::Outcomes(
            s.targets
                .iter()
                .map(|t| outcome(&format!("{t}:0"), true, "started", &[]))
                .collect(),
        ),
        Request::Signal(s) => Response::Outcomes(
            s.targets
                .iter()
                .map(|t| outcome(&format!("{t}:0"), true, "signalled", &[]))
                .collect(),
        ),
        Request::Pid(p) if p.target.is_none() => Response::Pids(vec![PidEntry {
            name: "taskmasterd".into(),
            pid: Some(DAEMON_PID),
        }]),
        Request::Pid(_) => Response::Pids(vec![PidEntry {
            name: "web:0".into(),
            pid: Some(1234),
        }]),
        Request::Tail(t) if t.target == "quiet" => {
            Response::error(ErrorKind::Failed, "quiet:0 stdout is discarded")
        }
        Request::Tail(t) => {
            let first = Response::Tail(TailReply {
                name: t.target.clone(),
                stream: t.stream,
                path: "/tmp/web.out".into(),
                lines: vec!["line 1".into(), "line 2".into()],
            });
            if !t.follow {
                return vec![first];
            }
            return vec![
                first,
                Response::TailChunk(TailChunk {
                    data: "line 3\n".into(),
                }),
                Response::TailChunk(TailChunk {
                    data: "line 4\n".into(),
                }),
            ];
        }
        Request::Reload => Response::Error(ErrorReply {
            kind: ErrorKind::Failed,
            message: "config is invalid, nothing changed".into(),
            details: vec!["taskmaster.yaml:4:5: programs.web.numprocs: expected a number".into()],
        }),
        Request::Version => Response::Version(VersionInfo {
            daemon_version: "9.9.9-fake".into(),
            protocol_version: proto::PROTOCOL_VERSION,
        }),
        Request::Shutdown => Response::Done(Done {
            message: "taskmasterd stopped".into(),
        }),
        Request::NotifyTest(_) => Response::Done(Done {
            message: "test mail sent".into(),
        }),
        Request::Avail => Response::Avail(vec![proto::AvailEntry {
            name: "web".into(),
            numprocs: 2,
            autostart: true,
            cmd: "sleep 1000".into(),
        }]),
        Request::Hello(_) => Response::error(ErrorKind::BadRequest, "hello twice"),
    };
    vec![reply]
}

/// A reload that succeeds, for handlers that want one.
pub fn reload_ok() -> Response {
    Response::Reload(ReloadSummary {
        added: vec!["db".into()],
        unchanged: vec!["web".into()],
        ..Default::default()
    })
}

/// The output of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// SIGKILLs the child on drop, so a failing test leaves nothing behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn ctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskmasterctl"));
    c.env_remove("TASKMASTER_HISTORY");
    c
}

/// Runs `taskmasterctl ARGS` with `stdin` piped in; fails the test after 20 s.
pub fn run(args: &[&str], stdin: &str) -> Run {
    let mut cmd = ctl();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}")));
    if let Some(mut i) = child.0.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let mut out = child.0.stdout.take();
    let mut err = child.0.stderr.take();
    let reader = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = p {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out_t = reader(out.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err_t = reader(err.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let mut status = None;
    let finished = wait_until(Duration::from_secs(20), || {
        status = child.0.try_wait().ok().flatten();
        status.is_some()
    });
    let Some(status) = status.filter(|_| finished) else {
        panic!("taskmasterctl {args:?} did not finish within 20 s");
    };
    Run {
        code: status.code(),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
