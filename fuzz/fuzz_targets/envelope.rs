//! The worker decodes whatever the topic holds: any bytes must decode or be refused, never panic, and whatever
//! decodes must encode back to the same envelope.
#![no_main]

use ackbox_types::envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(Some(data)) {
        let again = serde_json::to_vec(&env.to_json()).expect("an envelope serializes");
        let back = Envelope::decode(Some(&again)).expect("an encoded envelope decodes");
        assert_eq!(back, env);
    }
});
