//! Credential sources from C: the callback that fills `KvsCredentials`, and the `iot_*`
//! config strings. The logic (caching, refresh, the IoT exchange) is in `crate::credentials`.

use std::ffi::{CStr, c_char, c_void};
use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;
use zeroize::Zeroize;

use crate::credentials::{CredentialSource, ExpiringCredentials, IotSettings};
use crate::error::{Error, ErrorKind};
use crate::sigv4::Credentials;

use super::types::optional_str;

/// Size of `KvsCredentials::access_key_id` and `secret_access_key`: 128 characters and the NUL.
pub const KVS_CREDENTIAL_BUF_LEN: usize = 129;
/// Size of `KvsCredentials::session_token`: 8192 characters and the NUL.
pub const KVS_SESSION_TOKEN_BUF_LEN: usize = 8193;

/// Credentials a `KvsCredentialsCallback` fills in. The library owns it, zeroes it and sets
/// `struct_size` before each call, and wipes it after copying. Strings are NUL-terminated.
///
/// ABI-versioned by `struct_size`: fields are only ever appended, and a callback built against
/// an older header fills only the fields it knows.
#[repr(C)]
pub struct KvsCredentials {
    /// `sizeof(KvsCredentials)` of the library, set before the call.
    pub struct_size: u32,
    /// AWS access key id (`AKIA…` or `ASIA…`).
    pub access_key_id: [c_char; KVS_CREDENTIAL_BUF_LEN],
    /// AWS secret access key. A secret: never log it.
    pub secret_access_key: [c_char; KVS_CREDENTIAL_BUF_LEN],
    /// Session token of temporary credentials; empty for long-term keys. A secret.
    pub session_token: [c_char; KVS_SESSION_TOKEN_BUF_LEN],
    /// When the service stops accepting them, Unix seconds; 0 = they do not expire. The
    /// callback is called again ahead of this time.
    pub expires_at_unix_s: i64,
}

/// Fills `out` with credentials. Return 0 on success; any other value is a failure, reported
/// as `KVS_ERR_ACCESS_DENIED` with the value in the detail. Called whenever the library needs
/// credentials and the last ones are near their expiry (or on the first use), possibly from
/// the library's own connection thread: it must be thread-safe and must not call back into
/// the same viewer handle. `user_data` is the config's `credentials_user_data`.
pub type KvsCredentialsCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, out: *mut KvsCredentials) -> i32>;

fn blank() -> Box<KvsCredentials> {
    Box::new(KvsCredentials {
        struct_size: size_of::<KvsCredentials>() as u32,
        access_key_id: [0; KVS_CREDENTIAL_BUF_LEN],
        secret_access_key: [0; KVS_CREDENTIAL_BUF_LEN],
        session_token: [0; KVS_SESSION_TOKEN_BUF_LEN],
        expires_at_unix_s: 0,
    })
}

/// The string in a fixed buffer; it must end within the buffer.
fn buffer_str<'a>(buf: &'a [c_char], field: &str) -> Result<&'a str, Error> {
    // SAFETY: c_char and u8 have the same size and alignment; the slice covers the same memory.
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len()) };
    CStr::from_bytes_until_nul(bytes)
        .map_err(|_| Error::invalid(field, "is not NUL-terminated within its buffer"))?
        .to_str()
        .map_err(|_| Error::invalid(field, "is not valid UTF-8"))
}

fn read_filled(c: &KvsCredentials) -> Result<ExpiringCredentials, Error> {
    let akid = buffer_str(&c.access_key_id, "KvsCredentials.access_key_id")?;
    let secret = buffer_str(&c.secret_access_key, "KvsCredentials.secret_access_key")?;
    let token = buffer_str(&c.session_token, "KvsCredentials.session_token")?;
    let expires_at = match c.expires_at_unix_s {
        0 => None,
        s => Some(OffsetDateTime::from_unix_timestamp(s).map_err(|_| {
            Error::invalid(
                "KvsCredentials.expires_at_unix_s",
                format!("{s} is not a valid time"),
            )
        })?),
    };
    let token = (!token.is_empty()).then_some(token);
    Ok(ExpiringCredentials::new(
        Credentials::new(akid, secret, token),
        expires_at,
    ))
}

