//! The worker loop: consume dispatch messages, claim their jobs in batches, run handlers with bounded concurrency,
//! record outcomes in batches, and store each partition's offset only after the statuses behind it are committed.
//!
//! ```text
//!  Kafka ──recv──▶ [batch] ──claim (1 UPDATE)──▶ spawn handler tasks ──outcome──▶ completer
//!                                                   (≤ concurrency)               │ 1 transaction per batch:
//!                                                                                 │ complete + fail/retry (+outbox)
//!                                                                                 ▼
//!                                                                store offsets (contiguous prefix only)
//! ```
//!
//! One file per concern, all in `worker/src/`: `context.rs` (librdkafka callbacks and rebalances), `membership.rs`
//! (building the consumer, joining and leaving the group), this file (the receive loop), `dispatch.rs` (claim and
//! run), `heartbeat.rs` (leases, and cancel requests as a backstop), `cancels.rs` (cancel requests by `LISTEN`),
//! `outcome.rs` (checks on results and errors), `completer.rs` (status writes, then offsets), `kinds.rs` (this
//! worker's kinds in `job_kinds`), `lag.rs` (consumer lag reports) and `shared.rs` (the state they share).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ackbox_db::db::PgPool;
use ackbox_types::envelope::{decode_record, Envelope};
use ackbox_types::trace::{TraceContext, TRACEPARENT, TRACESTATE};
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cancels::spawn_cancel_listener;
use crate::completer::complete_loop;
use crate::config::WorkerConfig;
use crate::dispatch::{dispatch, unpark_loop};
use crate::handler::Registry;
use crate::heartbeat::heartbeat_loop;
use crate::kinds::kinds_loop;
use crate::lag::lag_report_loop;
use crate::membership::{build_lanes, leave_group};
use crate::metrics::WorkerMetrics;
use crate::shared::{Lane, Outcome, Position, Shared};

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The consumer could not be created or subscribed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Another process runs under this worker's name (`ACKBOX_WORKER_INSTANCE_ID`) in its group.
    #[error(
        "another worker process runs as ACKBOX_WORKER_INSTANCE_ID={name} in group {group}: give every replica a name \
         of its own (the pod name, say)"
    )]
    DuplicateInstance {
        /// The name.
        name: String,
        /// The group.
        group: String,
    },
    /// librdkafka raised a fatal error: the consumer cannot go on (for example another process joined the group
    /// with the same `ACKBOX_WORKER_INSTANCE_ID` and fenced this one).
    #[error("fatal kafka consumer error {code:?}: {reason}")]
    Fatal {
        /// librdkafka's error code.
        code: rdkafka::types::RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
}

/// One dispatch taken off Kafka, detached from the consumer's buffer: a record of one dispatch, or one entry of a
/// packed record (`ackbox_types::envelope`; its entries share the record's position, whose offset is stored once
/// all of them are done). Everything past the receive loop (slots, queue caps, claims) counts these, one per job.
pub(crate) struct Delivered {
    pub(crate) at: Position,
    pub(crate) envelope: Option<Envelope>,
    /// The job's W3C trace context (the submit span's), if any: a packed entry's own, else the record's headers'.
    pub(crate) trace: Option<TraceContext>,
}

/// What one polled result turned out to be.
enum Accepted {
    /// A record's dispatches, in order: one for a version-1 record or an undecodable one (which is done at once).
    Message(Vec<Delivered>),
    /// A consumer error worth logging and going on.
    Error,
    /// librdkafka raised a fatal error.
    Fatal(WorkerError),
}

