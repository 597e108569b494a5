//! The sidecar as it is deployed: the nginx route, connections from callers and to Harbor core,
//! the alert rules and dashboard against the running binary, the Harbor core double's contract
//! with Harbor's API definition, and `make demo`.

mod caller_connections;
mod core_connections;
mod demo;
mod harbor_double_contract;
mod nginx_route;
mod observability;
mod secrets;
