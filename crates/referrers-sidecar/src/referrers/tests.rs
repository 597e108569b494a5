//! The referrers use case in process: a stub core (which answers as Harbor core does and logs
//! what it was asked), a stub upstream behind the real cache, and a manual clock. Each test is
//! one row of the decision table: what core says, what Harbor's facts say, what the upstream
//! does, and what the caller gets.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use harbor_client::{CoreAnswer, Project, RegistryInfo};
use oci_referrers::{Digest, RepositoryName};

use super::*;
use crate::cache::testing::{Answer as UpstreamAnswers, FRESH_FOR, StubUpstream, replica_cache};
use crate::clock::ManualClock;
use crate::config::ProjectsSettings;
use crate::outcome::{CacheResult, Tier, UpstreamResult};
use crate::serving::NotServed;

const T0: u64 = 1_700_000_000_000;
const PROJECT_ID: i64 = 4;
const REGISTRY_ID: i64 = 2;
const SBOM: &str = "application/vnd.example.sbom";

/// A fact core gives when asked.
#[derive(Clone)]
enum Fact<T> {
    Is(T),
    Fails,
    /// Never answers.
    Hangs,
}

/// What core answers for the referrers of one repository.
#[derive(Clone)]
enum Listing {
    /// `200` with these local referrers (digests of one repeated hex digit, and artifact types).
    Lists(Vec<(char, Option<&'static str>)>),
    /// Any other status: core's verdict.
    Status(u16),
    /// Core cannot be reached.
    Fails,
    /// Never answers.
    Hangs,
    /// Lists these once the stub's gate opens.
    Gated(Vec<(char, Option<&'static str>)>),
}

/// Harbor core as the sidecar sees it, with what each call was asked.
struct StubCore {
    listings: RefCell<HashMap<String, Listing>>,
    projects: RefCell<HashMap<String, Fact<Option<Project>>>>,
    registries: RefCell<HashMap<i64, Fact<Option<RegistryInfo>>>>,
    labels: RefCell<HashMap<i64, HashSet<String>>>,
    asked: RefCell<Vec<String>>,
    /// Open: `Listing::Gated` answers.
    gate: tokio::sync::watch::Sender<bool>,
}

impl StubCore {
    /// Project `hub` proxies registry 2 (a Distribution registry); core lists one local
    /// referrer for every repository.
    fn new() -> Self {
        let core = Self {
            listings: RefCell::default(),
            projects: RefCell::default(),
            registries: RefCell::default(),
            labels: RefCell::default(),
            asked: RefCell::default(),
            gate: tokio::sync::watch::Sender::new(false),
        };
        core.project("hub", Fact::Is(Some(proxy(BTreeMap::new()))));
        core.registry(Fact::Is(Some(registry("docker-registry"))));
        core
    }

    fn lists(&self, name: &str, listing: Listing) {
        self.listings.borrow_mut().insert(name.to_owned(), listing);
    }

    fn project(&self, name: &str, fact: Fact<Option<Project>>) {
        self.projects.borrow_mut().insert(name.to_owned(), fact);
    }

    fn registry(&self, fact: Fact<Option<RegistryInfo>>) {
        self.registries.borrow_mut().insert(REGISTRY_ID, fact);
    }

    fn labels(&self, labels: &[&str]) {
        let names = labels.iter().map(|l| (*l).to_owned()).collect();
        self.labels.borrow_mut().insert(PROJECT_ID, names);
    }

    /// Every call core got, in order (`referrers <name>`, `project <name>`, …).
    fn asked(&self) -> Vec<String> {
        self.asked.borrow().clone()
    }

    fn was_asked(&self, call: &str) -> usize {
        self.asked.borrow().iter().filter(|c| *c == call).count()
    }

    fn log(&self, call: String) {
        self.asked.borrow_mut().push(call);
    }
}

fn fact<'a, T: Clone + 'a>(
    fact: Option<Fact<T>>,
    absent: T,
) -> LocalBoxFuture<'a, Result<T, HarborError>> {
    match fact {
        Some(Fact::Is(value)) => async move { Ok(value) }.boxed_local(),
        None => async move { Ok(absent) }.boxed_local(),
        Some(Fact::Fails) => {
            async { Err(HarborError::Unreachable("connection refused".into())) }.boxed_local()
        }
        Some(Fact::Hangs) => std::future::pending().boxed_local(),
    }
}

impl Core for StubCore {
    fn local_referrers<'a>(
        &'a self,
        name: &'a RepositoryName,
        _digest: &'a Digest,
        _caller: &'a HeaderMap,
        _request_id: &'a str,
    ) -> LocalBoxFuture<'a, Result<CoreReferrers, HarborError>> {
        self.log(format!("referrers {name}"));
        let listing = self.listings.borrow().get(name.as_str()).cloned();
        let listing = listing.unwrap_or_else(|| Listing::Lists(vec![('c', None)]));
        let mut gate = self.gate.subscribe();
        async move {
            let listing = match listing {
                Listing::Gated(referrers) => {
                    let _open = gate.wait_for(|open| *open).await;
                    Listing::Lists(referrers)
                }
                other => other,
            };
            match listing {
                Listing::Lists(referrers) => {
                    let descriptors: Vec<Descriptor> = referrers
                        .iter()
                        .map(|(digit, artifact_type)| descriptor(*digit, *artifact_type))
                        .collect();
                    let body = serde_json::json!({
                        "schemaVersion": 2,
                        "mediaType": oci_referrers::INDEX_MEDIA_TYPE,
                        "manifests": descriptors,
                    });
                    Ok(CoreReferrers::Listed {
                        descriptors,
                        rejected: 0,
                        first: core_answer(StatusCode::OK, body.to_string()),
                        one_page: true,
                    })
                }
                Listing::Status(status) => Ok(CoreReferrers::Relayed(core_answer(
                    StatusCode::from_u16(status).unwrap(),
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.into(),
                ))),
                Listing::Fails => Err(HarborError::Unreachable("connection refused".into())),
                Listing::Hangs => std::future::pending().await,
                Listing::Gated(_) => unreachable!("opened above"),
            }
        }
        .boxed_local()
    }

    fn project<'a>(
        &'a self,
        name: &'a str,
    ) -> LocalBoxFuture<'a, Result<Option<Project>, HarborError>> {
        self.log(format!("project {name}"));
        fact(self.projects.borrow().get(name).cloned(), None)
    }

    fn registry(&self, id: i64) -> LocalBoxFuture<'_, Result<Option<RegistryInfo>, HarborError>> {
        self.log(format!("registry {id}"));
        fact(self.registries.borrow().get(&id).cloned(), None)
    }

    fn project_label_names(
        &self,
        project_id: i64,
    ) -> LocalBoxFuture<'_, Result<HashSet<String>, HarborError>> {
        self.log(format!("labels {project_id}"));
        let names = self.labels.borrow().get(&project_id).cloned();
        fact(names.map(Fact::Is), HashSet::new())
    }
}

