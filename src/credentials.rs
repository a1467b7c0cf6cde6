//! Where the AWS credentials come from, and keeping them fresh.
//!
//! Fielded devices rarely hold long-lived IAM keys: they trade an X.509 certificate for
//! temporary credentials at the AWS IoT credentials provider (protocol.md §8.3, §11.4), fetch
//! them from a secure element through a callback, or get them from the environment. A
//! [`CredentialProvider`] wraps one [`CredentialSource`], caches what it returned and fetches
//! again ahead of the expiry (a margin plus random jitter, so a fleet that boots together does
//! not hit the provider at the same second). Every presign, control-plane call and reconnect
//! asks the provider, so a viewer keeps working across credential lifetimes.
//!
//! Errors start with `credentials:` and never carry a secret, a token or key material.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::sigv4::Credentials;
use crate::validate::{self, Endpoint};

/// Fetch again when the credentials are this close to their expiry (capped at half their
/// lifetime, so short-lived credentials are not fetched on every use).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Up to this fraction of the lifetime is taken off at random on top of the margin.
pub const DEFAULT_REFRESH_JITTER: f64 = 0.1;
/// After a failed refresh (while the cached credentials still work), wait this long before
/// asking the source again.
pub const REFRESH_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Bound of the whole IoT exchange: DNS, TCP, TLS, request and answer (the C SDK allows 3 s
/// to connect and 5 s in all).
pub const IOT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The header AWS IoT reads the thing name from (not `x-amz-iot-thing-name`).
pub const IOT_THING_NAME_HEADER: &str = "x-amzn-iot-thingname";
/// The credentials answer is ~1.5 KB; anything far larger is not the provider.
const MAX_IOT_RESPONSE: usize = 64 * 1024;

/// Credentials together with the time after which the service refuses them.
#[derive(Debug, Clone)]
pub struct ExpiringCredentials {
    /// What to sign with.
    pub credentials: Credentials,
    /// None = they do not expire (long-term IAM keys).
    pub expires_at: Option<OffsetDateTime>,
}

impl ExpiringCredentials {
    /// `expires_at`: None for credentials that do not expire.
    pub fn new(credentials: Credentials, expires_at: Option<OffsetDateTime>) -> Self {
        ExpiringCredentials {
            credentials,
            expires_at,
        }
    }

    /// The longest `X-Amz-Expires` a URL signed with these credentials may carry at `now`:
    /// `wanted`, cut so the URL never outlives the credentials (at least 1 s).
    pub fn presign_expires_s(&self, wanted: u32, now: OffsetDateTime) -> u32 {
        match self.expires_at {
            None => wanted,
            Some(exp) => {
                let left = (exp - now).whole_seconds().clamp(1, i64::from(u32::MAX));
                wanted.min(left as u32)
            }
        }
    }
}

/// A function that hands out credentials on demand (the C callback, or a closure given to
/// [`CredentialSource::from_fn`]).
pub type CredentialCallback = dyn Fn() -> Result<ExpiringCredentials> + Send + Sync;

/// The AWS IoT credentials provider settings (config fields `iot_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotSettings {
    /// `https://host[:port]`: the account's `…credentials.iot.<region>.amazonaws.com`.
    pub endpoint: String,
    /// The role alias whose role the credentials are for.
    pub role_alias: String,
    /// The thing the certificate is attached to, sent as `x-amzn-iot-thingname`.
    pub thing_name: String,
    /// PEM device certificate (chain).
    pub cert_file: PathBuf,
    /// PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`), PKCS#8 or EC (`BEGIN EC PRIVATE KEY`).
    pub key_file: PathBuf,
    /// PEM CA bundle trusted for the provider's certificate in addition to the system roots.
    pub ca_file: Option<PathBuf>,
}

/// Where credentials come from.
#[derive(Clone)]
pub enum CredentialSource {
    /// Fixed keys (+ optional session token and expiry), as given in the config.
    Static(ExpiringCredentials),
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read at each use.
    Environment,
    /// The AWS IoT credentials provider, over mutual TLS with the device certificate.
    Iot(IotSettings),
    /// A function of the application (a secure element, a vault); called again near expiry.
    Callback(Arc<CredentialCallback>),
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Static(c) => f.debug_tuple("Static").field(c).finish(),
            CredentialSource::Environment => f.write_str("Environment"),
            CredentialSource::Iot(s) => f.debug_tuple("Iot").field(s).finish(),
            CredentialSource::Callback(_) => f.write_str("Callback"),
        }
    }
}

