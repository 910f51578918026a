//! `taskmasterd`: the daemon binary.
//!
//! Thin on purpose: parse arguments, do every fallible start-up step (config,
//! event log, token, bind) with a clear message and exit code 1 on failure,
//! then hand over to [`supervisor::run`].
//!
//! Exit codes: 0 clean shutdown or valid `--check`; 1 invalid config or any
//! start-up failure.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use supervisor::{DaemonInit, auth, config, eventlog};

/// Keeps a YAML-described fleet of programs alive.
#[derive(Debug, Parser)]
#[command(name = "taskmasterd", version, about, long_about = None)]
struct Args {
    /// The config file.
    #[arg(short, long, value_name = "PATH", default_value = "taskmaster.yaml")]
    config: PathBuf,

    /// Validate the config file, print every problem, and exit (0 valid, 1 not).
    #[arg(long)]
    check: bool,
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
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            anyhow::bail!("invalid config {}; nothing started", args.config.display());
        }
    };
    prepare_process()?;
    let event_log = eventlog::EventLog::install(&config.log, true)?;
    let token = auth::Token::load_or_create(&config.server.token_file)?;
    let listener = std::net::TcpListener::bind(&config.server.listen)
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
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
    Ok(supervisor::run(DaemonInit {
        config,
        listener,
        token,
        event_log: Some(event_log),
    })?)
}

/// Process-wide settings made once, before any child exists.
fn prepare_process() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // Each child costs up to 2 pipe fds; at the usual soft limit of 1024 a
    // fleet of 1000 fails to spawn.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(NOFILE)")?;
    }
    // Whatever our own parent leaked to us (fds >= 3) must not reach the
    // children; mark them close-on-exec rather than closing them, since some
    // may be in use by the runtime's own libraries later.
    // SAFETY: plain syscall on our own fd table.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    // Grandchildren whose parent exits are re-parented to us, so the Reaper
    // collects them and nothing is left as a zombie or escapes `stop`.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    Ok(())
}
