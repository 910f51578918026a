//! Descendants that escape their process group or environment tag: a
//! `setsid` child, nginx's workers (whose process title overwrites the
//! environment), PostgreSQL's backends (each in a session of its own). None
//! may outlive `stop`, a restart, a shutdown, a crash of its leader or a
//! `kill -9` of the daemon. Run with cgroups (the default here) and with the
//! fallback (`TASKMASTER_NO_CGROUPS=1`: process groups, adoptions, and a
//! state file of pids and start times).

use crate::SOON;
use integration::{DaemonBuilder, TestDaemon, TestResult, procfs, run_with_timeout, wait_until};
use proto::ProcessState;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that turns cgroups off (see `supervisor::descendants`).
const NO_CGROUPS: &str = "TASKMASTER_NO_CGROUPS";

/// A daemon on `config`, with or without cgroups; checks it says which.
fn start(config: &str, cgroups: bool) -> TestResult<TestDaemon> {
    let mut builder = DaemonBuilder::new()?.config(config);
    if !cgroups {
        builder = builder.env(NO_CGROUPS, "1");
    }
    let daemon = builder.start()?;
    let want = if cgroups {
        "descendant tracking: cgroup v2 at "
    } else {
        "descendant tracking: fallback"
    };
    assert!(
        wait_until(SOON, || daemon.stderr_text().contains(want)),
        "no `{want}` line:\n{}",
        daemon.stderr_text()
    );
    Ok(daemon)
}

/// The command line of `pid`, NULs as spaces.
fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ")
}

/// Live processes whose command line is exactly `line`.
fn running(line: &str) -> Vec<u32> {
    procfs::all_processes()
        .into_iter()
        .filter(|p| p.is_alive() && cmdline(p.pid) == line)
        .map(|p| p.pid)
        .collect()
}

/// A sleeper's command line unique to this test run (parallel tests run the
/// same programs).
fn unique_sleep() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("sleep 4242 0.{:09}", nanos ^ std::process::id())
}

fn escaper_config(sleeper: &str) -> String {
    format!(
        r#"
programs:
  esc:
    cmd: "sh -c 'setsid {sleeper} & exec sleep 1000'"
    starttime: 0.5
    stoptime: 2
"#
    )
}

