//! What a known key is (its kind, default, unit and meaning) and how a key path,
//! spelled in YAML or as an environment variable name, is matched to one.
//!
//! Key paths are written in their documented spelling: `.` separates segments,
//! `[]` marks a list index (`lavalink.plugins[].dependency`) and a final `*` stands for
//! one or more free-form segments (`logging.level.*`). Segments compare after
//! [`normalize`], which is Spring's relaxed binding.

use std::net::IpAddr;

use super::Config;

/// One documented configuration key.
pub(crate) struct Key {
    /// Documented spelling, e.g. `lavalink.server.bufferDurationMs`.
    pub(crate) path: &'static str,
    /// What values it takes and where they are stored.
    pub(crate) kind: Kind,
    /// Its value when nothing sets it.
    pub(crate) default: Shown,
    /// Unit of a number (`ms`, `s`, `bytes`), empty when none.
    pub(crate) unit: &'static str,
    /// What it means, one or two sentences.
    pub(crate) doc: &'static str,
}

/// A default as shown in the reference.
pub(crate) enum Shown {
    /// A literal value, written as it would be in the file; a test checks that loading
    /// it reproduces [`Config::default`].
    Value(&'static str),
    /// A description, for defaults that are not a literal (`unset`, `one per core`).
    Note(&'static str),
}

/// Setter that stores one parsed value into the configuration.
pub(crate) type Set<T> = fn(&mut Config, T);

/// The value a key takes, and where it goes.
pub(crate) enum Kind {
    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`, any case, as Spring accepts).
    Bool(Set<bool>),
    /// A whole number within `min..=max`.
    Int { min: i64, max: i64, set: Set<i64> },
    /// Like [`Kind::Int`], but YAML `null` resets it to unset.
    OptInt {
        min: i64,
        max: i64,
        set: Set<Option<i64>>,
    },
    /// Free text, checked by `check`.
    Text { check: Check, set: Set<String> },
    /// Free text that YAML `null` resets to unset.
    OptText(Set<Option<String>>),
    /// One of a fixed set of words, case-insensitive; the setter gets the index.
    Choice {
        options: &'static [&'static str],
        set: Set<usize>,
    },
    /// An IPv4 or IPv6 address; `localhost` is taken as `127.0.0.1`, since Spring
    /// resolves host names here and Lavalink files sometimes use it.
    Ip(Set<IpAddr>),
    /// A list of text items, each checked by `item`: a YAML sequence, indexed entries
    /// (`KEY_0`), or one comma-separated string.
    List { item: Check, set: Set<Vec<String>> },
    /// A list of CPU ids (whole numbers from 0).
    CpuList(Set<Vec<usize>>),
    /// A free-form map under a final `*`: every name below the key is an entry.
    /// An environment variable's name tokens are joined with `env_join`.
    Map {
        value: Check,
        env_join: &'static str,
        set: fn(&mut Config, String, String),
    },
    /// One field of a `lavalink.plugins[]` entry; entries are assembled per source.
    Plugin(PluginField),
    /// A subtree that belongs to something else (Spring, plugins); accepted, not read.
    Ignored,
}

/// A field of a `lavalink.plugins[]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PluginField {
    /// `dependency`: Maven coordinates.
    Dependency,
    /// `repository`: Maven repository URL.
    Repository,
    /// `snapshot`: use the snapshot repository.
    Snapshot,
}

/// A check on one piece of text; returns the text to store (possibly canonicalized).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Anything.
    Any,
    /// A Spring data size: a whole number with an optional unit B, KB, MB, GB or TB.
    DataSize,
    /// A log level; stored upper-case. YAML `false` means `OFF`, as in Spring.
    LogLevel,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An address block in CIDR notation (`10.0.0.0/8`, `2001:db8::/48`).
    Cidr,
    /// Maven coordinates `group:artifact:version`.
    Coordinates,
}

const LOG_LEVELS: [&str; 7] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"];

impl Check {
    /// The stored form of `text`, or `None` when it fails the check.
    pub(crate) fn apply(self, text: &str) -> Option<String> {
        let trimmed = text.trim();
        let ok = match self {
            Self::Any => return Some(text.to_owned()),
            Self::DataSize => is_data_size(trimmed),
            Self::LogLevel => {
                let upper = trimmed.to_ascii_uppercase();
                return match upper.as_str() {
                    "FALSE" => Some("OFF".to_owned()),
                    _ => LOG_LEVELS.contains(&upper.as_str()).then_some(upper),
                };
            }
            Self::Ip => trimmed.parse::<IpAddr>().is_ok(),
            Self::Cidr => is_cidr(trimmed),
            Self::Coordinates => {
                let parts: Vec<&str> = trimmed.split(':').collect();
                parts.len() == 3 && parts.iter().all(|p| !p.is_empty())
            }
        };
        ok.then(|| trimmed.to_owned())
    }

    /// What the check accepts, for error messages.
    pub(crate) fn allowed(self) -> String {
        match self {
            Self::Any => "any text".to_owned(),
            Self::DataSize => {
                "a whole number of bytes with an optional unit B, KB, MB, GB or TB, like 1GB"
                    .to_owned()
            }
            Self::LogLevel => format!("one of {}", LOG_LEVELS.join(", ")),
            Self::Ip => "an IPv4 or IPv6 address".to_owned(),
            Self::Cidr => "an IPv4 or IPv6 block in CIDR notation, like 10.0.0.0/8".to_owned(),
            Self::Coordinates => "Maven coordinates group:artifact:version".to_owned(),
        }
    }
}

fn is_data_size(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let unit = text[digits..].to_ascii_uppercase();
    digits > 0 && ["", "B", "KB", "MB", "GB", "TB"].contains(&unit.as_str())
}

fn is_cidr(text: &str) -> bool {
    let Some((addr, len)) = text.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(len)) = (addr.parse::<IpAddr>(), len.parse::<u8>()) else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    len <= max
}

impl Kind {
    /// True for kinds whose value is a list, so that a trailing index addresses one item.
    pub(crate) fn is_list(&self) -> bool {
        matches!(self, Self::List { .. } | Self::CpuList(_))
    }

