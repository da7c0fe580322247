//! Shell completions and man pages for a command line, generated from its clap definition so
//! they can never disagree with `--help`: `pmfleet completions bash`, `pmfleet man --dir DIR`,
//! and the same verbs on `pmfleet-agent`.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Writes the completion script of `cmd` for `shell` to `out`.
pub fn completions(mut cmd: clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes one man page per command and subcommand of `cmd` into `dir` (created if needed):
/// `pmfleet.1`, `pmfleet-deploy.1`, … Returns the files written, the top-level page first.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    written.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// Where `man` finds pages installed for this user, and how to install them there: the hint
/// both `man` verbs print after writing.
pub fn install_hint(dir: &Path) -> String {
    format!(
        "wrote the man pages to {}; read one with `man -l {}/<page>.1`, or install them with `sudo cp {}/*.1 /usr/local/share/man/man1/ && sudo mandb`",
        dir.display(),
        dir.display(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo")
            .version("1.0")
            .about("A demo")
            .subcommand(clap::Command::new("start").about("Start it"))
            .subcommand(
                clap::Command::new("deploy")
                    .about("Deploy it")
                    .subcommand(clap::Command::new("setup")),
            )
    }

    #[test]
    fn completions_name_every_verb() {
        let mut out = Vec::new();
        completions(demo(), Shell::Bash, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("start") && text.contains("deploy"), "{text}");
        assert!(text.contains("complete -F"), "{text}");
    }

    #[test]
    fn one_man_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let files = man_pages(demo(), dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "demo.1",
                "demo-start.1",
                "demo-deploy.1",
                "demo-deploy-setup.1"
            ]
        );
        let top = std::fs::read_to_string(&files[0]).unwrap();
        assert!(top.contains(".TH") && top.contains("deploy"), "{top}");
    }
}
