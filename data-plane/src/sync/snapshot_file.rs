//! The encrypted on-disk copy of the last applied snapshot (RELIABILITY P14), so that a data
//! plane restarted while the database is down can still serve. The snapshot holds upstream
//! credentials: it is sealed with AES-256-GCM, and neither it nor the key is ever logged.
//!
//! Format: `MAGIC` (which is also the additional data, so a file of another format version fails
//! to open, P13) · 96-bit random nonce · ciphertext and tag of the JSON [`SavedSnapshot`].

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, Nonce, Payload};
use aes_gcm::{Aes256Gcm, KeyInit as _};
use serde::{Deserialize, Serialize};
use shared::snapshot::Snapshot;

const MAGIC: &[u8; 8] = b"GHSNAP01";
const NONCE_LEN: usize = 12;

/// What the file holds: the snapshot and when it was last known current.
#[derive(Serialize, Deserialize)]
pub struct SavedSnapshot {
    /// Unix milliseconds of the sync that applied it; its age counts against `max_config_age`.
    pub synced_unix_ms: u64,
    pub snapshot: Snapshot,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Wrong key, another format version, or a damaged file: GCM cannot tell them apart.
    #[error("{0}: not a snapshot file of this version, damaged, or sealed with another key")]
    Unreadable(PathBuf),
    /// Only an absurdly large snapshot makes AES-GCM refuse.
    #[error("{0}: the snapshot is too large to seal")]
    Seal(PathBuf),
    #[error("{path}: encoding or decoding the snapshot: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub struct SnapshotFile {
    path: PathBuf,
    cipher: Aes256Gcm,
}

impl SnapshotFile {
    pub fn new(path: PathBuf, key: &[u8; 32]) -> SnapshotFile {
        SnapshotFile {
            path,
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals and writes atomically (temporary file, fsync, rename), readable by the owner only.
    /// Blocking: run it off the async workers.
    pub fn write(&self, saved: &SavedSnapshot) -> Result<(), SnapshotFileError> {
        let io = |source| SnapshotFileError::Io {
            path: self.path.clone(),
            source,
        };
        let plain = serde_json::to_vec(saved).map_err(|source| SnapshotFileError::Json {
            path: self.path.clone(),
            source,
        })?;
        let nonce = Nonce::<Aes256Gcm>::from(rand::random::<[u8; NONCE_LEN]>());
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| SnapshotFileError::Seal(self.path.clone()))?;
        let mut temp = self.path.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io)?;
        file.write_all(MAGIC).map_err(io)?;
        file.write_all(&nonce).map_err(io)?;
        file.write_all(&sealed).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, &self.path).map_err(io)?;
        // The rename is durable only once the directory is synced.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }

    /// Reads and opens the file. Blocking: run it off the async workers.
    pub fn read(&self) -> Result<SavedSnapshot, SnapshotFileError> {
        let data = fs::read(&self.path).map_err(|source| SnapshotFileError::Io {
            path: self.path.clone(),
            source,
        })?;
        let unreadable = || SnapshotFileError::Unreadable(self.path.clone());
        let rest = data.strip_prefix(MAGIC).ok_or_else(unreadable)?;
        if rest.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| unreadable())?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: MAGIC,
                },
            )
            .map_err(|_| unreadable())?;
        serde_json::from_slice(&plain).map_err(|source| SnapshotFileError::Json {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(version: i64) -> SavedSnapshot {
        SavedSnapshot {
            synced_unix_ms: 42,
            snapshot: Snapshot {
                version,
                accounts: vec![],
                integrations: vec![],
                subjects: vec![],
                keys: vec![],
            },
        }
    }

    #[test]
    fn round_trips_and_refuses_another_key_or_tampering() {
        let dir = std::env::temp_dir().join(format!("gh-snap-{}", uuid::Uuid::new_v4()));
        fs::create_dir(&dir).unwrap();
        let path = dir.join("snapshot");
        let file = SnapshotFile::new(path.clone(), &[7; 32]);
        file.write(&saved(3)).unwrap();
        file.write(&saved(4)).unwrap();
        let back = file.read().unwrap();
        assert_eq!((back.snapshot.version, back.synced_unix_ms), (4, 42));

        let other = SnapshotFile::new(path.clone(), &[8; 32]);
        assert!(matches!(
            other.read(),
            Err(SnapshotFileError::Unreadable(_))
        ));

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(file.read(), Err(SnapshotFileError::Unreadable(_))));
        fs::remove_dir_all(dir).unwrap();
    }
}
