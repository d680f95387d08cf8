//! Generated credentials for the embedded default, kept in the data directory so that a restart
//! does not lock the backup software out.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{BucketScope, Secret, User};

const FILE_NAME: &str = "credentials.toml";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    access_key: String,
    secret_key: String,
}

/// Random characters from an alphabet, from the OS's generator.
///
/// # Errors
/// The OS generator failed.
pub fn random_string(len: usize, alphabet: &[u8]) -> std::io::Result<String> {
    let mut raw = vec![0u8; len];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    // 256 % alphabet.len() bias is irrelevant for the alphabets used here (32 and 64 letters).
    Ok(raw
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect())
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-";

/// A fresh access key / secret pair.
///
/// # Errors
/// The OS generator failed.
pub fn generate() -> std::io::Result<(String, Secret)> {
    let ak = format!("WG{}", random_string(18, KEY_ALPHABET)?);
    let sk = random_string(40, SECRET_ALPHABET)?;
    Ok((ak, Secret::new(sk)))
}

/// Loads the user kept in `data_dir`, or generates one and keeps it (mode 0600).
///
/// # Errors
/// The directory or the file cannot be read or written, or the file is damaged.
pub fn load_or_generate(data_dir: &Path) -> std::io::Result<User> {
    let path = data_dir.join(FILE_NAME);
    let stored = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<Stored>(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (access_key, secret) = generate()?;
            let stored = Stored {
                access_key,
                secret_key: secret.expose().to_owned(),
            };
            let text = toml::to_string(&stored).map_err(std::io::Error::other)?;
            write_private(&path, text.as_bytes())?;
            stored
        }
        Err(e) => return Err(e),
    };
    Ok(User {
        access_key: stored.access_key,
        secret_key: Secret::new(stored.secret_key),
        buckets: BucketScope::All,
        // An ordinary backup user; more rights only for users a config file names.
        permissions: policy::permissions::Permissions::BACKUP,
    })
}

/// Writes `bytes` to `path` readable by the owner only (0600), atomically and durably.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The admin token kept in `data_dir/admin-token`, or a new one kept there (mode 0600).
/// Returns the token and whether it was just made.
///
/// # Errors
/// The file cannot be read or written.
pub fn admin_token(data_dir: &Path) -> std::io::Result<(Secret, bool)> {
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((Secret::new(text.trim()), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_string(40, SECRET_ALPHABET)?;
            write_private(&path, token.as_bytes())?;
            Ok((Secret::new(token), true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!(
            "wormgate-cred-{}",
            random_string(8, KEY_ALPHABET).expect("rng")
        ));
        let first = load_or_generate(&dir).expect("generate");
        let second = load_or_generate(&dir).expect("load");
        assert_eq!(first.access_key, second.access_key);
        assert_eq!(first.secret_key, second.secret_key);
        assert_eq!(first.secret_key.expose().len(), 40);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