fn core_answer(status: StatusCode, body: String) -> CoreAnswer {
    CoreAnswer {
        status,
        headers: HeaderMap::new(),
        body: Bytes::from(body),
    }
}

fn descriptor(digit: char, artifact_type: Option<&str>) -> Descriptor {
    let mut json = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", digit.to_string().repeat(64)),
        "size": 10,
    });
    if let Some(artifact_type) = artifact_type {
        json["artifactType"] = artifact_type.into();
    }
    serde_json::from_value(json).unwrap()
}

/// Project `hub`, a proxy-cache project of registry 2, with `metadata`.
fn proxy(metadata: BTreeMap<String, String>) -> Project {
    Project::new(PROJECT_ID, "hub".into(), Some(REGISTRY_ID), metadata)
}

fn registry(registry_type: &str) -> RegistryInfo {
    RegistryInfo {
        id: REGISTRY_ID,
        name: "upstream".into(),
        url: "https://registry.example".into(),
        registry_type: registry_type.into(),
        insecure: false,
        status: None,
        ca_certificate: None,
    }
}

fn subject() -> Digest {
    format!("sha256:{}", "5".repeat(64)).parse().unwrap()
}

/// Everything the use case uses, each part a stand-in but the cache and the serving decision.
struct World {
    core: Arc<StubCore>,
    /// The same stub, as the use case holds it.
    seam: Arc<dyn Core>,
    core_calls: CoreCalls,
    memo: AnswerMemo,
    serving: Serving,
    cache: Arc<ReferrersCache>,
    upstream: Arc<StubUpstream>,
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
    response: ResponseSettings,
}

