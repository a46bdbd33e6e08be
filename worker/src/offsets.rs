//! Which offset may be stored for each partition: the lowest offset still in flight, or one past the highest seen
//! when none is. A message's offset is never stored before every earlier message of its partition has committed its
//! status, so a crash can only make Kafka redeliver, never skip.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct PartitionState {
    in_flight: BTreeSet<i64>,
    highest_seen: i64,
    stored: i64,
}

/// Per-partition in-flight offsets.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionState>,
}

impl OffsetTracker {
    /// A tracker with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` of `partition` has been received and is not done.
    pub fn begin(&mut self, partition: i32, offset: i64) {
        let state = self.partitions.entry(partition).or_insert_with(|| PartitionState {
            in_flight: BTreeSet::new(),
            highest_seen: offset - 1,
            stored: offset,
        });
        if offset <= state.highest_seen {
            // Redelivery from an earlier position (the partition was revoked and assigned back, or the consumer was
            // reset): forget the old window; messages still finishing from it no longer decide anything.
            *state = PartitionState { in_flight: BTreeSet::new(), highest_seen: offset - 1, stored: offset };
        }
        state.in_flight.insert(offset);
        state.highest_seen = offset;
    }

    /// Records that `offset` is done (its status is committed, or it needed none). Returns the next offset to store
    /// for the partition when that moved forward.
    pub fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(&partition)?;
        if !state.in_flight.remove(&offset) {
            return None;
        }
        let next = state.in_flight.first().copied().unwrap_or(state.highest_seen + 1);
        if next > state.stored {
            state.stored = next;
            Some(next)
        } else {
            None
        }
    }

    /// Messages received and not done, across partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::OffsetTracker;

    #[test]
    fn an_offset_is_stored_only_once_every_earlier_one_is_done() {
        let mut t = OffsetTracker::new();
        for o in 10..13 {
            t.begin(0, o);
        }
        assert_eq!(t.finish(0, 12), None, "10 and 11 are still running");
        assert_eq!(t.finish(0, 11), None, "10 is still running");
        assert_eq!(t.finish(0, 10), Some(13), "all done: resume after 12");
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent_and_finishing_twice_changes_nothing() {
        let mut t = OffsetTracker::new();
        t.begin(0, 5);
        t.begin(1, 7);
        t.begin(1, 8);
        assert_eq!(t.finish(1, 7), Some(8));
        assert_eq!(t.finish(1, 7), None);
        assert_eq!(t.finish(0, 5), Some(6));
        assert_eq!(t.finish(1, 8), Some(9));
        assert_eq!(t.finish(2, 1), None, "unknown partition");
    }

    #[test]
    fn a_rewind_resets_the_window() {
        let mut t = OffsetTracker::new();
        t.begin(0, 20);
        t.begin(0, 21);
        t.begin(0, 15); // redelivered from an older committed position
        assert_eq!(t.finish(0, 20), None, "the old window no longer counts");
        assert_eq!(t.finish(0, 15), Some(16));
    }
}
