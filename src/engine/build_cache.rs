//! The build-cache API, the `build_cache` tier's only interface to build cache: the request
//! path (`keep-storage` and an `until` filter, nothing else) and the reading of its answer.
//! This is the one file of the engine allowed to name a prune endpoint, and only this one
//! (the engine's source test checks it).

use std::fmt::Write as _;
use std::time::Duration;

use super::{BuildCacheOutcome, EngineError};

pub(super) const OPERATION: &str = "POST /build/prune";

/// The path and query for API version `version`: cache unused for longer than `keep_for`
/// (`until`, a Go duration in seconds), keeping `keep_storage` bytes (`keep-storage`, read by
/// API versions before 1.48; newer daemons read it as well for older clients).
pub(super) fn path(version: &str, keep_for: Duration, keep_storage: u64) -> String {
    let filters = format!(r#"{{"until":["{}s"]}}"#, keep_for.as_secs());
    format!(
        "/v{version}/build/prune?keep-storage={keep_storage}&filters={}",
        percent_encode(&filters)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The answer: `SpaceReclaimed` and `CachesDeleted` on 200; 404 and 501 mean the engine has no
/// such API (unsupported, nothing removed); anything else is an API error.
pub(super) fn outcome(
    status: u16,
    body: &[u8],
    engine: super::Speaker,
) -> Result<BuildCacheOutcome, EngineError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "CachesDeleted", default)]
        caches_deleted: Option<Vec<String>>,
        #[serde(rename = "SpaceReclaimed", default)]
        space_reclaimed: Option<i64>,
    }
    let message = || String::from_utf8_lossy(body).trim().to_string();
    match status {
        200 => {
            let answer: Answer =
                serde_json::from_slice(body).map_err(|error| EngineError::Protocol {
                    engine,
                    operation: OPERATION,
                    message: error.to_string(),
                })?;
            Ok(BuildCacheOutcome::Reclaimed {
                records: answer.caches_deleted.map_or(0, |records| {
                    u64::try_from(records.len()).unwrap_or(u64::MAX)
                }),
                reclaimed_bytes: answer
                    .space_reclaimed
                    .and_then(|bytes| u64::try_from(bytes).ok())
                    .unwrap_or(0),
            })
        }
        404 | 501 => Ok(BuildCacheOutcome::Unsupported(format!(
            "the engine answered {OPERATION} with HTTP {status} ({}): it has no build-cache API",
            message()
        ))),
        status => Err(EngineError::Api {
            engine,
            operation: OPERATION,
            status,
            message: message(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_holds_only_the_budget_and_the_until_filter() {
        let path = path("1.41", Duration::from_secs(7 * 24 * 3600), 1024);
        assert_eq!(
            path,
            "/v1.41/build/prune?keep-storage=1024&filters=%7B%22until%22%3A%5B%22604800s%22%5D%7D"
        );
        assert!(!path.contains("all="));
    }

    #[test]
    fn answers_are_read_as_reclaimed_unsupported_or_errors() {
        let body = br#"{"CachesDeleted":["a","b"],"SpaceReclaimed":4096}"#;
        assert_eq!(
            outcome(200, body, crate::engine::Speaker::Unknown).unwrap(),
            BuildCacheOutcome::Reclaimed {
                records: 2,
                reclaimed_bytes: 4096
            }
        );
        assert_eq!(
            outcome(
                200,
                br#"{"CachesDeleted":null,"SpaceReclaimed":0}"#,
                crate::engine::Speaker::Unknown
            )
            .unwrap(),
            BuildCacheOutcome::Reclaimed {
                records: 0,
                reclaimed_bytes: 0
            }
        );
        assert!(matches!(
            outcome(404, b"page not found", crate::engine::Speaker::Unknown).unwrap(),
            BuildCacheOutcome::Unsupported(_)
        ));
        assert!(matches!(
            outcome(500, b"boom", crate::engine::Speaker::Unknown),
            Err(EngineError::Api { status: 500, .. })
        ));
    }
}
