//! The name of a zone (an availability zone, a rack, a region): the unit
//! that locality-aware picks prefer.

use std::fmt;
use std::sync::Arc;

use crate::escaped::needs_escape;

/// The longest zone name accepted, in bytes.
pub const MAX_ZONE_LEN: usize = 64;

/// A validated zone name: not empty, at most [`MAX_ZONE_LEN`] bytes, and
/// printable (no control character, no bidirectional mark, no backslash:
/// nothing that [`needs_escape`] would escape), so it can be shown in logs,
/// tables and metrics labels as it is.
///
/// Zones are compared by name, exactly (`us-east-1a` is not `US-EAST-1A`).
/// Cloning is cheap (a reference count).
///
/// ```
/// use orca_lb_core::{InvalidZone, Zone};
///
/// let zone = Zone::new("eu-west-1a")?;
/// assert_eq!(zone.as_str(), "eu-west-1a");
/// assert_eq!(Zone::new(""), Err(InvalidZone::Empty));
/// assert!(matches!(Zone::new("a\nb"), Err(InvalidZone::Unprintable { at: 1 })));
/// # Ok::<(), InvalidZone>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Zone(Arc<str>);

/// Why a zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidZone {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_ZONE_LEN`] bytes.
    TooLong {
        /// Its length, bytes.
        len: usize,
    },
    /// The name holds a character that cannot be printed as it is.
    Unprintable {
        /// The character's index (in characters, from 0).
        at: usize,
    },
}

impl fmt::Display for InvalidZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidZone::Empty => f.write_str("invalid zone: empty"),
            InvalidZone::TooLong { len } => {
                write!(f, "invalid zone: {len} bytes long, at most {MAX_ZONE_LEN}")
            }
            InvalidZone::Unprintable { at } => {
                write!(f, "invalid zone: unprintable character at {at}")
            }
        }
    }
}

impl std::error::Error for InvalidZone {}

impl Zone {
    /// Checks `name` and makes it a zone.
    pub fn new(name: impl AsRef<str>) -> Result<Zone, InvalidZone> {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(InvalidZone::Empty);
        }
        if name.len() > MAX_ZONE_LEN {
            return Err(InvalidZone::TooLong { len: name.len() });
        }
        if let Some(at) = name.chars().position(needs_escape) {
            return Err(InvalidZone::Unprintable { at });
        }
        Ok(Zone(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Zone {
    type Err = InvalidZone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Zone::new(s)
    }
}

impl AsRef<str> for Zone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "a",
            "us-east-1a",
            "rack 7",
            "zone_é",
            &"z".repeat(MAX_ZONE_LEN),
        ] {
            assert_eq!(Zone::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_empty_long_and_unprintable_names() {
        assert_eq!(Zone::new(""), Err(InvalidZone::Empty));
        assert_eq!(
            Zone::new("z".repeat(MAX_ZONE_LEN + 1)),
            Err(InvalidZone::TooLong {
                len: MAX_ZONE_LEN + 1
            })
        );
        assert_eq!(
            Zone::new("ab\x1b[2J"),
            Err(InvalidZone::Unprintable { at: 2 })
        );
        assert_eq!(
            Zone::new("\u{202e}a"),
            Err(InvalidZone::Unprintable { at: 0 })
        );
        assert_eq!(Zone::new("a\\b"), Err(InvalidZone::Unprintable { at: 1 }));
        // A multi-byte name is measured in bytes.
        assert!(Zone::new("é".repeat(33)).is_err());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(InvalidZone::Empty.to_string(), "invalid zone: empty");
        assert_eq!(
            InvalidZone::TooLong { len: 70 }.to_string(),
            "invalid zone: 70 bytes long, at most 64"
        );
        assert_eq!(
            "x".parse::<Zone>().map(|z| z.to_string()),
            Ok("x".to_string())
        );
    }
}
