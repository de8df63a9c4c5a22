//! Why a configuration could not be loaded.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A configuration that cannot be used: the node refuses to start. Every variant
/// displays as one line that names what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing `--config` target, permissions, not UTF-8).
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The text is not valid YAML.
    #[error(
        "{}YAML syntax error at line {line}, column {column}: {message}",
        InFile(path)
    )]
    Syntax {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// A YAML document is a list or a scalar instead of a mapping of keys.
    #[error(
        "{}the top level of a YAML document must be a mapping of keys, found {found}",
        InFile(path)
    )]
    NotAMapping {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// What was there instead (`a list`, `"text"`).
        found: String,
    },
    /// A known key holds a value it cannot take.
    #[error(
        "invalid value for {key}: {value} (allowed: {allowed}){}",
        FromEnv(env_var)
    )]
    InvalidValue {
        /// The key in its documented spelling, with list index or map name filled in
        /// (`server.port`, `lavalink.plugins[0].dependency`, `sentry.tags.region`).
        key: String,
        /// The offending value: quoted text, or `a mapping` / `a list` for wrong shapes.
        value: String,
        /// What the key accepts.
        allowed: String,
        /// The environment variable the value came from; `None` for the file.
        env_var: Option<String>,
    },
}

impl ConfigError {
    /// The documented key an [`ConfigError::InvalidValue`] is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::InvalidValue { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Renders the `path: ` prefix of errors that may come from a file.
struct InFile<'a>(&'a Option<PathBuf>);

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "{}: ", path.display()),
            None => Ok(()),
        }
    }
}

/// Renders the `, from environment variable X` suffix of value errors.
struct FromEnv<'a>(&'a Option<String>);

impl fmt::Display for FromEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(var) => write!(f, ", from environment variable {var}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_errors_are_one_line_naming_key_value_and_allowed() {
        let err = ConfigError::InvalidValue {
            key: "server.port".into(),
            value: "\"70000\"".into(),
            allowed: "an integer from 1 to 65535".into(),
            env_var: None,
        };
        assert_eq!(
            err.to_string(),
            "invalid value for server.port: \"70000\" (allowed: an integer from 1 to 65535)"
        );
        assert_eq!(err.key(), Some("server.port"));

        let err = ConfigError::InvalidValue {
            key: "server.port".into(),
            value: "\"x\"".into(),
            allowed: "an integer from 1 to 65535".into(),
            env_var: Some("SERVER_PORT".into()),
        };
        assert!(err
            .to_string()
            .ends_with(", from environment variable SERVER_PORT"));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = ConfigError::Syntax {
            path: Some("conf/application.yml".into()),
            line: 3,
            column: 7,
            message: "mapping values are not allowed in this context".into(),
        };
        assert_eq!(
            err.to_string(),
            "conf/application.yml: YAML syntax error at line 3, column 7: \
             mapping values are not allowed in this context"
        );
    }
}
