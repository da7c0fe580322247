//! Writing CA files with the right modes from the first byte: keys are created 0600 (never
//! written first and chmod-ed after), replaced files go through a rename.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::PkiError;

/// Creates `dir` (and its parents) and makes it 0700, even if it existed.
pub(super) fn private_dir(dir: &Path) -> Result<(), PkiError> {
    create_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        PkiError::Write {
            path: dir.to_path_buf(),
            source,
        }
    })
}

/// Creates `dir` and missing parents with mode 0700.
pub(super) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes a file that must not exist yet.
pub(super) fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::FileExists {
                path: path.to_path_buf(),
            }
        } else {
            PkiError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    // The umask may have narrowed the mode; public files (the CA certificate, the CRL) are
    // meant to be readable.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Replaces `path` with `contents` at once: readers see the old file or the new one.
pub(super) fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let _ = std::fs::remove_file(tmp);
    write_new(tmp, contents, mode)?;
    std::fs::rename(tmp, path).map_err(err)
}

pub(super) fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

pub(super) fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_get_their_mode_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        write_new(&key, b"secret", 0o600).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            write_new(&key, b"other", 0o600),
            Err(PkiError::FileExists { .. })
        ));
        replace(&key, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
    }
}
