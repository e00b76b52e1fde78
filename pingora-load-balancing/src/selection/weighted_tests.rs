use super::super::algorithms::{Random, RoundRobin};
use super::*;
use std::collections::HashMap;

fn backends(spec: &[(&str, usize)]) -> BTreeSet<Backend> {
    spec.iter()
        .map(|(addr, w)| Backend::new_with_weight(addr, *w).expect("valid address"))
        .collect()
}

fn first_picks<H: SelectionAlgorithm>(
    sel: &Arc<Weighted<H>>,
    n: usize,
    key: impl Fn(usize) -> Vec<u8>,
) -> HashMap<Backend, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let picked = sel.iter(&key(i)).next().expect("non-empty").clone();
        *counts.entry(picked).or_insert(0) += 1;
    }
    counts
}

#[test]
fn round_robin_cycles_in_order() {
    let set = backends(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)]);
    let sel: Arc<Weighted<RoundRobin>> = Arc::new(Weighted::build(&set));
    let order: Vec<Backend> = set.iter().cloned().collect();
    for round in 0..3 {
        for expected in &order {
            let mut it = sel.iter(b"ignored");
            assert_eq!(it.next(), Some(expected), "round {round}");
        }
    }
}

#[test]
fn round_robin_splits_evenly() {
    let set = backends(&[
        ("10.0.0.1:80", 1),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 1),
        ("10.0.0.4:80", 1),
    ]);
    let sel: Arc<Weighted<RoundRobin>> = Arc::new(Weighted::build(&set));
    let counts = first_picks(&sel, 4000, |_| Vec::new());
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&c| c == 1000), "{counts:?}");
}

#[test]
fn round_robin_honours_weights_exactly_and_interleaves() {
    let set = backends(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 8), ("10.0.0.3:80", 1)]);
    let sel: Arc<Weighted<RoundRobin>> = Arc::new(Weighted::build(&set));
    let counts = first_picks(&sel, 1000, |_| Vec::new());
    let heavy = Backend::new_with_weight("10.0.0.2:80", 8).expect("valid");
    assert_eq!(counts[&heavy], 800);
    // the light backends are not adjacent in the cycle: the heavy one is
    // never picked more than 4 times in a row
    let table = sel.table();
    let heavy_idx = 1u32;
    let mut run = 0;
    let mut longest = 0;
    for &slot in table.iter().chain(table.iter()) {
        run = if slot == heavy_idx { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    assert!(longest <= 4, "longest run {longest} in {table:?}");
}

#[test]
fn fnv_is_deterministic_and_weighted() {
    let set = backends(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 3), ("10.0.0.3:80", 1)]);
    let sel: Arc<Weighted> = Arc::new(Weighted::build(&set));
    let again: Arc<Weighted> = Arc::new(Weighted::build(&set));
    for i in 0..100 {
        let key = format!("user-{i}");
        let a = sel.iter(key.as_bytes()).next().cloned();
        let b = sel.iter(key.as_bytes()).next().cloned();
        let c = again.iter(key.as_bytes()).next().cloned();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
    let counts = first_picks(&sel, 10_000, |i| format!("key{i}").into_bytes());
    let heavy = Backend::new_with_weight("10.0.0.2:80", 3).expect("valid");
    let share = counts[&heavy] as f64 / 10_000.0;
    assert!((0.55..0.65).contains(&share), "heavy share {share}");
}

#[test]
fn random_honours_weights() {
    let set = backends(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 8), ("10.0.0.3:80", 1)]);
    let sel: Arc<Weighted<Random>> = Arc::new(Weighted::build(&set));
    let counts = first_picks(&sel, 10_000, |_| Vec::new());
    let heavy = Backend::new_with_weight("10.0.0.2:80", 8).expect("valid");
    let share = counts[&heavy] as f64 / 10_000.0;
    assert!((0.75..0.85).contains(&share), "heavy share {share}");
    assert_eq!(counts.len(), 3);
}

#[test]
fn fallbacks_visit_every_backend_once() {
    let set: BTreeSet<Backend> = (1..=7)
        .map(|i| Backend::new(&format!("10.0.0.{i}:80")).expect("valid"))
        .collect();
    let sel: Arc<Weighted> = Arc::new(Weighted::build(&set));
    for k in 0..50 {
        let mut it = sel.iter(format!("k{k}").as_bytes());
        let mut seen = BTreeSet::new();
        while let Some(b) = it.next() {
            assert!(seen.insert(b.clone()), "repeated {b:?}");
        }
        assert_eq!(seen, set);
    }
}

#[test]
fn empty_and_zero_weights() {
    let sel: Arc<Weighted> = Arc::new(Weighted::build(&BTreeSet::new()));
    assert!(sel.iter(b"k").next().is_none());

    let set = backends(&[("10.0.0.1:80", 0), ("10.0.0.2:80", 0)]);
    let sel: Arc<Weighted> = Arc::new(Weighted::build(&set));
    assert!(sel.iter(b"k").next().is_some());

    // weight 0 never wins a first pick when others have weight
    let set = backends(&[("10.0.0.1:80", 0), ("10.0.0.2:80", 1)]);
    let sel: Arc<Weighted<RoundRobin>> = Arc::new(Weighted::build(&set));
    let zero = Backend::new_with_weight("10.0.0.1:80", 0).expect("valid");
    for _ in 0..10 {
        let mut it = sel.iter(b"");
        assert_ne!(it.next(), Some(&zero));
        assert_eq!(it.next(), Some(&zero)); // still a fallback
    }
}

#[test]
fn huge_weights_are_bounded() {
    let set = backends(&[
        ("10.0.0.1:80", usize::MAX),
        ("10.0.0.2:80", usize::MAX / 2),
        ("10.0.0.3:80", 1),
    ]);
    let sel: Arc<Weighted<RoundRobin>> = Arc::new(Weighted::build(&set));
    assert!(sel.table().len() as u64 <= MAX_WEIGHTED_SLOTS + 3);
    let counts = first_picks(&sel, sel.table().len(), |_| Vec::new());
    assert_eq!(counts.len(), 3, "every non-zero weight keeps a slot");
}

#[test]
fn weights_are_reduced_by_common_divisor() {
    assert_eq!(
        normalized_weights([10, 20, 30].into_iter(), 100),
        vec![1, 2, 3]
    );
    assert_eq!(normalized_weights([0, 4].into_iter(), 100), vec![0, 1]);
    assert_eq!(normalized_weights([300, 100].into_iter(), 2), vec![1, 1]);
}
