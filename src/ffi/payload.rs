//! Payload helpers to C: build the offer and candidate JSON, read the answer's SDP and a
//! received candidate, and send them, so the application writes no JSON of its own.
//!
//! Outputs go into caller buffers with `snprintf` semantics: the full length (without the
//! NUL) is written to `*..._len`, the text is written NUL-terminated and, when it does not
//! fit, cut (at a UTF-8 boundary) and the call returns `KVS_ERR_BUFFER_TOO_SMALL`.

use std::ffi::c_char;
use std::mem::{offset_of, size_of};

use crate::envelope::MessageType;
use crate::error::{Error, ErrorKind};
use crate::payload::{self, Candidate};

use super::types::{KvsMessage, KvsMessageType, copy_c_string, optional_str, payload_bytes};
use super::versioned::struct_size_of;
use super::{KvsStatus, KvsViewer, fail, guard, null_pointer, send_frame, with_handle};

/// One output text: `buf`/`cap` the caller's buffer, `len` where its full length goes.
struct Out {
    name: &'static str,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
}

impl Out {
    /// Neither a buffer nor a length: the caller does not want this output.
    fn unwanted(&self) -> bool {
        self.buf.is_null() && self.len.is_null()
    }

    fn check(&self, len_name: &str) -> Result<(), KvsStatus> {
        if self.buf.is_null() && self.cap > 0 {
            return Err(fail(Error::invalid(
                self.name,
                format!("is NULL but its capacity is {}", self.cap),
            )));
        }
        if self.len.is_null() && !self.buf.is_null() {
            return Err(null_pointer(len_name));
        }
        Ok(())
    }

    /// Writes `text` snprintf-style; false when it did not fit.
    ///
    /// # Safety
    /// `buf` is NULL or points to `cap` writable bytes; `len` is NULL or writable.
    unsafe fn write(&self, text: &str) -> bool {
        if !self.len.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { self.len.write(text.len()) };
        }
        if !self.buf.is_null() && self.cap > 0 {
            // SAFETY: `cap` writable bytes per the contract.
            let out = unsafe { std::slice::from_raw_parts_mut(self.buf.cast::<u8>(), self.cap) };
            copy_c_string(text, out);
        }
        text.len() < self.cap
    }

    fn too_small(&self, needed: usize) -> KvsStatus {
        fail(Error::new(
            ErrorKind::BufferTooSmall,
            format!(
                "{}: needs {needed} bytes plus the NUL, the buffer holds {}; the length \
                 was written",
                self.name, self.cap
            ),
        ))
    }
}

/// Writes one required output.
///
/// # Safety
/// As `Out::write`.
unsafe fn write_one(out: &Out, len_name: &str, text: &str) -> Result<(), KvsStatus> {
    if out.len.is_null() {
        return Err(null_pointer(len_name));
    }
    out.check(len_name)?;
    // SAFETY: forwarded contract.
    if unsafe { out.write(text) } {
        Ok(())
    } else {
        Err(out.too_small(text.len()))
    }
}

