//! Behaviour of `config::parse` as `taskmasterd --check` users see it: every
//! problem with its line and key, the defaults, and the shipped examples.

use super::*;
use std::time::Instant;

/// A config file path whose directory need not exist.
pub(super) const FILE: &str = "/srv/tm/taskmaster.yaml";

pub(super) fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new(FILE)) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems for {text:?}, got {other:?}"),
    }
}

/// The single problem `text` has.
pub(super) fn problem(text: &str) -> Problem {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "{text:?} gave {all:#?}");
    all.remove(0)
}

pub(super) fn valid(text: &str) -> Result<Config, String> {
    parse(text, Path::new(FILE)).map_err(|e| e.to_string())
}

pub(super) fn web(config: &Config) -> Result<&ProgramConfig, String> {
    config
        .programs
        .get("web")
        .map(|p| &**p)
        .ok_or_else(|| "no program `web`".to_string())
}

/// `web` with one extra line of settings, written at line 4.
pub(super) fn web_with(line: &str) -> String {
    format!("programs:\n  web:\n    cmd: sleep 1\n    {line}\n")
}

fn assert_problem_at(p: &Problem, line: usize, key: &str, words: &str) {
    assert_eq!(p.line, line, "{p}");
    assert_eq!(p.key, key, "{p}");
    assert!(p.message.contains(words), "{p} lacks {words:?}");
}

#[test]
fn display_is_file_line_col_key_message() {
    let p = problem(&web_with("numprocs: -1"));
    assert_eq!(
        p.to_string(),
        format!(
            "{FILE}:4:15: programs.web.numprocs: expected a whole number from 0 to 10000, found the integer -1"
        )
    );
}

#[test]
fn unknown_keys_suggest_the_closest_valid_key() {
    let p = problem(&web_with("numproc: 2"));
    assert_eq!((p.line, p.col), (4, 5));
    assert_eq!(p.key, "programs.web.numproc");
    assert_eq!(p.message, "unknown key `numproc`, did you mean `numprocs`?");

    let p = problem("programs: {}\nsevrer: {}\n");
    assert_problem_at(&p, 2, "sevrer", "did you mean `server`?");
}

#[test]
fn supervisord_option_names_get_the_name_of_ours() {
    for (theirs, ours) in [
        ("command: x", "did you mean `cmd`?"),
        ("environment: {A: b}", "did you mean `env`?"),
        ("directory: /tmp", "did you mean `workingdir`?"),
        ("stopwaitsecs: 3", "did you mean `stoptime`?"),
        ("startsecs: 3", "did you mean `starttime`?"),
        ("stdout_logfile: a.log", "did you mean `stdout`?"),
        ("stderr_logfile: a.log", "did you mean `stderr`?"),
        (
            "redirect_stderr: true",
            "`stderr:` set to the same file as `stdout:`",
        ),
        ("priority: 10", "`depends_on: {NAME: started}`"),
    ] {
        let p = problem(&web_with(theirs));
        assert!(
            p.message.starts_with(&format!(
                "unknown key `{}`, ",
                &theirs[..theirs.find(':').unwrap_or(0)]
            )),
            "{theirs}: {}",
            p.message
        );
        assert!(p.message.contains(ours), "{theirs}: {}", p.message);
    }
    // Only among program keys: `command` in `server` is not `cmd`.
    let p = problem("programs: {}\nserver: {command: x}\n");
    assert!(!p.message.contains("`cmd`"), "{}", p.message);
}

#[test]
fn unknown_keys_far_from_any_list_the_valid_ones() {
    let p = problem("programs: {}\nmailer: {to: me}\n");
    assert_problem_at(
        &p,
        2,
        "mailer",
        "valid keys are: programs, server, log, email",
    );
    let p = problem(&web_with("frobnicate: 1"));
    assert!(p.message.contains("cmd, numprocs, autostart"), "{p}");
}

#[test]
fn bad_numprocs_are_reported() {
    for (value, words) in [
        ("-1", "the integer -1"),
        ("abc", "the string \"abc\""),
        ("1.5", "the number 1.5"),
        ("10001", "the integer 10001"),
        ("\"2\"", "remove the quotes"),
        ("", "nothing (null)"),
    ] {
        let p = problem(&web_with(&format!("numprocs: {value}")));
        assert_problem_at(&p, 4, "programs.web.numprocs", words);
    }
}

