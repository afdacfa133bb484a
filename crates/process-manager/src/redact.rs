//! Secret redaction, the one place every output path asks: which variable names hold secrets,
//! and how a value, an environment, an argument list or a free-text message is shown without
//! them.
//!
//! A name holds a secret when it ends in `_TOKEN`, `_KEY` or `_SECRET`, contains `PASSWORD`, or
//! has a secret word as one of its `_`-separated parts, case-insensitively, with `-` read as `_` (`--api-token`). Free text is
//! redacted by shape, not by knowing the values: `NAME=value`, `NAME: value`, `"NAME": "value"`
//! and `NAME="quoted value"` lose the value when `NAME` is a secret's name (a quoted value keeps
//! its quotes, so JSON stays valid), so a message that quotes a command line, an environment
//! or a JSON body is safe to print, log or publish.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// What a redacted value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Words that make a name a secret's when they are one of its `_`-separated parts: `AUTH` in
/// `GITHUB_AUTH`, not in `CARGO_PKG_AUTHORS`; `TOKEN` in `API_TOKEN`, not in a label `tokenweb`.
const SECRET_WORDS: &[&str] = &[
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "PASSWD",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "AUTHORIZATION",
];

/// Whether a variable (or option) name holds a secret: `*_TOKEN`, `*_KEY`, `*_SECRET`,
/// `*PASSWORD*`, or a secret word as one of its parts (see [`SECRET_WORDS`]).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name
        .trim_start_matches('-')
        .to_ascii_uppercase()
        .replace('-', "_");
    if upper.is_empty() {
        return false;
    }
    upper.ends_with("_TOKEN")
        || upper.ends_with("_KEY")
        || upper.ends_with("_SECRET")
        || upper.contains("PASSWORD")
        || upper.contains("API_KEY")
        || upper.contains("PRIVATE_KEY")
        || upper.split('_').any(|part| SECRET_WORDS.contains(&part))
}

/// A JSON document with every secret removed, structurally (so it stays valid JSON whatever
/// its strings hold): the value of a secret-named key is [`REDACTED`], and every string is
/// [`redact_text`]-ed.
pub fn redact_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(shown) = redact_text(s) {
                *s = shown;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) && matches!(v, Value::String(_) | Value::Number(_)) {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `value`, or [`REDACTED`] when `name` holds a secret.
pub fn redact_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        REDACTED
    } else {
        value
    }
}

/// An environment with the secrets' values redacted.
pub fn redact_env(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| (k.clone(), redact_value(k, v).to_string()))
        .collect()
}

/// Arguments with `NAME=value` secrets redacted, and the word after a secret-named option
/// (`--api-token xyz`).
pub fn redact_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            out.push(REDACTED.to_string());
            hide_next = false;
            continue;
        }
        hide_next = arg.starts_with('-') && !arg.contains('=') && is_secret_name(arg);
        out.push(redact_text(arg).into_owned());
    }
    out
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Where the value after a name at `text[name_end..]` starts (after an optional closing quote
/// of the name, blanks, `=` or `:`, blanks), with the quote that closed the name (`""` when
/// none), or `None` when no assignment follows.
fn value_start(bytes: &[u8], name_end: usize) -> Option<(usize, &'static str)> {
    let mut i = name_end;
    let mut name_quote = "";
    if bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'"') {
        i += 2;
        name_quote = "\\\"";
    } else if bytes.get(i) == Some(&b'"') {
        i += 1;
        name_quote = "\"";
    } else if bytes.get(i) == Some(&b'\'') {
        i += 1;
        name_quote = "'";
    }
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    if i >= bytes.len() || !(bytes[i] == b'=' || bytes[i] == b':') {
        return None;
    }
    i += 1;
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    Some((i, name_quote))
}

/// Where the value of a secret-named option given as the next word starts (`--api-token xyz`,
/// also quoted word by word as a unit file's command line writes it), or `None`.
fn option_value_start(
    bytes: &[u8],
    name_start: usize,
    name_end: usize,
) -> Option<(usize, &'static str)> {
    if !bytes[name_start..].starts_with(b"--") {
        return None;
    }
    let mut i = name_end;
    let mut name_quote = "";
    if bytes[i..].starts_with(b"\\\"") {
        i += 2;
        name_quote = "\\\"";
    } else if bytes.get(i).is_some_and(|b| *b == b'"' || *b == b'\'') {
        i += 1;
        name_quote = if bytes[i - 1] == b'"' { "\"" } else { "'" };
    }
    let blanks = bytes[i..].iter().take_while(|b| **b == b' ').count();
    if blanks == 0 || bytes.get(i + blanks).is_none_or(|b| *b == b'-') {
        return None;
    }
    Some((i + blanks, name_quote))
}

