//! Which offset may be stored for each partition: the lowest offset still in flight, or one past the highest seen
//! when none is. A message's offset is never stored before every earlier message of its partition has committed its
//! status, so a crash can only make Kafka redeliver, never skip. A packed record (several dispatches) stays in flight
//! until every one of its dispatches is done.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets in flight, each with its dispatches not yet done.
    in_flight: BTreeMap<i64, usize>,
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

    /// Records that `offset` of `partition` has been received, carrying `parts` dispatches (at least one: an
    /// undecodable record is one), none of them done.
    pub fn begin(&mut self, partition: i32, offset: i64, parts: usize) {
        let state = self.partitions.entry(partition).or_insert_with(|| PartitionState {
            in_flight: BTreeMap::new(),
            highest_seen: offset - 1,
            stored: offset,
        });
        if offset <= state.highest_seen {
            // Redelivery from an earlier position (the partition was revoked and assigned back, or the consumer was
            // reset): forget the old window; messages still finishing from it no longer decide anything.
            *state = PartitionState { in_flight: BTreeMap::new(), highest_seen: offset - 1, stored: offset };
        }
        state.in_flight.insert(offset, parts.max(1));
        state.highest_seen = offset;
    }

    /// Records that one dispatch of `offset` is done (its status is committed, or it needed none). Returns the next
    /// offset to store for the partition when that moved forward: only once the record's last dispatch is done.
    pub fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(&partition)?;
        let left = state.in_flight.get_mut(&offset)?;
        *left -= 1;
        if *left > 0 {
            return None;
        }
        state.in_flight.remove(&offset);
        let next = state.in_flight.first_key_value().map_or(state.highest_seen + 1, |(o, _)| *o);
        if next > state.stored {
            state.stored = next;
            Some(next)
        } else {
            None
        }
    }

    /// Each partition as `partition: stored S, N in flight from L` (for a debug line at shutdown).
    pub fn summary(&self) -> String {
        let mut parts: Vec<(&i32, &PartitionState)> = self.partitions.iter().collect();
        parts.sort_by_key(|(p, _)| **p);
        parts
            .iter()
            .map(|(p, s)| {
                format!(
                    "{p}: stored {}, {} in flight from {:?}",
                    s.stored,
                    s.in_flight.len(),
                    s.in_flight.keys().next()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Records received and not done, across partitions.
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
            t.begin(0, o, 1);
        }
        assert_eq!(t.finish(0, 12), None, "10 and 11 are still running");
        assert_eq!(t.finish(0, 11), None, "10 is still running");
        assert_eq!(t.finish(0, 10), Some(13), "all done: resume after 12");
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent_and_finishing_twice_changes_nothing() {
        let mut t = OffsetTracker::new();
        t.begin(0, 5, 1);
        t.begin(1, 7, 1);
        t.begin(1, 8, 1);
        assert_eq!(t.finish(1, 7), Some(8));
        assert_eq!(t.finish(1, 7), None);
        assert_eq!(t.finish(0, 5), Some(6));
        assert_eq!(t.finish(1, 8), Some(9));
        assert_eq!(t.finish(2, 1), None, "unknown partition");
    }

    #[test]
    fn a_rewind_resets_the_window() {
        let mut t = OffsetTracker::new();
        t.begin(0, 20, 1);
        t.begin(0, 21, 1);
        t.begin(0, 15, 1); // redelivered from an older committed position
        assert_eq!(t.finish(0, 20), None, "the old window no longer counts");
        assert_eq!(t.finish(0, 15), Some(16));
    }

    #[test]
    fn a_packed_record_is_stored_past_only_once_its_last_dispatch_is_done() {
        let mut t = OffsetTracker::new();
        t.begin(0, 30, 3);
        t.begin(0, 31, 1);
        assert_eq!(t.finish(0, 31), None, "30 still has dispatches running");
        assert_eq!(t.finish(0, 30), None, "two of 30's dispatches left");
        assert_eq!(t.finish(0, 30), None, "one of 30's dispatches left");
        assert_eq!(t.finish(0, 30), Some(32), "30 done: resume after 31");
        assert_eq!(t.finish(0, 30), None, "finishing more than it carried changes nothing");
        assert_eq!(t.in_flight(), 0);
    }
}
