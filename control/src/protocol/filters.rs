//! The `filters` object: parsed from PATCH bodies, stored per player, echoed back.
//!
//! A PATCH replaces the whole chain; a key omitted or `null` removes that filter.
//! Sub-fields omitted in a request take their defaults, and responses always carry
//! every sub-field. Lavalink declares most values as 32-bit floats and timescale and
//! rotation as doubles; the same widths here make echoed values print identically.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Patch;

/// Names of the built-in filters, in Lavalink's order (`/v4/info` lists them so).
pub const BUILTIN_FILTERS: [&str; 10] = [
    "volume",
    "equalizer",
    "karaoke",
    "timescale",
    "tremolo",
    "vibrato",
    "distortion",
    "rotation",
    "channelMix",
    "lowPass",
];

/// Number of equalizer bands (25 Hz … 16 kHz).
pub const EQUALIZER_BANDS: usize = 15;

/// A player's filter chain; `None` fields are not configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// Volume multiplier (documented range 0–5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<f32>,
    /// Equalizer bands as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equalizer: Option<Vec<Band>>,
    /// Karaoke (vocal removal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub karaoke: Option<Karaoke>,
    /// Speed, pitch and rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timescale: Option<Timescale>,
    /// Amplitude oscillation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tremolo: Option<Tremolo>,
    /// Pitch oscillation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vibrato: Option<Vibrato>,
    /// Waveshaping distortion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distortion: Option<Distortion>,
    /// Stereo panning rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Channel mixing matrix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_mix: Option<ChannelMix>,
    /// Smoothing low-pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_pass: Option<LowPass>,
    /// Plugin filters; Quaver has no filter plugins, so this stays empty and is omitted.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub plugin_filters: Map<String, Value>,
}

macro_rules! filter_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),+ }
        impl Default for $name {
            fn default() -> Self { $name { $($field: $default),+ } }
        }
    };
}

filter_struct!(
    /// One equalizer band: index 0–14 and gain (−0.25 … 1.0 documented).
    Band { /// Band index.
    band: i32 = 0, /// Gain; 1.0 when omitted, as in Lavalink.
    gain: f32 = 1.0 }
);
filter_struct!(
    /// Karaoke settings.
    Karaoke { /// Effect level.
    level: f32 = 1.0, /// Mono level.
    mono_level: f32 = 1.0, /// Filtered band in Hz.
    filter_band: f32 = 220.0, /// Band width.
    filter_width: f32 = 100.0 }
);
filter_struct!(
    /// Timescale settings (each 1.0 = unchanged).
    Timescale { /// Playback speed.
    speed: f64 = 1.0, /// Pitch.
    pitch: f64 = 1.0, /// Rate (speed and pitch).
    rate: f64 = 1.0 }
);
filter_struct!(
    /// Tremolo settings.
    Tremolo { /// Frequency in Hz (> 0).
    frequency: f32 = 2.0, /// Depth (0, 1].
    depth: f32 = 0.5 }
);
filter_struct!(
    /// Vibrato settings.
    Vibrato { /// Frequency in Hz (0, 14].
    frequency: f32 = 2.0, /// Depth (0, 1].
    depth: f32 = 0.5 }
);
filter_struct!(
    /// Rotation settings.
    Rotation { /// Rotation frequency in Hz.
    rotation_hz: f64 = 0.0 }
);
filter_struct!(
    /// Distortion settings.
    Distortion { /// Sine offset.
    sin_offset: f32 = 0.0, /// Sine scale.
    sin_scale: f32 = 1.0, /// Cosine offset.
    cos_offset: f32 = 0.0, /// Cosine scale.
    cos_scale: f32 = 1.0, /// Tangent offset.
    tan_offset: f32 = 0.0, /// Tangent scale.
    tan_scale: f32 = 1.0, /// Output offset.
    offset: f32 = 0.0, /// Output scale.
    scale: f32 = 1.0 }
);
filter_struct!(
    /// Channel mix matrix.
    ChannelMix { /// Left into left.
    left_to_left: f32 = 1.0, /// Left into right.
    left_to_right: f32 = 0.0, /// Right into left.
    right_to_left: f32 = 0.0, /// Right into right.
    right_to_right: f32 = 1.0 }
);
filter_struct!(
    /// Low-pass settings.
    LowPass { /// Smoothing factor; active above 1.0.
    smoothing: f32 = 20.0 }
);

