//! [`UserDirectory`]: user records and manager lists, read from the API and cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::{Flights, TtlCache, expiry};
use crate::defaults;
use crate::error::{Error, Result};
use crate::{ApiClient, UserId, Wallet};

use super::{ApiUser, ManagerGrant, UpstreamBudget, unexpected_or_unavailable};

/// Most signers remembered as refused against one negative entry.
const MAX_REFUSED_SIGNERS: usize = 8;

/// A user record as cached: the record, or `None` for a user Audius does not have (a negative
/// entry), when it was read, and how reading it again has been failing.
#[derive(Debug, Clone)]
struct CachedUser {
    user: Option<Arc<ApiUser>>,
    read_at: Instant,
    /// Re-reads that failed in a row since `read_at`, the last one's error, and when the next
    /// may be tried.
    failing: Option<Failing>,
    /// For a negative entry: the signers whose tokens it refused. A token of another signer
    /// reads the id again (the account may exist by now), at most once per
    /// [`defaults::NEGATIVE_RECHECK_INTERVAL`].
    refused: Vec<Wallet>,
    /// For a negative entry: when the id was last read again for such a token.
    rechecked_at: Option<Instant>,
}

/// What a login's lookup does: decide on the cached record, read it, or answer "try again".
enum Decision {
    Record(LoginRecord),
    Read,
    Wait(Error),
}

/// Reads of one lookup failing in a row: no new attempt before `retry_at`.
#[derive(Debug, Clone)]
struct Failing {
    count: u32,
    error: Error,
    retry_at: Instant,
}

impl Failing {
    /// One more failure after `previous`, backing off from `base`: `base`, then twice, four and
    /// eight times as long.
    fn after(previous: Option<&Failing>, error: Error, base: Duration) -> Self {
        let count = previous.map_or(0, |f| f.count).saturating_add(1);
        let wait = base.saturating_mul(1 << (count - 1).min(3));
        Self {
            count,
            error,
            retry_at: expiry(Instant::now(), wait),
        }
    }

    fn backing_off(&self) -> bool {
        Instant::now() < self.retry_at
    }
}

/// A user's record as a login is judged against it.
#[derive(Debug, Clone)]
pub(super) struct LoginRecord {
    pub(super) user: Option<Arc<ApiUser>>,
    /// Set when the record could not be read again and this is the cached one, older than the
    /// refetch interval: why it could not be read.
    pub(super) stale_because: Option<Error>,
}

/// User lookups with bounded, expiring caches.
///
/// Three things are cached, each for its own time: user records (default 5 minutes), user ids
/// Audius does not know (negative entries, default 30 s), and manager lists, empty ones
/// included (default 30 s).
///
/// A login ([`user_for_signer`](Self::user_for_signer), what [`LocalVerifier`](super::LocalVerifier) asks) is judged
/// against a record read within the [`refetch_interval`](Self::refetch_interval) (default
/// 30 s); an older one is read again first, whatever the token's signer, so that an account
/// deactivated (or a wallet changed) at Audius is refused here within that interval. A record
/// is read again at most once per interval however many tokens arrive, forged ones included;
/// a read that *fails* counts too: the cached record then decides (a token that does not match
/// it stays refused), and the next attempt waits the interval, doubling while reads keep
/// failing (up to eight times). Manager lists that cannot be read are not asked for again
/// within the same back-off. And concurrent lookups of one user share one request and its
/// outcome, failures included. So forged tokens cannot turn into a stream of requests to
/// Audius: for one user id, at most two requests (the record and the manager list) per
/// interval, whether Audius answers or fails. A user id Audius answered 404 for refuses only
/// the signers it refused: a token of another signer (the account may exist by now) reads it
/// again, at most once per 5 s ([`defaults::NEGATIVE_RECHECK_INTERVAL`]), and is answered a
/// retryable [`Error::UpstreamUnavailable`] between such reads.
///
/// The user id is the forger's to choose, so across ids the bound is app-wide: every request a
/// login triggers takes one from the [`budget`](Self::budget) (default: a burst of 50, then 10
/// per second), and a login that needs a request when it is spent is refused (503, retryable)
/// without one; a login decided by a cached record is not affected.
#[derive(Debug)]
pub struct UserDirectory {
    client: ApiClient,
    user_flights: Flights<u64, Result<LoginRecord>>,
    manager_flights: Flights<u64, Result<Arc<Vec<ManagerGrant>>>>,
    cache: TtlCache<u64, CachedUser>,
    managers: TtlCache<u64, Arc<Vec<ManagerGrant>>>,
    managers_failing: TtlCache<u64, Failing>,
    ttl: Duration,
    negative_ttl: Duration,
    managers_ttl: Duration,
    refetch_interval: Duration,
    budget: Option<Arc<UpstreamBudget>>,
}

