//! The worker decodes whatever the topic holds: any bytes must decode or be refused, never panic, and whatever
//! decodes must encode back to the same envelope (a record of one) or the same dispatches (a packed record).
#![no_main]

use ackbox_types::envelope::{decode_record, encode_packed, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(Some(data)) {
        let again = serde_json::to_vec(&env.to_json()).expect("an envelope serializes");
        let back = Envelope::decode(Some(&again)).expect("an encoded envelope decodes");
        assert_eq!(back, env);
    }
    if let Ok(dispatches) = decode_record(Some(data)) {
        assert!(!dispatches.is_empty(), "a record that decodes dispatches something");
        let payloads: Vec<serde_json::Value> = dispatches.iter().map(|d| d.envelope.to_json()).collect();
        let again = encode_packed(payloads.iter().zip(&dispatches).map(|(p, d)| (p, d.trace.clone())));
        assert_eq!(decode_record(Some(&again)).expect("an encoded record decodes"), dispatches);
    }
});
