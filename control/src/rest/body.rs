//! Request parsing with Lavalink's errors: strict JSON bodies and Spring-style query
//! and path values.

use axum::http::{header, HeaderMap, StatusCode, Uri};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::ids::GuildId;

/// Parses a JSON request body. Lavalink reads bodies only with an
/// `application/json` content type (415 otherwise) and answers 400 for a missing or
/// malformed body.
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        let shown = if content_type.is_empty() {
            "application/octet-stream"
        } else {
            content_type
        };
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type '{shown}' is not supported."),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Required request body is missing"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Failed to read request body: {e}")))
}

/// The first value of a query parameter, form-decoded (`+` is a space).
pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// Spring's boolean conversion for request parameters.
pub fn spring_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Failed to convert value of type 'java.lang.String' to required type 'boolean' for parameter '{name}'; Invalid boolean value [{value}]"
        ))),
    }
}

/// Parses a `{guildId}` path segment.
pub fn guild_id(raw: &str) -> Result<GuildId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Failed to convert value of type 'java.lang.String' to required type 'long'; For input string: \"{raw}\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_form_decoded() {
        let uri: Uri = "/v4/decodetrack?encodedTrack=QAAA%2Bx%3D%3D&x=a+b"
            .parse()
            .unwrap();
        assert_eq!(
            query_param(&uri, "encodedTrack").as_deref(),
            Some("QAAA+x==")
        );
        assert_eq!(query_param(&uri, "x").as_deref(), Some("a b"));
        assert_eq!(query_param(&uri, "missing"), None);
        let uri: Uri = "/x?a=%zz&b=%4".parse().unwrap();
        assert_eq!(query_param(&uri, "a").as_deref(), Some("%zz"));
        assert_eq!(query_param(&uri, "b").as_deref(), Some("%4"));
    }

    #[test]
    fn bodies_need_json_content_type() {
        let mut h = HeaderMap::new();
        assert_eq!(
            json::<serde_json::Value>(&h, b"{}").unwrap_err().status,
            415
        );
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(json::<serde_json::Value>(&h, b"{}").is_ok());
        assert_eq!(json::<serde_json::Value>(&h, b"").unwrap_err().status, 400);
        assert_eq!(json::<serde_json::Value>(&h, b"{").unwrap_err().status, 400);
    }

    #[test]
    fn spring_booleans() {
        assert!(spring_bool("noReplace", "TRUE").unwrap());
        assert!(!spring_bool("noReplace", "off").unwrap());
        assert_eq!(spring_bool("noReplace", "maybe").unwrap_err().status, 400);
    }
}
