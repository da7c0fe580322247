//! `pmfleet ca init | issue | list | revoke | push-crl`: the fleet CA from the command line.
//! The work is in [`crate::pki`] (and, for `push-crl`, in
//! [`crate::agent::provision::push_crl`]); this file parses, prints and picks the exit code.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::deploy::Exit;
use crate::output::table;
use crate::pki::{
    self, CA_CERT_FILE, CA_KEY_FILE, CLIENTS_DIR, CONTROLLER_CERT_FILE, CONTROLLER_KEY_FILE,
    CRL_FILE, Ca, ControllerCert, PkiError,
};
use pmfleet_shared::tls::Role;

#[derive(Debug, Args)]
#[command(after_help = CA_HELP)]
pub struct CaArgs {
    /// The CA directory [default: $PMFLEET_CA_DIR, else ~/.config/pmfleet/ca].
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: CaCommand,
}

const CA_HELP: &str =
    "The CA key (ca.key) never leaves this machine. Agents get their certificates from a
certificate request made on the host; only crl.pem and ca.pem travel to them.

Every client certificate carries a role that agents check on every request:
  admin   everything the agent API offers remotely (the controller's own certificate)
  deploy  apply a release already on the host, reload, restart; and everything read can
  read    status, list, show (env values redacted), logs, events

Examples:
  pmfleet ca init
  pmfleet ca issue github-deploy --days 30
  pmfleet ca issue grafana --role read
  pmfleet ca list
  pmfleet ca revoke github-deploy
  pmfleet ca push-crl production";

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Make the fleet CA and this machine's controller certificate; on an existing CA,
    /// give a controller certificate made before roles the `admin` role.
    Init,
    /// Issue a client certificate, e.g. for a CI runner.
    Issue {
        /// Who it is for (letters, digits, `.`, `-`, `_`, `@`); the certificate's CN is `client:<NAME>`.
        name: String,
        /// Where to write the certificate, its key and the CA certificate.
        #[arg(
            long,
            value_name = "DIR",
            help = "Where to write cert.pem, key.pem and ca.pem [default: <CA dir>/clients/<NAME>]"
        )]
        out: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, default_value_t = pki::DEFAULT_CLIENT_DAYS)]
        days: u32,
        /// What the certificate may ask of agents: admin, deploy or read.
        #[arg(long, value_name = "ROLE", default_value_t = pki::DEFAULT_CLIENT_ROLE)]
        role: Role,
    },
    /// The certificates issued, with their status.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke certificates by serial or name and rewrite crl.pem.
    Revoke {
        /// A serial (hex, `:` allowed) or a name from `pmfleet ca list`.
        #[arg(value_name = "SERIAL|NAME")]
        target: String,
    },
    /// Bring crl.pem to the agent of every host of an environment (over SSH) and have each
    /// running agent apply it at once; nothing else is touched. `setup` does it too.
    PushCrl {
        /// `[ECOSYSTEM_FILE] ENVIRONMENT`.
        #[arg(value_name = "ARGS", num_args = 1..=2, required = true)]
        words: Vec<String>,
        /// Trust hosts not yet in known_hosts and remember their keys (a changed key is still refused).
        #[arg(long)]
        accept_new_host_key: bool,
    },
}