#[test]
fn bad_enumerations_are_reported() {
    let p = problem(&web_with("autorestart: sometimes"));
    assert_problem_at(
        &p,
        4,
        "programs.web.autorestart",
        "`always`, `never`, `unexpected`",
    );
    let p = problem(&web_with("stopsignal: FOO"));
    assert_problem_at(&p, 4, "programs.web.stopsignal", "TERM, INT, QUIT");
    // A real signal, but not one to stop a program with.
    let p = problem(&web_with("stopsignal: STOP"));
    assert_problem_at(&p, 4, "programs.web.stopsignal", "not a stop signal");
    let p = problem(&web_with("autostart: yes"));
    assert_problem_at(&p, 4, "programs.web.autostart", "yes/no/on/off as strings");
}

#[test]
fn exit_codes_are_bytes() {
    let p = problem(&web_with("exitcodes: 300"));
    assert_problem_at(&p, 4, "programs.web.exitcodes", "from 0 to 255");
    let p = problem(&web_with("exitcodes: [0, 2, -1]"));
    assert_problem_at(&p, 4, "programs.web.exitcodes[2]", "the integer -1");
}

#[test]
fn exit_codes_take_one_or_a_list() -> Result<(), String> {
    assert_eq!(web(&valid(&web_with("exitcodes: 2"))?)?.exitcodes, vec![2]);
    let config = valid(&web_with("exitcodes:\n      - 0\n      - 2"))?;
    assert_eq!(web(&config)?.exitcodes, vec![0, 2]);
    Ok(())
}

#[test]
fn umask_is_octal_as_written() -> Result<(), String> {
    for form in ["022", "\"022\"", "0o22", "22", "'0022'"] {
        let config = valid(&web_with(&format!("umask: {form}")))?;
        assert_eq!(web(&config)?.umask, Some(0o022), "umask: {form}");
    }
    assert_eq!(web(&valid(&web_with("umask: 0"))?)?.umask, Some(0));
    assert_eq!(web(&valid(&web_with("umask: 777"))?)?.umask, Some(0o777));
    let p = problem(&web_with("umask: 999"));
    assert_problem_at(&p, 4, "programs.web.umask", "octal digits are 0-7");
    for bad in ["1000", "0x1f", "true", "-22", "2.5"] {
        let p = problem(&web_with(&format!("umask: {bad}")));
        assert_problem_at(&p, 4, "programs.web.umask", "octal umask");
    }
    Ok(())
}

#[test]
fn seconds_accept_fractions_but_not_negatives_or_infinities() -> Result<(), String> {
    let config = valid(&web_with("starttime: 0.5"))?;
    assert_eq!(web(&config)?.starttime, Duration::from_millis(500));
    assert_eq!(
        web(&valid(&web_with("stoptime: 0"))?)?.stoptime,
        Duration::ZERO
    );
    for bad in [
        "starttime: -1",
        "stoptime: .inf",
        "stoptime: .nan",
        "starttime: soon",
        "restartwindow: 0",
        "stoptime: 1e300",
    ] {
        let p = problem(&web_with(bad));
        assert_eq!(p.line, 4, "{p}");
        assert!(p.message.contains("seconds"), "{p}");
    }
    Ok(())
}

#[test]
fn yaml_syntax_errors_are_one_problem_with_a_position() {
    let p = problem("programs:\n  web:\n    cmd: [sleep\n    numprocs: 2\n");
    assert!(p.line >= 3, "{p}");
    assert!(p.message.starts_with("YAML syntax error"), "{p}");
}

#[test]
fn the_alias_bomb_is_refused_quickly() {
    let mut text = String::from(
        "lol: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
    }
    text.push_str("programs: {}\n");
    let start = Instant::now();
    let all = problems(&text);
    let took = start.elapsed();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].message.contains("alias bomb"), "{}", all[0]);
    assert!(took < Duration::from_millis(200), "took {took:?}");
}

#[test]
fn duplicate_keys_are_reported() {
    let p = problem(&web_with("cmd: sleep 2"));
    assert_problem_at(
        &p,
        4,
        "programs.web.cmd",
        "duplicate key `cmd` (first defined on line 3)",
    );
    let p = problem("programs:\n  web: {cmd: a}\n  web: {cmd: b}\n");
    assert_problem_at(&p, 3, "programs.web", "duplicate key `web`");
}

#[test]
fn missing_cmd_is_reported_at_the_program() {
    let p = problem("programs:\n  web:\n    numprocs: 2\n");
    assert_problem_at(&p, 2, "programs.web.cmd", "missing required key `cmd`");
    let p = problem("programs:\n  web:\n");
    assert_problem_at(&p, 2, "programs.web.cmd", "missing required key `cmd`");
}

