//! Who gets a connection slot on the mutual-TLS endpoint. Two separate pools, so that peers
//! without a certificate can never take what authenticated clients need:
//!
//! - [`Handshakes`]: connections still in the TLS handshake. At most `per_peer` from one
//!   address and `max` in all. A new connection is always let in: when its address is at its
//!   share, that address's oldest handshake is ended to make room; when the pool is full, the
//!   oldest of all is. A crowd of silent or slow connections so only ever evicts itself (or
//!   handshakes older than it), and a real client, whose handshake takes milliseconds, gets
//!   through — each handshake also has a deadline of its own.
//! - [`Sessions`]: connections that finished the handshake with a valid certificate. At most
//!   `max`, of which `reserved` are kept for `admin` certificates (the controller), so no
//!   number of `read` or `deploy` sessions can lock the controller out.
//!
//! Both are plain data with no I/O; the endpoint keeps them under a mutex and ends the
//! handshakes they evict.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The handshakes in progress. `T` is what ends one (a cancellation token).
#[derive(Debug)]
pub struct Handshakes<T> {
    max: usize,
    per_peer: usize,
    next: u64,
    /// By ticket: oldest first.
    pending: BTreeMap<u64, (IpAddr, T)>,
}

impl<T> Handshakes<T> {
    pub fn new(max: usize, per_peer: usize) -> Handshakes<T> {
        Handshakes {
            max: max.max(1),
            per_peer: per_peer.max(1),
            next: 0,
            pending: BTreeMap::new(),
        }
    }

    /// Let a handshake from `peer` in. Returns its ticket (for [`Handshakes::done`]) and the
    /// handshake ended to make room for it, if any.
    pub fn admit(&mut self, peer: IpAddr, end: T) -> (u64, Option<T>) {
        let from_peer = self.pending.values().filter(|(p, _)| *p == peer).count();
        let evict = if from_peer >= self.per_peer {
            self.pending
                .iter()
                .find(|(_, (p, _))| *p == peer)
                .map(|(t, _)| *t)
        } else if self.pending.len() >= self.max {
            self.pending.keys().next().copied()
        } else {
            None
        };
        let evicted = evict
            .and_then(|t| self.pending.remove(&t))
            .map(|(_, end)| end);
        let ticket = self.next;
        self.next += 1;
        self.pending.insert(ticket, (peer, end));
        (ticket, evicted)
    }

    /// The handshake of `ticket` ended (done, failed, timed out or evicted).
    pub fn done(&mut self, ticket: u64) {
        self.pending.remove(&ticket);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The authenticated sessions being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sessions {
    max: usize,
    reserved: usize,
    in_use: usize,
}

impl Sessions {
    /// `max` sessions at once, the last `reserved` of them for admin certificates only.
    pub fn new(max: usize, reserved: usize) -> Sessions {
        Sessions {
            max,
            reserved: reserved.min(max),
            in_use: 0,
        }
    }

    /// Take a slot for a session (`admin`: the client's certificate has the admin role);
    /// false when there is none for it.
    pub fn take(&mut self, admin: bool) -> bool {
        let limit = if admin {
            self.max
        } else {
            self.max - self.reserved
        };
        if self.in_use < limit {
            self.in_use += 1;
            true
        } else {
            false
        }
    }

    /// A session ended.
    pub fn give_back(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// (peer, expected eviction) for each new handshake, with max 4 and 2 per peer; `done`
    /// rows end a ticket.
    #[test]
    fn new_handshakes_get_in_by_evicting_the_oldest_of_their_peer_then_of_all() {
        enum Row {
            Admit(u8, Option<&'static str>),
            Done(&'static str),
        }
        use Row::*;
        let table = [
            Admit(1, None),       // a1
            Admit(1, None),       // a2
            Admit(1, Some("a1")), // a3: peer 1 at its share → its oldest goes
            Admit(2, None),       // b1
            Admit(3, None),       // c1: 4 in all
            Admit(4, Some("a2")), // d1: full → the oldest of all goes
            Done("b1"),           // b1 finished
            Admit(5, None),       // e1: room again
            Admit(3, Some("a3")), // c2: full again → oldest of all
            Admit(3, Some("c1")), // c3: peer 3 at its share → its oldest
        ];
        let mut hs: Handshakes<&'static str> = Handshakes::new(4, 2);
        let mut tickets: Vec<(&'static str, u64)> = Vec::new();
        let mut counts = [0u8; 6];
        for (i, row) in table.iter().enumerate() {
            match row {
                Admit(peer, want) => {
                    let n = usize::from(*peer);
                    counts[n] += 1;
                    let name: &'static str = Box::leak(
                        format!("{}{}", (b'a' + peer - 1) as char, counts[n]).into_boxed_str(),
                    );
                    let (ticket, evicted) = hs.admit(ip(*peer), name);
                    assert_eq!(evicted, *want, "row {i}: {name}");
                    tickets.push((name, ticket));
                }
                Done(name) => {
                    let ticket = tickets.iter().find(|(n, _)| n == name).unwrap().1;
                    hs.done(ticket);
                }
            }
            assert!(hs.len() <= 4, "row {i}");
        }
        assert_eq!(hs.len(), 4);
    }

    #[test]
    fn sessions_keep_their_reserve_for_admin() {
        let mut s = Sessions::new(4, 1);
        // (admin, taken)
        let table = [
            (false, true),
            (false, true),
            (false, true),
            (false, false), // the last slot is the reserve
            (true, true),   // … for admin
            (true, false),  // full
        ];
        for (i, (admin, taken)) in table.into_iter().enumerate() {
            assert_eq!(s.take(admin), taken, "row {i}");
        }
        assert_eq!(s.in_use(), 4);
        s.give_back();
        assert!(!s.take(false), "a freed admin slot is still the reserve");
        assert!(s.take(true));
        let mut none_reserved = Sessions::new(1, 5);
        assert!(!none_reserved.take(false));
        assert!(none_reserved.take(true));
    }
}
