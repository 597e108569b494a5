//! Harbor's webhooks: the events it sends (`event`), who may sign them (`secret`), the bounded
//! queue of pulled artifacts (`queue`) and the background fetch that warms the cache with their
//! upstream referrers (`warm`).

pub mod event;
pub mod queue;
pub mod secret;
pub mod warm;

pub use event::{EventError, EventKind, HarborEvent, Pulled};
pub use queue::{Offered, WarmQueue};
pub use secret::{Signer, project_header};