#[test]
fn bad_commands_are_reported() {
    let p = problem("programs:\n  web:\n    cmd: \"echo 'oops\"\n");
    assert_problem_at(&p, 3, "programs.web.cmd", "unbalanced quote");
    let p = problem("programs:\n  web:\n    cmd: \"  \"\n");
    assert_problem_at(&p, 3, "programs.web.cmd", "empty");
    let p = problem("programs:\n  web:\n    cmd: [sleep, 1]\n");
    assert_problem_at(&p, 3, "programs.web.cmd", "found a list");
}

#[test]
fn bad_program_names_are_reported() {
    let p = problem("programs:\n  \"we b\":\n    cmd: x\n");
    assert_problem_at(&p, 2, "programs.we b", "invalid program name");
    let p = problem("programs:\n  all:\n    cmd: x\n");
    assert_problem_at(&p, 2, "programs.all", "reserved");
    let p = problem("programs:\n  \"web:1\":\n    cmd: x\n");
    assert_problem_at(&p, 2, "programs.web:1", "invalid program name");
}

#[test]
fn every_problem_is_reported_at_once_in_order() {
    let text = "programs:\n  web:\n    cmd: sleep 1\n    numprocs: abc\n    stopsignal: FOO\n  \
                worker:\n    umask: 999\n";
    let all = problems(text);
    let keys: Vec<(usize, &str)> = all.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        keys,
        vec![
            (4, "programs.web.numprocs"),
            (5, "programs.web.stopsignal"),
            (6, "programs.worker.cmd"),
            (7, "programs.worker.umask"),
        ]
    );
}

#[test]
fn the_document_must_have_programs() {
    let p = problem("");
    assert_problem_at(&p, 1, "programs", "empty");
    let p = problem("server: {}\n");
    assert_problem_at(&p, 1, "programs", "missing required key `programs`");
    let p = problem("- a\n- b\n");
    assert_problem_at(&p, 1, "", "found a list");
    let p = problem("programs: [web]\n");
    assert_problem_at(&p, 1, "programs", "expected a mapping");
}

#[test]
fn defaults_are_supervisords() -> Result<(), String> {
    let config = valid("programs:\n  web:\n    cmd: sleep 'a b'\n")?;
    let dir = Path::new("/srv/tm");
    assert_eq!(config.file, Path::new(FILE));
    assert_eq!(config.dir, dir);
    let expected = ProgramConfig {
        argv: vec!["sleep".to_string(), "a b".to_string()],
        ..ProgramConfig::with_defaults("web", "sleep 'a b'", &dir.join("logs"))
    };
    assert_eq!(*web(&config)?, expected);
    let p = web(&config)?;
    assert_eq!(p.numprocs, 1);
    assert!(p.autostart);
    assert_eq!(p.autorestart, AutoRestart::Unexpected);
    assert_eq!(p.exitcodes, vec![0]);
    assert_eq!(p.starttime, Duration::from_secs(1));
    assert_eq!(p.startretries, 3);
    assert_eq!(p.stopsignal, Signal::Term);
    assert_eq!(p.stoptime, Duration::from_secs(10));
    assert_eq!(p.stdout, OutputTarget::InstanceFileIn(dir.join("logs")));
    assert_eq!(p.stderr, OutputTarget::InstanceFileIn(dir.join("logs")));
    assert!(p.env.is_empty());
    assert_eq!((p.workingdir.clone(), p.umask), (None, None));
    assert_eq!(
        (p.maxrestarts, p.restartwindow),
        (3, Duration::from_secs(5))
    );
    assert_eq!(
        config.server,
        ServerConfig {
            listen: "127.0.0.1:4242".to_string(),
            token_file: dir.join("taskmasterd.token"),
            allow_remote: false,
            pidfile: dir.join("taskmasterd.pid"),
            max_processes: 100_000,
        }
    );
    assert_eq!(
        config.log,
        LogConfig {
            file: dir.join("taskmasterd.log"),
            level: LogLevel::Info,
        }
    );
    Ok(())
}

#[test]
fn empty_programs_and_sections_are_fine() -> Result<(), String> {
    assert!(valid("programs: {}\n")?.programs.is_empty());
    // Sections whose keys are all commented out read as null.
    assert!(
        valid("programs:\nserver:\n  # listen: 0.0.0.0:1\nlog:\n")?
            .programs
            .is_empty()
    );
    Ok(())
}

