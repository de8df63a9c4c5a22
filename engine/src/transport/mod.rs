//! Discord's voice transport on the tick thread: RTP framing, the two `rtpsize` AEAD
//! modes, and [`VoiceOutput`], the [`PacketOutput`](crate::output::PacketOutput) that
//! seals each Opus packet and sends it on a connected non-blocking UDP socket.
//!
//! Audio frames are DAVE-encrypted first ([`dave`]) when the control plane has
//! installed a sender key, then transport-sealed.
//!
//! The control plane negotiates everything (gateway, IP discovery, the mode and the
//! key) and hands over a ready socket; this module only frames, seals and sends, with
//! no allocation, lock or blocking call per packet.

pub mod crypto;
pub mod dave;
pub mod mode;
pub mod rtp;
pub mod voice_output;

pub use crypto::{CryptoError, TransportCipher};
pub use dave::{DaveEncryptor, SenderKey};
pub use mode::EncryptionMode;
pub use rtp::RtpState;
pub use voice_output::{VoiceOutput, VoiceOutputStats, MAX_PACKET};
