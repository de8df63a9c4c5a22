//! Lavalink's `AudioLossCounter`: frames sent and nulled per wall-clock minute, and
//! whether a player's last minute is representative enough to report.
//!
//! Time is a parameter (epoch milliseconds), so the rules can be tested exactly.

use quaver_engine::audio::FRAMES_PER_MINUTE;

/// Expected frames per minute for a continuously playing player.
pub const EXPECTED_FRAMES_PER_MINUTE: i64 = FRAMES_PER_MINUTE as i64;

/// A gap between one track ending (or pause) and the next starting (or resume)
/// longer than this makes the last minute unrepresentative.
const ACCEPTABLE_SWITCH_MS: i64 = 100;

const MINUTE_MS: i64 = 60_000;

/// Per-player frame counters, windowed on wall-clock minutes.
#[derive(Debug, Clone, Default)]
pub struct AudioLossCounter {
    playing_since: Option<i64>,
    last_started: Option<i64>,
    last_ended: Option<i64>,
    current_minute: i64,
    current_sent: i64,
    current_nulled: i64,
    last_minute_sent: i64,
    last_minute_nulled: i64,
}

impl AudioLossCounter {
    /// A frame was sent at `now_ms`.
    pub fn on_sent(&mut self, now_ms: i64) {
        self.roll(now_ms);
        self.current_sent += 1;
    }

    /// A frame was due at `now_ms` but no audio was ready.
    pub fn on_nulled(&mut self, now_ms: i64) {
        self.roll(now_ms);
        self.current_nulled += 1;
    }

    /// Counts frames sent and nulled since the previous call, observed at `now_ms`
    /// (the engine counts frames; the control plane samples the counts).
    pub fn add(&mut self, now_ms: i64, sent: i64, nulled: i64) {
        self.roll(now_ms);
        self.current_sent += sent;
        self.current_nulled += nulled;
    }

    /// A track started or playback resumed.
    pub fn on_start(&mut self, now_ms: i64) {
        let gap_too_long = self
            .last_ended
            .is_some_and(|end| now_ms - end > ACCEPTABLE_SWITCH_MS);
        self.last_started = Some(now_ms);
        if gap_too_long || self.playing_since.is_none() {
            self.playing_since = Some(now_ms);
            self.last_ended = None;
        }
    }

    /// A track ended or playback paused.
    pub fn on_end(&mut self, now_ms: i64) {
        self.last_ended = Some(now_ms);
    }

    /// Frames sent in the last complete minute.
    pub fn last_minute_sent(&self) -> i64 {
        self.last_minute_sent
    }

    /// Frames nulled in the last complete minute.
    pub fn last_minute_nulled(&self) -> i64 {
        self.last_minute_nulled
    }

    /// Whether the last minute may be averaged into `frameStats`: playback has been
    /// continuous (track switches under 100 ms) since before the last full minute began.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        if let (Some(start), Some(end)) = (self.last_started, self.last_ended) {
            if start - end > ACCEPTABLE_SWITCH_MS {
                return false;
            }
        }
        let last_minute_start = (now_ms.div_euclid(MINUTE_MS) - 1) * MINUTE_MS;
        self.playing_since
            .is_some_and(|since| since < last_minute_start)
    }

    fn roll(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if minute != self.current_minute {
            // Like Lavalink, the "last minute" is the last minute in which a frame was
            // counted; after an idle minute it still holds the older figures.
            self.last_minute_sent = self.current_sent;
            self.last_minute_nulled = self.current_nulled;
            self.current_sent = 0;
            self.current_nulled = 0;
            self.current_minute = minute;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_minutes_and_needs_a_full_minute() {
        let mut c = AudioLossCounter::default();
        let t0 = 10 * MINUTE_MS + 500;
        c.on_start(t0);
        assert!(!c.is_usable(t0 + 1_000));
        // One frame every 20 ms for two and a half minutes, every 10th nulled.
        let mut t = t0;
        let mut n = 0;
        while t < t0 + 150_000 {
            if n % 10 == 0 {
                c.on_nulled(t)
            } else {
                c.on_sent(t)
            }
            t += 20;
            n += 1;
        }
        // The minute [11:00, 12:00) is complete and fully played.
        assert_eq!(
            c.last_minute_sent() + c.last_minute_nulled(),
            EXPECTED_FRAMES_PER_MINUTE
        );
        assert_eq!(c.last_minute_nulled(), 300);
        assert!(c.is_usable(t));
    }

    #[test]
    fn long_gap_between_tracks_is_unusable_until_playing_long_enough_again() {
        let mut c = AudioLossCounter::default();
        c.on_start(0);
        c.on_end(5 * MINUTE_MS);
        c.on_start(5 * MINUTE_MS + 50); // quick switch: still continuous
        assert!(c.is_usable(5 * MINUTE_MS + 100));
        c.on_end(6 * MINUTE_MS);
        // An ended player still reads as usable: the caller counts only playing players.
        assert!(c.is_usable(6 * MINUTE_MS + 1_000));
        c.on_start(6 * MINUTE_MS + 5_000); // 5 s gap: playing_since resets
        assert!(!c.is_usable(6 * MINUTE_MS + 6_000));
        assert!(c.is_usable(8 * MINUTE_MS + 6_000));
    }
}