    /// What the key accepts, for error messages (`unit` names the unit of numbers).
    pub(crate) fn allowed(&self, unit: &str) -> String {
        match self {
            Self::Bool(_) | Self::Plugin(PluginField::Snapshot) => "true or false".to_owned(),
            Self::Int { min, max, .. } | Self::OptInt { min, max, .. } => {
                let what = match unit {
                    "" => "an integer".to_owned(),
                    unit => format!("a whole number of {}", unit_word(unit)),
                };
                match (*min, *max) {
                    (i64::MIN, _) => what,
                    (min, i64::MAX) => format!("{what} >= {min}"),
                    (min, max) => format!("{what} from {min} to {max}"),
                }
            }
            Self::Text { check, .. } | Self::Map { value: check, .. } => check.allowed(),
            Self::OptText(_) | Self::Plugin(PluginField::Repository) | Self::Ignored => {
                Check::Any.allowed()
            }
            Self::Plugin(PluginField::Dependency) => Check::Coordinates.allowed(),
            Self::Choice { options, .. } => format!("one of {}", options.join(", ")),
            Self::Ip(_) => Check::Ip.allowed(),
            Self::List { item, .. } => format!("a list where each item is {}", item.allowed()),
            Self::CpuList(_) => "a list of CPU ids (whole numbers >= 0)".to_owned(),
        }
    }

