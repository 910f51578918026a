//! supervisord under the benchmark, for the comparison column.
//!
//! Found in `$SUPERVISORD`, then `PATH`, then the venv the README suggests
//! (`/tmp/sv/bin`); `supervisorctl` is looked for next to it. Each launch
//! gets a fresh temporary directory with a generated `supervisord.conf`
//! (`[unix_http_server]` socket there, `nodaemon`, `minfds` = our fd limit)
//! and runs `supervisord -n` in a session of its own, so that [`Drop`] can
//! find and SIGKILL every process it started (its children make process
//! groups of their own but stay in its session).
//!
//! Status polls and `startProcess` talk XML-RPC over the unix socket from
//! this process, like `supervisorctl` does but without a Python start-up per
//! call; the timed client figures use the real `supervisorctl`.

use super::fleet::Fleet;
use super::{BenchError, CALL_TIMEOUT, Daemon, Impl, Instance, Launcher};
use crate::{CmdOutput, run_with_timeout};
use crate::{procfs, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to install supervisord when it is missing.
pub const INSTALL_HINT: &str = "python3 -m venv /tmp/sv && /tmp/sv/bin/pip install supervisor  (or set SUPERVISORD=/path/to/supervisord)";

/// Where supervisord and supervisorctl are.
#[derive(Debug, Clone)]
pub struct SupervisordLauncher {
    pub supervisord: PathBuf,
    pub supervisorctl: PathBuf,
    /// `minfds`: the fd limit the daemon may raise itself to.
    pub minfds: u64,
}

impl SupervisordLauncher {
    /// Finds an installed supervisord, or says why not.
    pub fn find(minfds: u64) -> Result<Self, String> {
        let candidates: Vec<PathBuf> = std::env::var_os("SUPERVISORD")
            .map(PathBuf::from)
            .into_iter()
            .chain(std::env::var_os("PATH").into_iter().flat_map(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("supervisord"))
                    .collect::<Vec<_>>()
            }))
            .chain([PathBuf::from("/tmp/sv/bin/supervisord")])
            .collect();
        let supervisord = candidates
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| format!("supervisord not found; install it with: {INSTALL_HINT}"))?;
        let supervisorctl = supervisord.with_file_name("supervisorctl");
        if !supervisorctl.is_file() {
            return Err(format!(
                "no supervisorctl next to {}; install it with: {INSTALL_HINT}",
                supervisord.display()
            ));
        }
        Ok(SupervisordLauncher {
            supervisord,
            supervisorctl,
            minfds,
        })
    }

    /// `supervisord --version`.
    pub fn version(&self) -> String {
        Command::new(&self.supervisord)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn config(&self, dir: &Path, fleet: &Fleet) -> String {
        let d = dir.display();
        format!(
            "[unix_http_server]\nfile={d}/supervisor.sock\n\n\
             [supervisord]\nlogfile={d}/supervisord.log\nlogfile_maxbytes=0\n\
             pidfile={d}/supervisord.pid\nchildlogdir={d}/logs\nnodaemon=true\n\
             minfds={}\nloglevel=info\n\n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n\n{}",
            self.minfds,
            fleet.supervisord_programs()
        )
    }
}

impl Launcher for SupervisordLauncher {
    fn kind(&self) -> Impl {
        Impl::Supervisord
    }

