//! `/version`, `/v4/info`, `/v4/stats`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::node::Node;

pub(super) async fn version(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        node.config.build.semver.clone(),
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    version: Version,
    build_time: u64,
    git: Git,
    jvm: String,
    lavaplayer: String,
    source_managers: Vec<String>,
    filters: Vec<String>,
    plugins: Vec<Plugin>,
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Version {
    semver: String,
    major: u64,
    minor: u64,
    patch: u64,
    pre_release: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Git {
    branch: String,
    commit: String,
    commit_time: u64,
}

#[derive(Serialize)]
struct Plugin {
    name: String,
    version: String,
}

/// Splits a semver string the way Lavalink's `Version.fromSemver` does: a release
/// has `preRelease: ""`; a string that is not semver gives zeros and `null`.
fn parse_semver(semver: &str) -> Version {
    let core_end = semver.find(['-', '+']).unwrap_or(semver.len());
    let parts: Vec<Option<u64>> = semver[..core_end]
        .split('.')
        .map(|p| p.parse().ok())
        .collect();
    let pre = match semver[core_end..].strip_prefix('-') {
        Some(rest) => rest.split('+').next().unwrap_or("").to_owned(),
        None => String::new(),
    };
    match parts.as_slice() {
        [Some(major), Some(minor), Some(patch)] => Version {
            semver: semver.into(),
            major: *major,
            minor: *minor,
            patch: *patch,
            pre_release: Some(pre),
        },
        _ => Version {
            semver: semver.into(),
            major: 0,
            minor: 0,
            patch: 0,
            pre_release: None,
        },
    }
}

pub(super) async fn info(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let b = &node.config.build;
    Json(Info {
        version: parse_semver(&b.semver),
        build_time: b.build_time,
        git: Git {
            branch: b.git_branch.clone(),
            commit: b.git_commit.clone(),
            commit_time: b.git_commit_time,
        },
        jvm: b.runtime.clone(),
        lavaplayer: b.player_library.clone(),
        source_managers: node.loader.source_names(),
        filters: node.config.enabled_filters(),
        plugins: Vec::new(),
    })
}

/// `frameStats` is `null` here (see [`Stats::frame_stats`](crate::protocol::messages::Stats::frame_stats)).
pub(super) async fn stats(State(node): State<Arc<Node>>) -> impl IntoResponse {
    Json(node.stats(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_like_lavalink() {
        let v = parse_semver("4.2.2");
        assert_eq!(
            (v.major, v.minor, v.patch, v.pre_release.as_deref()),
            (4, 2, 2, Some(""))
        );
        let v = parse_semver("4.3.0-beta.1+build");
        assert_eq!((v.minor, v.pre_release.as_deref()), (3, Some("beta.1")));
        let v = parse_semver("abc");
        assert_eq!((v.major, v.pre_release), (0, None));
    }
}
