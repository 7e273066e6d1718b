//! The service's Ed25519 signing key, decrypted once and kept in memory for the hot path.
//!
//! The keys live in the `signing_keys` table, their secrets sealed with the encryption key.
//! The first process to start on an empty database generates the first key; the others
//! find it there (the table holds at most one `current` key). After a rotation — by
//! `POST /v1/signing-keys/rotate` in any process — every other process picks the new key up
//! within [`REFRESH_EVERY`], checked lazily on use and at once when a request names a key
//! this process does not know yet. Until then it keeps signing with the retired key, which
//! stays listed and verifiable.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use licentia_domain::signing::KeyPair;
use licentia_persistence::repo::signing_keys::{self, NewKey, StoredKey};
use licentia_persistence::{ConnectionTrait, Db, PersistenceError};
use rand::RngCore;

use licentia_app::crypto;

/// How long a process signs with its in-memory key before checking for a rotation.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// Why the key could not be loaded or replaced.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
    #[error(
        "signing key {0} cannot be decrypted: LICENTIA_ENCRYPTION_KEY is not the key it was stored with"
    )]
    Decrypt(String),
    #[error("signing key {0} is stored with a public key that does not match its secret")]
    Mismatch(String),
    #[error("signing key: {0}")]
    Seal(String),
}

/// A freshly generated key and its sealed form, ready to store.
pub fn generate(encryption_key: &[u8; 32]) -> Result<(KeyPair, NewKey), KeyringError> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let pair = KeyPair::from_secret(&secret);
    let sealed = crypto::seal(encryption_key, &secret).map_err(KeyringError::Seal)?;
    let new = NewKey {
        key_id: pair.key_id().to_owned(),
        public_key: pair.public_key(),
        private_key_enc: sealed,
    };
    Ok((pair, new))
}

fn unseal(encryption_key: &[u8; 32], stored: &StoredKey) -> Result<KeyPair, KeyringError> {
    let secret: [u8; 32] = crypto::open(encryption_key, &stored.private_key_enc)
        .and_then(|plain| plain.try_into().ok())
        .ok_or_else(|| KeyringError::Decrypt(stored.key_id.clone()))?;
    let pair = KeyPair::from_secret(&secret);
    if pair.public_key() != stored.public_key || pair.key_id() != stored.key_id {
        return Err(KeyringError::Mismatch(stored.key_id.clone()));
    }
    Ok(pair)
}

/// The current signing key of this process.
pub struct Keyring {
    db: Db,
    encryption_key: Arc<[u8; 32]>,
    current: RwLock<Arc<KeyPair>>,
    started: Instant,
    /// Milliseconds after `started` of the last look at the database.
    checked_at_ms: AtomicU64,
    refreshing: AtomicBool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_id", &self.current().key_id())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the current key, generating and storing the first one on an empty database.
    pub async fn load(db: Db, encryption_key: Arc<[u8; 32]>) -> Result<Keyring, KeyringError> {
        let pair = load_or_create(db.conn(), &encryption_key).await?;
        Ok(Keyring {
            db,
            encryption_key,
            current: RwLock::new(Arc::new(pair)),
            started: Instant::now(),
            checked_at_ms: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The key to sign with now. When the last check is older than [`REFRESH_EVERY`], a
    /// background task looks for a rotation; this call never waits for the database.
    pub fn signer(self: &Arc<Self>) -> Arc<KeyPair> {
        let stale = self
            .now_ms()
            .saturating_sub(self.checked_at_ms.load(Ordering::Relaxed))
            >= u64::try_from(REFRESH_EVERY.as_millis()).unwrap_or(u64::MAX);
        if stale {
            self.refresh_in_background();
        }
        self.current()
    }

    /// The in-memory key, without any check.
    pub fn current(&self) -> Arc<KeyPair> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Starts a refresh unless one is running; errors are logged and retried next time.
    pub fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = me.refresh().await {
                tracing::warn!(error = %e, "could not refresh the signing key");
            }
            me.refreshing.store(false, Ordering::Release);
        });
    }

    /// Reads the current key from the database and switches to it if it changed.
    pub async fn refresh(&self) -> Result<(), KeyringError> {
        // Counted as a check even if it fails, so an unreachable database is asked again only
        // after another REFRESH_EVERY, not on every request.
        self.checked_at_ms.store(self.now_ms(), Ordering::Relaxed);
        let stored = signing_keys::current(self.db.conn()).await?;
        match stored {
            Some(stored) if stored.key_id != self.current().key_id() => {
                let pair = unseal(&self.encryption_key, &stored)?;
                tracing::info!(key_id = %pair.key_id(), "switched to the rotated signing key");
                self.install(pair);
            }
            // Unchanged, or (after a manual database edit) no current key: keep signing.
            _ => {}
        }
        Ok(())
    }

    /// Makes `pair` the key this process signs with (after this process rotated).
    pub fn install(&self, pair: KeyPair) {
        let pair = Arc::new(pair);
        match self.current.write() {
            Ok(mut guard) => *guard = pair,
            Err(poisoned) => *poisoned.into_inner() = pair,
        }
        self.checked_at_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The key that seals secrets at rest.
    pub fn encryption_key(&self) -> &[u8; 32] {
        &self.encryption_key
    }
}

/// The current key, created first if there is none. Several processes starting at once
/// each try to store their own candidate; the unique index keeps one, and all read it back.
async fn load_or_create(
    db: &impl ConnectionTrait,
    encryption_key: &[u8; 32],
) -> Result<KeyPair, KeyringError> {
    if let Some(stored) = signing_keys::current(db).await? {
        return unseal(encryption_key, &stored);
    }
    let (candidate, new) = generate(encryption_key)?;
    if signing_keys::insert_if_none(db, new).await? {
        tracing::info!(key_id = %candidate.key_id(), "generated the first signing key");
        return Ok(candidate);
    }
    let stored = signing_keys::current(db)
        .await?
        .ok_or(PersistenceError::NotFound)?;
    unseal(encryption_key, &stored)
}