/// Where the value starting at `start` ends: its closing quote (escapes skipped) when quoted,
/// else the first blank or delimiter; an `Authorization: Bearer xyz` style scheme word takes
/// the word after it too.
fn value_end(bytes: &[u8], start: usize) -> usize {
    if bytes.get(start) == Some(&b'\\') && bytes.get(start + 1) == Some(&b'"') {
        // A quoted value inside a JSON string: it ends at the next `\"`.
        let mut i = start + 2;
        while i + 1 < bytes.len() && !(bytes[i] == b'\\' && bytes[i + 1] == b'"') {
            i += 1;
        }
        return (i + 2).min(bytes.len());
    }
    let quote = match bytes.get(start) {
        Some(b'"') => Some(b'"'),
        Some(b'\'') => Some(b'\''),
        _ => None,
    };
    if let Some(q) = quote {
        let mut i = start + 1;
        while i < bytes.len() && bytes[i] != q {
            if bytes[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        return (i + 1).min(bytes.len());
    }
    let word_end = |from: usize| {
        let mut i = from;
        while i < bytes.len() && !b" \t\r\n,;}])&\"'".contains(&bytes[i]) {
            // A JSON string's escaped quote ends the value too.
            if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'"') {
                break;
            }
            i += 1;
        }
        i
    };
    let end = word_end(start);
    let word = &bytes[start..end];
    if (word.eq_ignore_ascii_case(b"bearer") || word.eq_ignore_ascii_case(b"basic"))
        && bytes.get(end) == Some(&b' ')
    {
        return word_end(end + 1);
    }
    end
}

/// `text` with every secret-named assignment's value, and every URL's password
/// (`scheme://user:password@host`), replaced by [`REDACTED`].
pub fn redact_text(text: &str) -> Cow<'_, str> {
    match redact_assignments(text) {
        Cow::Borrowed(t) => redact_userinfo(t),
        Cow::Owned(t) => Cow::Owned(redact_userinfo(&t).into_owned()),
    }
}

