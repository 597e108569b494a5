//! The cache lookup that runs while core is asked: started when Harbor's facts about the
//! project are already at hand, sealed until core has answered, and opened only with core's
//! listing (its `200`) in hand.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use harbor_client::CoreReferrers;

/// A lookup started before core answered, for the Harbor registry `registry_id`. Its output
/// cannot be reached but through [`open`](Self::open), which takes core's answer.
pub struct EarlyLookup<'a, T> {
    registry_id: i64,
    lookup: Lookup<'a, T>,
}

/// A lookup still running, or the output it ended with.
enum Lookup<'a, T> {
    Running(LocalBoxFuture<'a, T>),
    Done(T),
}

impl<T> Lookup<'_, T> {
    /// Advances a running lookup, keeping its output when it ends.
    fn advance(&mut self, cx: &mut std::task::Context<'_>) {
        if let Self::Running(lookup) = self
            && let Poll::Ready(output) = lookup.as_mut().poll(cx)
        {
            *self = Self::Done(output);
        }
    }
}

impl<'a, T> EarlyLookup<'a, T> {
    /// Nothing happens until it is driven by [`alongside`].
    #[must_use]
    pub fn new(registry_id: i64, lookup: impl Future<Output = T> + 'a) -> Self {
        Self {
            registry_id,
            lookup: Lookup::Running(lookup.boxed_local()),
        }
    }

    /// The lookup, for a caller core listed referrers for (`200`); `None` for any other answer
    /// from core: the lookup is then dropped unread.
    #[must_use]
    pub fn open(self, core: &CoreReferrers) -> Option<OpenedLookup<'a, T>> {
        match core {
            CoreReferrers::Listed { .. } => Some(OpenedLookup {
                registry_id: self.registry_id,
                lookup: self.lookup,
            }),
            CoreReferrers::Relayed(_) => None,
        }
    }
}

/// An [`EarlyLookup`] whose caller core authorized.
pub struct OpenedLookup<'a, T> {
    registry_id: i64,
    lookup: Lookup<'a, T>,
}

impl<T> OpenedLookup<'_, T> {
    /// The Harbor registry the lookup was started for.
    #[must_use]
    pub fn registry_id(&self) -> i64 {
        self.registry_id
    }

    /// The lookup's output, once it has ended.
    pub async fn finish(self) -> T {
        match self.lookup {
            Lookup::Running(lookup) => lookup.await,
            Lookup::Done(output) => output,
        }
    }
}

/// Runs `core` to its end while `early`, if any, advances too. Core is polled first, so its
/// request goes out before the lookup reads anything; the lookup may still be running when
/// core has answered.
pub async fn alongside<C: Future, T>(core: C, early: Option<&mut EarlyLookup<'_, T>>) -> C::Output {
    let mut core = pin!(core);
    let Some(early) = early else {
        return core.await;
    };
    poll_fn(|cx| {
        if let Poll::Ready(output) = core.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        // Its output stays inside until `OpenedLookup::finish` takes it.
        early.lookup.advance(cx);
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use actix_web::http::StatusCode;
    use actix_web::http::header::HeaderMap;
    use bytes::Bytes;
    use harbor_client::CoreAnswer;

    use super::*;

    fn core_answer(status: StatusCode) -> CoreAnswer {
        CoreAnswer {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Core that answers after yielding once, so the lookup gets its turn meanwhile.
    async fn core_after_a_while<T>(answer: T) -> T {
        tokio::task::yield_now().await;
        answer
    }

    #[actix_rt::test]
    async fn the_lookup_runs_while_core_is_asked_and_opens_only_with_a_listing() {
        let looked = Cell::new(false);
        let mut early = EarlyLookup::new(7, async {
            looked.set(true);
            "cached list"
        });
        let listed = CoreReferrers::Listed {
            descriptors: Vec::new(),
            rejected: 0,
            first: core_answer(StatusCode::OK),
            one_page: true,
        };
        let core = alongside(core_after_a_while(listed), Some(&mut early)).await;
        assert!(looked.get(), "the lookup started before core answered");
        let opened = early.open(&core).expect("a listing opens the lookup");
        assert_eq!(opened.registry_id(), 7);
        assert_eq!(opened.finish().await, "cached list");
    }

    #[actix_rt::test]
    async fn any_other_answer_from_core_drops_the_lookup_unread() {
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            let mut early = EarlyLookup::new(7, async { "cached list" });
            let relayed = CoreReferrers::Relayed(core_answer(status));
            let core = alongside(core_after_a_while(relayed), Some(&mut early)).await;
            assert!(early.open(&core).is_none(), "{status}");
        }
    }

    #[actix_rt::test]
    async fn a_lookup_still_running_when_core_answers_is_finished_after() {
        let (sender, receiver) = tokio::sync::oneshot::channel::<&str>();
        let mut early = EarlyLookup::new(7, async { receiver.await.unwrap_or("lost") });
        let listed = CoreReferrers::Listed {
            descriptors: Vec::new(),
            rejected: 0,
            first: core_answer(StatusCode::OK),
            one_page: true,
        };
        let core = alongside(async { listed }, Some(&mut early)).await;
        let opened = early.open(&core).expect("opened");
        sender.send("from redis").unwrap();
        assert_eq!(opened.finish().await, "from redis");
    }
}
