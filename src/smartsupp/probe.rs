//! Serde visitors that read a hook body through serde_json's full grammar (the one
//! `serde_json::Value` uses) while keeping only what the identity needs: no JSON tree is
//! built, and nothing the full parse would refuse gets through.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

/// The top level of a hook body, as far as the identity needs it.
#[derive(Default)]
pub(super) struct Probe<'a> {
    /// `accountId` as written (skimmed only: read it again), unless missing or null.
    pub account_id: Option<&'a RawValue>,
    /// `channel`, unless missing.
    pub channel: Option<Channel<'a>>,
    /// `visitor`'s searchable fields.
    pub visitor: VisitorProbe,
    /// `beginAt`, when the chat began.
    pub begin_at: Option<Value>,
    /// `endAt`, when it ended.
    pub end_at: Option<Value>,
    /// The first field read here that the body names twice.
    pub repeated: Option<&'static str>,
}

/// `channel`, when it is an object, or the fact that it is not.
pub(super) enum Channel<'a> {
    /// An object.
    Object(ChannelProbe<'a>),
    /// Any other JSON value, null included.
    Other,
}

/// The fields of `channel` the identity reads.
#[derive(Default)]
pub(super) struct ChannelProbe<'a> {
    /// `channel.id` as written (skimmed only: read it again), unless missing or null.
    pub id: Option<&'a RawValue>,
    /// `channel.isMissed`.
    pub is_missed: Option<Value>,
    /// `channel.isOffline`.
    pub is_offline: Option<Value>,
    repeated: Option<&'static str>,
}

/// The fields of `visitor` the identity reads; empty when `visitor` is not an object.
#[derive(Default)]
pub(super) struct VisitorProbe {
    /// `visitor.name`.
    pub name: Option<Value>,
    /// `visitor.email`.
    pub email: Option<Value>,
    repeated: Option<&'static str>,
}

/// Any JSON value, read through the same grammar as [`serde_json::Value`] (numbers within
/// the range of a double, valid escapes and UTF-8, the same nesting limit) without keeping
/// anything. `serde::de::IgnoredAny` skims instead, and lets all of these through.
pub(super) struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

/// Answers every kind of value but an object with `$value`, after reading it whole.
macro_rules! other_shapes {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok($value)
        }
    };
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_shapes!(Checked);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Which of the given names a map key is, if any; read like the keys of a `Value`.
struct KeyIn(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyIn {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

/// Marks `field` as the first repeated one when it was `seen` before.
fn once(seen: &mut bool, field: &'static str, repeated: &mut Option<&'static str>) {
    if std::mem::replace(seen, true) && repeated.is_none() {
        *repeated = Some(field);
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Probe<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ProbeVisitor(PhantomData))
    }
}

struct ProbeVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ProbeVisitor<'a> {
    type Value = Probe<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'a>, A::Error> {
        const FIELDS: &[&str] = &["accountId", "channel", "visitor", "beginAt", "endAt"];
        let mut probe = Probe::default();
        let mut seen = [false; 5];
        while let Some(key) = map.next_key_seed(KeyIn(FIELDS))? {
            match key {
                Some(0) => {
                    once(&mut seen[0], "accountId", &mut probe.repeated);
                    probe.account_id = map.next_value()?;
                }
                Some(1) => {
                    once(&mut seen[1], "channel", &mut probe.repeated);
                    let channel: Channel = map.next_value()?;
                    probe.channel = Some(channel);
                }
                Some(2) => {
                    once(&mut seen[2], "visitor", &mut probe.repeated);
                    probe.visitor = map.next_value()?;
                }
                Some(3) => {
                    once(&mut seen[3], "beginAt", &mut probe.repeated);
                    probe.begin_at = map.next_value()?;
                }
                Some(4) => {
                    once(&mut seen[4], "endAt", &mut probe.repeated);
                    probe.end_at = map.next_value()?;
                }
                _ => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        let in_channel = match &probe.channel {
            Some(Channel::Object(channel)) => channel.repeated,
            _ => None,
        };
        probe.repeated = probe.repeated.or(in_channel).or(probe.visitor.repeated);
        Ok(probe)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Channel<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ChannelVisitor(PhantomData))
    }
}

struct ChannelVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ChannelVisitor<'a> {
    type Value = Channel<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a channel")
    }
    other_shapes!(Channel::Other);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Channel<'a>, A::Error> {
        const FIELDS: &[&str] = &["id", "isMissed", "isOffline"];
        let mut channel = ChannelProbe::default();
        let mut seen = [false; 3];
        while let Some(key) = map.next_key_seed(KeyIn(FIELDS))? {
            match key {
                Some(0) => {
                    once(&mut seen[0], "channel.id", &mut channel.repeated);
                    channel.id = map.next_value()?;
                }
                Some(1) => {
                    once(&mut seen[1], "channel.isMissed", &mut channel.repeated);
                    channel.is_missed = map.next_value()?;
                }
                Some(2) => {
                    once(&mut seen[2], "channel.isOffline", &mut channel.repeated);
                    channel.is_offline = map.next_value()?;
                }
                _ => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(Channel::Object(channel))
    }
}

impl<'de> Deserialize<'de> for VisitorProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(VisitorVisitor)
    }
}

struct VisitorVisitor;

impl<'de> Visitor<'de> for VisitorVisitor {
    type Value = VisitorProbe;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a visitor")
    }
    other_shapes!(VisitorProbe::default());
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VisitorProbe, A::Error> {
        const FIELDS: &[&str] = &["name", "email"];
        let mut visitor = VisitorProbe::default();
        let mut seen = [false; 2];
        while let Some(key) = map.next_key_seed(KeyIn(FIELDS))? {
            match key {
                Some(0) => {
                    once(&mut seen[0], "visitor.name", &mut visitor.repeated);
                    visitor.name = map.next_value()?;
                }
                Some(1) => {
                    once(&mut seen[1], "visitor.email", &mut visitor.repeated);
                    visitor.email = map.next_value()?;
                }
                _ => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(visitor)
    }
}