    fn launch(&self, fleet: &Fleet, up_within: Duration) -> Result<Box<dyn Daemon>, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("supervisord-bench-")
            .tempdir()
            .map_err(|e| BenchError::io("cannot create a temporary directory", e))?;
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs)
            .map_err(|e| BenchError::io(format!("cannot create {}", logs.display()), e))?;
        let conf = dir.path().join("supervisord.conf");
        std::fs::write(&conf, self.config(dir.path(), fleet))
            .map_err(|e| BenchError::io(format!("cannot write {}", conf.display()), e))?;
        let out_path = dir.path().join("supervisord.out");
        let out = std::fs::File::create(&out_path)
            .map_err(|e| BenchError::io(format!("cannot create {}", out_path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("cannot duplicate a file descriptor", e))?;
        let mut cmd = Command::new(&self.supervisord);
        cmd.arg("-n")
            .arg("-c")
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: setsid is async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::io(format!("cannot start {cmd:?}"), e))?;
        let mut daemon = Supervisord {
            pid: child.id(),
            child,
            socket: dir.path().join("supervisor.sock"),
            conf,
            launcher: self.clone(),
            dir,
        };
        // From here on an early return drops `daemon`, which cleans up.
        let mut last = String::new();
        let up = wait_until(up_within, || {
            if matches!(daemon.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            match daemon.rpc("supervisor.getState", &[]) {
                Ok(body) => {
                    last = body;
                    last.contains("RUNNING")
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        if !up || !last.contains("RUNNING") {
            let log = std::fs::read_to_string(&out_path).unwrap_or_default();
            return Err(BenchError::Failed(format!(
                "supervisord did not come up within {up_within:?} ({last}); its last words:\n{}",
                super::last_lines(&log, 15)
            )));
        }
        Ok(Box::new(daemon))
    }
}

/// An XML-RPC parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Str(&'a str),
    Bool(bool),
}

/// A running supervisord.
#[derive(Debug)]
pub struct Supervisord {
    pid: u32,
    child: Child,
    socket: PathBuf,
    conf: PathBuf,
    launcher: SupervisordLauncher,
    // Last: removed after `Drop::drop` has killed everything.
    dir: tempfile::TempDir,
}

impl Supervisord {
    /// One XML-RPC call over the unix socket; the response body.
    pub fn rpc(&self, method: &str, params: &[Param<'_>]) -> Result<String, BenchError> {
        let mut body =
            format!("<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>");
        for p in params {
            match p {
                Param::Str(s) => body.push_str(&format!(
                    "<param><value><string>{}</string></value></param>",
                    escape(s)
                )),
                Param::Bool(b) => body.push_str(&format!(
                    "<param><value><boolean>{}</boolean></value></param>",
                    u8::from(*b)
                )),
            }
        }
        body.push_str("</params></methodCall>");
        let io = |e| BenchError::io(format!("XML-RPC {method} to supervisord"), e);
        let mut stream = UnixStream::connect(&self.socket).map_err(io)?;
        stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(io)?;
        let request = format!(
            "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).map_err(io)?;
        let (head, body) = reply
            .split_once("\r\n\r\n")
            .ok_or_else(|| BenchError::Failed(format!("{method}: no HTTP reply: {reply:.200}")))?;
        if !head.lines().next().is_some_and(|l| l.contains(" 200 ")) {
            return Err(BenchError::Failed(format!("{method}: {head}")));
        }
        if body.contains("<fault>") {
            return Err(BenchError::Failed(format!(
                "{method}: fault {}",
                member(body, "faultString").unwrap_or_default()
            )));
        }
        Ok(body.to_string())
    }

    fn ctl(&self, args: &[&str]) -> Result<CmdOutput, BenchError> {
        let mut cmd = Command::new(&self.launcher.supervisorctl);
        cmd.arg("-c").arg(&self.conf).args(args);
        Ok(run_with_timeout(cmd, CALL_TIMEOUT)?)
    }

    /// Every process that belongs to this supervisord: its descendants and
    /// its session's members (orphans included). Never itself.
    fn leftovers(&self) -> Vec<procfs::ProcStat> {
        let snapshot = procfs::all_processes();
        let mut victims = procfs::descendants_in(&snapshot, self.pid);
        victims.extend(snapshot.into_iter().filter(|p| p.sid == self.pid));
        let me = std::process::id();
        victims.retain(|p| p.is_alive() && p.pid != self.pid && p.pid != me && p.pid > 1);
        victims
    }
}

impl Daemon for Supervisord {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn status(&self) -> Result<Vec<Instance>, BenchError> {
        let body = self.rpc("supervisor.getAllProcessInfo", &[])?;
        body.split("<struct>")
            .skip(1)
            .map(|s| {
                let name = member(s, "name").unwrap_or_default();
                let index = name
                    .rsplit_once('_')
                    .and_then(|(_, i)| i.parse().ok())
                    .unwrap_or(0);
                let pid = member(s, "pid")
                    .and_then(|p| p.parse::<u32>().ok())
                    .filter(|p| *p > 0);
                Ok(Instance {
                    program: member(s, "group").unwrap_or_default(),
                    index,
                    state: member(s, "statename").unwrap_or_default(),
                    pid,
                })
            })
            .collect()
    }

    fn start_program(&self, program: &str) -> Result<(), BenchError> {
        self.rpc(
            "supervisor.startProcess",
            &[Param::Str(&format!("{program}:*")), Param::Bool(false)],
        )
        .map(drop)
    }

    fn cli_status(&self) -> Result<CmdOutput, BenchError> {
        // Exit status 3 only says some process is not RUNNING.
        self.ctl(&["status"])
    }

    fn cli_stop_all(&self) -> Result<CmdOutput, BenchError> {
        let out = self.ctl(&["stop", "all"])?;
        if out.code != Some(0) {
            return Err(BenchError::Failed(format!(
                "supervisorctl stop all exited {:?}: {}",
                out.code,
                out.stdout.trim()
            )));
        }
        Ok(out)
    }

    fn reload(&mut self, fleet: &Fleet) -> Result<(), BenchError> {
        let text = self.launcher.config(self.dir.path(), fleet);
        std::fs::write(&self.conf, text)
            .map_err(|e| BenchError::io(format!("cannot write {}", self.conf.display()), e))?;
        let out = self.ctl(&["update"])?;
        if out.code != Some(0) {
            return Err(BenchError::Failed(format!(
                "supervisorctl update exited {:?}: {}{}",
                out.code, out.stdout, out.stderr
            )));
        }
        Ok(())
    }

    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("supervisord.log"));
        super::last_lines(&log.unwrap_or_default(), n)
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        let daemon = Pid::from_raw(self.pid as i32);
        let running = matches!(self.child.try_wait(), Ok(None));
        if running {
            // Frozen, it cannot respawn what we kill.
            let _ = kill(daemon, Signal::SIGSTOP);
        }
        crate::daemon::kill_until_gone(Duration::from_secs(10), self.pid, || self.leftovers());
        if running {
            let _ = kill(daemon, Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The value of struct member `key` in an XML-RPC body fragment, as text.
fn member(xml: &str, key: &str) -> Option<String> {
    let at = xml.find(&format!("<name>{key}</name>"))?;
    let rest = xml.get(at..)?;
    let start = rest.find("<value>")? + "<value>".len();
    let end = rest.find("</value>")?;
    let raw = rest.get(start..end)?;
    // Drop the type tags (`<string>`, `<int>`); a bare value is a string.
    let mut text = String::new();
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_struct_members() {
        let xml = "<struct>\n<member>\n<name>name</name>\n<value><string>a_1</string></value>\n</member>\n\
                   <member>\n<name>pid</name>\n<value><int>42</int></value>\n</member>\n\
                   <member><name>spawnerr</name><value>x &amp; y</value></member></struct>";
        assert_eq!(member(xml, "name").as_deref(), Some("a_1"));
        assert_eq!(member(xml, "pid").as_deref(), Some("42"));
        assert_eq!(member(xml, "spawnerr").as_deref(), Some("x & y"));
        assert_eq!(member(xml, "group"), None);
        assert_eq!(escape("a<&>"), "a&lt;&amp;&gt;");
    }
}
