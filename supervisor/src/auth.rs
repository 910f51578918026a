//! The control socket's shared secret.
//!
//! At start the daemon makes sure a token file exists: if missing it is
//! created with 32 random bytes in hex, mode 0600, with `O_EXCL` so an
//! existing file is never overwritten. An existing token file that group or
//! others can access is refused, like ssh refuses a readable private key:
//! whoever reads it controls every supervised process. Sessions compare
//! tokens in constant time.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

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
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(TokenError::Permissions {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
                let mut text = String::new();
                std::fs::File::open(path)
                    .and_then(|mut f| f.read_to_string(&mut text))
                    .map_err(|source| TokenError::Read {
                        path: path.to_path_buf(),
                        source,
                    })?;
                let text = text.trim().to_string();
                if text.is_empty() {
                    return Err(TokenError::Empty {
                        path: path.to_path_buf(),
                    });
                }
                Ok(Token(text))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(TokenError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn create(path: &Path) -> Result<Token, TokenError> {
        let err = |source| TokenError::Create {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(err)?;
        let token = hex::encode(bytes);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        file.write_all(format!("{token}\n").as_bytes())
            .map_err(err)?;
        Ok(Token(token))
    }

    /// Constant-time comparison with what a client presented.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented.trim().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(&path, "abc\n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        assert!(matches!(
            Token::load_or_create(&path),
            Err(TokenError::Permissions { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        assert!(Token::load_or_create(&path)?.matches("abc"));
        Ok(())
    }
}
