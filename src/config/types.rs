//! Value types of the configuration: durations, secrets, network ranges, string lists.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// A duration written as `200ms`, `10s`, `5m`, `2h` or `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The epoch ms this long before `epoch_ms` (e.g. the start of "changed within 2h").
    pub fn before(self, epoch_ms: i64) -> i64 {
        epoch_ms - self.0.as_millis() as i64
    }

    /// Parses `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let invalid = || format!("invalid duration {text:?} (write e.g. 200ms, 10s, 5m, 2h, 1d)");
        let n: u64 = number.parse().map_err(|_| invalid())?;
        let per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        // Ten years is more than any wait or retention needs, and keeps arithmetic on
        // durations (jitter, deadlines) far from overflow.
        const MAX_MILLIS: u64 = 10 * 366 * 86_400_000;
        let millis = n
            .checked_mul(per_unit)
            .filter(|m| *m <= MAX_MILLIS)
            .ok_or_else(|| format!("duration {text:?} is longer than ten years"))?;
        Ok(Self(Duration::from_millis(millis)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Environment overrides may turn a numeric token into a number: accept both.
        let value = serde_json::Value::deserialize(d)?;
        match value {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string, found {}",
                crate::smartsupp::type_name(&other)
            ))),
        }
    }
}

/// A list of secrets, written as a YAML list or as one comma-separated string (env overrides).
#[derive(Clone, Debug, Default)]
pub struct SecretList(pub Vec<Secret>);

impl<'de> Deserialize<'de> for SecretList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(Secret),
            Many(Vec<Secret>),
        }
        Ok(match Form::deserialize(d)? {
            Form::One(s) => Self(
                s.expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Secret::new)
                    .collect(),
            ),
            Form::Many(list) => Self(list),
        })
    }
}

/// An IP network such as `127.0.0.1/32` or `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr/prefix`; a bare address is a single host.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid network {text:?} (write e.g. 10.0.0.0/8 or ::1/128)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| invalid())?,
            None => max,
        };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(
                u32::from(net) as u128,
                u32::from(ip) as u128,
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn mask_eq(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (ip >> shift)
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A list of networks, written as a YAML list or as one comma-separated string (env overrides).
pub fn ip_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let parse = |t: &str| IpNet::parse(t.trim()).map_err(serde::de::Error::custom);
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(parse)
            .collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| match v {
                serde_json::Value::String(t) => parse(t),
                other => Err(serde::de::Error::custom(format!(
                    "expected a network such as 10.0.0.0/8, found {}",
                    crate::smartsupp::type_name(other)
                ))),
            })
            .collect(),
        other => Err(serde::de::Error::custom(format!(
            "expected a list of networks, found {}",
            crate::smartsupp::type_name(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(
            HumanDuration::parse("200ms").unwrap().0,
            Duration::from_millis(200)
        );
        assert_eq!(
            HumanDuration::parse("10s").unwrap().0,
            Duration::from_secs(10)
        );
        assert_eq!(
            HumanDuration::parse("2h").unwrap().0,
            Duration::from_secs(7200)
        );
        for bad in ["", "10", "s", "10x", "-1s", "1.5s", "99999999999999999d"] {
            assert!(
                HumanDuration::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn networks_match_their_members_only() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.9.9".parse().unwrap()));
        let v6 = IpNet::parse("::1/128").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
    }
}