impl CredentialSource {
    /// A callback source from a closure of the application (a secure element, a vault). Its
    /// error text (which must hold no secret) is reported as `KVS_ERR_ACCESS_DENIED`,
    /// "credentials: the credentials callback failed: <text>".
    pub fn from_fn(
        f: impl Fn() -> std::result::Result<ExpiringCredentials, String> + Send + Sync + 'static,
    ) -> CredentialSource {
        CredentialSource::Callback(Arc::new(move || {
            f().map_err(|why| {
                Error::new(
                    ErrorKind::AccessDenied,
                    format!("the credentials callback failed: {why}"),
                )
            })
        }))
    }

    /// Checks the settings without any I/O (names the offending field).
    pub fn validate(&self) -> Result<()> {
        match self {
            CredentialSource::Static(c) => check_credentials(&c.credentials, ""),
            CredentialSource::Environment | CredentialSource::Callback(_) => Ok(()),
            CredentialSource::Iot(s) => s.validate().map(|_| ()),
        }
        .map_err(|e| e.in_step("credentials"))
    }

    /// Fetches from the source, uncached.
    fn fetch(&self) -> Result<ExpiringCredentials> {
        self.fetch_within(IOT_REQUEST_TIMEOUT)
    }

    /// Fetches from the source, uncached; network sources give up after `bound`.
    fn fetch_within(&self, bound: Duration) -> Result<ExpiringCredentials> {
        let fetched = match self {
            CredentialSource::Static(c) => Ok(c.clone()),
            CredentialSource::Environment => from_environment(),
            CredentialSource::Iot(s) => iot_fetch(s, bound.min(IOT_REQUEST_TIMEOUT)),
            CredentialSource::Callback(f) => f().and_then(|c| {
                check_credentials(&c.credentials, "callback ")?;
                Ok(c)
            }),
        };
        fetched.map_err(|e| {
            if e.message.starts_with("credentials:") {
                e
            } else {
                e.in_step("credentials")
            }
        })
    }
}

/// The credentials must be usable for signing; `what` prefixes the field names.
fn check_credentials(c: &Credentials, what: &str) -> Result<()> {
    validate::secret_like(&format!("{what}access_key_id"), &c.access_key_id, 128)?;
    validate::secret_like(
        &format!("{what}secret_access_key"),
        c.secret_access_key(),
        128,
    )?;
    if let Some(t) = c.session_token() {
        validate::secret_like(&format!("{what}session_token"), t, 8192)?;
    }
    Ok(())
}

fn from_environment() -> Result<ExpiringCredentials> {
    // Zeroizing: the copies read from the environment are wiped once the credentials are built.
    let var = |name: &str| -> Result<Option<Zeroizing<String>>> {
        match std::env::var(name) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::invalid(name, "is not valid UTF-8"))
            }
        }
    };
    let (Some(akid), Some(secret)) = (var("AWS_ACCESS_KEY_ID")?, var("AWS_SECRET_ACCESS_KEY")?)
    else {
        return Err(Error::invalid(
            "AWS_ACCESS_KEY_ID",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set in the environment",
        ));
    };
    let token = var("AWS_SESSION_TOKEN")?;
    let c = Credentials::new(&akid, &secret, token.as_ref().map(|t| t.as_str()));
    check_credentials(&c, "")?;
    Ok(ExpiringCredentials::new(c, None))
}

/// The time source of a provider: the viewer's corrected clock, or the system clock.
pub type Clock = dyn Fn() -> OffsetDateTime + Send + Sync;

struct Cached {
    value: ExpiringCredentials,
    /// When to fetch again (None = never: no expiry).
    refresh_at: Option<OffsetDateTime>,
}

struct State {
    cached: Option<Cached>,
    /// No new attempt before this instant after a failed refresh.
    retry_after: Option<Instant>,
    fetches: u64,
}

struct Inner {
    source: CredentialSource,
    margin: Duration,
    jitter: f64,
    now: Box<Clock>,
    state: Mutex<State>,
}

