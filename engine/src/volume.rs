//! Lavalink's player volume (0–1000), bit-exact with lavaplayer: an integer
//! multiplier from a tan curve up to 150 and a line above, applied to i16 samples
//! with truncation, and a linear ramp over 50 frames (about one second) on change.

/// Volume 100 is an exact bypass.
pub const UNITY: u16 = 100;

/// Frames over which a volume change ramps in.
pub const RAMP_FRAMES: u16 = 50;

/// lavaplayer's integer multiplier (per 10 000) for a volume.
pub fn multiplier(volume: u16) -> i64 {
    let v = volume.min(1000);
    if v <= 150 {
        let x = v as f32 * 0.0079f32;
        let t = (x as f64).tan() as f32;
        (10000.0f32 * t) as i64
    } else {
        24621 * v as i64 / 150
    }
}

/// Scales samples in place by a volume's multiplier.
pub fn apply(samples: &mut [i16], volume: u16) {
    if volume == UNITY {
        return;
    }
    let m = multiplier(volume);
    for s in samples {
        *s = (*s as i64 * m / 10000).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    }
}

/// A player's volume with its ramp state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Volume {
    from: u16,
    to: u16,
    step: u16,
}

impl Default for Volume {
    fn default() -> Self {
        Volume {
            from: UNITY,
            to: UNITY,
            step: RAMP_FRAMES,
        }
    }
}

impl Volume {
    /// Starts a ramp from the volume heard now towards `target`.
    pub fn set(&mut self, target: u16) {
        let target = target.min(1000);
        if target == self.to {
            return;
        }
        self.from = self.current();
        self.to = target;
        self.step = 0;
    }

    /// Jumps to the target without a ramp (a new track starts at the set volume).
    pub fn snap(&mut self) {
        self.from = self.to;
        self.step = RAMP_FRAMES;
    }

    /// The volume for the frame about to be produced.
    pub fn current(&self) -> u16 {
        if self.step >= RAMP_FRAMES {
            return self.to;
        }
        let (from, to) = (self.from as i32, self.to as i32);
        (from + (to - from) * self.step as i32 / RAMP_FRAMES as i32) as u16
    }

    /// Advances the ramp by one produced frame.
    pub fn advance(&mut self) {
        self.step = (self.step + 1).min(RAMP_FRAMES);
    }

    /// Whether frames pass through untouched (unity, no ramp in progress).
    pub fn is_unity(&self) -> bool {
        self.to == UNITY && self.step >= RAMP_FRAMES
    }

    /// The target volume.
    pub fn target(&self) -> u16 {
        self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_matches_lavaplayer_table() {
        for (v, m) in [
            (1, 79),
            (10, 791),
            (25, 2001),
            (50, 4169),
            (75, 6731),
            (90, 8612),
            (99, 9934),
            (110, 11829),
            (125, 15154),
            (150, 24621),
            (200, 32828),
            (300, 49242),
            (500, 82070),
            (1000, 164140),
        ] {
            assert_eq!(multiplier(v), m, "volume {v}");
        }
    }

    #[test]
    fn samples_truncate_toward_zero_and_clip() {
        let mut s = [10000i16, -3];
        apply(&mut s[..1], 75);
        apply(&mut s[1..], 50);
        assert_eq!(s, [6731, -1]);
        let mut loud = [20000i16, -20000];
        apply(&mut loud, 200);
        assert_eq!(loud, [i16::MAX, i16::MIN]);
        let mut same = [123i16, -456];
        apply(&mut same, 100);
        assert_eq!(same, [123, -456]);
    }

    #[test]
    fn ramp_reaches_target_after_fifty_frames() {
        let mut v = Volume::default();
        assert!(v.is_unity());
        v.set(200);
        assert!(!v.is_unity());
        let mut seen = vec![];
        for _ in 0..60 {
            seen.push(v.current());
            v.advance();
        }
        assert_eq!(seen[0], 100);
        assert_eq!(seen[25], 150);
        assert_eq!(seen[50], 200);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        v.set(100);
        for _ in 0..50 {
            v.advance();
        }
        assert!(v.is_unity());
    }
}
