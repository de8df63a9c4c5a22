//! Reading `application.yml`: walks each YAML document, matches every path to a known
//! key, and records the values in one [`Layer`] per document.
//!
//! A mapping key may itself contain dots and indexes (`lavalink.server.port: 1`,
//! `ipBlocks[0]: …`), as Spring allows. A path that is neither a key nor a section
//! holding keys yields one warning naming the path as written; the walk does not look
//! below it.

use std::collections::BTreeSet;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::error::ConfigError;
use super::keys::{normalize, Hit, Kind, Match, Seg};
use super::layer::{Layer, Value};
use super::table::KEYS;

/// What the file contributed.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// One layer per document that applies, in file order.
    pub(crate) layers: Vec<Layer>,
    /// Names under `plugins.*` that carry settings.
    pub(crate) plugin_settings: BTreeSet<String>,
}

/// Parses `text` (from `file`, when it came from one) and records its settings.
pub(crate) fn scan(
    text: &str,
    file: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<Scan, ConfigError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Syntax {
        path: file.map(Path::to_path_buf),
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    })?;
    let mut scan = Scan::default();
    for (number, doc) in docs.iter().enumerate() {
        match doc {
            Yaml::Hash(_) => {}
            doc if is_empty(doc) => continue,
            other => {
                return Err(ConfigError::NotAMapping {
                    path: file.map(Path::to_path_buf),
                    found: describe(other),
                })
            }
        }
        let mut walker = Walker::default();
        walker.children(&mut Vec::new(), doc)?;
        if walker.profile_specific {
            warnings.push(format!(
                "skipping YAML document {} of the configuration: it applies to a Spring \
                 profile, and Quaver has no profiles",
                number + 1
            ));
            continue;
        }
        warnings.append(&mut walker.warnings);
        scan.plugin_settings.append(&mut walker.plugin_settings);
        scan.layers.push(walker.layer);
    }
    Ok(scan)
}

/// How a path relates to the key table.
enum Class {
    /// Names key `KEYS[index]`.
    Leaf(usize, Hit),
    /// Holds keys below it.
    Section,
    /// Neither.
    Unknown,
}

fn classify(path: &[Seg]) -> Class {
    let mut inside = false;
    for (index, key) in KEYS.iter().enumerate() {
        match key.match_path(path) {
            Match::Leaf(hit) => return Class::Leaf(index, hit),
            Match::Inside => inside = true,
            Match::Miss => {}
        }
    }
    if inside {
        Class::Section
    } else {
        Class::Unknown
    }
}

#[derive(Default)]
struct Walker {
    layer: Layer,
    warnings: Vec<String>,
    plugin_settings: BTreeSet<String>,
    profile_specific: bool,
}

