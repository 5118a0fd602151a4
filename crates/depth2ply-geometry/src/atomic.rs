//! Atomic file output: write into a temporary file next to the destination, then rename it over.
//!
//! Readers (and a crash or Ctrl-C half way through a 300 MB PLY) therefore see either the old file or
//! the complete new one, never a truncated file. The temporary file lives in the destination's directory
//! because a rename is only atomic within one file system.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Capacity of the buffer handed to the writing closure; large sequential writes are cheapest.
const BUFFER_BYTES: usize = 1 << 20;

/// A failed atomic write. In every case the destination was left as it was and the temporary file was
/// removed.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    /// The temporary file could not be created in the destination's directory.
    #[error(
        "cannot create a temporary file in the output directory ({source}); check that the directory \
         exists and is writable: {}",
        path.display()
    )]
    CreateTemp {
        /// The destination that was to be written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing, flushing or syncing the contents failed (this includes errors returned by the closure).
    #[error("writing the output failed ({source}); the existing file, if any, was left unchanged: {}", path.display())]
    Write {
        /// The destination that was to be written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The finished temporary file could not be renamed over the destination.
    #[error(
        "cannot move the finished file into place ({source}); check that the path is not a directory \
         and that you may replace it: {}",
        path.display()
    )]
    Persist {
        /// The destination that was to be written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl AtomicWriteError {
    /// The destination path the write was for.
    pub fn path(&self) -> &Path {
        match self {
            Self::CreateTemp { path, .. } | Self::Write { path, .. } | Self::Persist { path, .. } => path,
        }
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        match self {
            Self::CreateTemp { source, .. } | Self::Write { source, .. } | Self::Persist { source, .. } => {
                source
            }
        }
    }

    /// Takes the underlying I/O error (used to recover typed errors a closure wrapped in an `io::Error`).
    pub fn into_io_error(self) -> io::Error {
        match self {
            Self::CreateTemp { source, .. } | Self::Write { source, .. } | Self::Persist { source, .. } => {
                source
            }
        }
    }
}

/// Writes `path` atomically: `write` fills a buffered temporary file in the same directory, which is
/// flushed, `fsync`ed and then renamed over `path`.
///
/// On any error (including an error returned by `write`) the temporary file is removed and an existing
/// file at `path` is left untouched. The new file gets the usual permissions of a newly created file
/// (`0o666` minus the umask on Unix); those of a replaced file are not carried over.
///
/// ```
/// use std::io::Write;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("hello.txt");
/// depth2ply_geometry::atomic::write_atomically(&path, |w| w.write_all(b"hello"))?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # Ok(())
/// # }
/// ```
pub fn write_atomically<F>(path: &Path, write: F) -> Result<(), AtomicWriteError>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".depth2ply-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile defaults to 0o600; ask for 0o666 so that the umask decides, as for `File::create`.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder
        .tempfile_in(dir)
        .map_err(|source| AtomicWriteError::CreateTemp {
            path: path.to_path_buf(),
            source,
        })?;
    // `temp_path` deletes the file when dropped, which covers every early return below.
    let (file, temp_path) = temp.into_parts();
    let write_err = |source| AtomicWriteError::Write {
        path: path.to_path_buf(),
        source,
    };

    let mut writer = BufWriter::with_capacity(BUFFER_BYTES, file);
    write(&mut writer).map_err(write_err)?;
    writer.flush().map_err(write_err)?;
    let file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    drop(file);

    temp_path.persist(path).map_err(|e| AtomicWriteError::Persist {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_directory(dir);
    Ok(())
}

/// Makes the rename durable. Best effort: some file systems cannot sync a directory, and the data
/// itself is already synced, so a failure here is not worth failing the write for.
fn sync_directory(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftover_temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".depth2ply-"))
            .collect()
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomically(&path, |w| w.write_all(b"first")).unwrap();
        write_atomically(&path, |w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(leftover_temp_files(dir.path()).is_empty());
    }

    #[test]
    fn closure_error_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_atomically(&path, |w| {
            w.write_all(&[7u8; 3 * BUFFER_BYTES])?; // more than the buffer: bytes reach the temp file
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(matches!(err, AtomicWriteError::Write { .. }), "{err:?}");
        assert_eq!(err.io_error().to_string(), "boom");
        assert!(!path.exists());
        assert!(leftover_temp_files(dir.path()).is_empty());
        assert!(err.to_string().ends_with(&path.display().to_string()), "{err}");
    }

    #[test]
    fn closure_error_keeps_existing_destination() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        std::fs::write(&path, b"precious").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        assert!(leftover_temp_files(dir.path()).is_empty());
    }

    #[test]
    fn missing_directory_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("out.bin");
        let err = write_atomically(&path, |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(err, AtomicWriteError::CreateTemp { .. }), "{err:?}");
        assert_eq!(err.path(), path);
        assert!(err.to_string().ends_with(&path.display().to_string()), "{err}");
    }

    #[test]
    fn parent_that_is_a_file_is_an_error() {
        // Fails for every user, root included (unlike a read-only directory).
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"keep").unwrap();
        let path = file.join("out.bin");
        let err = write_atomically(&path, |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(err, AtomicWriteError::CreateTemp { .. }), "{err:?}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        assert!(err.to_string().ends_with(&path.display().to_string()), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn unwritable_directory_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let path = locked.join("out.bin");
        let result = write_atomically(&path, |w| w.write_all(b"x"));
        // root ignores directory permissions; the check is only meaningful for ordinary users.
        let is_root = std::fs::File::create(locked.join("probe")).is_ok();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        if !is_root {
            assert!(
                matches!(result, Err(AtomicWriteError::CreateTemp { .. })),
                "{result:?}"
            );
            assert!(!path.exists());
        }
    }

    #[test]
    fn destination_that_is_a_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-dir");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"keep").unwrap();
        let err = write_atomically(&path, |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(err, AtomicWriteError::Persist { .. }), "{err:?}");
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"keep");
        assert!(leftover_temp_files(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn new_file_is_not_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomically(&path, |w| w.write_all(b"x")).unwrap();
        let reference = dir.path().join("reference.bin");
        std::fs::write(&reference, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&reference));
    }
}
