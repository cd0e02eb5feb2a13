//! Host text to socket address and back, zones included. A link-local IPv6
//! address means nothing without the interface it is on: `fe80::1%eth0` (or
//! `%2`) names it, the kernel wants its index as the scope id, and a sender's
//! scope id is reported by name again, as node:dgram and the kernel spell it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::error::Error;

/// `host` (an IP literal, IPv6 optionally with `%zone`) and `port` as a socket address.
pub fn parse(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let invalid = || Error::InvalidAddress(format!("{host:?} is not an IP address"));
    let Some((ip, zone)) = host.split_once('%') else {
        return host
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, port))
            .map_err(|_| invalid());
    };
    let ip: Ipv6Addr = ip.parse().map_err(|_| invalid())?;
    if zone.is_empty() {
        return Err(invalid());
    }
    // As libuv (so node:dgram) does: a name that is no interface is scope 0,
    // which the kernel refuses for a link-local address when it is used, so an
    // unknown zone fails like on the pure backend (bind: a socket error; send: sendFailed).
    let scope = zone
        .parse::<u32>()
        .unwrap_or_else(|_| interface_index(zone).unwrap_or(0));
    Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
}

/// The host text of `addr`: IPv4 for an IPv4-mapped address (a dual-stack
/// socket's view of an IPv4 peer), `%name` after an IPv6 address with a scope.
pub fn host(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None if v6.scope_id() == 0 => v6.ip().to_string(),
            None => format!("{}%{}", v6.ip(), zone(v6.scope_id())),
        },
    }
}

/// `addr` as peers are compared and reported: IPv4-mapped addresses as IPv4,
/// an IPv6 address keeping its scope id (flow info dropped).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
        },
        v4 => v4,
    }
}

/// The zone text of a scope id: the interface's name, or the number if it has none (any more).
pub fn zone(scope_id: u32) -> String {
    interface_name(scope_id).unwrap_or_else(|| scope_id.to_string())
}

#[cfg(target_os = "linux")]
fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

#[cfg(target_os = "linux")]
fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

// Elsewhere zones are taken and reported by number only.
#[cfg(not(target_os = "linux"))]
fn interface_index(_name: &str) -> Option<u32> {
    None
}

#[cfg(not(target_os = "linux"))]
fn interface_name(_index: u32) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip() {
        for (text, port) in [("127.0.0.1", 1), ("2001:db8::5", 65535), ("::1", 80)] {
            let a = parse(text, port).unwrap();
            assert_eq!((host(&a), a.port()), (text.to_string(), port));
        }
    }

    #[test]
    fn mapped_is_ipv4() {
        let a = parse("::ffff:127.0.0.1", 9).unwrap();
        assert_eq!(host(&a), "127.0.0.1");
        assert_eq!(canonical(a), "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn zones_by_name_and_number() {
        let by_name = parse("fe80::1%lo", 5).unwrap();
        let SocketAddr::V6(v6) = by_name else {
            panic!("not IPv6")
        };
        assert_ne!(v6.scope_id(), 0);
        assert_eq!(host(&by_name), "fe80::1%lo");
        let by_number = parse(&format!("fe80::1%{}", v6.scope_id()), 5).unwrap();
        assert_eq!(host(&by_number), "fe80::1%lo");
        assert_eq!(canonical(by_number), by_name);
    }

    #[test]
    fn rejects_what_is_not_a_literal() {
        for bad in ["", "localhost", "example.com", "fe80::1%", "1.2.3.4%lo"] {
            assert!(matches!(parse(bad, 1), Err(Error::InvalidAddress(_))), "{bad:?}");
        }
    }

    #[test]
    fn unknown_zone_is_scope_zero() {
        for host in ["fe80::1%no-such-if0", "::1%%lo"] {
            let SocketAddr::V6(v6) = parse(host, 1).unwrap() else {
                panic!("not IPv6")
            };
            assert_eq!(v6.scope_id(), 0, "{host}");
        }
    }
}