#[test]
fn env_values_become_strings() -> Result<(), String> {
    let config = valid(&web_with(
        "env:\n      ANSWER: 42\n      X: true\n      MODE: 0755\n      PI: 3.14\n      S: hi there\n      Q: \"yes\"",
    ))?;
    let env = &web(&config)?.env;
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("ANSWER"), Some("42"));
    assert_eq!(get("X"), Some("true"));
    assert_eq!(get("MODE"), Some("0755"));
    assert_eq!(get("PI"), Some("3.14"));
    assert_eq!(get("S"), Some("hi there"));
    assert_eq!(get("Q"), Some("yes"));
    let p = problem(&web_with("env:\n      A=B: 1"));
    assert_problem_at(
        &p,
        5,
        "programs.web.env.A=B",
        "invalid environment variable name",
    );
    let p = problem(&web_with("env:\n      EMPTY:"));
    assert_problem_at(
        &p,
        5,
        "programs.web.env.EMPTY",
        "write \"\" for an empty value",
    );
    Ok(())
}

#[test]
fn relative_paths_resolve_against_the_config_dir() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir(tmp.path().join("out"))?;
    std::fs::create_dir(tmp.path().join("work"))?;
    let file = tmp.path().join("tm.yaml");
    let text = "programs:\n  web:\n    cmd: x\n    stdout: out/web.log\n    stderr: null\n    \
                workingdir: work\nserver:\n  token_file: secret/token\n  pidfile: /run/tm.pid\n\
                log:\n  file: tm.log\n  level: DEBUG\n";
    let config = parse(text, &file)?;
    let p = config.programs.get("web").ok_or("no web")?;
    assert_eq!(p.stdout, OutputTarget::File(tmp.path().join("out/web.log")));
    assert_eq!(p.stderr, OutputTarget::Discard);
    assert_eq!(p.workingdir, Some(tmp.path().join("work")));
    assert_eq!(config.server.token_file, tmp.path().join("secret/token"));
    assert_eq!(config.server.pidfile, Path::new("/run/tm.pid"));
    assert_eq!(config.log.file, tmp.path().join("tm.log"));
    assert_eq!(config.log.level, LogLevel::Debug);
    Ok(())
}

#[test]
fn missing_directories_are_reported() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("plain"), "")?;
    let file = tmp.path().join("tm.yaml");
    let text = "programs:\n  web:\n    cmd: x\n    stdout: nodir/web.log\n    stderr: .\n    \
                workingdir: plain\n  api:\n    cmd: x\n    workingdir: /nonexistent-taskmaster-dir\n";
    let Err(ConfigError::Invalid { problems, .. }) = parse(text, &file) else {
        return Err("expected problems".into());
    };
    let got: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        got,
        vec![(4, "programs.web.stdout"), (5, "programs.web.stderr")],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("does not exist"));
    assert!(problems[1].message.contains("is a directory"));
    Ok(())
}

/// One program's missing `workingdir` must not keep the fleet down: it is
/// a warning, and that program's spawns fail with the OS error.
#[test]
fn a_missing_working_directory_or_zero_numprocs_is_a_warning()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("plain"), "")?;
    let file = tmp.path().join("tm.yaml");
    let text = "programs:\n  web:\n    cmd: x\n    workingdir: plain\n  api:\n    cmd: x\n    \
                workingdir: /nonexistent-taskmaster-dir\n  none:\n    cmd: x\n    numprocs: 0\n";
    let config = parse(text, &file).map_err(|e| e.to_string())?;
    assert_eq!(
        config.programs["api"].workingdir.as_deref(),
        Some(Path::new("/nonexistent-taskmaster-dir"))
    );
    let got: Vec<(usize, &str)> = config
        .warnings
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (4, "programs.web.workingdir"),
            (7, "programs.api.workingdir"),
            (10, "programs.none.numprocs"),
        ],
        "{:#?}",
        config.warnings
    );
    assert!(config.warnings[0].message.contains("not a directory"));
    assert!(
        config.warnings[1]
            .message
            .contains("No such file or directory")
    );
    assert!(config.warnings[2].message.contains("will run nothing"));
    Ok(())
}

#[test]
fn dev_null_discards_and_other_special_outputs_are_warned_about()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("link.log"))?;
    let text = "programs:\n  web:\n    cmd: x\n    stdout: /dev/null\n    stderr: link.log\n";
    let config = parse(text, &tmp.path().join("tm.yaml")).map_err(|e| e.to_string())?;
    assert_eq!(config.programs["web"].stdout, OutputTarget::Discard);
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert_eq!(config.warnings[0].key, "programs.web.stderr");
    assert!(config.warnings[0].message.contains("not a regular file"));
    Ok(())
}

