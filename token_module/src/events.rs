//! What instances sharing a store tell each other, through [`Store::publish_event`]: today
//! only that an access token was revoked, so that every instance drops what it cached about
//! it at once instead of after its reuse window. The stored denylist stays the authority; an
//! event only makes the others look at it sooner.
//!
//! [`Store::publish_event`]: crate::store::Store::publish_event

/// An event, as parsed from its text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// The access token with this `jti` was revoked.
    Revoked(&'a str),
}

const REVOKED: &str = "revoked ";

impl<'a> Event<'a> {
    /// The text form sent through the store.
    pub(crate) fn encode(&self) -> String {
        match self {
            Event::Revoked(jti) => format!("{REVOKED}{jti}"),
        }
    }

    /// Parses the text form; anything else (a newer instance's event) is `None`.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        text.strip_prefix(REVOKED)
            .filter(|jti| !jti.is_empty())
            .map(Event::Revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_unknown_events() {
        let text = Event::Revoked("abc-123").encode();
        assert_eq!(Event::parse(&text), Some(Event::Revoked("abc-123")));
        for other in ["", "revoked ", "purged abc", "revokedabc"] {
            assert_eq!(Event::parse(other), None, "{other}");
        }
    }
}
