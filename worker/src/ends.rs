//! What the worker knows, without asking the broker, of whether a priority lane has messages it has not delivered
//! yet: where each assigned partition's log ends (from librdkafka's statistics, which carry the watermarks of the
//! latest fetch answers) against how far the worker has read it.
//!
//! The receive loop asks this before it takes a lower lane's message (see `consumer::catch_up`), so it must cost
//! nothing: a lookup, never a broker request. Asking the broker there (ListOffsets and OffsetFetch per partition,
//! several round trips) held the loop for most of every quarter second under a drain and made it ~2× slower.
//!
//! Both numbers are kept as lower bounds, which is what makes stale ones safe: a log's end only grows, and so does a
//! partition's read position. A fetch answer without offsets (nisshi sends `-1` when its storage is slow) leaves the
//! last known end in place rather than forgetting it.

use std::collections::HashMap;

/// One partition of a lane, as far as the worker knows.
#[derive(Clone, Copy, Debug, Default)]
struct Partition {
    /// The highest end of the log seen in the statistics (the next offset the broker will give a message).
    end: Option<i64>,
    /// The lowest offset the worker may still be delivered: one past the last message it read, or the consumer's
    /// committed/application offset from the statistics before it read any.
    next: Option<i64>,
    /// Assigned to this consumer, as of the latest statistics.
    assigned: bool,
}

/// A lane's partitions: where their logs end and how far the worker has read them.
#[derive(Debug, Default)]
pub(crate) struct LaneEnds {
    partitions: HashMap<i32, Partition>,
}

/// Keeps the larger of two known values.
fn raise(slot: &mut Option<i64>, value: i64) {
    if value >= 0 {
        *slot = Some(slot.map_or(value, |v| v.max(value)));
    }
}

impl LaneEnds {
    /// Records one partition from a statistics report: whether it is assigned, its log end (`-1` when the fetch
    /// answer carried none) and the lowest offset the consumer can still deliver (`-1` when unknown).
    pub(crate) fn observe(&mut self, partition: i32, assigned: bool, end: i64, next: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.assigned = assigned;
        raise(&mut p.end, end);
        raise(&mut p.next, next);
    }

    /// Records that the worker was delivered the message at `offset`.
    pub(crate) fn read(&mut self, partition: i32, offset: i64) {
        raise(&mut self.partitions.entry(partition).or_default().next, offset + 1);
    }

    /// Counts every partition as read to its known end: the loop waited for what that end promised and it did not
    /// come, so it does not wait for the same offsets again (a new end, further on, counts again).
    pub(crate) fn give_up(&mut self) {
        for p in self.partitions.values_mut() {
            if let Some(end) = p.end {
                raise(&mut p.next, end);
            }
        }
    }

    /// Whether an assigned partition's log is known to hold messages beyond what the worker has read. Unknown ends
    /// or positions count as nothing waiting: a broker that does not say slows nothing down.
    pub(crate) fn behind(&self) -> bool {
        self.partitions.values().any(|p| p.assigned && matches!((p.end, p.next), (Some(end), Some(next)) if end > next))
    }
}

#[cfg(test)]
mod tests {
    use super::LaneEnds;

    #[test]
    fn a_partition_is_behind_until_the_worker_has_read_to_its_end() {
        let mut ends = LaneEnds::default();
        ends.observe(0, true, 10, 4);
        assert!(ends.behind(), "the log ends at 10 and the consumer is at 4");
        ends.read(0, 8);
        assert!(ends.behind(), "read to 8, the next is 9, the end is 10");
        ends.read(0, 9);
        assert!(!ends.behind(), "read to the end");
    }

    #[test]
    fn stale_statistics_never_move_a_partition_backwards() {
        let mut ends = LaneEnds::default();
        ends.observe(0, true, 10, 0);
        ends.read(0, 9);
        // A report taken before the worker read those messages, then one from a fetch answer without offsets.
        ends.observe(0, true, 10, 3);
        ends.observe(0, true, -1, -1);
        assert!(!ends.behind(), "the worker's own reads and the known end stand");
        ends.observe(0, true, 12, -1);
        assert!(ends.behind(), "two more messages were published");
    }

    #[test]
    fn after_giving_up_only_a_further_end_counts() {
        let mut ends = LaneEnds::default();
        ends.observe(0, true, 10, 4);
        ends.give_up();
        assert!(!ends.behind(), "offsets 4..10 were waited for and did not come");
        ends.observe(0, true, 11, -1);
        assert!(ends.behind(), "offset 10 is new");
    }

    #[test]
    fn unknown_or_unassigned_partitions_count_as_nothing_waiting() {
        let mut ends = LaneEnds::default();
        ends.observe(0, true, -1, 5);
        ends.observe(1, true, 7, -1);
        assert!(!ends.behind(), "neither partition has both numbers");
        ends.observe(2, false, 9, 1);
        assert!(!ends.behind(), "partition 2 belongs to another member");
        ends.observe(2, true, 9, 1);
        assert!(ends.behind());
    }
}
