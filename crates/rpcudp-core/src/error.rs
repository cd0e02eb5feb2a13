//! The one error type of the crate; `code()` is the stable string JavaScript sees.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// A body (request, reply or error) is larger than `Config::max_body`.
    BodyTooLarge {
        size: usize,
        limit: usize,
    },
    /// `Config::max_outstanding` calls are already waiting for an answer.
    TooManyOutstanding {
        limit: usize,
    },
    Closed,
    InvalidAddress(String),
    /// An argument no socket could act on (a timeout that is not a duration, a length past a buffer).
    InvalidArgument(String),
    Io(std::io::Error),
    Encode(String),
    Decode(String),
}

impl Error {
    /// Every value `code()` can return, for consumers that map codes to their own errors.
    pub const CODES: [&'static str; 8] = [
        "ERR_BODY_TOO_LARGE",
        "ERR_OVERLOADED",
        "ERR_CLOSED",
        "ERR_INVALID_ADDRESS",
        "ERR_INVALID_ARGUMENT",
        "ERR_IO",
        "ERR_ENCODE",
        "ERR_DECODE",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Error::BodyTooLarge { .. } => "ERR_BODY_TOO_LARGE",
            Error::TooManyOutstanding { .. } => "ERR_OVERLOADED",
            Error::Closed => "ERR_CLOSED",
            Error::InvalidAddress(_) => "ERR_INVALID_ADDRESS",
            Error::InvalidArgument(_) => "ERR_INVALID_ARGUMENT",
            Error::Io(_) => "ERR_IO",
            Error::Encode(_) => "ERR_ENCODE",
            Error::Decode(_) => "ERR_DECODE",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BodyTooLarge { size, limit } => {
                write!(f, "body of {size} bytes exceeds the limit of {limit} bytes")
            }
            Error::TooManyOutstanding { limit } => {
                write!(f, "too many outstanding calls (limit {limit})")
            }
            Error::Closed => f.write_str("socket is closed"),
            Error::InvalidAddress(addr) => write!(f, "invalid address: {addr}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Encode(e) => write!(f, "cannot encode value: {e}"),
            Error::Decode(e) => write!(f, "cannot decode value: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed() {
        let all = [
            Error::BodyTooLarge { size: 1, limit: 0 },
            Error::TooManyOutstanding { limit: 0 },
            Error::Closed,
            Error::InvalidAddress(String::new()),
            Error::InvalidArgument(String::new()),
            Error::Io(std::io::Error::other("x")),
            Error::Encode(String::new()),
            Error::Decode(String::new()),
        ];
        let codes: Vec<_> = all.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
    }
}
