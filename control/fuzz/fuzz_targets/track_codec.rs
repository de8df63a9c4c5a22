//! Feeds arbitrary bytes to the track blob decoder; whatever decodes must survive an
//! encode/decode round trip unchanged apart from the version, which becomes 3.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quaver_control::track::codec::{decode, encode, EncodeError, TrackBlob};

fuzz_target!(|data: &[u8]| {
    let Ok(track) = decode(data) else {
        return;
    };
    let blob = match encode(&track) {
        Ok(blob) => blob,
        // Raw NULs and four-byte sequences grow when re-encoded as modified UTF-8.
        Err(EncodeError::StringTooLong { .. }) => return,
        Err(err) => panic!("decoded track failed to encode: {err}"),
    };
    let again = decode(&blob).expect("re-encoded track decodes");
    assert_eq!(
        again,
        TrackBlob {
            version: 3,
            ..track
        }
    );
});
