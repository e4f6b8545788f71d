//! A batch resolve's answer within one frame (proto-docs/methods.md, `secrets_resolve`):
//! a plugin answers the references that would not fit with [`over_frame_budget`], and the
//! host asks for those again in a further call.

use crate::codec::MAX_FRAME_LEN;
use crate::error::{ErrorCode, PluginError};
use crate::types::SecretResult;

/// The message of a reference left out of an answer that would not fit in a frame, as
/// proto-docs/methods.md words it.
pub const OVER_FRAME_BUDGET: &str =
    "the answer would exceed the frame limit; ask for less per call";

/// What the values of one answer may take of a frame: the rest is left for the envelope
/// and every slot's framing.
const VALUES_BUDGET: usize = MAX_FRAME_LEN - 1024 * 1024;

/// The error for a reference whose value did not fit in this answer.
pub fn over_frame_budget() -> PluginError {
    PluginError::invalid_argument(OVER_FRAME_BUDGET)
}

/// Whether `e` says the reference was left out for room, not that it failed: asked
/// again, in a smaller batch, it resolves.
pub fn is_over_frame_budget(e: &PluginError) -> bool {
    e.code == ErrorCode::InvalidArgument && e.message == OVER_FRAME_BUDGET
}

/// A slot's size in the larger codec (JSON: base64 values, quoted, plus the slot's own
/// framing), so that the budget holds whichever codec the plugin speaks.
fn encoded_len(answer: &SecretResult) -> usize {
    let payload = match answer {
        Ok(value) => value.len().div_ceil(3) * 4,
        Err(e) => e.message.len() * 2,
    };
    payload + 64
}

/// Keeps `answers` within one frame: in order, each answer that fits in what is left is
/// kept, and each that does not becomes [`over_frame_budget`] (a later, smaller one may
/// still fit). One value alone always fits: values are at most `MAX_VALUE_LEN`.
pub fn fit_in_frame(answers: Vec<SecretResult>) -> Vec<SecretResult> {
    let mut left = VALUES_BUDGET;
    answers
        .into_iter()
        .map(|answer| {
            let len = encoded_len(&answer);
            if len <= left {
                left -= len;
                answer
            } else {
                Err(over_frame_budget())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_VALUE_LEN, SecretBytes};

    fn value(len: usize) -> SecretResult {
        Ok(SecretBytes::new(vec![7; len]))
    }

    #[test]
    fn answers_beyond_a_frame_are_left_for_another_call() {
        let big = MAX_VALUE_LEN - 1024;
        let answers = fit_in_frame(vec![value(big), value(big), value(10), value(big)]);
        assert!(answers[0].is_ok());
        assert!(is_over_frame_budget(answers[1].as_ref().unwrap_err()));
        assert!(answers[2].is_ok(), "a small value still fits");
        assert!(is_over_frame_budget(answers[3].as_ref().unwrap_err()));
        // A thousand small values are one frame's worth.
        let small = fit_in_frame((0..1000).map(|_| value(1024)).collect());
        assert!(small.iter().all(Result::is_ok));
        // Only this error means "ask again".
        assert!(!is_over_frame_budget(&PluginError::invalid_argument(
            "bad key"
        )));
    }
}
