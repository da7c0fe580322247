//! `pmfleet-agent startup` as a user with node from nvm runs it: the unit it prints carries
//! that user's PATH (and the agent's own directory), so the apps' interpreters are found at
//! boot, when no shell profile has run. systemd does not run here: the unit's text is checked.

use pmfleet_testkit::AgentHome;

#[test]
fn the_unit_carries_the_path_of_the_user_who_ran_startup() {
    let agent = AgentHome::new();
    let nvm = agent.work.path().join(".nvm/versions/node/v20.11.0/bin");
    std::fs::create_dir_all(&nvm).unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", nvm.display());
    let out = agent
        .command()
        .arg("startup")
        .env("PATH", &path)
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit = String::from_utf8(out.stdout).unwrap();
    let exe_dir = agent.binary().parent().unwrap().display().to_string();
    let line = unit
        .lines()
        .find(|l| l.starts_with("Environment=\"PATH="))
        .unwrap_or_else(|| panic!("no PATH in the unit:\n{unit}"));
    assert_eq!(
        line,
        format!("Environment=\"PATH={path}:{exe_dir}\""),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("ExecStart={} daemon", agent.binary().display())),
        "{unit}"
    );
    assert!(
        unit.contains(&format!(
            "Environment=\"PMFLEET_AGENT_HOME={}\"",
            agent.home.path().display()
        )),
        "{unit}"
    );
    // The install hints go to stderr, so `startup | sudo tee` writes the unit alone.
    let hints = String::from_utf8_lossy(&out.stderr);
    assert!(
        hints.contains("sudo tee /etc/systemd/system/pmfleet-agent.service"),
        "{hints}"
    );
}
