//! Environment variables named the Spring way (`SERVER_PORT`,
//! `LAVALINK_SERVER_FILTERS_CHANNEL_MIX`, `LAVALINK_PLUGINS_0_DEPENDENCY`).
//!
//! A name is cut into tokens at `_`, `.` and `-` and lower-cased; it sets a key when
//! the tokens spell the key's segments in order (a segment may take several tokens:
//! `BUFFER_DURATION_MS` spells `bufferDurationMs`), with a number token where the key
//! has a list index. Only names whose first token is one of [`PREFIXES`] are looked
//! at; such a name that sets no key is ignored, since the environment holds unrelated
//! variables like `SERVER_SOFTWARE`.

use super::keys::Kind;
use super::layer::{Layer, Value};
use super::table::KEYS;

/// First tokens of the variables that are read.
pub(crate) const PREFIXES: [&str; 6] = [
    "server", "lavalink", "metrics", "sentry", "logging", "quaver",
];

/// The settings the environment gives, ordered by variable name.
pub(crate) fn layer(env: impl IntoIterator<Item = (String, String)>) -> Layer {
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    vars.sort();
    let mut layer = Layer::default();
    for (name, text) in vars {
        let tokens: Vec<String> = name
            .split(['_', '.', '-'])
            .filter(|t| !t.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if !tokens
            .first()
            .is_some_and(|t| PREFIXES.contains(&t.as_str()))
        {
            continue;
        }
        let found = KEYS
            .iter()
            .enumerate()
            .find_map(|(index, key)| key.match_tokens(&tokens).map(|hit| (index, hit)));
        let Some((index, hit)) = found else { continue };
        if matches!(KEYS[index].kind, Kind::Ignored) {
            continue;
        }
        let value = match hit.element {
            Some(i) => Value::Item(i, text),
            None => Value::Text(text),
        };
        layer.put(index, hit.capture, value, Some(name));
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(vars: &[(&str, &str)]) -> Config {
        let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let mut config = Config::default();
        layer(env).apply(&mut config).expect("valid");
        config
    }

    #[test]
    fn unrelated_and_unknown_variables_are_ignored() {
        let config = config(&[
            ("SERVER_SOFTWARE", "nginx"),
            ("LAVALINK_SOMETHING_NEW", "1"),
            ("HOME", "/root"),
            ("PATH", "/bin"),
            ("SPRING_PROFILES_ACTIVE", "prod"),
        ]);
        assert_eq!(config, Config::default());
    }

    #[test]
    fn spellings_other_than_upper_snake_match_too() {
        let config = config(&[
            ("server.port", "4000"),
            ("lavalink_server_gc-warnings", "false"),
        ]);
        assert_eq!(config.server.port, 4000);
        assert!(!config.lavalink.gc_warnings);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let env = [("QUAVER_ENGINE_MAX_PLAYERS".to_owned(), "0".to_owned())];
        let err = layer(env).apply(&mut Config::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for quaver.engine.maxPlayers: \"0\" (allowed: a whole number of \
             players from 1 to 1000000), from environment variable QUAVER_ENGINE_MAX_PLAYERS"
        );
    }

    #[test]
    fn list_items_and_comma_lists() {
        let config = config(&[
            (
                "LAVALINK_SERVER_RATELIMIT_IP_BLOCKS",
                "10.0.0.0/8, 2001:db8::/48",
            ),
            ("LAVALINK_SERVER_RATELIMIT_EXCLUDED_IPS_1", "10.0.0.2"),
            ("LAVALINK_SERVER_RATELIMIT_EXCLUDED_IPS_0", "10.0.0.1"),
            ("QUAVER_ENGINE_CPUS", "2,3"),
        ]);
        assert_eq!(
            config.lavalink.ratelimit.ip_blocks,
            ["10.0.0.0/8", "2001:db8::/48"]
        );
        assert_eq!(
            config.lavalink.ratelimit.excluded_ips,
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(config.quaver.engine_cpus, [2, 3]);
    }
}
