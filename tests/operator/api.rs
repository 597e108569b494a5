//! The operator API, end to end: why a project is or is not served (every reason), purging a
//! project's cached lists on two replicas sharing Redis, and Harbor's word on who may do what
//! (no credentials, a wrong password, a developer, a project admin, the system admin).

use std::time::Duration;

use e2e::Sidecar;
use e2e::config::{Configure, Settings};
use e2e::harbor_double::DoubleProject;
use e2e::metrics::{self, CacheResult, Endpoint, OperatorResult, Purge, Switch, Tier};
use e2e::redis::RedisServer;
use e2e::upstreams::Pusher;
use e2e::users::{ADMIN, ALICE, PAM, User};
use e2e::wait::{eventually, wait_for_metric};
use e2e::world::{Mirror, World, ask};
use serde_json::{Value, json};

fn status_path(project: &str) -> String {
    format!("/referrers-sidecar/v1/projects/{project}")
}

/// `GET` the status of `project` as `user` (anonymously without one): status and JSON body.
async fn status(sidecar: &Sidecar, project: &str, user: Option<User>) -> (u16, Value) {
    let mut request = e2e::http_client().get(sidecar.url(&status_path(project)));
    if let Some(user) = user {
        request = request.basic_auth(user.name, Some(user.password));
    }
    let response = request.send().await.expect("status request");
    let code = response.status().as_u16();
    if code == 401 {
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"harbor\"",
            "a 401 says how to authenticate"
        );
    }
    (code, response.json().await.expect("JSON body"))
}