#[test]
fn non_loopback_listen_needs_allow_remote() -> Result<(), String> {
    let p = problem("programs: {}\nserver:\n  listen: 0.0.0.0:4242\n");
    assert_problem_at(&p, 3, "server.listen", "set server.allow_remote: true");
    assert!(
        p.message.contains("non-loopback address 0.0.0.0:4242"),
        "{p}"
    );
    let config = valid("programs: {}\nserver:\n  listen: 0.0.0.0:4242\n  allow_remote: true\n")?;
    assert_eq!(config.server.listen, "0.0.0.0:4242");
    assert!(config.server.allow_remote);
    for ok in ["127.0.0.1:0", "[::1]:4242", "localhost:4242", "127.9.9.9:1"] {
        valid(&format!("programs: {{}}\nserver:\n  listen: \"{ok}\"\n"))?;
    }
    let p = problem("programs: {}\nserver:\n  listen: example.com:80\n");
    assert_problem_at(&p, 3, "server.listen", "allow_remote");
    for bad in [
        "4242",
        "127.0.0.1:http",
        ":4242",
        "::1:4242",
        "127.0.0.1:70000",
        "a_b:1",
    ] {
        let p = problem(&format!("programs: {{}}\nserver:\n  listen: \"{bad}\"\n"));
        assert_eq!((p.line, p.key.as_str()), (3, "server.listen"), "{p}");
    }
    Ok(())
}

#[test]
fn anchors_and_merge_keys_share_settings() -> Result<(), String> {
    // Top-level `x-` keys are ignored, so that shared settings have a home.
    let text = "x-defaults: &defaults\n  numprocs: 2\n  stopsignal: INT\nprograms:\n  web:\n    <<: *defaults\n    cmd: a\n    numprocs: 3\n";
    let config = valid(text)?;
    let p = web(&config)?;
    assert_eq!((p.numprocs, p.stopsignal), (3, Signal::Int));
    let text = "programs:\n  web: &web\n    cmd: a\n    numprocs: 2\n    stopsignal: INT\n  api:\n    <<: *web\n    cmd: b\n";
    let config = valid(text)?;
    let api = config.programs.get("api").ok_or("no api")?;
    assert_eq!(
        (api.cmd.as_str(), api.numprocs, api.stopsignal),
        ("b", 2, Signal::Int)
    );
    Ok(())
}

#[test]
fn changed_keys_names_exactly_the_key_that_changed() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = tmp.path().join("tm.yaml");
    // `watchdog` needs `ready: {notify: true}`, `before_start_timeout` a
    // hook: the base has both, and their edits replace them.
    let base = "email: {smtp: {host: localhost}, from: tm@example.com, to: ops@example.com}\nprograms:\n  web:\n    cmd: sleep 1\n    ready: {notify: true}\n    before_start: \"true\"\n  db: {cmd: sleep 1}\n";
    let edits = [
        ("cmd", "cmd: sleep 2"),
        ("numprocs", "numprocs: 3"),
        ("autostart", "autostart: false"),
        ("autorestart", "autorestart: always"),
        ("exitcodes", "exitcodes: [0, 1]"),
        ("starttime", "starttime: 2"),
        ("startretries", "startretries: 9"),
        ("stopsignal", "stopsignal: USR1"),
        ("stoptime", "stoptime: 1.5"),
        ("stdout", "stdout: out.log"),
        ("stderr", "stderr: null"),
        ("env", "env: {A: b}"),
        ("workingdir", "workingdir: /"),
        ("umask", "umask: 077"),
        // Ourselves: valid whether or not the tests run as root.
        ("user", "user: {euid}"),
        ("maxrestarts", "maxrestarts: 0"),
        ("restartwindow", "restartwindow: 60"),
        ("notify", "notify: [{on: fatal}]"),
        ("ready", "ready: {notify: true, timeout: 5}"),
        ("health", "health: {tcp: \"127.0.0.1:1\"}"),
        ("watchdog", "watchdog: 3"),
        ("before_start", "before_start: \"false\""),
        ("before_start_timeout", "before_start_timeout: 5"),
        ("depends_on", "depends_on: {db: ready}"),
    ];
    let edited: Vec<&str> = edits.iter().map(|(k, _)| *k).collect();
    let classified: Vec<&str> = PROGRAM_KEYS.iter().map(|(k, _)| *k).collect();
    assert_eq!(edited, classified, "every key must be edited once");
    let program = |text: &str| -> Result<ProgramConfig, String> {
        let config = parse(text, &file).map_err(|e| e.to_string())?;
        let p = config.programs.get("web").ok_or("no web")?;
        Ok((**p).clone())
    };
    let old = program(base)?;
    assert!(changed_keys(&old, &old).is_empty());
    for (key, line) in edits {
        let line = &line.replace("{euid}", &nix::unistd::geteuid().to_string());
        // A key the base has is replaced (a duplicate key would be
        // refused); others are added.
        let old_line = base
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}:")));
        let text = match old_line {
            Some(old_line) => base.replacen(old_line.trim_start(), line, 1),
            None => base.replacen("\n  db:", &format!("\n    {line}\n  db:"), 1),
        };
        let new = program(&text)?;
        assert_eq!(changed_keys(&old, &new), vec![key], "after `{line}`");
        assert!(key_class(key).is_some());
    }
    // `name` is not a key: a renamed program is a different program.
    let renamed = ProgramConfig {
        name: "api".to_string(),
        ..old.clone()
    };
    assert!(changed_keys(&old, &renamed).is_empty());
    Ok(())
}

