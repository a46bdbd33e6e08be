//! `POST /v1/jobs` bodies: any bytes are refused (4xx) or accepted, never a panic; an accepted request always
//! satisfies the documented limits.
#![no_main]

use ackbox_api::routes::{valid_kind, SubmitJob};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(req) = SubmitJob::from_json(body) else { return };
    if let Ok(job) = req.validate() {
        assert!(valid_kind(&job.kind));
        assert!((1..=100).contains(&job.max_attempts));
        // What we accept, Postgres can store and give back: no NUL, finite numbers.
        let text = job.payload.to_string();
        assert!(!text.contains("\\u0000"));
    }
});
