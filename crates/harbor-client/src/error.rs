//! What can go wrong talking to core.

/// A failed call to core. The caller maps these to its own answers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HarborError {
    #[error("Harbor core is unreachable: {0}")]
    Unreachable(String),
    #[error("Harbor core did not answer in time")]
    Timeout,
    #[error("no connection to Harbor core free or made in time")]
    NoConnection,
    #[error(
        "Harbor API refused the sidecar's credentials ({0}): check the robot account, it may have expired"
    )]
    Unauthorized(String),
    #[error("Harbor API denied the sidecar's account access to {0}")]
    Forbidden(String),
    #[error("Harbor core answered {status} for {what}")]
    Status { what: String, status: u16 },
    #[error("Harbor core sent an answer over {limit} bytes for {what}")]
    TooLarge { what: String, limit: usize },
    #[error("Harbor core sent an unreadable answer for {what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl HarborError {
    /// Label for metrics and logs.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout => "timeout",
            Self::NoConnection => "no_connection",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::Status { .. } => "status",
            Self::TooLarge { .. } => "too_large",
            Self::Invalid { .. } => "invalid",
        }
    }

    pub(crate) fn from_send(error: &crate::transport::SendError) -> Self {
        match error {
            crate::transport::SendError::NoConnection(_) => Self::NoConnection,
            _ if error.is_timeout() => Self::Timeout,
            _ => Self::Unreachable(error.to_string()),
        }
    }
}
