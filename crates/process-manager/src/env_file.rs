//! Environment files, read the way systemd reads `EnvironmentFile=` (`systemd.exec(5)`, the
//! parser of systemd 252's `env-file.c`), so a file means the same under systemd and under the
//! embedded supervisor.
//!
//! One `KEY=VALUE` per line; blank lines and lines starting with `#` or `;` are ignored; blanks
//! around the key and before the value are dropped, and trailing blanks of an unquoted value
//! too. A value may be `'single quoted'` (taken as written) or `"double quoted"` (where `\"`,
//! `\\`, `` \` `` and `\$` are unescaped and other backslashes kept); a backslash at the end of
//! a line continues the value on the next, and outside quotes a backslash keeps the next
//! character as written. There is no `$VAR` expansion and no `export` keyword. A line without
//! `=` or with an invalid name is skipped, as systemd does. (`dotenvy` was not used: it expands
//! `${VAR}` and accepts `export`, so a file would mean something else under systemd.)
//!
//! A path written with a leading `-` may be missing, as in systemd; otherwise a missing file
//! fails the start. Errors name the file and never quote its contents (it holds secrets).

use std::path::{Path, PathBuf};

/// A manager with no `EnvironmentFile=` (launchd) runs a service with env files through a
/// wrapper that reads them at each start and then becomes the program:
/// `WRAPPER env-exec --env-file=F ... -- PROGRAM ARGS...` (the node agent's hidden verb; one
/// token per file, so a `-`-prefixed optional file is never read as a flag). The
/// values stay in their files; the definition names only the files.
pub const ENV_EXEC_VERB: &str = "env-exec";

/// The wrapper's argv for `program args` with `files`: what a definition says to run.
pub fn wrapped_argv(
    wrapper: &Path,
    files: &[PathBuf],
    program: &Path,
    args: &[String],
) -> Vec<String> {
    let mut argv = vec![
        wrapper.to_string_lossy().into_owned(),
        ENV_EXEC_VERB.to_string(),
    ];
    for f in files {
        argv.push(format!("--env-file={}", f.to_string_lossy()));
    }
    argv.push("--".into());
    argv.push(program.to_string_lossy().into_owned());
    argv.extend(args.iter().cloned());
    argv
}

/// The inverse of [`wrapped_argv`]: `(wrapper, files, program, args)` when `argv` is exactly
/// that shape, else `None` (an argv that merely looks alike is taken as written).
pub fn unwrap_argv(argv: &[String]) -> Option<(PathBuf, Vec<PathBuf>, PathBuf, Vec<String>)> {
    let [wrapper, verb, rest @ ..] = argv else {
        return None;
    };
    if verb != ENV_EXEC_VERB {
        return None;
    }
    let mut files = Vec::new();
    let mut rest = rest;
    loop {
        match rest {
            [flag, more @ ..] if flag.starts_with("--env-file=") => {
                files.push(PathBuf::from(&flag["--env-file=".len()..]));
                rest = more;
            }
            [dashes, program, args @ ..] if dashes == "--" && !files.is_empty() => {
                return Some((wrapper.into(), files, program.into(), args.to_vec()));
            }
            _ => return None,
        }
    }
}

/// A configured env file path: the path itself and whether it may be missing (a leading `-`).
pub fn spec(configured: &Path) -> (&Path, bool) {
    match configured.to_str().and_then(|s| s.strip_prefix('-')) {
        Some(rest) => (Path::new(rest), true),
        None => (configured, false),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuote,
    DoubleQuote,
    DoubleQuoteEscape,
    Comment,
    CommentEscape,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The assignments in `text`, in file order (a later one of the same name wins when applied).
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut state = State::PreKey;
    let mut key = String::new();
    let mut value = String::new();
    // Length of `value` before its trailing blanks (unquoted values lose them).
    let mut kept = 0usize;
    let mut push = |key: &mut String, value: &mut String, kept: usize| {
        value.truncate(kept);
        let name = key.trim_end();
        if valid_name(name) && !value.contains('\0') {
            out.push((name.to_string(), std::mem::take(value)));
        }
        key.clear();
        value.clear();
    };
    for c in text.chars() {
        state = match state {
            State::PreKey if c == '#' || c == ';' => State::Comment,
            State::PreKey if c.is_whitespace() => State::PreKey,
            State::PreKey | State::Key => {
                if c == '\n' {
                    key.clear();
                    State::PreKey
                } else if c == '=' {
                    State::PreValue
                } else {
                    key.push(c);
                    State::Key
                }
            }
            State::PreValue => match c {
                '\n' => {
                    push(&mut key, &mut value, kept);
                    kept = 0;
                    State::PreKey
                }
                '\'' => State::SingleQuote,
                '"' => State::DoubleQuote,
                '\\' => State::ValueEscape,
                c if c.is_whitespace() => State::PreValue,
                c => {
                    value.push(c);
                    kept = value.len();
                    State::Value
                }
            },
            State::Value => match c {
                '\n' => {
                    push(&mut key, &mut value, kept);
                    kept = 0;
                    State::PreKey
                }
                '\\' => State::ValueEscape,
                c => {
                    value.push(c);
                    if !c.is_whitespace() {
                        kept = value.len();
                    }
                    State::Value
                }
            },
            State::ValueEscape => {
                if c != '\n' {
                    value.push(c);
                    kept = value.len();
                }
                State::Value
            }
            State::SingleQuote => {
                if c == '\'' {
                    kept = value.len();
                    State::PreValue
                } else {
                    value.push(c);
                    State::SingleQuote
                }
            }
            State::DoubleQuote => match c {
                '"' => {
                    kept = value.len();
                    State::PreValue
                }
                '\\' => State::DoubleQuoteEscape,
                c => {
                    value.push(c);
                    State::DoubleQuote
                }
            },
            State::DoubleQuoteEscape => {
                match c {
                    '\n' => {}
                    '"' | '\\' | '`' | '$' => value.push(c),
                    c => {
                        value.push('\\');
                        value.push(c);
                    }
                }
                State::DoubleQuote
            }
            State::Comment => match c {
                '\\' => State::CommentEscape,
                '\n' => State::PreKey,
                _ => State::Comment,
            },
            State::CommentEscape => State::Comment,
        };
    }
    if matches!(
        state,
        State::PreValue
            | State::Value
            | State::ValueEscape
            | State::SingleQuote
            | State::DoubleQuote
            | State::DoubleQuoteEscape
    ) {
        push(&mut key, &mut value, kept);
    }
    out
}

/// Why the env files could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (never the file's contents).
    pub reason: String,
}

