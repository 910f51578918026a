//! Fuzz target: one control line as the daemon reads it, before and after
//! authentication: `Request` deserialization (the `hello` that must come
//! first is a `Request` like the others, so the pre-auth path is this
//! decoder), and the `Response` deserialization the client does.
//!
//! Checked, besides "no panic": a decoded request re-encodes to JSON that
//! decodes to the same request, and a `hello`'s token has no effect on its
//! `Debug` form (what a log line would print).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<Request>(data) {
        let json = match serde_json::to_vec(&request) {
            Ok(json) => json,
            Err(e) => panic!("a decoded request does not encode: {request:?}: {e}"),
        };
        match serde_json::from_slice::<Request>(&json) {
            Ok(again) => assert_eq!(again, request, "request changed on its way back"),
            Err(e) => panic!("a decoded request does not decode again: {request:?}: {e}"),
        }
        if let Request::Hello(hello) = &request {
            let mut other = hello.clone();
            other.token = String::from("another token");
            assert_eq!(
                format!("{request:?}"),
                format!("{:?}", Request::Hello(other)),
                "the token shows in Debug"
            );
        }
    }
    let _ = serde_json::from_slice::<Response>(data);
});