/// The `filters` object of a PATCH body, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FiltersUpdate {
    #[serde(default)]
    volume: Patch<f32>,
    #[serde(default)]
    equalizer: Patch<Vec<Band>>,
    #[serde(default)]
    karaoke: Patch<Karaoke>,
    #[serde(default)]
    timescale: Patch<Timescale>,
    #[serde(default)]
    tremolo: Patch<Tremolo>,
    #[serde(default)]
    vibrato: Patch<Vibrato>,
    #[serde(default)]
    distortion: Patch<Distortion>,
    #[serde(default)]
    rotation: Patch<Rotation>,
    #[serde(default)]
    channel_mix: Patch<ChannelMix>,
    #[serde(default)]
    low_pass: Patch<LowPass>,
    #[serde(default)]
    plugin_filters: Map<String, Value>,
}

/// Why a filters object was refused, mapped to Lavalink's statuses by the REST layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiltersError {
    /// `volume` or `equalizer` was `null` (declared non-nullable): 400.
    #[error("Failed to read request body: field '{0}' must not be null")]
    NullNotAllowed(&'static str),
    /// Filters disabled in the config were used: 400.
    #[error("Following filters are disabled in the config: {}", .0.join(", "))]
    Disabled(Vec<String>),
    /// An equalizer band outside 0–14: Lavalink fails with 500 here.
    #[error("Index {0} out of bounds for length 15")]
    BandOutOfRange(i32),
}

impl FiltersUpdate {
    /// Names of the filters this update sets that `enabled` refuses, in Lavalink's order.
    pub fn disabled_filters(&self, enabled: impl Fn(&str) -> bool) -> Vec<String> {
        let present = [
            self.volume.is_present(),
            self.equalizer.is_present(),
            self.karaoke.is_present(),
            self.timescale.is_present(),
            self.tremolo.is_present(),
            self.vibrato.is_present(),
            self.distortion.is_present(),
            self.rotation.is_present(),
            self.channel_mix.is_present(),
            self.low_pass.is_present(),
        ];
        let builtin = BUILTIN_FILTERS
            .iter()
            .zip(present)
            .filter(|(name, set)| *set && !enabled(name))
            .map(|(name, _)| name.to_string());
        let plugins = self.plugin_filters.keys().filter(|k| !enabled(k)).cloned();
        builtin.chain(plugins).collect()
    }

    /// Rejects `null` for `volume` and `equalizer`, which the server declares
    /// non-nullable (a body error, reported before the player is touched).
    pub fn check_nulls(&self) -> Result<(), FiltersError> {
        self.volume
            .non_null("volume")
            .map_err(|_| FiltersError::NullNotAllowed("volume"))?;
        self.equalizer
            .non_null("equalizer")
            .map_err(|_| FiltersError::NullNotAllowed("equalizer"))
    }