fn accept(
    shared: &Shared,
    lane: usize,
    m: Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>,
) -> Accepted {
    match m {
        Ok(m) => {
            // Before anything else can fail: the catch-up check must not think this message is still waiting.
            shared.lanes[lane].read(m.partition(), m.offset());
            let at = Position { lane, partition: m.partition(), offset: m.offset() };
            let delivered: Vec<Delivered> = match decode_record(m.payload()) {
                Ok(dispatches) => {
                    let headers = trace_context(&m);
                    dispatches
                        .into_iter()
                        .map(|d| Delivered {
                            at,
                            trace: d.trace.or_else(|| headers.clone()),
                            envelope: Some(d.envelope),
                        })
                        .collect()
                }
                Err(e) => {
                    shared.metrics.decode_failures.inc();
                    log::warn!(
                        "skipping undecodable message at partition {} offset {}: {e}",
                        m.partition(),
                        m.offset()
                    );
                    vec![Delivered { at, trace: None, envelope: None }]
                }
            };
            // In flight from now until each of its dispatches is done, wherever it waits meanwhile.
            shared.begin(at, delivered.len());
            Accepted::Message(delivered)
        }
        Err(e) => {
            if let Some(fatal) = any_fatal(shared) {
                return Accepted::Fatal(fatal);
            }
            log::warn!("kafka consumer error on {}: {e}", shared.lanes[lane].topic);
            Accepted::Error
        }
    }
}

/// A fatal error librdkafka raised on any lane's consumer (fenced by another member with the same
/// `ACKBOX_WORKER_INSTANCE_ID`, say): the worker cannot go on.
fn any_fatal(shared: &Shared) -> Option<WorkerError> {
    shared
        .lanes
        .iter()
        .find_map(|lane| lane.consumer.client().fatal_error())
        .map(|(code, reason)| WorkerError::Fatal { code, reason })
}

/// The record's `traceparent` and `tracestate` headers, if it carries a valid context.
fn trace_context(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<TraceContext> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    let header = |name: &str| {
        headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
    };
    TraceContext::parse(header(TRACEPARENT)?, header(TRACESTATE))
}

