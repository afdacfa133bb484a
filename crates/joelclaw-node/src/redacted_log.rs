//! The agent's log writer: standard error with every secret-named value redacted
//! (`process_manager::redact`), so a traced error, command line or event never carries one.

use std::io::Write;

/// Makes a [`RedactedStderr`] per log line (a `tracing_subscriber` `MakeWriter`).
pub fn stderr() -> RedactedStderr {
    RedactedStderr
}

/// Standard error, one formatted log line per write, redacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedStderr;

impl Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(process_manager::redact::redact_text(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