/// A credential source with its cache. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct CredentialProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialProvider")
            .field("source", &self.inner.source)
            .field("margin", &self.inner.margin)
            .finish_non_exhaustive()
    }
}

impl From<Credentials> for CredentialProvider {
    fn from(c: Credentials) -> Self {
        CredentialProvider::new(CredentialSource::Static(ExpiringCredentials::new(c, None)))
    }
}

impl CredentialProvider {
    /// The source with the default refresh margin and jitter.
    pub fn new(source: CredentialSource) -> Self {
        Self::with_policy(source, DEFAULT_REFRESH_MARGIN, DEFAULT_REFRESH_JITTER)
    }

    /// `margin`: fetch again this long before expiry (at most half the lifetime);
    /// `jitter`: up to this fraction (0..=0.5) of the lifetime taken off at random.
    pub fn with_policy(source: CredentialSource, margin: Duration, jitter: f64) -> Self {
        Self::with_clock(source, margin, jitter, Box::new(OffsetDateTime::now_utc))
    }

    /// As [`with_policy`](Self::with_policy), with the clock the expiry is judged by (the
    /// viewer's skew-corrected clock: the provider's expiry is in the service's time).
    pub fn with_clock(
        source: CredentialSource,
        margin: Duration,
        jitter: f64,
        now: Box<Clock>,
    ) -> Self {
        CredentialProvider {
            inner: Arc::new(Inner {
                source,
                margin,
                jitter: jitter.clamp(0.0, 0.5),
                now,
                state: Mutex::new(State {
                    cached: None,
                    retry_after: None,
                    fetches: 0,
                }),
            }),
        }
    }

