//! One source's settings (a YAML document, or the environment), matched to known keys
//! but not yet checked, and how they are checked and applied over a [`Config`].
//!
//! Later layers override earlier ones key by key, the way Spring stacks property
//! sources. A list (and the `lavalink.plugins` list of entries) is replaced as a whole
//! by the first later layer that sets any of it; free-form maps merge by name.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::error::ConfigError;
use super::keys::{Capture, Check, Hit, Kind, PluginField};
use super::table::KEYS;
use super::{Config, PluginDeclaration};

/// A raw value as one source gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// YAML `null` or an empty value: resets keys that can be unset, else leaves them.
    Null,
    /// One piece of text (for a list key: comma-separated items).
    Text(String),
    /// Item `index` of a list key.
    Item(usize, String),
    /// A list key set to an empty YAML sequence.
    EmptyList,
}

#[derive(Debug)]
enum Raw {
    Null,
    Text(String),
    Items(BTreeMap<usize, String>),
}

#[derive(Debug)]
struct Entry {
    key: usize,
    capture: Capture,
    raw: Raw,
    env_var: Option<String>,
}

/// The settings of one source, in the order they were given.
#[derive(Debug, Default)]
pub(crate) struct Layer {
    entries: Vec<Entry>,
}

impl Layer {
    /// Records `value` for key `key` (an index into [`KEYS`]). Returns true when this
    /// replaced a value the same source gave before under another spelling.
    pub(crate) fn put(
        &mut self,
        key: usize,
        capture: Capture,
        value: Value,
        env_var: Option<String>,
    ) -> bool {
        let found = self
            .entries
            .iter_mut()
            .find(|e| e.key == key && e.capture == capture);
        let Some(entry) = found else {
            let raw = match value {
                Value::Null => Raw::Null,
                Value::Text(text) => Raw::Text(text),
                Value::Item(i, text) => Raw::Items(BTreeMap::from([(i, text)])),
                Value::EmptyList => Raw::Items(BTreeMap::new()),
            };
            self.entries.push(Entry {
                key,
                capture,
                raw,
                env_var,
            });
            return false;
        };
        entry.env_var = env_var;
        match (value, &mut entry.raw) {
            (Value::Item(i, text), Raw::Items(items)) => items.insert(i, text).is_some(),
            (Value::Item(i, text), raw) => {
                *raw = Raw::Items(BTreeMap::from([(i, text)]));
                true
            }
            (Value::Null, raw) => {
                *raw = Raw::Null;
                true
            }
            (Value::Text(text), raw) => {
                *raw = Raw::Text(text);
                true
            }
            (Value::EmptyList, raw) => {
                *raw = Raw::Items(BTreeMap::new());
                true
            }
        }
    }

    /// Checks every value and stores it into `config`.
    pub(crate) fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        let mut plugins: BTreeMap<usize, PluginParts> = BTreeMap::new();
        for entry in &self.entries {
            entry.apply(config, &mut plugins)?;
        }
        if !plugins.is_empty() {
            config.lavalink.plugins = plugins
                .into_iter()
                .map(|(index, parts)| parts.build(index))
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }
}

impl Entry {
    fn apply(
        &self,
        config: &mut Config,
        plugins: &mut BTreeMap<usize, PluginParts>,
    ) -> Result<(), ConfigError> {
        let key = &KEYS[self.key];
        let hit = Hit {
            capture: self.capture.clone(),
            element: None,
        };
        let invalid = |element: Option<usize>, value: String, allowed: String| {
            let hit = Hit {
                element,
                ..hit.clone()
            };
            ConfigError::InvalidValue {
                key: key.display(&hit),
                value,
                allowed,
                env_var: self.env_var.clone(),
            }
        };
        let bad_text = |text: &str| invalid(None, format!("{text:?}"), key.kind.allowed(key.unit));

        let text = match (&key.kind, &self.raw) {
            (Kind::OptInt { set, .. }, Raw::Null) => {
                set(config, None);
                return Ok(());
            }
            (Kind::OptText(set), Raw::Null) => {
                set(config, None);
                return Ok(());
            }
            (_, Raw::Null) => return Ok(()),
            (Kind::List { item, set }, raw) => {
                let items = list_items(raw)
                    .map(|(i, text)| {
                        item.apply(text)
                            .ok_or_else(|| invalid(Some(i), format!("{text:?}"), item.allowed()))
                    })
                    .collect::<Result<_, _>>()?;
                set(config, items);
                return Ok(());
            }
            (Kind::CpuList(set), raw) => {
                let cpus = list_items(raw)
                    .map(|(i, text)| {
                        text.trim().parse().map_err(|_| {
                            let allowed = "a CPU id (a whole number >= 0)".to_owned();
                            invalid(Some(i), format!("{text:?}"), allowed)
                        })
                    })
                    .collect::<Result<_, _>>()?;
                set(config, cpus);
                return Ok(());
            }
            (_, Raw::Items(_)) => {
                return Err(invalid(
                    None,
                    "a list".to_owned(),
                    key.kind.allowed(key.unit),
                ))
            }
            (_, Raw::Text(text)) => text,
        };

        match &key.kind {
            Kind::Bool(set) => set(config, parse_bool(text).ok_or_else(|| bad_text(text))?),
            Kind::Int { min, max, set } => set(
                config,
                parse_int(text, *min, *max).ok_or_else(|| bad_text(text))?,
            ),
            Kind::OptInt { min, max, set } => set(
                config,
                Some(parse_int(text, *min, *max).ok_or_else(|| bad_text(text))?),
            ),
            Kind::Text { check, set } => {
                set(config, check.apply(text).ok_or_else(|| bad_text(text))?)
            }
            Kind::OptText(set) => set(config, Some(text.clone())),
            Kind::Choice { options, set } => {
                let wanted = text.trim();
                let index = options.iter().position(|o| o.eq_ignore_ascii_case(wanted));
                set(config, index.ok_or_else(|| bad_text(text))?)
            }
            Kind::Ip(set) => set(config, parse_ip(text).ok_or_else(|| bad_text(text))?),
            Kind::Map { value, set, .. } => {
                let Capture::Name(name) = &self.capture else {
                    unreachable!("a map key always captures a name")
                };
                set(
                    config,
                    name.clone(),
                    value.apply(text).ok_or_else(|| bad_text(text))?,
                )
            }
            Kind::Plugin(field) => {
                let Capture::Index(index) = self.capture else {
                    unreachable!("a plugin key always captures an index")
                };
                let parts = plugins.entry(index).or_default();
                match field {
                    PluginField::Dependency => {
                        let coordinates = Check::Coordinates.apply(text);
                        parts.dependency = Some(coordinates.ok_or_else(|| bad_text(text))?);
                    }
                    PluginField::Repository => parts.repository = Some(text.clone()),
                    PluginField::Snapshot => {
                        parts.snapshot = parse_bool(text).ok_or_else(|| bad_text(text))?;
                    }
                }
            }
            Kind::List { .. } | Kind::CpuList(_) | Kind::Ignored => {}
        }
        Ok(())
    }
}

