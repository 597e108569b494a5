//! Harbor core client: the connection to core (plain or with Harbor's internal TLS) shared by
//! the pass-through and, later, by the API and local-referrers calls.

pub mod transport;

pub use transport::{CoreTransport, TransportError};
