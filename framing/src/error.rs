//! The crate's error type: what can go wrong while framing the child's stdio.

/// What can go wrong while framing the child's stdio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipe failed underneath the codec.
    #[error("pipe i/o failed")]
    Io(#[from] std::io::Error),
    /// A length-prefixed record longer than the limit.
    #[error("record of {len} bytes is over the limit of {max}")]
    TooLong {
        /// The length announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length-prefixed text record that is not UTF-8.
    #[error("text record is not valid UTF-8")]
    NotUtf8,
    /// The stream ended inside a length-prefixed record.
    #[error("stream ended inside a record ({got} bytes of it)")]
    Truncated {
        /// How many bytes of the record had arrived.
        got: usize,
    },
}
