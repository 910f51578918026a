//! `bench`: taskmaster against supervisord on the scenarios of issue 7
//! (and, taskmaster only, the readiness rows of issue 13).
//!
//! ```text
//! cargo run --release -p integration --bin bench -- [--quick] [--only LIST]
//!     [--impl taskmaster|supervisord|both] [--n N] [--samples N] [--scale-n N]
//! ```
//!
//! Builds (through cargo, a no-op when fresh) and runs the release
//! `taskmasterd`, `taskmasterctl`, `stamp` and `listen`; finds supervisord in
//! `$SUPERVISORD`, `PATH` or `/tmp/sv/bin`, or prints how to install it and
//! reports "n/a" in its column. Prints one JSON line per figure on stdout as
//! it goes, progress on stderr, and at the end a Markdown table. Every
//! daemon and every process it started is killed when its scenario ends,
//! when the bench panics (`Drop`), and on SIGINT/SIGTERM (a watcher thread
//! kills every descendant and every member of their sessions).
//!
//! Exit codes: 0 done (targets missed or not), 1 the bench could not run,
//! 2 usage error, 130 interrupted.

use integration::bench::report::{self, Recorder};
use integration::bench::scenarios::{self, Ctx, Params};
use integration::bench::supervisord::SupervisordLauncher;
use integration::bench::taskmaster::TaskmasterLauncher;
use integration::bench::{Launcher, sys};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

/// The fd limit asked for: 10,000 children cost taskmasterd ~4 fds each
/// and supervisord ~5.
const WANT_NOFILE: u64 = 262_144;

const USAGE: &str =
    "usage: bench [--quick] [--only SCENARIO[,SCENARIO...]] [--impl taskmaster|supervisord|both]
             [--n N] [--samples N] [--scale-n N]

  --quick      short windows and sizes (~2.5 min with supervisord, 30 s without)
  --only       scenario groups: restart_latency, fleet (= spawn_all_running, daemon_rss,
               idle_cpu, status, stop_all), stdout_capture, crash_loop, reload_200,
               reload_1000, scale_10000, and taskmaster only: ready_tcp_1000,
               health_http_1000, ready_start_300ms
  --impl       which supervisors to run (default both; supervisord is skipped, n/a,
               when it is not installed)
  --n          instances of the fleet group (default 1000)
  --samples    restarts measured by restart_latency (default 150, quick 30)
  --scale-n    instances of scale_10000 (default 10000, quick 2000)";