impl Walker {
    fn children(&mut self, path: &mut Vec<Seg>, node: &Yaml) -> Result<(), ConfigError> {
        match node {
            Yaml::Hash(map) => {
                for (name, child) in map {
                    let depth = path.len();
                    path.extend(segments(name));
                    self.visit(path, child)?;
                    path.truncate(depth);
                }
            }
            Yaml::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.visit(path, child)?;
                    path.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn visit(&mut self, path: &mut Vec<Seg>, node: &Yaml) -> Result<(), ConfigError> {
        match classify(path) {
            Class::Leaf(key, hit) => self.leaf(path, key, hit, node),
            Class::Unknown => {
                self.warnings
                    .push(format!("ignoring unknown key {}", show(path)));
                Ok(())
            }
            Class::Section => match node {
                Yaml::Hash(_) => self.children(path, node),
                Yaml::Array(_) if holds_list(path) => self.children(path, node),
                node if is_empty(node) => Ok(()),
                node => Err(ConfigError::InvalidValue {
                    key: show(path),
                    value: describe(node),
                    allowed: "a mapping of keys".to_owned(),
                    env_var: None,
                }),
            },
        }
    }

    fn leaf(
        &mut self,
        path: &mut Vec<Seg>,
        key: usize,
        hit: Hit,
        node: &Yaml,
    ) -> Result<(), ConfigError> {
        let spec = &KEYS[key];
        let invalid = |node: &Yaml| ConfigError::InvalidValue {
            key: spec.display(&hit),
            value: describe(node),
            allowed: spec.kind.allowed(spec.unit),
            env_var: None,
        };
        let value = match (&spec.kind, node) {
            (Kind::Ignored, _) => {
                self.note_ignored(path, node)?;
                return Ok(());
            }
            (Kind::Map { .. }, Yaml::Hash(_)) => return self.children(path, node),
            (kind, Yaml::Array(items)) if kind.is_list() && hit.element.is_none() => {
                let mut duplicate =
                    self.layer
                        .put(key, hit.capture.clone(), Value::EmptyList, None);
                for (i, item) in items.iter().enumerate() {
                    match scalar(item) {
                        Scalar::Text(text) => {
                            let value = Value::Item(i, text);
                            duplicate |= self.layer.put(key, hit.capture.clone(), value, None);
                        }
                        Scalar::Null => {}
                        Scalar::Other => {
                            let hit = Hit {
                                element: Some(i),
                                ..hit.clone()
                            };
                            return Err(ConfigError::InvalidValue {
                                key: spec.display(&hit),
                                value: describe(item),
                                allowed: spec.kind.allowed(spec.unit),
                                env_var: None,
                            });
                        }
                    }
                }
                self.note_duplicate(duplicate, path);
                return Ok(());
            }
            (_, node) => match (scalar(node), hit.element) {
                (Scalar::Other, _) => return Err(invalid(node)),
                (Scalar::Null, Some(_)) => return Ok(()),
                (Scalar::Null, None) => Value::Null,
                (Scalar::Text(text), Some(i)) => Value::Item(i, text),
                (Scalar::Text(text), None) => Value::Text(text),
            },
        };
        let duplicate = self.layer.put(key, hit.capture, value, None);
        self.note_duplicate(duplicate, path);
        Ok(())
    }

    fn note_duplicate(&mut self, duplicate: bool, path: &[Seg]) {
        if duplicate {
            self.warnings.push(format!(
                "key {} is set more than once (under different spellings); the last value wins",
                show(path)
            ));
        }
    }

    /// Subtrees that belong to Spring or to plugins: remember plugin settings, and
    /// notice documents that only apply to a Spring profile.
    fn note_ignored(&mut self, path: &mut Vec<Seg>, node: &Yaml) -> Result<(), ConfigError> {
        let names: Vec<String> = path
            .iter()
            .map(|s| match s {
                Seg::Name(n) => normalize(n),
                Seg::Index(i) => i.to_string(),
            })
            .collect();
        if names[0] == "plugins" {
            if !is_empty(node) {
                if let Some(Seg::Name(plugin)) = path.get(1) {
                    self.plugin_settings.insert(plugin.clone());
                }
            }
            return Ok(());
        }
        if let Yaml::Hash(_) = node {
            return self.children(path, node);
        }
        let profile = ["spring", "config", "activate", "onprofile"];
        if !is_empty(node) && (names == profile || names == ["spring", "profiles"]) {
            self.profile_specific = true;
        }
        Ok(())
    }
}

/// True when `path` is a section whose items are indexed (`lavalink.plugins`).
fn holds_list(path: &[Seg]) -> bool {
    let mut probe = path.to_vec();
    probe.push(Seg::Index(0));
    !matches!(classify(&probe), Class::Unknown)
}

/// A YAML mapping key split into path segments: `a.b[2]` → `a`, `b`, `[2]`.
fn segments(name: &Yaml) -> Vec<Seg> {
    let Scalar::Text(text) = scalar(name) else {
        return vec![Seg::Name(describe(name))];
    };
    let mut segs = Vec::new();
    for piece in text.split('.') {
        match split_indexes(piece) {
            Some((head, indexes)) => {
                segs.push(Seg::Name(head.to_owned()));
                segs.extend(indexes.into_iter().map(Seg::Index));
            }
            None => segs.push(Seg::Name(piece.to_owned())),
        }
    }
    segs
}

/// `name[1][2]` → (`name`, [1, 2]); `None` when the brackets are not indexes.
fn split_indexes(piece: &str) -> Option<(&str, Vec<usize>)> {
    let (head, mut rest) = piece.split_at(piece.find('[').unwrap_or(piece.len()));
    let mut indexes = Vec::new();
    while !rest.is_empty() {
        let (digits, after) = rest.strip_prefix('[')?.split_once(']')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        indexes.push(digits.parse().ok()?);
        rest = after;
    }
    Some((head, indexes))
}

/// A path as the user wrote it: `lavalink.server.fooBar`, `lavalink.plugins[0]`.
fn show(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Name(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

enum Scalar {
    Null,
    Text(String),
    Other,
}

/// The text of a scalar node, as Spring sees it: numbers and booleans by their
/// YAML spelling, `null` and `~` as nothing.
fn scalar(node: &Yaml) -> Scalar {
    match node {
        Yaml::Null => Scalar::Null,
        Yaml::String(s) | Yaml::Real(s) => Scalar::Text(s.clone()),
        Yaml::Integer(i) => Scalar::Text(i.to_string()),
        Yaml::Boolean(b) => Scalar::Text(b.to_string()),
        Yaml::Array(_) | Yaml::Hash(_) | Yaml::Alias(_) | Yaml::BadValue => Scalar::Other,
    }
}

/// A null, an empty string, or an empty mapping or list: "nothing here".
fn is_empty(node: &Yaml) -> bool {
    match node {
        Yaml::Null => true,
        Yaml::String(s) => s.is_empty(),
        Yaml::Hash(map) => map.is_empty(),
        Yaml::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A node as shown in an error: quoted text, or its shape.
fn describe(node: &Yaml) -> String {
    match (scalar(node), node) {
        (Scalar::Text(text), _) => format!("{text:?}"),
        (Scalar::Null, _) => "null".to_owned(),
        (_, Yaml::Hash(_)) => "a mapping".to_owned(),
        (_, Yaml::Array(_)) => "a list".to_owned(),
        _ => "a value with an unsupported YAML tag or alias".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<Seg> {
        segments(&Yaml::String(text.to_owned()))
    }

    #[test]
    fn mapping_keys_split_on_dots_and_indexes() {
        let n = |s: &str| Seg::Name(s.to_owned());
        assert_eq!(names("lavalink.server"), [n("lavalink"), n("server")]);
        assert_eq!(names("ipBlocks[2]"), [n("ipBlocks"), Seg::Index(2)]);
        assert_eq!(names("a[0][1]"), [n("a"), Seg::Index(0), Seg::Index(1)]);
        assert_eq!(names("odd[x]"), [n("odd[x]")]);
        assert_eq!(segments(&Yaml::Integer(7)), [n("7")]);
    }

    #[test]
    fn paths_show_as_written() {
        let path = [
            Seg::Name("lavalink".into()),
            Seg::Name("plugins".into()),
            Seg::Index(0),
        ];
        assert_eq!(show(&path), "lavalink.plugins[0]");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let mut warnings = Vec::new();
        let err = scan(
            "server:\n  port: 1\n   address: x\n",
            Some(Path::new("app.yml")),
            &mut warnings,
        )
        .unwrap_err();
        let ConfigError::Syntax { line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, 3);
        assert!(
            err.to_string()
                .starts_with("app.yml: YAML syntax error at line 3"),
            "{err}"
        );
    }

    #[test]
    fn a_document_must_be_a_mapping() {
        let err = scan("- a\n- b\n", None, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the top level of a YAML document must be a mapping of keys, found a list"
        );
    }

    #[test]
    fn profile_documents_are_skipped_with_a_warning() {
        let text = "server:\n  port: 1000\n---\nspring.config.activate.on-profile: dev\n\
                    server:\n  port: 2000\n";
        let mut warnings = Vec::new();
        let scan = scan(text, None, &mut warnings).unwrap();
        assert_eq!(scan.layers.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("document 2"), "{warnings:?}");
    }
}