impl UserDirectory {
    /// A directory with the default caches (records 5 minutes, unknown ids and manager lists
    /// 30 s, 10,000 of each; a record read again at most every 30 s).
    pub fn new(client: ApiClient) -> Self {
        Self::with_cache(
            client,
            defaults::USER_CACHE_TTL,
            defaults::USER_CACHE_CAPACITY,
        )
    }

    /// A directory caching up to `capacity` users for `ttl` each (a zero `ttl` disables it),
    /// and as many unknown ids and manager lists for their own (default) times. The caches
    /// allocate as they fill, not up front: any capacity is safe to ask for.
    pub fn with_cache(client: ApiClient, ttl: Duration, capacity: usize) -> Self {
        Self {
            client,
            user_flights: Flights::new(),
            manager_flights: Flights::new(),
            cache: TtlCache::new(capacity),
            managers: TtlCache::new(capacity),
            managers_failing: TtlCache::new(capacity),
            ttl,
            negative_ttl: defaults::NEGATIVE_TTL,
            managers_ttl: defaults::MANAGERS_TTL,
            refetch_interval: defaults::REFETCH_INTERVAL,
            budget: Some(Arc::new(UpstreamBudget::default())),
        }
    }

    /// The app-wide budget of requests to Audius that logins trigger (records and manager
    /// lists read for [`user_for_signer`](Self::user_for_signer), and the
    /// [`ApiVerifier`](super::ApiVerifier)'s `verify_token` calls): spent, a login that needs a
    /// request is refused (503, retryable) without one; one answerable from a cached record is
    /// not affected. Default: [`UpstreamBudget::default`] (a burst of 50, then 10 per second).
    /// `None`: no app-wide bound (only the per-user-id one).
    pub fn budget(mut self, budget: Option<Arc<UpstreamBudget>>) -> Self {
        self.budget = budget;
        self
    }

    /// Takes one request from the budget (when there is one).
    pub(super) fn spend(&self) -> Result<()> {
        self.budget.as_ref().map_or(Ok(()), |b| b.try_take())
    }

    /// How long a user id Audius answered 404 for is remembered as unknown. Default: 30 s
    /// ([`defaults::NEGATIVE_TTL`]); zero disables it.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long an account's manager list (empty included) is cached: a grant revoked at Audius
    /// may be honoured for this long. Default: 30 s ([`defaults::MANAGERS_TTL`]); zero disables
    /// it.
    pub fn managers_ttl(mut self, ttl: Duration) -> Self {
        self.managers_ttl = ttl;
        self
    }

    /// How old a cached record may be and still decide a login on its own; older, the next
    /// login reads it again (whatever the token's signer), and so a user's record is read for
    /// logins at most once per interval, failed reads included (they back off from this
    /// interval, doubling). An account deactivated, or a wallet changed, at Audius is refused
    /// here within this interval (or, while Audius fails, within the user cache's time to
    /// live). Default: 30 s ([`defaults::REFETCH_INTERVAL`]). Zero reads the record at every
    /// login, forged tokens included: no bound on the requests they cost.
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The API client used.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// How many users (and unknown ids) are cached now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The most users cached at once.
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// The user, from the cache when fresh (an unknown id too); `None` when Audius has no such
    /// user. Concurrent lookups of one user share one request.
    pub async fn user(&self, id: UserId) -> Result<Option<Arc<ApiUser>>> {
        if let Some(cached) = self.cache.get(&id.get()) {
            return Ok(cached.user);
        }
        let record = self
            .user_flights
            .run(id.get(), || async {
                // A lookup that just landed may have filled the cache.
                if let Some(cached) = self.cache.get(&id.get()) {
                    return Ok(LoginRecord {
                        user: cached.user,
                        stale_because: None,
                    });
                }
                self.read_user(id).await
            })
            .await?;
        Ok(record.user)
    }

    /// The user whose token `signer` signed, as a login is judged: the cached record when it
    /// was read within the [`refetch_interval`](Self::refetch_interval) (or when reading it
    /// again is backing off after a failure), else read again first, whatever the signer.
    /// When that read fails, the cached record answers (while it lives); without one, the
    /// error does. An id Audius answered 404 for is read again for a signer that entry has not
    /// refused yet (the account may exist by now), at most once per 5 s; meanwhile such a
    /// token is answered with a retryable [`Error::UpstreamUnavailable`].
    pub async fn user_for_signer(
        &self,
        id: UserId,
        signer: Wallet,
    ) -> Result<Option<Arc<ApiUser>>> {
        Ok(self.record_for_login(id, signer).await?.user)
    }

