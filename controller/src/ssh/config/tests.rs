//! The config reader's rules, table by table: line forms, globs, `Host` blocks and `Include`,
//! `ssh_options`, time values, and how the sources combine into a target.

use std::path::PathBuf;
use std::time::Duration;

use super::file::*;
use super::options::*;
use super::syntax::*;
use super::target::*;
use crate::ssh::error::SshError;
use crate::ssh::{ClientSettings, ConnectSpec};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_alias_stands_for_its_host_name() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host web1\n  HostName 10.1.2.3\nHost *.lan\n  HostName %h.example.com\n",
    )
    .unwrap();
    assert_eq!(hostname_of(&spec("web1"), home.path()), "10.1.2.3");
    assert_eq!(
        hostname_of(&spec("db.lan"), home.path()),
        "db.lan.example.com"
    );
    assert_eq!(hostname_of(&spec("10.0.0.9"), home.path()), "10.0.0.9");
    let mut with_option = spec("web1");
    with_option.ssh_options = vec!["HostName=10.9.9.9".into()];
    assert_eq!(hostname_of(&with_option, home.path()), "10.9.9.9");
}

fn options_for(config: &str, alias: &str) -> HostOptions {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/config"), config).unwrap();
    let mut options = HostOptions::default();
    options.apply_config_file(home.path(), alias).unwrap();
    options
}

fn spec(host: &str) -> ConnectSpec {
    ConnectSpec {
        host: host.into(),
        port: None,
        user: None,
        identity: None,
        ssh_options: Vec::new(),
    }
}

#[test]
fn split_line_forms() {
    assert_eq!(split_line("  # comment").unwrap(), None);
    assert_eq!(split_line("").unwrap(), None);
    assert_eq!(
        split_line("HostName web1.example.com").unwrap(),
        Some(("HostName".into(), strings(&["web1.example.com"])))
    );
    assert_eq!(
        split_line("Port=2222").unwrap(),
        Some(("Port".into(), strings(&["2222"])))
    );
    assert_eq!(
        split_line("IdentityFile = \"~/keys/my key\" # deploy").unwrap(),
        Some(("IdentityFile".into(), strings(&["~/keys/my key"])))
    );
    assert_eq!(
        split_line("Host web* !web9\t db").unwrap(),
        Some(("Host".into(), strings(&["web*", "!web9", "db"])))
    );
    assert!(split_line("User \"unterminated").is_err());
}

#[test]
fn globs() {
    assert!(glob_matches("*", "anything"));
    assert!(glob_matches("web?", "web1"));
    assert!(!glob_matches("web?", "web10"));
    assert!(glob_matches("*.example.com", "a.b.example.com"));
    assert!(!glob_matches("*.example.com", "example.com"));
    assert!(glob_matches("w*b*1", "wxxbyy1"));
    assert!(glob_matches("exact", "exact"));
    assert!(!glob_matches("exact", "exactly"));
    assert!(glob_matches("a**", "a"));
}

#[test]
fn host_patterns_with_negation() {
    assert!(host_matches(&strings(&["web*", "!web9"]), "web1"));
    assert!(!host_matches(&strings(&["web*", "!web9"]), "web9"));
    assert!(!host_matches(&strings(&["!web9"]), "web1"));
    assert!(host_matches(&strings(&["db", "WEB1"]), "web1"));
}

#[test]
fn first_obtained_value_wins() {
    let options = options_for(
        "Host web1\n  HostName 10.0.0.1\n  User deploy\n  IdentityFile ~/.ssh/web\n\
         Host web*\n  HostName 10.0.0.99\n  Port 2222\n  User other\n  IdentityFile ~/.ssh/all\n\
         Host *\n  Port 22\n  User fallback\n",
        "web1",
    );
    assert_eq!(options.hostname.as_deref(), Some("10.0.0.1"));
    assert_eq!(options.user.as_deref(), Some("deploy"));
    assert_eq!(options.port, Some(2222));
    assert_eq!(
        options.identity_files,
        strings(&["~/.ssh/web", "~/.ssh/all"])
    );
}