/// `DELETE` the cache of `project` (`query`: `?repository=…`) as `user`.
async fn purge(sidecar: &Sidecar, project: &str, query: &str, user: User) -> (u16, Value) {
    let response = e2e::http_client()
        .delete(sidecar.url(&format!("{}/cache{query}", status_path(project))))
        .basic_auth(user.name, Some(user.password))
        .send()
        .await
        .expect("purge request");
    let code = response.status().as_u16();
    (code, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn the_status_says_why_each_project_is_or_is_not_served() {
    let mirror = Mirror::with_referrers_api().await;
    let mut merging = DoubleProject::proxy(10, "merging-proxy", 1);
    merging
        .metadata
        .insert("proxy_referrer_api".into(), "true".into());
    let world = World::builder()
        .mirror("hub-proxy", "upstream", mirror)
        .proxy_cache("labelled-proxy", "other", "http://127.0.0.1:9/")
        .proxy_cache("off-proxy", "third", "http://127.0.0.1:9/")
        .project(merging)
        .project(DoubleProject::local(11, "library"))
        .enable(&["hub-proxy", "merging-proxy", "library"])
        .user(ALICE, &["hub-proxy"])
        .account(ADMIN.sysadmin())
        .start();
    world
        .harbor
        .add_project_label("labelled-proxy", "referrers-proxy");
    let sidecar = world.sidecar();

    let (code, hub) = status(&sidecar, "hub-proxy", Some(ALICE)).await;
    assert_eq!(code, 200, "any member reads the status: {hub}");
    assert_eq!(
        (&hub["project"], &hub["served"], &hub["switch"]),
        (&json!("hub-proxy"), &json!(true), &json!("config"))
    );
    assert!(hub.get("reason").is_none(), "{hub}");
    let registry = &hub["registry"];
    assert_eq!(
        (&registry["id"], &registry["name"], &registry["type"]),
        (&json!(1), &json!("upstream"), &json!("docker-registry")),
        "{hub}"
    );
    assert_eq!(
        registry["url"],
        json!(format!("{}/", world.mirror("hub-proxy").url()))
    );
    assert_eq!(
        (
            &registry["breaker"],
            &registry["rate_limited_for_seconds"],
            &registry["cached_lists"]
        ),
        (&json!("closed"), &json!(0), &json!(0))
    );
    // One list fetched: this replica now holds it.
    assert_eq!(
        ask(&sidecar, &world.subject_path("hub-proxy")).await.cache,
        "miss"
    );
    let (_, hub) = status(&sidecar, "hub-proxy", Some(ALICE)).await;
    assert_eq!(hub["registry"]["cached_lists"], 1, "{hub}");

    let (_, labelled) = status(&sidecar, "labelled-proxy", Some(ADMIN)).await;
    assert_eq!(
        (
            &labelled["served"],
            &labelled["switch"],
            &labelled["registry"]["name"]
        ),
        (&json!(true), &json!("label"), &json!("other")),
        "{labelled}"
    );
    for (project, reason) in [
        ("off-proxy", "not_enabled"),
        ("merging-proxy", "harbor_merges"),
        ("library", "not_proxy_cache"),
        ("no-such-project", "unknown_project"),
    ] {
        let (code, answer) = status(&sidecar, project, Some(ADMIN)).await;
        assert_eq!(code, 200, "{project}: {answer}");
        assert_eq!(
            (&answer["project"], &answer["served"], &answer["reason"]),
            (&json!(project), &json!(false), &json!(reason)),
            "{answer}"
        );
        assert!(answer.get("switch").is_none(), "{answer}");
    }
    let (_, local) = status(&sidecar, "library", Some(ADMIN)).await;
    assert!(
        local.get("registry").is_none(),
        "a local project has no upstream: {local}"
    );

    assert_eq!(
        sidecar
            .metric(&metrics::operator_requests(
                Endpoint::Status,
                OperatorResult::Ok
            ))
            .await,
        8.0
    );
    assert_eq!(
        sidecar
            .metric(&metrics::served_projects(Switch::Config))
            .await,
        1.0
    );
    assert_eq!(
        sidecar
            .metric(&metrics::served_projects(Switch::Label))
            .await,
        1.0
    );
    // A sidecar whose robot account Harbor refuses cannot read the project's facts.
    let expired = world.sidecar_with(|s| s.robot(e2e::users::BOB));
    let (code, answer) = status(&expired, "hub-proxy", Some(ALICE)).await;
    assert_eq!(
        code, 200,
        "the caller is authorized with her own credentials"
    );
    assert_eq!(
        (&answer["served"], &answer["reason"]),
        (&json!(false), &json!("facts_unavailable")),
        "{answer}"
    );

    let logs = sidecar.logs().join("\n");
    assert!(
        logs.contains("operator API authorization") && logs.contains("\"user\":\"admin\""),
        "every decision is logged with the user name"
    );
    assert!(!logs.contains(ADMIN.password), "never the password");
}

#[tokio::test]
async fn harbor_decides_who_may_read_and_who_may_purge() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .project(DoubleProject::proxy(5, "private-proxy", 1))
        .user(ALICE, &["hub-proxy"])
        .account(PAM.project_admin(&["hub-proxy"]))
        .account(ADMIN.sysadmin())
        .start();
    let sidecar = world.sidecar();

    let (code, body) = status(&sidecar, "hub-proxy", None).await;
    assert_eq!(code, 401, "no credentials: {body}");
    let wrong = User {
        password: "not-her-password",
        ..ALICE
    };
    assert_eq!(status(&sidecar, "hub-proxy", Some(wrong)).await.0, 401);
    assert_eq!(purge(&sidecar, "hub-proxy", "", wrong).await.0, 401);
    // A right password after a wrong one is not refused by a remembered decision.
    assert_eq!(status(&sidecar, "hub-proxy", Some(ALICE)).await.0, 200);
    // A user name longer than Harbor's is refused before Harbor is asked or anything is kept.
    let long = User {
        name: Box::leak("a".repeat(20 * 1024).into_boxed_str()),
        ..ALICE
    };
    assert_eq!(status(&sidecar, "hub-proxy", Some(long)).await.0, 401);
    eventually(
        "the long user name's refusal is logged by its length",
        async || {
            sidecar.logs().iter().any(|line| {
                line.contains("\"user_bytes\":20480") && !line.contains(&"a".repeat(300))
            })
        },
    )
    .await;
    let (code, body) = status(&sidecar, "private-proxy", Some(ALICE)).await;
    assert_eq!(
        code, 403,
        "a known user who may not read the project: {body}"
    );

    let (code, body) = purge(&sidecar, "hub-proxy", "", ALICE).await;
    assert_eq!(code, 403, "a developer may not purge: {body}");
    assert_eq!(
        purge(&sidecar, "hub-proxy", "", PAM).await,
        (200, json!({"purged": 0, "registry_id": 1, "redis": "off"}))
    );
    assert_eq!(
        purge(&sidecar, "hub-proxy", "", ADMIN).await.0,
        200,
        "a system admin may"
    );
    assert_eq!(purge(&sidecar, "no-such-project", "", ADMIN).await.0, 404);
    let (code, body) = purge(&sidecar, "hub-proxy", "?digest=sha256:abc", PAM).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = purge(&sidecar, "hub-proxy", "?repository=Team/App", PAM).await;
    assert_eq!(code, 400, "{body}");

    let count = async |result: OperatorResult| {
        sidecar
            .metric(&metrics::operator_requests(Endpoint::Purge, result))
            .await
    };
    assert_eq!(
        (
            count(OperatorResult::Ok).await,
            count(OperatorResult::Unauthorized).await,
            count(OperatorResult::Forbidden).await
        ),
        (2.0, 1.0, 1.0)
    );
    assert_eq!(
        (
            count(OperatorResult::NotFound).await,
            count(OperatorResult::Invalid).await
        ),
        (1.0, 2.0)
    );
    let logs = sidecar.logs().join("\n");
    for user in ["alice", "pam", "admin"] {
        assert!(
            logs.contains(&format!("\"user\":\"{user}\"")),
            "{user} not logged"
        );
    }
    assert!(!logs.contains("not-her-password") && !logs.contains(PAM.password));
}

#[tokio::test]
async fn a_purge_by_a_project_admin_reaches_both_replicas_sharing_redis() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .account(PAM.project_admin(&["hub-proxy"]))
        .start();
    let redis = RedisServer::start();
    let shared = |s: &mut Settings| s.redis(&redis.url(10));
    let first = world.sidecar_with(shared);
    let second = world.sidecar_with(shared);
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");
    for replica in [&first, &second] {
        wait_for_metric(replica, &metrics::cache_purge_subscribed(), 1.0).await;
    }

    // Both replicas hold the list in memory.
    let before = ask(&first, &path).await;
    assert_eq!((before.cache.as_str(), before.digests.len()), ("miss", 3));
    assert_eq!(ask(&second, &path).await.cache, "hit");
    assert_eq!(mirror.referrers_requests(), 1);

    // The upstream re-signs the image: the cached lists do not know it yet.
    let resigned = Pusher::new(&mirror.url())
        .push_referrer(
            &mirror.repository,
            &mirror.sample.subject,
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            json!({"dev.sigstore.cosign/signer": "re-signed"}),
        )
        .await;
    for replica in [&first, &second] {
        assert!(!ask(replica, &path).await.digests.contains(&resigned.digest));
    }
    assert_eq!(mirror.referrers_requests(), 1);

    let (code, body) = purge(&first, "hub-proxy", "?repository=team/app", PAM).await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"purged": 1, "registry_id": 1, "repository": "team/app", "redis": "purged"})
        )
    );
    wait_for_metric(&second, &metrics::cache_purges_received(), 1.0).await;
    assert!(redis.client(10).keys("referrers-sidecar:v2:*").is_empty());

    // The next request on each replica finds no list in its memory; the first fetches from
    // the upstream, the second is served what that fetch stored in Redis.
    let memory_misses = async |replica: &Sidecar| {
        replica
            .metric(&metrics::cache_lookups(Tier::Memory, CacheResult::Miss))
            .await
    };
    let (first_misses, second_misses) = (memory_misses(&first).await, memory_misses(&second).await);
    let refetched = ask(&first, &path).await;
    assert_eq!(refetched.cache, "miss");
    assert!(
        refetched.digests.contains(&resigned.digest),
        "{refetched:?}"
    );
    assert_eq!(
        mirror.referrers_requests(),
        2,
        "one upstream fetch after the purge"
    );
    let shared_answer = ask(&second, &path).await;
    assert!(
        shared_answer.digests.contains(&resigned.digest),
        "{shared_answer:?}"
    );
    assert_eq!(memory_misses(&first).await, first_misses + 1.0);
    assert_eq!(memory_misses(&second).await, second_misses + 1.0);
    assert_eq!(
        first.metric(&metrics::cache_purges(Purge::Purged)).await,
        1.0
    );
    assert_eq!(
        first.metric(&metrics::cache_purges_received()).await,
        0.0,
        "its own purge is not counted twice"
    );
}