    /// The record a login is judged against (see [`user_for_signer`](Self::user_for_signer)).
    pub(super) async fn record_for_login(&self, id: UserId, signer: Wallet) -> Result<LoginRecord> {
        let record = match self.decide(id, signer) {
            Decision::Record(record) => record,
            Decision::Wait(error) => return Err(error),
            Decision::Read => {
                self.user_flights
                    .run(id.get(), || async {
                        // A lookup that just landed may have read it.
                        match self.decide(id, signer) {
                            Decision::Record(record) => Ok(record),
                            Decision::Wait(error) => Err(error),
                            Decision::Read => self.read_user(id).await,
                        }
                    })
                    .await?
            }
        };
        if record.user.is_none() {
            if let Some(error) = record
                .stale_because
                .as_ref()
                .filter(|_| !self.refused(id, signer))
            {
                // Audius could not be asked whether it has this user now: say so, not "no
                // such user".
                return Err(error.clone());
            }
            self.note_refused(id, signer);
        }
        Ok(record)
    }

    /// Whether the negative entry of `id` refused `signer` before.
    fn refused(&self, id: UserId, signer: Wallet) -> bool {
        self.cache
            .get(&id.get())
            .is_some_and(|c| c.user.is_none() && c.refused.contains(&signer))
    }

    /// Remembers that the negative entry of `id` refused `signer`.
    fn note_refused(&self, id: UserId, signer: Wallet) {
        let Some((expires, mut cached)) = self.cache.get_with_expiry(&id.get()) else {
            return;
        };
        if cached.user.is_some() || cached.refused.contains(&signer) {
            return;
        }
        if cached.refused.len() >= MAX_REFUSED_SIGNERS {
            cached.refused.remove(0);
        }
        cached.refused.push(signer);
        self.cache.insert_until(id.get(), cached, expires);
    }

    /// What a login of `signer` for `id` does now.
    fn decide(&self, id: UserId, signer: Wallet) -> Decision {
        let Some(cached) = self.cache.get(&id.get()) else {
            return Decision::Read;
        };
        if cached.user.is_none() && !cached.refused.contains(&signer) {
            // "No such user" was said to another signer: the account may exist by now.
            return match cached.rechecked_at {
                Some(at) if at.elapsed() < defaults::NEGATIVE_RECHECK_INTERVAL => {
                    Decision::Wait(Error::unavailable(
                        format!(
                            "Audius did not know user {id} a moment ago; please try again in a                              few seconds"
                        ),
                        None,
                    ))
                }
                _ => Decision::Read,
            };
        }
        match self.deciding_record(id) {
            Some(record) => Decision::Record(record),
            None => Decision::Read,
        }
    }

    /// The cached record, when it may decide a login without a request.
    fn deciding_record(&self, id: UserId) -> Option<LoginRecord> {
        let cached = self.cache.get(&id.get())?;
        if cached.read_at.elapsed() < self.refetch_interval {
            return Some(LoginRecord {
                user: cached.user,
                stale_because: None,
            });
        }
        match cached.failing {
            Some(failing) if failing.backing_off() => Some(LoginRecord {
                user: cached.user,
                stale_because: Some(failing.error),
            }),
            _ => None,
        }
    }

    /// Reads the record (filling the cache); when the read fails and a record is cached, that
    /// record, with the failure noted (and the next attempt backed off).
    async fn read_user(&self, id: UserId) -> Result<LoginRecord> {
        if let Err(spent) = self.spend() {
            // No request: a cached record (however old) decides, without a back-off.
            return match self.cache.get(&id.get()) {
                Some(cached) => Ok(LoginRecord {
                    user: cached.user,
                    stale_because: Some(spent),
                }),
                None => Err(spent),
            };
        }
        match self.fetch_user(id).await {
            Ok(user) => Ok(LoginRecord {
                user,
                stale_because: None,
            }),
            Err(error) => {
                let Some((expires, mut cached)) = self.cache.get_with_expiry(&id.get()) else {
                    return Err(error);
                };
                let failing = Failing::after(
                    cached.failing.as_ref(),
                    error.clone(),
                    self.refetch_interval,
                );
                tracing::warn!(
                    user_id = id.get(),
                    failures = failing.count,
                    retry_in_ms = u64::try_from(
                        failing.retry_at.saturating_duration_since(Instant::now()).as_millis()
                    )
                    .unwrap_or(u64::MAX),
                    error = %error,
                    "reading a user's record again failed; the cached record decides meanwhile"
                );
                cached.failing = Some(failing);
                if cached.user.is_none() {
                    cached.rechecked_at = Some(Instant::now());
                }
                self.cache.insert_until(id.get(), cached.clone(), expires);
                Ok(LoginRecord {
                    user: cached.user,
                    stale_because: Some(error),
                })
            }
        }
    }