    /// Checks the update against the config and builds the new chain.
    ///
    /// `enabled` answers whether a filter name is enabled; names it does not know
    /// (plugin filters) should answer true: Lavalink silently drops unknown plugin
    /// filters rather than refusing them.
    pub fn into_filters(self, enabled: impl Fn(&str) -> bool) -> Result<Filters, FiltersError> {
        self.volume
            .non_null("volume")
            .map_err(|_| FiltersError::NullNotAllowed("volume"))?;
        self.equalizer
            .non_null("equalizer")
            .map_err(|_| FiltersError::NullNotAllowed("equalizer"))?;
        let disabled = self.disabled_filters(enabled);
        if !disabled.is_empty() {
            return Err(FiltersError::Disabled(disabled));
        }
        let equalizer = self.equalizer.value().cloned();
        if let Some(bad) = equalizer
            .iter()
            .flatten()
            .find(|b| !(0..EQUALIZER_BANDS as i32).contains(&b.band))
        {
            return Err(FiltersError::BandOutOfRange(bad.band));
        }
        Ok(Filters {
            volume: self.volume.value().copied(),
            equalizer,
            karaoke: self.karaoke.value().copied(),
            timescale: self.timescale.value().copied(),
            tremolo: self.tremolo.value().copied(),
            vibrato: self.vibrato.value().copied(),
            distortion: self.distortion.value().copied(),
            rotation: self.rotation.value().copied(),
            channel_mix: self.channel_mix.value().copied(),
            low_pass: self.low_pass.value().copied(),
            // No filter plugins exist in Quaver: unknown plugin filters are dropped.
            plugin_filters: Map::new(),
        })
    }
}

impl Filters {
    /// Whether any configured filter changes the audio (Lavalink's `isEnabled` rules).
    /// An inactive chain lets Opus pass through without a decode/encode.
    pub fn is_active(&self) -> bool {
        self.volume.is_some_and(|v| v != 1.0)
            || self
                .equalizer
                .as_ref()
                .is_some_and(|b| b.iter().any(|b| b.gain != 0.0))
            || self.karaoke.is_some()
            || self.timescale.is_some_and(|t| t != Timescale::default())
            || self.tremolo.is_some_and(|t| t.depth != 0.0)
            || self.vibrato.is_some_and(|v| v.depth != 0.0)
            || self.distortion.is_some_and(|d| d != Distortion::default())
            || self.rotation.is_some_and(|r| r.rotation_hz != 0.0)
            || self.channel_mix.is_some_and(|c| c != ChannelMix::default())
            || self.low_pass.is_some_and(|l| l.smoothing > 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Filters, FiltersError> {
        serde_json::from_str::<FiltersUpdate>(json)
            .unwrap()
            .into_filters(|_| true)
    }

    #[test]
    fn echo_fills_every_sub_field() {
        let f = parse(r#"{"timescale":{"speed":1.2}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"timescale":{"speed":1.2,"pitch":1.0,"rate":1.0}}"#
        );
        assert!(f.is_active());
    }

    #[test]
    fn null_removes_and_empty_is_empty() {
        let f = parse(r#"{"karaoke":null,"lowPass":null}"#).unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), "{}");
        assert!(!f.is_active());
    }

    #[test]
    fn equalizer_gain_defaults_and_band_range() {
        let f = parse(r#"{"equalizer":[{"band":3}]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"equalizer":[{"band":3,"gain":1.0}]}"#
        );
        assert_eq!(
            parse(r#"{"equalizer":[{"band":15,"gain":0.1}]}"#),
            Err(FiltersError::BandOutOfRange(15))
        );
        assert_eq!(
            parse(r#"{"equalizer":[{"band":-1}]}"#),
            Err(FiltersError::BandOutOfRange(-1))
        );
    }

    #[test]
    fn non_nullable_and_disabled() {
        assert_eq!(
            parse(r#"{"volume":null}"#),
            Err(FiltersError::NullNotAllowed("volume"))
        );
        let u: FiltersUpdate =
            serde_json::from_str(r#"{"lowPass":{},"volume":1.0,"karaoke":null}"#).unwrap();
        let err = u
            .into_filters(|n| n != "lowPass" && n != "karaoke")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Following filters are disabled in the config: karaoke, lowPass"
        );
    }

    #[test]
    fn floats_echo_like_kotlin() {
        let f = parse(r#"{"volume":0.8,"channelMix":{"leftToRight":0.5}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"volume":0.8,"channelMix":{"leftToLeft":1.0,"leftToRight":0.5,"rightToLeft":0.0,"rightToRight":1.0}}"#
        );
    }
}
