//! Loading whole configurations: a full Lavalink file, spellings, the environment,
//! warnings and errors, and precedence.

use std::net::IpAddr;
use std::path::PathBuf;

use super::keys::{Kind, Shown};
use super::layer::{Layer, Value};
use super::table::KEYS;
use super::*;

const FULL: &str = include_str!("testdata/lavalink-example.yml");

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(yaml: &str) -> Loaded {
    Config::from_yaml_str(yaml, []).unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> String {
    match Config::from_yaml_str(yaml, []) {
        Ok(_) => panic!("loaded: {yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn full_lavalink_file_loads_without_warnings() {
    let loaded = load(FULL);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(loaded.source, ConfigSource::Embedded);
    let c = loaded.config;

    assert_eq!(c.server.port, 2444);
    assert_eq!(c.server.address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert!(c.server.http2_enabled);

    let l = &c.lavalink;
    assert_eq!(l.password.as_deref(), Some("correct horse battery staple"));
    assert!(!l.sources.youtube && !l.sources.twitch && l.sources.nico && l.sources.local);
    assert!(!l.filters.karaoke && !l.filters.distortion && l.filters.channel_mix);
    assert!(l.non_allocating_frame_buffer);
    assert_eq!(l.buffer_duration_ms, 600);
    assert_eq!(l.frame_buffer_duration_ms, 3000);
    assert_eq!(l.opus_encoding_quality, 8);
    assert_eq!(l.resampling_quality, ResamplingQuality::Medium);
    assert_eq!(l.track_stuck_threshold_ms, 12_000);
    assert!(!l.use_seek_ghosting);
    assert_eq!(l.youtube_playlist_load_limit, Some(4));
    assert_eq!(l.player_update_interval_s, 2);
    assert!(!l.youtube_search_enabled && l.soundcloud_search_enabled);
    assert!(l.soundcloud_filter_out_preview_tracks);
    assert!(!l.gc_warnings);
    assert_eq!(l.ratelimit.ip_blocks, ["2001:db8:1::/48", "192.0.2.0/24"]);
    assert_eq!(l.ratelimit.excluded_ips, ["192.0.2.7"]);
    assert_eq!(l.ratelimit.strategy, RateLimitStrategy::LoadBalance);
    assert_eq!(l.ratelimit.retry_limit, 3);
    assert!(!l.ratelimit.search_triggers_fail);
    assert_eq!(l.youtube_config.email, "operator@example.org");
    assert_eq!(l.http_config.proxy_host, "proxy.internal");
    assert_eq!(l.http_config.proxy_port, 8118);
    assert_eq!(l.http_config.proxy_user, "music");
    assert_eq!(l.http_config.proxy_password, "secret");
    assert_eq!(l.timeouts.connect_timeout_ms, 2500);
    assert_eq!(l.timeouts.connection_request_timeout_ms, 2600);
    assert_eq!(l.timeouts.socket_timeout_ms, 2700);
    assert!(l.plugins.is_empty());

    assert!(c.metrics.prometheus_enabled);
    assert_eq!(c.metrics.prometheus_endpoint, "/internal/metrics");
    assert!(c.metrics.prometheus_endpoint_configured);

    assert_eq!(c.sentry.dsn, "https://key@sentry.example.org/7");
    assert_eq!(c.sentry.environment, "staging");
    assert_eq!(
        c.sentry.tags.get("region").map(String::as_str),
        Some("eu-west")
    );
    assert_eq!(
        c.sentry.tags.get("shard_group").map(String::as_str),
        Some("blue")
    );

    let g = &c.logging;
    assert_eq!(g.file_path, Some(PathBuf::from("./var/log/")));
    assert_eq!(g.level_root, "WARN");
    assert_eq!(g.levels.get("lavalink").map(String::as_str), Some("DEBUG"));
    assert_eq!(g.levels.len(), 1);
    assert!(!g.request_enabled && g.request_include_client_info && g.request_include_headers);
    assert!(!g.request_include_query_string && !g.request_include_payload);
    assert_eq!(g.request_max_payload_length, 2048);
    assert!(g.request_before_request);
    assert_eq!(g.max_file_size, "250MB");
    assert_eq!(g.max_history, 14);

    let q = &c.quaver;
    assert_eq!(q.engine_threads, Some(3));
    assert_eq!(q.engine_cpus, [1, 2, 3]);
    assert_eq!(q.engine_realtime_priority, Some(50));
    assert_eq!(q.engine_max_players, 2500);
    assert_eq!(q.decode_threads, Some(6));
    assert!(q.voice_allow_insecure_endpoints);
    assert_eq!(
        q.voice_extra_ca_certificates,
        [PathBuf::from("/etc/ssl/proxy-ca.pem")]
    );
    assert_eq!(
        q.local_roots,
        [PathBuf::from("/srv/music"), PathBuf::from("/srv/jingles")]
    );
    assert_eq!(q.io_threads, 2);
    assert_eq!(q.server_max_connections, 500);
    assert_eq!(q.server_header_timeout_ms, 5_000);
    assert_eq!(q.server_idle_timeout_ms, 15_000);
    assert_eq!(q.server_body_timeout_ms, 20_000);
}

#[test]
fn empty_text_is_the_defaults() {
    assert_eq!(load("").config, Config::default());
    assert_eq!(load("# nothing\n").config, Config::default());
}

#[test]
fn kebab_camel_and_snake_spellings_are_one_key() {
    for spelling in ["channelMix", "channel-mix", "channel_mix", "ChannelMix"] {
        let yaml = format!("lavalink:\n  server:\n    filters:\n      {spelling}: false\n");
        let loaded = load(&yaml);
        assert!(!loaded.config.lavalink.filters.channel_mix, "{spelling}");
        assert!(
            loaded.warnings.is_empty(),
            "{spelling}: {:?}",
            loaded.warnings
        );
    }
    let loaded = load(
        "lavalink:\n  server:\n    gcWarnings: false\n    buffer_duration_ms: 800\n\
         logging:\n  logback:\n    rollingPolicy:\n      maxFileSize: 10MB\n      max_history: 3\n",
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(!loaded.config.lavalink.gc_warnings);
    assert_eq!(loaded.config.lavalink.buffer_duration_ms, 800);
    assert_eq!(loaded.config.logging.max_file_size, "10MB");
    assert_eq!(loaded.config.logging.max_history, 3);
}

#[test]
fn dotted_and_indexed_mapping_keys() {
    let loaded = load(
        "lavalink.server.password: dotted\nserver.port: 3000\n\
         lavalink.server.ratelimit:\n  ipBlocks[0]: 10.0.0.0/8\n  ipBlocks[1]: 10.1.0.0/16\n",
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.lavalink.password.as_deref(), Some("dotted"));
    assert_eq!(loaded.config.server.port, 3000);
    assert_eq!(
        loaded.config.lavalink.ratelimit.ip_blocks,
        ["10.0.0.0/8", "10.1.0.0/16"]
    );
}

#[test]
fn environment_overrides() {
    let vars = env(&[
        ("SERVER_PORT", "2555"),
        ("LAVALINK_SERVER_PASSWORD", "from-env"),
        ("LAVALINK_SERVER_BUFFER_DURATION_MS", "0"),
        ("LAVALINK_SERVER_FILTERS_CHANNEL_MIX", "false"),
        ("LAVALINK_SERVER_GC_WARNINGS", "no"),
        ("LAVALINK_PLUGINS_0_DEPENDENCY", "org.example:first:1.0"),
        ("LAVALINK_PLUGINS_1_DEPENDENCY", "org.example:second:2.0"),
        ("LAVALINK_PLUGINS_1_SNAPSHOT", "true"),
        (
            "LAVALINK_SERVER_RATELIMIT_IP_BLOCKS",
            "10.0.0.0/8,192.0.2.0/24",
        ),
        ("LAVALINK_SERVER_RATELIMIT_STRATEGY", "nanoswitch"),
        ("SENTRY_TAGS_SOME_KEY", "some value"),
        ("LOGGING_LEVEL_ROOT", "debug"),
        ("LOGGING_LEVEL_LAVALINK", "TRACE"),
        ("METRICS_PROMETHEUS_ENABLED", "TRUE"),
        ("QUAVER_ENGINE_THREADS", "2"),
        ("QUAVER_ENGINE_CPUS", "4, 5"),
        ("SERVER_SOFTWARE", "ignored"),
    ]);
    let loaded = Config::from_yaml_str(FULL, vars).unwrap();
    let c = loaded.config;
    assert_eq!(c.server.port, 2555);
    assert_eq!(c.lavalink.password.as_deref(), Some("from-env"));
    assert_eq!(c.lavalink.buffer_duration_ms, 0);
    assert_eq!(c.lavalink.effective_buffer_duration_ms(), None);
    assert!(!c.lavalink.filters.channel_mix);
    assert!(!c.lavalink.gc_warnings);
    assert_eq!(c.lavalink.plugins.len(), 2);
    assert_eq!(c.lavalink.plugins[0].dependency, "org.example:first:1.0");
    assert!(!c.lavalink.plugins[0].snapshot);
    assert!(c.lavalink.plugins[1].snapshot);
    assert_eq!(
        c.lavalink.ratelimit.ip_blocks,
        ["10.0.0.0/8", "192.0.2.0/24"]
    );
    assert_eq!(c.lavalink.ratelimit.strategy, RateLimitStrategy::NanoSwitch);
    assert_eq!(
        c.sentry.tags.get("some_key").map(String::as_str),
        Some("some value")
    );
    assert_eq!(
        c.sentry.tags.get("region").map(String::as_str),
        Some("eu-west")
    );
    assert_eq!(c.logging.level_root, "DEBUG");
    assert_eq!(
        c.logging.levels.get("lavalink").map(String::as_str),
        Some("TRACE")
    );
    assert!(c.metrics.prometheus_enabled);
    assert_eq!(c.quaver.engine_threads, Some(2));
    assert_eq!(c.quaver.engine_cpus, [4, 5]);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].starts_with("Quaver loads no Lavalink (JVM) plugins"));
}

#[test]
fn precedence_is_default_then_file_then_environment() {
    let yaml = "server:\n  port: 3000\nlavalink:\n  server:\n    playerUpdateInterval: 7\n";
    let vars = env(&[("LAVALINK_SERVER_PLAYER_UPDATE_INTERVAL", "9")]);
    let c = Config::from_yaml_str(yaml, vars).unwrap().config;
    assert_eq!(c.lavalink.opus_encoding_quality, 10, "default kept");
    assert_eq!(c.server.port, 3000, "file over default");
    assert_eq!(
        c.lavalink.player_update_interval_s, 9,
        "environment over file"
    );
}

#[test]
fn a_list_from_a_later_source_replaces_the_whole_list() {
    let yaml =
        "lavalink:\n  server:\n    ratelimit:\n      excludedIps: [10.0.0.1, 10.0.0.2, 10.0.0.3]\n";
    let vars = env(&[("LAVALINK_SERVER_RATELIMIT_EXCLUDED_IPS_0", "10.9.9.9")]);
    let c = Config::from_yaml_str(yaml, vars).unwrap().config;
    assert_eq!(c.lavalink.ratelimit.excluded_ips, ["10.9.9.9"]);
}

#[test]
fn unknown_keys_warn_once_each_with_the_full_path() {
    let yaml = "server:\n  port: 2333\n  colour: blue\n\
                lavalink:\n  server:\n    fooBar: 1\n    sources:\n      deezer: true\n\
                lavalnk:\n  server:\n    password: x\n    port: 1\n\
                quaver:\n  engine:\n    turbo: true\n";
    let warnings = load(yaml).warnings;
    assert_eq!(
        warnings,
        [
            "ignoring unknown key server.colour",
            "ignoring unknown key lavalink.server.fooBar",
            "ignoring unknown key lavalink.server.sources.deezer",
            "ignoring unknown key lavalnk",
            "ignoring unknown key quaver.engine.turbo",
        ]
    );
}

#[test]
fn free_form_subtrees_never_warn() {
    let yaml = "spring:\n  main:\n    banner-mode: off\n  cloud.config.enabled: false\n\
                logging:\n  level:\n    com.example.Thing: INFO\n    org:\n      other: error\n\
                sentry:\n  tags:\n    anything: at-all\n\
                plugins:\n  youtube:\n    enabled: true\n    clients: [MUSIC, WEB]\n  lavasrc:\n    providers: [x]\n";
    let loaded = load(yaml);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[0],
        "Quaver loads no Lavalink (JVM) plugins; ignoring the plugins settings for lavasrc, youtube"
    );
    let levels = &loaded.config.logging.levels;
    assert_eq!(
        levels.get("com.example.Thing").map(String::as_str),
        Some("INFO")
    );
    assert_eq!(levels.get("org.other").map(String::as_str), Some("ERROR"));
}

#[test]
fn plugin_declarations_give_one_warning() {
    let yaml = "lavalink:\n  plugins:\n    - dependency: \"org.example:a:1.0\"\n      \
                repository: \"https://repo.example.org\"\n    - dependency: \"org.example:b:2.0\"\n      \
                snapshot: true\nplugins:\n  a:\n    key: value\n";
    let loaded = load(yaml);
    assert_eq!(
        loaded.warnings,
        [
            "Quaver loads no Lavalink (JVM) plugins; ignoring 2 lavalink.plugins entries \
          and the plugins settings for a"
        ]
    );
    let plugins = &loaded.config.lavalink.plugins;
    assert_eq!(
        plugins[0].repository.as_deref(),
        Some("https://repo.example.org")
    );
    assert_eq!(plugins[1].dependency, "org.example:b:2.0");
    assert!(plugins[1].snapshot);
}

#[test]
fn null_and_empty_sections_are_fine() {
    let loaded =
        load("plugins:\nlavalink:\n  plugins:\n  server:\n    ratelimit:\nsentry:\n  tags:\n");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn null_password_means_none() {
    let c = load("lavalink:\n  server:\n    password:\n").config;
    assert_eq!(c.lavalink.password, None);
    let c = load("lavalink:\n  server:\n    password: null\n").config;
    assert_eq!(c.lavalink.password, None);
    let c = load("lavalink:\n  server:\n    password: \"\"\n").config;
    assert_eq!(c.lavalink.password.as_deref(), Some(""));
}

#[test]
fn localhost_is_accepted_as_an_address() {
    let c = load("server:\n  address: localhost\n").config;
    assert_eq!(c.server.address, IpAddr::from([127, 0, 0, 1]));
    let c = load("server:\n  address: \"::\"\n").config;
    assert_eq!(c.server.address, "::".parse::<IpAddr>().unwrap());
}

#[test]
fn yaml_numbers_and_booleans_read_as_spring_reads_them() {
    let c = load(
        "lavalink:\n  server:\n    password: 12345\n    useSeekGhosting: off\n\
         \x20   sources:\n      local: yes\nserver:\n  port: \"2400\"\n",
    )
    .config;
    assert_eq!(c.lavalink.password.as_deref(), Some("12345"));
    assert!(!c.lavalink.use_seek_ghosting);
    assert!(c.lavalink.sources.local);
    assert_eq!(c.server.port, 2400);
}

#[test]
fn invalid_values_name_key_value_and_allowed() {
    let cases = [
        (
            "server:\n  port: 70000\n",
            "invalid value for server.port: \"70000\" (allowed: an integer from 1 to 65535)",
        ),
        (
            "lavalink:\n  server:\n    playerUpdateInterval: -1\n",
            "invalid value for lavalink.server.playerUpdateInterval: \"-1\" \
             (allowed: a whole number of seconds >= 1)",
        ),
        (
            "server:\n  port:\n    value: 1\n",
            "invalid value for server.port: a mapping (allowed: an integer from 1 to 65535)",
        ),
        (
            "server:\n  http2:\n    enabled: maybe\n",
            "invalid value for server.http2.enabled: \"maybe\" (allowed: true or false)",
        ),
        (
            "lavalink:\n  server:\n    frameBufferDurationMs: -5\n",
            "invalid value for lavalink.server.frameBufferDurationMs: \"-5\" \
             (allowed: a whole number of milliseconds >= 0)",
        ),
        (
            "lavalink:\n  server:\n    opusEncodingQuality: 11\n",
            "invalid value for lavalink.server.opusEncodingQuality: \"11\" \
             (allowed: an integer from 0 to 10)",
        ),
        (
            "lavalink:\n  server:\n    resamplingQuality: ULTRA\n",
            "invalid value for lavalink.server.resamplingQuality: \"ULTRA\" \
             (allowed: one of LOW, MEDIUM, HIGH)",
        ),
        (
            "lavalink:\n  server:\n    ratelimit:\n      strategy: Random\n",
            "invalid value for lavalink.server.ratelimit.strategy: \"Random\" \
             (allowed: one of RotateOnBan, LoadBalance, NanoSwitch, RotatingNanoSwitch)",
        ),
        (
            "server:\n  address: 300.1.1.1\n",
            "invalid value for server.address: \"300.1.1.1\" (allowed: an IPv4 or IPv6 address)",
        ),
        (
            "lavalink:\n  server:\n    ratelimit:\n      excludedIps: [10.0.0.1, nope]\n",
            "invalid value for lavalink.server.ratelimit.excludedIps[1]: \"nope\" \
             (allowed: an IPv4 or IPv6 address)",
        ),
        (
            "lavalink:\n  server:\n    ratelimit:\n      ipBlocks: [10.0.0.0/40]\n",
            "invalid value for lavalink.server.ratelimit.ipBlocks[0]: \"10.0.0.0/40\" \
             (allowed: an IPv4 or IPv6 block in CIDR notation, like 10.0.0.0/8)",
        ),
        (
            "quaver:\n  engine:\n    realtimePriority: 100\n",
            "invalid value for quaver.engine.realtimePriority: \"100\" \
             (allowed: an integer from 1 to 99)",
        ),
        (
            "quaver:\n  engine:\n    maxPlayers: 0\n",
            "invalid value for quaver.engine.maxPlayers: \"0\" \
             (allowed: a whole number of players from 1 to 1000000)",
        ),
        (
            "quaver:\n  engine:\n    cpus: [0, x]\n",
            "invalid value for quaver.engine.cpus[1]: \"x\" (allowed: a CPU id (a whole number >= 0))",
        ),
        (
            "logging:\n  level:\n    lavalink: LOUD\n",
            "invalid value for logging.level.lavalink: \"LOUD\" \
             (allowed: one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF)",
        ),
        (
            "logging:\n  logback:\n    rollingpolicy:\n      max-file-size: huge\n",
            "invalid value for logging.logback.rollingpolicy.max-file-size: \"huge\" (allowed: \
             a whole number of bytes with an optional unit B, KB, MB, GB or TB, like 1GB)",
        ),
        (
            "lavalink:\n  server:\n    sources:\n      youtube: [true]\n",
            "invalid value for lavalink.server.sources.youtube: a list (allowed: true or false)",
        ),
        (
            "lavalink:\n  server: 5\n",
            "invalid value for lavalink.server: \"5\" (allowed: a mapping of keys)",
        ),
        (
            "lavalink:\n  plugins:\n    - dependency: not-coordinates\n",
            "invalid value for lavalink.plugins[0].dependency: \"not-coordinates\" \
             (allowed: Maven coordinates group:artifact:version)",
        ),
    ];
    for (yaml, want) in cases {
        let got = error(yaml);
        assert_eq!(got, want, "for {yaml:?}");
        assert!(!got.contains('\n'));
    }
}

#[test]
fn invalid_environment_value_is_an_error() {
    let vars = env(&[("SERVER_PORT", "http")]);
    let err = Config::from_yaml_str("", vars).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid value for server.port: \"http\" (allowed: an integer from 1 to 65535), \
         from environment variable SERVER_PORT"
    );
}

#[test]
fn syntax_error_reports_the_line() {
    let err = error("server:\n  port: 2333\n  address: [0.0.0.0\nlavalink:\n");
    assert!(err.starts_with("YAML syntax error at line "), "{err}");
    let err = Config::from_yaml_str("a: 1\na: 2\n", []).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err}");
}

#[test]
fn same_key_twice_under_two_spellings_warns() {
    let loaded = load("lavalink:\n  server:\n    gc-warnings: true\n    gcWarnings: false\n");
    assert!(!loaded.config.lavalink.gc_warnings);
    assert_eq!(
        loaded.warnings,
        [
            "key lavalink.server.gcWarnings is set more than once (under different spellings); \
          the last value wins"
        ]
    );
}

#[test]
fn prometheus_endpoint_is_explicit_only_when_set() {
    let c = load("metrics:\n  prometheus:\n    enabled: true\n").config;
    assert_eq!(c.metrics.prometheus_endpoint, "/metrics");
    assert!(!c.metrics.prometheus_endpoint_configured);
    let c = load("metrics:\n  prometheus:\n    endpoint: /metrics\n").config;
    assert!(c.metrics.prometheus_endpoint_configured);
}

/// Each key's documented default, loaded through the key itself, reproduces
/// `Config::default()`: the reference and the code agree.
#[test]
fn documented_defaults_match_the_embedded_defaults() {
    for (index, key) in KEYS.iter().enumerate() {
        let Shown::Value(text) = key.default else {
            continue;
        };
        if matches!(key.kind, Kind::Plugin(_) | Kind::Ignored) {
            continue;
        }
        let mut layer = Layer::default();
        layer.put(
            index,
            super::keys::Capture::None,
            Value::Text(text.to_owned()),
            None,
        );
        let mut config = Config::default();
        layer
            .apply(&mut config)
            .unwrap_or_else(|e| panic!("{}: {e}", key.path));
        assert_eq!(
            config,
            Config::default(),
            "documented default of {}",
            key.path
        );
    }
}

/// Every integer key's range fits the field it is stored in.
#[test]
fn integer_ranges_fit_their_fields() {
    for (index, key) in KEYS.iter().enumerate() {
        let (Kind::Int { min, max, .. } | Kind::OptInt { min, max, .. }) = key.kind else {
            continue;
        };
        for value in [min, max] {
            let mut layer = Layer::default();
            layer.put(
                index,
                super::keys::Capture::None,
                Value::Text(value.to_string()),
                None,
            );
            layer
                .apply(&mut Config::default())
                .unwrap_or_else(|e| panic!("{}: {e}", key.path));
        }
    }
}

/// The environment variable shown for each key in the reference sets that key.
#[test]
fn documented_environment_names_reach_their_keys() {
    for key in KEYS {
        if matches!(key.kind, Kind::Ignored) {
            continue;
        }
        let name = key.env_name().replace("<NAME>", "SOME_NAME");
        let tokens: Vec<String> = name.split('_').map(str::to_ascii_lowercase).collect();
        let first = KEYS.iter().find(|k| k.match_tokens(&tokens).is_some());
        assert_eq!(first.map(|k| k.path), Some(key.path), "{name}");
    }
}

#[test]
fn key_count() {
    assert_eq!(KEYS.len(), 89);
}