/// The C callback and its user data. The application promises the callback may be called from
/// any thread (see `KvsCredentialsCallback`).
struct CCallback {
    f: unsafe extern "C" fn(*mut c_void, *mut KvsCredentials) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the pointer is only handed back to the application's callback, which is documented
// to be callable from any thread; the library never dereferences it.
unsafe impl Send for CCallback {}
// SAFETY: as above; calls are serialised by the provider's lock.
unsafe impl Sync for CCallback {}

impl CCallback {
    fn call(&self) -> Result<ExpiringCredentials, Error> {
        let mut out = blank();
        // SAFETY: `out` is a valid, writable, initialised `KvsCredentials`; the callback's
        // contract is to fill it and return.
        let rc = unsafe { (self.f)(self.user_data, &mut *out) };
        let result = if rc != 0 {
            Err(Error::new(
                ErrorKind::AccessDenied,
                format!("the credentials callback failed (returned {rc})"),
            ))
        } else {
            read_filled(&out)
        };
        out.secret_access_key.zeroize();
        out.session_token.zeroize();
        out.access_key_id.zeroize();
        result
    }
}

/// The callback as a credential source; None when `f` is NULL.
pub(crate) fn callback_source(
    f: KvsCredentialsCallback,
    user_data: *mut c_void,
) -> Option<CredentialSource> {
    let cb = CCallback { f: f?, user_data };
    Some(CredentialSource::Callback(Arc::new(move || cb.call())))
}

/// The `iot_*` config strings as IoT settings: None when all are NULL or empty; an error
/// naming the first missing field when only some are given.
///
/// # Safety
/// Each pointer is NULL or NUL-terminated.
pub(crate) unsafe fn iot_settings(
    endpoint: *const c_char,
    role_alias: *const c_char,
    thing_name: *const c_char,
    cert_file: *const c_char,
    key_file: *const c_char,
    ca_file: *const c_char,
) -> Result<Option<IotSettings>, Error> {
    let read = |p, field| -> Result<Option<String>, Error> {
        // SAFETY: forwarded contract.
        Ok(unsafe { optional_str(p, field) }?
            .filter(|s| !s.is_empty())
            .map(str::to_owned))
    };
    let fields = [
        (
            "iot_credentials_endpoint",
            read(endpoint, "iot_credentials_endpoint")?,
        ),
        ("iot_role_alias", read(role_alias, "iot_role_alias")?),
        ("iot_thing_name", read(thing_name, "iot_thing_name")?),
        ("iot_cert_file", read(cert_file, "iot_cert_file")?),
        ("iot_key_file", read(key_file, "iot_key_file")?),
    ];
    let ca_file = read(ca_file, "iot_ca_file")?;
    if fields.iter().all(|(_, v)| v.is_none()) {
        if ca_file.is_some() {
            return Err(Error::invalid(
                "iot_ca_file",
                "is set but iot_credentials_endpoint is not",
            ));
        }
        return Ok(None);
    }
    let mut values = Vec::with_capacity(fields.len());
    for (name, v) in fields {
        values.push(v.ok_or_else(|| {
            Error::invalid(
                name,
                "is required with the other iot_* fields (AWS IoT credentials provider)",
            )
        })?);
    }
    let [endpoint, role_alias, thing_name, cert_file, key_file]: [String; 5] =
        values.try_into().expect("five fields");
    let s = IotSettings {
        endpoint,
        role_alias,
        thing_name,
        cert_file: PathBuf::from(cert_file),
        key_file: PathBuf::from(key_file),
        ca_file: ca_file.map(PathBuf::from),
    };
    s.validate()?;
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    unsafe extern "C" fn fill_ok(user_data: *mut c_void, out: *mut KvsCredentials) -> i32 {
        // SAFETY: the test passes an AtomicU32 and the library a valid struct.
        let calls = unsafe { &*(user_data as *const AtomicU32) };
        calls.fetch_add(1, Ordering::SeqCst);
        let out = unsafe { &mut *out };
        assert_eq!(out.struct_size as usize, size_of::<KvsCredentials>());
        for (buf, s) in [
            (&mut out.access_key_id[..], "ASIAEXAMPLE"),
            (&mut out.secret_access_key[..], "secret/key+"),
            (&mut out.session_token[..], "token=="),
        ] {
            for (d, b) in buf.iter_mut().zip(s.bytes()) {
                *d = b as c_char;
            }
        }
        out.expires_at_unix_s = 2_000_000_000;
        0
    }

    unsafe extern "C" fn fill_fails(_: *mut c_void, _: *mut KvsCredentials) -> i32 {
        -7
    }

    unsafe extern "C" fn fill_unterminated(_: *mut c_void, out: *mut KvsCredentials) -> i32 {
        // SAFETY: the library passes a valid struct.
        let out = unsafe { &mut *out };
        out.access_key_id.fill(b'A' as c_char);
        0
    }

    fn fetch(f: KvsCredentialsCallback, user_data: *mut c_void) -> Result<Credentials, Error> {
        crate::credentials::CredentialProvider::new(callback_source(f, user_data).unwrap())
            .credentials()
    }

    #[test]
    fn callback_fills_the_struct() {
        let calls = AtomicU32::new(0);
        let p = crate::credentials::CredentialProvider::new(
            callback_source(Some(fill_ok), &calls as *const _ as *mut c_void).unwrap(),
        );
        let c = p.current().unwrap();
        assert_eq!(c.credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.credentials.secret_access_key(), "secret/key+");
        assert_eq!(c.credentials.session_token(), Some("token=="));
        assert_eq!(c.expires_at.unwrap().unix_timestamp(), 2_000_000_000);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(callback_source(None, std::ptr::null_mut()).is_none());
    }

    #[test]
    fn callback_failures_are_clear() {
        let e = fetch(Some(fill_fails), std::ptr::null_mut()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(
            e.message,
            "credentials: the credentials callback failed (returned -7)"
        );
        let e = fetch(Some(fill_unterminated), std::ptr::null_mut()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message
                .starts_with("credentials: KvsCredentials.access_key_id: is not NUL-terminated"),
            "{}",
            e.message
        );
    }

    #[test]
    fn iot_fields_all_or_none() {
        let none = unsafe {
            iot_settings(
                std::ptr::null(),
                c"".as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert!(none.unwrap().is_none());
        let e = unsafe {
            iot_settings(
                c"https://x.credentials.iot.us-west-2.amazonaws.com".as_ptr(),
                c"alias".as_ptr(),
                std::ptr::null(),
                c"c.pem".as_ptr(),
                c"k.pem".as_ptr(),
                std::ptr::null(),
            )
        }
        .unwrap_err();
        assert!(
            e.message.starts_with("iot_thing_name: is required"),
            "{}",
            e.message
        );
        let s = unsafe {
            iot_settings(
                c"https://x.credentials.iot.us-west-2.amazonaws.com".as_ptr(),
                c"alias".as_ptr(),
                c"thing".as_ptr(),
                c"c.pem".as_ptr(),
                c"k.pem".as_ptr(),
                c"ca.pem".as_ptr(),
            )
        }
        .unwrap()
        .unwrap();
        assert_eq!(s.thing_name, "thing");
        assert_eq!(s.ca_file, Some(PathBuf::from("ca.pem")));
    }
}
