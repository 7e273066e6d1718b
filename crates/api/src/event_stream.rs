//! Live events (`GET /v1/events/stream`, CONTRACT §12): Server-Sent Events fed from the event
//! log, so that a stream sees what every server process records.
//!
//! Each stream walks the log itself, in commit order, from its own position
//! ([`repo::event_stream`](licentia_persistence::repo::event_stream) explains why commit order
//! and not id order): after the event named by `Last-Event-ID` / `?after=`, or after what was
//! committed when it opened. Sending an event moves the position past it, so a stream never
//! skips and never repeats one, and a client that reconnects with the last id it got resumes
//! exactly there.
//!
//! When to read is told by the [`EventHub`]: one task per process that polls the log's head
//! (every [`HUB_POLL`]) while any stream is open, and tells the streams which accounts have
//! new events. Streams also read every [`FALLBACK_POLL`] whatever the hub says, and send a
//! comment line every [`HEARTBEAT`] so that proxies keep the connection.
//!
//! At most [`MAX_STREAMS_PER_ACCOUNT`] streams per account are open at once, counted with
//! database leases (renewed with each heartbeat) so that the cap holds across processes and a
//! crashed process's streams lapse. Streams end when the process begins to shut down.
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Bytes;
use licentia_domain::ids::AccountId;
use licentia_persistence::Db;
use licentia_persistence::repo::event_stream::{self, Position, StreamFilter};
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use crate::dto::EventOut;
use crate::error::{ApiError, ApiResult};

/// Open streams per account (whatever `LICENTIA_RATE_LIMIT` says).
pub const MAX_STREAMS_PER_ACCOUNT: u64 = 10;
/// A comment line this often keeps idle connections open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often the hub looks for new events while streams are open.
const HUB_POLL: Duration = Duration::from_millis(200);
/// How often a stream reads the log even without a word from the hub.
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// How long a stream's lease lasts without a renewal (a heartbeat renews it).
const LEASE_TTL: time::Duration = time::Duration::seconds(60);
/// Events read per query.
const BATCH: u64 = 200;
/// Notices the hub buffers per stream; a stream that falls behind simply reads the log.
const NOTICE_BUFFER: usize = 4096;

/// "Something new for this account."
#[derive(Clone, Copy, Debug)]
struct Notice {
    account: AccountId,
}

/// The running hub task's channel, with a generation so that a task clears only its own.
struct Running {
    generation: u64,
    notices: broadcast::Sender<Notice>,
}

/// The process's source of "there is something new" for its streams, and its shutdown signal.
pub struct EventHub {
    db: Db,
    runtime: tokio::runtime::Handle,
    running: Mutex<Option<Running>>,
    generation: std::sync::atomic::AtomicU64,
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").finish_non_exhaustive()
    }
}

impl EventHub {
    /// A hub whose task runs on the current Tokio runtime (the process's main one).
    pub fn new(db: Db) -> Arc<Self> {
        Arc::new(Self {
            db,
            runtime: tokio::runtime::Handle::current(),
            running: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            stopping: watch::channel(false).0,
        })
    }

    /// The process is shutting down: every open stream ends now (so that the server's
    /// graceful stop is not held up by them) and new ones are refused.
    pub fn shutdown(&self) {
        self.stopping.send_replace(true);
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notices of new events from now on, starting the hub task when none runs.
    async fn subscribe(self: &Arc<Self>) -> ApiResult<broadcast::Receiver<Notice>> {
        if let Some(running) = self.slot().as_ref() {
            return Ok(running.notices.subscribe());
        }
        // Where the new task starts: every event committed after this is noticed.
        let (from, _) = event_stream::start(self.db.conn()).await?;
        let mut slot = self.slot();
        if let Some(running) = slot.as_ref() {
            return Ok(running.notices.subscribe());
        }
        let (notices, receiver) = broadcast::channel(NOTICE_BUFFER);
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot = Some(Running {
            generation,
            notices: notices.clone(),
        });
        drop(slot);
        self.runtime
            .spawn(run_hub(Arc::clone(self), generation, notices, from));
        Ok(receiver)
    }
}

/// Clears the hub's slot when its task ends, however it ends (also when its runtime drops it),
/// so that the next subscriber starts a new one and the old one's streams see `Closed`.
struct ClearSlot {
    hub: Arc<EventHub>,
    generation: u64,
}

impl Drop for ClearSlot {
    fn drop(&mut self) {
        let mut slot = self.hub.slot();
        if slot
            .as_ref()
            .is_some_and(|r| r.generation == self.generation)
        {
            *slot = None;
        }
    }
}

async fn run_hub(
    hub: Arc<EventHub>,
    generation: u64,
    notices: broadcast::Sender<Notice>,
    mut from: Position,
) {
    let _clear = ClearSlot {
        hub: Arc::clone(&hub),
        generation,
    };
    let mut stopping = hub.stopping.subscribe();
    loop {
        {
            // Checked under the lock that subscribers take: none can join in between.
            let mut slot = hub.slot();
            if notices.receiver_count() == 0 {
                if slot.as_ref().is_some_and(|r| r.generation == generation) {
                    *slot = None;
                }
                return;
            }
        }
        match event_stream::notices_after(hub.db.conn(), from, 1_000).await {
            Ok(rows) => {
                for (position, account) in rows {
                    from = position;
                    let _ = notices.send(Notice { account });
                }
            }
            Err(e) => tracing::warn!(error = %e, "event stream hub: reading the log failed"),
        }
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            () = tokio::time::sleep(HUB_POLL) => {}
        }
    }
}