#[derive(Debug)]
struct Options {
    params: Params,
    groups: Vec<&'static str>,
    taskmaster: bool,
    supervisord: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut params = Params::new(quick);
    let mut groups: Vec<&'static str> = scenarios::GROUPS.to_vec();
    let (mut taskmaster, mut supervisord) = (true, true);
    let mut it = args.iter();
    let number = |v: Option<&String>, flag: &str| -> Result<usize, String> {
        v.and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{flag} needs a positive number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {}
            "-h" | "--help" => return Err(String::new()),
            "--n" => params.n = number(it.next(), "--n")?,
            "--samples" => params.restart_samples = number(it.next(), "--samples")?,
            "--scale-n" => params.scale_n = number(it.next(), "--scale-n")?,
            "--impl" => match it.next().map(String::as_str) {
                Some("taskmaster") => supervisord = false,
                Some("supervisord") => taskmaster = false,
                Some("both") => {}
                other => return Err(format!("--impl: unknown {other:?}")),
            },
            "--only" => {
                let list = it.next().ok_or("--only needs a scenario list")?;
                groups.clear();
                for name in list.split(',').map(str::trim) {
                    let group = if scenarios::FLEET_SCENARIOS.contains(&name) {
                        "fleet"
                    } else {
                        scenarios::GROUPS
                            .iter()
                            .copied()
                            .find(|g| *g == name)
                            .ok_or_else(|| format!("--only: unknown scenario {name:?}"))?
                    };
                    if !groups.contains(&group) {
                        groups.push(group);
                    }
                }
                // Keep the documented order.
                groups.sort_by_key(|g| scenarios::GROUPS.iter().position(|x| x == g));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        params,
        groups,
        taskmaster,
        supervisord,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
    // Before any thread exists: the watcher gets the signals.
    if let Err(e) = cleanup_on_interrupt() {
        eprintln!("bench: cannot watch for SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
    }
    match run(&opts, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: &Options, args: &[String]) -> Result<(), String> {
    let began = std::time::Instant::now();
    let nofile = sys::raise_fd_limit(WANT_NOFILE);
    let load_start = sys::loadavg();
    eprintln!("bench: building the release binaries (a no-op when fresh)...");
    let (stamp, listen) = locate_binaries()?;
    let stamp_kind = stamp.kind;

    let mut launchers: Vec<Box<dyn Launcher>> = Vec::new();
    if opts.taskmaster {
        launchers.push(Box::new(TaskmasterLauncher));
    }
    let mut sv_missing = None;
    let mut sv_version = String::from("n/a");
    if opts.supervisord {
        match SupervisordLauncher::find(nofile) {
            Ok(sv) => {
                sv_version = sv.version();
                eprintln!(
                    "bench: supervisord {sv_version} at {}",
                    sv.supervisord.display()
                );
                launchers.push(Box::new(sv));
            }
            Err(why) => {
                eprintln!("bench: {why}\nbench: its column will read n/a");
                sv_missing = Some(why);
            }
        }
    } else {
        sv_missing = Some("not asked for (--impl taskmaster)".to_string());
    }

    let mut ctx = Ctx::new(opts.params.clone(), stamp.path, listen).map_err(|e| e.to_string())?;
    let mut rec = Recorder::default();
    for group in &opts.groups {
        for launcher in &launchers {
            eprintln!(
                "bench: {group} / {} (load {:.2})",
                launcher.kind(),
                sys::loadavg().unwrap_or(f64::NAN)
            );
            scenarios::run_group(&mut ctx, group, launcher.as_ref(), &mut rec);
        }
    }

    println!();
    println!(
        "{}",
        header(args, nofile, load_start, &sv_version, stamp_kind)
    );
    let took = began.elapsed().as_secs();
    println!("took: {}m{:02}s, builds included", took / 60, took % 60);
    println!();
    print!(
        "{}",
        report::table(&rec, &opts.params, sv_missing.as_deref())
    );
    if let Some(why) = sv_missing {
        println!("\nsupervisord: n/a ({why})");
    }
    Ok(())
}

/// Builds `stamp` (and the daemon binaries, for the e2e harness) in release
/// mode, unless `STAMP_BIN` / `TASKMASTERD_BIN` / `TASKMASTERCTL_BIN` say
/// where they are, and `listen` (the readiness scenarios' late listener,
/// `LISTEN_BIN`). Returns `stamp` and `listen`.
fn locate_binaries() -> Result<(Stamp, PathBuf), String> {
    let build = |env: &str, package: &str, bin: &str| -> Result<PathBuf, String> {
        if let Some(p) = std::env::var_os(env) {
            return Ok(PathBuf::from(p));
        }
        let manifest = integration::workspace_root().join("Cargo.toml");
        escargot::CargoBuild::new()
            .manifest_path(manifest)
            .package(package)
            .bin(bin)
            .release()
            .run()
            .map(|r| r.path().to_path_buf())
            .map_err(|e| format!("cannot build {bin} (package {package}): {e}"))
    };
    let daemon = build("TASKMASTERD_BIN", "supervisor", "taskmasterd")?;
    let ctl = build("TASKMASTERCTL_BIN", "ctl", "taskmasterctl")?;
    let listen = build("LISTEN_BIN", "integration", "listen")?;
    let stamp = match std::env::var_os("STAMP_BIN") {
        Some(p) => Stamp {
            path: PathBuf::from(p),
            kind: "from STAMP_BIN",
        },
        None => static_stamp().or_else(|why| {
            eprintln!(
                "bench: {why}\nbench: using a dynamically linked stamp: its own \
                 loading (~0.75 ms here) counts in every restart latency"
            );
            build("STAMP_BIN", "integration", "stamp").map(|path| Stamp {
                path,
                kind: "dynamic (glibc)",
            })
        })?,
    };
    // The harness reads these (it would otherwise build the profile the
    // bench was built with, which may be debug).
    // SAFETY: no other thread reads the environment (the signal watcher
    // only reads its pipe and /proc).
    unsafe {
        std::env::set_var("TASKMASTERD_BIN", &daemon);
        std::env::set_var("TASKMASTERCTL_BIN", &ctl);
    }
    eprintln!(
        "bench: {}\nbench: {}\nbench: {} ({})",
        daemon.display(),
        ctl.display(),
        stamp.path.display(),
        stamp.kind
    );
    Ok((stamp, listen))
}

/// The `stamp` binary the latency scenarios run, and how it was linked.
struct Stamp {
    path: PathBuf,
    kind: &'static str,
}

/// `stamp`, statically linked, so that what runs between `execve` and its
/// first clock read is the kernel's exec, not a loader: restart latencies
/// then measure "exit -> next exec" as the issue defines it. Measured here,
/// spawn to first stamp: musl static 0.15 ms; glibc static 0.44 ms (glibc's
/// start-up probes the CPU with `cpuid`, which traps to the hypervisor on
/// this VM); glibc dynamic 0.90 ms. musl is tried first
/// (`rustup target add x86_64-unknown-linux-musl`), then glibc static.
/// Each is built for an explicit target into its own directory, so the
/// flags reach only this build.
fn static_stamp() -> Result<Stamp, String> {
    let root = integration::workspace_root();
    let build = |target: &str, rustflags: &str| {
        escargot::CargoBuild::new()
            .manifest_path(root.join("Cargo.toml"))
            .package("integration")
            .bin("stamp")
            .release()
            .target(target)
            .target_dir(root.join("target").join("stamp"))
            .env("RUSTFLAGS", rustflags)
            .run()
            .map(|r| r.path().to_path_buf())
    };
    let musl = std::env::consts::ARCH.to_string() + "-unknown-linux-musl";
    match build(&musl, "") {
        Ok(path) => Ok(Stamp {
            path,
            kind: "static (musl)",
        }),
        Err(musl_error) => {
            eprintln!(
                "bench: no musl stamp ({musl_error}); for the figures in README.md run \
                 `rustup target add {musl}` once"
            );
            build(escargot::CURRENT_TARGET, "-C target-feature=+crt-static")
                .map(|path| Stamp {
                    path,
                    kind: "static (glibc)",
                })
                .map_err(|e| format!("cannot build a static stamp: {e}"))
        }
    }
}

/// Date, machine, limits and command, for the results file.
fn header(
    args: &[String],
    nofile: u64,
    load_start: Option<f64>,
    sv_version: &str,
    stamp_kind: &str,
) -> String {
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1048576.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = |l: Option<f64>| l.map_or("?".to_string(), |l| format!("{l:.2}"));
    format!(
        "date: {date}; machine: {cores} cores, {mem_gib:.1} GiB, Linux {}; \
         RLIMIT_NOFILE {nofile}; pid_max {}; supervisord {sv_version}; stamp {stamp_kind}\n\
         command: cargo run --release -p integration --bin bench -- {}\n\
         load average (1 min): {} at start, {} at end",
        kernel.trim(),
        sys::sysctl("/proc/sys/kernel/pid_max").unwrap_or(0),
        args.join(" "),
        load(load_start),
        load(sys::loadavg()),
    )
}

/// The write end of the self-pipe the signal handler writes to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    let byte = signo as u8;
    // SAFETY: write(2) is async-signal-safe; a failed write only loses
    // the wake-up of a watcher that is already awake.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// SIGINT/SIGTERM/SIGHUP wake a watcher thread (self-pipe), which SIGKILLs
/// every descendant of the bench and every member of their sessions (the
/// daemons run in sessions of their own, and their children stay in them
/// even when orphaned), then exits 130. Handlers, not a blocked mask: a
/// blocked mask would be inherited by the daemons (std does not reset it).
fn cleanup_on_interrupt() -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
    use nix::unistd::Pid;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
    // The handler uses the fd for the life of the process.
    std::mem::forget(write);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only makes an async-signal-safe write.
        unsafe { sigaction(s, &action)? };
    }
    std::thread::spawn(move || {
        let mut pipe = std::fs::File::from(read);
        let mut byte = [0u8; 1];
        if std::io::Read::read_exact(&mut pipe, &mut byte).is_err() {
            return;
        }
        eprintln!("bench: signal {}: killing everything it started", byte[0]);
        let me = std::process::id();
        // Kept across rounds: a daemon reaped meanwhile leaves its session.
        let mut sessions = std::collections::BTreeSet::new();
        integration::wait_until(std::time::Duration::from_secs(10), || {
            let all = integration::procfs::all_processes();
            let mine = integration::procfs::descendants_in(&all, me);
            sessions.extend(mine.iter().map(|p| p.pid));
            let mut victims: Vec<u32> = mine.iter().map(|p| p.pid).collect();
            victims.extend(
                all.iter()
                    .filter(|p| sessions.contains(&p.sid) && p.pid != me)
                    .map(|p| p.pid),
            );
            victims.retain(|p| integration::procfs::is_alive(*p));
            for p in &victims {
                let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
            }
            victims.is_empty()
        });
        std::process::exit(130);
    });
    Ok(())
}