pub async fn run(args: CaArgs) -> Exit {
    let dir = match args.dir {
        Some(dir) => Ok(dir),
        None => pki::default_dir(),
    };
    if let CaCommand::PushCrl {
        words,
        accept_new_host_key,
    } = &args.command
    {
        return match dir.and_then(|dir| Ca::load(&dir)) {
            Ok(ca) => push_crl(&ca, words, *accept_new_host_key).await,
            Err(e) => {
                eprintln!("error: {e:#}");
                Exit::BadConfig
            }
        };
    }
    let json = matches!(args.command, CaCommand::List { json: true });
    let result = dir.and_then(|dir| match args.command {
        CaCommand::Init => init(&dir),
        CaCommand::Issue {
            name,
            out,
            days,
            role,
        } => issue(&dir, &name, out, days, role),
        CaCommand::List { json } => list(&dir, json),
        CaCommand::Revoke { target } => revoke(&dir, &target),
        CaCommand::PushCrl { .. } => Ok(()),
    });
    match result {
        Ok(()) => Exit::Success,
        Err(e) => {
            let kind = if e.is_usage() { "usage" } else { "failed" };
            pmfleet_shared::cli::error::report(json, kind, &format!("{e:#}"));
            if e.is_usage() {
                Exit::BadConfig
            } else {
                Exit::Failed
            }
        }
    }
}

fn init(dir: &Path) -> Result<(), PkiError> {
    if dir.join(CA_KEY_FILE).exists() && dir.join(CA_CERT_FILE).exists() {
        return init_again(dir);
    }
    let ca = Ca::init(dir)?;
    let at = |file: &str| dir.join(file).display().to_string();
    println!("Made the fleet CA in {}", dir.display());
    println!("  fingerprint (SHA-256): {}", ca.fingerprint());
    println!("  {:<22}{}", "CA certificate", at(CA_CERT_FILE));
    println!(
        "  {:<22}{}  (stays on this machine; back it up offline)",
        "CA key",
        at(CA_KEY_FILE)
    );
    println!(
        "  {:<22}{}, {}",
        "controller identity",
        at(CONTROLLER_CERT_FILE),
        at(CONTROLLER_KEY_FILE)
    );
    println!("  {:<22}{}", "revocation list", at(CRL_FILE));
    println!("Next: `pmfleet ca issue <name>` for each CI runner that talks to agents.");
    Ok(())
}

/// `ca init` on an existing CA: a controller certificate from before roles (which agents
/// count as `read`) is re-issued with `admin`, saying so in one line; anything else is
/// refused as before, and nothing is touched.
fn init_again(dir: &Path) -> Result<(), PkiError> {
    let ca = Ca::load(dir)?;
    match ca.readmit_controller()? {
        ControllerCert::Reissued(record) => {
            println!(
                "The controller certificate {} had no role (made before roles; agents count it as `read`): re-issued it with the `admin` role (serial {}); the CA and every other certificate are unchanged.",
                dir.join(CONTROLLER_CERT_FILE).display(),
                record.serial
            );
            Ok(())
        }
        ControllerCert::HasRole(_) | ControllerCert::Missing => Err(PkiError::AlreadyExists {
            dir: dir.to_path_buf(),
        }),
    }
}

fn issue(
    dir: &Path,
    name: &str,
    out: Option<PathBuf>,
    days: u32,
    role: Role,
) -> Result<(), PkiError> {
    let ca = Ca::load(dir)?;
    let out = out.unwrap_or_else(|| dir.join(CLIENTS_DIR).join(name));
    let cert_path = out.join("cert.pem");
    let key_path = out.join("key.pem");
    let ca_path = out.join("ca.pem");
    // Refuse before signing, so a refused run leaves no certificate in the index.
    for path in [&cert_path, &key_path, &ca_path] {
        if path.exists() {
            return Err(PkiError::FileExists { path: path.clone() });
        }
    }
    let issued = ca.issue_client_cert(name, role, days)?;
    pki::create_private_dir(&out)?;
    pki::write_new_file(&key_path, issued.key_pem.as_bytes(), 0o600)?;
    pki::write_new_file(&cert_path, issued.cert_pem.as_bytes(), 0o644)?;
    pki::write_new_file(&ca_path, ca.cert_pem().as_bytes(), 0o644)?;
    println!(
        "Issued client certificate `client:{name}` with role `{role}` (serial {}), valid until {}",
        issued.record.serial, issued.record.not_after
    );
    println!("  certificate  {}", cert_path.display());
    println!("  key          {}  (a secret)", key_path.display());
    println!("  fleet CA     {}", ca_path.display());
    println!();
    println!("Give them to CI as secrets holding the PEM text:");
    println!("  PMFLEET_TLS_CERT  <- {}", cert_path.display());
    println!("  PMFLEET_TLS_KEY   <- {}", key_path.display());
    println!("  PMFLEET_TLS_CA    <- {}", ca_path.display());
    println!("or as paths: PMFLEET_TLS_CERT_FILE, PMFLEET_TLS_KEY_FILE, PMFLEET_TLS_CA_FILE.");
    println!("Revoke with `pmfleet ca revoke {name}`.");
    Ok(())
}

