//! `user:` per program, and the config file root refuses to trust.

use integration::{TestDaemon, TestResult, check_config, procfs};
use std::os::unix::fs::PermissionsExt;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn a_program_runs_as_its_user_or_the_config_is_refused_when_not_root() -> TestResult {
    let config = "programs:\n  low:\n    cmd: sleep 1000\n    starttime: 0\n    user: nobody\n";
    if !is_root() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tm.yaml");
        std::fs::write(&path, config)?;
        let out = check_config(&path)?;
        assert_eq!(out.code, Some(1), "{}", out.combined());
        assert!(out.stderr.contains("programs.low.user"), "{}", out.stderr);
        assert!(out.stderr.contains("not root"), "{}", out.stderr);
        return Ok(());
    }
    let daemon = TestDaemon::start(config)?;
    let pid = daemon.running_pid("low:0")?;
    let nobody = nix::unistd::User::from_name("nobody")?.ok_or("no user nobody")?;
    let ids = |key| {
        procfs::status_field(pid, key)
            .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    let uid = nobody.uid.to_string();
    let gid = nobody.gid.to_string();
    assert_eq!(
        ids("Uid"),
        Some(vec![uid.clone(), uid.clone(), uid.clone(), uid])
    );
    assert_eq!(
        ids("Gid"),
        Some(vec![gid.clone(), gid.clone(), gid.clone(), gid])
    );
    assert_eq!(
        procfs::environ_var(pid, "USER").as_deref(),
        Some(nobody.name.as_str())
    );
    // Its output files are still written (by the daemon, through the pipe).
    assert!(daemon.path("logs/low-0.stdout.log").exists());
    Ok(())
}

#[test]
fn root_refuses_a_config_file_others_can_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tm.yaml");
    std::fs::write(&path, "programs:\n  web:\n    cmd: sleep 1\n")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    let out = check_config(&path)?;
    if is_root() {
        assert_eq!(out.code, Some(1), "{}", out.combined());
        assert!(
            out.stderr.contains("writable by everyone"),
            "{}",
            out.stderr
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let fixed = check_config(&path)?;
        assert_eq!(fixed.code, Some(0), "{}", fixed.combined());
    } else {
        assert_eq!(out.code, Some(0), "{}", out.combined());
    }
    Ok(())
}
