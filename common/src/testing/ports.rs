//! Loopback ports for the servers tests start (hexyard's processes, moto, fake upstreams).
//!
//! A port found by binding port 0 is one of the kernel's ephemeral ports, and between finding
//! it and the server binding it, any outgoing connection of the machine may take it (the tests
//! open thousands): a process then fails to start with "Address already in use" (seen in CI).
//! So ports come from below the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`),
//! where only explicit binds go, from a counter that never hands a port out twice in a
//! process, starting at an offset taken from the process id so that two test processes
//! rarely walk the same ports; each is checked free with a bind before it is handed out.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const FIRST: u32 = 10_000;

/// Ports handed out so far in this process, plus a per-process offset (0: not started).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// `[FIRST, end)`: the ports below the ephemeral range (or up to 32768 when it is unknown).
fn range_end() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .min(65_536)
}

/// The next `n` consecutive candidate ports, or `None` when the range below the ephemeral
/// ports is too small to use.
fn next_block(n: u32) -> Option<u16> {
    let end = range_end();
    let span = end.checked_sub(FIRST).filter(|s| *s >= 1_000)?;
    if NEXT.load(Ordering::Relaxed) == 0 {
        let offset = std::process::id().wrapping_mul(7_919) % span + 1;
        let _ = NEXT.compare_exchange(0, offset, Ordering::Relaxed, Ordering::Relaxed);
    }
    loop {
        let at = NEXT.fetch_add(n, Ordering::Relaxed) % span;
        if at + n <= span {
            return u16::try_from(FIRST + at).ok();
        }
    }
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free loopback port (see the module documentation).
pub fn free_port() -> u16 {
    for _ in 0..10_000 {
        match next_block(1) {
            Some(p) if bindable(p) => return p,
            Some(_) => continue,
            None => break,
        }
    }
    // No usable range below the ephemeral ports: an ephemeral one.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no free port: {e}"))
        .port()
}

/// Two consecutive free ports `p, p + 1` (a proxy's and a publisher's metrics).
pub fn free_port_pair() -> u16 {
    for _ in 0..10_000 {
        match next_block(2) {
            Some(p) if bindable(p) && p.checked_add(1).is_some_and(bindable) => return p,
            Some(_) => continue,
            None => break,
        }
    }
    panic!("no two consecutive free ports below the ephemeral range");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let end = range_end();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let p = free_port();
            assert!(u32::from(p) < end && u32::from(p) >= FIRST, "{p}");
            assert!(seen.insert(p), "{p} handed out twice");
        }
        let p = free_port_pair();
        assert!(!seen.contains(&p) && !seen.contains(&(p + 1)));
    }
}
