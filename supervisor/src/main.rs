//! `taskmasterd`: the daemon binary.
//!
//! Thin on purpose: parse arguments, do every fallible start-up step (config,
//! event log, token, bind) with a clear message and exit code 1 on failure,
//! stop what an earlier daemon on this config left running
//! ([`leftovers`]), then hand over to [`supervisor::run`].
//!
//! Exit codes: 0 clean shutdown, valid `--check`, or (with `-d`) the daemon
//! is up; 1 invalid config or any start-up failure.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use supervisor::{
    DaemonInit, auth, config, daemonize, descendants, eventlog, leftovers, pidfile, signals,
};

/// Keeps a YAML-described fleet of programs alive.
#[derive(Debug, Parser)]
#[command(name = "taskmasterd", version, long_version = descendants::long_version(), about, long_about = None)]
struct Args {
    /// The config file.
    #[arg(short, long, value_name = "PATH", default_value = "taskmaster.yaml")]
    config: PathBuf,

    /// Validate the config file, print every problem, and exit (0 valid, 1 not).
    #[arg(long)]
    check: bool,

    /// Go to the background once everything that can fail has succeeded;
    /// exits 0 when the daemon is up, 1 with the reason otherwise.
    #[arg(short, long)]
    daemonize: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.check {
        return check(&args);
    }
    match start(&args) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("taskmasterd: {e:#}");
            tracing::error!("start-up failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check(args: &Args) -> ExitCode {
    match config::load(&args.config) {
        Ok(config) => {
            let processes: u64 = config
                .programs
                .values()
                .map(|p| u64::from(p.numprocs))
                .sum();
            println!(
                "{}: OK ({} program(s), {} process(es))",
                config.file.display(),
                config.programs.len(),
                processes
            );
            // Warnings do not fail the check: the config runs as it is.
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            ExitCode::from(1)
        }
    }
}

fn start(args: &Args) -> anyhow::Result<i32> {
    // First: from here on no signal can kill the daemon by its default
    // action; those received during start-up are applied once it is done.
    signals::install().context("cannot install the signal handlers")?;
    // Everything that can fail happens here, before going to the background,
    // so that a failure is a message on the terminal and exit status 1.
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            anyhow::bail!("invalid config {}; nothing started", args.config.display());
        }
    };
    raise_fd_limit()?;
    unblock_handled_signals()?;
    abort_on_panic();
    mark_inherited_fds_cloexec();
    supervisor::actors::process::spawn::reserve_stdio_slots()
        .context("cannot reserve the descriptors children's stdio passes through")?;
    let mut pidfile = pidfile::Pidfile::acquire(&config.server.pidfile)?;
    let token = auth::Token::load_or_create(&config.server.token_file)?;
    let listener = std::net::TcpListener::bind(&config.server.listen)
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let event_log = eventlog::EventLog::install(&config.log, !args.daemonize)?;
    config.prepare_logs_dir().with_context(|| {
        format!(
            "cannot create {}",
            config.dir.join(config::DEFAULT_LOGS_DIR).display()
        )
    })?;

    let ready = if args.daemonize {
        Some(daemonize::detach()?)
    } else {
        None
    };

    // From here on we are the daemon process.
    pidfile.write_pid(std::process::id())?;
    // Not inherited across fork: set it in the process that stays.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    if let Some(previous) = &pidfile.previous {
        tracing::warn!(
            pidfile = %pidfile.path().display(),
            previous = %previous,
            "took over a stale pidfile (no running daemon held its lock)"
        );
    }
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "control socket reachable from the network (server.allow_remote)");
    }
    tracing::info!(
        pid = std::process::id(),
        version = proto::SUITE_VERSION,
        config = %config.file.display(),
        "daemon started"
    );
    tracing::info!("listening on {addr}");
    // Only now, holding the pidfile lock and the port: a second daemon on
    // this config has failed before it could get here and stop our children.
    let tag = leftovers::install(leftovers::Tag::for_config(&config.file));
    descendants::start(tag, &config, pidfile.path());
    leftovers::stop_leftovers(tag, &config);
    if let Some(signal) = signals::take_shutdown_request() {
        tracing::info!(
            signal,
            "shutdown requested during start-up; nothing was started"
        );
        descendants::finish(pidfile.path());
        pidfile.remove();
        event_log.flush_stderr(STDERR_FLUSH);
        return Ok(0);
    }
    let log = event_log.clone();
    let code = supervisor::run(
        DaemonInit {
            config,
            listener,
            token,
            event_log: Some(event_log),
            ready,
        },
        apply_signals,
    );
    descendants::finish(pidfile.path());
    pidfile.remove();
    log.flush_stderr(STDERR_FLUSH);
    Ok(code?)
}

/// The daemon's control future: every signal [`signals::install`] counted,
/// applied on the actor thread, those of start-up first and in order (a
/// reload before a shutdown).
async fn apply_signals(daemon: supervisor::Daemon) {
    let applied = signals::dispatch(|sig, meaning, count| match meaning {
        // A second SIGTERM/SIGINT forces the shutdown.
        signals::Meaning::Shutdown => {
            for _ in 0..count.min(2) {
                daemon.shutdown(&signals::name(sig));
            }
        }
        // A burst of SIGHUPs is one reload: each reload is synchronous in
        // the Registry and reads the latest file.
        signals::Meaning::Reload => daemon.reload(),
        signals::Meaning::ReopenLogs => daemon.reopen_logs(),
        signals::Meaning::Ignore => {}
    })
    .await;
    if let Err(e) = applied {
        tracing::error!("signals can no longer be received: {e}");
    }
}

/// How long the last event-log lines may take to reach stderr at exit (a
/// stderr nobody reads must not keep the daemon from exiting).
const STDERR_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// Each child costs up to 2 pipe fds; at the usual soft limit of 1024 a
/// fleet of 1000 fails to spawn.
fn raise_fd_limit() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(NOFILE)")?;
    }
    Ok(())
}

/// Whatever our own parent leaked to us (fds >= 3) must not reach the
/// children. They are marked close-on-exec rather than closed: closing fds we
/// do not know could pull one from under a library.
fn mark_inherited_fds_cloexec() {
    // SAFETY: a plain syscall on our own fd table; failure (kernel < 5.11)
    // only loses this hardening, and each child marks them again before exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// A parent that blocked these (some shells and job runners do) would make
/// reload, shutdown and reaping silently never happen: the handlers tokio
/// installs only run for delivered signals.
fn unblock_handled_signals() -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGCHLD,
        Signal::SIGUSR2,
    ] {
        set.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None).context("sigprocmask(SIG_UNBLOCK)")
}

/// A panic inside an actor would only end that actor's task: the daemon would
/// live on headless (seen: a Registry that died in `started` left a process
/// answering nothing). For a supervisor, dying loudly is the safe failure: its
/// children go with it (parent-death signal), a service manager sees the
/// crash, and the next daemon stops any leftover. So: log it, then abort.
fn abort_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("internal error, aborting taskmasterd: {info}");
        default_hook(info);
        std::process::abort();
    }));
}
