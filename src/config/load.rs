//! Finding the file and stacking the sources: defaults, then each YAML document, then
//! the environment.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::{env, yaml, Config};

/// File name looked for in the working directory when no `--config` is given.
pub const DEFAULT_FILE_NAME: &str = "application.yml";

/// A loaded configuration and what the caller should tell the operator about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The merged configuration.
    pub config: Config,
    /// Things that did not stop loading but deserve a log line each: unknown keys,
    /// keys given twice, Lavalink plugins that will not be loaded.
    pub warnings: Vec<String>,
    /// Where the file layer came from.
    pub source: ConfigSource,
}

/// Where the YAML came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: the embedded defaults (plus the environment), or YAML text handed to
    /// [`Config::from_yaml_str`].
    Embedded,
    /// This file.
    File(PathBuf),
}

impl Config {
    /// Loads the configuration. `explicit` is the `--config PATH` argument (relative
    /// paths are taken from `cwd`) and must name a readable file; without it,
    /// `application.yml` in `cwd` is read if present, else only the embedded defaults
    /// are used. `env` is the process environment; variables named the Spring way
    /// override the file.
    pub fn load(
        explicit: Option<&Path>,
        cwd: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::load_with_args(explicit, cwd, env, [])
    }

    /// [`Config::load`], with Spring's `--key=value` command-line arguments (`args`:
    /// key and value) over the environment, as Spring ranks them. A key is matched as
    /// an environment variable's name is (`server.port`, `lavalink.server.password`).
    pub fn load_with_args(
        explicit: Option<&Path>,
        cwd: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let file = match explicit {
            Some(path) => Some(cwd.join(path)),
            None => Some(cwd.join(DEFAULT_FILE_NAME)).filter(|p| p.is_file()),
        };
        let Some(path) = file else {
            return build(None, None, env, args, ConfigSource::Embedded);
        };
        let text = fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        build(
            Some(&text),
            Some(&path),
            env,
            args,
            ConfigSource::File(path.clone()),
        )
    }

    /// Loads YAML text over the embedded defaults, then `env` over that. The result's
    /// source is [`ConfigSource::Embedded`].
    pub fn from_yaml_str(
        yaml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        build(Some(yaml), None, env, [], ConfigSource::Embedded)
    }
}

/// Stacks the layers. `file` names where `yaml` came from, for error messages.
fn build(
    yaml: Option<&str>,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    args: impl IntoIterator<Item = (String, String)>,
    source: ConfigSource,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let scan = match yaml {
        Some(text) => yaml::scan(text, file, &mut warnings)?,
        None => yaml::Scan::default(),
    };
    let env = env::layer(env);
    let args = env::layer(args);
    let mut config = Config::default();
    for layer in scan.layers.iter().chain([&env, &args]) {
        layer.apply(&mut config)?;
    }
    if let Some(warning) = plugin_warning(&config, &scan.plugin_settings) {
        warnings.push(warning);
    }
    Ok(Loaded {
        config,
        warnings,
        source,
    })
}

/// The one warning about Lavalink plugins, when any are declared or configured.
fn plugin_warning(config: &Config, settings: &BTreeSet<String>) -> Option<String> {
    let mut ignored = Vec::new();
    match config.lavalink.plugins.len() {
        0 => {}
        1 => ignored.push("1 lavalink.plugins entry".to_owned()),
        n => ignored.push(format!("{n} lavalink.plugins entries")),
    }
    if !settings.is_empty() {
        let names: Vec<&str> = settings.iter().map(String::as_str).collect();
        ignored.push(format!("the plugins settings for {}", names.join(", ")));
    }
    (!ignored.is_empty()).then(|| {
        format!(
            "Quaver loads no Lavalink (JVM) plugins; ignoring {}",
            ignored.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("quaver-config-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn no_file_means_embedded_defaults() {
        let dir = temp_dir("none");
        let loaded = Config::load(None, &dir, []).unwrap();
        assert_eq!(loaded.source, ConfigSource::Embedded);
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn application_yml_in_the_working_directory_is_read() {
        let dir = temp_dir("cwd");
        let file = dir.join("application.yml");
        fs::write(&file, "server:\n  port: 4100\n").unwrap();
        let loaded = Config::load(None, &dir, []).unwrap();
        assert_eq!(loaded.source, ConfigSource::File(file));
        assert_eq!(loaded.config.server.port, 4100);
    }

    #[test]
    fn explicit_path_wins_and_must_exist() {
        let dir = temp_dir("explicit");
        fs::write(dir.join("application.yml"), "server:\n  port: 4100\n").unwrap();
        fs::write(dir.join("other.yml"), "server:\n  port: 4200\n").unwrap();
        let loaded = Config::load(Some(Path::new("other.yml")), &dir, []).unwrap();
        assert_eq!(loaded.config.server.port, 4200);

        let err = Config::load(Some(Path::new("missing.yml")), &dir, []).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("missing.yml"), "{err}");
    }

    #[test]
    fn command_line_arguments_override_the_environment_and_the_file() {
        let dir = temp_dir("args");
        fs::write(dir.join("application.yml"), "server:\n  port: 4100\n").unwrap();
        let env = [("SERVER_PORT".to_owned(), "4200".to_owned())];
        let args = [
            ("server.port".to_owned(), "4300".to_owned()),
            (
                "lavalink.server.password".to_owned(),
                "from-args".to_owned(),
            ),
            ("spring.profiles.active".to_owned(), "prod".to_owned()),
        ];
        let loaded = Config::load_with_args(None, &dir, env.clone(), args).unwrap();
        assert_eq!(loaded.config.server.port, 4300);
        assert_eq!(
            loaded.config.lavalink.password.as_deref(),
            Some("from-args")
        );
        let loaded = Config::load_with_args(None, &dir, env, []).unwrap();
        assert_eq!(
            loaded.config.server.port, 4200,
            "the environment over the file"
        );
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = temp_dir("syntax");
        fs::write(dir.join("application.yml"), "server:\n  port: [1\n").unwrap();
        let err = Config::load(None, &dir, []).unwrap_err().to_string();
        assert!(
            err.contains("application.yml: YAML syntax error at line"),
            "{err}"
        );
    }
}
