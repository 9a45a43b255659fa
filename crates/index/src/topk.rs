//! A bounded top-k collector with a deterministic order: smaller distance first, then smaller id.

use std::collections::BinaryHeap;

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Hamming distance to the query (ordering key).
    pub distance: u32,
    /// The item's id (tie-breaker: smaller first).
    pub id: u64,
}

/// Keeps the `k` smallest `(distance, id)` pairs seen.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Hit>,
}

impl TopK {
    /// An empty collector for `k` results.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// The worst hit kept, once `k` are kept: anything not smaller cannot enter.
    #[inline]
    pub fn bound(&self) -> Hit {
        if self.k == 0 {
            return Hit { distance: 0, id: 0 };
        }
        if self.heap.len() < self.k {
            Hit {
                distance: u32::MAX,
                id: u64::MAX,
            }
        } else {
            *self.heap.peek().expect("k > 0 when full")
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if hit < *self.heap.peek().expect("full heap") {
            self.heap.pop();
            self.heap.push(hit);
        }
    }

    /// Merges another collector's hits into this one.
    pub fn merge(&mut self, other: TopK) {
        for hit in other.heap {
            self.push(hit);
        }
    }

    /// The kept hits, best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_smallest_with_id_tie_break() {
        let mut t = TopK::new(3);
        for (d, id) in [(5, 1), (3, 9), (3, 2), (7, 0), (3, 5), (1, 100)] {
            t.push(Hit { distance: d, id });
        }
        let got: Vec<_> = t.into_sorted().iter().map(|h| (h.distance, h.id)).collect();
        assert_eq!(got, vec![(1, 100), (3, 2), (3, 5)]);
    }

    #[test]
    fn zero_k_keeps_nothing() {
        let mut t = TopK::new(0);
        t.push(Hit { distance: 0, id: 0 });
        assert!(t.into_sorted().is_empty());
    }
}