    /// Where the credentials come from.
    pub fn source(&self) -> &CredentialSource {
        &self.inner.source
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Credentials to sign with now: cached, or fetched when due (the tiny API every signer
    /// uses).
    pub fn credentials(&self) -> Result<Credentials> {
        self.current().map(|c| c.credentials)
    }

    /// Credentials with their expiry, fetched when none are cached, when the refresh time has
    /// come, or when they expired. A failed refresh while the cached ones still work returns
    /// the cached ones (and tries again after [`REFRESH_RETRY_INTERVAL`]).
    pub fn current(&self) -> Result<ExpiringCredentials> {
        self.current_at((self.inner.now)())
    }

    /// As [`current`](Self::current), judged at `now` (the viewer's skew-corrected clock).
    pub fn current_at(&self, now: OffsetDateTime) -> Result<ExpiringCredentials> {
        self.current_within(now, IOT_REQUEST_TIMEOUT)
    }

    /// As [`current_at`](Self::current_at), a fetch bounded by `left` too (what the caller's
    /// deadline leaves), so a connect never outlasts its timeout.
    pub(crate) fn current_within(
        &self,
        now: OffsetDateTime,
        left: Duration,
    ) -> Result<ExpiringCredentials> {
        // The environment is read at each use, so a changed variable takes effect at once.
        if matches!(self.inner.source, CredentialSource::Environment) {
            return self.inner.source.fetch();
        }
        // Held while fetching: concurrent signers wait for one fetch instead of each asking.
        let mut state = self.lock();
        let usable = state.cached.as_ref().filter(|c| {
            c.value
                .expires_at
                .is_none_or(|exp| exp - now > time::Duration::SECOND)
        });
        let due = usable.is_none_or(|c| c.refresh_at.is_some_and(|at| now >= at));
        if !due {
            return Ok(usable.expect("not due implies cached").value.clone());
        }
        if let Some(c) = usable
            && state.retry_after.is_some_and(|t| Instant::now() < t)
        {
            return Ok(c.value.clone());
        }
        state.fetches += 1;
        match self.inner.source.fetch_within(left) {
            Ok(value) => {
                if let Some(exp) = value.expires_at
                    && exp <= now
                {
                    return Err(Error::new(
                        ErrorKind::AccessDenied,
                        format!(
                            "credentials: the credentials expired at {} (now {})",
                            fmt_time(exp),
                            fmt_time(now)
                        ),
                    ));
                }
                let refresh_at = value.expires_at.map(|exp| {
                    refresh_time(
                        now,
                        exp,
                        self.inner.margin,
                        self.inner.jitter,
                        random_unit(),
                    )
                });
                state.cached = Some(Cached {
                    value: value.clone(),
                    refresh_at,
                });
                state.retry_after = None;
                Ok(value)
            }
            Err(e) => {
                let still = state
                    .cached
                    .as_ref()
                    .filter(|c| {
                        c.value
                            .expires_at
                            .is_none_or(|exp| exp - now > time::Duration::SECOND)
                    })
                    .map(|c| c.value.clone());
                match still {
                    Some(value) => {
                        state.retry_after = Some(Instant::now() + REFRESH_RETRY_INTERVAL);
                        Ok(value)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// The `X-Amz-Expires` to presign with: `wanted`, cut to what the current credentials
    /// have left.
    pub fn presign_expires_s(&self, wanted: u32) -> Result<u32> {
        let now = (self.inner.now)();
        let c = self.current_at(now)?;
        Ok(c.presign_expires_s(wanted, now))
    }

    /// When the cached credentials are due for a refresh (None: nothing cached, or they do not
    /// expire). A connection signed with them should be renewed before then.
    pub fn refresh_at(&self) -> Option<OffsetDateTime> {
        self.lock().cached.as_ref().and_then(|c| c.refresh_at)
    }

    /// Forgets the cached credentials (e.g. the service said they expired), so the next use
    /// fetches.
    pub fn invalidate(&self) {
        let mut state = self.lock();
        state.cached = None;
        state.retry_after = None;
    }

    /// How many times the source was asked (tests and diagnostics).
    pub fn fetch_count(&self) -> u64 {
        self.lock().fetches
    }
}

impl crate::config::ViewerConfig {
    /// The provider every signer of a viewer asks: `credential_source`, or the fixed
    /// `credentials` (which never expire).
    pub(crate) fn credential_provider(&self) -> CredentialProvider {
        match &self.credential_source {
            Some(p) => p.clone(),
            None => self.credentials.clone().into(),
        }
    }
}

/// When to fetch again: `margin` before expiry (at most half the lifetime), minus `unit`
/// (0..1) times `jitter` of the lifetime; never before `now`.
fn refresh_time(
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
    margin: Duration,
    jitter: f64,
    unit: f64,
) -> OffsetDateTime {
    let lifetime = (expires_at - now).max(time::Duration::ZERO);
    let margin = time::Duration::try_from(margin)
        .unwrap_or(time::Duration::MAX)
        .min(lifetime / 2);
    let spread = lifetime * (jitter * unit.clamp(0.0, 1.0));
    (expires_at - margin - spread).max(now)
}

/// A random number in 0..1 from OpenSSL's CSPRNG (only used to spread refresh times).
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

fn fmt_time(t: OffsetDateTime) -> String {
    crate::datetime::format_rfc3339(t, false)
}

// ---------------------------------------------------------------------------------------
// AWS IoT credentials provider
// ---------------------------------------------------------------------------------------

impl IotSettings {
    /// Checks the fields without I/O; returns the parsed endpoint.
    pub fn validate(&self) -> Result<Endpoint> {
        let endpoint = validate::https_endpoint("iot_credentials_endpoint", &self.endpoint)?;
        // Role alias: `[\w=,@-]+`, 1..128 (IoT CreateRoleAlias).
        check_name("iot_role_alias", &self.role_alias, |b| {
            b.is_ascii_alphanumeric() || b"_=,@-".contains(&b)
        })?;
        // Thing name: `[a-zA-Z0-9:_-]+`, 1..128 (IoT CreateThing).
        check_name("iot_thing_name", &self.thing_name, |b| {
            b.is_ascii_alphanumeric() || b":_-".contains(&b)
        })?;
        for (field, path) in [
            ("iot_cert_file", &self.cert_file),
            ("iot_key_file", &self.key_file),
        ] {
            if path.as_os_str().is_empty() {
                return Err(Error::invalid(field, "is required"));
            }
        }
        Ok(endpoint)
    }
}

fn check_name(field: &str, value: &str, ok: impl Fn(u8) -> bool) -> Result<()> {
    if value.is_empty() || value.len() > 128 {
        return Err(Error::invalid(
            field,
            format!("must be 1..128 characters, not {}", value.len()),
        ));
    }
    if !value.bytes().all(ok) {
        return Err(Error::invalid(
            field,
            format!("{value:?} holds a character AWS IoT does not allow"),
        ));
    }
    Ok(())
}

fn read_file(field: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Error::invalid(field, format!("cannot read {}: {e}", path.display())))
}

/// Loads the device certificate and key into a TLS identity. The key may be PKCS#1 RSA, PKCS#8
/// or SEC1 EC (OpenSSL reads all three). The key's bytes are wiped after use and never shown.
fn device_identity(s: &IotSettings) -> Result<crate::tls::Identity> {
    use openssl::pkey::PKey;
    use openssl::x509::X509;

    let cert_pem = read_file("iot_cert_file", &s.cert_file)?;
    let chain = X509::stack_from_pem(&cert_pem).map_err(|_| {
        Error::invalid(
            "iot_cert_file",
            format!("{} is not a PEM certificate", s.cert_file.display()),
        )
    })?;
    let Some(leaf) = chain.first() else {
        return Err(Error::invalid(
            "iot_cert_file",
            format!("{} holds no PEM certificate", s.cert_file.display()),
        ));
    };
    let key_pem = read_file("iot_key_file", &s.key_file)?;
    // OpenSSL's error text names the decoder that failed, never the key's bytes.
    let key = PKey::private_key_from_pem(&key_pem).map_err(|_| {
        Error::invalid(
            "iot_key_file",
            format!(
                "{} is not a PEM private key (PKCS#1 RSA, PKCS#8 or EC; encrypted keys are \
                 not supported)",
                s.key_file.display()
            ),
        )
    })?;
    let matches = leaf
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(Error::invalid(
            "iot_key_file",
            format!(
                "the key in {} does not belong to the certificate in {}",
                s.key_file.display(),
                s.cert_file.display()
            ),
        ));
    }
    Ok(crate::tls::Identity { chain, key })
}

fn iot_connector(s: &IotSettings) -> Result<crate::tls::Connector> {
    let identity = device_identity(s)?;
    let mut roots = Vec::new();
    if let Some(ca) = &s.ca_file {
        let pem = read_file("iot_ca_file", ca)?;
        roots = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| {
            Error::invalid(
                "iot_ca_file",
                format!("{} is not a PEM bundle: {e}", ca.display()),
            )
        })?;
        if roots.is_empty() {
            return Err(Error::invalid(
                "iot_ca_file",
                format!("{} holds no PEM certificate", ca.display()),
            ));
        }
    }
    crate::tls::Connector::new(&roots, Some(&identity)).map_err(|e| {
        Error::invalid(
            "iot_cert_file",
            format!("cannot use the certificate and key: {e}"),
        )
    })
}

/// `GET <endpoint>/role-aliases/<alias>/credentials` with the thing-name header, over mutual TLS.
fn iot_fetch(s: &IotSettings, bound: Duration) -> Result<ExpiringCredentials> {
    let endpoint = s.validate()?;
    let connector = iot_connector(s)?;
    let base = endpoint.path.trim_end_matches('/');
    let path = format!(
        "{base}/role-aliases/{}/credentials",
        crate::sigv4::uri_encode(&s.role_alias)
    );
    let (status, body) = iot_get(&endpoint, connector, &path, &s.thing_name, bound)?;
    if status != 200 {
        // Error answers are `{"message": …}` (403 thing/certificate/policy, 404 alias); they
        // hold no credentials. The message is shortened, the body never shown otherwise.
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .map(|m| m.chars().take(256).collect::<String>());
        let hint = match status {
            403 => {
                " (is the certificate active and attached to the thing, the thing name right, \
                    and the role alias allowed by its policy?)"
            }
            404 => " (no such role alias)",
            _ => "",
        };
        let mut e = Error::from_service_response(status, None, message.as_deref(), None);
        e.message = format!("credentials: IoT credentials provider: {}{hint}", e.message);
        return Err(e);
    }
    parse_iot_answer(&body)
}

/// The GET over the project's HTTP client, one connection, within `bound` (at most
/// [`IOT_REQUEST_TIMEOUT`]).
fn iot_get(
    endpoint: &Endpoint,
    connector: crate::tls::Connector,
    path: &str,
    thing_name: &str,
    bound: Duration,
) -> Result<(u16, Zeroizing<Vec<u8>>)> {
    let client = crate::http::Client::new(connector, MAX_IOT_RESPONSE);
    let headers = [
        (IOT_THING_NAME_HEADER, thing_name.to_owned()),
        ("accept", "application/json".to_owned()),
        ("connection", "close".to_owned()),
    ];
    let request = crate::http::Request {
        method: "GET",
        path,
        headers: &headers,
        body: b"",
    };
    let answer = client
        .send(endpoint, &request, &Deadline::after(bound))
        .map_err(|e| {
            let hint = match e.kind {
                ErrorKind::Tls => {
                    " (the provider refused the device certificate, or its own certificate is \
                     not trusted: check iot_cert_file, iot_key_file, iot_ca_file)"
                }
                ErrorKind::Network | ErrorKind::Timeout => " (provider unreachable)",
                _ => "",
            };
            Error {
                message: format!(
                    "credentials: IoT credentials provider {}: {}{hint}",
                    endpoint.host_header, e.message
                ),
                ..e
            }
        })?;
    Ok((answer.status, Zeroizing::new(answer.body)))
}

/// Reads `{"credentials":{"accessKeyId","secretAccessKey","sessionToken","expiration"}}`.
/// The body holds the secret: it is wiped, and never quoted in an error.
pub fn parse_iot_answer(body: &[u8]) -> Result<ExpiringCredentials> {
    let unusable = |why: &str| {
        Error::new(
            ErrorKind::Protocol,
            format!("credentials: the IoT credentials provider's answer is not usable: {why}"),
        )
    };
    let v = WipedJson(serde_json::from_slice(body).map_err(|_| unusable("not JSON"))?);
    let c =
        v.0.get("credentials")
            .ok_or_else(|| unusable("no \"credentials\" object"))?;
    let field = |name: &str| -> Result<Zeroizing<String>> {
        c.get(name)
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(|x| Zeroizing::new(x.to_owned()))
            .ok_or_else(|| unusable(&format!("credentials.{name} is missing or not a string")))
    };
    let akid = field("accessKeyId")?;
    let secret = field("secretAccessKey")?;
    let token = field("sessionToken")?;
    let expiration = field("expiration")?;
    let expires_at = crate::datetime::parse_rfc3339(&expiration)
        .ok_or_else(|| unusable("credentials.expiration is not an ISO 8601 date"))?;
    let credentials = Credentials::new(&akid, &secret, Some(&token));
    check_credentials(&credentials, "credentials.").map_err(|e| unusable(&e.message))?;
    Ok(ExpiringCredentials::new(credentials, Some(expires_at)))
}

/// Parsed JSON whose strings (the secret, the token) are wiped when it is dropped.
struct WipedJson(serde_json::Value);

impl Drop for WipedJson {
    fn drop(&mut self) {
        fn wipe(v: &mut serde_json::Value) {
            use zeroize::Zeroize;
            match v {
                serde_json::Value::String(s) => s.zeroize(),
                serde_json::Value::Array(a) => a.iter_mut().for_each(wipe),
                serde_json::Value::Object(m) => m.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn refresh_time_has_margin_and_bounded_jitter() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        let hour = now + time::Duration::HOUR;
        let m = Duration::from_secs(300);
        // No jitter: exactly the margin before expiry.
        assert_eq!(
            refresh_time(now, hour, m, 0.1, 0.0),
            hour - time::Duration::minutes(5)
        );
        // Full jitter: 10 % of the hour more.
        assert_eq!(
            refresh_time(now, hour, m, 0.1, 1.0),
            hour - time::Duration::minutes(11)
        );
        // A 30 s lifetime: the margin is capped at half of it.
        let short = now + time::Duration::seconds(30);
        assert_eq!(
            refresh_time(now, short, m, 0.0, 0.0),
            now + time::Duration::seconds(15)
        );
        // Already expired: refresh now, never in the past.
        assert_eq!(refresh_time(now, now, m, 0.1, 1.0), now);
    }

    #[test]
    fn random_unit_spreads() {
        let samples: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|u| (0.0..=1.0).contains(u)));
        assert!(samples.iter().any(|u| *u != samples[0]), "not constant");
    }

    #[test]
    fn presign_expiry_never_outlives_the_credentials() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        let c = ExpiringCredentials::new(
            Credentials::new("AKID", "secret", Some("tok")),
            Some(now + time::Duration::seconds(120)),
        );
        assert_eq!(c.presign_expires_s(299, now), 120);
        assert_eq!(c.presign_expires_s(60, now), 60);
        assert_eq!(c.presign_expires_s(299, now + time::Duration::HOUR), 1);
        let forever = ExpiringCredentials::new(Credentials::new("AKID", "secret", None), None);
        assert_eq!(forever.presign_expires_s(299, now), 299);
    }

    const ANSWER: &str = r#"{"credentials":{"accessKeyId":"ASIAEXAMPLE","secretAccessKey":"s3cr3t/Key+","sessionToken":"T0ken==","expiration":"2024-12-23T18:26:52Z"}}"#;

    #[test]
    fn parses_the_provider_answer() {
        let c = parse_iot_answer(ANSWER.as_bytes()).unwrap();
        assert_eq!(c.credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.credentials.secret_access_key(), "s3cr3t/Key+");
        assert_eq!(c.credentials.session_token(), Some("T0ken=="));
        assert_eq!(c.expires_at, Some(datetime!(2024-12-23 18:26:52 UTC)));
    }

    #[test]
    fn malformed_answers_are_protocol_errors_without_secrets() {
        for bad in [
            "not json",
            r#"{"creds":{}}"#,
            &ANSWER.replace("\"sessionToken\"", "\"token\""),
            &ANSWER.replace("2024-12-23T18:26:52Z", "tomorrow"),
            &ANSWER.replace("s3cr3t/Key+", "s3cr3t Key"),
        ] {
            let e = parse_iot_answer(bad.as_bytes()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{bad}");
            assert!(e.message.starts_with("credentials: "), "{}", e.message);
            for secret in ["s3cr3t", "T0ken"] {
                assert!(!e.message.contains(secret), "{}", e.message);
            }
        }
    }

    #[test]
    fn iot_settings_name_the_bad_field() {
        let ok = IotSettings {
            endpoint: "https://abc.credentials.iot.us-west-2.amazonaws.com".into(),
            role_alias: "kvs-role-alias".into(),
            thing_name: "doorbell-1".into(),
            cert_file: "cert.pem".into(),
            key_file: "key.pem".into(),
            ca_file: None,
        };
        ok.validate().unwrap();
        let field = |s: IotSettings| CredentialSource::Iot(s).validate().unwrap_err().message;
        let m = field(IotSettings {
            endpoint: "http://x".into(),
            ..ok.clone()
        });
        assert!(
            m.starts_with("credentials: iot_credentials_endpoint:"),
            "{m}"
        );
        let m = field(IotSettings {
            role_alias: "a/b".into(),
            ..ok.clone()
        });
        assert!(m.starts_with("credentials: iot_role_alias:"), "{m}");
        let m = field(IotSettings {
            thing_name: String::new(),
            ..ok.clone()
        });
        assert!(m.starts_with("credentials: iot_thing_name:"), "{m}");
        let m = field(IotSettings {
            key_file: PathBuf::new(),
            ..ok
        });
        assert!(m.starts_with("credentials: iot_key_file:"), "{m}");
    }

    fn counting_callback(
        lifetime: time::Duration,
        now: Arc<Mutex<OffsetDateTime>>,
    ) -> (CredentialSource, Arc<Mutex<u32>>) {
        let calls = Arc::new(Mutex::new(0u32));
        let c2 = calls.clone();
        let source = CredentialSource::Callback(Arc::new(move || {
            let mut n = c2.lock().unwrap();
            *n += 1;
            let t = *now.lock().unwrap();
            Ok(ExpiringCredentials::new(
                Credentials::new(&format!("ASIA{n:04}"), "secret", Some("token")),
                Some(t + lifetime),
            ))
        }));
        (source, calls)
    }

    #[test]
    fn callback_is_called_again_only_when_due() {
        let start = datetime!(2026-01-01 00:00:00 UTC);
        let now = Arc::new(Mutex::new(start));
        let (source, calls) = counting_callback(time::Duration::seconds(30), now.clone());
        let n2 = now.clone();
        let p = CredentialProvider::with_clock(
            source,
            Duration::from_secs(10),
            0.1,
            Box::new(move || *n2.lock().unwrap()),
        );
        assert_eq!(p.credentials().unwrap().access_key_id, "ASIA0001");
        assert_eq!(p.credentials().unwrap().access_key_id, "ASIA0001");
        assert_eq!(*calls.lock().unwrap(), 1, "cached while fresh");
        // Refresh falls 10 s (+0..3 s jitter) before the 30 s expiry: at most 20 s in.
        let at = p.refresh_at().unwrap();
        assert!(at >= start + time::Duration::seconds(17), "{at}");
        assert!(at <= start + time::Duration::seconds(20), "{at}");
        *now.lock().unwrap() = start + time::Duration::seconds(20);
        assert_eq!(p.credentials().unwrap().access_key_id, "ASIA0002");
        assert_eq!(*calls.lock().unwrap(), 2);
        assert_eq!(p.presign_expires_s(299).unwrap(), 30);
    }

    #[test]
    fn failed_refresh_keeps_working_credentials_until_they_expire() {
        let start = datetime!(2026-01-01 00:00:00 UTC);
        let now = Arc::new(Mutex::new(start));
        let fail = Arc::new(Mutex::new(false));
        let (f2, n2) = (fail.clone(), now.clone());
        let source = CredentialSource::Callback(Arc::new(move || {
            if *f2.lock().unwrap() {
                return Err(Error::new(ErrorKind::Network, "vault unreachable"));
            }
            let t = *n2.lock().unwrap();
            Ok(ExpiringCredentials::new(
                Credentials::new("ASIAONE", "secret", Some("token")),
                Some(t + time::Duration::seconds(60)),
            ))
        }));
        let n3 = now.clone();
        let p = CredentialProvider::with_clock(
            source,
            Duration::from_secs(20),
            0.0,
            Box::new(move || *n3.lock().unwrap()),
        );
        p.credentials().unwrap();
        *fail.lock().unwrap() = true;
        *now.lock().unwrap() = start + time::Duration::seconds(45);
        assert_eq!(p.credentials().unwrap().access_key_id, "ASIAONE");
        // Within the retry interval the source is not asked again.
        let asked = p.fetch_count();
        p.credentials().unwrap();
        assert_eq!(p.fetch_count(), asked);
        *now.lock().unwrap() = start + time::Duration::seconds(61);
        let e = p.credentials().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network);
        assert_eq!(e.message, "credentials: vault unreachable");
    }

    #[test]
    fn callback_values_are_checked_and_expired_ones_refused() {
        let bad = CredentialProvider::new(CredentialSource::Callback(Arc::new(|| {
            Ok(ExpiringCredentials::new(
                Credentials::new("AKID", "has space", None),
                None,
            ))
        })));
        let e = bad.credentials().unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message
                .starts_with("credentials: callback secret_access_key:"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("has space"));
        let expired = CredentialProvider::new(CredentialSource::Static(ExpiringCredentials::new(
            Credentials::new("AKID", "secret", None),
            Some(OffsetDateTime::now_utc() - time::Duration::MINUTE),
        )));
        let e = expired.credentials().unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert!(
            e.message
                .starts_with("credentials: the credentials expired")
        );
    }

    #[test]
    fn unreadable_device_files_name_the_field() {
        let dir = std::env::temp_dir().join(format!("kvs-cred-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let s = IotSettings {
            endpoint: "https://127.0.0.1:1".into(),
            role_alias: "alias".into(),
            thing_name: "thing".into(),
            cert_file: dir.join("missing.pem"),
            key_file: dir.join("missing.key"),
            ca_file: None,
        };
        let e = CredentialSource::Iot(s.clone()).fetch().unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message
                .starts_with("credentials: iot_cert_file: cannot read"),
            "{}",
            e.message
        );
        let e = CredentialSource::Iot(IotSettings {
            cert_file: cert,
            ..s
        })
        .fetch()
        .unwrap_err();
        assert!(
            e.message.starts_with("credentials: iot_cert_file:")
                && e.message.contains("PEM certificate"),
            "{}",
            e.message
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
