//! Ports and connections: a port that is free right now, and which process holds which TCP
//! connection, read from `/proc/net/tcp` and the process's descriptors. Tests use the latter to
//! wait for a real condition ("the follower is connected to every agent", "the daemon accepted
//! all 64 connections") instead of sleeping. The test hosts share the test's network
//! namespace, so their connections are visible here too. IPv4 only: every test address is.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};

use crate::procs::socket_inodes;

/// Where test ports are picked: below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection of the busy machine takes a port between the test choosing it and a
/// daemon binding it, as a port the kernel hands out for `bind(0)` could be.
pub const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port on 127.0.0.1 that nobody listened on a moment ago.
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A port on `address` that nobody listened on a moment ago, never handed out twice by this
/// process, picked at random in [`TEST_PORTS`] (so that test processes running side by side
/// rarely try the same one).
pub fn free_port_on(address: &str) -> u16 {
    static GIVEN: std::sync::Mutex<Option<HashSet<u16>>> = std::sync::Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    // A xorshift seeded by the clock and pid: enough to spread picks, no crate needed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos())
        ^ std::process::id().rotate_left(16)
        | 1;
    for _ in 0..10_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let port = TEST_PORTS.start + (seed % span) as u16;
        if given.contains(&port) {
            continue;
        }
        // Each listener is closed before the next is tried: they would overlap.
        let on_address = TcpListener::bind((address, port)).is_ok();
        let on_every_address = on_address && TcpListener::bind(("0.0.0.0", port)).is_ok();
        if on_every_address {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port on {address} in {TEST_PORTS:?}")
}

/// TCP states as `/proc/net/tcp` numbers them.
const ESTABLISHED: u8 = 0x01;

/// One line of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: u8,
    pub inode: u64,
}

impl TcpEntry {
    pub fn established(&self) -> bool {
        self.state == ESTABLISHED
    }
}

/// Every IPv4 TCP socket of this network namespace.
pub fn tcp_entries() -> Vec<TcpEntry> {
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| table.lines().skip(1).filter_map(parse_entry).collect())
        .unwrap_or_default()
}

/// `  0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  0 0 12345 ...`
fn parse_entry(line: &str) -> Option<TcpEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    Some(TcpEntry {
        local: parse_address(fields.get(1)?)?,
        remote: parse_address(fields.get(2)?)?,
        state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// `0100007F:1F90`: the address as the kernel's native-endian u32, the port in host order.
fn parse_address(text: &str) -> Option<SocketAddrV4> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

/// The established connections whose socket `pid` holds.
pub fn connections_of(pid: u32) -> Vec<TcpEntry> {
    let mine: HashSet<u64> = socket_inodes(pid).into_iter().collect();
    tcp_entries()
        .into_iter()
        .filter(|e| e.established() && mine.contains(&e.inode))
        .collect()
}

/// True when `pid` holds an established connection to `to`.
pub fn connected(pid: u32, to: SocketAddr) -> bool {
    connections_of(pid)
        .iter()
        .any(|e| SocketAddr::V4(e.remote) == to)
}

/// How many established connections to its local `port` `pid` has accepted (a connection
/// still in the listen backlog is established but not yet held by the process).
pub fn accepted(pid: u32, port: u16) -> usize {
    connections_of(pid)
        .iter()
        .filter(|e| e.local.port() == port)
        .count()
}

#[cfg(test)]
mod tests {

    #[test]
    fn free_ports_are_outside_the_ephemeral_range_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(TEST_PORTS.contains(&port), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        }
    }

    use super::*;
    use std::net::TcpStream;

    #[test]
    fn addresses_are_read_as_the_kernel_prints_them() {
        let line = "   0: 0100007F:1F90 0200007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1";
        let entry = parse_entry(line).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(entry.local, "127.0.0.1:8080".parse().unwrap());
            assert_eq!(entry.remote, "127.0.0.2:50000".parse().unwrap());
        }
        assert!(entry.established());
        assert_eq!(entry.inode, 12345);
        assert_eq!(parse_entry("  sl  local_address rem_address"), None);
    }

    #[test]
    fn this_process_sees_its_own_connection_both_ways() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = std::process::id();
        assert!(!connected(me, addr));
        let _client = TcpStream::connect(addr).unwrap();
        let (_server, _) = listener.accept().unwrap();
        assert!(connected(me, addr));
        assert_eq!(accepted(me, addr.port()), 1);
    }
}