/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn required<'a>(p: *const c_char, name: &str) -> Result<&'a str, KvsStatus> {
    if p.is_null() {
        return Err(null_pointer(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    Ok(unsafe { optional_str(p, name) }
        .map_err(fail)?
        .unwrap_or_default())
}

fn mline_from_c(index: i32) -> Result<Option<u16>, KvsStatus> {
    if index < 0 {
        return Ok(None);
    }
    u16::try_from(index).map(Some).map_err(|_| {
        fail(Error::invalid(
            "sdp_mline_index",
            format!("{index} is above 65535; pass a negative value for \"absent\""),
        ))
    })
}

/// # Safety
/// `candidate` NUL-terminated; `sdp_mid` NULL or NUL-terminated.
unsafe fn candidate_json(
    candidate: *const c_char,
    sdp_mid: *const c_char,
    sdp_mline_index: i32,
) -> Result<String, KvsStatus> {
    // SAFETY: forwarded contract.
    let candidate = unsafe { required(candidate, "candidate") }?;
    // SAFETY: forwarded contract.
    let sdp_mid = unsafe { optional_str(sdp_mid, "sdp_mid") }.map_err(fail)?;
    payload::candidate(&Candidate {
        candidate: candidate.to_owned(),
        sdp_mid: sdp_mid.map(str::to_owned),
        sdp_mline_index: mline_from_c(sdp_mline_index)?,
    })
    .map_err(fail)
}

/// Writes a parsed candidate to its three outputs.
///
/// # Safety
/// Every buffer is NULL or holds its capacity in writable bytes; every length pointer and
/// `mline` are NULL or writable.
unsafe fn write_candidate(
    c: &Candidate,
    candidate: &Out,
    sdp_mid: &Out,
    sdp_mline_index: *mut i32,
) -> Result<(), KvsStatus> {
    if candidate.len.is_null() {
        return Err(null_pointer("candidate_len"));
    }
    candidate.check("candidate_len")?;
    if !sdp_mid.unwanted() {
        sdp_mid.check("sdp_mid_len")?;
    }
    // SAFETY: forwarded contract.
    let candidate_fits = unsafe { candidate.write(&c.candidate) };
    let mid = c.sdp_mid.as_deref().unwrap_or("");
    // SAFETY: forwarded contract.
    let mid_fits = sdp_mid.unwanted() || unsafe { sdp_mid.write(mid) };
    if !sdp_mline_index.is_null() {
        let index = c.sdp_mline_index.map_or(-1, i32::from);
        // SAFETY: non-NULL and writable per the contract.
        unsafe { sdp_mline_index.write(index) };
    }
    if !candidate_fits {
        return Err(candidate.too_small(c.candidate.len()));
    }
    if !mid_fits {
        return Err(sdp_mid.too_small(mid.len()));
    }
    Ok(())
}

/// Builds the offer payload `{"type":"offer","sdp":…}` from the SDP the WebRTC stack made
/// (JSON-escaped: quotes, backslashes, CR/LF and control characters).
///
/// Writes the payload's length (without the NUL) to `*out_len` and the payload, NUL-terminated,
/// to `buf`; when `cap` is too small the text is cut and `KVS_ERR_BUFFER_TOO_SMALL` returned
/// (`buf` NULL and `cap` 0 asks for the size: that too is `KVS_ERR_BUFFER_TOO_SMALL`, with
/// `*out_len` set). The result is what
/// `kvs_viewer_send(v, KVS_MSG_SDP_OFFER, buf, 0, NULL)` takes; `kvs_viewer_send_offer` does
/// both.
///
/// Errors: `KVS_ERR_NULL_POINTER` (`sdp`, `out_len`), `KVS_ERR_INVALID_ARGUMENT` (`sdp`
/// empty or not UTF-8; `buf` NULL with `cap` > 0), `KVS_ERR_BUFFER_TOO_SMALL`.
/// Thread-safe; allocation-free for the caller.
///
/// # Safety
/// `sdp` must be NULL or NUL-terminated; `buf` NULL or `cap` writable bytes; `out_len`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_payload_offer(
    sdp: *const c_char,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> KvsStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let sdp = unsafe { required(sdp, "sdp") }?;
        let json = payload::offer(sdp).map_err(fail)?;
        let out = Out {
            name: "buf",
            buf,
            cap,
            len: out_len,
        };
        // SAFETY: forwarded contract.
        unsafe { write_one(&out, "out_len", &json) }
    })
}

