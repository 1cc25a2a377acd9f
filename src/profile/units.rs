//! The profile's human units: sizes (`"512MiB"`) and spans (`"90days"`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A byte count written as a human size (`"512MiB"`, `"2GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in kibibytes, rounded down (pgtune computes in kB).
    pub fn kib(self) -> u64 {
        self.0 / 1024
    }
}

impl std::fmt::Display for ByteSize {
    /// Exact: the largest binary unit that divides the value (`1GiB`, `192MiB`, `1000B`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match UNITS.iter().find(|(size, _)| self.0 >= *size && self.0.is_multiple_of(*size)) {
            Some((size, unit)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<bytesize::ByteSize>().map(|size| ByteSize(size.as_u64())).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a size; write it like \"512MiB\" or \"2GiB\""))
        })
    }
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A size: a number and a unit, like \"512MiB\" or \"2GiB\".",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KMGTP]i?B|[kKmMgGtTpP]|B)?\\s*$"
        })
    }
}

/// A duration written as a human span (`"90d"`, `"5m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let secs = self.0.as_secs();
        let text = match secs {
            s if s > 0 && s % 86_400 == 0 => format!("{}days", s / 86_400),
            s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
            s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
            _ => humantime::format_duration(self.0).to_string(),
        };
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(Span).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a duration; write it like \"90days\" or \"12h\""))
        })
    }
}

impl schemars::JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Span".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: numbers and units, like \"90days\", \"12h\" or \"1h 30m\".",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$"
        })
    }
}
