//! Size-versioned structs (`uint32_t struct_size` first): the caller's `struct_size` says how
//! many bytes of the struct exist in its memory, which may be fewer (an older header) or more
//! (a newer header) than this library's `size_of`. The library touches only
//! `min(struct_size, size_of)` bytes: fields past the caller's size read as their default
//! (zero / NULL) and are never written.
//!
//! No reference to a whole caller struct is ever formed: the caller's allocation may be
//! smaller than the Rust type. Structs are copied byte-wise into a full-sized local, used
//! there, and the same prefix is copied back.

use std::mem::MaybeUninit;

use crate::error::Error;

/// `size_of` of a struct as a header of an earlier version laid it out: the end of its last
/// field rounded up to the struct's alignment (C's rule).
pub(crate) const fn frozen_size(end_of_last_field: usize, align: usize) -> usize {
    end_of_last_field.div_ceil(align) * align
}

/// Reads `struct_size`, the first field, without referencing the rest.
///
/// # Safety
/// `p` is non-NULL and points to at least 4 readable bytes.
pub(crate) unsafe fn struct_size_of<T>(p: *const T) -> usize {
    // SAFETY: `struct_size` is a `u32` at offset 0 of every versioned struct (`#[repr(C)]`).
    unsafe { p.cast::<u32>().read_unaligned() as usize }
}

/// Checks the caller's `struct_size` against the smallest layout ever published (`min`) and
/// returns how many bytes the library may touch.
pub(crate) fn usable_size<T>(
    given: usize,
    min: usize,
    field: &str,
    init: &str,
) -> Result<usize, Error> {
    if given < min {
        return Err(Error::invalid(
            field,
            format!(
                "{given} is smaller than any published layout ({min} bytes); call {init}() first"
            ),
        ));
    }
    Ok(given.min(size_of::<T>()))
}

/// A full-sized local copy of the caller's struct: `defaults`, overwritten by the first `n`
/// bytes of `*p`.
///
/// # Safety
/// `p` points to `n` readable bytes, `n <= size_of::<T>()`, and `T` is plain data valid for
/// any bit pattern (integers, raw pointers, byte arrays).
pub(crate) unsafe fn read_prefix<T>(p: *const T, n: usize, defaults: T) -> T {
    let mut local = MaybeUninit::new(defaults);
    // SAFETY: `n` readable bytes at `p`, `n` writable bytes in `local`; no overlap.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), local.as_mut_ptr().cast::<u8>(), n) };
    // SAFETY: fully initialised by `defaults`; the copied bytes are valid for plain data.
    unsafe { local.assume_init() }
}

/// Copies the first `n` bytes of `local` back to the caller.
///
/// # Safety
/// `p` points to `n` writable bytes and `n <= size_of::<T>()`.
pub(crate) unsafe fn write_prefix<T>(p: *mut T, n: usize, local: &T) {
    // SAFETY: `n` readable bytes in `local`, `n` writable bytes at `p`; no overlap.
    unsafe { std::ptr::copy_nonoverlapping((local as *const T).cast::<u8>(), p.cast::<u8>(), n) };
}

/// Initialises a caller struct of `size` bytes: all zero (every field's default, in every
/// version), `struct_size = size`. Returns false (nothing written) when `size` cannot hold
/// `struct_size` or does not fit in it.
///
/// # Safety
/// `p` is non-NULL and points to `size` writable bytes.
pub(crate) unsafe fn zero_init<T>(p: *mut T, size: usize) -> bool {
    let Ok(size32) = u32::try_from(size) else {
        return false;
    };
    if size < size_of::<u32>() {
        return false;
    }
    // SAFETY: `size` writable bytes per the contract; `struct_size` is the first field.
    unsafe {
        p.cast::<u8>().write_bytes(0, size);
        p.cast::<u32>().write_unaligned(size32);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Grown {
        struct_size: u32,
        a: u32,
        b: u64,
    }

    #[test]
    fn frozen_size_rounds_like_c() {
        assert_eq!(frozen_size(100, 8), 104);
        assert_eq!(frozen_size(104, 8), 104);
        assert_eq!(frozen_size(1556, 4), 1556);
    }

    #[test]
    fn only_the_prefix_is_read_and_written() {
        // An "old" caller struct of 8 bytes (struct_size + a) in a 16-byte buffer whose tail
        // must stay untouched.
        let mut buf = [0xEEu8; 16];
        buf[..4].copy_from_slice(&8u32.to_ne_bytes());
        buf[4..8].copy_from_slice(&7u32.to_ne_bytes());
        let p = buf.as_mut_ptr().cast::<Grown>();
        // SAFETY: 16 readable bytes, more than the 4 read.
        let given = unsafe { struct_size_of(p) };
        let n = usable_size::<Grown>(given, 8, "s.struct_size", "init").unwrap();
        assert_eq!(n, 8);
        let defaults = Grown {
            struct_size: 0,
            a: 0,
            b: 42,
        };
        // SAFETY: 8 readable bytes; Grown is plain data.
        let mut local = unsafe { read_prefix(p, n, defaults) };
        assert_eq!((local.struct_size, local.a, local.b), (8, 7, 42));
        local.a = 9;
        local.b = 1;
        // SAFETY: 8 writable bytes.
        unsafe { write_prefix(p, n, &local) };
        assert_eq!(&buf[4..8], &9u32.to_ne_bytes());
        assert_eq!(&buf[8..], &[0xEE; 8]);
        assert!(usable_size::<Grown>(4, 8, "s.struct_size", "init").is_err());
        assert_eq!(usable_size::<Grown>(64, 8, "s", "init").unwrap(), 16);
    }

    #[test]
    fn zero_init_writes_exactly_size_bytes() {
        let mut buf = [0xEEu8; 12];
        // SAFETY: 12 writable bytes, 8 written.
        assert!(unsafe { zero_init(buf.as_mut_ptr().cast::<Grown>(), 8) });
        assert_eq!(&buf[..4], &8u32.to_ne_bytes());
        assert_eq!(&buf[4..8], &[0; 4]);
        assert_eq!(&buf[8..], &[0xEE; 4]);
        // SAFETY: nothing is written for a size below 4.
        assert!(!unsafe { zero_init(buf.as_mut_ptr().cast::<Grown>(), 3) });
    }
}