/// Takes the SDP out of an answer payload (`{"type":"answer","sdp":…}`), unescaped
/// (`\r\n`, `\"`, `\/`, `\uXXXX`), ready for the stack's `set-remote-description`.
///
/// `payload` is `payload_len` bytes, or NUL-terminated when `payload_len` is 0 (as
/// `kvs_viewer_send`). `type`, when present, must be `"answer"`. Output as
/// `kvs_payload_offer`.
///
/// Errors: `KVS_ERR_NULL_POINTER` (`payload`, `out_len`), `KVS_ERR_INVALID_ARGUMENT`
/// (`payload` is not UTF-8 or JSON, has no `sdp` string, or is not an answer — the detail
/// says which), `KVS_ERR_BUFFER_TOO_SMALL`. Thread-safe.
///
/// # Safety
/// `payload` must be NULL, or point to `payload_len` readable bytes (NUL-terminated when 0);
/// `buf` NULL or `cap` writable bytes; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_payload_answer_sdp(
    payload: *const c_char,
    payload_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> KvsStatus {
    if payload.is_null() {
        return null_pointer("payload");
    }
    guard(|| {
        // SAFETY: non-NULL; the caller guarantees the length (or the NUL).
        let bytes = unsafe { payload_bytes(payload, payload_len) };
        let sdp = payload::answer_sdp(bytes).map_err(fail)?;
        let out = Out {
            name: "buf",
            buf,
            cap,
            len: out_len,
        };
        // SAFETY: forwarded contract.
        unsafe { write_one(&out, "out_len", &sdp) }
    })
}

/// Builds a candidate payload `{"candidate":…,"sdpMid":…,"sdpMLineIndex":…}`.
///
/// `candidate` is the stack's candidate line (`candidate:1 1 UDP …`; "" means end of
/// candidates). `sdp_mid` NULL and `sdp_mline_index` negative mean "absent" (written as
/// `null`), but not both: the KVS C SDK master reads only `candidate`, yet browsers,
/// libwebrtc and aiortc refuse a candidate without either, and webrtcbin needs the m-line
/// index. Give both when you have them; webrtcbin's `on-ice-candidate` gives only the index.
/// Output as `kvs_payload_offer`.
///
/// Errors: `KVS_ERR_NULL_POINTER` (`candidate`, `out_len`), `KVS_ERR_INVALID_ARGUMENT`
/// (a string not UTF-8, both `sdp_mid` and `sdp_mline_index` absent, `sdp_mline_index` above
/// 65535), `KVS_ERR_BUFFER_TOO_SMALL`. Thread-safe.
///
/// # Safety
/// `candidate` and `sdp_mid` must be NULL or NUL-terminated; `buf` NULL or `cap` writable
/// bytes; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_payload_candidate(
    candidate: *const c_char,
    sdp_mid: *const c_char,
    sdp_mline_index: i32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> KvsStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let json = unsafe { candidate_json(candidate, sdp_mid, sdp_mline_index) }?;
        let out = Out {
            name: "buf",
            buf,
            cap,
            len: out_len,
        };
        // SAFETY: forwarded contract.
        unsafe { write_one(&out, "out_len", &json) }
    })
}

/// Reads a received candidate payload into its three fields, unescaped.
///
/// `payload` as in `kvs_payload_answer_sdp`. The candidate line goes to `candidate_buf` /
/// `*candidate_len` (required). The mid goes to `sdp_mid_buf` / `*sdp_mid_len`, "" when
/// absent or `null`; pass both NULL (and cap 0) when you do not need it. The m-line index
/// goes to `*sdp_mline_index`, -1 when absent; NULL when not needed. A stack that takes only
/// the index (webrtcbin) must map a mid-only candidate to its m-line itself (the order of
/// `a=mid:` in the remote description). Every output is written even when one is too small;
/// then `KVS_ERR_BUFFER_TOO_SMALL` names the first buffer that was.
///
/// Errors: `KVS_ERR_NULL_POINTER` (`payload`, `candidate_len`, a buffer's length pointer),
/// `KVS_ERR_INVALID_ARGUMENT` (not UTF-8 or JSON, no `candidate` string, `sdpMid` not a
/// string, `sdpMLineIndex` not an integer in 0..65535; a buffer NULL with a capacity),
/// `KVS_ERR_BUFFER_TOO_SMALL`. Thread-safe.
///
/// # Safety
/// `payload` as in `kvs_payload_answer_sdp`; each buffer NULL or holding its capacity in
/// writable bytes; each length pointer and `sdp_mline_index` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_payload_candidate_parse(
    payload: *const c_char,
    payload_len: usize,
    candidate_buf: *mut c_char,
    candidate_cap: usize,
    candidate_len: *mut usize,
    sdp_mid_buf: *mut c_char,
    sdp_mid_cap: usize,
    sdp_mid_len: *mut usize,
    sdp_mline_index: *mut i32,
) -> KvsStatus {
    if payload.is_null() {
        return null_pointer("payload");
    }
    guard(|| {
        // SAFETY: non-NULL; the caller guarantees the length (or the NUL).
        let bytes = unsafe { payload_bytes(payload, payload_len) };
        let c = payload::parse_candidate(bytes).map_err(fail)?;
        // SAFETY: forwarded contract.
        unsafe {
            write_candidate(
                &c,
                &Out {
                    name: "candidate_buf",
                    buf: candidate_buf,
                    cap: candidate_cap,
                    len: candidate_len,
                },
                &Out {
                    name: "sdp_mid_buf",
                    buf: sdp_mid_buf,
                    cap: sdp_mid_cap,
                    len: sdp_mid_len,
                },
                sdp_mline_index,
            )
        }
    })
}

