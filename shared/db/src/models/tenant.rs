//! The `tenants` and `api_keys` tables: tenants own jobs; API keys authenticate requests as a tenant.
//!
//! A key looks like `ackbox_<prefix>_<secret>`. The prefix (12 hex digits) is not secret: it finds the row. Only a
//! SHA-256 of the whole key is stored, and it is compared in constant time. The key itself is shown once.

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::schema::{api_keys, tenants};

/// A tenant row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct Tenant {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Its keys open the dashboard and its data API (every tenant's jobs, the outbox, consumer lag).
    pub is_admin: bool,
}

/// An API key row (never the key itself).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// Public prefix.
    pub prefix: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Length of a key's public prefix, in hex digits.
pub const PREFIX_LEN: usize = 12;
/// Longest string that can be a key; anything longer is refused without a lookup.
pub const MAX_KEY_LEN: usize = 96;

/// SHA-256 of a key.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The prefix of a well-formed key, or `None`.
pub fn key_prefix(key: &str) -> Option<&str> {
    if key.len() > MAX_KEY_LEN {
        return None;
    }
    let rest = key.strip_prefix("ackbox_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (prefix.len() == PREFIX_LEN && hex(prefix) && !secret.is_empty() && hex(secret)).then_some(prefix)
}

/// True when `key` hashes to `stored`, compared in constant time.
pub fn key_matches(key: &str, stored: &[u8]) -> bool {
    hash_key(key).ct_eq(stored).into()
}

/// Finds or creates the tenant called `name`.
pub fn ensure_tenant(conn: &mut PgConnection, name: &str) -> QueryResult<Tenant> {
    diesel::insert_into(tenants::table)
        .values((tenants::id.eq(Uuid::now_v7()), tenants::name.eq(name)))
        .on_conflict(tenants::name)
        .do_nothing()
        .execute(conn)?;
    tenants::table.filter(tenants::name.eq(name)).select(Tenant::as_select()).first(conn)
}

/// Makes `tenant_id` an admin tenant (or not).
pub fn set_admin(conn: &mut PgConnection, tenant_id: Uuid, admin: bool) -> QueryResult<()> {
    diesel::update(tenants::table.find(tenant_id)).set(tenants::is_admin.eq(admin)).execute(conn).map(|_| ())
}

/// Whether `tenant_id` is an admin tenant (false for an unknown id).
pub fn is_admin(conn: &mut PgConnection, tenant_id: Uuid) -> QueryResult<bool> {
    Ok(tenants::table.find(tenant_id).select(tenants::is_admin).first(conn).optional()?.unwrap_or(false))
}

/// Creates a key for `tenant_id` and returns the row and the key, which is never stored and cannot be shown again.
pub fn create_key(conn: &mut PgConnection, tenant_id: Uuid) -> QueryResult<(ApiKey, String)> {
    let mut prefix = [0u8; PREFIX_LEN / 2];
    let mut secret = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut prefix);
    rand::thread_rng().fill_bytes(&mut secret);
    let prefix = hex::encode(prefix);
    let key = format!("ackbox_{prefix}_{}", hex::encode(secret));
    let row = diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(Uuid::now_v7()),
            api_keys::tenant_id.eq(tenant_id),
            api_keys::prefix.eq(&prefix),
            api_keys::key_hash.eq(hash_key(&key)),
        ))
        .returning(ApiKey::as_returning())
        .get_result(conn)?;
    Ok((row, key))
}

/// What [`import_key`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// The key was stored.
    Created,
    /// The same key was already there, for this tenant: nothing changed (a bootstrap run twice).
    AlreadyPresent,
}

/// Why [`import_key`] refused a key.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not `ackbox_<12 hex>_<hex>`, or too long.
    #[error("the key is not an Ackbox key (ackbox_<12 hex digits>_<hex digits>, at most {MAX_KEY_LEN} characters)")]
    Malformed,
    /// Another key, or this key for another tenant, holds its prefix.
    #[error("a different key, or this key for another tenant, already uses the prefix {0}")]
    Conflict(String),
    /// The database refused.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Stores a key chosen by the operator (a bootstrap key from a Secret) for `tenant_id`, once: running it again with
/// the same key changes nothing. Only its hash is stored, as for [`create_key`].
pub fn import_key(conn: &mut PgConnection, tenant_id: Uuid, key: &str) -> Result<Imported, ImportError> {
    let prefix = key_prefix(key).ok_or(ImportError::Malformed)?.to_string();
    let inserted = diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(Uuid::now_v7()),
            api_keys::tenant_id.eq(tenant_id),
            api_keys::prefix.eq(&prefix),
            api_keys::key_hash.eq(hash_key(key)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted == 1 {
        return Ok(Imported::Created);
    }
    let existing: Option<ApiKey> =
        api_keys::table.filter(api_keys::prefix.eq(&prefix)).select(ApiKey::as_select()).first(conn).optional()?;
    match existing {
        Some(row) if row.tenant_id == tenant_id && key_matches(key, &row.key_hash) => Ok(Imported::AlreadyPresent),
        _ => Err(ImportError::Conflict(prefix)),
    }
}

/// The tenant a key authenticates, or `None` for a malformed, unknown or revoked key.
pub fn authenticate(conn: &mut PgConnection, key: &str) -> QueryResult<Option<Uuid>> {
    let Some(prefix) = key_prefix(key) else { return Ok(None) };
    let row: Option<ApiKey> = api_keys::table
        .filter(api_keys::prefix.eq(prefix))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?;
    Ok(row.filter(|r| key_matches(key, &r.key_hash)).map(|r| r.tenant_id))
}

/// Keys with their tenant names and admin flags, newest first.
pub fn list_keys(conn: &mut PgConnection) -> QueryResult<Vec<(ApiKey, String, bool)>> {
    api_keys::table
        .inner_join(tenants::table)
        .order(api_keys::created_at.desc())
        .select((ApiKey::as_select(), tenants::name, tenants::is_admin))
        .load(conn)
}

/// Revokes the key with this id or prefix; returns whether a live key was revoked. Effective at once: the API's
/// key cache is invalidated by the `ackbox_keys` notification the trigger sends.
pub fn revoke_key(conn: &mut PgConnection, id_or_prefix: &str) -> QueryResult<bool> {
    let target = api_keys::table.filter(api_keys::revoked_at.is_null());
    let n = match Uuid::try_parse(id_or_prefix) {
        Ok(id) => diesel::update(target.filter(api_keys::id.eq(id))).set(api_keys::revoked_at.eq(now)).execute(conn)?,
        Err(_) => diesel::update(target.filter(api_keys::prefix.eq(id_or_prefix)))
            .set(api_keys::revoked_at.eq(now))
            .execute(conn)?,
    };
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_strictly_and_compare_by_hash() {
        let key = "ackbox_0123456789ab_deadbeef";
        assert_eq!(key_prefix(key), Some("0123456789ab"));
        for bad in [
            "",
            "ackbox_",
            "ackbox_0123456789ab_",
            "ackbox_0123456789a_beef",
            "other_0123456789ab_beef",
            "ackbox_0123456789ab_zz",
        ] {
            assert_eq!(key_prefix(bad), None, "{bad:?}");
        }
        assert_eq!(key_prefix(&format!("ackbox_0123456789ab_{}", "a".repeat(200))), None);
        assert!(key_matches(key, &hash_key(key)));
        assert!(!key_matches(key, &hash_key("ackbox_0123456789ab_deadbeee")));
    }
}