#[test]
fn key_classes_follow_the_reload_rules() {
    assert_eq!(key_class("cmd"), Some(KeyClass::Spawn));
    assert_eq!(key_class("umask"), Some(KeyClass::Spawn));
    assert_eq!(key_class("stoptime"), Some(KeyClass::Policy));
    assert_eq!(key_class("numprocs"), Some(KeyClass::Scale));
    assert_eq!(key_class("autostart"), Some(KeyClass::Autostart));
    // Issue 13: probes and dependencies apply in place; the hook is part
    // of how an instance is spawned.
    for key in ["ready", "health", "watchdog", "depends_on"] {
        assert_eq!(key_class(key), Some(KeyClass::Policy), "{key}");
    }
    for key in ["before_start", "before_start_timeout"] {
        assert_eq!(key_class(key), Some(KeyClass::Spawn), "{key}");
    }
    assert_eq!(key_class("name"), None);
    assert_eq!(key_class("argv"), None);
}

#[test]
fn every_example_is_valid() -> Result<(), String> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            load(&path).map_err(|e| e.to_string())?;
            checked += 1;
        }
    }
    assert!(checked > 0, "no example in {}", dir.display());
    Ok(())
}

#[test]
fn the_subject_example_reads_as_written() -> Result<(), String> {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/nginx-vogsphere.yaml"
    ));
    let config = load(path).map_err(|e| e.to_string())?;
    let nginx = config.programs.get("nginx").ok_or("no nginx")?;
    assert_eq!(
        nginx.argv,
        ["/usr/local/bin/nginx", "-c", "/etc/nginx/test.conf"]
    );
    assert_eq!(
        (nginx.umask, nginx.exitcodes.clone()),
        (Some(0o022), vec![0, 2])
    );
    assert_eq!(nginx.env.get("ANSWER").map(String::as_str), Some("42"));
    let vogsphere = config.programs.get("vogsphere").ok_or("no vogsphere")?;
    assert_eq!((vogsphere.numprocs, vogsphere.umask), (8, Some(0o077)));
    assert_eq!(vogsphere.stopsignal, Signal::Usr1);
    assert_eq!(
        vogsphere.stdout,
        OutputTarget::File("/tmp/vgsworker.stdout".into())
    );
    Ok(())
}

#[test]
fn a_thousand_programs_parse_quickly() -> Result<(), String> {
    let mut text = String::from("programs:\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "  prog{i}:\n    cmd: /bin/sleep {i}\n    numprocs: 2\n    autorestart: always\n    \
             exitcodes: [0, 2]\n    starttime: 0.5\n    stopsignal: INT\n    umask: 022\n    \
             env: {{A: x, B: 1}}\n"
        ));
    }
    // Best of three: the machines this runs on are shared.
    let mut took = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let config = valid(&text)?;
        took = took.min(start.elapsed());
        assert_eq!(config.programs.len(), 1000);
    }
    println!("1000 programs ({} bytes) parsed in {took:?}", text.len());
    // Generous, so that a busy machine does not fail it; the target is well
    // under 100 ms in debug, most of it yaml-rust2's scanner.
    assert!(took < Duration::from_millis(500), "took {took:?}");
    Ok(())
}