/// `text` with the password of every `scheme://user:password@` replaced by [`REDACTED`].
fn redact_userinfo(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let start = from + at + 3;
        let authority_end = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .map_or(text.len(), |e| start + e);
        let authority = &text[start..authority_end];
        if let Some(userinfo_end) = authority.rfind('@') {
            if let Some(colon) = authority[..userinfo_end].find(':') {
                let (pw_start, pw_end) = (start + colon + 1, start + userinfo_end);
                if pw_end > pw_start && &text[pw_start..pw_end] != REDACTED {
                    let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    buf.push_str(&text[copied..pw_start]);
                    buf.push_str(REDACTED);
                    copied = pw_end;
                }
            }
        }
        from = authority_end.max(start);
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// `text` with every secret-named assignment's value replaced by [`REDACTED`].
fn redact_assignments(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_name_char(bytes[i]) || (i > 0 && is_name_char(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < bytes.len() && is_name_char(bytes[i]) {
            i += 1;
        }
        let name = &text[name_start..i];
        if !is_secret_name(name) {
            continue;
        }
        let Some((start, name_quote)) =
            value_start(bytes, i).or_else(|| option_value_start(bytes, name_start, i))
        else {
            continue;
        };
        let end = value_end(bytes, start);
        if end == start {
            continue;
        }
        let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
        buf.push_str(&text[copied..start]);
        // A quoted value keeps its quotes, so JSON (plain or inside a string) stays valid.
        let quote = ["\\\"", "\"", "'"]
            .into_iter()
            .find(|q| text[start..end].starts_with(q) && text[start..end].len() >= 2 * q.len());
        // An unquoted value of a quoted (JSON) key becomes a string, so JSON stays valid.
        let quote = quote.unwrap_or(name_quote);
        buf.push_str(quote);
        buf.push_str(REDACTED);
        buf.push_str(quote);
        copied = end;
        i = end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_password_is_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_text("GET http://u:pw1@h:80/x?a=1 then redis://:pw2@r:6379/0 and mailto:a@b"),
            format!("GET http://u:{REDACTED}@h:80/x?a=1 then redis://:{REDACTED}@r:6379/0 and mailto:a@b")
        );
        assert_eq!(redact_text("http://user@host/p"), "http://user@host/p");
        assert_eq!(redact_text("http://h/p?x=a:b@c"), "http://h/p?x=a:b@c");
        let json = r#"{"url":"https://u:pw3@h/"}"#;
        let shown = redact_text(json);
        assert!(
            !shown.contains("pw3") && serde_json::from_str::<serde_json::Value>(&shown).is_ok(),
            "{shown}"
        );
    }

    /// A secret word counts as a part of a name, not inside another word: a label like
    /// `tokenweb` or `CARGO_PKG_AUTHORS` is not a secret's name.
    #[test]
    fn secret_words_are_whole_parts_of_a_name() {
        for name in [
            "GITHUB_AUTH",
            "AUTH",
            "X_TOKENS",
            "DB_CREDENTIALS",
            "Authorization",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["tokenweb", "CARGO_PKG_AUTHORS", "AUTHOR", "SECRETARY_NAME"] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert_eq!(
            redact_text("restart tokenweb: restarted"),
            "restart tokenweb: restarted"
        );
    }

    /// A JSON document stays valid whatever its strings hold (an empty assignment right before
    /// the string's closing quote once swallowed the next string's opening one).
    #[test]
    fn json_is_redacted_as_a_document() {
        let mut doc = serde_json::json!({
            "lines": ["DB_AUTH=", "API_TOKEN=s3cr3t", "PATH=/usr/bin"],
            "WORKER_API_TOKEN": "s3cr3t",
            "port": 8080,
            "nested": { "DB_PASSWORD": 1234, "note": "password: s3cr3t" },
        });
        redact_json(&mut doc);
        let text = doc.to_string();
        assert!(!text.contains("s3cr3t") && !text.contains("1234"), "{text}");
        let again: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(again["lines"][0], "DB_AUTH=");
        assert_eq!(again["lines"][2], "PATH=/usr/bin");
        assert_eq!(again["WORKER_API_TOKEN"], REDACTED);
        assert_eq!(again["port"], 8080);
    }

    #[test]
    fn secret_names_follow_the_patterns_case_insensitively() {
        for name in [
            "GITHUB_TOKEN",
            "api_key",
            "AWS_SECRET",
            "DB_PASSWORD_FILE",
            "password",
            "--api-token",
            "OPENAI_API_KEY",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "PORT",
            "KEYBOARD",
            "TOKENIZER_THREADS_X",
            "LANG",
            "",
        ] {
            assert!(!is_secret_name(name) || name.contains("TOKEN"), "{name}");
        }
        assert!(!is_secret_name("PATH") && !is_secret_name("KEYBOARD"));
    }

    #[test]
    fn environments_and_arguments_lose_secret_values_only() {
        let env: BTreeMap<String, String> = [("PATH", "/usr/bin"), ("API_TOKEN", "s3cr3t")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let shown = redact_env(&env);
        assert_eq!(shown["PATH"], "/usr/bin");
        assert_eq!(shown["API_TOKEN"], REDACTED);
        let args: Vec<String> = ["--port", "3111", "--api-token", "s3cr3t", "DB_PASSWORD=pw"]
            .map(String::from)
            .to_vec();
        let shown = redact_args(&args).join(" ");
        assert_eq!(
            shown,
            "--port 3111 --api-token <redacted> DB_PASSWORD=<redacted>"
        );
    }

    #[test]
    fn text_loses_every_shape_of_secret_assignment() {
        let cases = [
            ("API_TOKEN=s3cr3t rest", "API_TOKEN=<redacted> rest"),
            (
                "env API_KEY: s3cr3t, PORT: 1",
                "env API_KEY: <redacted>, PORT: 1",
            ),
            (
                r#"{"DB_PASSWORD":"s3 cr\"3t","PORT":"1"}"#,
                r#"{"DB_PASSWORD":"<redacted>","PORT":"1"}"#,
            ),
            ("X_SECRET='a b' y", "X_SECRET='<redacted>' y"),
            (r#"{"api_token": 12345}"#, r#"{"api_token": "<redacted>"}"#),
            (
                r#"ExecStart="/bin/w" "--api-token" "s3cr3t" "--port" "1""#,
                r#"ExecStart="/bin/w" "--api-token" "<redacted>" "--port" "1""#,
            ),
            (
                r#"{"diff":"+ExecStart=\"/bin/w\" \"--db-password\" \"s3cr3t\"\n"}"#,
                r#"{"diff":"+ExecStart=\"/bin/w\" \"--db-password\" \"<redacted>\"\n"}"#,
            ),
            (
                "run --api-token s3cr3t --verbose",
                "run --api-token <redacted> --verbose",
            ),
            (
                "Authorization: Bearer s3cr3t ok",
                "Authorization: <redacted> ok",
            ),
            (
                r#"{\"API_TOKEN\":\"s3cr3t\"}"#,
                r#"{\"API_TOKEN\":\"<redacted>\"}"#,
            ),
        ];
        for (text, want) in cases {
            let got = redact_text(text);
            assert_eq!(got, want, "{text}");
            assert!(!got.contains("s3cr3t") && !got.contains("s3 cr"), "{got}");
        }
        assert!(matches!(
            redact_text("PATH=/usr/bin TOKENS"),
            Cow::Borrowed(_)
        ));
    }
}
