//! The configuration reference, generated from the key table so it cannot drift.

use std::fmt::Write;

use super::keys::{Kind, Shown};
use super::table::KEYS;

/// A Markdown document listing every known key: key, type, default, unit,
/// environment variable and meaning, preceded by the loading rules.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Quaver reads Lavalink's `application.yml` unchanged, plus its own keys under \
         `quaver:`. Sources, lowest precedence first: the defaults below, the file \
         (`--config PATH`, else `./application.yml` when present), then environment \
         variables.\n\n\
         - Keys match the way Spring's relaxed binding does: `channelMix`, `channel-mix` \
         and `channel_mix` are the same key, and a mapping key may hold dots \
         (`lavalink.server.password: …`).\n\
         - An environment variable is the key in upper case with `_` between words and \
         segments; a list index is a number segment (`LAVALINK_PLUGINS_0_DEPENDENCY`), and \
         a list may also be given as one comma-separated value. Variables starting with \
         `SERVER`, `LAVALINK`, `METRICS`, `SENTRY`, `LOGGING` or `QUAVER` that match no key \
         are ignored.\n\
         - Booleans accept `true`/`false`, `yes`/`no`, `on`/`off` and `1`/`0`, in any case.\n\
         - `null` (or an empty value) leaves a key at its default, except keys whose \
         default is unset, which it unsets; `lavalink.server.password: null` leaves the \
         node without a password.\n\
         - An unknown key is reported once and ignored; an invalid value stops startup \
         with one line naming the key, the value and what is allowed.\n\n\
         | key | type | default | unit | environment variable | meaning |\n\
         |---|---|---|---|---|---|\n",
    );
    for key in KEYS {
        let default = match key.default {
            Shown::Value("") => "`\"\"`".to_owned(),
            Shown::Value(value) => format!("`{value}`"),
            Shown::Note(note) => format!("*{note}*"),
        };
        let env = match key.kind {
            Kind::Ignored => "—".to_owned(),
            _ => format!("`{}`", key.env_name()),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {env} | {} |",
            key.path,
            cell(&key.kind.type_name()),
            cell(&default),
            key.unit,
            cell(key.doc),
        );
    }
    out
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_row() {
        let doc = reference_markdown();
        for key in KEYS {
            assert!(doc.contains(&format!("| `{}` |", key.path)), "{}", key.path);
            assert!(!key.doc.is_empty(), "{} has no doc", key.path);
        }
        let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, KEYS.len());
        assert!(doc
            .contains("| `server.port` | integer 1–65535 | `2333` |  | `SERVER_PORT` | TCP port"));
    }
}
