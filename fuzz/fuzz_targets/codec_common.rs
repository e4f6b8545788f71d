//! The codec targets' shared harness (`codec_bincode`, `codec_json`): both envelopes
//! (requests to a plugin, responses to the host) decode or fail with an error, never a
//! panic or an unbounded allocation; what decodes encodes again and decodes; a response's
//! encoding is stable. (A request's is not, by design: tarpc sends its deadline as the time
//! left from now, so every encoding differs — the fuzzer's first finding, a harness error.)

use stowage_protocol::Codec;
use stowage_protocol::service::{StowagePluginRequest, StowagePluginResponse};
use stowage_protocol::tarpc::{ClientMessage, Response};

thread_local! {
    static IN_DECODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `Codec::decode` turns a panic inside a `Deserialize` impl into an error (a deadline
/// overflow in tarpc, found here). libfuzzer-sys's panic hook aborts on every panic, even
/// a caught one, so panics inside `decode` pass the hook; one that escaped `decode` would
/// still unwind into the harness and abort.
fn let_decode_catch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODE.with(|d| d.get()) {
                fuzzer_hook(info);
            }
        }));
    });
}

fn decode<T: for<'de> serde::Deserialize<'de>>(codec: Codec, data: &[u8]) -> std::io::Result<T> {
    IN_DECODE.with(|d| d.set(true));
    let result = codec.decode::<T>(data);
    IN_DECODE.with(|d| d.set(false));
    result
}

fn round_trip<T: serde::Serialize + for<'de> serde::Deserialize<'de>>(
    codec: Codec,
    data: &[u8],
    stable: bool,
) {
    let Ok(message) = decode::<T>(codec, data) else {
        return;
    };
    let once = codec.encode(&message).expect("a decoded message encodes");
    let again: T = decode(codec, &once).expect("an encoded message decodes");
    if stable {
        assert_eq!(
            codec.encode(&again).unwrap(),
            once,
            "encoding is not stable"
        );
    }
}

/// One fuzz input, through `codec`.
pub fn run(codec: Codec, data: &[u8]) {
    let_decode_catch_panics();
    round_trip::<ClientMessage<StowagePluginRequest>>(codec, data, false);
    round_trip::<Response<StowagePluginResponse>>(codec, data, true);
}
