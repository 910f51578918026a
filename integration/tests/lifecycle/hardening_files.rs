//! File tricks that must never make the daemon write where it should not,
//! leak a file's content, or freeze: symlinks and FIFOs at the paths it
//! writes or reads, a permissive umask, a token file anyone could hold, and
//! config files that are huge, endless or damaged (issue 11, defects 1, 2,
//! 3, 4, 8 and 9).
//!
//! Each test drives the real binaries. The ones about `user:` and file
//! owners need root (the daemon's usual place), and say so when skipped.

use integration::{
    CONFIG_FILE, CmdOutput, EVENT_LOG_FILE, SOON, TestDaemon, TestResult, bins, check_config,
    run_with_timeout, wait_until,
};
use nix::sys::signal::Signal;
use proto::ProcessState;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "root's secret, first line\n";
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn skipped(why: &str) -> TestResult {
    eprintln!("skipped: {why}");
    Ok(())
}

fn mkfifo(path: &Path) -> TestResult {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    Ok(())
}

/// A root-only file with [`SECRET`] in it: what an attacker wants written.
fn victim(dir: &Path) -> TestResult<std::path::PathBuf> {
    let path = dir.join("secret");
    std::fs::write(&path, SECRET)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// Runs `taskmasterd -c DIR/taskmaster.yaml` (foreground) on `config` and
/// expects it to refuse to start: exit 1 within 10 s. A daemon that starts
/// instead is killed at the deadline and the test fails.
fn start_fails(dir: &Path, config: &str) -> TestResult<CmdOutput> {
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, config)?;
    let mut cmd = Command::new(bins::taskmasterd()?);
    cmd.arg("-c").arg(&path).current_dir(dir);
    let out = run_with_timeout(cmd, Duration::from_secs(10))?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    Ok(out)
}

const NO_PROGRAMS: &str = "programs: {}\nserver:\n  listen: \"127.0.0.1:0\"\n";

// ----- defect 1: symlinks at the paths the daemon writes --------------------

#[test]
fn a_user_program_that_swaps_its_log_for_a_symlink_never_gets_root_to_write_through_it()
-> TestResult {
    if !is_root() {
        return skipped("needs root to run a program as nobody");
    }
    let builder = TestDaemon::builder()?;
    let dir = builder.dir().to_path_buf();
    // nobody may cross the test directory and owns the log directory, as an
    // operator who made a program's log directory its own would.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
    let out = dir.join("out");
    std::fs::create_dir(&out)?;
    std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY))?;
    let secret = victim(&dir)?;
    let daemon = builder
        .config(
            r#"
programs:
  low:
    cmd: "sh -c 'echo before; ln -s {dir}/secret {dir}/out/tmp; mv -f {dir}/out/tmp {dir}/out/low.log; while :; do echo after; sleep 0.1; done'"
    user: nobody
    starttime: 0
    stdout: "{dir}/out/low.log"
"#,
        )
        .start()?;
    let refusal = format!(
        "refusing to write programs.low stdout to a symlink: {}",
        out.join("low.log").display()
    );
    assert!(
        wait_until(SOON, || daemon.event_log().contains(&refusal)),
        "no {refusal:?}; the secret now holds {:?}\n{}",
        std::fs::read_to_string(&secret),
        daemon.diagnostics()
    );
    assert_eq!(std::fs::read_to_string(&secret)?, SECRET);
    assert_eq!(daemon.state_of("low:0")?, Some(ProcessState::Running));
    Ok(())
}

#[test]
fn a_symlink_already_at_an_output_path_fails_that_start_and_its_target_is_untouched() -> TestResult
{
    let builder = TestDaemon::builder()?;
    let dir = builder.dir().to_path_buf();
    let secret = victim(&dir)?;
    symlink(&secret, dir.join("web.log"))?;
    let daemon = builder
        .config(
            r#"
programs:
  web:
    cmd: "sh -c 'echo hello; exec sleep 1000'"
    startretries: 0
    stdout: "{dir}/web.log"
  other:
    cmd: sleep 1000
    starttime: 0
"#,
        )
        .start()?;
    let info = daemon.wait_for_state("web:0", ProcessState::Fatal, SOON)?;
    assert!(
        info.description.contains(&format!(
            "refusing to write programs.web stdout to a symlink: {}",
            dir.join("web.log").display()
        )),
        "{info:?}"
    );
    assert_eq!(std::fs::read_to_string(&secret)?, SECRET);
    // An error for that one program only.
    daemon.running_pid("other:0")?;
    Ok(())
}

#[test]
fn a_symlink_at_the_pidfile_or_the_event_log_stops_the_start_and_its_target_is_untouched()
-> TestResult {
    for (name, what) in [
        ("taskmasterd.pid", "the pidfile"),
        (EVENT_LOG_FILE, "the event log"),
    ] {
        let dir = tempfile::tempdir()?;
        let secret = victim(dir.path())?;
        let link = dir.path().join(name);
        symlink(&secret, &link)?;
        let out = start_fails(dir.path(), NO_PROGRAMS)?;
        assert!(
            out.stderr.contains(&format!(
                "refusing to write {what} to a symlink: {}",
                link.display()
            )),
            "{}",
            out.stderr
        );
        assert!(!out.combined().contains("secret"), "{}", out.combined());
        assert_eq!(std::fs::read_to_string(&secret)?, SECRET);
    }
    Ok(())
}

