//! The cluster socket: bound once per app by the agent ([`bind`]) and kept open for the app's
//! lifetime, so no reload or restart ever closes it; handed to every instance as fd 3 in the
//! forked child ([`hand_to_child`]), per the systemd socket-activation protocol (the rest of
//! that protocol, `LISTEN_FDS`/`LISTEN_PID`, is in the instance's environment, `process`).

use pmfleet_shared::protocol::ExecModeSpec;
use socket2::{Domain, Socket, Type};
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};

use super::app::{AppRuntime, lock};
use super::{Inner, SupervisorError};

impl Inner {
    /// The address cluster-mode apps listen on: `<home>/bind-address` when it holds an IP
    /// address (a bad one is logged and ignored), else every interface.
    pub(super) fn bind_address(&self) -> Option<std::net::IpAddr> {
        let text = std::fs::read_to_string(self.home.bind_address()).ok()?;
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match text.trim_matches(['[', ']']).parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                tracing::warn!(
                    "{}: `{text}` is not an IP address; listening on every interface",
                    self.home.bind_address().display()
                );
                None
            }
        }
    }

    /// Bind a cluster app's port unless its socket is already open; a busy port is an error.
    pub(super) fn bind_listener(&self, app: &AppRuntime) -> Result<(), SupervisorError> {
        let spec = app.spec();
        if let (ExecModeSpec::Cluster, Some(port)) = (spec.exec_mode, spec.port) {
            let mut listener = lock(&app.listener);
            if listener.is_none() {
                let address = self.bind_address();
                *listener = Some(bind(address, port).map_err(|source| SupervisorError::Port {
                    app: app.name.clone(),
                    port,
                    source,
                })?);
            }
        }
        Ok(())
    }
}

/// Bind a cluster app's port once: SO_REUSEADDR (a restarted agent must not wait out
/// TIME_WAIT), SO_REUSEPORT (so maintenance mode can steer new connections to the agent's own
/// listener in the same group, [`super::maintenance`]), backlog 1024. On `address` when the home names one (`bind-address`), else on
/// all interfaces, dual-stack where IPv6 exists, like Node's `listen(PORT)`.
pub(super) fn bind(address: Option<std::net::IpAddr>, port: u16) -> std::io::Result<Socket> {
    if let Some(ip) = address {
        let s = Socket::new(Domain::for_address((ip, port).into()), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&std::net::SocketAddr::from((ip, port)).into())?;
        s.listen(1024)?;
        return Ok(s);
    }
    let v6 = || -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        s.set_only_v6(false)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
        Ok(s)
    };
    let s = match v6() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(e),
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)).into())?;
            s
        }
    };
    s.listen(1024)?;
    Ok(s)
}

/// In the forked child, before exec: put the listening socket `fd` on fd 3, inheritable.
pub(super) fn hand_to_child(fd: RawFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    if fd == 3 {
        // dup2 onto itself is a no-op and would keep close-on-exec set.
        // SAFETY: fd 3 is the agent's listening socket, open across the fork.
        let three = unsafe { BorrowedFd::borrow_raw(3) };
        let flags = FdFlag::from_bits_truncate(fcntl(three, FcntlArg::F_GETFD)?);
        fcntl(three, FcntlArg::F_SETFD(flags - FdFlag::FD_CLOEXEC))?;
    } else {
        // SAFETY: `fd` is the agent's listening socket, open across the fork; the new fd 3
        // is meant to outlive this function (the app inherits it), so it is not closed.
        let three = unsafe { nix::unistd::dup2_raw(BorrowedFd::borrow_raw(fd), 3) }?;
        let _ = three.into_raw_fd();
    }
    Ok(())
}
