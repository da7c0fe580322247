//! A commit's tree as a tar archive, for `fetch: push`: the host needs neither git nor access
//! to the repository.

use std::path::Path;

use git2::{ObjectType, Repository, Tree};

/// File modes git records.
const MODE_EXECUTABLE: i32 = 0o100755;
const MODE_SYMLINK: i32 = 0o120000;
const MODE_SUBMODULE: i32 = 0o160000;

/// What went into an archive.
#[derive(Debug, Default)]
pub struct Archive {
    pub bytes: Vec<u8>,
    pub files: usize,
    /// Submodules are not part of the commit's tree; they are listed so the user is told.
    pub skipped_submodules: Vec<String>,
}

/// Writes the tree of `commit` into an in-memory tar.
pub fn archive_commit(
    repo: &Repository,
    commit: &git2::Commit<'_>,
) -> Result<Archive, git2::Error> {
    let mtime = u64::try_from(commit.time().seconds()).unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    let mut archive = Archive::default();
    add_tree(
        repo,
        &commit.tree()?,
        Path::new(""),
        mtime,
        &mut builder,
        &mut archive,
    )?;
    archive.bytes = builder
        .into_inner()
        .map_err(|e| git2::Error::from_str(&format!("tar: {e}")))?;
    Ok(archive)
}

fn add_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    prefix: &Path,
    mtime: u64,
    builder: &mut tar::Builder<Vec<u8>>,
    archive: &mut Archive,
) -> Result<(), git2::Error> {
    let tar_err = |e: std::io::Error| git2::Error::from_str(&format!("tar: {e}"));
    for entry in tree.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = prefix.join(&name);
        let mode = entry.filemode();
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let mut header = header(tar::EntryType::Directory, 0o755, 0, mtime);
                builder
                    .append_data(&mut header, &path, std::io::empty())
                    .map_err(tar_err)?;
                let sub = repo.find_tree(entry.id())?;
                add_tree(repo, &sub, &path, mtime, builder, archive)?;
            }
            Some(ObjectType::Blob) if mode == MODE_SYMLINK => {
                let blob = repo.find_blob(entry.id())?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                let mut header = header(tar::EntryType::Symlink, 0o777, 0, mtime);
                builder
                    .append_link(&mut header, &path, target)
                    .map_err(tar_err)?;
                archive.files += 1;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id())?;
                let perm = if mode == MODE_EXECUTABLE {
                    0o755
                } else {
                    0o644
                };
                let content = blob.content();
                let mut header = header(tar::EntryType::Regular, perm, content.len() as u64, mtime);
                builder
                    .append_data(&mut header, &path, content)
                    .map_err(tar_err)?;
                archive.files += 1;
            }
            _ if mode == MODE_SUBMODULE => {
                archive.skipped_submodules.push(path.display().to_string());
            }
            _ => {}
        }
    }
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(mtime);
    header
}
