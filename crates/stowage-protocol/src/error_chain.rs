//! Walking an error's source chain: cloud SDKs wrap the failure that matters (a credential
//! provider's, a connection's) several layers deep.

use std::error::Error;

/// The error itself, then each of its sources in turn.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

/// The first error of type `T` in the chain.
pub fn find<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    chain(error).find_map(|e| e.downcast_ref::<T>())
}

/// The error and its sources as one line, `outer: inner: innermost`. A source whose text
/// the line already holds is left out: many errors repeat their source in their own text.
///
/// Use it only on errors whose text holds no secret, request URL or response body.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    for source in chain(error).skip(1) {
        let source_text = source.to_string();
        if !text.contains(&source_text) {
            text.push_str(": ");
            text.push_str(&source_text);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<dyn Error + 'static>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref()
        }
    }

    fn layered() -> Layer {
        let io = std::io::Error::other("connection refused");
        let middle = Layer("dispatch failure: connection refused", Some(Box::new(io)));
        Layer("cannot read secret", Some(Box::new(middle)))
    }

    #[test]
    fn finds_a_source_by_type() {
        let e = layered();
        assert_eq!(chain(&e).count(), 3);
        let io = find::<std::io::Error>(&e).unwrap();
        assert_eq!(io.to_string(), "connection refused");
        assert!(find::<std::fmt::Error>(&e).is_none());
    }

    #[test]
    fn describes_the_chain_without_repeating_itself() {
        assert_eq!(
            describe(&layered()),
            "cannot read secret: dispatch failure: connection refused"
        );
    }
}
