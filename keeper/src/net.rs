//! This host's network identity: its addresses and their networks, the
//! address it uses towards a given peer, forward and reverse name lookups.
//! Used to choose `--hostname` when it is not given, for `--pg-hba-lan`
//! (the local network of `--hostname`) and by `pg_autoctl do show ...`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs, UdpSocket};

/// The local address this host would use to reach `host:port` (no packet
/// is sent: a UDP socket is only connected).
pub fn routed_address(host: &str, port: u16) -> Option<IpAddr> {
    let target = (host, port).to_socket_addrs().ok()?.next()?;
    let any: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let sock = UdpSocket::bind((any, 0)).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

/// The address other hosts most likely reach this one at: the one routed
/// towards a public address, else the first non-loopback IPv4 address of an
/// interface (a host without a default route, a test network).
pub fn default_address() -> Option<String> {
    if let Some(ip) = routed_address("8.8.8.8", 53) {
        return Some(ip.to_string());
    }
    interfaces()
        .into_iter()
        .map(|(ip, _)| ip)
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| ip.to_string())
}

/// This host's name (gethostname).
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    (rc == 0 && end > 0).then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Every address of every interface, with its prefix length.
pub fn interfaces() -> Vec<(IpAddr, u8)> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if let (Some(addr), Some(mask)) = (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask))
        {
            let prefix = match mask {
                IpAddr::V4(m) => u32::from(m).count_ones() as u8,
                IpAddr::V6(m) => u128::from(m).count_ones() as u8,
            };
            out.push((addr, prefix));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null sockaddr from getifaddrs; its family tells its type.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// `network/prefix` of `ip` with `prefix` bits.
pub fn network(ip: IpAddr, prefix: u8) -> String {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            format!("{}/{prefix}", Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            format!("{}/{prefix}", Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// The network of the local interface that holds `ip`.
pub fn local_network(ip: IpAddr) -> Option<String> {
    interfaces()
        .into_iter()
        .find(|(a, _)| *a == ip)
        .map(|(a, prefix)| network(a, prefix))
}

/// Whether `ip` is an address of this host.
pub fn is_local(ip: IpAddr) -> bool {
    interfaces().iter().any(|(a, _)| *a == ip)
}

/// The addresses `name` resolves to (an address resolves to itself).
pub fn resolve(name: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map(|it| it.map(|a| a.ip()).collect())
        .unwrap_or_default();
    ips.dedup();
    ips
}

/// The name `ip` maps back to (reverse DNS, or /etc/hosts).
pub fn reverse(ip: IpAddr) -> Option<String> {
    let (storage, len) = match ip {
        IpAddr::V4(a) => {
            // SAFETY: an all-zero sockaddr_in is valid; fields set below.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(a).to_be();
            // SAFETY: an all-zero sockaddr_storage is valid.
            let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in, sin) };
            (st, std::mem::size_of::<libc::sockaddr_in>())
        }
        IpAddr::V6(a) => {
            // SAFETY: an all-zero sockaddr_in6 is valid; fields set below.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
            // SAFETY: an all-zero sockaddr_storage is valid.
            let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (st, std::mem::size_of::<libc::sockaddr_in6>())
        }
    };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: the sockaddr and buffers are valid for the lengths given.
    let rc = unsafe {
        libc::getnameinfo(
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates `host` on success.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_mask_the_host_bits() {
        assert_eq!(network("10.231.4.12".parse().unwrap(), 24), "10.231.4.0/24");
        assert_eq!(
            network("10.231.4.12".parse().unwrap(), 32),
            "10.231.4.12/32"
        );
        assert_eq!(network("10.231.4.12".parse().unwrap(), 0), "0.0.0.0/0");
        assert_eq!(network("fd00::1:2".parse().unwrap(), 64), "fd00::/64");
    }

    #[test]
    fn loopback_is_local_and_resolves() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(is_local(lo));
        assert_eq!(local_network(lo).as_deref(), Some("127.0.0.0/8"));
        assert!(resolve("127.0.0.1").contains(&lo));
        assert!(resolve("no-such-host.invalid").is_empty());
    }
}
