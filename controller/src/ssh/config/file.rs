//! Reading `~/.ssh/config` for one host like OpenSSH's readconf: `Host` blocks matched
//! against the alias, `Include` inside the block it appears in, `Match` skipped.

use std::path::{Path, PathBuf};

use super::super::error::SshError;
use super::options::HostOptions;
use super::syntax::{expand_tilde, split_line};

/// How deep `Include` may nest before it is treated as a loop (OpenSSH uses 16 too).
pub(super) const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads config text for one host, like OpenSSH's readconf: each line is applied if the current
/// `Host` block matches.
pub(super) struct ConfigReader<'a> {
    pub(super) home: &'a Path,
    pub(super) alias: &'a str,
    pub(super) options: &'a mut HostOptions,
}

impl ConfigReader<'_> {
    pub(super) fn read_text(
        &mut self,
        text: &str,
        path: &Path,
        mut active: bool,
        depth: usize,
    ) -> Result<(), SshError> {
        // Lines before the first `Host` of an included file belong to the including block; a
        // `Host` inside a non-matching block's include never matches.
        let never_match = !active && depth > 0;
        for (index, line) in text.lines().enumerate() {
            let origin = format!("{}:{}", path.display(), index + 1);
            let parsed = split_line(line).map_err(|message| SshError::Config {
                origin: origin.clone(),
                message,
            })?;
            let Some((keyword, args)) = parsed else {
                continue;
            };
            match keyword.to_ascii_lowercase().as_str() {
                "host" => {
                    active = !never_match && host_matches(&args, self.alias);
                }
                "match" => {
                    tracing::warn!(
                        "{origin}: `Match` blocks are not supported; skipping this block"
                    );
                    active = false;
                }
                "include" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(SshError::Config {
                            origin,
                            message: "Include nested too deeply (a loop?)".into(),
                        });
                    }
                    for pattern in &args {
                        for file in self.include_files(pattern) {
                            // Unreadable includes are skipped, as OpenSSH does for missing ones.
                            if let Ok(text) = std::fs::read_to_string(&file) {
                                self.read_text(&text, &file, active, depth + 1)?;
                            }
                        }
                    }
                }
                _ if active => {
                    self.options
                        .apply(&keyword, &args, &origin)
                        .map_err(|message| SshError::Config { origin, message })?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The files an `Include` names: `~` expands to home, relative paths are under ~/.ssh, and
    /// the last path component may be a `*`/`?` glob.
    fn include_files(&self, pattern: &str) -> Vec<PathBuf> {
        let expanded = expand_tilde(pattern, self.home);
        let full = if expanded.is_absolute() {
            expanded
        } else {
            self.home.join(".ssh").join(expanded)
        };
        let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
            return Vec::new();
        };
        if !name.contains(['*', '?']) {
            return vec![full];
        }
        let Some(dir) = full.parent() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|candidate| glob_matches(name, candidate))
            })
            .map(|entry| entry.path())
            .collect();
        files.sort();
        files
    }
}

/// True if `alias` matches a `Host` line's patterns: some positive pattern matches and no
/// negated (`!pattern`) one does.
pub(crate) fn host_matches(patterns: &[String], alias: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_matches(negated, alias) {
                return false;
            }
        } else if glob_matches(&pattern, alias) {
            matched = true;
        }
    }
    matched
}

/// `*` matches any run of characters, `?` exactly one.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` and the text position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}