/// What a new stream sends and from where.
pub struct StreamRequest {
    /// Whose events: `filter.account` is `None` for the provider's administrators.
    pub filter: StreamFilter,
    /// The account whose open streams are counted.
    pub account: AccountId,
    /// The event to resume after (`Last-Event-ID` / `?after=`), already checked to be one the
    /// caller may see; `None`: from now on.
    pub resume: Option<Position>,
}

/// Opens a stream: takes a slot (429 when the account has [`MAX_STREAMS_PER_ACCOUNT`] open),
/// fixes its starting point, and answers `200 text/event-stream`.
pub async fn open(hub: &Arc<EventHub>, request: StreamRequest) -> ApiResult<HttpResponse> {
    if hub.is_stopping() {
        return Err(ApiError::unavailable());
    }
    let db = hub.db.clone();
    let lease = event_stream::open_lease(
        db.conn(),
        request.account,
        MAX_STREAMS_PER_ACCOUNT,
        LEASE_TTL,
    )
    .await?
    .ok_or(ApiError::RateLimited { retry_after: 5 })?;
    let started = async {
        // Subscribe first: everything after the starting point is then noticed.
        let notices = hub.subscribe().await?;
        let (from, skip) = match request.resume {
            Some(position) => (position, HashSet::new()),
            None => event_stream::start(db.conn()).await?,
        };
        Ok::<_, ApiError>((notices, from, skip))
    }
    .await;
    let (notices, from, skip) = match started {
        Ok(started) => started,
        Err(e) => {
            release(&db, lease).await;
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Sent at once: the client sees the stream open (and when to reconnect) before any event.
    let _ = tx.try_send(Bytes::from_static(b": stream open\nretry: 3000\n\n"));
    let stream = Stream {
        hub: Arc::clone(hub),
        db,
        lease,
        filter: request.filter,
        from,
        skip,
        notices: Some(notices),
    };
    actix_web::rt::spawn(stream.run(tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

async fn release(db: &Db, lease: Uuid) {
    if let Err(e) = event_stream::close_lease(db.conn(), lease).await {
        tracing::warn!(error = %e, "could not release an event stream's slot; it lapses by itself");
    }
}

/// One open stream: its position and what wakes it.
struct Stream {
    hub: Arc<EventHub>,
    db: Db,
    lease: Uuid,
    filter: StreamFilter,
    from: Position,
    /// Events already committed when the stream opened that lie after its starting point.
    skip: HashSet<Uuid>,
    notices: Option<broadcast::Receiver<Notice>>,
}

/// The next notice, or never when there is no hub to listen to (the fallback poll reads).
async fn next_notice(
    notices: &mut Option<broadcast::Receiver<Notice>>,
) -> Result<Notice, broadcast::error::RecvError> {
    match notices {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One SSE message: `id`, `event` and the event as `GET /v1/events` shows it.
fn frame(event: EventOut) -> Bytes {
    let data = serde_json::to_string(&event).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        event.id, event.event_type
    ))
}

impl Stream {
    fn wants(&self, notice: Notice) -> bool {
        self.filter.account.is_none_or(|a| a == notice.account)
    }

    async fn run(mut self, tx: mpsc::Sender<Bytes>) {
        let mut stopping = self.hub.stopping.subscribe();
        let start = tokio::time::Instant::now();
        let mut heartbeat = tokio::time::interval_at(start + HEARTBEAT, HEARTBEAT);
        // Its first tick is now: the stream reads what it resumes after at once.
        let mut fallback = tokio::time::interval(FALLBACK_POLL);
        loop {
            let read = tokio::select! {
                biased;
                _ = stopping.wait_for(|s| *s) => break,
                () = tx.closed() => break,
                _ = heartbeat.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        break;
                    }
                    if let Err(e) = event_stream::renew_lease(self.db.conn(), self.lease, LEASE_TTL).await {
                        tracing::warn!(error = %e, "could not renew an event stream's slot");
                    }
                    false
                }
                notice = next_notice(&mut self.notices) => match notice {
                    Ok(notice) => self.wants(notice),
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => {
                        // The hub stopped (its runtime went away): start another one.
                        self.notices = self.hub.subscribe().await.ok();
                        true
                    }
                },
                _ = fallback.tick() => true,
            };
            if read && !self.send_new(&tx).await {
                break;
            }
        }
        release(&self.db, self.lease).await;
    }

    /// Sends every new event; false when the client is gone.
    async fn send_new(&mut self, tx: &mpsc::Sender<Bytes>) -> bool {
        loop {
            let rows =
                match event_stream::after(self.db.conn(), &self.filter, self.from, BATCH).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        // The next wake-up tries again from the same position.
                        tracing::warn!(error = %e, "event stream: reading the log failed");
                        return true;
                    }
                };
            let full = rows.len() as u64 == BATCH;
            for (position, event) in rows {
                self.from = position;
                if self.skip.remove(&position.id) {
                    continue;
                }
                if tx.send(frame(EventOut::from(event))).await.is_err() {
                    return false;
                }
            }
            if !full {
                return true;
            }
        }
    }
}