impl std::fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "env file {}: {}", self.path.display(), self.reason)
    }
}

/// Reads `files` (as configured, `-` prefix included) in order, so a later file's value wins.
/// A missing file without the `-` prefix, an unreadable one, or one that is not UTF-8 is an
/// error.
pub fn load(files: &[PathBuf]) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    for configured in files {
        let (path, optional) = spec(configured);
        let error = |reason: String| EnvFileError {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(error(
                    "missing (write its path with a leading '-' if it may be)".into(),
                ))
            }
            Err(e) => return Err(error(format!("cannot read: {e}"))),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            error(format!(
                "not UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        out.extend(parse(&text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn reads_systemd_syntax() {
        let text = "# comment\n; also a comment\n\n  A = one  \nB='single $x \\n'\nC=\"dq \\\"q\\\" \\$HOME \\n\"\nD=a\\\nb\nE=\nnot an assignment\n1BAD=x\nF=x y  # not a comment\nG=\"multi\nline\"\nH=last";
        assert_eq!(
            pairs(text),
            vec![
                p("A", "one"),
                p("B", "single $x \\n"),
                p("C", "dq \"q\" $HOME \\n"),
                p("D", "ab"),
                p("E", ""),
                p("F", "x y  # not a comment"),
                p("G", "multi\nline"),
                p("H", "last"),
            ]
        );
    }

    #[test]
    fn optional_paths_take_a_leading_dash() {
        assert_eq!(
            spec(Path::new("-/etc/x.env")),
            (Path::new("/etc/x.env"), true)
        );
        assert_eq!(
            spec(Path::new("/etc/x.env")),
            (Path::new("/etc/x.env"), false)
        );
    }

    #[test]
    fn missing_files_fail_unless_optional_and_errors_hide_contents() {
        let dir = tempfile_dir();
        let present = dir.join("a.env");
        std::fs::write(&present, "API_TOKEN=s3cr3t\nA=1\n").unwrap();
        let optional = PathBuf::from(format!("-{}", dir.join("none.env").display()));
        let got = load(&[present.clone(), optional]).unwrap();
        assert_eq!(got, vec![p("API_TOKEN", "s3cr3t"), p("A", "1")]);
        let e = load(&[dir.join("none.env")]).unwrap_err().to_string();
        assert!(e.contains("none.env") && e.contains("missing"), "{e}");
        std::fs::write(&present, b"API_TOKEN=s3cr3t\xff\n").unwrap();
        let e = load(&[present]).unwrap_err().to_string();
        assert!(e.contains("UTF-8") && !e.contains("s3cr3t"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pm-env-file-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod wrapper_tests {
    use super::*;

    #[test]
    fn a_wrapped_argv_reads_back_and_anything_else_is_left_alone() {
        let files = vec![
            PathBuf::from("/etc/w.env"),
            PathBuf::from("-/etc/w.local.env"),
        ];
        let args = vec!["--port".to_string(), "--".to_string(), "3111".to_string()];
        let argv = wrapped_argv(
            Path::new("/usr/local/bin/joelclaw-node"),
            &files,
            Path::new("/opt/w"),
            &args,
        );
        assert_eq!(
            argv[..5],
            [
                "/usr/local/bin/joelclaw-node",
                "env-exec",
                "--env-file=/etc/w.env",
                "--env-file=-/etc/w.local.env",
                "--"
            ]
        );
        assert_eq!(
            unwrap_argv(&argv),
            Some((
                "/usr/local/bin/joelclaw-node".into(),
                files,
                "/opt/w".into(),
                args
            ))
        );
        let plain: Vec<String> = ["/opt/w", "env-exec", "--", "x"].map(String::from).to_vec();
        assert_eq!(
            unwrap_argv(&plain),
            None,
            "no file: not the wrapper's shape"
        );
        let odd: Vec<String> = ["/opt/w", "env-exec", "--env-file=/e"]
            .map(String::from)
            .to_vec();
        assert_eq!(unwrap_argv(&odd), None);
    }
}
