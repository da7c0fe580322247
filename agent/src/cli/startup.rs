//! `startup [--install]`: prints (or installs) the systemd unit that starts the agent at
//! boot as the user who ran it, with that user's `PATH` ([`crate::startup`]). PM2's `startup`
//! installs through sudo; this one prints the unit and the commands, and installs only with
//! `--install` (as root).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::home::AgentHome;
use crate::startup::{UNIT_PATH, boot_path, systemd_running, unit};

pub fn run(install: bool, home: &AgentHome) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the agent binary")?;
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    let path = boot_path(
        &std::env::var("PATH").unwrap_or_default(),
        exe.parent().filter(|d| d.is_absolute()),
    );
    let text = unit(&exe, &user, home.root(), &path);
    if std::env::var_os("SUDO_USER").is_some() {
        eprintln!(
            "# note: run through sudo, the unit runs as {user} with sudo's PATH; to run the agent as yourself with your PATH (nvm, asdf), run `pmfleet-agent startup | sudo tee {UNIT_PATH}` without sudo in front"
        );
    }
    if !install {
        // The unit alone on stdout, so `pmfleet-agent startup | sudo tee <path>` installs it.
        print!("{text}");
        eprintln!(
            "# To start the agent at boot (or run `pmfleet-agent startup --install` as root):"
        );
        eprintln!("#   pmfleet-agent startup | sudo tee {UNIT_PATH} > /dev/null");
        eprintln!("#   sudo systemctl daemon-reload && sudo systemctl enable pmfleet-agent");
        eprintln!("# Then hand the running apps over from this on-demand agent to systemd's:");
        eprintln!(
            "#   pmfleet-agent save && pmfleet-agent kill && sudo systemctl start pmfleet-agent && pmfleet-agent resurrect"
        );
        eprintln!(
            "# The unit's PATH is this shell's: run `startup` again after changing it (a new node)."
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !systemd_running() {
        eprintln!(
            "error: systemd is not running here (no /run/systemd/system); nothing was installed"
        );
        eprintln!("run `pmfleet-agent daemon` from this host's init system instead");
        return Ok(ExitCode::FAILURE);
    }
    std::fs::write(Path::new(UNIT_PATH), text)
        .with_context(|| format!("cannot write {UNIT_PATH} (run as root)"))?;
    for args in [&["daemon-reload"][..], &["enable", "pmfleet-agent"][..]] {
        let status = std::process::Command::new("systemctl")
            .args(args)
            .status()
            .context("cannot run systemctl")?;
        if !status.success() {
            bail!("systemctl {} failed ({status})", args.join(" "));
        }
    }
    println!("installed {UNIT_PATH} and enabled pmfleet-agent: the agent starts at boot");
    println!(
        "to hand over now: pmfleet-agent save && pmfleet-agent kill && systemctl start pmfleet-agent && pmfleet-agent resurrect"
    );
    Ok(ExitCode::SUCCESS)
}
