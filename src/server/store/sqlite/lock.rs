//! One database file, one server: `serve` holds an exclusive lock on `<database>.lock` for as
//! long as it runs, with who holds it written inside, so a second server on the same file
//! refuses to start and names the first. The operating system drops the lock when the process
//! ends, however it ends. Administrative commands (`keys rotate`, `sponsors`) do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases the file.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{database} is already served by another governance server ({holder}); stop it, or point this one at another database (several instances on one database need PostgreSQL)"
    )]
    Held { database: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ServeLock {
    /// Takes the lock of `database` for a server described by `holder` (its process and
    /// address), or says who has it.
    pub fn acquire(database: &Path, holder: &str) -> Result<Self, LockError> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // What the holder wrote; a partial read still names it well enough.
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(LockError::Held {
                    database: database.to_owned(),
                    holder: if holder.is_empty() {
                        "another process".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