#[tokio::test]
async fn a_replica_listens_again_after_redis_restarts_and_purges_by_subject() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .account(PAM.project_admin(&["hub-proxy"]))
        .start();
    let mut redis = RedisServer::start();
    let shared = |s: &mut Settings| s.redis(&redis.url(10));
    let first = world.sidecar_with(shared);
    let second = world.sidecar_with(shared);
    for replica in [&first, &second] {
        wait_for_metric(replica, &metrics::cache_purge_subscribed(), 1.0).await;
    }
    redis.restart();
    for replica in [&first, &second] {
        eventually("listening for purges again", async || {
            replica
                .logs()
                .iter()
                .any(|line| line.contains("listening for purges again"))
        })
        .await;
        wait_for_metric(replica, &metrics::cache_purge_subscribed(), 1.0).await;
    }
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");
    assert_eq!(ask(&first, &path).await.cache, "miss");
    assert_eq!(ask(&second, &path).await.cache, "hit");

    let subject = &mirror.sample.subject.digest;
    let (code, body) = purge(
        &second,
        "hub-proxy",
        &format!("?repository=team/app&digest={subject}"),
        PAM,
    )
    .await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"purged": 1, "registry_id": 1, "repository": "team/app",
                "digest": subject, "redis": "purged"})
        )
    );
    wait_for_metric(&first, &metrics::cache_purges_received(), 1.0).await;
    assert_eq!(ask(&first, &path).await.cache, "miss");
    assert_eq!(mirror.referrers_requests(), 2);
}