    /// A short type name for the reference table.
    pub(crate) fn type_name(&self) -> String {
        match self {
            Self::Bool(_) | Self::Plugin(PluginField::Snapshot) => "boolean".to_owned(),
            // Limits at or above 2^31 - 1 are overflow guards, not advice: left out here.
            Self::Int { min, max, .. } | Self::OptInt { min, max, .. } => match (*min, *max) {
                (i64::MIN, _) => "integer".to_owned(),
                (min, max) if max >= i64::from(i32::MAX) => format!("integer ≥ {min}"),
                (min, max) => format!("integer {min}–{max}"),
            },
            Self::Text {
                check: Check::DataSize,
                ..
            } => "data size".to_owned(),
            Self::Text {
                check: Check::LogLevel,
                ..
            } => "log level".to_owned(),
            Self::Text { .. } | Self::OptText(_) => "string".to_owned(),
            Self::Plugin(PluginField::Repository) => "string (URL)".to_owned(),
            Self::Plugin(PluginField::Dependency) => "string (Maven coordinates)".to_owned(),
            Self::Choice { options, .. } => options.join(" / "),
            Self::Ip(_) => "IP address".to_owned(),
            Self::List {
                item: Check::Cidr, ..
            } => "list of CIDR blocks".to_owned(),
            Self::List {
                item: Check::Ip, ..
            } => "list of IP addresses".to_owned(),
            Self::List { .. } => "list of strings".to_owned(),
            Self::CpuList(_) => "list of integers".to_owned(),
            Self::Map {
                value: Check::LogLevel,
                ..
            } => "map: logger → log level".to_owned(),
            Self::Map { .. } => "map: name → string".to_owned(),
            Self::Ignored => "any (not read)".to_owned(),
        }
    }
}

fn unit_word(unit: &str) -> &str {
    match unit {
        "ms" => "milliseconds",
        "s" => "seconds",
        other => other,
    }
}

/// Spring's relaxed form of one key segment: lower-case, without `-` and `_`.
pub(crate) fn normalize(segment: &str) -> String {
    segment
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// One segment of a key path as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A name, in the user's spelling.
    Name(String),
    /// A list index.
    Index(usize),
}

/// The parts of a matched path that the key's pattern leaves open.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Capture {
    /// The pattern has no `[]` or `*`.
    None,
    /// The index a `[]` matched.
    Index(usize),
    /// The name a final `*` matched.
    Name(String),
}

/// A path that names a key exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// What the pattern's `[]` or `*` matched.
    pub(crate) capture: Capture,
    /// The item index after a list key (`ipBlocks[2]`, `..._IP_BLOCKS_2`).
    pub(crate) element: Option<usize>,
}

/// How a user's path relates to one key's pattern.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// The path names the key.
    Leaf(Hit),
    /// The path is a section that contains the key.
    Inside,
    /// Unrelated.
    Miss,
}

enum Pat {
    Name(String),
    Index,
    Rest,
}

fn pattern(path: &str) -> Vec<Pat> {
    let mut pats = Vec::new();
    for piece in path.split('.') {
        match piece {
            "*" => pats.push(Pat::Rest),
            _ => match piece.strip_suffix("[]") {
                Some(name) => pats.extend([Pat::Name(normalize(name)), Pat::Index]),
                None => pats.push(Pat::Name(normalize(piece))),
            },
        }
    }
    pats
}

impl Key {
    /// Matches a YAML path (segments as written; free-form names keep their spelling).
    pub(crate) fn match_path(&self, path: &[Seg]) -> Match {
        let mut capture = Capture::None;
        let mut at = 0;
        for pat in pattern(self.path) {
            let Some(seg) = path.get(at) else {
                return Match::Inside;
            };
            match (pat, seg) {
                (Pat::Name(want), Seg::Name(got)) if normalize(got) == want => {}
                (Pat::Index, Seg::Index(i)) => capture = Capture::Index(*i),
                (Pat::Rest, _) => {
                    let names: Option<Vec<&str>> = path[at..]
                        .iter()
                        .map(|s| match s {
                            Seg::Name(n) => Some(n.as_str()),
                            Seg::Index(_) => None,
                        })
                        .collect();
                    return match names {
                        Some(names) => Match::Leaf(Hit {
                            capture: Capture::Name(names.join(".")),
                            element: None,
                        }),
                        None => Match::Miss,
                    };
                }
                _ => return Match::Miss,
            }
            at += 1;
        }
        match &path[at..] {
            [] => Match::Leaf(Hit {
                capture,
                element: None,
            }),
            [Seg::Index(i)] if self.kind.is_list() => Match::Leaf(Hit {
                capture,
                element: Some(*i),
            }),
            _ => Match::Miss,
        }
    }

