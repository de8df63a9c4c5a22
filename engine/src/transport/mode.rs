//! The transport encryption modes Discord still accepts, named as the voice gateway
//! names them in Ready and Select Protocol.

/// A transport encryption mode. Both use the `rtpsize` layout: the RTP header is the
/// AAD, and a 4-byte nonce counter follows the 16-byte tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionMode {
    /// `aead_aes256_gcm_rtpsize`: preferred, offered when Discord's hardware allows it.
    Aes256GcmRtpsize,
    /// `aead_xchacha20_poly1305_rtpsize`: always offered, so always supported.
    XChaCha20Poly1305Rtpsize,
}

impl EncryptionMode {
    /// Every supported mode, most preferred first.
    pub const PREFERENCE: [EncryptionMode; 2] = [
        EncryptionMode::Aes256GcmRtpsize,
        EncryptionMode::XChaCha20Poly1305Rtpsize,
    ];

    /// The mode's name on the voice gateway.
    pub const fn name(self) -> &'static str {
        match self {
            EncryptionMode::Aes256GcmRtpsize => "aead_aes256_gcm_rtpsize",
            EncryptionMode::XChaCha20Poly1305Rtpsize => "aead_xchacha20_poly1305_rtpsize",
        }
    }

    /// The mode with this gateway name; `None` for anything else, including the removed
    /// `xsalsa20_poly1305*` and plain `aead_aes256_gcm` modes.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::PREFERENCE.into_iter().find(|m| m.name() == name)
    }

    /// The best mode among those the server `offered`: AES-256-GCM if offered, else
    /// XChaCha20-Poly1305, else `None` (the connection cannot send audio).
    pub fn pick(offered: &[impl AsRef<str>]) -> Option<Self> {
        Self::PREFERENCE
            .into_iter()
            .find(|m| offered.iter().any(|o| o.as_ref() == m.name()))
    }
}

impl std::fmt::Display for EncryptionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::EncryptionMode::{self, *};

    #[test]
    fn names_round_trip() {
        for mode in EncryptionMode::PREFERENCE {
            assert_eq!(EncryptionMode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(Aes256GcmRtpsize.name(), "aead_aes256_gcm_rtpsize");
        assert_eq!(
            XChaCha20Poly1305Rtpsize.to_string(),
            "aead_xchacha20_poly1305_rtpsize"
        );
        assert_eq!(EncryptionMode::from_name("aead_aes256_gcm"), None);
        assert_eq!(EncryptionMode::from_name("xsalsa20_poly1305"), None);
    }

    #[test]
    fn pick_prefers_aes() {
        let offered = [
            "aead_xchacha20_poly1305_rtpsize",
            "xsalsa20_poly1305",
            "aead_aes256_gcm_rtpsize",
        ];
        assert_eq!(EncryptionMode::pick(&offered), Some(Aes256GcmRtpsize));
    }

    #[test]
    fn pick_falls_back_to_xchacha() {
        let offered = vec![
            "xsalsa20_poly1305_lite".to_string(),
            "aead_xchacha20_poly1305_rtpsize".to_string(),
        ];
        assert_eq!(
            EncryptionMode::pick(&offered),
            Some(XChaCha20Poly1305Rtpsize)
        );
    }

    #[test]
    fn pick_never_takes_a_removed_mode() {
        let offered = [
            "xsalsa20_poly1305",
            "xsalsa20_poly1305_suffix",
            "xsalsa20_poly1305_lite",
            "xsalsa20_poly1305_lite_rtpsize",
            "aead_aes256_gcm",
        ];
        assert_eq!(EncryptionMode::pick(&offered), None);
        assert_eq!(EncryptionMode::pick(&[] as &[&str]), None);
    }
}
