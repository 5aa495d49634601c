//! Address ranges an operator may deny as upstreams (RELIABILITY S7): cloud metadata,
//! loopback, link-local, private networks. Both planes parse the same list; the control plane
//! checks it at write time, the data plane on every address it is about to connect to.

use std::net::IpAddr;
use std::str::FromStr;

/// A list of CIDR ranges, e.g. `169.254.0.0/16,127.0.0.0/8,::1/128,fe80::/10`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList {
    ranges: Vec<(IpAddr, u8)>,
}

impl DenyList {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `ip` falls in a denied range. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
    /// count as their IPv4 address, so they cannot sneak past an IPv4 range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.ranges
            .iter()
            .any(|(network, bits)| match (network, ip) {
                (IpAddr::V4(net), IpAddr::V4(ip)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                    u32::from(*net) & mask == u32::from(ip) & mask
                }
                (IpAddr::V6(net), IpAddr::V6(ip)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                    u128::from(*net) & mask == u128::from(ip) & mask
                }
                _ => false,
            })
    }
}

impl FromStr for DenyList {
    type Err = String;

    /// Comma-separated `address/bits` (or a bare address for a single host); empty for none.
    fn from_str(text: &str) -> Result<DenyList, String> {
        let ranges = text
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|range| {
                let (address, bits) = match range.split_once('/') {
                    Some((address, bits)) => (address, Some(bits)),
                    None => (range, None),
                };
                let address: IpAddr = address
                    .parse()
                    .map_err(|_| format!("{range:?} is not an address range"))?;
                let max = if address.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    None => max,
                    Some(bits) => bits
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= max)
                        .ok_or_else(|| format!("{range:?} has an invalid prefix length"))?,
                };
                Ok((address, bits))
            })
            .collect::<Result<_, String>>()?;
        Ok(DenyList { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ranges_of_both_families() {
        let deny: DenyList = "169.254.0.0/16, 127.0.0.0/8,::1/128,fe80::/10,10.1.2.3"
            .parse()
            .unwrap();
        for denied in [
            "169.254.169.254",
            "127.0.0.1",
            "127.255.255.255",
            "::1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "10.1.2.3",
        ] {
            assert!(deny.contains(denied.parse().unwrap()), "{denied}");
        }
        for allowed in ["169.255.0.1", "128.0.0.1", "::2", "2001:db8::1", "10.1.2.4"] {
            assert!(!deny.contains(allowed.parse().unwrap()), "{allowed}");
        }
        let all: DenyList = "0.0.0.0/0,::/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()) && all.contains("::".parse().unwrap()));
        assert!("".parse::<DenyList>().unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_ranges() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com/8",
            "10.0.0.0/",
            "10.0.0/8",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<DenyList>().is_err(), "{bad}");
        }
    }
}
