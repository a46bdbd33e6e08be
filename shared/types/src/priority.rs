//! Job priority: three named levels, each dispatched through a Kafka topic of its own (a *lane*).
//!
//! Kafka has no priority within a topic: a consumer reads each partition in order. So a job's priority chooses the
//! topic its dispatches travel on, and a worker reads its lanes highest first: whenever a slot frees up, a waiting
//! `high` dispatch is taken before any `normal` one, and a `normal` one before any `low` one. The relay, for its
//! part, publishes due outbox rows highest priority first. Within one level, jobs keep their order.
//!
//! Three named levels rather than Oban's 0–9: each level costs a topic and a consumer per worker, and three cover
//! what queues are usually split by (interactive, default, bulk).

use serde::{Deserialize, Serialize};

/// A job's priority. Stored as a `smallint` (`low` 0, `normal` 1, `high` 2), so `ORDER BY priority DESC` is highest
/// first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Bulk work: taken only when no `normal` or `high` dispatch waits.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Interactive work: taken before any other waiting dispatch.
    High,
}

impl Priority {
    /// Every level, highest first: the order a worker reads its lanes in.
    pub const HIGHEST_FIRST: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The stored value.
    pub fn as_i16(self) -> i16 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    /// The level of a stored value; anything unknown reads as `normal` (the column has a CHECK, so only a later
    /// release could write one).
    pub fn from_i16(v: i16) -> Self {
        match v {
            0 => Priority::Low,
            2 => Priority::High,
            _ => Priority::Normal,
        }
    }

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }

    /// The topic this level's dispatches travel on, given the base topic (`ACKBOX_TOPIC`, or a kind's own topic):
    /// `normal` keeps the base topic itself (so a deployment from before priorities reads on unchanged), `high` and
    /// `low` add `.high` and `.low`.
    pub fn lane_topic(self, base: &str) -> String {
        match self {
            Priority::Normal => base.to_string(),
            other => format!("{base}.{}", other.as_str()),
        }
    }

    /// The consumer group that reads this level's lane, given the worker's group: as [`Priority::lane_topic`], `normal`
    /// keeps the group's own name (its committed offsets stay valid).
    pub fn lane_group(self, group: &str) -> String {
        self.lane_topic(group)
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(format!("unknown priority {other:?}: expected \"high\", \"normal\" or \"low\"")),
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Priority;

    #[test]
    fn levels_round_trip_and_order_highest_first() {
        for p in Priority::HIGHEST_FIRST {
            assert_eq!(Priority::from_i16(p.as_i16()), p);
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        }
        assert!(Priority::High > Priority::Normal && Priority::Normal > Priority::Low);
        assert!("urgent".parse::<Priority>().expect_err("unknown").contains("\"high\""));
    }

    #[test]
    fn normal_keeps_the_base_topic_and_the_others_get_a_suffix() {
        assert_eq!(Priority::Normal.lane_topic("ackbox.jobs"), "ackbox.jobs");
        assert_eq!(Priority::High.lane_topic("ackbox.jobs"), "ackbox.jobs.high");
        assert_eq!(Priority::Low.lane_topic("ackbox.video"), "ackbox.video.low");
        assert_eq!(Priority::High.lane_group("ackbox-workers"), "ackbox-workers.high");
    }
}
