//! `taskmasterd --check`: every bad config is rejected with exit 1 and one
//! `FILE:LINE:COL: key: why` line per problem; good ones pass with exit 0.

use integration::{CmdOutput, TestResult, check_config, workspace_root};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config file `taskmaster.yaml` with `text` in a fresh directory.
fn config_file(text: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("taskmaster.yaml");
    std::fs::write(&path, text)?;
    Ok((dir, path))
}

/// The first line of `out` that names `file:line:`, if any.
fn line_naming(out: &CmdOutput, file: &Path, line: usize) -> Option<String> {
    let prefix = format!("{}:{line}:", file.display());
    let text = out.combined();
    text.lines()
        .find(|l| l.contains(&prefix))
        .map(str::to_string)
}

/// One program `web` whose line 4 is `bad`; `--check` must reject it naming
/// line 4 and `key`.
fn rejects_line_4(bad: &str, key: &str) -> TestResult {
    let (_dir, path) = config_file(&format!(
        "programs:\n  web:\n    cmd: \"sleep 1\"\n    {bad}\n"
    ))?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1), "`{bad}` accepted:\n{}", out.combined());
    let line = line_naming(&out, &path, 4).ok_or_else(|| {
        format!(
            "`{bad}`: no line names {}:4:\n{}",
            path.display(),
            out.combined()
        )
    })?;
    assert!(line.contains(key), "`{bad}`: {line:?} does not name {key}");
    Ok(())
}

#[test]
fn rejects_an_unknown_key() -> TestResult {
    rejects_line_4("colour: blue", "programs.web.colour")
}

#[test]
fn rejects_a_negative_numprocs() -> TestResult {
    rejects_line_4("numprocs: -1", "programs.web.numprocs")
}

#[test]
fn rejects_a_non_numeric_numprocs() -> TestResult {
    rejects_line_4("numprocs: abc", "programs.web.numprocs")
}

#[test]
fn rejects_an_unknown_autorestart() -> TestResult {
    rejects_line_4("autorestart: sometimes", "programs.web.autorestart")
}

#[test]
fn rejects_an_unknown_stopsignal() -> TestResult {
    rejects_line_4("stopsignal: FOO", "programs.web.stopsignal")
}

#[test]
fn rejects_an_exitcode_out_of_range() -> TestResult {
    rejects_line_4("exitcodes: 300", "programs.web.exitcodes")
}

#[test]
fn rejects_a_non_octal_umask() -> TestResult {
    rejects_line_4("umask: 999", "programs.web.umask")
}

#[test]
fn reports_every_problem_one_per_line() -> TestResult {
    let (_dir, path) = config_file(
        "programs:\n  web:\n    cmd: \"sleep 1\"\n    numprocs: -1\n    autorestart: sometimes\n    stopsignal: FOO\n",
    )?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1));
    for (line, key) in [
        (4, "programs.web.numprocs"),
        (5, "programs.web.autorestart"),
        (6, "programs.web.stopsignal"),
    ] {
        let found = line_naming(&out, &path, line)
            .ok_or_else(|| format!("line {line} not reported:\n{}", out.combined()))?;
        assert!(found.contains(key), "{found:?} does not name {key}");
    }
    Ok(())
}

#[test]
fn rejects_a_yaml_syntax_error_naming_its_line() -> TestResult {
    let (_dir, path) = config_file("programs:\n  web:\n    cmd: [sleep, 1\n    numprocs: 2\n")?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    let prefix = format!("{}:", path.display());
    let names_a_line = out.combined().lines().any(|l| {
        l.split_once(&prefix)
            .and_then(|(_, rest)| rest.split(':').next()?.parse::<usize>().ok())
            .is_some_and(|n| n > 0)
    });
    assert!(names_a_line, "no FILE:LINE in:\n{}", out.combined());
    Ok(())
}

#[test]
fn rejects_a_billion_laughs_quickly() -> TestResult {
    let mut text = String::from(
        "lol0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 9].join(",");
        text.push_str(&format!("lol{i}: &l{i} [{refs}]\n"));
    }
    text.push_str("programs:\n  web:\n    cmd: \"sleep 1\"\n    env: *l9\n");
    let (_dir, path) = config_file(&text)?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.elapsed < Duration::from_secs(1),
        "took {:?}",
        out.elapsed
    );
    assert!(
        out.combined().len() < 64 * 1024,
        "the expansion leaked into the message ({} bytes)",
        out.combined().len()
    );
    Ok(())
}

#[test]
fn rejects_a_missing_file_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("absent.yaml");
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1));
    assert!(
        out.combined().contains(&path.display().to_string()),
        "{}",
        out.combined()
    );
    Ok(())
}

#[test]
fn accepts_a_config_using_every_key() -> TestResult {
    let (_dir, path) = config_file(
        r#"
programs:
  web:
    cmd: "sh -c 'exec sleep 1000'"
    numprocs: 2
    autostart: false
    autorestart: always
    exitcodes: [0, 2]
    starttime: 0.5
    startretries: 2
    stopsignal: USR1
    stoptime: 3
    stdout: null
    stderr: web.err
    env:
      A: 1
      B: true
      C: text
    workingdir: /tmp
    umask: 022
    maxrestarts: 5
    restartwindow: 10
  worker:
    cmd: sleep 1
    exitcodes: 0
server:
  listen: "127.0.0.1:0"
  token_file: token
log:
  file: events.log
  level: debug
"#,
    )?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    Ok(())
}

#[test]
fn accepts_every_example() -> TestResult {
    let dir = workspace_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML file in {}", dir.display());
    for file in files {
        let out = check_config(&file)?;
        assert_eq!(
            out.code,
            Some(0),
            "{} rejected:\n{}",
            file.display(),
            out.combined()
        );
    }
    Ok(())
}

#[test]
fn version_and_help_exit_0() -> TestResult {
    let bin = integration::bins::taskmasterd()?;
    for flag in ["--version", "--help"] {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg(flag);
        let out = integration::run_with_timeout(cmd, Duration::from_secs(10))?;
        assert_eq!(out.code, Some(0), "{flag}: {}", out.combined());
        assert!(out.stdout.contains("taskmasterd"), "{flag}: {}", out.stdout);
    }
    Ok(())
}

/// One program's missing `workingdir` does not keep the fleet down: `--check`
/// warns (exit 0), the daemon starts, the others run, and that program's
/// spawns fail with the OS error into BACKOFF, then FATAL.
#[test]
fn a_missing_working_directory_is_a_warning_and_only_that_program_fails() -> TestResult {
    let config = "programs:\n  lost:\n    cmd: \"sleep 1000\"\n    workingdir: /nonexistent-taskmaster-dir\n    startretries: 1\n  fine:\n    cmd: \"sleep 1000\"\n    starttime: 0\n";
    let (_dir, path) = config_file(config)?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    let warning = line_naming(&out, &path, 4).ok_or(out.combined())?;
    assert!(
        warning.starts_with("warning: ") && warning.contains("programs.lost.workingdir"),
        "{warning:?}"
    );
    let daemon = integration::TestDaemon::start(config)?;
    daemon.running_pid("fine:0")?;
    let lost = daemon.wait_for_state(
        "lost:0",
        proto::ProcessState::Fatal,
        Duration::from_secs(20),
    )?;
    assert!(
        lost.description
            .contains("working directory /nonexistent-taskmaster-dir: No such file or directory"),
        "{lost:?}"
    );
    assert!(
        daemon.event_log().contains("programs.lost.workingdir"),
        "the start-up log warns:\n{}",
        daemon.event_log()
    );
    Ok(())
}