/// The payload of a `KvsMessage` that `kvs_viewer_recv` filled, checked to be of `want`.
///
/// # Safety
/// `msg` is non-NULL with `struct_size` readable bytes; its `payload` holds `payload_cap`
/// readable bytes.
unsafe fn message_payload<'a>(
    msg: *const KvsMessage,
    want: KvsMessageType,
    want_name: &str,
) -> Result<&'a [u8], KvsStatus> {
    // SAFETY: the first field is readable per the contract.
    let given = unsafe { struct_size_of(msg) };
    // The fields read here are in every published layout.
    let needed = offset_of!(KvsMessage, payload_len) + size_of::<usize>();
    if given < needed {
        return Err(fail(Error::invalid(
            "msg.struct_size",
            format!("{given} is smaller than any published KvsMessage; call kvs_message_init()"),
        )));
    }
    // SAFETY: inside the caller's `struct_size` bytes; no reference to the struct is formed.
    let (message_type, payload, cap, len) = unsafe {
        (
            std::ptr::addr_of!((*msg).message_type).read_unaligned(),
            std::ptr::addr_of!((*msg).payload).read_unaligned(),
            std::ptr::addr_of!((*msg).payload_cap).read_unaligned(),
            std::ptr::addr_of!((*msg).payload_len).read_unaligned(),
        )
    };
    if message_type != want as i32 {
        return Err(fail(Error::invalid(
            "msg.message_type",
            format!(
                "is {} ({message_type}), not {want_name}",
                super::types::message_type_name(message_type)
                    .to_str()
                    .unwrap_or("?")
            ),
        )));
    }
    if payload.is_null() || len >= cap {
        return Err(fail(Error::invalid(
            "msg.payload",
            "holds no received payload (kvs_viewer_recv did not return KVS_OK for it)",
        )));
    }
    // SAFETY: `len < cap` bytes that `kvs_viewer_recv` wrote into the caller's buffer.
    Ok(unsafe { std::slice::from_raw_parts(payload.cast::<u8>(), len) })
}

/// The SDP of a received `KVS_MSG_SDP_ANSWER` message, as `kvs_payload_answer_sdp` on
/// `msg->payload`. `buf` must not overlap `msg->payload`.
///
/// Errors: those of `kvs_payload_answer_sdp`, and `KVS_ERR_NULL_POINTER` (`msg`),
/// `KVS_ERR_INVALID_ARGUMENT` (`msg` is not an answer, or holds no received payload).
///
/// # Safety
/// `msg` must be NULL or a `KvsMessage` that `kvs_viewer_recv` filled, its payload buffer
/// still valid; `buf` NULL or `cap` writable bytes; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_message_answer_sdp(
    msg: *const KvsMessage,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> KvsStatus {
    if msg.is_null() {
        return null_pointer("msg");
    }
    guard(|| {
        // SAFETY: forwarded contract.
        let bytes =
            unsafe { message_payload(msg, KvsMessageType::KVS_MSG_SDP_ANSWER, "SDP_ANSWER") }?;
        let sdp = payload::answer_sdp(bytes).map_err(fail)?;
        let out = Out {
            name: "buf",
            buf,
            cap,
            len: out_len,
        };
        // SAFETY: forwarded contract.
        unsafe { write_one(&out, "out_len", &sdp) }
    })
}

