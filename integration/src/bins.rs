//! Where the binaries under test are.
//!
//! `taskmasterd` and `taskmasterctl` live in other packages, so Cargo's
//! `CARGO_BIN_EXE_*` does not reach them. They are built once per test
//! process with `cargo build` (through `escargot`, which reads the artifact
//! path from Cargo's JSON messages, so the path is right whatever the target
//! dir), and the result is cached in a `OnceLock`. `cargo build` is a no-op
//! when they are fresh, so this costs little under `cargo test --workspace`.
//! `TASKMASTERD_BIN` / `TASKMASTERCTL_BIN` override the lookup (e.g. to test
//! an installed build).

use crate::HarnessError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `taskmasterd`, built from package `supervisor`.
pub fn taskmasterd() -> Result<&'static Path, HarnessError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    locate(&BIN, "TASKMASTERD_BIN", "supervisor", "taskmasterd")
}

/// `taskmasterctl`, built from package `ctl`.
pub fn taskmasterctl() -> Result<&'static Path, HarnessError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    locate(&BIN, "TASKMASTERCTL_BIN", "ctl", "taskmasterctl")
}

fn locate(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    env: &str,
    package: &str,
    bin: &str,
) -> Result<&'static Path, HarnessError> {
    let found = cell.get_or_init(|| {
        if let Some(path) = std::env::var_os(env) {
            return Ok(PathBuf::from(path));
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        // No `current_target()`: `--target` would build into another
        // directory and recompile everything a second time.
        escargot::CargoBuild::new()
            .manifest_path(manifest)
            .package(package)
            .bin(bin)
            .current_release()
            .run()
            .map(|run| run.path().to_path_buf())
            .map_err(|e| format!("cannot build {bin} (package {package}): {e}"))
    });
    match found {
        Ok(path) => Ok(path.as_path()),
        Err(e) => Err(HarnessError::Build(e.clone())),
    }
}