fn stop_restart_and_shutdown(cgroups: bool) -> TestResult {
    let sleeper = unique_sleep();
    let mut daemon = start(&escaper_config(&sleeper), cgroups)?;
    daemon.running_pid("esc:0")?;
    assert!(wait_until(SOON, || running(&sleeper).len() == 1));

    let out = daemon.ctl(["stop", "esc"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    // `stop` answers once everything of the instance is gone.
    assert_eq!(running(&sleeper), Vec::<u32>::new(), "after stop");

    for _ in 0..3 {
        let out = daemon.ctl(["restart", "esc"])?;
        assert_eq!(out.code, Some(0), "{}", out.combined());
    }
    daemon.running_pid("esc:0")?;
    assert!(
        wait_until(SOON, || running(&sleeper).len() == 1),
        "restarts piled up copies: {:?}",
        running(&sleeper)
    );

    let out = daemon.ctl(["shutdown"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(daemon.wait_exit(SOON).is_some(), "the daemon did not exit");
    assert_eq!(running(&sleeper), Vec::<u32>::new(), "after shutdown");
    Ok(())
}

#[test]
fn stop_restart_and_shutdown_leave_no_descendant_that_called_setsid() -> TestResult {
    stop_restart_and_shutdown(true)
}

#[test]
fn without_cgroups_stop_restart_and_shutdown_leave_no_descendant_that_called_setsid() -> TestResult
{
    stop_restart_and_shutdown(false)
}

fn kill_9_then_start(cgroups: bool) -> TestResult {
    let sleeper = unique_sleep();
    let mut daemon = start(&escaper_config(&sleeper), cgroups)?;
    let leader = daemon.running_pid("esc:0")?;
    let mut old = Vec::new();
    assert!(wait_until(SOON, || {
        old = running(&sleeper);
        old.len() == 1
    }));
    if !cgroups {
        // The fallback knows a descendant once it has recorded it.
        let state = daemon.path("taskmasterd.pid.state");
        let recorded = wait_until(SOON, || {
            std::fs::read_to_string(&state).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(&old[0].to_string()))
            })
        });
        assert!(recorded, "{} never lists pid {}", state.display(), old[0]);
    }
    daemon.kill9()?;
    assert!(wait_until(SOON, || !procfs::is_alive(leader)));
    assert!(
        procfs::is_alive(old[0]),
        "the setsid sleeper died with the daemon: the test would prove nothing"
    );
    daemon.restart()?;
    daemon.running_pid("esc:0")?;
    assert!(
        wait_until(SOON, || !procfs::is_alive(old[0])),
        "the old instance's sleeper {} outlived the restart:\n{}",
        old[0],
        daemon.event_log()
    );
    assert!(wait_until(SOON, || running(&sleeper).len() == 1));
    Ok(())
}

#[test]
fn kill_9_of_the_daemon_then_start_leaves_nothing_of_a_setsid_descendant() -> TestResult {
    kill_9_then_start(true)
}

#[test]
fn without_cgroups_kill_9_of_the_daemon_then_start_leaves_nothing_of_a_setsid_descendant()
-> TestResult {
    kill_9_then_start(false)
}

/// A TCP port nobody listens on now.
fn free_port() -> TestResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The body of `GET /` on `port`, if it answers.
fn http_get(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
}

/// An installed program, or an error saying how to get it.
fn require(path: &str, package: &str) -> TestResult<()> {
    if Path::new(path).exists() {
        return Ok(());
    }
    Err(format!("{path} is missing: `apt-get install {package}` (.ci/run does)").into())
}

const NGINX: &str = "/usr/sbin/nginx";

#[test]
fn kill_9_of_the_daemon_then_start_leaves_one_nginx_serving_its_port() -> TestResult {
    require(NGINX, "nginx")?;
    let port = free_port()?;
    let builder = DaemonBuilder::new()?;
    let prefix = builder.dir().join("nginx");
    std::fs::create_dir_all(prefix.join("tmp"))?;
    let p = prefix.display();
    std::fs::write(
        prefix.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\nuser root root;\n\
             pid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 32; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n\
             proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n\
             uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"$pid\\n\"; }} }}\n}}\n"
        ),
    )?;
    let mut daemon = builder
        .config(&format!(
            r#"
programs:
  web:
    cmd: "{NGINX} -p {p}/ -c {p}/nginx.conf -e {p}/error.log"
    starttime: 1
"#
        ))
        .start()?;
    // A worker's answer: its pid, a child of `master`.
    let served_by = |master: u32| {
        http_get(port)
            .and_then(|body| body.parse::<u32>().ok())
            .and_then(procfs::stat)
            .is_some_and(|s| s.ppid == master)
    };
    let master = daemon.running_pid("web:0")?;
    let mut workers = Vec::new();
    assert!(wait_until(SOON, || {
        workers = procfs::live_children(master);
        workers.len() == 2
    }));
    assert!(wait_until(SOON, || served_by(master)));

    daemon.kill9()?;
    assert!(wait_until(SOON, || !procfs::is_alive(master)));
    assert!(
        workers.iter().any(|w| procfs::is_alive(w.pid)),
        "nginx's workers died with their master: the test would prove nothing"
    );
    daemon.restart()?;
    let new_master = daemon.running_pid("web:0")?;
    assert!(
        wait_until(SOON, || workers.iter().all(|w| !procfs::is_alive(w.pid))),
        "the old workers outlived the restart:\n{}",
        daemon.event_log()
    );
    assert!(
        wait_until(SOON, || served_by(new_master)),
        "port {port} is not served by the new master {new_master}:\n{}",
        std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
    );
    // Exactly one master with its two workers: the one the daemon runs, not
    // crash-looping.
    let nginxes: Vec<u32> = procfs::all_processes()
        .into_iter()
        .filter(|s| s.is_alive() && s.comm == "nginx")
        .filter(|s| {
            s.pid == master || s.pid == new_master || s.ppid == new_master || {
                workers.iter().any(|w| w.pid == s.pid)
            }
        })
        .map(|s| s.pid)
        .collect();
    assert_eq!(nginxes.len(), 3, "{nginxes:?}");
    let info = daemon.info("web:0")?.ok_or("web:0 is not in the status")?;
    assert_eq!(
        (info.state, info.pid, info.restarts),
        (ProcessState::Running, Some(new_master), 0)
    );
    Ok(())
}

/// The newest PostgreSQL's `bin` directory (Debian's layout).
fn pg_bin() -> TestResult<String> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|v| Path::new(&format!("/usr/lib/postgresql/{v}/bin/postgres")).exists())
        .max();
    match newest {
        Some(v) => Ok(format!("/usr/lib/postgresql/{v}/bin")),
        None => Err("PostgreSQL is missing: `apt-get install postgresql` (.ci/run does)".into()),
    }
}

/// Kills the client on the way out.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_of_the_postmaster_kills_its_backends_before_the_respawn() -> TestResult {
    postmaster_crash(true)
}