/// The items of a list value with their positions: indexed items in index order, or
/// the non-empty pieces of comma-separated text.
fn list_items(raw: &Raw) -> Box<dyn Iterator<Item = (usize, &str)> + '_> {
    match raw {
        Raw::Items(items) => Box::new(items.values().map(String::as_str).enumerate()),
        Raw::Text(text) => Box::new(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate(),
        ),
        Raw::Null => Box::new(std::iter::empty()),
    }
}

/// Spring's boolean words: `true`/`yes`/`on`/`1` and `false`/`no`/`off`/`0`, any case.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    match text.trim() {
        host if host.eq_ignore_ascii_case("localhost") => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        addr => addr.parse().ok(),
    }
}

fn parse_int(text: &str, min: i64, max: i64) -> Option<i64> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
}

/// The fields one source gave for one `lavalink.plugins[]` entry.
#[derive(Debug, Default)]
struct PluginParts {
    dependency: Option<String>,
    repository: Option<String>,
    snapshot: bool,
}

impl PluginParts {
    fn build(self, index: usize) -> Result<PluginDeclaration, ConfigError> {
        let Some(dependency) = self.dependency else {
            return Err(ConfigError::InvalidValue {
                key: format!("lavalink.plugins[{index}].dependency"),
                value: "nothing".to_owned(),
                allowed: Check::Coordinates.allowed(),
                env_var: None,
            });
        };
        Ok(PluginDeclaration {
            dependency,
            repository: self.repository,
            snapshot: self.snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(path: &str) -> usize {
        KEYS.iter().position(|k| k.path == path).expect("known key")
    }

    fn applied(layer: &Layer) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        layer.apply(&mut config)?;
        Ok(config)
    }

    #[test]
    fn booleans_take_spring_words() {
        for (word, want) in [
            ("yes", true),
            ("ON", true),
            ("1", true),
            ("No", false),
            ("off", false),
        ] {
            assert_eq!(parse_bool(word), Some(want), "{word}");
        }
        assert_eq!(parse_bool("y"), None);
        assert_eq!(parse_bool("enabled"), None);
    }

    #[test]
    fn later_spelling_of_the_same_key_wins_and_is_reported() {
        let mut layer = Layer::default();
        let key = index("lavalink.server.gc-warnings");
        assert!(!layer.put(key, Capture::None, Value::Text("true".into()), None));
        assert!(layer.put(key, Capture::None, Value::Text("false".into()), None));
        assert!(!applied(&layer).unwrap().lavalink.gc_warnings);
    }

    #[test]
    fn null_unsets_optional_keys_and_leaves_others() {
        let mut layer = Layer::default();
        layer.put(
            index("lavalink.server.password"),
            Capture::None,
            Value::Null,
            None,
        );
        layer.put(index("server.port"), Capture::None, Value::Null, None);
        let config = applied(&layer).unwrap();
        assert_eq!(config.lavalink.password, None);
        assert_eq!(config.server.port, 2333);
    }

    #[test]
    fn list_items_come_in_index_order() {
        let mut layer = Layer::default();
        let key = index("lavalink.server.ratelimit.excludedIps");
        layer.put(key, Capture::None, Value::Item(1, "10.0.0.2".into()), None);
        layer.put(key, Capture::None, Value::Item(0, "10.0.0.1".into()), None);
        let config = applied(&layer).unwrap();
        assert_eq!(
            config.lavalink.ratelimit.excluded_ips,
            ["10.0.0.1", "10.0.0.2"]
        );
    }

    #[test]
    fn a_plugin_entry_needs_a_dependency() {
        let mut layer = Layer::default();
        let key = index("lavalink.plugins[].repository");
        layer.put(
            key,
            Capture::Index(0),
            Value::Text("https://repo.example".into()),
            None,
        );
        let err = applied(&layer).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid value for lavalink.plugins[0].dependency: nothing \
             (allowed: Maven coordinates group:artifact:version)"
        );
    }
}
