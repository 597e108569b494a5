//! The key scheme: what keys tell apart, their exact strings (shared with replicas of other
//! versions), where a list is indexed, and which keys each purge scope takes.

use registry_client::{Registry, RegistryKind};

use super::*;
use crate::upstream::registry_scope;

fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn key(namespace: &str, registry_id: i64, repository: &str, subject: char) -> String {
    let registry = Registry {
        name: "hub".into(),
        base_url: "https://registry.example/".parse().unwrap(),
        kind: RegistryKind::Distribution,
        insecure: false,
        credentials: None,
    };
    cache_key(
        namespace,
        registry_id,
        &registry_scope(&registry),
        repository,
        &digest(subject),
    )
}

#[test]
fn each_scope_takes_its_lists_and_no_others() {
    let ns = "ns";
    let keys = [
        key(ns, 3, "library/nginx", 'a'),
        key(ns, 3, "library/nginx", 'b'),
        key(ns, 3, "team/library/nginx", 'a'),
        key(ns, 3, "library/nginx-old", 'a'),
        key(ns, 31, "library/nginx", 'a'),
        key("other", 3, "library/nginx", 'a'),
    ];
    let scopes = [
        (
            PurgeScope {
                registry_id: 3,
                repository: None,
                digest: None,
            },
            vec![0, 1, 2, 3],
        ),
        (
            PurgeScope {
                registry_id: 3,
                repository: Some("library/nginx".into()),
                digest: None,
            },
            vec![0, 1],
        ),
        (
            PurgeScope {
                registry_id: 3,
                repository: Some("library/nginx".into()),
                digest: Some(digest('b')),
            },
            vec![1],
        ),
    ];
    for (scope, expected) in scopes {
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(
                scope.matches(ns, key),
                expected.contains(&i),
                "{scope:?} {key}"
            );
            assert!(!scope.matches(ns, &lock_key(key)), "a lock is no list");
        }
    }
}

#[test]
fn a_list_key_is_taken_apart_and_nothing_else_is() {
    let key = key("ns", 3, "team/library/nginx", 'a');
    assert_eq!(
        ListKey::parse("ns", &key),
        Some(ListKey {
            registry_id: 3,
            repository: "team/library/nginx",
            digest: digest('a'),
        })
    );
    assert_eq!(ListKey::parse("other", &key), None, "another namespace");
    assert_eq!(ListKey::parse("n", &key), None, "a namespace's prefix");
    assert_eq!(ListKey::parse("ns", &lock_key(&key)), None, "a lock");
    let index = ListIndex::of("ns", &key).expect("a list's index");
    for not_a_list in [
        index.repository_index.clone(),
        index.registry_index.clone(),
        claim_key("ns", "hub/team/app@sha256:0"),
        key.replacen(":3:", ":03:", 1),
        key.replacen(":3:", ":+3:", 1),
    ] {
        assert_eq!(ListKey::parse("ns", &not_a_list), None, "{not_a_list}");
    }
}

/// Replicas of the previous version share Redis with this one: every string is pinned.
#[test]
fn keys_and_channels_are_the_strings_every_version_shares() {
    let d = digest('c');
    let list = cache_key("ns", 3, "0a1b:2c3d", "library/nginx", &d);
    assert_eq!(
        list,
        format!("referrers-sidecar:v2:ns:3:0a1b:2c3d:library/nginx@{d}")
    );
    assert_eq!(lock_key(&list), format!("{list}:lock"));
    assert_eq!(
        claim_key("ns", &format!("hub/team/app@{d}")),
        format!("referrers-sidecar:v2:ns:stored:hub/team/app@{d}")
    );
    assert_eq!(purge_channel("ns"), "referrers-sidecar:v2:ns:purge");
    assert_eq!(
        ListIndex::of("ns", &list),
        Some(ListIndex {
            repository_index: "referrers-sidecar:v2:ns:lists:3:library/nginx".into(),
            registry_index: "referrers-sidecar:v2:ns:lists:3".into(),
            repository: "library/nginx".into(),
        })
    );
    assert_eq!(registry_index("ns", 3), "referrers-sidecar:v2:ns:lists:3");
}

fn registry(url: &str, user: Option<(&str, &str)>) -> Registry {
    Registry {
        name: "hub".into(),
        base_url: url.parse().unwrap(),
        kind: registry_client::RegistryKind::Distribution,
        insecure: false,
        credentials: user.map(|(username, password)| registry_client::Credentials {
            username: username.into(),
            password: password.into(),
            bound_host: "a.example".into(),
        }),
    }
}

#[test]
fn keys_name_namespace_registry_url_identity_repository_and_digest() {
    let digest: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
    let key = |namespace: &str, registry: &Registry| {
        cache_key(
            namespace,
            3,
            &registry_scope(registry),
            "library/nginx",
            &digest,
        )
    };
    let anonymous = registry("https://a.example/", None);
    let alice = registry("https://a.example/", Some(("alice", "one")));
    let a = key("harbor-a", &anonymous);
    assert!(a.starts_with("referrers-sidecar:v2:harbor-a:3:"), "{a}");
    assert!(a.ends_with(&format!(":library/nginx@{digest}")), "{a}");

    assert_eq!(a, key("harbor-a", &anonymous.clone()));
    assert_ne!(a, key("harbor-b", &anonymous), "another namespace");
    assert_ne!(
        a,
        key("harbor-a", &registry("https://b.example/", None)),
        "another upstream URL"
    );
    assert_ne!(a, key("harbor-a", &alice), "credentials");
    assert_ne!(
        key("harbor-a", &alice),
        key(
            "harbor-a",
            &registry("https://a.example/", Some(("bob", "one")))
        ),
        "another user"
    );
    let rotated = key(
        "harbor-a",
        &registry("https://a.example/", Some(("alice", "two"))),
    );
    assert_eq!(
        key("harbor-a", &alice),
        rotated,
        "the secret is no part of it"
    );
    assert!(
        !rotated.contains("alice") && !rotated.contains("two"),
        "{rotated}"
    );
    // Credentials bound to another host are not used: the fetch is anonymous.
    let unbound = registry("https://b.example/", Some(("alice", "one")));
    assert_eq!(
        key("harbor-a", &unbound),
        key("harbor-a", &registry("https://b.example/", None))
    );
}

#[test]
fn the_namespace_is_the_configured_one_else_a_hash_of_harbors_url() {
    let core: Url = "https://core-a.example/".parse().unwrap();
    let other: Url = "https://core-b.example/".parse().unwrap();
    assert_eq!(namespace(Some("shared"), &core), "shared");
    assert_eq!(namespace(None, &core), namespace(None, &core));
    assert_ne!(namespace(None, &core), namespace(None, &other));
    assert_eq!(namespace(None, &core).len(), 16);
}
