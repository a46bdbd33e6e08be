//! The Idempotency-Key fingerprint: 32 bytes, and the same for equivalent bodies (the same JSON re-serialized,
//! object keys in another order), so a retried request is recognised however its client formats it.
#![no_main]

use ackbox_api::routes::{fingerprint, SubmitJob};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(Ok(job)) = SubmitJob::from_json(body.clone()).map(SubmitJob::validate) else { return };
    let fp = fingerprint(&job);
    assert_eq!(fp.len(), 32);
    // Re-serialized (pretty, so whitespace differs) and parsed again: the same fingerprint.
    let pretty = serde_json::to_string_pretty(&body).expect("serialize");
    let again: serde_json::Value = serde_json::from_str(&pretty).expect("parse");
    let job2 = SubmitJob::from_json(again).and_then(SubmitJob::validate).expect("still valid");
    assert_eq!(fingerprint(&job2), fp);
    // An explicit default is the same request as an absent one.
    if body.get("max_attempts").is_none() {
        let mut explicit = body.clone();
        explicit["max_attempts"] = 3.into();
        let job3 = SubmitJob::from_json(explicit).and_then(SubmitJob::validate).expect("valid");
        assert_eq!(fingerprint(&job3), fp);
    }
});