#[tokio::test]
async fn a_replica_listens_again_after_redis_froze_with_its_connection_open() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .start();
    let redis = RedisServer::start();
    let sidecar = world.sidecar_with(|s| {
        s.redis(&redis.url(10));
        s.cache.redis_timeout = Duration::from_millis(250);
    });
    wait_for_metric(&sidecar, &metrics::cache_purge_subscribed(), 1.0).await;
    // Frozen, Redis keeps every connection open: only an unanswered PING tells.
    redis.pause();
    eventually("the subscription given up", async || {
        sidecar.metric(&metrics::cache_purge_subscribed()).await == 0.0
    })
    .await;
    redis.resume();
    eventually("listening for purges again", async || {
        sidecar
            .logs()
            .iter()
            .any(|line| line.contains("listening for purges again"))
    })
    .await;
    wait_for_metric(&sidecar, &metrics::cache_purge_subscribed(), 1.0).await;
}

/// The `errors[0]` of an error body, with its request id: a fixed message and the id, in
/// Harbor's shape.
fn error_of(body: &Value) -> (&str, &str, &str) {
    let error = &body["errors"][0];
    let text = |key: &str| {
        error[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {body}"))
    };
    (text("code"), text("message"), text("request_id"))
}

/// An error body's text without its request id (a random id may hold any digits).
fn text_without_id(body: &Value) -> String {
    let mut body = body.clone();
    if let Some(error) = body["errors"][0].as_object_mut() {
        error.remove("request_id");
    }
    body.to_string()
}

/// The sidecar's log lines in the span of request `id`.
fn lines_of(sidecar: &Sidecar, id: &str) -> Vec<Value> {
    sidecar
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == id)
        .collect()
}