    /// Matches the lower-case name tokens of an environment variable
    /// (`LAVALINK_SERVER_BUFFER_DURATION_MS` → `lavalink server buffer duration ms`):
    /// a key segment matches one or more whole tokens that spell it when concatenated.
    pub(crate) fn match_tokens(&self, tokens: &[String]) -> Option<Hit> {
        let mut capture = Capture::None;
        let mut at = 0;
        for pat in pattern(self.path) {
            match pat {
                Pat::Name(want) => {
                    let mut spelled = String::new();
                    while spelled.len() < want.len() {
                        spelled.push_str(tokens.get(at)?);
                        at += 1;
                        if !want.starts_with(&spelled) {
                            return None;
                        }
                    }
                }
                Pat::Index => {
                    capture = Capture::Index(index_token(tokens.get(at)?)?);
                    at += 1;
                }
                Pat::Rest => {
                    let rest = tokens.get(at..).filter(|r| !r.is_empty())?;
                    let join = match self.kind {
                        Kind::Map { env_join, .. } => env_join,
                        _ => ".",
                    };
                    let capture = Capture::Name(rest.join(join));
                    return Some(Hit {
                        capture,
                        element: None,
                    });
                }
            }
        }
        match &tokens[at..] {
            [] => Some(Hit {
                capture,
                element: None,
            }),
            [last] if self.kind.is_list() => Some(Hit {
                capture,
                element: Some(index_token(last)?),
            }),
            _ => None,
        }
    }

    /// The key as shown in errors: documented spelling with the captured index or name
    /// and the list item filled in (`lavalink.plugins[0].dependency`, `…ipBlocks[1]`).
    pub(crate) fn display(&self, hit: &Hit) -> String {
        let mut shown = match &hit.capture {
            Capture::None => self.path.to_owned(),
            Capture::Index(i) => self.path.replacen("[]", &format!("[{i}]"), 1),
            Capture::Name(name) => format!("{}{name}", self.path.trim_end_matches('*')),
        };
        if let Some(i) = hit.element {
            shown.push_str(&format!("[{i}]"));
        }
        shown
    }

    /// The environment variable that sets this key (`<NAME>` and `0` stand in for the
    /// free-form name and the list index).
    pub(crate) fn env_name(&self) -> String {
        let mut out = String::new();
        for piece in self.path.split('.') {
            if !out.is_empty() {
                out.push('_');
            }
            if piece == "*" {
                out.push_str("<NAME>");
                continue;
            }
            let (name, indexed) = match piece.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (piece, false),
            };
            let mut prev_lower = false;
            for c in name.chars() {
                if c == '-' {
                    out.push('_');
                } else if c.is_ascii_uppercase() && prev_lower {
                    out.push('_');
                    out.push(c);
                } else {
                    out.push(c.to_ascii_uppercase());
                }
                prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            }
            if indexed {
                out.push_str("_0");
            }
        }
        out
    }
}

