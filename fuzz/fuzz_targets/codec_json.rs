//! Json payloads as the host and a plugin decode them (see `codec_common.rs`).
#![no_main]

#[path = "codec_common.rs"]
mod codec_common;

use libfuzzer_sys::fuzz_target;
use stowage_protocol::Codec;

fuzz_target!(|data: &[u8]| codec_common::run(Codec::Json, data));