#[test]
fn the_demo_reads_as_its_comments_say() -> Result<(), String> {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/taskmaster.yaml"
    ));
    let config = load(path).map_err(|e| e.to_string())?;
    assert_eq!(config.server.listen, "127.0.0.1:4242");
    assert_eq!(web(&config)?.numprocs, 2);
    let worker = config.programs.get("worker").ok_or("no worker")?;
    assert_eq!(worker.argv.len(), 3, "{:?}", worker.argv);
    assert_eq!(
        (worker.argv[0].as_str(), worker.argv[1].as_str()),
        ("sh", "-c")
    );
    assert_eq!(worker.env.get("ANSWER").map(String::as_str), Some("42"));
    assert_eq!(worker.env.get("VERBOSE").map(String::as_str), Some("true"));
    assert_eq!(
        (worker.umask, worker.stderr.clone()),
        (Some(0o027), OutputTarget::Discard)
    );
    assert!(matches!(worker.stdout, OutputTarget::InstanceFileIn(_)));
    assert_eq!(worker.workingdir.as_deref(), Some(Path::new("/tmp")));
    let flaky = config.programs.get("flaky").ok_or("no flaky")?;
    assert_eq!(flaky.autorestart, AutoRestart::Unexpected);
    let batch = config.programs.get("batch").ok_or("no batch")?;
    assert!(!batch.autostart);
    assert_eq!(
        (batch.autorestart, batch.starttime),
        (AutoRestart::Never, Duration::ZERO)
    );
    Ok(())
}

#[test]
fn user_is_resolved_by_name_or_uid_and_refused_when_unknown() -> Result<(), String> {
    use super::validate::resolve_user;
    let me = nix::unistd::geteuid().as_raw();
    let myself = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(me))
        .map_err(|e| e.to_string())?
        .ok_or("this test's user has no account entry")?;
    let by_uid = resolve_user(&me.to_string(), me)?;
    let by_name = resolve_user(&myself.name, me)?;
    assert_eq!(by_uid, by_name);
    assert_eq!((by_uid.uid, by_uid.gid), (me, myself.gid.as_raw()));
    assert!(by_uid.groups.contains(&by_uid.gid), "{by_uid:?}");
    let config = valid(&web_with(&format!("user: {}", myself.name)))?;
    assert_eq!(web(&config)?.user.as_ref(), Some(&by_name));

    let p = problem(&web_with("user: no-such-user-here"));
    assert_problem_at(&p, 4, "programs.web.user", "no user \"no-such-user-here\"");
    assert!(resolve_user("99999999999", me).is_err());
    Ok(())
}

#[test]
fn user_other_than_the_daemons_needs_root() -> Result<(), String> {
    use super::validate::resolve_user;
    // As if the daemon ran as uid 4242: root (uid 0) is someone else.
    let why = resolve_user("0", 4242).err().ok_or("accepted")?;
    assert!(why.contains("not root"), "{why}");
    // Root may run programs as anyone.
    assert_eq!(resolve_user("0", 0)?.uid, 0);
    Ok(())
}

#[test]
fn root_refuses_files_others_can_change() {
    // (uid, gid, mode, is_dir) -> refused?
    let cases = [
        ((0, 0, 0o100644, false), false),
        ((0, 0, 0o100664, false), false),   // group root may write
        ((0, 50, 0o100664, false), true),   // another group may write
        ((0, 0, 0o100646, false), true),    // everyone may write
        ((1000, 0, 0o100600, false), true), // owned by someone else
        ((0, 0, 0o41777, true), false),     // /tmp: sticky
        ((0, 0, 0o40777, true), true),      // world-writable, not sticky
        ((0, 0, 0o40755, true), false),
    ];
    for ((uid, gid, mode, is_dir), refused) in cases {
        let why = unsafe_for_root(uid, gid, mode, is_dir);
        assert_eq!(why.is_some(), refused, "{uid} {gid} {mode:o}: {why:?}");
    }
}

#[test]
fn load_as_root_refuses_a_world_writable_file() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tm.yaml");
    std::fs::write(&path, "programs: {}\n")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    let loaded = load(&path);
    if nix::unistd::geteuid().is_root() {
        let Err(e) = loaded else {
            panic!("root loaded a world-writable config");
        };
        assert!(matches!(e, ConfigError::Unsafe { .. }), "{e}");
        assert!(e.to_string().contains("writable by everyone"), "{e}");
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        assert!(load(&path).is_ok());
    } else {
        // Only root runs commands as others; anyone else may use such a file.
        assert!(loaded.is_ok(), "{loaded:?}");
    }
    Ok(())
}