/// The fields of a received `KVS_MSG_ICE_CANDIDATE` message, as
/// `kvs_payload_candidate_parse` on `msg->payload`. The buffers must not overlap
/// `msg->payload`.
///
/// Errors: those of `kvs_payload_candidate_parse`, and `KVS_ERR_NULL_POINTER` (`msg`),
/// `KVS_ERR_INVALID_ARGUMENT` (`msg` is not a candidate, or holds no received payload).
///
/// # Safety
/// `msg` as in `kvs_message_answer_sdp`; the outputs as in `kvs_payload_candidate_parse`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_message_candidate(
    msg: *const KvsMessage,
    candidate_buf: *mut c_char,
    candidate_cap: usize,
    candidate_len: *mut usize,
    sdp_mid_buf: *mut c_char,
    sdp_mid_cap: usize,
    sdp_mid_len: *mut usize,
    sdp_mline_index: *mut i32,
) -> KvsStatus {
    if msg.is_null() {
        return null_pointer("msg");
    }
    guard(|| {
        // SAFETY: forwarded contract.
        let bytes = unsafe {
            message_payload(msg, KvsMessageType::KVS_MSG_ICE_CANDIDATE, "ICE_CANDIDATE")
        }?;
        let c = payload::parse_candidate(bytes).map_err(fail)?;
        // SAFETY: forwarded contract.
        unsafe {
            write_candidate(
                &c,
                &Out {
                    name: "candidate_buf",
                    buf: candidate_buf,
                    cap: candidate_cap,
                    len: candidate_len,
                },
                &Out {
                    name: "sdp_mid_buf",
                    buf: sdp_mid_buf,
                    cap: sdp_mid_cap,
                    len: sdp_mid_len,
                },
                sdp_mline_index,
            )
        }
    })
}

/// Sends an `SDP_OFFER` built from `sdp` (as `kvs_payload_offer`, then `kvs_viewer_send`
/// without a correlation id).
///
/// Errors: `KVS_ERR_NULL_POINTER` (`viewer`, `sdp`), `KVS_ERR_INVALID_ARGUMENT` (`sdp`
/// empty or not UTF-8, or the payload over the service's size limit), and the send errors of
/// `kvs_viewer_send`. Thread-safety: as `kvs_viewer_send`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `sdp` NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_send_offer(
    viewer: *mut KvsViewer,
    sdp: *const c_char,
) -> KvsStatus {
    if sdp.is_null() {
        return null_pointer("sdp");
    }
    with_handle(viewer, |h| {
        // SAFETY: forwarded contract.
        let sdp = unsafe { required(sdp, "sdp") }?;
        let json = payload::offer(sdp).map_err(fail)?;
        send_frame(h, MessageType::SdpOffer, json.as_bytes(), None)
    })
}

/// Sends an `ICE_CANDIDATE` built from its fields (as `kvs_payload_candidate`, then
/// `kvs_viewer_send` without a correlation id). Safe to call from the stack's own thread
/// while another thread blocks in `kvs_viewer_recv`.
///
/// Errors: `KVS_ERR_NULL_POINTER` (`viewer`, `candidate`), the argument errors of
/// `kvs_payload_candidate`, and the send errors of `kvs_viewer_send`.
/// Thread-safety: as `kvs_viewer_send`.
///
/// # Safety
/// `viewer` must come from `kvs_viewer_connect` and not be closed; `candidate` and
/// `sdp_mid` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_viewer_send_candidate(
    viewer: *mut KvsViewer,
    candidate: *const c_char,
    sdp_mid: *const c_char,
    sdp_mline_index: i32,
) -> KvsStatus {
    if candidate.is_null() {
        return null_pointer("candidate");
    }
    with_handle(viewer, |h| {
        // SAFETY: forwarded contract.
        let json = unsafe { candidate_json(candidate, sdp_mid, sdp_mline_index) }?;
        send_frame(h, MessageType::IceCandidate, json.as_bytes(), None)
    })
}
