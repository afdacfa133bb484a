//! `ServiceLabel`: the validated name of a managed service, used everywhere a label crosses a
//! boundary (file names, argv, unit names).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest label accepted. launchd has no documented limit; systemd caps unit names at 255
/// bytes including the `.service` suffix, and plists live in folders with path limits. 128 keeps
/// every adapter's file name and argv element well inside its limits.
pub const MAX_LABEL_LEN: usize = 128;

/// A service label that is safe as a file name and as a single argv element on every adapter.
///
/// Alphabet: ASCII letters, digits, `.`, `-`, `_`, `@`; 1 to [`MAX_LABEL_LEN`] bytes; it must not
/// start with `-` (would read as a flag) or `.` (hidden file, `.`/`..`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(try_from = "String", into = "String")]
pub struct ServiceLabel(String);

/// Which rule a rejected label broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelRule {
    /// The label is empty.
    Empty,
    /// The label is longer than [`MAX_LABEL_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The label starts with `-` or `.`.
    BadLeadingChar(char),
    /// The label holds a character outside the alphabet.
    ForbiddenChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the label.
        at: usize,
    },
}

impl fmt::Display for LabelRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelRule::Empty => write!(f, "a label must not be empty"),
            LabelRule::TooLong { len } => {
                write!(f, "a label is at most {MAX_LABEL_LEN} bytes, this one is {len}")
            }
            LabelRule::BadLeadingChar(c) => {
                write!(f, "a label must not start with {c:?}")
            }
            LabelRule::ForbiddenChar { ch, at } => write!(
                f,
                "character {ch:?} (U+{:04X}) at byte {at} is not allowed; use ASCII letters, digits, '.', '-', '_' or '@'",
                *ch as u32
            ),
        }
    }
}

/// A label that failed validation, with the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid service label {label:?}: {rule}")]
pub struct LabelError {
    /// The rejected input (printed escaped, so control characters stay visible).
    pub label: String,
    /// The rule it broke.
    pub rule: LabelRule,
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@')
}

impl ServiceLabel {
    /// Validates `label`.
    pub fn new(label: impl Into<String>) -> Result<Self, LabelError> {
        let label = label.into();
        let rule = if label.is_empty() {
            Some(LabelRule::Empty)
        } else if let Some((at, ch)) = label.char_indices().find(|&(_, c)| !allowed(c)) {
            Some(LabelRule::ForbiddenChar { ch, at })
        } else if label.len() > MAX_LABEL_LEN {
            Some(LabelRule::TooLong { len: label.len() })
        } else if label.starts_with(['-', '.']) {
            Some(LabelRule::BadLeadingChar(
                label.chars().next().unwrap_or('-'),
            ))
        } else {
            None
        };
        match rule {
            Some(rule) => Err(LabelError { label, rule }),
            None => Ok(ServiceLabel(label)),
        }
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServiceLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceLabel({:?})", self.0)
    }
}

impl AsRef<str> for ServiceLabel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceLabel {
    type Error = LabelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ServiceLabel::new(value)
    }
}

impl TryFrom<&str> for ServiceLabel {
    type Error = LabelError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        ServiceLabel::new(value)
    }
}

impl std::str::FromStr for ServiceLabel {
    type Err = LabelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceLabel::new(s)
    }
}

impl From<ServiceLabel> for String {
    fn from(value: ServiceLabel) -> Self {
        value.0
    }
}

/// A pattern over labels for [`crate::ProcessManagerPort::list`]: `*` matches any run of
/// characters, `?` one character; everything else matches itself. `*` alone matches all.
///
/// Hand-written rather than a glob crate: labels hold no path separators, so the whole job is
/// ten lines of backtracking and a crate would bring path semantics we must then switch off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelPattern(String);

impl LabelPattern {
    /// A pattern from text (`com.joelclaw.*`).
    pub fn new(pattern: impl Into<String>) -> Self {
        LabelPattern(pattern.into())
    }