// ----- defect 2: modes whatever the umask -----------------------------------

#[test]
fn under_umask_000_logs_is_0750_and_output_files_0640() -> TestResult {
    let daemon = TestDaemon::builder()?
        .umask(0)
        .config(
            "programs:\n  web:\n    cmd: \"sh -c 'echo hi; exec sleep 1000'\"\n    starttime: 0\n",
        )
        .start()?;
    daemon.running_pid("web:0")?;
    let mode = |rel: &str| -> TestResult<u32> {
        Ok(std::fs::metadata(daemon.path(rel))?.permissions().mode() & 0o7777)
    };
    assert_eq!(mode("logs")?, 0o750);
    assert_eq!(mode("logs/web-0.stdout.log")?, 0o640);
    assert_eq!(mode("logs/web-0.stderr.log")?, 0o640);
    assert_eq!(mode(EVENT_LOG_FILE)?, 0o640);
    assert_eq!(mode("taskmasterd.token")?, 0o600);
    // A directory removed under it is recreated the same way.
    std::fs::remove_dir_all(daemon.path("logs"))?;
    let out = daemon.ctl(["restart", "web"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert_eq!(mode("logs")?, 0o750);
    Ok(())
}

// ----- defect 3: the token file ---------------------------------------------

#[test]
fn a_token_file_owned_by_another_user_a_symlink_or_too_short_is_refused_with_the_fix() -> TestResult
{
    let token = "0123456789abcdef".repeat(4);
    let write_token = |path: &Path, text: &str| -> TestResult {
        std::fs::write(path, format!("{text}\n"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    };
    // 17 characters.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("taskmasterd.token");
    write_token(&path, "0123456789abcdef0")?;
    let out = start_fails(dir.path(), NO_PROGRAMS)?;
    assert!(
        out.stderr.contains("holds 17 characters")
            && out
                .stderr
                .contains("at least 32 bytes of secret (64 hex digits)")
            && out
                .stderr
                .contains("delete it and taskmasterd will create a new one"),
        "{}",
        out.stderr
    );
    // A symlink to a good token elsewhere.
    let dir = tempfile::tempdir()?;
    let real = dir.path().join("real.token");
    write_token(&real, &token)?;
    let path = dir.path().join("taskmasterd.token");
    symlink(&real, &path)?;
    let out = start_fails(dir.path(), NO_PROGRAMS)?;
    assert!(
        out.stderr.contains(&format!(
            "refusing to read the token file from a symlink: {}",
            path.display()
        )) && out.stderr.contains("point server.token_file at it"),
        "{}",
        out.stderr
    );
    assert!(!out.combined().contains(&token), "{}", out.combined());
    if !is_root() {
        return skipped("the other-owner case needs root to chown");
    }
    // Owned by nobody, mode 0600: nobody could read it and drive root.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("taskmasterd.token");
    write_token(&path, &token)?;
    std::os::unix::fs::chown(&path, Some(NOBODY), None)?;
    let out = start_fails(dir.path(), NO_PROGRAMS)?;
    assert!(
        out.stderr.contains(&format!(
            "is owned by uid {NOBODY}, not by taskmasterd's user (uid 0)"
        )) && out
            .stderr
            .contains(&format!("run: chown 0 {}", path.display())),
        "{}",
        out.stderr
    );
    Ok(())
}

// ----- defect 4: FIFOs never freeze the daemon ------------------------------

#[test]
fn a_fifo_as_a_stdout_path_fails_that_start_and_the_daemon_keeps_answering() -> TestResult {
    let builder = TestDaemon::builder()?;
    let fifo = builder.dir().join("web.fifo");
    mkfifo(&fifo)?;
    let daemon = builder
        .config(
            r#"
programs:
  web:
    cmd: sleep 1000
    startretries: 0
    stdout: "{dir}/web.fifo"
  other:
    cmd: sleep 1000
    starttime: 0
"#,
        )
        .start()?;
    let info = daemon.wait_for_state("web:0", ProcessState::Fatal, SOON)?;
    assert!(
        info.description.contains(&format!(
            "refusing to write programs.web stdout to a FIFO: {}",
            fifo.display()
        )),
        "{info:?}"
    );
    daemon.running_pid("other:0")?;
    Ok(())
}

// The swaps below are renames (`mv -f`), atomic: with `rm` then `ln -s` the
// daemon may notice the removal in between and create a regular file there
// first, so the symlink is never made and the refusal never needed.
#[test]
fn a_program_replacing_its_log_with_a_fifo_never_freezes_the_daemon() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  swap:
    cmd: "sh -c 'echo first; mkfifo logs/tmp; mv -f logs/tmp logs/swap-0.stdout.log; while :; do echo more; sleep 0.1; done'"
    starttime: 0
"#,
    )?;
    let log = daemon.path("logs/swap-0.stdout.log");
    let refusal = format!(
        "refusing to write programs.swap stdout to a FIFO: {}",
        log.display()
    );
    assert!(
        wait_until(SOON, || daemon.event_log().contains(&refusal)),
        "no {refusal:?}\n{}",
        daemon.diagnostics()
    );
    // Still answering, and `tail` of a FIFO is an error, not a hang.
    assert_eq!(daemon.state_of("swap:0")?, Some(ProcessState::Running));
    let out = daemon.ctl(["tail", "swap"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.combined().contains(&format!(
            "refusing to read programs.swap stdout from a FIFO: {}",
            log.display()
        )),
        "{}",
        out.combined()
    );
    assert_eq!(daemon.state_of("swap:0")?, Some(ProcessState::Running));
    Ok(())
}

#[test]
fn a_fifo_in_place_of_the_config_and_sighup_leave_the_daemon_answering() -> TestResult {
    let daemon = TestDaemon::start("programs:\n  web:\n    cmd: sleep 1000\n    starttime: 0\n")?;
    let pid = daemon.running_pid("web:0")?;
    let config = daemon.config_path();
    std::fs::remove_file(&config)?;
    mkfifo(&config)?;
    daemon.signal(Signal::SIGHUP)?;
    let refusal = format!(
        "refusing to read the config file from a FIFO: {}",
        config.display()
    );
    assert!(
        wait_until(SOON, || daemon.event_log().contains(&refusal)),
        "no {refusal:?}\n{}",
        daemon.diagnostics()
    );
    assert_eq!(daemon.pid_of("web:0")?, Some(pid));
    let out = daemon.ctl(["reload"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(out.combined().contains(&refusal), "{}", out.combined());
    assert_eq!(daemon.pid_of("web:0")?, Some(pid));
    Ok(())
}

// ----- defect 8: bounded config ---------------------------------------------

#[test]
fn a_config_over_16_mib_dev_zero_or_too_many_processes_is_refused_naming_the_cap() -> TestResult {
    let dir = tempfile::tempdir()?;
    // 16 MiB + 1 byte of a valid file (a long comment).
    let big = dir.path().join("big.yaml");
    let head = "programs: {}\n#";
    let mut text = head.to_string();
    text.push_str(&"x".repeat(16 * 1024 * 1024 + 1 - head.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), 16 * 1024 * 1024 + 1);
    std::fs::write(&big, &text)?;
    let out = check_config(&big)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.stderr.contains(&format!(
            "refusing to read the config file {}: it is larger than 16 MiB (the limit)",
            big.display()
        )),
        "{}",
        out.stderr
    );
    // /dev/zero: refused at once, within a memory bound that reading it
    // would break.
    let mut cmd = Command::new(bins::taskmasterd()?);
    cmd.args(["--check", "-c", "/dev/zero"]);
    let limit = libc::rlimit {
        rlim_cur: 1 << 30,
        rlim_max: 1 << 30,
    };
    // SAFETY: setrlimit only (async-signal-safe), on a value built before
    // the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_timeout(cmd, Duration::from_secs(10))?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.stderr
            .contains("refusing to read the config file from a character device: /dev/zero"),
        "{}",
        out.stderr
    );
    // 11 programs of 10,000: 110,000 > the default cap of 100,000.
    let many = dir.path().join("many.yaml");
    let programs: String = (0..11)
        .map(|i| format!("  p{i}:\n    cmd: sleep 1\n    numprocs: 10000\n    autostart: false\n"))
        .collect();
    std::fs::write(&many, format!("programs:\n{programs}"))?;
    let out = check_config(&many)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.stderr.contains(&format!(
            "{}:1:1: programs: 110000 processes in all (the sum of numprocs) is more than server.max_processes (100000)",
            many.display()
        )),
        "{}",
        out.stderr
    );
    Ok(())
}

// ----- defect 9: control characters -----------------------------------------

#[test]
fn a_nul_before_a_program_is_refused_with_its_line_and_column_by_check_and_reload() -> TestResult {
    let good = "programs:\n  a:\n    cmd: sleep 1000\n    starttime: 0\n  b:\n    cmd: sleep 1000\n    starttime: 0\n";
    // yaml-rust2 stops at the NUL: `b` would silently not exist.
    let damaged = good.replacen("starttime: 0\n  b:", "starttime: 0\0\n  b:", 1);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("damaged.yaml");
    std::fs::write(&path, &damaged)?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.stderr.contains(&format!(
            "{}:4:17: control character U+0000 (NUL) is not allowed",
            path.display()
        )),
        "{}",
        out.stderr
    );
    // A reload of the damaged file changes nothing: `b` keeps running.
    let daemon = TestDaemon::start(good)?;
    let b = daemon.running_pid("b:0")?;
    let text = std::fs::read_to_string(daemon.config_path())?;
    std::fs::write(
        daemon.config_path(),
        text.replacen("starttime: 0\n  b:", "starttime: 0\0\n  b:", 1),
    )?;
    let out = daemon.ctl(["reload"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(out.combined().contains(":4:17:"), "{}", out.combined());
    assert_eq!(daemon.pid_of("b:0")?, Some(b));
    Ok(())
}