#[test]
fn mangled_configs_never_panic_and_always_say_where() {
    let base: Vec<char> = include_str!("../../../examples/taskmaster.yaml")
        .chars()
        .collect();
    let alphabet = [
        ':', '-', '[', ']', '{', '}', '&', '*', '!', '"', '\'', '\n', ' ', '#', '|', '>', '0', 'x',
        '<', '?', ',', '\t', '%', '@', '`',
    ];
    // xorshift: deterministic, so a failure can be replayed.
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % 1_000_003).unwrap_or(0)
    };
    for round in 0..1000 {
        let mut chars = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = next() % chars.len();
            let c = alphabet[next() % alphabet.len()];
            match next() % 3 {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        let text: String = chars.into_iter().collect();
        if let Err(e) = parse(&text, Path::new(FILE)) {
            let ConfigError::Invalid { problems, .. } = &e else {
                panic!("round {round}: {e}");
            };
            assert!(!problems.is_empty(), "round {round}");
            for p in problems {
                assert!(p.line >= 1 && p.col >= 1, "round {round}: {p}\n{text}");
                assert!(!p.message.is_empty(), "round {round}");
            }
        }
    }
}

#[test]
fn a_nul_or_other_control_character_is_refused_with_its_position() {
    // yaml-rust2 would stop at the NUL and `b` would silently not exist.
    let p = problem("programs:\n  a:\n    cmd: sleep 1\n \0 b:\n    cmd: sleep 2\n");
    assert_eq!((p.line, p.col), (4, 2), "{p}");
    assert!(p.message.contains("U+0000 (NUL)"), "{p}");
    let p = problem("programs:\n  a:\n    cmd: \"sle\u{1b}ep 1\"\n");
    assert_eq!((p.line, p.col), (3, 14), "{p}");
    // Tabs in a value, CR LF line ends are fine.
    assert!(valid("programs:\r\n  a:\r\n    cmd: \"sleep\t1\"\r\n").is_ok());
    // A binary file: a bounded list, not one problem per byte.
    let all = problems(&"\u{1}".repeat(1000));
    assert_eq!(all.len(), 10);
    assert!(all[9].message.contains("990 more"), "{}", all[9]);
}

#[test]
fn invalid_utf8_is_a_problem_at_its_position() {
    match parse_bytes(b"programs:\n  a:\n    cmd: \xff\n", Path::new(FILE)) {
        Err(ConfigError::Invalid { problems, .. }) => {
            assert_eq!(problems.len(), 1);
            assert_eq!((problems[0].line, problems[0].col), (3, 10));
            assert!(problems[0].message.contains("0xff"), "{}", problems[0]);
        }
        other => panic!("expected a problem, got {other:?}"),
    }
}

#[test]
fn the_total_of_numprocs_is_capped_by_server_max_processes() -> Result<(), String> {
    let many: String = (0..11)
        .map(|i| format!("  p{i}:\n    cmd: sleep 1\n    numprocs: 10000\n"))
        .collect();
    let p = problem(&format!("programs:\n{many}"));
    assert_eq!((p.line, p.key.as_str()), (1, "programs"), "{p}");
    assert!(
        p.message
            .contains("110000 processes in all (the sum of numprocs) is more than server.max_processes (100000)"),
        "{p}"
    );
    let config = valid(&format!(
        "server:\n  max_processes: 110000\nprograms:\n{many}"
    ))?;
    assert_eq!(config.server.max_processes, 110_000);
    let p = problem(
        "server:\n  max_processes: 2\nprograms:\n  a:\n    cmd: sleep 1\n    numprocs: 3\n",
    );
    assert!(p.message.contains("3 processes in all"), "{p}");
    let p = problem("server:\n  max_processes: 0\nprograms: {}\n");
    assert_eq!(p.key, "server.max_processes", "{p}");
    Ok(())
}

#[test]
fn a_config_that_is_not_a_regular_file_or_too_large_is_refused_at_once()
-> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let err = load(Path::new("/dev/zero"))
        .err()
        .ok_or("/dev/zero loaded")?;
    assert_eq!(
        err.to_string(),
        "refusing to read the config file from a character device: /dev/zero"
    );
    let dir = tempfile::tempdir()?;
    let fifo = dir.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    let err = load(&fifo).err().ok_or("a FIFO loaded")?;
    assert!(err.to_string().contains("from a FIFO"), "{err}");
    let big = dir.path().join("big.yaml");
    let file = std::fs::File::create(&big)?;
    file.set_len(MAX_CONFIG_BYTES + 1)?;
    let err = load(&big).err().ok_or("a huge file loaded")?;
    assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    Ok(())
}