impl World {
    /// `hub` served by the configuration; the upstream lists `answers`.
    fn new(answers: UpstreamAnswers) -> Self {
        Self::with(
            ProjectsSettings {
                enabled: vec!["hub".into()],
                ..ProjectsSettings::default()
            },
            StubUpstream::answering(answers),
        )
    }

    fn with(projects: ProjectsSettings, upstream: Arc<StubUpstream>) -> Self {
        let clock = Arc::new(ManualClock::at(T0));
        let (cache, metrics) = replica_cache(None, &upstream, &clock);
        let serving = Serving::new(
            projects,
            BTreeMap::new(),
            Duration::from_secs(30),
            Arc::clone(&metrics),
        );
        #[expect(
            clippy::arc_with_non_send_sync,
            reason = "one worker's core, as the use case holds it"
        )]
        let core = Arc::new(StubCore::new());
        Self {
            seam: Arc::clone(&core) as Arc<dyn Core>,
            core,
            core_calls: CoreCalls::default(),
            memo: AnswerMemo::new(1024 * 1024),
            serving,
            cache,
            upstream,
            clock,
            metrics,
            response: ResponseSettings::default(),
        }
    }

    fn referrers(&self) -> Referrers<'_> {
        Referrers {
            core: &self.seam,
            core_calls: &self.core_calls,
            memo: &self.memo,
            serving: &self.serving,
            cache: &self.cache,
            store: None,
            response: &self.response,
            metrics: &self.metrics,
        }
    }

    /// A plain `GET` of `name`'s referrers of the subject.
    async fn get(&self, name: &str) -> Answer {
        self.ask(name, "", &subject()).await
    }

    async fn ask(&self, name: &str, query: &str, digest: &Digest) -> Answer {
        self.ask_as(&HeaderMap::new(), name, query, digest).await
    }

    /// [`ask`](Self::ask) with the caller's `headers`.
    async fn ask_as(
        &self,
        headers: &HeaderMap,
        name: &str,
        query: &str,
        digest: &Digest,
    ) -> Answer {
        self.ask_within(None, headers, name, query, digest).await
    }

    /// [`ask_as`](Self::ask_as) with the budget the caller asks for.
    async fn ask_within(
        &self,
        budget: Option<Duration>,
        headers: &HeaderMap,
        name: &str,
        query: &str,
        digest: &Digest,
    ) -> Answer {
        let digest = digest.to_string();
        let request = ReferrersRequest::parse(
            RawReferrersPath {
                name,
                digest: &digest,
            },
            query,
            self.response.max_page_size,
        )
        .unwrap();
        let path = format!("/v2/{name}/referrers/{digest}");
        let caller = Caller {
            method: "GET",
            raw_path: &path,
            raw_query: (!query.is_empty()).then_some(query),
            headers,
            request_id: "request",
            budget,
        };
        self.referrers().answer(&request, caller).await
    }

    fn lookups(&self, tier: Tier, result: CacheResult) -> u64 {
        self.metrics
            .cache_lookups
            .with_label_values(&[tier.as_str(), result.as_str()])
            .get()
    }
}

/// A served page: its digests (the first hex digit of each), `X-Referrers-Upstream` and
/// `X-Referrers-Cache`.
fn served(answer: Answer) -> (Vec<char>, UpstreamResult, CacheResult) {
    let Answer::Served(served) = answer else {
        panic!("not served: {answer:?}");
    };
    (
        digits(&served.page.page.body),
        served.upstream,
        served.cache,
    )
}

