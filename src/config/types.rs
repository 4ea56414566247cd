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

/// An absolute `http` or `https` URL, checked when the configuration is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// Checks that `text` is an http(s) URL; the error quotes it with credentials masked.
    pub fn parse(text: &str) -> Result<Self, String> {
        match reqwest::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Self(text.to_string())),
            _ => Err(format!(
                "{:?} is not an http(s) URL",
                crate::redact::url(text)
            )),
        }
    }
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone such as `Europe/Prague`, checked when the configuration is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self(chrono_tz::Tz::UTC)
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {text:?} (use an IANA name such as Europe/Prague)"
            ))
        })
    }
}

impl serde::Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An HTTP method such as `POST`, checked when the configuration is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpMethod(pub reqwest::Method);

impl Default for HttpMethod {
    fn default() -> Self {
        Self(reqwest::Method::POST)
    }
}

impl<'de> Deserialize<'de> for HttpMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        reqwest::Method::from_bytes(text.as_bytes())
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an HTTP method")))
    }
}

/// A closed set of words (`urgent`, `high`, …) read from a string, with an error that lists
/// them: `"critical" is not urgent, high, normal or low`.
pub trait Words: Sized + Copy + PartialEq + 'static {
    /// Each value and the word that names it, in the order errors list them.
    const WORDS: &'static [(&'static str, Self)];
    /// The word of this value (every value stands in [`Words::WORDS`]).
    fn word(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(w, _)| w)
    }
    /// The value named by `text`.
    fn from_word(text: &str) -> Result<Self, String> {
        Self::WORDS
            .iter()
            .find(|(w, _)| *w == text)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::WORDS.iter().map(|(w, _)| *w).collect();
                let (last, rest) = names.split_last().unwrap_or((&"", &[]));
                format!("{text:?} is not {} or {last}", rest.join(", "))
            })
    }
}

/// Deserializes a [`Words`] value.
pub fn words<'de, D: Deserializer<'de>, T: Words>(d: D) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    T::from_word(&text).map_err(serde::de::Error::custom)
}

/// Implements `Deserialize` and `Serialize` of a [`Words`] type through its words.
#[macro_export]
macro_rules! serde_words {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::config::words(d)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::config::Words::word(*self))
            }
        }
    };
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
