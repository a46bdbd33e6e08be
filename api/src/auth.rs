//! Bearer-key authentication and the per-tenant rate limit, as one extractor: a handler that takes a [`Tenant`]
//! runs only for an authenticated tenant under its limit, before its body is even read, so a refused request writes
//! nothing.
//!
//! Keys are cached by their SHA-256 so most requests cost no database round trip. The cache is dropped on every
//! `ackbox_keys` notification (any key created or revoked) and bypassed while the listener is disconnected, so a
//! revoked key stops working at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated tenant of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tenant(pub Uuid);

/// Key hash → (tenant, cached at).
///
/// A request that read a key from the database before a revocation must not put it back into the cache after the
/// revocation's notification cleared it. Every clear bumps a generation counter; a lookup notes the generation
/// before it reads the database, and its result is cached only if no clear happened meanwhile.
pub struct KeyCache {
    /// The generation, and key hash → (tenant, cached at), under one lock so a clear and a put never interleave.
    entries: Mutex<(u64, Entries)>,
    ttl: Duration,
    /// True while the listener is connected; otherwise invalidations could be missed, so the cache is not used.
    pub live: AtomicBool,
}

type Entries = HashMap<Vec<u8>, (Uuid, Instant)>;

/// The cache's generation when a database lookup started (see [`KeyCache`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(u64);

impl KeyCache {
    /// An empty cache whose entries live at most `ttl` (a backstop; invalidation is by notification).
    pub fn new(ttl: Duration) -> Self {
        Self { entries: Mutex::new((0, HashMap::new())), ttl, live: AtomicBool::new(false) }
    }

    /// The cached tenant of a key, or the generation to hand to [`KeyCache::put`] after reading the database.
    pub fn get(&self, hash: &[u8]) -> Result<Uuid, Generation> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let hit = entries.1.get(hash).filter(|(_, at)| at.elapsed() < self.ttl).map(|(t, _)| *t);
        match hit {
            Some(t) if self.live.load(Ordering::SeqCst) => Ok(t),
            _ => Err(Generation(entries.0)),
        }
    }

    /// Caches a key read from the database at `seen`, unless the cache was cleared since (the key may have been
    /// revoked after the read) or invalidations cannot be heard right now.
    pub fn put(&self, hash: Vec<u8>, tenant: Uuid, seen: Generation) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.live.load(Ordering::SeqCst) && entries.0 == seen.0 {
            entries.1.insert(hash, (tenant, Instant::now()));
        }
    }

    /// Forgets every key (a key changed somewhere, or the listener reconnected) and starts a new generation.
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.0 += 1;
        entries.1.clear();
    }
}

/// Per-tenant token buckets: one tenant's burst never consumes another's budget.
pub struct TenantLimiter {
    limiter: DefaultKeyedRateLimiter<Uuid>,
}

impl TenantLimiter {
    /// `per_second` sustained with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = std::num::NonZeroU32::new(per_second.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new(burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        Self { limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)) }
    }

    /// `Ok` under the limit, else the seconds to wait.
    pub fn check(&self, tenant: Uuid) -> Result<(), u64> {
        self.limiter.check_key(&tenant).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    // A key in the URL ends up in proxy and access logs: refuse it outright, even alongside a header.
    if req.query_string().to_ascii_lowercase().contains("ackbox_") || req.query_string().contains("api_key") {
        return Err(ApiError::BadRequest("API keys are accepted only in the Authorization header".into()));
    }
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing Authorization: Bearer <key>"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, key) = value.split_once(' ').ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(ApiError::Unauthorized("expected Authorization: Bearer <key>"));
    }
    Ok(key.trim().to_string())
}

async fn authenticate(req: HttpRequest) -> Result<Tenant, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or(ApiError::Internal("app state missing".into()))?.clone();
    let key = bearer(&req)?;
    if ackbox_db::models::tenant::key_prefix(&key).is_none() {
        return Err(ApiError::Unauthorized("unknown or revoked API key"));
    }
    let hash = ackbox_db::models::tenant::hash_key(&key);
    let tenant = match state.keys.get(&hash) {
        Ok(t) => t,
        Err(generation) => {
            let found = state.with_conn(move |c| Ok(ackbox_db::models::tenant::authenticate(c, &key)?)).await?;
            let t = found.ok_or(ApiError::Unauthorized("unknown or revoked API key"))?;
            state.keys.put(hash, t, generation);
            t
        }
    };
    state.limiter.check(tenant).map_err(ApiError::TooManyRequests)?;
    Ok(Tenant(tenant))
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// An authenticated tenant that is an admin (the dashboard's data): a valid non-admin key is 403.
#[derive(Clone, Copy, Debug)]
pub struct Admin(pub Uuid);

async fn authenticate_admin(req: HttpRequest) -> Result<Admin, ApiError> {
    let Tenant(id) = authenticate(req.clone()).await?;
    let state = req.app_data::<web::Data<AppState>>().ok_or(ApiError::Internal("app state missing".into()))?.clone();
    // Not cached: admin pages are few and slow-refreshing, and demoting a tenant must take effect at once.
    if state.with_conn(move |c| Ok(ackbox_db::models::tenant::is_admin(c, id)?)).await? {
        Ok(Admin(id))
    } else {
        Err(ApiError::Forbidden("this key's tenant is not an admin (ackbox keys create --tenant NAME --admin)"))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        Box::pin(authenticate_admin(req.clone()))
    }
}

/// Shared handle, so the listener thread can flip liveness and clear the cache.
pub type SharedKeys = Arc<KeyCache>;

#[cfg(test)]
mod tests {
    use super::*;

    fn live_cache() -> KeyCache {
        let cache = KeyCache::new(Duration::from_secs(60));
        cache.live.store(true, Ordering::SeqCst);
        cache
    }

    /// The interleaving that used to re-cache a revoked key: request A misses and reads the key (still valid) from
    /// the database; the key is revoked and the notification clears the cache; A then caches what it read.
    #[test]
    fn a_key_read_before_a_revocation_is_not_cached_after_it() {
        let cache = live_cache();
        let (hash, tenant) = (b"key-hash".to_vec(), Uuid::now_v7());
        let seen = cache.get(&hash).expect_err("a miss");
        cache.clear(); // the revocation's notification arrives while A reads the database
        cache.put(hash.clone(), tenant, seen);
        assert!(cache.get(&hash).is_err(), "the revoked key must not be served from the cache");

        // A lookup that started after the clear is cached as usual.
        let seen = cache.get(&hash).expect_err("a miss");
        cache.put(hash.clone(), tenant, seen);
        assert_eq!(cache.get(&hash), Ok(tenant));
    }

    #[test]
    fn nothing_is_cached_or_served_while_invalidations_cannot_be_heard() {
        let cache = live_cache();
        let hash = b"h".to_vec();
        let seen = cache.get(&hash).expect_err("miss");
        cache.put(hash.clone(), Uuid::now_v7(), seen);
        cache.live.store(false, Ordering::SeqCst);
        assert!(cache.get(&hash).is_err());
    }
}