/// The first hex digit of each descriptor's digest in an index body, in order.
fn digits(body: &[u8]) -> Vec<char> {
    let index: serde_json::Value = serde_json::from_slice(body).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let digest = m["digest"].as_str().unwrap();
            let hex = digest.strip_prefix("sha256:").unwrap();
            // The stub upstream's digests are numbers (`0…0`, `0…1`): their last digit.
            if hex.starts_with("000") {
                hex.chars().last().unwrap()
            } else {
                hex.chars().next().unwrap()
            }
        })
        .collect()
}

/// Why a plain `GET` got core's own listing relayed.
fn relayed_because(answer: &Answer) -> Option<PassThrough> {
    match answer {
        Answer::Relay(core, RelayReason::PassThrough(reason)) => {
            assert_eq!(core.status, StatusCode::OK, "core's listing is relayed");
            Some(*reason)
        }
        _ => None,
    }
}

// Core's verdict stands, and nothing else is asked.

#[tokio::test]
async fn a_caller_core_refuses_gets_cores_answer_and_nothing_else_is_asked() {
    for status in [401, 403, 404, 500] {
        let world = World::new(UpstreamAnswers::Referrers(2));
        world.core.lists("hub/team/app", Listing::Status(status));
        match world.get("hub/team/app").await {
            Answer::Relay(answer, RelayReason::CoreVerdict) => {
                assert_eq!(answer.status.as_u16(), status);
            }
            other => panic!("{status}: {other:?}"),
        }
        assert_eq!(world.core.asked(), ["referrers hub/team/app"], "{status}");
        assert_eq!(world.upstream.fetches(), 0);
    }
}

#[tokio::test]
async fn identical_requests_in_flight_share_one_call_to_core_and_other_credentials_make_their_own()
{
    let world = World::new(UpstreamAnswers::Referrers(2));
    world
        .core
        .lists("hub/team/app", Listing::Gated(vec![('c', None)]));
    let credentials = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::HeaderValue::from_static(value),
        );
        headers
    };
    let (alice, bob) = (
        credentials("Basic YWxpY2U6cA=="),
        credentials("Basic Ym9iOnA="),
    );
    let subject = subject();
    let ask = |headers| world.ask_as(headers, "hub/team/app", "", &subject);
    let open_when_both_asked = async {
        while world.core.was_asked("referrers hub/team/app") < 2 {
            tokio::task::yield_now().await;
        }
        world.core.gate.send_replace(true);
    };
    let (first, second, third, ()) =
        tokio::join!(ask(&alice), ask(&alice), ask(&bob), open_when_both_asked);

    assert_eq!(
        world.core.was_asked("referrers hub/team/app"),
        2,
        "one call for alice's two requests, one for bob's"
    );
    assert_eq!(world.metrics.core_calls_coalesced.get(), 1);
    let pages: Vec<_> = [first, second, third].into_iter().map(served).collect();
    assert_eq!(pages[0], pages[1], "the shared answer is the same page");
    assert_eq!(pages[0], pages[2]);
    assert!(
        world.core_calls.is_empty(),
        "nothing kept once core answered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_budget_runs_out_leaves_the_shared_call_to_the_others() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world
        .core
        .lists("hub/team/app", Listing::Gated(vec![('c', None)]));
    let late = async {
        // Starts after the first request's budget has half gone: it waits past that budget.
        tokio::time::sleep(world.response.deadline / 2).await;
        world.get("hub/team/app").await
    };
    let open_after_the_first_gave_up = async {
        tokio::time::sleep(world.response.deadline + Duration::from_millis(1)).await;
        world.core.gate.send_replace(true);
    };
    let (first, second, ()) = tokio::join!(
        world.get("hub/team/app"),
        late,
        open_after_the_first_gave_up
    );
    assert!(matches!(first, Answer::CoreFailed(HarborError::Timeout)));
    served(second);
    assert_eq!(world.core.was_asked("referrers hub/team/app"), 1);
    assert_eq!(world.metrics.core_calls_coalesced.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_caller_may_ask_for_a_shorter_budget_never_a_longer_one() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.lists("hub/team/app", Listing::Hangs);
    let headers = HeaderMap::new();
    let subject = subject();
    for (asked, spent) in [
        (None, world.response.deadline),
        (
            Some(Duration::from_millis(2500)),
            Duration::from_millis(2500),
        ),
        (Some(Duration::from_secs(3600)), world.response.deadline),
    ] {
        let started = tokio::time::Instant::now();
        let answer = world
            .ask_within(asked, &headers, "hub/team/app", "", &subject)
            .await;
        assert!(matches!(answer, Answer::CoreFailed(HarborError::Timeout)));
        assert_eq!(started.elapsed(), spent, "asked for {asked:?}");
    }
}

#[tokio::test]
async fn core_unreachable_fails_the_request_without_reading_any_fact() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.lists("hub/team/app", Listing::Fails);
    assert!(matches!(
        world.get("hub/team/app").await,
        Answer::CoreFailed(HarborError::Unreachable(_))
    ));
    assert_eq!(world.core.asked(), ["referrers hub/team/app"]);
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test(start_paused = true)]
async fn core_silent_past_the_deadline_is_a_timeout() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.lists("hub/team/app", Listing::Hangs);
    assert!(matches!(
        world.get("hub/team/app").await,
        Answer::CoreFailed(HarborError::Timeout)
    ));
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test]
async fn a_project_known_to_be_served_has_its_cache_looked_up_but_a_refused_caller_sees_nothing_of_it()
 {
    let world = World::new(UpstreamAnswers::Referrers(2));
    served(world.get("hub/team/app").await);
    let hits = world.lookups(Tier::Memory, CacheResult::Hit);
    world.core.lists("hub/team/app", Listing::Status(401));
    assert!(matches!(
        world.get("hub/team/app").await,
        Answer::Relay(_, RelayReason::CoreVerdict)
    ));
    assert_eq!(
        world.lookups(Tier::Memory, CacheResult::Hit),
        hits,
        "the sealed lookup counts nowhere"
    );
    assert_eq!(world.upstream.fetches(), 1);
}