/// How long the loop simply waits for a slot before it pauses its partitions. Short jobs free a slot within
/// milliseconds, and pausing is not free: librdkafka drops a paused partition's prefetched messages and fetches them
/// again on resume, which under a fast drain would cost more than the wait (`make bench` measured a fivefold drop).
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// Waits for a free slot: briefly as is, then with the assigned partitions paused, polling Kafka at least every
/// second (a poll is what keeps a member in its group past `max.poll.interval.ms`; a paused partition fetches
/// nothing, so nothing piles up). A message that was already fetched is kept in `pending`. Returns `Ok(false)` on
/// shutdown.
async fn wait_for_slot(
    shared: &Arc<Shared>,
    semaphore: &Semaphore,
    pending: &mut VecDeque<Delivered>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, WorkerError> {
    tokio::select! {
        // Released at once: this only waits for one to be free.
        free = tokio::time::timeout(PAUSE_AFTER, semaphore.acquire()) => if free.is_ok() { return Ok(true) },
        _ = shutdown.changed() => return Ok(false),
    }
    let assignments: Vec<_> = shared.lanes.iter().map(|lane| lane.consumer.assignment().ok()).collect();
    for (lane, assignment) in shared.lanes.iter().zip(&assignments) {
        if let Some(tpl) = assignment {
            if let Err(e) = lane.consumer.pause(tpl) {
                log::debug!("pausing partitions of {}: {e}", lane.topic);
            }
        }
    }
    let started = std::time::Instant::now();
    let outcome = loop {
        if semaphore.available_permits() > 0 {
            break Ok(true);
        }
        tokio::select! {
            // Released at once: this only waits for one to be free.
            _ = semaphore.acquire() => {}
            m = tokio::time::timeout(Duration::from_secs(1), recv_any(shared)) => {
                if let Ok((lane, m)) = m {
                    match accept(shared, lane, m) {
                        Accepted::Message(d) => pending.extend(d),
                        Accepted::Error => {}
                        Accepted::Fatal(e) => break Err(e),
                    }
                }
            }
            _ = shutdown.changed() => break Ok(false),
        }
    };
    // Partitions revoked meanwhile cannot be resumed; the new assignment was never paused.
    for (lane, assignment) in shared.lanes.iter().zip(&assignments) {
        if let Some(tpl) = assignment {
            let _ = lane.consumer.resume(tpl);
        }
    }
    shared.metrics.paused_seconds.inc_by(started.elapsed().as_secs_f64());
    // Every lane fetches again from scratch: let them all deliver before choosing.
    if matches!(outcome, Ok(true)) {
        settle(shared, pending, shutdown).await;
    }
    outcome
}

/// Longest [`settle`] waits for a lane with waiting messages to deliver its first one.
const SETTLE_MAX: Duration = Duration::from_secs(5);
/// Most messages [`settle`] holds while it waits (a few hundred KiB): lower lanes may deliver many before a higher
/// one delivers its first, and stopping early at a small bound would choose before the higher lane is heard.
const SETTLE_HOLD_MAX: usize = 10_000;

/// After a (re)start of fetching (joining, or resuming paused partitions) every lane's buffer is empty and the
/// lanes' first fetches race: whichever answered first would be taken, a `normal` message ahead of a `high` one that
/// was only a few milliseconds behind. So the loop first asks the broker which lanes have messages waiting (every
/// lane but the lowest: their partitions' ends against this group's positions), then collects what the lanes deliver
/// into `pending` until each of those has delivered at least one (at most [`SETTLE_MAX`] and [`SETTLE_HOLD_MAX`]
/// messages), and only then chooses, highest lane first. Costs a few broker requests and that wait once per start or
/// resume, never per message.
async fn settle(shared: &Arc<Shared>, pending: &mut VecDeque<Delivered>, shutdown: &mut watch::Receiver<bool>) {
    // Each lane on a thread of its own: a broker busy taking a producer's writes can take ~100 ms an answer, and the
    // lanes' questions are independent.
    let asks = (0..shared.lanes.len().saturating_sub(1)).map(|i| {
        let s = shared.clone();
        tokio::task::spawn_blocking(move || has_waiting(&s.lanes[i]).then_some(i))
    });
    let waiting: Vec<usize> =
        futures::future::join_all(asks).await.into_iter().filter_map(|r| r.ok().flatten()).collect();
    let started = tokio::time::Instant::now();
    let until = started + SETTLE_MAX;
    let limit = SETTLE_HOLD_MAX;
    log::debug!("settling: lanes with messages waiting: {waiting:?}");
    while pending.len() < limit && waiting.iter().any(|lane| !pending.iter().any(|d| d.at.lane == *lane)) {
        tokio::select! {
            m = tokio::time::timeout_at(until, recv_any(shared)) => match m {
                Ok((lane, m)) => if let Accepted::Message(d) = accept(shared, lane, m) { pending.extend(d) },
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// How long one broker request of [`has_waiting`] may take.
const HAS_WAITING_ASK: Duration = Duration::from_secs(5);

/// Whether `lane` has messages its group has not received yet, as the broker says: a partition's end beyond the
/// position the worker has read to (its committed offset before it read any, else the partition's start). Blocking:
/// one request for every partition's end, and before the worker has read from every partition one for the committed
/// offsets and one for the starts, each bounded by [`HAS_WAITING_ASK`] (a request per partition took ~1 s for two
/// lanes of six while the relay was producing a backlog). An answer that does not come in time counts as waiting
/// (settling then waits, at most [`SETTLE_MAX`], rather than choose before a higher lane is heard).
fn has_waiting(lane: &Lane) -> bool {
    let ask = HAS_WAITING_ASK;
    let Ok(assignment) = lane.consumer.assignment() else { return true };
    let positions = lane.consumer.position().ok();
    let offset_in = |tpl: &Option<TopicPartitionList>,
                     e: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>| {
        tpl.as_ref().and_then(|t| t.find_partition(e.topic(), e.partition())).and_then(|p| match p.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
    };
    // Every assigned partition at `at` (ListOffsets' -1: its end, -2: its start), in one request.
    let list_offsets = |at: Offset| {
        let mut tpl = TopicPartitionList::new();
        for e in assignment.elements() {
            let _ = tpl.add_partition_offset(e.topic(), e.partition(), at);
        }
        lane.consumer.offsets_for_times(tpl, ask).ok()
    };
    // The committed offsets and the starts only matter (and cost a request each) before the worker has read from
    // every partition.
    let unread = assignment.elements().iter().any(|e| offset_in(&positions, e).is_none());
    let committed = if unread { lane.consumer.committed_offsets(assignment.clone(), ask).ok() } else { None };
    let starts = if unread { list_offsets(Offset::Beginning) } else { None };
    let ends = list_offsets(Offset::End);
    // Every partition is looked at (no short cut), so the catch-up check learns all of their ends.
    let behind: Vec<bool> = assignment
        .elements()
        .iter()
        .map(|e| {
            let Some(high) = offset_in(&ends, e) else { return true };
            let Some(next) =
                offset_in(&positions, e).or_else(|| offset_in(&committed, e)).or_else(|| offset_in(&starts, e))
            else {
                return true;
            };
            // Until this lane's first statistics arrive, this is what the catch-up check knows of it.
            lane.ends.lock().unwrap_or_else(|p| p.into_inner()).observe(e.partition(), true, high, next);
            high > next
        })
        .collect();
    behind.contains(&true)
}

/// Longest [`catch_up`] waits for a higher lane's next messages.
const CATCH_UP_MAX: Duration = Duration::from_millis(200);

/// A lane hands its partition's messages over fetch by fetch, so between two fetch answers its buffer can run dry
/// while its partition still holds more: taking a lower lane's message then would let it overtake. When the batch
/// holds a lower lane's messages and a higher lane is known to be behind (`ends.rs`: from the statistics, with no
/// broker request), they go back to `pending` and the loop waits (at most [`CATCH_UP_MAX`]) for the higher lane's next
/// message. Returns whether the batch should be filled again.
async fn catch_up(
    shared: &Arc<Shared>,
    pending: &mut VecDeque<Delivered>,
    batch: &mut Vec<Delivered>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let Some(lowest) = batch.iter().map(|d| d.at.lane).max() else { return false };
    if !shared.lanes[..lowest].iter().any(Lane::behind) {
        return false;
    }
    // Back in front of what `pending` holds, in order: they were read before it.
    for d in batch.drain(..).rev() {
        pending.push_front(d);
    }
    let until = tokio::time::Instant::now() + CATCH_UP_MAX;
    loop {
        tokio::select! {
            m = tokio::time::timeout_at(until, recv_any(shared)) => match m {
                Ok((lane, m)) => if let Accepted::Message(d) = accept(shared, lane, m) {
                    let higher = lane < lowest;
                    pending.extend(d);
                    if higher { return true }
                },
                Err(_) => {
                    // What was known to wait did not come: count it as read, so that an offset that never becomes a
                    // message (a gap in the log) cannot hold every later batch too.
                    for lane in &shared.lanes[..lowest] {
                        lane.give_up_waiting();
                    }
                    return true;
                }
            },
            _ = shutdown.changed() => return true,
        }
    }
}

/// Fills `batch` up to `room`, highest lane first: for each lane, what `pending` holds of it (read earlier, so
/// first), then what the lane's consumer already holds, without waiting. One claim UPDATE then covers all of it.
fn fill(
    shared: &Shared,
    pending: &mut VecDeque<Delivered>,
    batch: &mut Vec<Delivered>,
    room: usize,
    fatal: &mut Option<WorkerError>,
) {
    for (i, lane) in shared.lanes.iter().enumerate() {
        while batch.len() < room {
            let Some(at) = pending.iter().position(|d| d.at.lane == i) else { break };
            batch.extend(pending.remove(at));
        }
        while fatal.is_none() && batch.len() < room {
            let Some(m) = lane.consumer.recv().now_or_never() else { break };
            match accept(shared, i, m) {
                Accepted::Message(d) => take(batch, pending, room, d),
                Accepted::Error => break,
                Accepted::Fatal(e) => *fatal = Some(e),
            }
        }
    }
}

/// Puts a record's dispatches into `batch` up to `room`, and the rest at the back of `pending` (called only when
/// `pending` holds nothing of the record's lane, so they stay that lane's next).
fn take(batch: &mut Vec<Delivered>, pending: &mut VecDeque<Delivered>, room: usize, record: Vec<Delivered>) {
    let mut record = record.into_iter();
    batch.extend(record.by_ref().take(room.saturating_sub(batch.len())));
    pending.extend(record);
}

/// The next message of any lane, with the lane's index; when several lanes have one ready, the highest lane's.
/// Cancel-safe: a `StreamConsumer`'s `recv` takes nothing off its queue until it returns it.
async fn recv_any(
    shared: &Shared,
) -> (usize, Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>) {
    // `select_all` polls in order, so the first (highest) lane wins a tie.
    let receives = shared.lanes.iter().enumerate().map(|(i, lane)| lane.consumer.recv().map(move |m| (i, m)).boxed());
    futures::future::select_all(receives).await.0
}

/// How long the loop waits for every lane's consumer to join its group before it takes messages anyway.
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// Polls every lane (which is what lets their consumers join) until each has had its first assignment, keeping the
/// messages that arrive meanwhile in `pending`: taking a `normal` message while the `high` lane is still joining
/// would run it ahead of `high` work already waiting. Gives up waiting after [`JOIN_WAIT`], saying so, or on
/// shutdown.
async fn wait_until_joined(shared: &Shared, pending: &mut VecDeque<Delivered>, shutdown: &mut watch::Receiver<bool>) {
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    while !shared.joined() {
        if tokio::time::Instant::now() >= deadline {
            log::warn!("not every priority lane joined its group within {JOIN_WAIT:?}; taking messages anyway");
            break;
        }
        tokio::select! {
            m = tokio::time::timeout(Duration::from_millis(100), recv_any(shared)) => {
                if let Ok((lane, m)) = m {
                    if let Accepted::Message(d) = accept(shared, lane, m) {
                        pending.extend(d);
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs until `shutdown` turns true, then stops taking messages, lets in-flight jobs finish (bounded by the job
/// timeout), writes their outcomes, and commits the stored offsets synchronously.
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    registry: Registry,
    metrics: WorkerMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    // Before any group is joined: a second process under a running worker's name stops here.
    let instance_lock = crate::instance::acquire(&config).await?;
    let lanes = build_lanes(&config, &metrics)?;
    let config_caps = config.queue_concurrency.clone();
    let concurrency = config.concurrency;
    let shared = Arc::new(Shared {
        config,
        pool,
        kinds: registry.kinds(),
        registry,
        lanes,
        queues: crate::queues::QueueCaps::new(&config_caps),
        metrics,
        running: Mutex::new(HashMap::new()),
        beat_now: tokio::sync::Notify::new(),
    });
    let cancels = spawn_cancel_listener(shared.clone());
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Outcome>();
    let completer = tokio::spawn(complete_loop(shared.clone(), done_rx));
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), heartbeat_stop.clone()));
    let lag_reporter = tokio::spawn(lag_report_loop(shared.clone(), heartbeat_stop.clone()));
    let kinds = tokio::spawn(kinds_loop(shared.clone(), heartbeat_stop.clone()));
    let unpark_stop = CancellationToken::new();
    let unpark = tokio::spawn(unpark_loop(shared.clone(), done_tx.clone(), unpark_stop.clone()));

    log::info!(
        "worker consuming {} as groups {} (concurrency {}, {})",
        shared.lanes.iter().map(|l| l.topic.as_str()).collect::<Vec<_>>().join(", "),
        shared.lanes.iter().map(|l| l.group.as_str()).collect::<Vec<_>>().join(", "),
        concurrency,
        match &shared.config.instance_id {
            Some(id) => format!("static member {id}"),
            None => "dynamic member".to_string(),
        }
    );
    let mut fatal = None;
    // Messages that arrived while the partitions were paused, taken before any new one (highest lane first).
    let mut pending: VecDeque<Delivered> = VecDeque::new();
    // On shutdown meanwhile, the loop below does not start.
    wait_until_joined(&shared, &mut pending, &mut shutdown).await;
    settle(&shared, &mut pending, &mut shutdown).await;
    while !*shutdown.borrow() {
        // Every slot busy: pause the partitions and keep polling (the group must not think we are stuck) until one
        // frees up. Slots are taken per message, so a batch never waits for room it does not need.
        if semaphore.available_permits() == 0 {
            match wait_for_slot(&shared, &semaphore, &mut pending, &mut shutdown).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        let room = semaphore.available_permits().clamp(1, shared.config.batch);
        let mut batch: Vec<Delivered> = Vec::with_capacity(room);
        fill(&shared, &mut pending, &mut batch, room, &mut fatal);
        if batch.is_empty() && fatal.is_none() {
            let (lane, first) = tokio::select! {
                m = recv_any(&shared) => m,
                _ = shutdown.changed() => break,
                // A lane can be fenced while another lane's receive is the one that returns: look every second.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    fatal = any_fatal(&shared);
                    if instance_lock.as_ref().is_some_and(|l| l.lost()) {
                        fatal = Some(WorkerError::DuplicateInstance {
                            name: shared.config.instance_id.clone().unwrap_or_default(),
                            group: shared.config.group.clone(),
                        });
                    }
                    if fatal.is_some() {
                        break;
                    }
                    continue;
                }
            };
            match accept(&shared, lane, first) {
                Accepted::Message(d) => take(&mut batch, &mut pending, room, d),
                Accepted::Error => tokio::time::sleep(Duration::from_millis(100)).await,
                Accepted::Fatal(e) => fatal = Some(e),
            }
            fill(&shared, &mut pending, &mut batch, room, &mut fatal);
        }
        // A lower lane's message while a higher lane is known to have more on its way: wait for those briefly.
        if fatal.is_none() && catch_up(&shared, &mut pending, &mut batch, &mut shutdown).await {
            fill(&shared, &mut pending, &mut batch, room, &mut fatal);
        }
        if !batch.is_empty() {
            // Reserve the in-flight slots before claiming, so a claimed job always has a slot to run in. Only this
            // loop takes permits and `room` were free, so this does not wait.
            let Ok(mut permits) = semaphore.clone().acquire_many_owned(batch.len() as u32).await else { break };
            dispatch(&shared, batch, &mut permits, &done_tx).await;
        }
        if fatal.is_some() {
            break;
        }
    }
    if let Some(WorkerError::Fatal { code, reason }) = &fatal {
        log::error!(
            "kafka consumer failed fatally ({code:?}: {reason}); stopping{}",
            if *code == rdkafka::types::RDKafkaErrorCode::FencedInstanceId {
                " (another process uses the same ACKBOX_WORKER_INSTANCE_ID: give every replica its own)"
            } else {
                ""
            }
        );
    }

    log::info!("worker stopping: waiting for in-flight jobs");
    // Messages still waiting for room in their queue are left to Kafka (their offsets were never stored); the
    // unparking task holds a sender, so it goes first.
    unpark_stop.cancel();
    let _ = unpark.await;
    let dropped = shared.queues.clear();
    if dropped > 0 {
        log::info!("{dropped} messages waiting for room in their queue are left for redelivery");
    }
    drop(done_tx);
    let drain = tokio::time::timeout(shared.config.shutdown_grace, completer).await;
    if drain.is_err() {
        // Past the grace period: tell handlers to stop. Unrecorded attempts keep their leases until they lapse, and
        // the rescuer retries them; nothing is lost.
        for r in shared.running().values() {
            r.cancel.cancel();
        }
        log::warn!(
            "in-flight jobs did not finish within the grace period; their leases will lapse and they will be retried"
        );
    }
    heartbeat_stop.cancel();
    cancels.abort();
    let _ = heartbeat.await;
    let _ = lag_reporter.await;
    let _ = kinds.await;
    for lane in &shared.lanes {
        log::debug!(
            "offsets of {} at shutdown: {}",
            lane.topic,
            lane.tracker.lock().unwrap_or_else(|e| e.into_inner()).summary()
        );
        match lane.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing stored since the last auto-commit: there is nothing to commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => log::warn!(
                "final offset commit of {} failed (messages will be redelivered, harmlessly): {e}",
                lane.topic
            ),
        }
    }
    if fatal.is_none() {
        leave_group(&shared).await;
    }
    log::info!("worker stopped");
    fatal.map_or(Ok(()), Err)
}