/// Without cgroups, the backends are the daemon's adopted orphans.
#[test]
fn without_cgroups_kill_9_of_the_postmaster_kills_its_backends_before_the_respawn() -> TestResult {
    postmaster_crash(false)
}

fn postmaster_crash(cgroups: bool) -> TestResult {
    let pg_bin = pg_bin()?;
    let pg = nix::unistd::User::from_name("postgres")?.ok_or("no user postgres")?;
    let port = free_port()?;
    let mut builder = DaemonBuilder::new()?;
    if !cgroups {
        builder = builder.env(NO_CGROUPS, "1");
    }
    let dir = builder.dir().to_path_buf();
    // postgres must reach its data directory.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let (data, sock) = (dir.join("pgdata"), dir.join("pgsock"));
    for d in [&data, &sock] {
        std::fs::create_dir(d)?;
        nix::unistd::chown(d, Some(pg.uid), Some(pg.gid))?;
    }
    let mut initdb = Command::new(format!("{pg_bin}/initdb"));
    initdb
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
            "-D",
        ])
        .arg(&data)
        .current_dir(&dir)
        .uid(pg.uid.as_raw())
        .gid(pg.gid.as_raw());
    let out = run_with_timeout(initdb, Duration::from_secs(60))?;
    assert_eq!(out.code, Some(0), "initdb: {}", out.combined());
    let daemon = builder
        .config(&format!(
            r#"
programs:
  db:
    cmd: "{pg_bin}/postgres -D {data} -p {port} -k {sock} -c listen_addresses= -c shared_buffers=8MB -c max_connections=8 -c fsync=off"
    user: postgres
    starttime: 1
    stopsignal: INT
    stoptime: 5
"#,
            data = data.display(),
            sock = sock.display(),
        ))
        .start()?;
    let psql = |sql: &str| {
        let mut cmd = Command::new(format!("{pg_bin}/psql"));
        cmd.args(["-X", "-A", "-t", "-U", "postgres", "-d", "postgres", "-h"])
            .arg(&sock)
            .args(["-p", &port.to_string(), "-c", sql]);
        cmd
    };
    let postmaster = daemon.running_pid("db:0")?;
    let query = || -> TestResult<bool> {
        let out = run_with_timeout(psql("select 6 * 7"), Duration::from_secs(10))?;
        Ok(out.code == Some(0) && out.stdout.trim() == "42")
    };
    assert!(wait_until(SOON, || query().unwrap_or(false)));

    // A client busy in a long statement, outside the daemon. Busy, not
    // `pg_sleep`: a backend that waits notices its postmaster's death and
    // exits by itself; one that computes does not.
    let mut long = psql("DO $$BEGIN LOOP END LOOP; END$$");
    long.stdout(Stdio::null()).stderr(Stdio::null());
    let _client = Client(long.spawn()?);
    let mut backend = None;
    assert!(
        wait_until(SOON, || {
            backend = procfs::live_children(postmaster)
                .into_iter()
                .find(|c| cmdline(c.pid).ends_with(" DO"))
                .map(|c| c.pid);
            backend.is_some()
        }),
        "no backend running the query"
    );
    let backend = backend.ok_or("no backend")?;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postmaster as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let killed = Instant::now();
    // RUNNING again within 5 s, at the first respawn, and answering.
    let mut info = None;
    let back = wait_until(Duration::from_secs(5), || {
        info = daemon.info("db:0").ok().flatten();
        info.as_ref().is_some_and(|i| {
            i.state == ProcessState::Running && i.pid.is_some_and(|p| p != postmaster)
        })
    });
    assert!(
        back,
        "not RUNNING 5 s after the kill: {info:?}\n{}\n{}",
        daemon.event_log(),
        std::fs::read_to_string(daemon.path("logs/db-0.stderr.log")).unwrap_or_default()
    );
    assert!(!procfs::is_alive(backend), "the backend {backend} lives on");
    assert!(query()?, "the respawned postgres does not answer");
    let info = daemon.info("db:0")?.ok_or("db:0 is not in the status")?;
    assert_eq!(
        (info.state, info.restarts),
        (ProcessState::Running, 1),
        "{:?} after {:?}\n{}",
        info,
        killed.elapsed(),
        daemon.event_log()
    );
    let stderr = std::fs::read_to_string(daemon.path("logs/db-0.stderr.log")).unwrap_or_default();
    assert!(
        !stderr.contains("pre-existing shared memory block"),
        "{stderr}"
    );
    let out = daemon.ctl(["stop", "db"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    daemon.wait_for_state("db:0", ProcessState::Stopped, SOON)?;
    Ok(())
}