fn index_token(token: &str) -> Option<usize> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::KEYS;

    fn key(path: &str) -> &'static Key {
        KEYS.iter().find(|k| k.path == path).expect("known key")
    }

    fn segs(text: &str) -> Vec<Seg> {
        text.split('.').map(|s| Seg::Name(s.to_owned())).collect()
    }

    fn tokens(var: &str) -> Vec<String> {
        var.split('_').map(str::to_ascii_lowercase).collect()
    }

    #[test]
    fn relaxed_spellings_normalize_alike() {
        for spelling in ["channelMix", "channel-mix", "channel_mix", "CHANNELMIX"] {
            assert_eq!(normalize(spelling), "channelmix");
        }
    }

    #[test]
    fn yaml_paths_match_leaves_sections_and_items() {
        let gc = key("lavalink.server.gc-warnings");
        assert!(matches!(
            gc.match_path(&segs("lavalink.server.gcWarnings")),
            Match::Leaf(_)
        ));
        assert_eq!(gc.match_path(&segs("lavalink.server")), Match::Inside);
        assert_eq!(gc.match_path(&segs("lavalink.server.gc")), Match::Miss);

        let blocks = key("lavalink.server.ratelimit.ipBlocks");
        let mut path = segs("lavalink.server.ratelimit.ip-blocks");
        path.push(Seg::Index(2));
        let Match::Leaf(hit) = blocks.match_path(&path) else {
            panic!("no match")
        };
        assert_eq!(hit.element, Some(2));
        assert_eq!(
            blocks.display(&hit),
            "lavalink.server.ratelimit.ipBlocks[2]"
        );

        let dep = key("lavalink.plugins[].dependency");
        let path = [
            Seg::Name("lavalink".into()),
            Seg::Name("plugins".into()),
            Seg::Index(1),
            Seg::Name("dependency".into()),
        ];
        let Match::Leaf(hit) = dep.match_path(&path) else {
            panic!("no match")
        };
        assert_eq!(dep.display(&hit), "lavalink.plugins[1].dependency");
    }

    #[test]
    fn free_form_names_keep_their_spelling() {
        let levels = key("logging.level.*");
        let Match::Leaf(hit) = levels.match_path(&segs("logging.level.com.Example")) else {
            panic!("no match")
        };
        assert_eq!(hit.capture, Capture::Name("com.Example".into()));
        assert_eq!(levels.display(&hit), "logging.level.com.Example");
    }

    #[test]
    fn env_tokens_match_multi_word_segments_and_indexes() {
        let hit = key("lavalink.server.bufferDurationMs")
            .match_tokens(&tokens("LAVALINK_SERVER_BUFFER_DURATION_MS"));
        assert!(hit.is_some());
        assert!(key("lavalink.server.bufferDurationMs")
            .match_tokens(&tokens("LAVALINK_SERVER_BUFFER_DURATION"))
            .is_none());
        let hit = key("lavalink.plugins[].repository")
            .match_tokens(&tokens("LAVALINK_PLUGINS_3_REPOSITORY"))
            .expect("match");
        assert_eq!(hit.capture, Capture::Index(3));
        let hit = key("sentry.tags.*")
            .match_tokens(&tokens("SENTRY_TAGS_SOME_KEY"))
            .expect("match");
        assert_eq!(hit.capture, Capture::Name("some_key".into()));
        let hit = key("logging.level.*")
            .match_tokens(&tokens("LOGGING_LEVEL_COM_EXAMPLE"))
            .expect("match");
        assert_eq!(hit.capture, Capture::Name("com.example".into()));
    }

    #[test]
    fn env_names_follow_lavalink_docs() {
        assert_eq!(key("server.port").env_name(), "SERVER_PORT");
        assert_eq!(
            key("server.http2.enabled").env_name(),
            "SERVER_HTTP2_ENABLED"
        );
        assert_eq!(
            key("lavalink.server.filters.channelMix").env_name(),
            "LAVALINK_SERVER_FILTERS_CHANNEL_MIX"
        );
        assert_eq!(
            key("lavalink.server.gc-warnings").env_name(),
            "LAVALINK_SERVER_GC_WARNINGS"
        );
        assert_eq!(
            key("lavalink.plugins[].dependency").env_name(),
            "LAVALINK_PLUGINS_0_DEPENDENCY"
        );
        assert_eq!(key("sentry.tags.*").env_name(), "SENTRY_TAGS_<NAME>");
        assert_eq!(
            key("logging.logback.rollingpolicy.max-file-size").env_name(),
            "LOGGING_LOGBACK_ROLLINGPOLICY_MAX_FILE_SIZE"
        );
    }

    #[test]
    fn checks_accept_and_refuse() {
        assert_eq!(Check::DataSize.apply("1GB").as_deref(), Some("1GB"));
        assert_eq!(Check::DataSize.apply("512kb").as_deref(), Some("512kb"));
        assert!(Check::DataSize.apply("1.5GB").is_none());
        assert!(Check::DataSize.apply("GB").is_none());
        assert_eq!(Check::LogLevel.apply("debug").as_deref(), Some("DEBUG"));
        assert_eq!(Check::LogLevel.apply("false").as_deref(), Some("OFF"));
        assert!(Check::LogLevel.apply("loud").is_none());
        assert!(Check::Cidr.apply("10.0.0.0/8").is_some());
        assert!(Check::Cidr.apply("2001:db8::/48").is_some());
        assert!(Check::Cidr.apply("10.0.0.0/33").is_none());
        assert!(Check::Cidr.apply("10.0.0.0").is_none());
        assert!(Check::Coordinates
            .apply("com.example:plugin:1.0.0")
            .is_some());
        assert!(Check::Coordinates.apply("com.example:plugin").is_none());
    }
}