// Not served: core's answer goes back, and the reason is the serving decision's.

#[tokio::test]
async fn a_project_the_configuration_does_not_enable_is_forwarded_without_asking_core_anything() {
    let world = World::with(
        ProjectsSettings {
            enabled: vec!["other".into()],
            label: None,
            ..ProjectsSettings::default()
        },
        StubUpstream::answering(UpstreamAnswers::Referrers(2)),
    );
    assert!(matches!(
        world.get("hub/team/app").await,
        Answer::Forward(PassThrough::Project(NotServed::NotEnabled))
    ));
    assert!(world.core.asked().is_empty());
}

#[tokio::test]
async fn an_unknown_project_relays_cores_listing() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.project("hub", Fact::Is(None));
    let answer = world.get("hub/team/app").await;
    assert_eq!(
        relayed_because(&answer),
        Some(PassThrough::Project(NotServed::UnknownProject))
    );
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test]
async fn a_project_that_is_no_proxy_cache_relays_cores_listing() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let local = Project::new(PROJECT_ID, "hub".into(), None, BTreeMap::new());
    world.core.project("hub", Fact::Is(Some(local)));
    let answer = world.get("hub/team/app").await;
    assert_eq!(
        relayed_because(&answer),
        Some(PassThrough::Project(NotServed::NotProxyCache))
    );
}

#[tokio::test]
async fn a_project_harbor_merges_itself_relays_cores_listing() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let metadata = BTreeMap::from([("proxy_referrer_api".to_owned(), "true".to_owned())]);
    world.core.project("hub", Fact::Is(Some(proxy(metadata))));
    let answer = world.get("hub/team/app").await;
    assert_eq!(
        relayed_because(&answer),
        Some(PassThrough::Project(NotServed::HarborMerges))
    );
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test]
async fn a_request_with_a_query_is_forwarded_when_the_project_is_not_served() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.project("hub", Fact::Is(None));
    assert!(matches!(
        world.ask("hub/team/app", "n=5", &subject()).await,
        Answer::Forward(PassThrough::Project(NotServed::UnknownProject))
    ));
}