fn list(dir: &Path, json: bool) -> Result<(), PkiError> {
    let ca = Ca::load(dir)?;
    let certs = ca.issued()?;
    let now = time::OffsetDateTime::now_utc();
    if json {
        let rows: Vec<_> = certs
            .iter()
            .map(|c| {
                let mut value = serde_json::to_value(c).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("revoked".into(), c.revoked().into());
                    map.insert("status".into(), c.status(now).to_string().into());
                }
                value
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    let rows: Vec<[String; 7]> = certs
        .iter()
        .map(|c| {
            [
                c.serial.clone(),
                c.kind.to_string(),
                c.name.clone(),
                match (c.kind, c.role) {
                    (_, Some(role)) => role.to_string(),
                    (pki::CertKind::Agent | pki::CertKind::Dashboard, None) => "-".to_string(),
                    // Issued before roles: agents treat it as `read`.
                    (_, None) => "read (none)".to_string(),
                },
                if c.sans.is_empty() {
                    "-".to_string()
                } else {
                    c.sans.join(",")
                },
                c.not_after.clone(),
                c.status(now).to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "SERIAL",
                "KIND",
                "NAME",
                "ROLE",
                "SANS",
                "NOT AFTER",
                "STATUS"
            ],
            &rows
        )
    );
    println!("CA fingerprint (SHA-256): {}", ca.fingerprint());
    Ok(())
}

fn revoke(dir: &Path, target: &str) -> Result<(), PkiError> {
    let ca = Ca::load(dir)?;
    for cert in ca.revoke(target)? {
        println!(
            "Revoked {} `{}` (serial {})",
            cert.kind, cert.name, cert.serial
        );
    }
    println!(
        "Wrote {}: agents refuse these certificates once they have it: `pmfleet ca push-crl <env>` (or `pmfleet deploy <env> setup`) brings it to them.",
        dir.join(CRL_FILE).display()
    );
    Ok(())
}

/// `push-crl [file] <env>`.
async fn push_crl(ca: &Ca, words: &[String], accept_new_host_key: bool) -> Exit {
    use crate::deploy::HostReport;
    use crate::output::{Mode, Output};
    use crate::ssh::{ClientSettings, Connector};

    let env = match super::env_words::choose(words, false, "ca push-crl") {
        Ok(chosen) => chosen.env,
        Err(exit) => return exit,
    };
    if env.agent.is_none() {
        eprintln!(
            "error: environment `{}` runs no agent (`agent: false`): there is nothing to revoke on its hosts",
            env.name
        );
        return Exit::BadConfig;
    }
    let out = std::sync::Arc::new(Output::new(Mode::detect(false)));
    let connector = Connector::new(ClientSettings {
        accept_new_host_keys: accept_new_host_key,
        ..ClientSettings::default()
    });
    let reports = crate::agent::provision::push_crl(ca, &env, &connector, &out).await;
    let exit = crate::deploy::report::exit_for(&reports);
    let rows: Vec<_> = reports.iter().map(HostReport::row).collect();
    let verdict = if exit == Exit::Success {
        "succeeded"
    } else {
        "FAILED"
    };
    out.summary(&format!("push-crl {}: {verdict}", env.name), &rows);
    exit
}
