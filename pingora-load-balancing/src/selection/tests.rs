use super::*;

/// Yields a fixed sequence.
struct Seq {
    items: Vec<Backend>,
    at: usize,
}

impl BackendIter for Seq {
    fn next(&mut self) -> Option<&Backend> {
        self.at += 1;
        self.items.get(self.at - 1)
    }
}

fn seq(addrs: &[&str]) -> Seq {
    Seq {
        items: addrs
            .iter()
            .map(|a| Backend::new(a).expect("valid address"))
            .collect(),
        at: 0,
    }
}

fn drain<I: BackendIter>(mut it: UniqueIterator<I>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(b) = it.get_next() {
        out.push(format!("{:?}", b.addr));
    }
    out
}

#[test]
fn unique_iterator_dedups() {
    let it = UniqueIterator::new(
        seq(&[
            "1.0.0.1:80",
            "1.0.0.1:80",
            "1.0.0.2:80",
            "1.0.0.1:80",
            "1.0.0.3:80",
        ]),
        100,
    );
    assert_eq!(drain(it).len(), 3);
}

#[test]
fn unique_iterator_respects_max_iterations() {
    let it = UniqueIterator::new(seq(&["1.0.0.1:80", "1.0.0.1:80", "1.0.0.2:80"]), 2);
    // two steps only ever see the duplicate of the first backend
    assert_eq!(drain(it).len(), 1);
    let it = UniqueIterator::new(seq(&["1.0.0.1:80", "1.0.0.2:80"]), 0);
    assert!(drain(it).is_empty());
}

#[test]
fn unique_iterator_spills_past_inline_capacity() {
    let addrs: Vec<String> = (1..=20).map(|i| format!("10.0.0.{i}:80")).collect();
    let mut doubled: Vec<&str> = addrs.iter().map(String::as_str).collect();
    doubled.extend(addrs.iter().map(String::as_str));
    let it = UniqueIterator::new(seq(&doubled), 1000);
    assert_eq!(drain(it).len(), 20);
}