    /// Matches every label.
    pub fn all() -> Self {
        LabelPattern("*".into())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `label` matches.
    pub fn matches(&self, label: &str) -> bool {
        let (p, s): (Vec<char>, Vec<char>) = (self.0.chars().collect(), label.chars().collect());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

impl fmt::Display for LabelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule_of(s: &str) -> LabelRule {
        ServiceLabel::new(s).expect_err(s).rule
    }

    #[test]
    fn accepts_real_labels() {
        for ok in [
            "com.joelclaw.system-bus-worker",
            "redis",
            "getty@tty1",
            "a",
            "2BUA8C4S2C.com.1password.browser-helper",
            "under_score",
        ] {
            assert_eq!(ServiceLabel::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_with_the_rule_and_the_label() {
        assert_eq!(rule_of(""), LabelRule::Empty);
        assert_eq!(
            rule_of(&"a".repeat(MAX_LABEL_LEN + 1)),
            LabelRule::TooLong {
                len: MAX_LABEL_LEN + 1
            }
        );
        assert!(ServiceLabel::new("a".repeat(MAX_LABEL_LEN)).is_ok());
        assert_eq!(rule_of("../x"), LabelRule::ForbiddenChar { ch: '/', at: 2 });
        assert_eq!(rule_of("a/b"), LabelRule::ForbiddenChar { ch: '/', at: 1 });
        assert_eq!(rule_of("-rf"), LabelRule::BadLeadingChar('-'));
        assert_eq!(rule_of(".hidden"), LabelRule::BadLeadingChar('.'));
        assert_eq!(rule_of(".."), LabelRule::BadLeadingChar('.'));
        assert_eq!(rule_of("a b"), LabelRule::ForbiddenChar { ch: ' ', at: 1 });
        assert_eq!(
            rule_of("a\tb"),
            LabelRule::ForbiddenChar { ch: '\t', at: 1 }
        );
        assert_eq!(
            rule_of("a\nb"),
            LabelRule::ForbiddenChar { ch: '\n', at: 1 }
        );
        assert_eq!(
            rule_of("a\0b"),
            LabelRule::ForbiddenChar { ch: '\0', at: 1 }
        );
        // Cyrillic 'а' (U+0430) looks like Latin 'a'.
        assert_eq!(
            rule_of("com.\u{430}pple"),
            LabelRule::ForbiddenChar {
                ch: '\u{430}',
                at: 4
            }
        );
        // Fullwidth solidus looks like '/'.
        assert_eq!(
            rule_of("a\u{ff0f}b"),
            LabelRule::ForbiddenChar {
                ch: '\u{ff0f}',
                at: 1
            }
        );
    }

    #[test]
    fn error_message_names_label_and_rule() {
        let msg = ServiceLabel::new("a\nb").unwrap_err().to_string();
        assert!(msg.contains(r#""a\nb""#), "{msg}");
        assert!(msg.contains("U+000A"), "{msg}");
        let msg = ServiceLabel::new("-x").unwrap_err().to_string();
        assert!(msg.contains("must not start with '-'"), "{msg}");
    }

    #[test]
    fn deserialize_validates() {
        let ok: ServiceLabel = serde_json::from_str(r#""redis""#).unwrap();
        assert_eq!(ok.as_str(), "redis");
        let err = serde_json::from_str::<ServiceLabel>(r#""a/b""#).unwrap_err();
        assert!(err.to_string().contains("invalid service label"), "{err}");
    }

    #[test]
    fn patterns() {
        let p = LabelPattern::new("com.joelclaw.*");
        assert!(p.matches("com.joelclaw.gateway"));
        assert!(p.matches("com.joelclaw."));
        assert!(!p.matches("com.other.gateway"));
        assert!(LabelPattern::all().matches("anything"));
        assert!(LabelPattern::new("*worker").matches("restate-worker"));
        assert!(!LabelPattern::new("*worker").matches("worker-2"));
        assert!(LabelPattern::new("a?c").matches("abc"));
        assert!(!LabelPattern::new("a?c").matches("ac"));
        assert!(LabelPattern::new("a*b*c").matches("a-x-b-y-c"));
        assert!(!LabelPattern::new("exact").matches("exact2"));
    }

    proptest! {
        #[test]
        fn accepted_labels_are_safe_file_names_and_argv(s in "\\PC{0,140}|[a-zA-Z0-9._@/ -]{0,140}") {
            if let Ok(label) = ServiceLabel::new(s.clone()) {
                let l = label.as_str();
                // A single, plain path component.
                let path = std::path::Path::new(l);
                let comps: Vec<_> = path.components().collect();
                prop_assert_eq!(comps.len(), 1);
                prop_assert!(matches!(comps[0], std::path::Component::Normal(_)));
                prop_assert!(l != "." && l != "..");
                // One argv element that no parser reads as a flag, no shell or unit-file
                // metacharacters, no whitespace or control characters.
                prop_assert!(!l.starts_with('-'));
                prop_assert!(l.bytes().all(|b| b.is_ascii_graphic()));
                prop_assert!(!l.contains(['/', '\\', '$', '%', '"', '\'', '`', ';', '&', '|', '<', '>', '*', '?']));
                prop_assert!(l.len() <= MAX_LABEL_LEN);
            }
        }

        #[test]
        fn labels_from_the_alphabet_are_accepted(s in "[a-zA-Z0-9_@][a-zA-Z0-9._@-]{0,127}") {
            prop_assert!(ServiceLabel::new(s).is_ok());
        }
    }
}