#[test]
fn global_lines_before_first_host_apply_to_all() {
    let options = options_for("User early\nHost other\n  User late\n", "web1");
    assert_eq!(options.user.as_deref(), Some("early"));
    assert_eq!(options.port, None);
}

#[test]
fn alias_is_matched_case_insensitively_and_not_other_hosts() {
    let options = options_for("Host Web1\n  Port 2200\nHost db\n  User db\n", "WEB1");
    assert_eq!(options.port, Some(2200));
    assert_eq!(options.user, None);
}

#[test]
fn match_blocks_are_skipped() {
    let options = options_for("Match host web1\n  User m\nHost *\n  User h\n", "web1");
    assert_eq!(options.user.as_deref(), Some("h"));
}

#[test]
fn include_applies_inside_its_block() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
    std::fs::write(
        ssh.join("conf.d/a.conf"),
        "Port 2201\nHost db\n  User dbuser\n",
    )
    .unwrap();
    std::fs::write(
        ssh.join("config"),
        "Host web1\n  Include conf.d/*.conf\nHost *\n  User all\n",
    )
    .unwrap();
    let mut web = HostOptions::default();
    web.apply_config_file(home.path(), "web1").unwrap();
    assert_eq!(web.port, Some(2201));
    assert_eq!(web.user.as_deref(), Some("all"));

    // The include sits in web1's block: its `Host db` never matches for other hosts.
    let mut db = HostOptions::default();
    db.apply_config_file(home.path(), "db").unwrap();
    assert_eq!(db.port, None);
    assert_eq!(db.user.as_deref(), Some("all"));
}

#[test]
fn invalid_values_name_the_line() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/config"), "Host *\n  Port http\n").unwrap();
    let error = HostOptions::default()
        .apply_config_file(home.path(), "web1")
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("config:2"), "{message}");
    assert!(message.contains("invalid port `http`"), "{message}");
}

#[test]
fn ssh_options_parsing() {
    let mut options = HostOptions::default();
    options
        .apply_ssh_options(&strings(&[
            "StrictHostKeyChecking=accept-new",
            "Port 2022",
            "user=deploy",
            "ConnectTimeout=2m",
            "UserKnownHostsFile=/dev/null",
            "ForwardAgent=yes",
            "IdentityFile=~/.ssh/deploy",
        ]))
        .unwrap();
    assert_eq!(
        options.strict_host_key_checking,
        Some(StrictHostKeyChecking::AcceptNew)
    );
    assert_eq!(options.port, Some(2022));
    assert_eq!(options.user.as_deref(), Some("deploy"));
    assert_eq!(options.connect_timeout, Some(Duration::from_secs(120)));
    assert_eq!(options.known_hosts_files, Some(strings(&["/dev/null"])));
    assert_eq!(options.identity_files, strings(&["~/.ssh/deploy"]));

    for (value, expected) in [
        ("yes", StrictHostKeyChecking::Yes),
        ("ask", StrictHostKeyChecking::Yes),
        ("no", StrictHostKeyChecking::No),
        ("off", StrictHostKeyChecking::No),
        ("ACCEPT-NEW", StrictHostKeyChecking::AcceptNew),
    ] {
        let mut options = HostOptions::default();
        options
            .apply_ssh_options(&[format!("StrictHostKeyChecking={value}")])
            .unwrap();
        assert_eq!(options.strict_host_key_checking, Some(expected), "{value}");
    }

    let error = HostOptions::default()
        .apply_ssh_options(&strings(&["Port=abc"]))
        .unwrap_err();
    assert!(error.to_string().contains("Port=abc"), "{error}");
    assert!(
        HostOptions::default()
            .apply_ssh_options(&strings(&["StrictHostKeyChecking=maybe"]))
            .is_err()
    );
}

