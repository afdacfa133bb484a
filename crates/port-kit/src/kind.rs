//! `ErrorKind`: what a port error means, as a stable name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The meaning of a port error. Both ports' errors map onto it (`ProcessError::kind`,
/// `RuntimeError::kind`), and events carry it; its kebab-case names are stable. Closed on
/// purpose: a new kind must be given a meaning wherever kinds are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// No such service, container or profile.
    NotFound,
    /// The caller may not do this.
    PermissionDenied,
    /// The manager or runtime cannot be reached.
    Unavailable,
    /// A deadline passed.
    Timeout,
    /// The adapter does not do this.
    NotSupported,
    /// A label failed validation.
    InvalidLabel,
    /// Bad input (a config field, a pattern, a name).
    InvalidInput,
    /// The backend's answer could not be understood.
    Parse,
    /// The backend refused or failed for another reason.
    Backend,
}

impl ErrorKind {
    /// The stable name (`not-found`, `timeout`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NotSupported => "not-supported",
            ErrorKind::InvalidLabel => "invalid-label",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Parse => "parse",
            ErrorKind::Backend => "backend",
        }
    }

    /// Whether trying the same call again later can help: a deadline passed, the backend was
    /// down, or it failed for a reason of its own. The rest will answer the same again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Backend
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_name_is_the_stable_name() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::NotSupported,
            ErrorKind::InvalidLabel,
            ErrorKind::InvalidInput,
            ErrorKind::Parse,
            ErrorKind::Backend,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
        }
    }
}
