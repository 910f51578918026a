//! The control socket's shared secret.
//!
//! At start the daemon makes sure a token file exists: if missing it is
//! created with 32 random bytes in hex, mode 0600, with `O_EXCL` so an
//! existing file (or a symlink) is never overwritten. Whoever reads the token
//! controls every supervised process, so an existing token file is used only
//! if it is a regular file (not a symlink: opened with `O_NOFOLLOW`), owned by
//! the daemon's user, not accessible by group or others (like ssh refuses a
//! readable private key), and holds at least 32 bytes of secret (64 hex
//! digits when it is hex, as generated). Anything else stops the start with
//! the reason and the fix. Sessions compare tokens in constant time.

use crate::sys::fsafe::{self, FileError};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// Bytes of secret a token must carry at least.
pub const MIN_SECRET_BYTES: usize = 32;
/// A token file larger than this is not a token.
const MAX_TOKEN_FILE: u64 = 4096;

/// Why the token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read token file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create token file {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("token file {} is accessible by group or others (mode {mode:o}); run: chmod 600 {}", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("token file {} is empty; delete it and taskmasterd will create a new one", path.display())]
    Empty { path: PathBuf },
    #[error("token file {} is owned by uid {owner}, not by taskmasterd's user (uid {daemon}): its owner can read or replace the token; run: chown {daemon} {}", path.display(), path.display())]
    Owner {
        path: PathBuf,
        owner: u32,
        daemon: u32,
    },
    #[error("{error}; the token file must be the file itself: point server.token_file at it, or delete {} and taskmasterd will create a new one", path.display())]
    NotRegular { path: PathBuf, error: FileError },
    #[error("token file {} holds {len} characters; a token must be at least {MIN_SECRET_BYTES} bytes of secret ({} hex digits): delete it and taskmasterd will create a new one", path.display(), 2 * MIN_SECRET_BYTES)]
    TooShort { path: PathBuf, len: usize },
}

/// The secret. Never printed.
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads the token file, creating it first if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Token, TokenError> {
        let daemon = nix::unistd::geteuid().as_raw();
        let (bytes, meta) =
            match fsafe::read_bounded(path, "the token file", fsafe::Follow::No, MAX_TOKEN_FILE) {
                Ok(read) => read,
                Err(e) if e.is_not_found() => return Self::create(path),
                Err(FileError::Io { source, .. }) => {
                    return Err(TokenError::Read {
                        path: path.to_path_buf(),
                        source,
                    });
                }
                Err(error) => {
                    return Err(TokenError::NotRegular {
                        path: path.to_path_buf(),
                        error,
                    });
                }
            };
        if meta.uid() != daemon {
            return Err(TokenError::Owner {
                path: path.to_path_buf(),
                owner: meta.uid(),
                daemon,
            });
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if text.is_empty() {
            return Err(TokenError::Empty {
                path: path.to_path_buf(),
            });
        }
        if secret_bytes(&text) < MIN_SECRET_BYTES {
            return Err(TokenError::TooShort {
                path: path.to_path_buf(),
                len: text.chars().count(),
            });
        }
        Ok(Token(text))
    }

    fn create(path: &Path) -> Result<Token, TokenError> {
        let err = |source| TokenError::Create {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = [0u8; MIN_SECRET_BYTES];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(err)?;
        let token = hex::encode(bytes);
        let mut file = fsafe::create_new(path, "the token file", 0o600).map_err(|e| match e {
            FileError::Io { source, .. } => err(source),
            error => TokenError::NotRegular {
                path: path.to_path_buf(),
                error,
            },
        })?;
        file.write_all(format!("{token}\n").as_bytes())
            .map_err(err)?;
        Ok(Token(token))
    }

    /// Constant-time comparison with what a client presented.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented.trim().as_bytes()))
    }
}

/// Bytes of secret in a token: hex digits carry half a byte each, anything
/// else is counted as written.
fn secret_bytes(token: &str) -> usize {
    if token.bytes().all(|b| b.is_ascii_hexdigit()) {
        token.len() / 2
    } else {
        token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_with_mode_0600_and_never_overwrites() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.token");
        let first = Token::load_or_create(&path)?;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(first.0.len(), 64);
        let second = Token::load_or_create(&path)?;
        assert!(second.matches(&first.0));
        assert!(!second.matches("wrong"));
        assert!(!format!("{second:?}").contains(&first.0));
        Ok(())
    }

    #[test]
    fn refuses_a_token_readable_by_others() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.token");
        let token = "z".repeat(MIN_SECRET_BYTES);
        std::fs::write(&path, format!("{token}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        assert!(matches!(
            Token::load_or_create(&path),
            Err(TokenError::Permissions { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        assert!(Token::load_or_create(&path)?.matches(&token));
        Ok(())
    }

    #[test]
    fn refuses_a_short_token_a_symlink_and_another_owner() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.token");
        let write = |text: &str| -> std::io::Result<()> {
            std::fs::write(&path, text)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        };
        write("0123456789abcdef0\n")?;
        let err = Token::load_or_create(&path)
            .err()
            .ok_or("17 characters accepted")?;
        assert!(err.to_string().contains("holds 17 characters"), "{err}");
        assert!(err.to_string().contains("delete it"), "{err}");
        // 63 hex digits are 31.5 bytes; 64 are enough.
        write(&"a".repeat(63))?;
        assert!(matches!(
            Token::load_or_create(&path),
            Err(TokenError::TooShort { .. })
        ));
        write(&"a".repeat(64))?;
        assert!(Token::load_or_create(&path).is_ok());

        let link = dir.path().join("link.token");
        std::os::unix::fs::symlink(&path, &link)?;
        let err = Token::load_or_create(&link)
            .err()
            .ok_or("a symlink accepted")?;
        assert!(
            err.to_string()
                .starts_with("refusing to read the token file from a symlink"),
            "{err}"
        );
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), None)?;
            let err = Token::load_or_create(&path)
                .err()
                .ok_or("a foreign owner accepted")?;
            assert!(err.to_string().contains("owned by uid 65534"), "{err}");
            assert!(err.to_string().contains("chown 0 "), "{err}");
        }
        Ok(())
    }
}