#[tokio::test]
async fn with_core_down_an_operator_error_shows_no_address_and_carries_the_request_id() {
    // Nothing listens on core's port.
    let port = e2e::ports::free_port().to_string();
    let core = format!("http://127.0.0.1:{port}");
    let sidecar = Sidecar::start(&e2e::config::for_core(&core).with(|s| s.enable(&["hub-proxy"])));

    let (code, body) = status(&sidecar, "hub-proxy", Some(ALICE)).await;
    let (code_purge, body_purge) = purge(&sidecar, "hub-proxy", "", PAM).await;
    for (code, body) in [(code, &body), (code_purge, &body_purge)] {
        assert_eq!(code, 502, "{body}");
        let (error, message, id) = error_of(body);
        assert_eq!(error, "UNAVAILABLE", "{body}");
        assert!(message.contains("log"), "says where the detail is: {body}");
        let text = text_without_id(body);
        for internal in ["127.0.0.1", &port, "unreachable", "connect", "send"] {
            assert!(!text.contains(internal), "{internal:?} in {text}");
        }
        // The detail is in the log, under the same id.
        eventually(
            "the detail is logged under the answer's request id",
            async || {
                lines_of(&sidecar, id).iter().any(|line| {
                    line["message"] == "operator API: cannot ask Harbor about the caller"
                        && line["error"]
                            .as_str()
                            .is_some_and(|error| error.contains("Harbor core"))
                })
            },
        )
        .await;
    }
    assert_ne!(
        error_of(&body).2,
        error_of(&body_purge).2,
        "each call has its own id"
    );
    assert_eq!(
        sidecar
            .metric(&metrics::operator_requests(
                Endpoint::Status,
                OperatorResult::Unavailable
            ))
            .await,
        1.0
    );

    // A request id the caller sent is the answer's.
    let response = e2e::http_client()
        .get(sidecar.url(&status_path("hub-proxy")))
        .basic_auth(ALICE.name, Some(ALICE.password))
        .header("x-request-id", "operator-call-1")
        .send()
        .await
        .expect("status request");
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(error_of(&body).2, "operator-call-1", "{body}");
}

#[tokio::test]
async fn a_purge_whose_project_cannot_be_read_answers_no_robot_side_text() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .account(PAM.project_admin(&["hub-proxy"]))
        .start();
    // Harbor refuses the sidecar's robot account: the project's facts cannot be read.
    let sidecar = world.sidecar_with(|s| s.robot(e2e::users::BOB));

    let (code, body) = purge(&sidecar, "hub-proxy", "?repository=library/nginx", PAM).await;
    assert_eq!(code, 502, "{body}");
    let (error, _, id) = error_of(&body);
    assert_eq!(error, "UNAVAILABLE", "{body}");
    let text = text_without_id(&body);
    for internal in ["127.0.0.1", "robot", "credentials", "expired", "401"] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
    eventually(
        "the purge's failure is logged under its request id",
        async || {
            lines_of(&sidecar, id)
                .iter()
                .any(|line| line["message"] == "operator API: purge failed")
        },
    )
    .await;

    // A query that is not repository and digest: 400 as before, without serde's text.
    let (code, body) = purge(&sidecar, "hub-proxy", "?repo=library/nginx", PAM).await;
    assert_eq!(code, 400, "{body}");
    let (error, message, _) = error_of(&body);
    assert_eq!(error, "BAD_REQUEST");
    assert!(
        !message.contains("unknown field") && !message.contains('`'),
        "{message}"
    );
}

#[tokio::test]
async fn the_status_reports_an_unreachable_registry_by_its_state_code() {
    let down = format!("http://127.0.0.1:{}/", e2e::ports::free_port());
    let world = World::hub_proxy_over("down", &down);
    let sidecar = world.sidecar();

    let (code, answer) = status(&sidecar, "hub-proxy", Some(ALICE)).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["registry"]["state"], "ok",
        "not called yet: {answer}"
    );

    // A referrers request: the upstream refuses the connection.
    let subject = format!("sha256:{}", "a".repeat(64));
    let reply = e2e::world::reply(
        &sidecar,
        &e2e::world::referrers_path("hub-proxy/library/nginx", &subject),
    )
    .await;
    assert_eq!(reply.upstream, "error", "{reply:?}");

    let (_, answer) = status(&sidecar, "hub-proxy", Some(ALICE)).await;
    let registry = &answer["registry"];
    assert_eq!(
        (&registry["state"], &registry["breaker"], &registry["name"]),
        (&json!("unreachable"), &json!("closed"), &json!("down")),
        "{answer}"
    );
    assert!(registry.get("error").is_none(), "no error text: {answer}");

    // Harbor's facts about the registry cannot be read with the robot: it cannot be called.
    world
        .harbor
        .configure(|harbor| harbor.registries_api_readable = false);
    let blind = world.sidecar();
    let (code, answer) = status(&blind, "hub-proxy", Some(ALICE)).await;
    assert_eq!(code, 200, "{answer}");
    let registry = &answer["registry"];
    assert_eq!(registry["state"], "unreachable", "{answer}");
    assert!(registry.get("name").is_none(), "{answer}");
    let text = answer.to_string();
    for internal in ["robot", "registries", "facts for"] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
}
