//! Cross-process invalidation notices (PostgreSQL `LISTEN licentia_invalidate`, sent by the
//! triggers of migration m0012 when a change commits). A cache that serves from memory is
//! correct across processes only while it hears these: [`listen`] reports when the feed is
//! live and when it was lost, so that a cache drops everything and stops serving until the
//! feed is back.
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;

/// The channel the triggers notify.
pub const CHANNEL: &str = "licentia_invalidate";

/// What the feed tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Listening now: whatever was cached before may have missed a notice.
    Live,
    /// The feed was lost (connection failed or closed): nothing cached may be trusted until
    /// the next [`Notice::Live`].
    Lost,
    /// The API key with this hash changed (revoked, deleted, expiry or scopes).
    ApiKey(String),
    /// The product catalog changed.
    Products,
    /// A notice this version does not know: treat as a change to everything.
    Other(String),
}

impl Notice {
    fn parse(payload: &str) -> Self {
        match payload.split_once(':') {
            Some(("api_key", hash)) => Notice::ApiKey(hash.to_owned()),
            _ if payload == "products" => Notice::Products,
            _ => Notice::Other(payload.to_owned()),
        }
    }
}

/// Listens on `url` (a PostgreSQL primary) for as long as the process runs, reconnecting
/// after a second when the connection fails, and hands every notice to `on`. Never returns.
pub async fn listen(url: String, on: impl Fn(Notice) + Send + 'static) {
    let url = crate::preflight::connect_url(&url).into_owned();
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    on(Notice::Live);
                    while let Ok(Some(n)) = listener.try_recv().await {
                        on(Notice::parse(n.payload()));
                    }
                    tracing::warn!(
                        "the invalidation feed was lost; caches are off until it is back"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for invalidation notices"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect for invalidation notices"),
        }
        on(Notice::Lost);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(Notice::parse("api_key:abc"), Notice::ApiKey("abc".into()));
        assert_eq!(Notice::parse("products"), Notice::Products);
        assert_eq!(Notice::parse("x"), Notice::Other("x".into()));
    }
}