#[tokio::test]
async fn facts_harbor_cannot_give_leave_cores_answer_standing() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.project("hub", Fact::Fails);
    let answer = world.get("hub/team/app").await;
    assert_eq!(
        relayed_because(&answer),
        Some(PassThrough::FactsUnavailable)
    );
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test(start_paused = true)]
async fn facts_that_do_not_come_within_the_deadline_leave_cores_answer_standing() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.project("hub", Fact::Hangs);
    let answer = world.get("hub/team/app").await;
    assert_eq!(
        relayed_because(&answer),
        Some(PassThrough::FactsUnavailable)
    );
}

#[tokio::test]
async fn a_name_without_a_repository_is_cores_alone() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let answer = world.get("hub").await;
    assert_eq!(relayed_because(&answer), Some(PassThrough::NoRepository));
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test]
async fn a_repository_harbors_allowlist_excludes_is_cores_alone() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let metadata = BTreeMap::from([(
        "proxy_cache_filter_pattern".to_owned(),
        "team/**".to_owned(),
    )]);
    world.core.project("hub", Fact::Is(Some(proxy(metadata))));
    let answer = world.get("hub/other/app").await;
    assert_eq!(relayed_because(&answer), Some(PassThrough::NotInAllowlist));
    assert_eq!(world.upstream.fetches(), 0);
    // Allowed: merged.
    assert_eq!(served(world.get("hub/team/app").await).0.len(), 3);
    // Known now: the early lookup skips the excluded repository too.
    let answer = world.get("hub/other/app").await;
    assert_eq!(relayed_because(&answer), Some(PassThrough::NotInAllowlist));
    assert_eq!(world.upstream.fetches(), 1);
}

// The switches.

#[tokio::test]
async fn the_project_label_serves_a_project_the_configuration_does_not_name() {
    let label_only = ProjectsSettings {
        enabled: Vec::new(),
        label: Some("referrers-proxy".into()),
        ..ProjectsSettings::default()
    };
    let world = World::with(
        label_only.clone(),
        StubUpstream::answering(UpstreamAnswers::Referrers(2)),
    );
    world.core.labels(&["referrers-proxy"]);
    assert_eq!(served(world.get("hub/team/app").await).0.len(), 3);

    let unlabelled = World::with(
        label_only,
        StubUpstream::answering(UpstreamAnswers::Referrers(2)),
    );
    unlabelled.core.labels(&["something-else"]);
    let answer = unlabelled.get("hub/team/app").await;
    assert_eq!(
        relayed_because(&answer),
        Some(PassThrough::Project(NotServed::NotEnabled))
    );
}

#[tokio::test]
async fn harbors_facts_are_read_once_and_then_known() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    for _ in 0..3 {
        served(world.get("hub/team/app").await);
    }
    assert_eq!(world.core.was_asked("project hub"), 1);
    assert_eq!(world.core.was_asked("registry 2"), 1);
    assert_eq!(world.core.was_asked("referrers hub/team/app"), 3);
}

// Served: what the cache and the upstream did.

