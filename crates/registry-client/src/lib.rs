//! Upstream OCI registry client.
