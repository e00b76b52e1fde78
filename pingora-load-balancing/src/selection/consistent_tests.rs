use super::*;
use crate::hashing::mix64;
use std::collections::HashMap;

fn set(n: usize) -> BTreeSet<Backend> {
    (1..=n)
        .map(|i| Backend::new(&format!("10.0.{}.{}:80", i / 256, i % 256)).expect("valid"))
        .collect()
}

fn owner(ring: &Arc<KetamaHashing>, key: &str) -> Backend {
    ring.iter(key.as_bytes())
        .next()
        .expect("non-empty ring")
        .clone()
}

#[test]
fn mapping_is_stable_across_builds() {
    let backends = set(5);
    let a = Arc::new(KetamaHashing::build(&backends));
    let b = Arc::new(KetamaHashing::build(&backends));
    for i in 0..1000 {
        let key = format!("key-{i}");
        assert_eq!(owner(&a, &key), owner(&b, &key));
    }
}

#[test]
fn removal_only_moves_keys_of_removed_backend() {
    let backends = set(10);
    let before = Arc::new(KetamaHashing::build(&backends));
    let removed = backends.iter().nth(3).expect("10 backends").clone();
    let mut rest = backends.clone();
    rest.remove(&removed);
    let after = Arc::new(KetamaHashing::build(&rest));

    let mut moved = 0;
    for i in 0..10_000 {
        let key = format!("key-{i}");
        let was = owner(&before, &key);
        let now = owner(&after, &key);
        if was == removed {
            assert_ne!(now, removed);
            moved += 1;
        } else {
            assert_eq!(was, now, "key {key} moved although its owner stayed");
        }
    }
    // the removed backend owned about a tenth of the keys
    assert!((500..1500).contains(&moved), "moved {moved}");
}

#[test]
fn addition_takes_about_its_share() {
    let backends = set(9);
    let before = Arc::new(KetamaHashing::build(&backends));
    let mut more = backends.clone();
    let added = Backend::new("10.9.9.9:80").expect("valid");
    more.insert(added.clone());
    let after = Arc::new(KetamaHashing::build(&more));
    let mut moved = 0;
    for i in 0..10_000 {
        let key = format!("key-{i}");
        let now = owner(&after, &key);
        if now != owner(&before, &key) {
            assert_eq!(now, added, "keys only move to the new backend");
            moved += 1;
        }
    }
    assert!((500..1500).contains(&moved), "moved {moved}");
}

#[test]
fn weights_are_honoured() {
    let mut backends = set(3);
    let heavy = Backend::new_with_weight("10.1.0.1:80", 3).expect("valid");
    backends.insert(heavy.clone());
    let ring = Arc::new(KetamaHashing::build(&backends));
    let mut counts: HashMap<Backend, usize> = HashMap::new();
    for i in 0..20_000 {
        *counts.entry(owner(&ring, &format!("k{i}"))).or_insert(0) += 1;
    }
    // weights 1,1,1,3: the heavy backend should get about half
    let share = counts[&heavy] as f64 / 20_000.0;
    assert!((0.4..0.6).contains(&share), "heavy share {share}");
}

#[test]
fn iterator_walks_distinct_neighbours_and_ends() {
    let backends = set(4);
    let ring = Arc::new(KetamaHashing::build(&backends));
    let mut it = ring.iter(b"some key");
    let mut distinct = BTreeSet::new();
    let mut last = None;
    let mut steps = 0;
    while let Some(b) = it.next() {
        assert_ne!(Some(b.clone()), last, "no immediate repeats");
        last = Some(b.clone());
        distinct.insert(b.clone());
        steps += 1;
    }
    assert_eq!(distinct, backends);
    assert!(steps <= 4 * DEFAULT_POINT_MULTIPLE as usize);
}

#[test]
fn config_and_edge_cases() {
    let ring = Arc::new(KetamaHashing::build(&BTreeSet::new()));
    assert!(ring.iter(b"k").next().is_none());

    let backends = set(2);
    let small = KetamaConfig {
        point_multiple: Some(1),
    };
    let ring = Arc::new(KetamaHashing::build_with_config(&backends, &small));
    assert_eq!(ring.ring.len(), 2);

    let zero = BTreeSet::from([Backend::new_with_weight("10.0.0.1:80", 0).expect("valid")]);
    let ring = Arc::new(KetamaHashing::build(&zero));
    assert!(ring.iter(b"k").next().is_none());

    let huge = BTreeSet::from([
        Backend::new_with_weight("10.0.0.1:80", usize::MAX).expect("valid"),
        Backend::new_with_weight("10.0.0.2:80", 1).expect("valid"),
    ]);
    let ring = Arc::new(KetamaHashing::build(&huge));
    assert!(ring.ring.len() as u64 <= MAX_RING_POINTS + 2);

    let unix = BTreeSet::from([Backend::new("unix:/tmp/a.sock").expect("valid")]);
    let ring = Arc::new(KetamaHashing::build(&unix));
    assert!(ring.iter(b"k").next().is_some());
}

#[test]
fn bucketed_lookup_matches_binary_search() {
    for n in [1, 3, 10, 100] {
        let ring = KetamaHashing::build(&set(n));
        let probes = (0..2000u64)
            .map(mix64)
            .chain([0, 1, u64::MAX, u64::MAX - 1])
            .chain(ring.ring.iter().map(|&(p, _)| p));
        for point in probes {
            let expected = ring.ring.partition_point(|&(p, _)| p < point);
            assert_eq!(ring.locate(point), expected, "n={n} point={point}");
        }
    }
    let empty = KetamaHashing::build(&BTreeSet::new());
    assert_eq!(empty.locate(12345), 0);
}