#[tokio::test]
async fn a_miss_fetches_the_upstream_and_merges_it_with_cores_local_referrers() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let (digits, upstream, cache) = served(world.get("hub/team/app").await);
    assert_eq!((upstream, cache), (UpstreamResult::Api, CacheResult::Miss));
    let mut sorted = digits.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ['0', '1', 'c']);
    assert_eq!(world.upstream.fetches(), 1);
    assert_eq!(
        world
            .metrics
            .upstream_results
            .with_label_values(&["upstream", "api"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_second_request_is_a_hit_without_another_fetch() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    served(world.get("hub/team/app").await);
    let (digits, upstream, cache) = served(world.get("hub/team/app").await);
    assert_eq!((upstream, cache), (UpstreamResult::Api, CacheResult::Hit));
    assert_eq!(digits.len(), 3);
    assert_eq!(world.upstream.fetches(), 1);
}

#[tokio::test]
async fn a_repeated_answer_is_the_page_written_before_byte_for_byte() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let page = |answer| match answer {
        Answer::Served(served) => served.page,
        other => panic!("not served: {other:?}"),
    };
    let first = page(world.get("hub/team/app").await);
    let again = page(world.get("hub/team/app").await);
    assert!(Arc::ptr_eq(&first, &again), "no merge, filter or encode");
    // What the unmemoised path writes for the same request.
    let unmemoised = World::new(UpstreamAnswers::Referrers(2));
    let unmemoised = World {
        memo: AnswerMemo::new(0),
        ..unmemoised
    };
    for _ in 0..2 {
        let written = page(unmemoised.get("hub/team/app").await);
        assert_eq!(written.page.body, again.page.body);
        assert_eq!((written.page.next.clone(), written.page.total), (None, 3));
    }
    // Another query is another page.
    let other = page(world.ask("hub/team/app", "n=1", &subject()).await);
    assert!(!Arc::ptr_eq(&other, &first));
    assert_eq!(other.page.count, 1);
}

#[tokio::test]
async fn a_change_in_cores_list_writes_a_new_page() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let (before, ..) = served(world.get("hub/team/app").await);
    world.core.lists(
        "hub/team/app",
        Listing::Lists(vec![('c', None), ('d', Some(SBOM))]),
    );
    let (after, ..) = served(world.get("hub/team/app").await);
    assert_eq!((before.len(), after.len()), (3, 4));
    assert!(after.contains(&'d'));
}

#[tokio::test]
async fn a_stale_list_is_served_at_once_and_refreshed_behind() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    served(world.get("hub/team/app").await);
    world.clock.advance(FRESH_FOR + Duration::from_secs(1));
    world.upstream.answer(UpstreamAnswers::Referrers(3));
    let (digits, _, cache) = served(world.get("hub/team/app").await);
    assert_eq!((digits.len(), cache), (3, CacheResult::Stale));
    // The refresh runs as a task of its own: wait until it has fetched.
    for _ in 0..1000 {
        if world.upstream.fetches() == 2
            && world
                .metrics
                .cache_refreshes
                .with_label_values(&["refreshed"])
                .get()
                == 1
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    let (digits, _, cache) = served(world.get("hub/team/app").await);
    assert_eq!((digits.len(), cache), (4, CacheResult::Hit));
}

#[tokio::test]
async fn an_upstream_failure_serves_the_local_referrers() {
    let world = World::new(UpstreamAnswers::Failing);
    let (digits, upstream, cache) = served(world.get("hub/team/app").await);
    assert_eq!(digits, ['c']);
    assert_eq!(
        (upstream, cache),
        (UpstreamResult::Error, CacheResult::Miss)
    );
}

#[tokio::test]
async fn an_open_breaker_skips_the_upstream() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.upstream.breaker_open.store(true, Ordering::SeqCst);
    let (digits, upstream, _) = served(world.get("hub/team/app").await);
    assert_eq!((digits, upstream), (vec!['c'], UpstreamResult::Skipped));
}

#[tokio::test]
async fn a_resting_registry_is_not_called() {
    let world = World::new(UpstreamAnswers::RateLimited);
    let (digits, upstream, _) = served(world.get("hub/team/app").await);
    assert_eq!((digits, upstream), (vec!['c'], UpstreamResult::RateLimited));
    let (_, upstream, _) = served(world.get("hub/team/app").await);
    assert_eq!(upstream, UpstreamResult::RateLimited);
    assert_eq!(world.upstream.fetches(), 1, "no call while it rests");
}

#[tokio::test]
async fn a_list_over_the_memory_budget_serves_the_local_referrers() {
    let world = World::new(UpstreamAnswers::OverBudget);
    let (digits, upstream, _) = served(world.get("hub/team/app").await);
    assert_eq!((digits, upstream), (vec!['c'], UpstreamResult::OverBudget));
}