#[test]
fn time_values() {
    assert_eq!(parse_seconds("10").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_seconds("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_seconds("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_seconds("none").unwrap(), Duration::ZERO);
    assert!(parse_seconds("ten").is_err());
    assert!(parse_seconds("5d").is_err());
}

#[test]
fn resolve_combines_sources_in_order() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host web1\n  HostName 10.1.2.3\n  User cfguser\n  Port 2200\n  IdentityFile %d/.ssh/web_%r\n",
    )
    .unwrap();
    let settings = ClientSettings {
        home: home.path().to_path_buf(),
        ..ClientSettings::default()
    };
    let mut web1 = spec("web1");
    web1.port = Some(2022);
    let target = Target::resolve(&web1, &settings, Some("me")).unwrap();
    assert_eq!(target.hostname, "10.1.2.3");
    assert_eq!(target.port, 2022, "the spec's port wins over the config");
    assert_eq!(target.user, "cfguser");
    assert_eq!(target.destination(), "cfguser@10.1.2.3:2022");
    let ssh = home.path().join(".ssh");
    assert_eq!(
        target.identity_files,
        vec![
            ssh.join("web_cfguser"),
            ssh.join("id_ed25519"),
            ssh.join("id_ecdsa"),
            ssh.join("id_rsa"),
        ]
    );
    assert_eq!(target.known_hosts, vec![ssh.join("known_hosts")]);
    assert!(!target.accept_new_host_keys);

    // Unconfigured host: local user, port 22, the name as given.
    let other = Target::resolve(&spec("db.example.com"), &settings, Some("me")).unwrap();
    assert_eq!(other.destination(), "me@db.example.com:22");
    assert!(matches!(
        Target::resolve(&spec("db"), &settings, None),
        Err(SshError::NoUser { .. })
    ));
}

#[test]
fn known_hosts_precedence_and_strict_checking() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host *\n  UserKnownHostsFile ~/.ssh/from_config\n",
    )
    .unwrap();
    let mut settings = ClientSettings {
        home: home.path().to_path_buf(),
        ..ClientSettings::default()
    };
    let target = Target::resolve(&spec("h"), &settings, Some("me")).unwrap();
    assert_eq!(
        target.known_hosts,
        vec![home.path().join(".ssh/from_config")]
    );

    settings.known_hosts = Some("/flag/known_hosts".into());
    let target = Target::resolve(&spec("h"), &settings, Some("me")).unwrap();
    assert_eq!(target.known_hosts, vec![PathBuf::from("/flag/known_hosts")]);

    let mut with_option = spec("h");
    with_option.ssh_options = strings(&["UserKnownHostsFile=~/a ~/b", "StrictHostKeyChecking=no"]);
    let target = Target::resolve(&with_option, &settings, Some("me")).unwrap();
    assert_eq!(
        target.known_hosts,
        vec![home.path().join("a"), home.path().join("b")]
    );
    assert!(target.accept_new_host_keys);
}

#[test]
fn proxy_jump_chains_resolve_and_a_proxy_command_is_expanded_with_its_values_quoted() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host direct\n  ProxyJump none\nHost piped\n  ProxyCommand nc %h %p\n\
         Host odd\n  HostName a;b$(id)`x`\n  User o'k\n  ProxyCommand proxy %r@%h:%p %n %% %x\n\
         Host chained\n  ProxyJump ops@gw1:2201,[fd00::7]\n\
         Host *\n  ProxyJump bastion\n",
    )
    .unwrap();
    let settings = ClientSettings {
        home: home.path().to_path_buf(),
        ..ClientSettings::default()
    };
    let web1 = Target::resolve(&spec("web1"), &settings, Some("me")).unwrap();
    let bastion = web1.jump.as_deref().expect("through the bastion");
    assert_eq!(bastion.hostname, "bastion");
    assert!(
        bastion.jump.is_none(),
        "the bastion itself is reached directly"
    );

    let chained = Target::resolve(&spec("chained"), &settings, Some("me")).unwrap();
    let last = chained.jump.as_deref().expect("second hop");
    assert_eq!((last.hostname.as_str(), last.port), ("fd00::7", 22));
    let first = last.jump.as_deref().expect("first hop");
    assert_eq!(
        (first.hostname.as_str(), first.port, first.user.as_str()),
        ("gw1", 2201, "ops")
    );

    assert!(
        Target::resolve(&spec("direct"), &settings, Some("me"))
            .unwrap()
            .jump
            .is_none()
    );
    // A proxy command wins over the `Host *` jump host written after it, as in OpenSSH.
    let piped = Target::resolve(&spec("piped"), &settings, Some("me")).unwrap();
    assert_eq!(piped.proxy_command.as_deref(), Some("nc 'piped' '22'"));
    assert!(piped.jump.is_none());
    // Every value is one quoted word, whatever it holds.
    let odd = Target::resolve(&spec("odd"), &settings, Some("me")).unwrap();
    assert_eq!(
        odd.proxy_command.as_deref(),
        Some("proxy 'o'\\''k'@'a;b$(id)`x`':'22' 'odd' % %x")
    );
    assert!(
        Target::resolve(&spec("direct"), &settings, Some("me"))
            .unwrap()
            .proxy_command
            .is_none()
    );
}

