//! `pmfleet-agent tls …`: the mutual-TLS identity the controller reaches this agent with.

use std::process::ExitCode;

use clap::Subcommand;
use pmfleet_shared::protocol::Request;

use super::print;
use crate::client::Client;
use crate::home::AgentHome;

/// `pmfleet-agent tls …`.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a new key (tls/agent.key in the agent home, mode 0600) and print a certificate
    /// signing request for it; the key never leaves the host.
    Request {
        /// A host name or IP address the certificate must name (repeat for several).
        #[arg(long = "san", required = true, value_name = "NAME")]
        sans: Vec<String>,
    },
    /// Whether mutual TLS is configured: listen address, certificate names and expiry.
    #[command(alias = "show")]
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make the running daemon read the TLS files again (renewed certificate, CRL, address).
    Reload,
}

pub async fn run(cmd: TlsCommand, home: &AgentHome) -> anyhow::Result<ExitCode> {
    match cmd {
        TlsCommand::Request { sans } => {
            let csr = crate::identity::request(home, &sans)?;
            print!("{csr}");
            eprintln!(
                "# wrote a new key to {}; install the certificate signed for this request as {}",
                home.tls_key().display(),
                home.tls_cert().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        TlsCommand::Status { json } => {
            let st = crate::identity::status(home);
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
                return Ok(ExitCode::SUCCESS);
            }
            let state = match (st.configured, st.ok) {
                (false, _) => "not configured",
                (true, true) => "configured",
                (true, false) => "configured, but not usable",
            };
            println!("mutual TLS   {state} ({})", st.dir.display());
            if let Some(e) = &st.error {
                println!("error        {e}");
            }
            if let Some(l) = &st.listen {
                println!("listen       {l}");
            }
            println!("key          {}", if st.key { "agent.key" } else { "none" });
            if !st.sans.is_empty() {
                println!("names        {}", st.sans.join(", "));
            }
            if let (Some(until), Some(days)) = (&st.not_after, st.expires_in_days) {
                println!("valid until  {until} ({days} days)");
            }
            if let Some(fp) = &st.fingerprint {
                println!("fingerprint  {fp}");
            }
            println!("revocations  {}", if st.crl { "crl.pem" } else { "none" });
            Ok(if st.configured && !st.ok {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        TlsCommand::Reload => {
            let mut c = Client::connect(home, true).await?;
            let resp = c.request(&Request::ReloadTls).await?;
            Ok(print::response(resp, false))
        }
    }
}
