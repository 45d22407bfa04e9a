//! Reading a token from an argument or from standard input (`-`), with a size cap.

use std::io::Read;

/// The most bytes read from standard input: 64 KiB. More is refused, without reading the rest.
pub(crate) const MAX_STDIN_BYTES: usize = 64 * 1024;

/// Why a token could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputError {
    /// Standard input holds more than [`MAX_STDIN_BYTES`].
    TooLarge,
    /// Standard input is not UTF-8 text.
    NotText,
    /// Standard input could not be read.
    Read(String),
}

impl InputError {
    /// The `kind` shown in machine output: `too_large` (as the core crate names it) or `input`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge => audius_login::ErrorKind::TooLarge.as_str(),
            Self::NotText | Self::Read(_) => "input",
        }
    }

    /// Why, in words.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::TooLarge => format!(
                "standard input is over the limit of {MAX_STDIN_BYTES} bytes (64 KiB); \
                 a token is far shorter"
            ),
            Self::NotText => "standard input is not UTF-8 text".to_owned(),
            Self::Read(e) => format!("standard input could not be read: {e}"),
        }
    }
}

/// The token given as `arg`: the argument itself, or standard input when it is `-`. Surrounding
/// whitespace is trimmed either way.
pub(crate) fn token_from_arg(arg: &str) -> Result<String, InputError> {
    if arg == "-" {
        read_capped(std::io::stdin().lock(), MAX_STDIN_BYTES)
    } else {
        Ok(arg.trim().to_owned())
    }
}

/// Reads at most `cap` bytes of UTF-8 text from `reader` and trims it; more than `cap` bytes is
/// [`InputError::TooLarge`], found by reading one byte past the cap and no further.
pub(crate) fn read_capped(reader: impl Read, cap: usize) -> Result<String, InputError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| InputError::Read(e.to_string()))?;
    if buf.len() > cap {
        return Err(InputError::TooLarge);
    }
    let text = String::from_utf8(buf).map_err(|_| InputError::NotText)?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn trims_and_reads() {
        let read = |s: &str| read_capped(Cursor::new(s.as_bytes().to_vec()), 16);
        assert_eq!(read("  a.b.c\n"), Ok("a.b.c".to_owned()));
        assert_eq!(read(""), Ok(String::new()));
        assert_eq!(read("\r\n\t"), Ok(String::new()));
    }

    #[test]
    fn cap_is_exact() {
        let at_cap = "x".repeat(16);
        assert_eq!(
            read_capped(Cursor::new(at_cap.clone().into_bytes()), 16),
            Ok(at_cap)
        );
        let over = "x".repeat(17);
        assert_eq!(
            read_capped(Cursor::new(over.into_bytes()), 16),
            Err(InputError::TooLarge)
        );
    }

    #[test]
    fn reads_no_further_than_one_past_the_cap() {
        /// A reader that never ends: reading all of it would never return.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf.fill(b'a');
                self.0 += buf.len();
                Ok(buf.len())
            }
        }
        let mut endless = Endless(0);
        assert_eq!(
            read_capped(&mut endless, MAX_STDIN_BYTES),
            Err(InputError::TooLarge)
        );
        assert_eq!(endless.0, MAX_STDIN_BYTES + 1);
    }

    #[test]
    fn not_text() {
        assert_eq!(
            read_capped(Cursor::new(vec![0xff, 0xfe]), 16),
            Err(InputError::NotText)
        );
        assert_eq!(InputError::NotText.kind(), "input");
        assert_eq!(InputError::TooLarge.kind(), "too_large");
    }

    #[test]
    fn argument_is_trimmed() {
        assert_eq!(token_from_arg("  a.b.c "), Ok("a.b.c".to_owned()));
    }
}
