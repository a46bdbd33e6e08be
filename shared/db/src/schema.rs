//! Diesel table definitions, matching `migrations/` (the output of `diesel print-schema`, kept by hand so the build
//! does not need `diesel_cli`).
#![allow(missing_docs)]

diesel::table! {
    jobs (id) {
        id -> Uuid,
        kind -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        result -> Nullable<Jsonb>,
        error -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        not_before -> Nullable<Timestamptz>,
        lease_expires_at -> Nullable<Timestamptz>,
        progress -> Nullable<Jsonb>,
        tenant_id -> Uuid,
        cancel_requested_at -> Nullable<Timestamptz>,
        last_dispatched_at -> Nullable<Timestamptz>,
        redispatches -> Int4,
        dispatch_skipped_at -> Nullable<Timestamptz>,
        traceparent -> Nullable<Text>,
        tracestate -> Nullable<Text>,
        timeout_ms -> Nullable<Int4>,
        priority -> Int2,
        queue -> Text,
        history -> Nullable<Jsonb>,
        callback_url -> Nullable<Text>,
        callback_state -> Nullable<Text>,
        callback_attempts -> Int4,
        callback_last_error -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        aggregate_id -> Uuid,
        topic -> Text,
        key -> Text,
        payload -> Jsonb,
        headers -> Jsonb,
        created_at -> Timestamptz,
        available_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        dead_at -> Nullable<Timestamptz>,
        priority -> Int2,
    }
}

diesel::table! {
    job_effects (id) {
        id -> Int8,
        job_id -> Uuid,
        attempt -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        is_admin -> Bool,
        callback_secret -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        prefix -> Text,
        key_hash -> Bytea,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    job_kinds (kind) {
        kind -> Text,
        first_seen_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        registered_at -> Nullable<Timestamptz>,
        queue -> Nullable<Text>,
    }
}

diesel::table! {
    queues (name) {
        name -> Text,
        created_at -> Timestamptz,
        paused_at -> Nullable<Timestamptz>,
        resumed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, key) {
        tenant_id -> Uuid,
        key -> Text,
        fingerprint -> Bytea,
        job_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        batch_job_ids -> Nullable<Array<Uuid>>,
    }
}

diesel::table! {
    outbox_backlog_samples (id) {
        id -> Int8,
        at -> Timestamptz,
        unpublished -> Int8,
        oldest_age_secs -> Float8,
    }
}

diesel::table! {
    consumer_lag (group_id, topic, partition) {
        group_id -> Text,
        topic -> Text,
        partition -> Int4,
        lag -> Int8,
        reported_at -> Timestamptz,
    }
}

diesel::table! {
    callbacks (id) {
        id -> Int8,
        job_id -> Uuid,
        url -> Text,
        created_at -> Timestamptz,
        available_at -> Timestamptz,
        attempts -> Int4,
        leased_until -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    job_tombstones (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        expired_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(jobs -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    jobs,
    outbox,
    job_effects,
    tenants,
    api_keys,
    job_kinds,
    idempotency_keys,
    outbox_backlog_samples,
    consumer_lag,
    job_tombstones,
    queues,
    callbacks
);