    /// The user, from the API (refreshing the cache, a negative entry for a 404 included).
    pub async fn fetch_user(&self, id: UserId) -> Result<Option<Arc<ApiUser>>> {
        let answer = self
            .client
            .get(&format!("/v1/users/{}", id.hashid()))
            .await?;
        match answer.status.as_u16() {
            200 => {
                let body: Value = answer.json()?;
                let user = body
                    .get("data")
                    .and_then(ApiUser::from_json)
                    .ok_or_else(|| Error::UpstreamUnexpected {
                        status: 200,
                        message: "the user answer has no data.id and data.handle".into(),
                    })?;
                if user.id != id {
                    return Err(Error::UpstreamUnexpected {
                        status: 200,
                        message: format!("asked for user {id}, got user {}", user.id),
                    });
                }
                let user = Arc::new(user);
                self.remember(id, Some(user.clone()), self.ttl);
                Ok(Some(user))
            }
            404 => {
                self.remember(id, None, self.negative_ttl);
                Ok(None)
            }
            status => Err(unexpected_or_unavailable(status, &answer)),
        }
    }

    fn remember(&self, id: UserId, user: Option<Arc<ApiUser>>, ttl: Duration) {
        if ttl.is_zero() {
            self.cache.remove(&id.get());
        } else {
            // A negative entry read again keeps the signers it refused, and when.
            let previous = self
                .cache
                .get(&id.get())
                .filter(|c| user.is_none() && c.user.is_none());
            let cached = CachedUser {
                user,
                read_at: Instant::now(),
                failing: None,
                refused: previous
                    .as_ref()
                    .map(|c| c.refused.clone())
                    .unwrap_or_default(),
                rechecked_at: previous.map(|_| Instant::now()),
            };
            self.cache.insert(id.get(), cached, ttl);
        }
    }

    /// The account's manager grants, cached for [`managers_ttl`](Self::managers_ttl) (an empty
    /// list too). A list that could not be read is not asked for again while the read backs
    /// off (the [`refetch_interval`](Self::refetch_interval), doubling while reads keep
    /// failing): the failure answers meanwhile. Concurrent lookups share one request.
    pub(crate) async fn managers(&self, id: UserId) -> Result<Arc<Vec<ManagerGrant>>> {
        if let Some(list) = self.managers.get(&id.get()) {
            return Ok(list);
        }
        self.manager_flights
            .run(id.get(), || async {
                if let Some(list) = self.managers.get(&id.get()) {
                    return Ok(list);
                }
                let failing = self.managers_failing.get(&id.get());
                if let Some(failing) = failing.as_ref().filter(|f| f.backing_off()) {
                    return Err(failing.error.clone());
                }
                // Spent: refused without a request, and without a back-off.
                self.spend()?;
                match self.fetch_managers(id).await {
                    Ok(list) => {
                        let list = Arc::new(list);
                        self.managers_failing.remove(&id.get());
                        if !self.managers_ttl.is_zero() {
                            self.managers
                                .insert(id.get(), list.clone(), self.managers_ttl);
                        }
                        Ok(list)
                    }
                    Err(error) => {
                        let failing =
                            Failing::after(failing.as_ref(), error.clone(), self.refetch_interval);
                        // Kept a while after its back-off, to count failures in a row.
                        let keep =
                            expiry(failing.retry_at, self.refetch_interval.saturating_mul(8));
                        self.managers_failing.insert_until(id.get(), failing, keep);
                        Err(error)
                    }
                }
            })
            .await
    }

    /// The account's manager grants when cached (no request).
    pub(super) fn cached_managers(&self, id: UserId) -> Option<Arc<Vec<ManagerGrant>>> {
        self.managers.get(&id.get())
    }

    /// The account's manager grants, from the API (the cache is not consulted nor filled).
    pub(crate) async fn fetch_managers(&self, id: UserId) -> Result<Vec<ManagerGrant>> {
        let answer = self
            .client
            .get(&format!("/v1/users/{}/managers", id.hashid()))
            .await?;
        match answer.status.as_u16() {
            200 => {
                let body: Value = answer.json()?;
                let list = body.get("data").and_then(Value::as_array).ok_or_else(|| {
                    Error::UpstreamUnexpected {
                        status: 200,
                        message: "the managers answer has no data list".into(),
                    }
                })?;
                Ok(list.iter().filter_map(ManagerGrant::from_json).collect())
            }
            404 => Ok(Vec::new()),
            status => Err(unexpected_or_unavailable(status, &answer)),
        }
    }
}
