//! gRPC codes for requests that never reach a handler. tonic answers a body
//! over the size limit with OUT_OF_RANGE and a body that is not protobuf with
//! INTERNAL; both are the caller's fault, so latchkey answers them the way
//! gRPC's status-code guide says: RESOURCE_EXHAUSTED for a message over a
//! limit, INVALID_ARGUMENT for one that cannot be decoded. INTERNAL stays
//! reserved for latchkey's own bugs. tonic's message, which names the limit
//! or the decoding problem, is kept.

use tonic::{Code, codegen::http::HeaderMap};

/// Largest request message accepted, in bytes (tonic's default, made
/// explicit so the API can document it).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Rewrites the `grpc-status` of a trailers-only error answer, if it is one
/// of tonic's decoding errors.
pub fn recode(headers: &mut HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
    else {
        return;
    };
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .replace("%20", " ");
    let recoded = match code {
        // tonic 0.14.9's words (codec/decode.rs).
        Code::OutOfRange if message.starts_with("Error, decoded message length too large") => {
            Code::ResourceExhausted
        }
        Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            Code::InvalidArgument
        }
        _ => return,
    };
    headers.insert("grpc-status", (recoded as i32).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: Code, message: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", (code as i32).into());
        headers.insert("grpc-message", message.parse().unwrap());
        recode(&mut headers);
        headers
    }

    fn code(headers: &HeaderMap) -> &str {
        headers["grpc-status"].to_str().unwrap()
    }

    #[test]
    fn tonic_decoding_errors_get_the_callers_codes() {
        let too_large = answer(
            Code::OutOfRange,
            "Error,%20decoded%20message%20length%20too%20large:%20found%205000000%20bytes",
        );
        assert_eq!(code(&too_large), "8");
        let garbage = answer(
            Code::Internal,
            "failed to decode Protobuf message: invalid wire type",
        );
        assert_eq!(code(&garbage), "3");
    }

    #[test]
    fn other_answers_are_left_alone() {
        assert_eq!(code(&answer(Code::Internal, "Internal error")), "13");
        assert_eq!(code(&answer(Code::OutOfRange, "something else")), "11");
        assert_eq!(code(&answer(Code::Ok, "")), "0");
    }
}
