//! A request field that may be omitted, explicitly `null`, or carry a value.
//!
//! Lavalink distinguishes all three (`encodedTrack: null` stops the player, an omitted
//! `encodedTrack` leaves it alone), so `Option<T>` is not enough.

use serde::{Deserialize, Deserializer};

/// One field of a partial-update request body.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    /// The key was absent.
    #[default]
    Omitted,
    /// The key was present with `null`.
    Null,
    /// The key was present with a value.
    Value(T),
}

impl<T> Patch<T> {
    /// True unless the key was absent.
    pub fn is_present(&self) -> bool {
        !matches!(self, Patch::Omitted)
    }

    /// The value, if one was given.
    pub fn value(&self) -> Option<&T> {
        match self {
            Patch::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Fails with `field must not be null` for fields the server declares non-nullable.
    pub fn non_null(&self, field: &str) -> Result<(), String> {
        match self {
            Patch::Null => Err(format!(
                "Failed to read request body: field '{field}' must not be null"
            )),
            _ => Ok(()),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Patch::Value(v),
            None => Patch::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        a: Patch<i64>,
    }

    #[test]
    fn distinguishes_omitted_null_and_value() {
        let p = |s: &str| serde_json::from_str::<Body>(s).map(|b| b.a);
        assert_eq!(p("{}").unwrap(), Patch::Omitted);
        assert_eq!(p(r#"{"a":null}"#).unwrap(), Patch::Null);
        assert_eq!(p(r#"{"a":5}"#).unwrap(), Patch::Value(5));
        assert!(p(r#"{"a":"5"}"#).is_err(), "strings are not integers");
        assert!(p(r#"{"a":5.5}"#).is_err(), "fractions are not integers");
        assert!(Patch::<i64>::Null.non_null("a").is_err());
    }
}