#[tokio::test]
async fn a_truncated_list_is_served_as_far_as_it_goes() {
    let world = World::new(UpstreamAnswers::Truncated(2));
    let (digits, upstream, _) = served(world.get("hub/team/app").await);
    assert_eq!((digits.len(), upstream), (3, UpstreamResult::Truncated));
}

#[tokio::test(start_paused = true)]
async fn an_upstream_slower_than_the_deadline_serves_the_local_referrers_in_time() {
    let world = World::with(
        ProjectsSettings {
            enabled: vec!["hub".into()],
            ..ProjectsSettings::default()
        },
        StubUpstream::gated(UpstreamAnswers::Referrers(2)),
    );
    let (digits, upstream, cache) = served(world.get("hub/team/app").await);
    assert_eq!(digits, ['c']);
    assert_eq!(
        (upstream, cache),
        (UpstreamResult::Timeout, CacheResult::Miss)
    );
    assert_eq!(world.upstream.fetches(), 1, "the fetch goes on behind");
}

#[tokio::test]
async fn the_all_zero_digest_asks_no_upstream() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    let zero: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    let (digits, upstream, cache) = served(world.ask("hub/team/app", "", &zero).await);
    assert_eq!(digits, ['c']);
    assert_eq!(
        (upstream, cache),
        (UpstreamResult::Skipped, CacheResult::Bypass)
    );
    assert_eq!(world.upstream.fetches(), 0);
}

#[tokio::test]
async fn a_registry_that_cannot_be_resolved_serves_the_local_referrers() {
    for registry in [Fact::Is(None), Fact::Fails] {
        let world = World::new(UpstreamAnswers::Referrers(2));
        world.core.registry(registry);
        let (digits, upstream, _) = served(world.get("hub/team/app").await);
        assert_eq!((digits, upstream), (vec!['c'], UpstreamResult::Skipped));
        assert_eq!(world.upstream.fetches(), 0);
    }
}

#[tokio::test]
async fn docker_hubs_single_segment_names_are_under_library_upstream_and_in_harbor() {
    let world = World::new(UpstreamAnswers::Referrers(1));
    world.core.registry(Fact::Is(Some(registry("docker-hub"))));
    world
        .core
        .lists("hub/library/nginx", Listing::Lists(vec![('e', None)]));
    let (mut digits, upstream, _) = served(world.get("hub/nginx").await);
    digits.sort_unstable();
    assert_eq!(digits, ['0', 'c', 'e']);
    assert_eq!(upstream, UpstreamResult::Api);
    assert_eq!(world.core.was_asked("referrers hub/library/nginx"), 1);
}

// Filters and pages.

#[tokio::test]
async fn an_artifact_type_filter_keeps_only_that_type() {
    let world = World::new(UpstreamAnswers::Referrers(2));
    world.core.lists(
        "hub/team/app",
        Listing::Lists(vec![('c', None), ('d', Some(SBOM))]),
    );
    let query = format!("artifactType={}", SBOM.replace('/', "%2F"));
    let Answer::Served(page) = world.ask("hub/team/app", &query, &subject()).await else {
        panic!("not served");
    };
    assert_eq!(digits(&page.page.page.body), ['d']);
    assert_eq!(page.page.page.total, 1);
}

#[tokio::test]
async fn n_pages_the_merged_list_and_the_last_page_has_no_next() {
    let world = World::new(UpstreamAnswers::Referrers(3));
    let Answer::Served(first) = world.ask("hub/team/app", "n=2", &subject()).await else {
        panic!("not served");
    };
    let (first, second_query) = (&first.page.page, first.page.page.next.clone());
    assert_eq!((first.count, first.total), (2, 4));
    let last = second_query.expect("a next page");
    let Answer::Served(second) = world
        .ask("hub/team/app", &format!("n=2&last={last}"), &subject())
        .await
    else {
        panic!("not served");
    };
    let second = &second.page.page;
    assert_eq!((second.count, second.total), (2, 4));
    assert!(second.next.is_none());
    let mut all = digits(&first.body);
    all.extend(digits(&second.body));
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 4, "every referrer once over the pages");
}