#[test]
fn jump_entries_parse_like_openssh() {
    let hop = parse_jump("ssh://deploy@[::1]:2222").unwrap();
    assert_eq!(
        (hop.user.as_deref(), hop.host.as_str(), hop.port),
        (Some("deploy"), "::1", Some(2222))
    );
    let hop = parse_jump("gw").unwrap();
    assert_eq!((hop.user, hop.host.as_str(), hop.port), (None, "gw", None));
    for bad in ["", "@gw", "gw:0", "gw:port", "-oProxyCommand=x", "[::1"] {
        assert!(parse_jump(bad).is_err(), "{bad}");
    }
}

#[test]
fn learning_host_keys_into_dev_null_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let settings = ClientSettings {
        home: home.path().to_path_buf(),
        ..ClientSettings::default()
    };
    let with = |options: &[&str]| {
        let mut s = spec("h");
        s.ssh_options = strings(options);
        s
    };
    // (ssh_options, --accept-new-host-key, refused naming)
    let table: [(&[&str], bool, Option<&str>); 6] = [
        (
            &["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
            false,
            Some("StrictHostKeyChecking=no"),
        ),
        (
            &[
                "StrictHostKeyChecking=accept-new",
                "UserKnownHostsFile /dev/null",
            ],
            false,
            Some("StrictHostKeyChecking=accept-new"),
        ),
        (
            &["UserKnownHostsFile=/dev/null"],
            true,
            Some("--accept-new-host-key"),
        ),
        // Checking against /dev/null only refuses every host: not blind, left alone.
        (&["UserKnownHostsFile=/dev/null"], false, None),
        (&["StrictHostKeyChecking=no"], false, None),
        (
            &["StrictHostKeyChecking=no", "UserKnownHostsFile=~/kh"],
            false,
            None,
        ),
    ];
    for (options, flag, refused) in table {
        let settings = ClientSettings {
            accept_new_host_keys: flag,
            ..settings.clone()
        };
        let got = Target::resolve(&with(options), &settings, Some("me"));
        match (refused, got) {
            (None, Ok(_)) => {}
            (Some(setting), Err(e @ SshError::BlindHostKeys { .. })) => {
                let message = e.to_string();
                assert!(message.contains(setting), "{options:?}: {message}");
                assert!(message.contains("--accept-new-host-key"), "{message}");
                assert!(message.contains("/dev/null"), "{message}");
            }
            (want, got) => panic!("{options:?} {flag}: {got:?}, expected {want:?}"),
        }
    }
}

#[test]
fn a_proxy_command_in_ssh_options_wins_over_the_config_file_as_pm2_passes_it() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host web1\n  HostName 10.0.0.5\n  ProxyJump bastion\n",
    )
    .unwrap();
    let settings = ClientSettings {
        home: home.path().to_path_buf(),
        ..ClientSettings::default()
    };
    let mut with_option = spec("web1");
    with_option.ssh_options = vec!["ProxyCommand=ssh -W %h:%p ops@gw".into()];
    let target = Target::resolve(&with_option, &settings, Some("me")).unwrap();
    assert_eq!(
        target.proxy_command.as_deref(),
        Some("ssh -W '10.0.0.5':'22' ops@gw")
    );
    assert!(target.jump.is_none(), "the first proxy met wins");
    // `ProxyCommand=none` turns the config file's proxy off.
    let mut off = spec("web1");
    off.ssh_options = vec!["ProxyCommand=none".into()];
    let target = Target::resolve(&off, &settings, Some("me")).unwrap();
    assert!(target.proxy_command.is_none() && target.jump.is_none());
}
